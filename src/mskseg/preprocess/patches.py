"""Patches centred on voxels (the local 3D U-Net's inputs) and the merge of patch outputs into a volume.

Extraction and merging share one layout, a list of :class:`Patch`: patch voxel ``p`` is volume voxel
``start + p``. A patch of ``size`` voxels centred on voxel ``c`` starts at ``c - size // 2`` (for an
even size the centre is the voxel just past the middle, as in :class:`mskseg.nn.data.PatchDataset`).
At the volume's border, ``border`` decides:

* ``"pad"`` -- the patch keeps its centre; the part outside the volume is filled with ``fill`` on
  extraction and ignored on merging (:attr:`Patch.padding` records how many voxels per side);
* ``"shift"`` -- the patch is moved inside the volume (the centre voxel stays in it, off-centre;
  :attr:`Patch.centre` keeps where it was asked for); only along an axis where the volume is
  smaller than the patch is it padded (centred, as ``"pad"`` would).

Merging (:func:`merge_patches`) averages overlaps: each voxel gets the (weighted) mean over the
patches that cover it, ``sum_i w_i p_i / sum_i w_i`` (``w = 1``: sum of values / number of covering
patches), accumulated in float64, so merging the patches of a float32 volume gives back the volume
exactly on every covered voxel. Voxels no patch covers get ``fallback``: a value (NaN by default:
"not covered", which :func:`mskseg.postprocess.ensemble.ensemble_labels` skips) or a volume, e.g.
the 2D network's probabilities. The coverage (patches per voxel) comes back with the values.

==================================  ==========================================================
case                                result
==================================  ==========================================================
no centres                          nothing extracted; merge: all ``fallback``, coverage 0
a patch wholly outside the volume   ``"pad"``: all ``fill``, merges nothing; ``"shift"``: moved in
==================================  ==========================================================

Cost at the OAI-ZIB size (160 x 384 x 384, 0.7 x 0.36 x 0.36 mm), 130 patches of 64^3 and 3
classes: extraction 0.3 s, merging 1.1 s on 2 cores (the float64 sums are kept only over the union
of the patches, one class at a time; ``benchmarks/bench_postprocess.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mskseg.volume import Volume

Border = Literal["pad", "shift"]
Shape3 = tuple[int, int, int]


@dataclass(frozen=True)
class Patch:
    """One patch's place in the volume: patch voxel ``p`` is volume voxel ``start + p``.

    Attributes
    ----------
    centre
        The voxel it was centred on (volume index).
    start
        Volume index of patch voxel ``(0, 0, 0)``; negative or past the end where it is padded.
    size, shape
        Patch size and volume shape (voxels).
    """

    centre: Shape3
    start: Shape3
    size: Shape3
    shape: Shape3

    @property
    def padding(self) -> tuple[tuple[int, int], ...]:
        """Voxels of the patch outside the volume, ``(before, after)`` per axis."""
        return tuple((max(0, -s), max(0, s + p - n)) for s, p, n in zip(self.start, self.size, self.shape, strict=True))

    @property
    def padded(self) -> bool:
        return any(b or a for b, a in self.padding)

    @property
    def in_volume(self) -> tuple[slice, slice, slice]:
        """The volume region the patch covers (empty slices when it lies wholly outside)."""
        return tuple(slice(min(max(s, 0), n), max(min(s + p, n), 0))
                     for s, p, n in zip(self.start, self.size, self.shape, strict=True))  # type: ignore[return-value]

    @property
    def in_patch(self) -> tuple[slice, slice, slice]:
        """The same region in patch indices."""
        return tuple(slice(v.start - s, v.stop - s) if v.stop > v.start else slice(0, 0)
                     for v, s in zip(self.in_volume, self.start, strict=True))  # type: ignore[return-value]

    @property
    def empty(self) -> bool:
        return any(v.stop <= v.start for v in self.in_volume)


def _shape3(values: Sequence[int], what: str) -> Shape3:
    out = tuple(int(v) for v in values)
    if len(out) != 3 or min(out) < 1 or any(int(v) != v for v in values):
        raise ValueError(f"{what} must be three positive integers, got {values!r}")
    return out  # type: ignore[return-value]


def centre_voxels(points_mm: np.ndarray, volume: Volume) -> np.ndarray:
    """Nearest voxel index of each world point ``(k, 3)`` (mm): int64 ``(k, 3)``, possibly outside
    the volume. Halves round up (``floor(x + 0.5)``), so the result is the same on every platform."""
    pts = np.asarray(points_mm, dtype=float).reshape(-1, 3)
    if not np.isfinite(pts).all():
        raise ValueError("points contain non-finite coordinates")
    return np.floor(volume.world_to_index(pts) + 0.5).astype(np.int64)


def patch_layout(centres: np.ndarray, size: Sequence[int], shape: Sequence[int], *,
                 border: Border = "pad") -> list[Patch]:
    """Patches of ``size`` voxels centred on each voxel index of ``centres`` ``(k, 3)`` in a
    volume of ``shape`` (see the module docstring for ``border``)."""
    size3, shape3 = _shape3(size, "size"), _shape3(shape, "shape")
    if border not in ("pad", "shift"):
        raise ValueError(f"border must be 'pad' or 'shift', got {border!r}")
    c = np.asarray(centres)
    if c.size == 0:
        return []
    if c.ndim != 2 or c.shape[1] != 3 or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"centres must be an integer array of shape (k, 3), got {c.dtype} {c.shape}")
    p, n = np.asarray(size3), np.asarray(shape3)
    start = c - p // 2
    if border == "shift":
        fits = p <= n
        start = np.where(fits, np.clip(start, 0, np.maximum(n - p, 0)), -((p - n) // 2))
    return [Patch(tuple(int(v) for v in ci), tuple(int(v) for v in si), size3, shape3)  # type: ignore[arg-type]
            for ci, si in zip(c, start, strict=True)]


def extract_patches(array: np.ndarray, layout: Sequence[Patch], *, fill: float = 0.0) -> np.ndarray:
    """The patches of ``array`` ``(..., X, Y, Z)`` (spatial axes last): ``(k, ..., *size)``, its dtype,
    ``fill`` where a patch is outside the volume. No patches give a ``(0, ..., *size)`` array
    (``size`` unknown: ``(0, ...)`` only when the layout is empty)."""
    arr = np.asarray(array)
    if arr.ndim < 3:
        raise ValueError(f"array must have 3 spatial axes (last), got shape {arr.shape}")
    lead = arr.shape[:-3]
    if not layout:
        return np.zeros((0, *lead), dtype=arr.dtype)
    _check_layout(layout, arr.shape[-3:])
    out = np.full((len(layout), *lead, *layout[0].size), fill, dtype=arr.dtype)
    for i, patch in enumerate(layout):
        if not patch.empty:
            out[(i, ..., *patch.in_patch)] = arr[(..., *patch.in_volume)]
    return out


def _check_layout(layout: Sequence[Patch], shape: tuple[int, ...]) -> None:
    sizes = {p.size for p in layout}
    shapes = {p.shape for p in layout}
    if len(sizes) != 1:
        raise ValueError(f"patches of different sizes in one layout: {sorted(sizes)}")
    if shapes != {tuple(shape)}:
        raise ValueError(f"layout made for volume shape {sorted(shapes)}, not {tuple(shape)}")


def union_region(layout: Sequence[Patch]) -> tuple[slice, slice, slice] | None:
    """The smallest box of the volume holding every patch's covered region; None if none covers any."""
    boxes = [p.in_volume for p in layout if not p.empty]
    if not boxes:
        return None
    return tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes))
                 for a in range(3))  # type: ignore[return-value]


@dataclass(frozen=True)
class Merged:
    """Patch outputs merged into a volume.

    Attributes
    ----------
    values
        float32 ``(..., X, Y, Z)``: the (weighted) mean of the covering patches, ``fallback`` elsewhere.
    coverage
        ``(X, Y, Z)`` uint16 (uint32 from 65536 patches): how many patches cover each voxel (0: the
        fallback).
    """

    values: np.ndarray
    coverage: np.ndarray


def merge_patches(patches: np.ndarray, layout: Sequence[Patch], *, fallback: float | np.ndarray = np.nan,
                  weight: np.ndarray | None = None) -> Merged:
    """Average patch outputs ``(k, ..., *size)`` (e.g. class probabilities ``(k, C, *size)``) into a volume.

    Parameters
    ----------
    patches
        Floating values, one per patch of ``layout`` (same order); padded parts are ignored.
    layout
        Where the patches lie (:func:`patch_layout`); gives the volume shape.
    fallback
        Value for voxels no patch covers: a number, or an array of the output shape ``(..., X, Y, Z)``.
    weight
        Optional positive ``size``-shaped weights per patch voxel (e.g. higher at the centre):
        overlaps then get ``sum w p / sum w``. None: plain mean.

    Raises
    ------
    ValueError
        Patches not matching the layout, a fallback of the wrong shape, or weights that are not
        positive and finite.
    """
    vals = np.asarray(patches)
    if not np.issubdtype(vals.dtype, np.floating):
        raise ValueError(f"patch values must be floating point, got {vals.dtype}")
    if not layout:
        raise ValueError("merge_patches needs a non-empty layout (it defines the volume shape)")
    _check_layout(layout, layout[0].shape)
    size, shape = layout[0].size, layout[0].shape
    if vals.ndim < 4 or vals.shape[0] != len(layout) or vals.shape[-3:] != size:
        raise ValueError(f"patches of shape {vals.shape} do not match {len(layout)} patches of size {size}")
    lead = vals.shape[1:-3]
    if weight is not None:
        weight = np.asarray(weight, dtype=np.float64)
        if weight.shape != size or not (np.isfinite(weight).all() and (weight > 0).all()):
            raise ValueError(f"weight must be a positive finite array of shape {size}")

    out = np.empty((*lead, *shape), dtype=np.float32)
    if np.ndim(fallback) and np.shape(fallback) != out.shape:
        raise ValueError(f"fallback of shape {np.shape(fallback)} does not match the output {out.shape}")
    out[...] = np.asarray(fallback, dtype=np.float32)
    count_dtype = np.uint16 if len(layout) < 2**16 else np.uint32
    coverage = np.zeros(shape, dtype=count_dtype)
    box = union_region(layout)
    if box is None:
        return Merged(out, coverage)

    used = [p for p in layout if not p.empty]
    index = [i for i, p in enumerate(layout) if not p.empty]
    offset = [b.start for b in box]
    local = [tuple(slice(v.start - o, v.stop - o) for v, o in zip(p.in_volume, offset, strict=True)) for p in used]
    box_shape = tuple(b.stop - b.start for b in box)
    count = np.zeros(box_shape, dtype=count_dtype)
    wsum = np.zeros(box_shape, dtype=np.float64) if weight is not None else None
    for p, region in zip(used, local, strict=True):
        count[region] += 1
        if wsum is not None:
            wsum[region] += weight[p.in_patch]
    covered = count > 0
    denom = wsum if wsum is not None else count
    acc = np.zeros(box_shape, dtype=np.float64)
    for channel in np.ndindex(*lead):
        acc.fill(0.0)
        for i, p, region in zip(index, used, local, strict=True):
            v = vals[(i, *channel, *p.in_patch)]
            acc[region] += v if weight is None else v * weight[p.in_patch]
        target = out[(*channel, *box)]
        target[covered] = (acc[covered] / denom[covered]).astype(np.float32)
    coverage[box] = count
    return Merged(out, coverage)

"""Cropping to the bounding box of labels, keeping the physical geometry."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mskseg.volume import Volume

#: a per-axis ``[start, stop)`` index range, one pair per index axis
Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def margin_voxels(spacing: Sequence[float], margin_mm: float) -> tuple[int, int, int]:
    """The margin in whole voxels per axis: ``ceil(margin_mm / spacing[a])``.

    Rounded up so that the margin is at least ``margin_mm`` along every axis (a 1e-9
    tolerance keeps an exact multiple, e.g. 10 mm at 0.5 mm, at 20 voxels).
    """
    return tuple(math.ceil(margin_mm / s - 1e-9) for s in spacing)  # type: ignore[return-value]


def bounding_box(mask: Volume, labels: Sequence[int], margin_mm: float) -> Box:
    """Index box around all voxels of ``mask`` holding any of ``labels``, grown by a margin.

    Parameters
    ----------
    mask
        A label map.
    labels
        Label values to enclose (at least one).
    margin_mm
        Margin (mm, >= 0) added on both sides of each axis, converted to voxels per axis
        with :func:`margin_voxels` (anisotropic spacing gives different voxel margins).

    Returns
    -------
    Box
        ``((start_i, stop_i), (start_j, stop_j), (start_k, stop_k))``, half-open index
        ranges clipped to ``[0, size]``.

    Raises
    ------
    ValueError
        If ``labels`` is empty, the margin is negative or not finite, or none of the
        labels occurs in ``mask`` (the message names the labels and those present).
    """
    labels = [int(v) for v in labels]
    if not labels:
        raise ValueError("no labels given to crop around")
    margin = float(margin_mm)
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"crop margin must be a finite number of mm >= 0, got {margin_mm!r}")
    hit = np.isin(mask.array, labels)
    if not hit.any():
        present = [v.item() for v in np.unique(mask.array)]
        shown = present if len(present) <= 20 else [*present[:20], "..."]
        raise ValueError(f"none of the labels {labels} is present in the mask "
                         f"(labels present: {shown}); cannot crop")
    grow = margin_voxels(mask.spacing, margin)
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(hit.any(axis=other))
        start = max(0, int(idx[0]) - grow[axis])
        stop = min(mask.shape[axis], int(idx[-1]) + 1 + grow[axis])
        box.append((start, stop))
    return tuple(box)  # type: ignore[return-value]


def validate_box(box: Sequence[Sequence[int]], shape: Sequence[int]) -> Box:
    """``box`` as a :data:`Box` of ints; ValueError unless ``0 <= start < stop <= size`` per axis."""
    try:
        pairs = tuple((int(a), int(b)) for a, b in box)
    except (TypeError, ValueError):
        raise ValueError(f"a crop box is three (start, stop) pairs, got {box!r}") from None
    if len(pairs) != 3:
        raise ValueError(f"a crop box is three (start, stop) pairs, got {box!r}")
    for axis, ((start, stop), size) in enumerate(zip(pairs, shape, strict=True)):
        if not 0 <= start < stop <= size:
            raise ValueError(f"crop box axis {axis}: [{start}, {stop}) is empty or outside "
                             f"[0, {size})")
    return pairs  # type: ignore[return-value]


def crop(volume: Volume, box: Sequence[Sequence[int]]) -> Volume:
    """Crop ``volume`` to ``box`` keeping every voxel at its world position.

    The new origin is the world position (mm) of the box's first voxel; spacing and
    direction are unchanged. The array is a copy.

    Raises
    ------
    ValueError
        If ``box`` is not three non-empty ``[start, stop)`` ranges within the volume.
    """
    pairs = validate_box(box, volume.shape)
    slices = tuple(slice(a, b) for a, b in pairs)
    origin = volume.index_to_world(np.array([a for a, _ in pairs], dtype=float))[0]
    return Volume(volume.array[slices].copy(), volume.spacing, tuple(origin),
                  volume.direction.copy())


__all__ = ["Box", "bounding_box", "crop", "margin_voxels", "validate_box"]

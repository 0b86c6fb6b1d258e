"""Training cases and the datasets that sample them: 2D / 2.5D slices and 3D patches.

* :func:`encode_labels` / :func:`decode_labels` map a mask's label values to consecutive class
  indices ``0..K-1`` (0 background, ``label_values[i]`` -> ``i + 1``) and back;
* :func:`plane_axis` gives the array axis across which a plane's slices are taken
  (sagittal: LR, coronal: AP, axial: SI world axis, from the direction matrix);
* :func:`load_case` reads an image with its optional mask and weight map into a :class:`Case` (whose
  arrays may instead be handles to files, :mod:`mskseg.nn.cache`);
* :func:`foreground_indices` -- the (bounded) foreground voxels foreground-centred patches start from;
* :class:`SliceDataset` yields 2D (``n_slices=1``) or 2.5D slices along a plane, centre-padded or
  centre-cropped to one size; :class:`PatchDataset` yields 3D patches, foreground-centred with a
  given probability.

Samples are dicts of tensors: ``"image"`` float32 ``(C, *S)``, ``"target"`` int64 ``(*S)``,
``"weight"`` float32 ``(*S)`` and ``"sample_weight"`` float32 ``()``. Randomness of item ``i`` in
epoch ``e`` comes from ``np.random.default_rng([seed, e, i])`` only, so an item is the same in any
worker process and after a resume (call :meth:`set_epoch` in each process that holds the dataset).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from mskseg.io import read_volume
from mskseg.volume import Volume

if TYPE_CHECKING:
    from mskseg.nn.augment import Augmenter
    from mskseg.nn.cache import CachedArray

#: plane names; their slices are taken across the LR, AP and SI world axes
PLANES = ("sagittal", "coronal", "axial")
_PLANE_WORLD_AXIS = {"sagittal": "LR", "coronal": "AP", "axial": "SI"}


def plane_axis(direction: np.ndarray | Volume, plane: str) -> int:
    """Array axis (0, 1 or 2) normal to the slices of ``plane`` for a 3x3 direction matrix (or a Volume).

    The axis whose direction column is most nearly parallel to the plane's world axis, as
    :func:`mskseg.metrics.evaluate.fov_axis_of` finds it.

    Raises
    ------
    ValueError
        For a plane not in :data:`PLANES`.
    """
    from mskseg.metrics.evaluate import fov_axis_of  # imported here: pulls in pandas

    if plane not in _PLANE_WORLD_AXIS:
        raise ValueError(f"unknown plane {plane!r}; choose one of {', '.join(PLANES)}")
    matrix = direction.direction if isinstance(direction, Volume) else np.asarray(direction, dtype=float)
    probe = Volume(np.empty((1, 1, 1), np.uint8), (1.0, 1.0, 1.0), direction=matrix)
    return fov_axis_of(probe, _PLANE_WORLD_AXIS[plane])[0]


def encode_labels(array: np.ndarray, label_values: Sequence[int], *, source: str = "mask") -> np.ndarray:
    """Class indices (int64, same shape) of a label array: 0 stays 0, ``label_values[i]`` becomes ``i + 1``.

    Raises
    ------
    ValueError
        Naming ``source`` when the array holds a value not in ``(0, *label_values)`` or a
        non-integral value, or when ``label_values`` are not distinct positive integers.
    """
    allowed = _allowed_values(label_values)
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.view(np.uint8)
    elif a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{source}: holds non-integral values; a label map needs integers")
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iu":
        raise ValueError(f"{source}: label array of dtype {a.dtype} is not numeric")
    if a.dtype.kind == "u" and a.itemsize <= 2:  # fast path for the usual uint8 / uint16 masks
        lut = np.full(256 if a.itemsize == 1 else 65536, -1, np.int64)
        for index, value in enumerate(allowed):
            if value < len(lut):
                lut[value] = index
        out = lut[a]
        if lut.min() < 0 and out.size and out.min() < 0:
            _raise_bad(source, np.unique(a[out < 0]).tolist(), allowed)
        return out
    values = np.asarray(allowed, dtype=np.int64)
    order = np.argsort(values)
    position = np.clip(np.searchsorted(values[order], a), 0, len(values) - 1)
    bad = values[order][position] != a
    if bad.any():
        _raise_bad(source, np.unique(a[bad]).tolist(), allowed)
    return order[position].astype(np.int64, copy=False)


def decode_labels(classes: np.ndarray, label_values: Sequence[int]) -> np.ndarray:
    """Label values of class indices (inverse of :func:`encode_labels`): uint8 when every value is
    below 256, else uint16.

    Raises
    ------
    ValueError
        For a class index outside ``0..len(label_values)`` or a label value above 65535.
    """
    allowed = _allowed_values(label_values)
    if max(allowed) > 65535:
        raise ValueError(f"label values above 65535 cannot be decoded: {max(allowed)}")
    dtype = np.uint8 if max(allowed) < 256 else np.uint16
    c = np.asarray(classes)
    if c.size and (int(c.min()) < 0 or int(c.max()) >= len(allowed)):
        raise ValueError(f"class indices must lie in 0..{len(allowed) - 1}, found {int(c.min())}..{int(c.max())}")
    return np.asarray(allowed, dtype=dtype)[c.astype(np.intp, copy=False)]


def _allowed_values(label_values: Sequence[int]) -> tuple[int, ...]:
    values = tuple(label_values)
    if any(isinstance(v, bool) or int(v) != v or v <= 0 for v in values) or len(set(values)) != len(values):
        raise ValueError(f"label values must be distinct positive integers, got {list(values)}")
    return (0, *(int(v) for v in values))


def _raise_bad(source: str, bad: list, allowed: tuple[int, ...]) -> None:
    shown = ", ".join(str(v) for v in bad[:10]) + (", ..." if len(bad) > 10 else "")
    raise ValueError(f"{source}: label value{'s' if len(bad) > 1 else ''} {shown} not among the allowed values "
                     f"{', '.join(map(str, allowed))}")


@dataclass(frozen=True, eq=False)  # arrays: compare cases by identity
class Case:
    """One subject's arrays on one grid (axes in index order ``(X, Y, Z)``).

    ``image`` float32; ``target`` int64 class indices or None (inference only); ``weight`` float32
    per-voxel loss weight or None (all ones); ``spacing`` in mm; ``direction`` the 3x3 direction matrix;
    ``foreground``: the flat indices foreground-centred patches draw from, None: computed from the target
    (:func:`foreground_indices`).

    The arrays are ndarrays or handles to arrays on disk (:class:`mskseg.nn.cache.CachedArray`): the
    datasets use only what both have (``shape``, ``ndim``, ``min()``, ``take(indices, axis=)``,
    basic indexing, ``len``); :meth:`load` gives a case with every array in memory.
    """

    name: str
    image: np.ndarray | CachedArray
    target: np.ndarray | CachedArray | None
    weight: np.ndarray | CachedArray | None
    spacing: tuple[float, float, float]
    direction: np.ndarray
    foreground: np.ndarray | CachedArray | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 3:
            raise ValueError(f"case {self.name!r}: the image must be 3D, got shape {self.image.shape}")
        for what, array in (("target", self.target), ("weight", self.weight)):
            if array is not None and array.shape != self.image.shape:
                raise ValueError(f"case {self.name!r}: {what} shape {array.shape} differs from the image's "
                                 f"{self.image.shape}")

    def axis(self, plane: str) -> int:
        """Array axis normal to ``plane``'s slices (:func:`plane_axis`)."""
        return plane_axis(self.direction, plane)

    def load(self) -> Case:
        """This case with every array in memory (itself when they all are)."""
        arrays = {what: getattr(self, what) for what in ("image", "target", "weight", "foreground")}
        if all(a is None or isinstance(a, np.ndarray) for a in arrays.values()):
            return self
        return replace(self, **{what: None if a is None else np.asarray(a) for what, a in arrays.items()})


def load_case(name: str, image: Path, *, mask: Path | None = None, weight: Path | None = None,
              label_values: Sequence[int] = ()) -> tuple[Case, Volume]:
    """Read an image and its optional mask (encoded with ``label_values``) and weight map.

    Returns the :class:`Case` and the image :class:`~mskseg.volume.Volume` (the geometry for
    writing predictions).

    Raises
    ------
    ValueError
        When the mask or weight map is on another grid than the image (naming both files and the
        differences), when the mask holds a value not in ``(0, *label_values)``, or when the weight
        map holds negative or non-finite values.
    mskseg.io.VolumeReadError
        When a file cannot be read.
    """
    vol = read_volume(image)
    target = None
    weights = None
    if mask is not None:
        mask_vol = _same_grid(read_volume(mask), vol, mask, image)
        target = encode_labels(mask_vol.array, label_values, source=str(mask))
    if weight is not None:
        weights = np.asarray(_same_grid(read_volume(weight), vol, weight, image).array, dtype=np.float32)
        if not np.all(np.isfinite(weights)) or weights.min(initial=0.0) < 0:
            raise ValueError(f"{weight}: a weight map needs finite values >= 0")
    case = Case(name, np.asarray(vol.array, dtype=np.float32), target, weights, vol.spacing, vol.direction)
    return case, vol


def _same_grid(other: Volume, reference: Volume, other_path: os.PathLike | str, ref_path: os.PathLike | str
               ) -> Volume:
    problems = other.geometry_mismatches(reference)
    if problems:
        raise ValueError(f"{other_path}: its grid differs from the image {ref_path}: " + "; ".join(problems))
    return other


def in_plane_size(cases: Sequence[Case], plane: str, multiple: int = 16) -> tuple[int, int]:
    """Largest in-plane shape ``(H, W)`` over ``cases`` (the two axes besides :meth:`Case.axis`, in
    increasing order), each rounded up to a multiple of ``multiple``."""
    if not cases:
        raise ValueError("in_plane_size needs at least one case")
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    shapes = [_in_plane(case.image.shape, case.axis(plane)) for case in cases]
    return tuple(int(math.ceil(max(s[i] for s in shapes) / multiple) * multiple) for i in (0, 1))  # type: ignore


def _in_plane(shape: tuple[int, ...], axis: int) -> tuple[int, int]:
    h, w = (n for a, n in enumerate(shape) if a != axis)
    return h, w


def fit_to_size(array: np.ndarray, size: Sequence[int], value: float) -> np.ndarray:
    """Centre-crop and centre-pad (with ``value``) the last ``len(size)`` axes of ``array`` to ``size``.

    Padding before is ``(size - n) // 2``; cropping starts at ``(n - size) // 2``.
    """
    lead = array.ndim - len(size)
    crop = [slice(None)] * lead
    pad = [(0, 0)] * lead
    for n, s in zip(array.shape[lead:], size, strict=True):
        start = max((n - s) // 2, 0)
        crop.append(slice(start, start + min(n, s)))
        before = max((s - n) // 2, 0)
        pad.append((before, max(s - n, 0) - before))
    out = array[tuple(crop)]
    if any(p != (0, 0) for p in pad):
        out = np.pad(out, pad, mode="constant", constant_values=value)
    return out


#: at most this many foreground voxel indices per case are kept for foreground-centred patches
FOREGROUND_LIMIT = 1 << 20
#: the seed of the foreground sample of a case with more foreground voxels than the limit
_FOREGROUND_SEED = 0


def foreground_indices(target: np.ndarray, limit: int = FOREGROUND_LIMIT) -> np.ndarray:
    """Flat indices (ascending) of the voxels with ``target > 0``: all of them, or a seeded sample of ``limit``.

    int32 when the target has fewer than 2**31 voxels, else int64. The sample (without replacement,
    sorted) only applies to a target with more than ``limit`` foreground voxels; it bounds what a
    patch dataset keeps per case.
    """
    indices = np.flatnonzero(target).astype(np.int64 if target.size >= 2**31 else np.int32)
    if len(indices) > limit:
        rng = np.random.default_rng(_FOREGROUND_SEED)
        indices = np.sort(rng.choice(indices, size=limit, replace=False))
    return indices


def _sample(image: np.ndarray, target: np.ndarray, weight: np.ndarray, sample_weight: float) -> dict:
    return {"image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            "target": torch.from_numpy(np.ascontiguousarray(target, dtype=np.int64)),
            "weight": torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)),
            "sample_weight": torch.tensor(sample_weight, dtype=torch.float32)}


def _check_cases(cases: Sequence[Case], what: str) -> list[Case]:
    cases = list(cases)
    if not cases:
        raise ValueError(f"{what} needs at least one case")
    for case in cases:
        if case.target is None:
            raise ValueError(f"{what}: case {case.name!r} has no target (mask); training samples need one")
    return cases


class SliceDataset(Dataset):
    """All slices of all cases along ``plane``, as 2D (``n_slices=1``) or 2.5D training samples.

    Item ``i`` is slice ``k`` of case ``c`` in case-then-slice order. ``"image"`` is
    ``(n_slices, H, W)``: slices ``k - n_slices // 2 .. k + n_slices // 2`` (indices clamped to the
    volume) in increasing order; ``"target"`` and ``"weight"`` are slice ``k``. Slices are
    centre-padded to ``size`` (image: the case's minimum, target: 0, weight: 1.0) or centre-cropped,
    then augmented with randomness ``np.random.default_rng([seed, epoch, i])``.

    Raises
    ------
    ValueError
        For an even or non-positive ``n_slices``, no cases, or a case without a target.
    """

    def __init__(self, cases: Sequence[Case], plane: str, *, n_slices: int = 1, size: tuple[int, int] | None = None,
                 multiple: int = 16, augment: Augmenter | None = None, seed: int = 0) -> None:
        if not isinstance(n_slices, int) or n_slices < 1 or n_slices % 2 == 0:
            raise ValueError(f"n_slices must be an odd integer >= 1, got {n_slices!r}")
        self.cases = _check_cases(cases, "SliceDataset")
        self.plane = plane
        self.n_slices = n_slices
        self.axes = [case.axis(plane) for case in self.cases]
        self.size: tuple[int, int] = (tuple(int(s) for s in size) if size is not None  # type: ignore[assignment]
                                      else in_plane_size(self.cases, plane, multiple))
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size must be two positive integers, got {size!r}")
        self.minima = [float(case.image.min()) for case in self.cases]
        counts = [case.image.shape[a] for case, a in zip(self.cases, self.axes, strict=True)]
        self._case_of = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
        self._slice_of = np.concatenate([np.arange(n, dtype=np.int32) for n in counts])
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the augmentation draws of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._case_of)

    def locate(self, index: int) -> tuple[int, int]:
        """``(case number, slice index)`` of item ``index``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} slices")
        index %= len(self)
        return int(self._case_of[index]), int(self._slice_of[index])

    def __getitem__(self, index: int) -> dict:
        c, k = self.locate(index)
        index %= len(self)
        case, axis, half = self.cases[c], self.axes[c], self.n_slices // 2
        n = case.image.shape[axis]
        neighbours = np.clip(np.arange(k - half, k + half + 1), 0, n - 1)
        image = np.moveaxis(case.image.take(neighbours, axis=axis), axis, 0)
        image = fit_to_size(image, self.size, self.minima[c])
        target = fit_to_size(case.target.take(k, axis=axis), self.size, 0)
        if case.weight is None:
            weight = np.ones(self.size, np.float32)
        else:
            weight = fit_to_size(case.weight.take(k, axis=axis), self.size, 1.0)
        sample_weight = 1.0
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, target, weight, sample_weight = self.augment(image, target, weight, rng)
        return _sample(image, target, weight, sample_weight)


class PatchDataset(Dataset):
    """Random 3D patches: ``samples_per_case`` items per case (item ``i`` from case ``i // samples_per_case``).

    With probability ``foreground_fraction`` a patch is centred on a random foreground voxel
    (target > 0), its start clipped so that it stays inside the volume (the voxel stays inside the
    patch); otherwise it starts anywhere. Volumes smaller than the patch along an axis are
    centre-padded (image: the case's minimum, target: 0, weight: 1.0). ``"image"`` is
    ``(1, D, H, W)`` with ``(D, H, W) = patch_size`` along array axes 0, 1, 2. With ``centres`` (per case a
    ``(n, 3)`` voxel-index array, e.g. landmarks) every patch is centred on one of them, shifted by up to
    ``jitter_voxels`` per axis. All draws come from ``np.random.default_rng([seed, epoch, i])``.

    Raises
    ------
    ValueError
        For no cases, a case without a target, a non-positive patch size or ``samples_per_case``,
        or ``foreground_fraction`` outside [0, 1].
    """

    def __init__(self, cases: Sequence[Case], patch_size: tuple[int, int, int], *, samples_per_case: int = 4,
                 foreground_fraction: float = 0.5, augment: Augmenter | None = None, seed: int = 0,
                 centres: Sequence[np.ndarray] | None = None, jitter_voxels: Sequence[float] = (0, 0, 0)) -> None:
        self.cases = _check_cases(cases, "PatchDataset")
        self.centres = None if centres is None else [np.asarray(c, dtype=np.int64).reshape(-1, 3) for c in centres]
        if self.centres is not None and (len(self.centres) != len(self.cases) or not all(map(len, self.centres))):
            raise ValueError("centres must give at least one patch centre for each case")
        self.jitter = np.asarray(jitter_voxels, dtype=float).reshape(3)
        self.patch_size = tuple(int(p) for p in patch_size)
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be three positive integers, got {patch_size!r}")
        if samples_per_case < 1:
            raise ValueError(f"samples_per_case must be >= 1, got {samples_per_case}")
        if not 0 <= foreground_fraction <= 1:
            raise ValueError(f"foreground_fraction must lie in [0, 1], got {foreground_fraction}")
        self.samples_per_case = int(samples_per_case)
        self.foreground_fraction = float(foreground_fraction)
        self.minima = [float(case.image.min()) for case in self.cases]
        # flat indices of foreground voxels, for foreground-centred patches
        self._foreground = [case.foreground if case.foreground is not None else foreground_indices(case.target)
                            for case in self.cases]
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the patch positions and augmentation draws of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.cases) * self.samples_per_case

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} patches")
        index %= len(self)
        c = index // self.samples_per_case
        case = self.cases[c]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        shape = np.asarray(case.image.shape)
        patch = np.asarray(self.patch_size)
        last_start = np.maximum(shape - patch, 0)
        foreground = self._foreground[c]
        if self.centres is not None:
            points = self.centres[c]
            shift = np.rint(rng.uniform(-self.jitter, self.jitter)).astype(np.int64)
            start = np.clip(points[rng.integers(len(points))] + shift - patch // 2, 0, last_start)
        elif rng.random() < self.foreground_fraction and len(foreground):
            centre = np.asarray(np.unravel_index(int(foreground[rng.integers(len(foreground))]), case.image.shape))
            start = np.clip(centre - patch // 2, 0, last_start)
        else:
            start = np.array([rng.integers(0, n + 1) for n in last_start])
        box = tuple(slice(int(s), int(s + p)) for s, p in zip(start, patch, strict=True))
        # C-ordered copies, from memory or from disk alike (a mean in the augmentation adds in memory order)
        image = fit_to_size(np.ascontiguousarray(case.image[box]), self.patch_size, self.minima[c])[None]
        target = fit_to_size(np.ascontiguousarray(case.target[box]), self.patch_size, 0)
        if case.weight is None:
            weight = np.ones(self.patch_size, np.float32)
        else:
            weight = fit_to_size(np.ascontiguousarray(case.weight[box]), self.patch_size, 1.0)
        sample_weight = 1.0
        if self.augment is not None:
            image, target, weight, sample_weight = self.augment(image, target, weight, rng)
        return _sample(image, target, weight, sample_weight)

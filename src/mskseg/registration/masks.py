"""Bone masks prepared for registration: one structure, optional mirroring, a working grid.

Registration works on one structure (e.g. ``femur``) of a label mask at an isotropic
*working spacing* (e.g. 1 mm), on a grid cropped to the structure plus a margin. The image
registered is the fraction of each working voxel that lies inside the structure (the
binary mask smoothed by a Gaussian of half a working voxel and resampled linearly), which
gives the metric smooth gradients; overlaps (Dice) are measured on that fraction > 0.5.

Left/right structures share one shape model by *mirroring*: the left member's geometry is
reflected through the world plane ``x = 0`` (``x -> -x``; LPS, so left <-> right) without
touching its voxels. A mirrored mask is a right-looking structure in a mirrored world; its
points are mapped back with :func:`mirror_points` (the reflection is its own inverse).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from mskseg.io.volumes import from_sitk, to_sitk
from mskseg.volume import Volume

#: the reflection ``x -> -x`` in world coordinates (LPS: left <-> right)
MIRROR = np.diag([-1.0, 1.0, 1.0])


class EmptyStructureError(ValueError):
    """The structure to register has no voxel in the mask."""


def mirror_points(points: np.ndarray) -> np.ndarray:
    """World points ``(N, 3)`` reflected through ``x = 0`` (its own inverse)."""
    return np.asarray(points, dtype=float) @ MIRROR.T


def mirror_volume(volume: Volume) -> Volume:
    """The same voxels in the mirrored world: ``origin`` and ``direction`` reflected."""
    origin = MIRROR @ np.asarray(volume.origin, dtype=float)
    direction = MIRROR @ np.asarray(volume.direction, dtype=float)
    return Volume(volume.array, volume.spacing, tuple(origin), direction)


def structure_mask(mask: Volume, label: int, *, mirror: bool = False, name: str | None = None) -> Volume:
    """Binary ``uint8`` mask of ``mask == label``, mirrored if asked.

    Raises :class:`EmptyStructureError` naming the structure when no voxel has the label.
    """
    binary = (np.asarray(mask.array) == label).astype(np.uint8)
    if not binary.any():
        raise EmptyStructureError(f"structure {name or label!r} (label {label}) is empty in the mask")
    out = mask.with_array(binary)
    return mirror_volume(out) if mirror else out


def _box_with_margin(binary: np.ndarray, spacing: Sequence[float], margin_mm: float) -> list[tuple[int, int]]:
    box = []
    for axis in range(binary.ndim):
        hits = np.flatnonzero(np.any(binary, axis=tuple(a for a in range(binary.ndim) if a != axis)))
        pad = int(np.ceil(margin_mm / float(spacing[axis])))
        box.append((int(hits[0]) - pad, int(hits[-1]) + 1 + pad))
    return box


def crop_to_structure(binary: Volume, margin_mm: float, *, pad: bool = True) -> Volume:
    """The part of a binary mask around its non-zero voxels (plus ``margin_mm``), same world.

    Everything cut away is 0, so smoothing and resampling the crop gives the same values as
    the whole volume at a fraction of the cost. With ``pad`` the crop may extend beyond the
    volume (filled with 0); without, it stops at the volume's border (so a structure cut by
    the field of view still touches the border of the crop).
    """
    arr = np.asarray(binary.array)
    box = _box_with_margin(arr, binary.spacing, margin_mm)
    if not pad:
        box = [(max(0, lo), min(n, hi)) for (lo, hi), n in zip(box, arr.shape, strict=True)]
    pad = [(max(0, -lo), max(0, hi - n)) for (lo, hi), n in zip(box, arr.shape, strict=True)]
    sl = tuple(slice(max(0, lo), min(n, hi)) for (lo, hi), n in zip(box, arr.shape, strict=True))
    cropped = np.pad(arr[sl], pad)
    start = np.array([b[0] for b in box], dtype=float)
    origin = binary.index_to_world(start[None, :])[0]
    return Volume(cropped, binary.spacing, tuple(origin), binary.direction)


def working_grid(binary: Volume, spacing_mm: float, margin_mm: float) -> sitk.Image:
    """An empty isotropic grid (``spacing_mm``) over the structure's bounding box plus ``margin_mm``.

    The grid keeps the mask's direction; it may reach beyond the mask's own extent (the
    margin is then outside the field of view, which resampling fills with 0).
    """
    box = _box_with_margin(np.asarray(binary.array), binary.spacing, margin_mm)
    lo = np.array([b[0] for b in box], dtype=float) - 0.5
    hi = np.array([b[1] for b in box], dtype=float) - 0.5
    extent_mm = (hi - lo) * np.asarray(binary.spacing, dtype=float)
    size = [max(2, int(np.ceil(e / spacing_mm))) for e in extent_mm]
    corner = binary.index_to_world(lo[None, :])[0]
    direction = np.asarray(binary.direction, dtype=float)
    origin = corner + direction @ (np.full(3, 0.5 * spacing_mm))
    grid = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    grid.SetSpacing([float(spacing_mm)] * 3)
    grid.SetOrigin([float(o) for o in origin])
    grid.SetDirection([float(v) for v in direction.ravel()])
    return grid


def fraction_image(binary: Volume, grid: sitk.Image, transform: sitk.Transform | None = None) -> sitk.Image:
    """Inside fraction of the structure on ``grid`` (float32 in [0, 1]).

    The binary mask is smoothed by a Gaussian of half the grid spacing (in mm, so
    anisotropic input is handled) and resampled linearly; ``transform`` (grid points to mask
    points, ITK convention) resamples it through a mapping.
    """
    sigma = 0.5 * float(grid.GetSpacing()[0])
    image = sitk.Cast(to_sitk(crop_to_structure(binary, 3 * sigma + 2 * max(binary.spacing))), sitk.sitkFloat32)
    if sigma > 0.5 * min(binary.spacing):
        image = sitk.SmoothingRecursiveGaussian(image, sigma)
    return sitk.Resample(image, grid, transform or sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def working_image(binary: Volume, spacing_mm: float, margin_mm: float) -> sitk.Image:
    """The structure's inside fraction on its own cropped isotropic working grid."""
    return fraction_image(binary, working_grid(binary, spacing_mm, margin_mm))


def to_binary(fraction: sitk.Image) -> np.ndarray:
    """Boolean array (ITK index order) of ``fraction > 0.5``."""
    return from_sitk(fraction).array > 0.5


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays (1.0 when both are empty)."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total

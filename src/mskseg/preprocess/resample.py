"""Resampling of volumes to a new spacing or onto another volume's grid.

All resampling goes through SimpleITK in world coordinates (mm), so a volume's
direction and origin are honoured and the result lies in the same physical space.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from mskseg.io.volumes import from_sitk, to_sitk
from mskseg.volume import Volume

#: interpolator name -> SimpleITK interpolator
INTERPOLATORS: dict[str, int] = {
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,  # cubic B-spline (same as sitkBSpline3)
    "nearest": sitk.sitkNearestNeighbor,
    "label_gaussian": sitk.sitkLabelGaussian,
}
#: interpolators meant for label maps: the output keeps the input dtype
LABEL_INTERPOLATORS = frozenset({"nearest", "label_gaussian"})


def validate_interpolator(interpolator: str) -> str:
    """Return ``interpolator`` if it is one of :data:`INTERPOLATORS`, else raise ValueError."""
    if interpolator not in INTERPOLATORS:
        raise ValueError(f"unknown interpolator {interpolator!r}; expected one of "
                         f"{', '.join(repr(k) for k in INTERPOLATORS)}")
    return interpolator


def validate_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    """Three positive finite spacings in mm as a tuple of floats.

    Raises
    ------
    ValueError
        If ``spacing`` is not three numbers, or any is zero, negative, NaN or infinite.
    """
    problem = "spacing must be three positive finite numbers (mm, one per index axis)"
    if isinstance(spacing, (str, bytes)):
        raise ValueError(f"{problem}, got {spacing!r}")
    try:
        values = np.asarray(spacing, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{problem}, got {spacing!r}") from None
    if values.shape != (3,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{problem}, got {spacing!r}")
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def resampled_grid(volume: Volume, spacing: Sequence[float]) -> Volume:
    """An empty (uint8 zeros) volume with the corner-aligned grid of ``volume`` at ``spacing``.

    The new size along axis ``a`` is ``round(size[a] * spacing_old[a] / spacing[a])`` (at
    least 1); the origin moves by ``(spacing[a] - spacing_old[a]) / 2`` along axis ``a``'s
    world direction so that the outer boundary of the grid (the voxel corners, not the
    voxel centres) stays in place. When the size is rounded, the far boundary moves by at
    most half a new voxel. The direction is unchanged.
    """
    new_spacing = np.asarray(validate_spacing(spacing))
    old_spacing = np.asarray(volume.spacing)
    size = np.asarray(volume.shape, dtype=float)
    new_size = np.maximum(1, np.round(size * old_spacing / new_spacing)).astype(int)
    origin = np.asarray(volume.origin) + volume.direction @ ((new_spacing - old_spacing) / 2.0)
    return Volume(np.zeros(tuple(new_size), dtype=np.uint8), tuple(new_spacing),
                  tuple(origin), volume.direction.copy())


def resample(volume: Volume, spacing: Sequence[float], interpolator: str,
             default_value: float = 0.0) -> Volume:
    """Resample ``volume`` to ``spacing`` over the same physical extent.

    Parameters
    ----------
    volume
        The volume to resample.
    spacing
        New spacing in mm, one value per index axis (three positive finite numbers).
    interpolator
        ``"linear"`` or ``"bspline"`` (cubic B-spline) for images: the output is float32.
        ``"nearest"`` or ``"label_gaussian"`` (SimpleITK's ``sitkLabelGaussian``, a
        smooth label vote; SimpleITK sets sigma to the input spacing per axis, alpha 1) for masks:
        the output keeps the input dtype (bool included) and only holds input values.
    default_value
        Value of output voxels whose centre falls outside the input's grid (only
        possible within half a voxel of the boundary when the size was rounded).

    Returns
    -------
    Volume
        On the grid of :func:`resampled_grid`: corner-aligned, same direction.

    Raises
    ------
    ValueError
        On a bad spacing or an unknown interpolator.
    """
    validate_interpolator(interpolator)
    grid = resampled_grid(volume, spacing)
    return resample_like(volume, grid, interpolator, default_value=default_value)


def resample_like(volume: Volume, reference: Volume, interpolator: str,
                  default_value: float = 0.0) -> Volume:
    """Resample ``volume`` onto the grid (shape, spacing, origin, direction) of ``reference``.

    Voxels of ``reference``'s grid are filled by interpolating ``volume`` at their world
    positions (mm); those outside ``volume`` get ``default_value``. ``reference``'s array
    values are not used. Dtype rules and interpolators as in :func:`resample`. The result
    carries exactly ``reference``'s geometry.
    """
    validate_interpolator(interpolator)
    image = to_sitk(volume)
    if interpolator in LABEL_INTERPOLATORS:
        out_type = image.GetPixelID()
        dtype = volume.array.dtype
    else:
        image = sitk.Cast(image, sitk.sitkFloat32)
        out_type = sitk.sitkFloat32
        dtype = np.dtype(np.float32)
    ref = to_sitk(Volume(np.zeros(reference.shape, dtype=np.uint8), reference.spacing,
                         reference.origin, reference.direction))
    f = sitk.ResampleImageFilter()
    f.SetReferenceImage(ref)
    f.SetInterpolator(INTERPOLATORS[interpolator])
    f.SetOutputPixelType(out_type)
    f.SetDefaultPixelValue(float(default_value))
    f.SetTransform(sitk.Transform(3, sitk.sitkIdentity))
    array = from_sitk(f.Execute(image)).array
    if array.dtype != dtype:
        array = array.astype(dtype)
    return Volume(array, reference.spacing, reference.origin, reference.direction.copy())


def physical_extent(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """World positions (mm) of the outer corners of voxel ``(0,0,0)`` and of the last voxel.

    That is the grid boundary points at continuous indices ``-0.5`` and ``size - 0.5``.
    """
    lo = volume.index_to_world(np.full(3, -0.5))[0]
    hi = volume.index_to_world(np.asarray(volume.shape, dtype=float) - 0.5)[0]
    return lo, hi


__all__ = ["INTERPOLATORS", "LABEL_INTERPOLATORS", "physical_extent", "resample", "resample_like",
           "resampled_grid", "validate_interpolator", "validate_spacing"]

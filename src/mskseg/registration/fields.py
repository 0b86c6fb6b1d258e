"""Mappings made of an affine and a displacement field: compose, apply, invert, save, load.

A registration result is ``T(x) = A(x + u(x))``: ``u`` a displacement field on the fixed
(reference) grid in mm, ``A`` an affine, ``x`` a physical point of the reference and
``T(x)`` the corresponding point of the subject (ITK convention: fixed to moving). Points
sampled on the reference surface are therefore carried to a subject by ``T`` itself — the
*inverse* of the mapping that warps the subject's mask onto the reference.

On disk: the affine as an ITK transform file (``.tfm``, readable by SimpleITK, ITK, 3D
Slicer) and the field as a 3-component float32 NIfTI vector image in mm (LPS).
"""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from mskseg.io.atomic import atomic_path
from mskseg.registration.affine import to_affine, transform_points


def full_transform(affine: sitk.Transform, field_image: sitk.Image | None) -> sitk.Transform:
    """``T(x) = affine(x + field(x))`` as one SimpleITK transform (fixed -> moving).

    The field image is copied (a :class:`sitk.DisplacementFieldTransform` takes its
    argument over). Outside the field's grid the displacement is 0.
    """
    if field_image is None:
        return sitk.AffineTransform(to_affine(affine))
    disp = sitk.DisplacementFieldTransform(sitk.Cast(field_image, sitk.sitkVectorFloat64))
    composite = sitk.CompositeTransform(3)
    composite.AddTransform(to_affine(affine))  # applied last
    composite.AddTransform(disp)  # applied first
    return composite


def warp_points(points: np.ndarray, affine: sitk.Transform, field_image: sitk.Image | None) -> np.ndarray:
    """Carry reference points ``(N, 3)`` (mm) to the subject: ``A(x + u(x))``."""
    return transform_points(full_transform(affine, field_image), points)


def warp_image(moving: sitk.Image, grid: sitk.Image, affine: sitk.Transform, field_image: sitk.Image | None,
               interpolator: int = sitk.sitkLinear) -> sitk.Image:
    """The moving image resampled through ``T`` onto ``grid`` (aligned with the reference)."""
    return sitk.Resample(moving, grid, full_transform(affine, field_image), interpolator, 0.0,
                         moving.GetPixelID())


def invert_field(field_image: sitk.Image, iterations: int = 50, tolerance_mm: float = 1e-3) -> sitk.Image:
    """Inverse displacement field on the same grid (fixed-point iteration, ITK).

    If ``y = x + u(x)`` then ``x = y + v(y)``: use it to bring subject points back to the
    reference (with the inverse affine applied first).
    """
    f = sitk.InvertDisplacementFieldImageFilter()
    f.SetMaximumNumberOfIterations(int(iterations))
    f.SetMeanErrorToleranceThreshold(float(tolerance_mm))
    f.SetMaxErrorToleranceThreshold(float(tolerance_mm) * 10)
    f.SetEnforceBoundaryCondition(True)
    return f.Execute(sitk.Cast(field_image, sitk.sitkVectorFloat64))


def inverse_points(points: np.ndarray, affine: sitk.Transform, field_image: sitk.Image | None) -> np.ndarray:
    """Subject points back to the reference: ``T^-1(y) = z + v(z)`` with ``z = A^-1(y)``."""
    z = transform_points(to_affine(affine).GetInverse(), points)
    if field_image is None:
        return z
    return transform_points(sitk.DisplacementFieldTransform(invert_field(field_image)), z)


def jacobian_determinant(field_image: sitk.Image) -> np.ndarray:
    """Jacobian determinant of ``x -> x + u(x)`` per voxel (array in ``(k, j, i)`` order).

    Central differences in physical mm along the grid axes, rotated into world axes by the
    grid's direction, so the value is the local volume change (1 = none, <= 0 = folding).
    """
    u = sitk.GetArrayFromImage(field_image).astype(np.float64)  # (k, j, i, 3) world components
    spacing = field_image.GetSpacing()[::-1]
    # d u_c / d (index axis a), a in (k, j, i) order, scaled to mm along the grid axis
    grads = np.stack([np.stack(np.gradient(u[..., c], *spacing), axis=-1) for c in range(3)], axis=-2)
    grads = grads[..., ::-1]  # last axis now (i, j, k) grid axes
    direction = np.array(field_image.GetDirection()).reshape(3, 3)
    jac = grads @ direction.T + np.eye(3)  # d u / d world = (d u / d grid) D^T
    return np.linalg.det(jac)


def jacobian_stats(field_image: sitk.Image) -> dict[str, float]:
    """Minimum, maximum and share of non-positive Jacobian determinants of ``x -> x + u(x)``.

    A share above 0 means the mapping folds (it is not a diffeomorphism there).
    """
    jac = jacobian_determinant(field_image)
    return {"jacobian_min": float(jac.min()), "jacobian_max": float(jac.max()),
            "folding_fraction": float(np.mean(jac <= 0))}


def write_transform(affine: sitk.Transform, path: str | os.PathLike[str]) -> None:
    """Affine as an ITK ``.tfm`` text file, written atomically."""
    with atomic_path(path) as tmp:
        sitk.WriteTransform(to_affine(affine), str(tmp))


def read_transform(path: str | os.PathLike[str]) -> sitk.AffineTransform:
    """An affine written by :func:`write_transform` (or any ITK linear transform file)."""
    try:
        tx = sitk.ReadTransform(str(path))
    except RuntimeError as err:
        raise ValueError(f"{path}: not a readable ITK transform file ({str(err).strip().splitlines()[-1]})") from err
    try:
        return to_affine(tx.Downcast() if hasattr(tx, "Downcast") else tx)
    except RuntimeError as err:
        raise ValueError(f"{path}: not a linear transform") from err


def write_field(field_image: sitk.Image, path: str | os.PathLike[str]) -> None:
    """Displacement field as a float32 vector NIfTI (mm), written atomically."""
    with atomic_path(path) as tmp:
        sitk.WriteImage(sitk.Cast(field_image, sitk.sitkVectorFloat32), str(tmp), True)


def read_field(path: str | os.PathLike[str]) -> sitk.Image:
    """A displacement field written by :func:`write_field` (as sitkVectorFloat64)."""
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise ValueError(f"{path}: not a readable image ({str(err).strip().splitlines()[-1]})") from err
    if image.GetNumberOfComponentsPerPixel() != 3 or image.GetDimension() != 3:
        raise ValueError(f"{path}: not a 3D displacement field (need 3 components per voxel)")
    return sitk.Cast(image, sitk.sitkVectorFloat64)

"""ANTs backend: the returned (affine, field) follow T(x) = A(x + u(x)), fixed -> moving.

The phantoms are analytic: a moving image is ``shape(S(y))`` for a known map ``S`` from
moving to fixed points, so the true fixed -> moving mapping is ``S^-1``. Grids have rotated
directions, non-zero origins and (for the moving image) anisotropic spacing; intensities
are partial-volume fractions (2x2x2 supersampling), as for the workflow's mask images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from mskseg.registration.ants_backend import (
    AntsSettings,
    ants_to_sitk,
    linear_to_affine,
    register_ants,
    sitk_to_ants,
)

ants = pytest.importorskip("ants")  # antspyx is optional

CENTRE = np.array([40.0, 10.0, 40.0])
SEMI_AXES = np.array([22.0, 16.0, 13.0])
BUMP_CENTRE, BUMP_RADIUS = CENTRE + np.array([0.0, 14.0, 6.0]), 6.0
FIXED_VOXEL_MM = 1.5


def _shape(p: np.ndarray) -> np.ndarray:
    """Inside (1) / outside (0) of an ellipsoid with a spherical bump, at points ``(N, 3)`` mm."""
    ellipsoid = np.sum(((p - CENTRE) / SEMI_AXES) ** 2, axis=1) < 1.0
    return (ellipsoid | (np.linalg.norm(p - BUMP_CENTRE, axis=1) < BUMP_RADIUS)).astype(np.float32)


def _grid(size, spacing, angles) -> sitk.Image:
    """An empty float32 grid centred on CENTRE with a rotated direction."""
    image = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    image.SetSpacing([float(s) for s in spacing])
    direction = np.asarray(sitk.Euler3DTransform((0, 0, 0), *angles).GetMatrix()).reshape(3, 3)
    image.SetDirection(direction.ravel().tolist())
    image.SetOrigin((CENTRE - direction @ ((np.asarray(size) - 1) * np.asarray(spacing) / 2)).tolist())
    return image


def _fraction_image(grid: sitk.Image, to_shape) -> sitk.Image:
    """``mean(shape(to_shape(y)))`` over 2x2x2 sub-voxel points ``y`` of each voxel of ``grid``."""
    size, spacing = np.asarray(grid.GetSize()), np.asarray(grid.GetSpacing())
    direction = np.asarray(grid.GetDirection()).reshape(3, 3)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), -1).reshape(-1, 3)
    total = np.zeros(len(idx))
    for offset in np.stack(np.meshgrid(*[[-0.25, 0.25]] * 3, indexing="ij"), -1).reshape(-1, 3):
        points = np.asarray(grid.GetOrigin()) + ((idx + offset) * spacing) @ direction.T
        total += _shape(to_shape(points))
    out = sitk.GetImageFromArray((total / 8).reshape(size).transpose(2, 1, 0).astype(np.float32))
    out.CopyInformation(grid)
    return out


def _affine(angles, scales, translation) -> tuple[np.ndarray, sitk.AffineTransform]:
    """A known affine about CENTRE as a numpy function of points ``(N, 3)`` and as a sitk transform."""
    matrix = np.asarray(sitk.Euler3DTransform((0, 0, 0), *angles).GetMatrix()).reshape(3, 3) @ np.diag(scales)
    t = sitk.AffineTransform(matrix.ravel().tolist(), list(translation), CENTRE.tolist())
    return (lambda p: (p - CENTRE) @ matrix.T + CENTRE + np.asarray(translation)), t


def _smooth(p: np.ndarray, amplitude: float = 3.0) -> np.ndarray:
    q = p - CENTRE
    return amplitude * np.stack([np.sin(q[:, 1] / 12), np.sin(q[:, 2] / 10), np.cos(q[:, 0] / 14)], axis=1)


def _surface_points(n: int = 400) -> np.ndarray:
    """Points on the fixed shape's ellipsoid surface, away from the bump (mm)."""
    k = np.arange(n) + 0.5
    z, phi = 1 - 2 * k / n, np.pi * (1 + 5**0.5) * k
    u = np.stack([np.sqrt(1 - z**2) * np.cos(phi), np.sqrt(1 - z**2) * np.sin(phi), z], axis=1)
    points = CENTRE + u * SEMI_AXES
    return points[np.linalg.norm(points - BUMP_CENTRE, axis=1) > BUMP_RADIUS + 3]


def _composite(affine: sitk.Transform, field: sitk.Image) -> sitk.CompositeTransform:
    """T(x) = affine(x + field(x)): the composite applies the last added (the field) first."""
    return sitk.CompositeTransform([affine, sitk.DisplacementFieldTransform(sitk.Image(field))])


def _negated(field: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(-sitk.GetArrayFromImage(field), isVector=True)
    out.CopyInformation(field)
    return out


def _map(transform: sitk.Transform, points: np.ndarray) -> np.ndarray:
    return np.array([transform.TransformPoint(p.tolist()) for p in points])


def _surface_distance(mask: sitk.Image, points: np.ndarray) -> np.ndarray:
    """|distance| (mm) of points to the 0.5 level of ``mask`` (mean of both signed distance maps)."""
    binary = mask > 0.5
    maps = [sitk.SignedMaurerDistanceMap(b, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
            for b in (binary, binary == 0)]
    phi = (maps[0] - maps[1]) / 2
    return np.abs([phi.EvaluateAtPhysicalPoint(p.tolist(), sitk.sitkLinear) for p in points])


def _dice(a: sitk.Image, b: sitk.Image) -> float:
    x, y = sitk.GetArrayFromImage(a) > 0.5, sitk.GetArrayFromImage(b) > 0.5
    return 2.0 * np.sum(x & y) / (x.sum() + y.sum())


@pytest.fixture(scope="module")
def fixed() -> sitk.Image:
    return _fraction_image(_grid((48, 48, 48), (FIXED_VOXEL_MM,) * 3, (0.3, -0.2, 0.5)), lambda p: p)


MOVING_GRID = ((44, 40, 36), (1.6, 1.8, 2.0), (-0.2, 0.1, 0.3))
#: moving -> fixed points (rotation, anisotropic scaling, translation in mm)
B_NP, B_SITK = _affine((0.08, -0.05, 0.1), (1.05, 0.95, 1.0), (5.0, -4.0, 3.0))


@pytest.fixture(scope="module")
def deformed() -> sitk.Image:
    """shape(S(y)) with S(y) = B(y) + d(B(y)): a known affine plus a smooth deformation."""
    return _fraction_image(_grid(*MOVING_GRID), lambda p: B_NP(p) + _smooth(B_NP(p)))


@pytest.fixture(scope="module")
def affine_only() -> sitk.Image:
    return _fraction_image(_grid(*MOVING_GRID), B_NP)


def test_image_conversion_keeps_geometry_and_index_order(deformed: sitk.Image) -> None:
    image = sitk_to_ants(deformed)
    assert image.numpy()[3, 5, 7] == deformed[3, 5, 7]  # ANTs (i, j, k) == sitk image[i, j, k]
    ijk = (10, 20, 30)
    assert np.allclose(ants.transform_index_to_physical_point(image, ijk),
                       deformed.TransformIndexToPhysicalPoint(ijk), atol=1e-4)
    back = ants_to_sitk(image)
    assert back.GetOrigin() == deformed.GetOrigin() and back.GetSpacing() == deformed.GetSpacing()
    assert np.allclose(back.GetDirection(), deformed.GetDirection(), atol=1e-12)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(deformed))


@pytest.mark.parametrize("shrink", [None, (4, 2, 2)], ids=["default-levels", "coarse-last-level"])
def test_deformed_pair_is_registered(fixed: sitk.Image, deformed: sitk.Image, shrink) -> None:
    affine, field, info = register_ants(fixed, deformed, AntsSettings(shrink_factors=shrink))
    assert isinstance(affine, sitk.AffineTransform)
    assert field.GetPixelID() == sitk.sitkVectorFloat64 and field.GetNumberOfComponentsPerPixel() == 3
    assert (field.GetSize(), field.GetSpacing(), field.GetOrigin(), field.GetDirection()) == (
        fixed.GetSize(), fixed.GetSpacing(), fixed.GetOrigin(), fixed.GetDirection())
    assert info["backend"] == "ants" and info["antspyx_version"] == ants.__version__
    assert info["transform"] == "SyN" and info["iterations"] == [40, 20, 0] and info["seconds"] > 0
    assert info["field_resampled"] is (shrink is not None)
    transform = _composite(affine, field)
    before = _dice(sitk.Resample(deformed, fixed, sitk.Transform(), sitk.sitkLinear, 0.0), fixed)
    after = _dice(sitk.Resample(deformed, fixed, transform, sitk.sitkLinear, 0.0), fixed)
    assert before < 0.85 and after >= 0.95
    # (b) fixed surface points land on the moving surface; the inverse use of the result does not
    points = _surface_points()
    error = _surface_distance(deformed, _map(transform, points)).mean()
    inverted = _surface_distance(deformed, _map(_composite(affine.GetInverse(), _negated(field)), points)).mean()
    assert error < FIXED_VOXEL_MM and inverted > 3 * FIXED_VOXEL_MM
    # T(x) = A(x + u(x)) per point, as the composite computes it
    x = points[0]
    assert np.allclose(transform.TransformPoint(x.tolist()),
                       affine.TransformPoint((x + field.EvaluateAtPhysicalPoint(x.tolist(), sitk.sitkLinear)).tolist()))


def test_known_affine_is_recovered_in_fixed_to_moving_direction(fixed: sitk.Image, affine_only: sitk.Image) -> None:
    affine, field, _ = register_ants(fixed, affine_only, AntsSettings())
    points = _surface_points()
    truth = _map(B_SITK.GetInverse(), points)  # moving = shape(B(y)): fixed x -> moving B^-1(x)
    error = np.linalg.norm(_map(_composite(affine, field), points) - truth, axis=1).mean()
    affine_error = np.linalg.norm(_map(affine, points) - truth, axis=1).mean()
    inverted = np.linalg.norm(_map(_composite(affine.GetInverse(), _negated(field)), points) - truth, axis=1).mean()
    assert error < FIXED_VOXEL_MM and affine_error < 2 * FIXED_VOXEL_MM
    assert inverted > 5 * FIXED_VOXEL_MM and inverted > 5 * error


def test_matches_ants_own_transforms(fixed: sitk.Image, deformed: sitk.Image, tmp_path) -> None:
    """ANTs' fwdtransforms [warp, affine] act on points as A(x + u(x)), which is our composite."""
    reg = ants.registration(sitk_to_ants(fixed), sitk_to_ants(deformed), "SyN", syn_metric="meansquares",
                            reg_iterations=(20, 0), outprefix=str(tmp_path / "r_"), random_seed=1)
    warp, affine_file = reg["fwdtransforms"]
    assert warp.endswith("1Warp.nii.gz") and affine_file.endswith("0GenericAffine.mat")
    field = sitk.Cast(sitk.ReadImage(warp), sitk.sitkVectorFloat64)
    assert field.GetSize() == fixed.GetSize()
    field.CopyInformation(fixed)
    transform = _composite(linear_to_affine(sitk.ReadTransform(affine_file)), field)
    points = _surface_points()[:50]
    theirs = ants.apply_transforms_to_points(3, pd.DataFrame(points, columns=["x", "y", "z"]),
                                             reg["fwdtransforms"]).to_numpy()
    assert np.abs(theirs - _map(transform, points)).max() < 1e-3
    warped = ants_to_sitk(ants.apply_transforms(sitk_to_ants(fixed), sitk_to_ants(deformed), reg["fwdtransforms"]))
    ours = sitk.Resample(deformed, fixed, transform, sitk.sitkLinear, 0.0)
    assert np.abs(sitk.GetArrayFromImage(warped) - sitk.GetArrayFromImage(ours)).max() < 1e-3


def test_initial_transform_is_honoured(fixed: sitk.Image) -> None:
    shift = np.array([25.0, -20.0, 15.0])  # moving = fixed shape moved by +shift: T(x) = x + shift
    size, spacing, angles = MOVING_GRID
    grid = _grid(size, spacing, angles)
    grid.SetOrigin((np.asarray(grid.GetOrigin()) + shift).tolist())
    moving = _fraction_image(grid, lambda p: p - shift)
    settings = AntsSettings(transform="SyNOnly")
    affine, field, _ = register_ants(fixed, moving, settings)  # SyN alone cannot bridge 35 mm
    assert _dice(sitk.Resample(moving, fixed, _composite(affine, field), sitk.sitkLinear, 0.0), fixed) < 0.5
    initial = sitk.Euler3DTransform(CENTRE.tolist(), 0.02, 0.0, -0.02, (shift + np.array([1.0, -1.0, 0.5])).tolist())
    affine, field, info = register_ants(fixed, moving, settings, initial=initial)
    assert info["initial"] and info["ants_stages"] == ["SyN"]
    points = _surface_points()
    assert np.abs(_map(affine, points) - _map(initial, points)).max() < 1e-3  # no linear stage: A = initial
    transform = _composite(affine, field)
    assert _dice(sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0), fixed) >= 0.95
    assert np.linalg.norm(_map(transform, points) - (points + shift), axis=1).mean() < FIXED_VOXEL_MM


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        AntsSettings(transform="Bogus")
    with pytest.raises(ValueError, match="levels"):
        AntsSettings(iterations=(10, 0), shrink_factors=(4, 2, 1))
    with pytest.raises(ValueError, match="linear"):
        linear_to_affine(sitk.DisplacementFieldTransform(3))

"""SimpleITK registration: known affine + smooth deformation recovered, points carried, convergence."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mskseg.landmarks.surface import mask_surface, surface_distance
from mskseg.registration.affine import AffineSettings, affine_matrix, register_affine, transform_points
from mskseg.registration.demons import DemonsSettings
from mskseg.registration.fields import inverse_points, warp_image, warp_points
from mskseg.registration.masks import dice, to_binary, working_image
from mskseg.registration.pipeline import RegistrationSettings, register_to_reference
from tests.registration.phantoms import apply4, known_affine, pair_with_known_mapping, smooth_displacement

SETTINGS = RegistrationSettings(working_spacing_mm=1.0, margin_mm=6.0,
                                demons=DemonsSettings(shrink_factors=(4, 2, 1), iterations=(60, 40, 20)))


@pytest.fixture(scope="module")
def deformed():
    fixed, moving, true_map, _centre = pair_with_known_mapping(deform=True)
    ref = working_image(fixed, SETTINGS.working_spacing_mm, SETTINGS.margin_mm)
    result = register_to_reference(ref, moving, SETTINGS)
    return fixed, moving, true_map, ref, result


def test_affine_stage_recovers_a_known_affine() -> None:
    fixed, moving, _, _centre = pair_with_known_mapping(deform=False)
    f = working_image(fixed, 1.0, 6.0)
    m = working_image(moving, 1.0, 6.0)
    result = register_affine(f, m, AffineSettings(iterations=200, sampling=1.0, min_step=1e-4))
    vertices, _ = mask_surface(fixed)
    found = transform_points(result.transform, vertices)
    expected = apply4(known_affine(), vertices)
    err = np.linalg.norm(found - expected, axis=1)
    assert err.mean() < 0.5, err.mean()  # half a millimetre on a 1-1.4 mm grid
    # the matrix itself: 1.06 * rotation by 8 degrees
    mat = affine_matrix(result.transform)[:3, :3]
    assert np.allclose(mat, known_affine()[:3, :3], atol=0.03)


def test_registration_recovers_a_known_affine_and_smooth_deformation(deformed) -> None:
    fixed, moving, true_map, _ref, result = deformed
    assert result.converged, result.record["reason"]
    assert result.record["dice"] >= 0.95
    assert result.record["dice"] > result.record["dice_affine"]  # the demons stage helps
    assert result.record["folding_fraction"] == 0.0
    vertices, _ = mask_surface(fixed)
    found = warp_points(vertices, result.affine, result.field)
    err = np.linalg.norm(found - true_map(vertices), axis=1)
    # masks fix the normal part of the deformation only; the tangential part is left to the
    # regulariser, so the points are closer to the truth than the deformation is large, not on it
    moved = np.linalg.norm(smooth_displacement(vertices), axis=1).mean()
    assert err.mean() < 0.75 * moved, (err.mean(), moved)
    # and the carried points lie on the moving surface
    assert surface_distance(found, moving).mean() < 0.5


def test_an_affine_only_pair_gives_points_on_their_true_correspondences() -> None:
    fixed, moving, true_map, _ = pair_with_known_mapping(deform=False)
    ref = working_image(fixed, 1.0, 6.0)
    result = register_to_reference(ref, moving, SETTINGS)
    vertices, _ = mask_surface(fixed)
    err = np.linalg.norm(warp_points(vertices, result.affine, result.field) - true_map(vertices), axis=1)
    assert err.mean() < 0.5, err.mean()


def test_a_wrong_convention_would_be_caught(deformed) -> None:
    """Carrying points with the inverse mapping (the other convention) is clearly worse."""
    fixed, _moving, true_map, _ref, result = deformed
    vertices, _ = mask_surface(fixed)
    wrong = inverse_points(vertices, result.affine, result.field)
    assert np.linalg.norm(wrong - true_map(vertices), axis=1).mean() > 3.0


def test_landmark_warping_round_trips(deformed) -> None:
    fixed, _moving, _true_map, _ref, result = deformed
    vertices, _ = mask_surface(fixed)
    there = warp_points(vertices, result.affine, result.field)
    back = inverse_points(there, result.affine, result.field)
    assert np.linalg.norm(back - vertices, axis=1).max() < 0.1


def test_warped_mask_matches_the_recorded_dice(deformed) -> None:
    _fixed, moving, _, ref, result = deformed
    m = working_image(moving, 1.0, 6.0)
    warped = warp_image(m, ref, result.affine, result.field)
    assert dice(to_binary(ref), to_binary(warped)) == pytest.approx(result.record["dice"])


def test_registration_is_deterministic(deformed) -> None:
    _fixed, moving, _, ref, result = deformed
    again = register_to_reference(ref, moving, SETTINGS)
    a = sitk.GetArrayFromImage(result.field)
    b = sitk.GetArrayFromImage(again.field)
    assert np.abs(a - b).max() < 1e-6
    assert again.record["dice"] == result.record["dice"]


def test_a_registration_that_does_not_converge_is_recorded_not_raised() -> None:
    fixed, _, _, _ = pair_with_known_mapping(deform=False)
    ref = working_image(fixed, 1.0, 6.0)
    # a thin hollow shell: no affine + diffeomorphic deformation fills its cavity
    pts = fixed.index_to_world(np.argwhere(np.ones(fixed.shape, bool)).astype(float)).reshape(*fixed.shape, 3)
    r = np.linalg.norm(pts - pts.reshape(-1, 3).mean(axis=0), axis=-1)
    rod = ((r < 12.0) & (r > 10.0)).astype(np.uint8)
    settings = RegistrationSettings(working_spacing_mm=1.0, margin_mm=6.0,
                                    demons=DemonsSettings(shrink_factors=(2,), iterations=(5,)))
    result = register_to_reference(ref, fixed.with_array(rod), settings)
    assert not result.converged
    assert "Dice after warping" in result.record["reason"]
    assert result.record["dice"] < settings.min_dice


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="backend"):
        RegistrationSettings(backend="elastix")
    with pytest.raises(ValueError, match="same non-zero length"):
        DemonsSettings(shrink_factors=(4, 2), iterations=(10,))
    with pytest.raises(ValueError, match="sampling"):
        AffineSettings(sampling=0.0)
    s = RegistrationSettings.from_dict({"backend": "simpleitk", "demons": {"iterations": [5, 5, 5]}})
    assert s.demons.iterations == (5, 5, 5)
    assert RegistrationSettings.from_dict(s.to_dict()) == s

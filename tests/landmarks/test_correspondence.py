"""Corresponding landmarks: border caps left out, points carried and mirrored, truth, quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from mskseg.landmarks.correspondence import (
    carry_to_subject,
    interior_faces,
    quality_record,
    sample_reference,
    true_points,
    truth_errors,
)
from mskseg.landmarks.surface import mask_surface, sample_surface, surface_distance
from mskseg.registration.masks import mirror_volume
from mskseg.volume import Volume
from tests.conftest import ROTATED

SPACING = (1.2, 1.0, 1.4)
ORIGIN = (-7.0, 20.0, 33.0)
SHAPE = (12, 14, 10)


def _box(lo: tuple[int, int, int], hi: tuple[int, int, int], direction=ROTATED) -> Volume:
    arr = np.zeros(SHAPE, np.uint8)
    arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = 1
    return Volume(arr, SPACING, ORIGIN, direction)


def _on_plane(index: np.ndarray, faces: np.ndarray, axis: int, value: float) -> np.ndarray:
    """Faces whose three vertices lie on the index plane ``axis = value``."""
    return np.all(np.isclose(index[faces, axis], value, atol=1e-6), axis=1)


DIRECTIONS = {"rotated": ROTATED, "mirrored": np.diag([-1.0, 1.0, 1.0]) @ ROTATED}


# --- interior_faces ---------------------------------------------------------------------------


@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
@pytest.mark.parametrize("axis,at_end", [(0, False), (2, True)])
def test_interior_faces_drop_the_cap_on_the_border(axis: int, at_end: bool, direction) -> None:
    lo, hi = [3, 4, 2], [8, 10, 7]
    if at_end:
        hi[axis] = SHAPE[axis]  # touches the last slice
    else:
        lo[axis] = 0  # touches the first slice
    mask = _box(tuple(lo), tuple(hi), direction)
    vertices, faces = mask_surface(mask)
    kept = interior_faces(vertices, faces, mask)
    index = mask.world_to_index(vertices)
    border = SHAPE[axis] - 0.5 if at_end else -0.5
    opposite = lo[axis] - 0.5 if at_end else hi[axis] - 0.5
    cap = _on_plane(index, faces, axis, border)
    assert cap.sum() > 0
    assert _on_plane(index, kept, axis, border).sum() == 0  # the border cap is gone
    assert _on_plane(index, kept, axis, opposite).sum() == _on_plane(index, faces, axis, opposite).sum() > 0
    for other in {0, 1, 2} - {axis}:  # the caps along the other axes are anatomy: all kept
        for value in (lo[other] - 0.5, hi[other] - 0.5):
            n = _on_plane(index, faces, other, value).sum()
            assert n > 0 and _on_plane(index, kept, other, value).sum() == n
    # exactly the faces with a vertex beyond the border are dropped
    beyond = (index[:, axis] > SHAPE[axis] - 1 + 0.25) if at_end else (index[:, axis] < -0.25)
    expected = faces[~beyond[faces].any(axis=1)]
    assert np.array_equal(kept, expected)
    assert 0 < len(kept) < len(faces)


def test_interior_faces_keep_everything_away_from_the_border() -> None:
    mask = _box((2, 3, 2), (9, 10, 8))
    vertices, faces = mask_surface(mask)
    assert np.array_equal(interior_faces(vertices, faces, mask), faces)


# --- sample_reference -------------------------------------------------------------------------


def _cut_ball(direction=ROTATED) -> Volume:
    """A ball of radius 6 mm whose centre lies 1 voxel inside the first slice along axis 1."""
    shape = (16, 18, 14)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    centre = np.array([7.5, 1.0, 6.5])
    inside = np.linalg.norm((idx - centre) * np.asarray(SPACING), axis=-1) < 6.0
    return Volume(inside.astype(np.uint8), SPACING, ORIGIN, direction)


@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_sample_reference_avoids_the_border_cap(direction) -> None:
    mask = _cut_ball(direction)
    assert mask.array[:, 0, :].any()  # the field of view cuts the ball
    points = sample_reference(mask, 80, seed=3)
    assert points.shape == (80, 3)
    index = mask.world_to_index(points)
    assert index[:, 1].min() >= -1e-9  # never on the cap at -0.5
    assert surface_distance(points, mask).max() < 1e-6  # on the surface
    # the whole anatomical surface is covered: points reach the far side of the ball
    assert index[:, 1].max() > 5.0
    again = sample_reference(mask, 80, seed=3)
    assert np.array_equal(points, again)
    assert not np.array_equal(points, sample_reference(mask, 80, seed=4))


def test_sample_reference_equals_sampling_the_kept_faces() -> None:
    mask = _cut_ball()
    vertices, faces = mask_surface(mask)
    expected = sample_surface(vertices, interior_faces(vertices, faces, mask), 30, seed=1)
    assert np.allclose(sample_reference(mask, 30, seed=1), expected)


def test_sample_reference_of_a_structure_that_fills_the_volume_raises() -> None:
    full = Volume(np.ones((6, 7, 5), np.uint8), SPACING, ORIGIN, ROTATED)
    with pytest.raises(ValueError, match="whole surface lies on the volume border"):
        sample_reference(full, 10)


# --- carry_to_subject -------------------------------------------------------------------------


def _field(value=(0.0, 0.0, 0.0)) -> sitk.Image:
    """A constant displacement field on a 20 mm grid around the origin."""
    arr = np.broadcast_to(np.asarray(value, dtype=float), (20, 20, 20, 3)).copy()
    image = sitk.GetImageFromArray(arr, isVector=True)
    image.SetOrigin((-10.0, -10.0, -10.0))
    return image


POINTS = np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 2.0], [0.0, -3.0, -6.5]])


def test_carry_with_identity_returns_the_points() -> None:
    identity = sitk.AffineTransform(3)
    assert np.allclose(carry_to_subject(POINTS, identity, _field(), False), POINTS)
    assert np.allclose(carry_to_subject(POINTS, identity, None, False), POINTS)
    mirrored = carry_to_subject(POINTS, identity, _field(), True)
    assert np.allclose(mirrored, POINTS * np.array([-1.0, 1.0, 1.0]))


def test_carry_applies_the_field_then_the_affine_then_the_mirror() -> None:
    affine = sitk.AffineTransform(3)
    affine.SetMatrix([2.0, 0, 0, 0, 2.0, 0, 0, 0, 2.0])
    affine.SetTranslation((0.0, 5.0, 0.0))
    u = np.array([1.0, 0.0, -0.5])
    carried = carry_to_subject(POINTS, affine, _field(u), False)
    assert np.allclose(carried, 2.0 * (POINTS + u) + [0.0, 5.0, 0.0], atol=1e-9)  # A(x + u(x))
    mirrored = carry_to_subject(POINTS, affine, _field(u), True)
    assert np.allclose(mirrored, carried * [-1.0, 1.0, 1.0])


# --- truth ------------------------------------------------------------------------------------


def _truth() -> pd.DataFrame:
    return pd.DataFrame({
        "structure": ["tibia", "femur", "femur", "tibia", "femur"],
        "index": [1, 2, 0, 0, 1],
        "x": [10.0, 3.0, 1.0, 11.0, 2.0], "y": [0.0, 3.5, 1.5, 0.0, 2.5], "z": [5.0, -3.0, -1.0, 5.0, -2.0],
    })


def test_true_points_select_sort_and_mirror() -> None:
    femur = true_points(_truth(), "femur")
    assert list(femur.columns) == ["index", "x", "y", "z"]
    assert femur["index"].tolist() == [0, 1, 2]
    assert femur["x"].tolist() == [1.0, 2.0, 3.0]
    assert femur["y"].tolist() == [1.5, 2.5, 3.5] and femur["z"].tolist() == [-1.0, -2.0, -3.0]
    mirrored = true_points(_truth(), "femur", mirrored=True)
    assert mirrored["x"].tolist() == [-1.0, -2.0, -3.0]
    assert mirrored["y"].tolist() == femur["y"].tolist() and mirrored["z"].tolist() == femur["z"].tolist()
    tibia = true_points(_truth(), "tibia")
    assert tibia["index"].tolist() == [0, 1] and tibia["x"].tolist() == [11.0, 10.0]


def test_true_points_of_an_unknown_structure_raise() -> None:
    with pytest.raises(ValueError, match="no true landmarks for structure 'patella'"):
        true_points(_truth(), "patella")


def test_truth_errors_match_by_index() -> None:
    truth = true_points(_truth(), "femur")
    carried = truth.copy()
    carried[["x", "y", "z"]] += np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    errors = truth_errors(carried, truth)
    assert np.allclose(errors, [5.0, 1.0, 0.0])
    shuffled = truth.iloc[[2, 0, 1]].reset_index(drop=True)
    assert np.allclose(truth_errors(carried, shuffled), errors)
    # only the common indices count
    assert np.allclose(truth_errors(carried, truth[truth["index"] != 1]), [5.0, 0.0])
    assert truth_errors(carried, truth.iloc[:0]).size == 0


# --- quality_record ---------------------------------------------------------------------------


def _two_spheres() -> tuple[Volume, np.ndarray, np.ndarray]:
    shape = (30, 24, 20)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    vol = Volume(np.zeros(shape, np.uint8), SPACING, ORIGIN, ROTATED)
    world = vol.index_to_world(idx.reshape(-1, 3)).reshape(*shape, 3)
    c1 = vol.index_to_world(np.array([[9.0, 12.0, 10.0]]))[0]
    c2 = vol.index_to_world(np.array([[22.0, 12.0, 10.0]]))[0]
    arr = np.zeros(shape, np.uint8)
    arr[np.linalg.norm(world - c1, axis=-1) < 7.0] = 1
    arr[np.linalg.norm(world - c2, axis=-1) < 5.0] = 2
    return vol.with_array(arr), c1, c2


def test_quality_record_on_a_sphere() -> None:
    mask, c1, _c2 = _two_spheres()
    vertices, faces = mask_surface(mask, label=1)
    on = sample_surface(vertices, faces, 40, seed=0)
    record = quality_record(on, mask, 1)
    assert set(record) == {"surface_mean_mm", "surface_p95_mm", "surface_max_mm", "surface_mean_voxels"}
    assert record["surface_max_mm"] < 1e-6
    # 2 mm outside the sphere, radially: about 2 mm from the voxel surface
    out = c1 + (on - c1) * (1.0 + 2.0 / np.linalg.norm(on - c1, axis=1))[:, None]
    record = quality_record(out, mask, 1)
    dist = surface_distance(out, mask, label=1)
    assert record["surface_mean_mm"] == pytest.approx(dist.mean())
    assert record["surface_p95_mm"] == pytest.approx(np.percentile(dist, 95))
    assert record["surface_max_mm"] == pytest.approx(dist.max())
    assert record["surface_mean_mm"] == pytest.approx(2.0, abs=0.4)
    assert record["surface_mean_voxels"] == pytest.approx(dist.mean() / np.mean(SPACING))
    # the label decides which surface: the same points are far from sphere 2
    assert quality_record(out, mask, 2)["surface_mean_mm"] > 5.0


def test_quality_record_with_truth_errors() -> None:
    mask, c1, _ = _two_spheres()
    points = c1 + np.array([[7.0, 0.0, 0.0], [0.0, 7.0, 0.0]])
    record = quality_record(points, mask, 1, truth_error=np.array([1.0, 2.0, 3.0, 4.0]))
    assert record["truth_mean_mm"] == pytest.approx(2.5)
    assert record["truth_p95_mm"] == pytest.approx(3.85)
    assert record["truth_max_mm"] == pytest.approx(4.0)
    assert record["truth_n"] == 4 and isinstance(record["truth_n"], int)
    assert {"surface_mean_mm", "surface_p95_mm", "surface_max_mm", "surface_mean_voxels"} <= set(record)
    empty = quality_record(points, mask, 1, truth_error=np.array([]))
    assert empty["truth_n"] == 0 and np.isnan(empty["truth_mean_mm"])


def test_quality_record_mirrored_volume_is_handled() -> None:
    """Points on a mirrored mask's surface are on its surface in the mirrored world."""
    mask, _, _ = _two_spheres()
    mirrored = mirror_volume(mask)
    vertices, faces = mask_surface(mirrored, label=2)
    points = sample_surface(vertices, faces, 20, seed=2)
    assert quality_record(points, mirrored, 2)["surface_max_mm"] < 1e-6
    assert quality_record(points * [-1.0, 1.0, 1.0], mask, 2)["surface_max_mm"] < 1e-6

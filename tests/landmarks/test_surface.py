"""Mask surfaces, even surface sampling and exact point-to-surface distances (all in mm)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from mskseg.landmarks.surface import (
    _Triangles,
    distance_summary,
    mask_surface,
    mesh_distance,
    sample_surface,
    signed_volume,
    surface_distance,
)
from mskseg.volume import Volume
from tests.conftest import ROTATED

SPACING = (0.7, 0.4, 0.5)
ORIGIN = (12.0, -30.0, 4.5)
#: a left-handed direction (det -1): the face winding must still give outward normals
MIRRORED = ROTATED @ np.diag([1.0, 1.0, -1.0])


def sphere(radius: float = 6.0, shape=(24, 40, 34), spacing=SPACING, direction=ROTATED,
           label: int = 3) -> tuple[Volume, np.ndarray]:
    """A voxelised ball (voxel centres within ``radius`` mm) and its centre in world mm."""
    vol = Volume(np.zeros(shape, np.uint8), spacing, ORIGIN, direction)
    centre = vol.index_to_world(np.array([[11.3, 19.6, 16.2]]))[0]
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    inside = np.linalg.norm(vol.index_to_world(idx) - centre, axis=1) < radius
    return vol.with_array((inside.reshape(shape) * label).astype(np.uint8)), centre


def edge_use_counts(faces: np.ndarray) -> np.ndarray:
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    return np.unique(edges, axis=0, return_counts=True)[1]


def unit_directions(n: int, seed: int = 0) -> np.ndarray:
    u = np.random.default_rng(seed).normal(size=(n, 3))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


# --- mask_surface ----------------------------------------------------------------------------


@pytest.mark.parametrize("direction", [ROTATED, MIRRORED], ids=["rotated", "mirrored"])
def test_sphere_mesh_is_closed_outward_and_on_the_sphere(direction: np.ndarray) -> None:
    mask, centre = sphere(direction=direction)
    vertices, faces = mask_surface(mask, label=3)
    radii = np.linalg.norm(vertices - centre, axis=1)
    # the surface is halfway between inside and outside voxel centres along a grid edge
    assert np.abs(radii - 6.0).max() <= 0.5 * max(SPACING) + 1e-9
    assert (edge_use_counts(faces) == 2).all()
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    outward = np.einsum("ij,ij->i", np.cross(b - a, c - a), (a + b + c) / 3 - centre)
    assert (outward > 0).all()
    voxels_mm3 = np.count_nonzero(mask.array) * mask.voxel_volume_mm3
    assert signed_volume(vertices, faces) == pytest.approx(voxels_mm3, rel=0.03)


def test_single_voxel_mesh_spans_half_a_voxel_in_index_space() -> None:
    """Checks the padding offset and the per-axis spacing of the index-to-world mapping."""
    arr = np.zeros((5, 6, 7), np.uint8)
    arr[2, 4, 3] = 1
    mask = Volume(arr, SPACING, ORIGIN, ROTATED)
    vertices, faces = mask_surface(mask)
    idx = mask.world_to_index(vertices)
    np.testing.assert_allclose(idx.min(axis=0), [1.5, 3.5, 2.5], atol=1e-9)
    np.testing.assert_allclose(idx.max(axis=0), [2.5, 4.5, 3.5], atol=1e-9)
    assert (edge_use_counts(faces) == 2).all()


def test_structure_touching_the_border_gives_a_closed_mesh() -> None:
    arr = np.zeros((6, 7, 8), np.uint8)
    arr[:3, 2:5, 4:] = 2  # touches the faces i = 0 and k = 7 of the volume
    arr[4, 1, 1] = 5  # another label, ignored
    mask = Volume(arr, SPACING, ORIGIN, ROTATED)
    vertices, faces = mask_surface(mask, label=2)
    assert (edge_use_counts(faces) == 2).all()
    assert signed_volume(vertices, faces) > 0
    idx = mask.world_to_index(vertices)
    np.testing.assert_allclose(idx.min(axis=0), [-0.5, 1.5, 3.5], atol=1e-9)
    np.testing.assert_allclose(idx.max(axis=0), [2.5, 4.5, 7.5], atol=1e-9)


def test_empty_structure_raises_naming_the_label() -> None:
    mask, _ = sphere(label=3)
    with pytest.raises(ValueError, match="label 7"):
        mask_surface(mask, label=7)
    with pytest.raises(ValueError, match="label 7"):
        surface_distance(np.zeros((1, 3)), mask, label=7)
    with pytest.raises(ValueError, match="empty"):
        mask_surface(mask.with_array(np.zeros(mask.shape, np.uint8)))


def test_smoothing_keeps_the_sphere_and_removes_the_staircase() -> None:
    mask, centre = sphere()
    raw = np.linalg.norm(mask_surface(mask, label=3)[0] - centre, axis=1)
    vertices, faces = mask_surface(mask, label=3, smooth_sigma_mm=0.8)
    smooth = np.linalg.norm(vertices - centre, axis=1)
    assert (edge_use_counts(faces) == 2).all()
    assert abs(np.median(smooth) - 6.0) < 0.5 * max(SPACING)
    assert smooth.std() < 0.7 * raw.std()
    tiny = np.zeros((9, 9, 9), np.uint8)
    tiny[4, 4, 4] = 1
    with pytest.raises(ValueError, match="vanishes"):
        mask_surface(Volume(tiny, (1.0, 1.0, 1.0)), smooth_sigma_mm=2.0)
    with pytest.raises(ValueError, match="smooth_sigma_mm"):
        mask_surface(mask, smooth_sigma_mm=-1.0)


# --- sample_surface --------------------------------------------------------------------------


def test_sampled_points_lie_on_the_sphere_and_are_evenly_spread() -> None:
    mask, centre = sphere()
    vertices, faces = mask_surface(mask, label=3)
    n = 400
    points = sample_surface(vertices, faces, n, seed=4)
    assert points.shape == (n, 3)
    assert np.abs(np.linalg.norm(points - centre, axis=1) - 6.0).max() <= 0.5 * max(SPACING)
    nn = cKDTree(points).query(points, k=2)[0][:, 1]
    expected = math.sqrt(4 * math.pi * 6.0**2 / n)
    assert nn.std() / nn.mean() < 0.25  # area-uniform random points give about 0.5
    assert nn.min() > 0.5 * expected
    # every part of the sphere is covered: no surface vertex far from a sample
    assert cKDTree(points).query(vertices)[0].max() < 1.5 * expected


def test_sampling_is_deterministic_for_a_seed() -> None:
    mask, _ = sphere()
    vertices, faces = mask_surface(mask, label=3)
    first = sample_surface(vertices, faces, 50, seed=1)
    np.testing.assert_array_equal(first, sample_surface(vertices, faces, 50, seed=1))
    assert not np.allclose(first, sample_surface(vertices, faces, 50, seed=2))


def test_sampling_rejects_bad_requests() -> None:
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0]])
    with pytest.raises(ValueError, match="n must"):
        sample_surface(vertices, np.array([[0, 1, 2]]), 0)
    with pytest.raises(ValueError, match="zero area"):
        sample_surface(vertices, np.array([[0, 1, 3]]), 5)  # collinear corners
    with pytest.raises(ValueError, match="zero area"):
        sample_surface(vertices, np.zeros((0, 3), int), 5)
    with pytest.raises(ValueError, match="outside"):
        sample_surface(vertices, np.array([[0, 1, 4]]), 5)


def test_sampling_2000_points_gives_distinct_points() -> None:
    mask, _ = sphere(radius=8.0, shape=(30, 50, 42))
    vertices, faces = mask_surface(mask, label=3)
    points = sample_surface(vertices, faces, 2000, oversample=20)
    assert len(np.unique(points, axis=0)) == 2000


# --- distances -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["generic", "degenerate"])
def test_point_to_triangle_distance_matches_dense_sampling(kind: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(5):
        corners = rng.normal(size=(3, 3)) * 3
        if kind == "degenerate":
            corners[2] = corners[0] + 0.4 * (corners[1] - corners[0])
        points = np.concatenate([
            corners.mean(axis=0) + rng.normal(size=(20, 3)) * 4,  # all regions around it
            corners + rng.normal(size=(3, 3)) * 0.2,  # near the corners
        ])
        exact = mesh_distance(points, corners, np.array([[0, 1, 2]]))
        u, v = np.meshgrid(np.linspace(0, 1, 401), np.linspace(0, 1, 401))
        keep = u + v <= 1
        grid = corners[0] + np.outer(u[keep], corners[1] - corners[0]) + np.outer(v[keep], corners[2] - corners[0])
        dense = cKDTree(grid).query(points)[0]
        step = max(np.linalg.norm(corners[1] - corners[0]), np.linalg.norm(corners[2] - corners[0])) / 400
        assert (dense >= exact - 1e-9).all()
        assert (dense <= exact + step).all()


def test_mesh_distance_equals_brute_force_over_all_triangles() -> None:
    mask, centre = sphere(radius=4.0, shape=(16, 26, 22))
    vertices, faces = mask_surface(mask, label=3)
    rng = np.random.default_rng(3)
    points = np.concatenate([
        centre + unit_directions(150, seed=1) * rng.uniform(0, 12, size=(150, 1)),
        centre + rng.normal(scale=0.05, size=(5, 3)),  # near the medial axis: slow path
        vertices[::97] + rng.normal(scale=0.1, size=(len(vertices[::97]), 3)),
    ])
    tris = _Triangles(vertices, faces)
    brute = np.array([
        tris.distance(np.repeat(p[None], len(faces), axis=0), np.arange(len(faces))).min() for p in points
    ])
    np.testing.assert_allclose(mesh_distance(points, vertices, faces), brute, rtol=0, atol=1e-12)


def test_distance_to_a_sphere_surface() -> None:
    mask, centre = sphere()
    vertices, _ = mask_surface(mask, label=3)
    u = unit_directions(300)
    for d in (-2.5, -1.0, 1.0, 2.0, 3.0):
        dist = surface_distance(centre + (6.0 + d) * u, mask, label=3)
        # the iso-0.5 surface is within half a voxel edge of the analytic sphere
        np.testing.assert_allclose(dist, abs(d), atol=0.5 * max(SPACING))
    assert surface_distance(vertices[::7], mask, label=3).max() < 1e-9
    assert surface_distance(np.zeros((0, 3)), mask, label=3).shape == (0,)
    with pytest.raises(ValueError, match="non-finite"):
        surface_distance(np.array([[np.nan, 0.0, 0.0]]), mask, label=3)


def test_distance_to_a_box_face_is_exact() -> None:
    """The faces of a box of voxels lie half a voxel beyond its outermost voxel centres."""
    arr = np.zeros((14, 22, 18), np.uint8)
    lo, hi = np.array([3, 4, 5]), np.array([10, 17, 12])  # inclusive voxel ranges
    arr[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1] = 1
    mask = Volume(arr, SPACING, ORIGIN, ROTATED)
    mid = (lo + hi) / 2.0
    points, expected = [], []
    for axis in range(3):
        for side, sign in ((hi[axis] + 0.5, 1.0), (lo[axis] - 0.5, -1.0)):
            face = mid.copy()
            face[axis] = side
            on_face = mask.index_to_world(face[None])[0]
            for d in (0.0, 0.3, 1.7, 25.0):
                points.append(on_face + sign * d * mask.direction[:, axis])
                expected.append(d)
    # inside, at the centre: the nearest faces are those of the shortest extent (mm)
    points.append(mask.index_to_world(mid[None])[0])
    expected.append(min((hi - lo + 1) * np.asarray(SPACING)) / 2)
    dist = surface_distance(np.array(points), mask)
    np.testing.assert_allclose(dist, expected, rtol=0, atol=1e-6)


def test_distance_for_2000_points_on_a_large_mask_is_finite_and_bounded() -> None:
    shape = (400, 400, 160)
    i, j, k = np.ogrid[: shape[0], : shape[1], : shape[2]]
    arr = ((i - 200) / 150.0) ** 2 + ((j - 200) / 120.0) ** 2 + ((k - 80) / 70.0) ** 2 < 1
    mask = Volume(arr.astype(np.uint8), (0.4, 0.4, 0.7), ORIGIN, ROTATED)
    centre = mask.index_to_world(np.array([[200.0, 200.0, 80.0]]))[0]
    semi_axes = np.array([150 * 0.4, 120 * 0.4, 70 * 0.7])  # mm, along the index axes
    # points up to about 3 mm inside or outside the ellipsoid, as for a close segmentation
    u = unit_directions(2000)
    scale = 1.0 / np.linalg.norm(u / semi_axes, axis=1)
    offset = np.random.default_rng(2).uniform(-3.0, 3.0, size=2000)
    points = centre + (u * (scale + offset)[:, None]) @ mask.direction.T
    dist = surface_distance(points, mask)
    assert np.isfinite(dist).all()
    assert dist.max() <= 3.0 + max(mask.spacing)


def test_distance_summary() -> None:
    summary = distance_summary(np.array([4.0, 0.0, np.nan, 2.0, 1.0, 3.0]))
    assert summary == pytest.approx({"mean_mm": 2.0, "p95_mm": 3.8, "max_mm": 4.0})
    for empty in (np.array([]), np.array([np.nan])):
        values = distance_summary(empty)
        assert set(values) == {"mean_mm", "p95_mm", "max_mm"}
        assert all(math.isnan(v) for v in values.values())


def test_mesh_distance_finds_a_large_triangle_whose_centroid_is_far() -> None:
    """Many small triangles have nearer centroids; the big one is still the closest."""
    big = np.array([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [0.0, 100.0, 0.0]])
    rng = np.random.default_rng(5)
    corners = np.array([1.0, 1.0, 2.5]) + rng.normal(scale=0.02, size=(30, 3, 3))  # 1.5 mm above
    vertices = np.concatenate([big, corners.reshape(-1, 3)])
    faces = np.arange(len(vertices)).reshape(-1, 3)
    dist = mesh_distance(np.array([[1.0, 1.0, 1.0], [2.0, 3.0, -0.4]]), vertices, faces)
    np.testing.assert_allclose(dist, [1.0, 0.4], atol=1e-12)

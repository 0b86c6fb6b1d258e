"""Borders, exact surface distances (HD, HD95, ASSD) and the hierarchical within-distance test,
all checked against brute force (every pair of points) on anisotropic grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from mskseg.metrics.distances import (
    LOCAL_MM,
    border,
    local_nearest,
    make_tree,
    points_mm,
    surface_distances,
    within_distance,
)
from tests.metrics.brute import TIE, blobs, brute_border, brute_directed, brute_surface

ANISO = (0.7, 0.3646, 1.3)
SHAPE = (22, 30, 16)


# ----------------------------------------------------------------------------- border

def test_border_of_mask_filling_the_array():
    m = np.ones((3, 4, 5), bool)
    b = border(m)
    inner = np.zeros_like(m)
    inner[1:2, 1:3, 1:4] = True
    np.testing.assert_array_equal(b, m & ~inner)


def test_border_box_touching_the_array_edge():
    m = np.zeros((6, 6, 6), bool)
    m[0:4, 0:4, 2:5] = True  # touches the low edges of axes 0 and 1
    b = border(m)
    # voxels on the array edge are border voxels
    assert b[0][m[0]].all() and b[:, 0][m[:, 0]].all()
    inner = np.zeros_like(m)
    inner[1:3, 1:3, 3:4] = True
    np.testing.assert_array_equal(b, m & ~inner)


def test_border_of_cube_inside_has_only_the_centre_inner():
    m = np.zeros((5, 5, 5), bool)
    m[1:4, 1:4, 1:4] = True
    b = border(m)
    assert np.count_nonzero(b) == 26
    assert not b[2, 2, 2]
    assert not (b & ~m).any()


@pytest.mark.parametrize("shape", [(1, 5, 5), (2, 6, 4), (7, 8, 9), (3, 3, 3)])
def test_border_matches_brute_force(shape):
    for seed in range(3):
        m = blobs(shape, seed, sigma=1.0, fraction=0.6)
        np.testing.assert_array_equal(border(m), brute_border(m))


def test_border_empty():
    assert not border(np.zeros((4, 4, 4), bool)).any()
    assert border(np.zeros((0, 3, 3), bool)).shape == (0, 3, 3)


# ----------------------------------------------------------------------------- surface distances

def assert_matches_brute(pred, ref, spacing, percentile=95.0):
    got = surface_distances(pred, ref, spacing, percentile=percentile)
    hd, hdp, assd = brute_surface(pred, ref, spacing, percentile)
    assert got.flag == "ok"
    assert got.hd == pytest.approx(hd, abs=1e-9)
    assert got.hd95 == pytest.approx(hdp, abs=1e-9)
    assert got.assd == pytest.approx(assd, abs=1e-9)
    assert got.pred_to_ref_mean == pytest.approx(brute_directed(pred, ref, spacing).mean(), abs=1e-9)
    assert got.ref_to_pred_mean == pytest.approx(brute_directed(ref, pred, spacing).mean(), abs=1e-9)
    assert got.n_pred_border == np.count_nonzero(brute_border(pred))
    assert got.n_ref_border == np.count_nonzero(brute_border(ref))
    return got


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_surface_distances_similar_blobs_anisotropic(seed):
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 2.0)
    ref = field > np.quantile(field, 0.75)
    noisy = field + 0.15 * ndimage.gaussian_filter(rng.standard_normal(SHAPE), 1.0)
    pred = noisy > np.quantile(noisy, 0.72)
    assert_matches_brute(pred, ref, ANISO)


@pytest.mark.parametrize("seed", [4, 5])
def test_surface_distances_unrelated_blobs_anisotropic(seed):
    # distances of several mm: most go beyond the local search to the k-d tree
    pred = blobs(SHAPE, seed, fraction=0.15)
    ref = blobs(SHAPE, seed + 50, fraction=0.2)
    got = assert_matches_brute(pred, ref, ANISO)
    assert got.hd > 3 * LOCAL_MM


@pytest.mark.parametrize("spacing", [(0.25, 0.25, 0.25), (1.0, 1.0, 1.0), (2.0, 0.5, 0.3)])
def test_surface_distances_other_spacings(spacing):
    pred = blobs(SHAPE, 7, fraction=0.3)
    ref = blobs(SHAPE, 8, fraction=0.3) | pred & blobs(SHAPE, 9, fraction=0.5)
    assert_matches_brute(pred, ref, spacing, percentile=90.0)


def test_surface_distances_far_outlier_voxel():
    ref = np.zeros(SHAPE, bool)
    ref[4:12, 5:20, 3:10] = True
    pred = ref.copy()
    pred[20, 28, 14] = True  # far outside: distance >> LOCAL_MM
    got = assert_matches_brute(pred, ref, ANISO)
    expected = np.linalg.norm((np.array([20, 28, 14]) - [11, 19, 9]) * np.asarray(ANISO))
    assert got.hd == pytest.approx(expected, abs=1e-9)
    assert got.hd > LOCAL_MM


def test_surface_distances_identical_masks_are_zero():
    m = blobs(SHAPE, 11)
    got = surface_distances(m, m.copy(), ANISO)
    assert (got.hd, got.hd95, got.assd, got.pred_to_ref_mean, got.ref_to_pred_mean) == (0, 0, 0, 0, 0)
    assert got.flag == "ok"


def test_surface_distances_single_voxels_hand_case():
    a = np.zeros((3, 3, 8), bool)
    b = np.zeros_like(a)
    a[1, 1, 2] = True
    b[1, 1, 5] = True
    got = surface_distances(a, b, (1.0, 1.0, 2.5))
    assert got.hd == pytest.approx(7.5)
    assert got.hd95 == pytest.approx(7.5)
    assert got.assd == pytest.approx(7.5)
    assert got.n_pred_border == got.n_ref_border == 1


def test_surface_distances_box_shift_hand_case():
    ref = np.zeros((8, 8, 10), bool)
    ref[2:6, 2:6, 2:6] = True
    pred = np.zeros_like(ref)
    pred[2:6, 2:6, 3:7] = True  # shifted one voxel along axis 2 (2 mm)
    got = surface_distances(pred, ref, (1.0, 1.0, 2.0))
    assert got.hd == pytest.approx(2.0)
    assert_matches_brute(pred, ref, (1.0, 1.0, 2.0))


@pytest.mark.parametrize("pred_empty,ref_empty,flag", [(True, False, "empty_prediction"),
                                                      (False, True, "empty_reference"),
                                                      (True, True, "both_empty")])
def test_surface_distances_empty_masks(pred_empty, ref_empty, flag):
    full = blobs((8, 9, 10), 3)
    pred = np.zeros_like(full) if pred_empty else full
    ref = np.zeros_like(full) if ref_empty else full
    got = surface_distances(pred, ref, ANISO)
    assert got.flag == flag
    assert all(math.isnan(v) for v in (got.hd, got.hd95, got.assd, got.pred_to_ref_mean, got.ref_to_pred_mean))
    d = got.as_dict()
    assert d["surface_flag"] == flag and math.isnan(d["hd_mm"])


def test_surface_distances_on_a_box_with_offset_and_trees():
    pred = np.zeros(SHAPE, bool)
    ref = np.zeros(SHAPE, bool)
    pred[3:15, 8:25, 2:12] = blobs((12, 17, 10), 21, sigma=1.5, fraction=0.5)
    ref[3:15, 8:25, 2:12] = blobs((12, 17, 10), 22, sigma=1.5, fraction=0.5)
    box = (slice(3, 15), slice(8, 25), slice(2, 12))
    off = (3, 8, 2)
    pb, rb = border(pred[box]), border(ref[box])
    got = surface_distances(pred[box], ref[box], ANISO, pred_border=pb, ref_border=rb,
                            pred_tree=make_tree(points_mm(pb, ANISO, off)),
                            ref_tree=make_tree(points_mm(rb, ANISO, off)), offset=off)
    hd, hdp, assd = brute_surface(pred, ref, ANISO)
    assert (got.hd, got.hd95, got.assd) == pytest.approx((hd, hdp, assd), abs=1e-9)


# ----------------------------------------------------------------------------- within_distance

def brute_within(mask, point_sets, eps, spacing, strict, combine="min"):
    idx = np.argwhere(mask)
    sp = np.asarray(spacing, float)
    d = np.stack([cdist(idx * sp, np.argwhere(s) * sp).min(axis=1) for s in point_sets], axis=1)
    v = d.min(axis=1) if combine == "min" else np.sort(d, axis=1)[:, :2].sum(axis=1)
    ok = v < eps - TIE if strict else v <= eps + TIE
    out = np.zeros(mask.shape, bool)
    out[tuple(idx[ok].T)] = True
    return out


def padded_target(points, eps, spacing):
    pad = np.floor(eps / np.asarray(spacing, float) + 1e-9).astype(int)
    return np.pad(points, [(p, p) for p in pad])


@pytest.mark.parametrize("eps", [2.0, 5.0])
@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("use_target", [False, True])
def test_within_distance_min_matches_brute_force(eps, strict, use_target):
    for seed in (0, 1):
        mask = blobs(SHAPE, 100 + seed, fraction=0.3)
        other = blobs(SHAPE, 200 + seed, fraction=0.2) & ~mask
        points = border(other)
        tree = make_tree(points_mm(points, ANISO))
        target = padded_target(points, eps, ANISO) if use_target else None
        got = within_distance(mask, [tree], eps, ANISO, strict=strict, target=target)
        expected = brute_within(mask, [points], eps, ANISO, strict)
        np.testing.assert_array_equal(got, expected)
        assert expected.any() and (mask & ~expected).any()  # not trivially all or nothing


@pytest.mark.parametrize("eps", [2.0, 5.0])
@pytest.mark.parametrize("strict", [True, False])
def test_within_distance_sum2_matches_brute_force(eps, strict):
    mask = blobs(SHAPE, 31, fraction=0.5)
    sets = [border(blobs(SHAPE, 40 + k, sigma=1.5, fraction=0.05)) for k in range(3)]
    trees = [make_tree(points_mm(s, ANISO)) for s in sets]
    got = within_distance(mask, trees, eps, ANISO, strict=strict, combine="sum2")
    expected = brute_within(mask, sets, eps, ANISO, strict, combine="sum2")
    np.testing.assert_array_equal(got, expected)
    assert expected.any() and (mask & ~expected).any()
    # target is not used with sum2
    target = padded_target(np.zeros(SHAPE, bool), eps, ANISO)
    np.testing.assert_array_equal(
        within_distance(mask, trees, eps, ANISO, strict=strict, combine="sum2", target=target), expected)


def test_within_distance_sum2_needs_two_trees():
    mask = np.ones((5, 5, 5), bool)
    pts = np.zeros_like(mask)
    pts[2, 2, 2] = True
    got = within_distance(mask, [make_tree(points_mm(pts, ANISO)), None], 50.0, ANISO, combine="sum2")
    assert not got.any()


@pytest.mark.parametrize("use_target", [False, True])
def test_within_distance_ties_at_eps(use_target):
    spacing = (0.5, 0.3, 0.4)
    eps = 2.0
    points = np.zeros((13, 15, 13), bool)
    points[6, 7, 6] = True
    mask = np.zeros_like(points)
    mask[:, 7, 6] = True
    mask[6, :, :] = True
    mask &= ~points
    tree = make_tree(points_mm(points, spacing))
    target = padded_target(points, eps, spacing) if use_target else None
    strict = within_distance(mask, [tree], eps, spacing, strict=True, target=target)
    loose = within_distance(mask, [tree], eps, spacing, strict=False, target=target)
    # exactly eps away: 4 voxels of 0.5 mm along axis 0; (4, 4) voxels of (0.3, 0.4) mm -> 3-4-5 x 0.4
    for at_eps in [(2, 7, 6), (10, 7, 6), (6, 3, 2), (6, 11, 10), (6, 3, 10), (6, 11, 2)]:
        assert mask[at_eps] and not strict[at_eps] and loose[at_eps]
    # just inside and just outside
    assert strict[3, 7, 6] and loose[3, 7, 6]
    assert not strict[1, 7, 6] and not loose[1, 7, 6]
    np.testing.assert_array_equal(strict, brute_within(mask, [points], eps, spacing, True))
    np.testing.assert_array_equal(loose, brute_within(mask, [points], eps, spacing, False))


def test_within_distance_with_offset():
    eps = 3.0
    mask = blobs(SHAPE, 61, fraction=0.3)
    points = border(blobs(SHAPE, 62, fraction=0.1) & ~mask)
    tree = make_tree(points_mm(points, ANISO))
    full = within_distance(mask, [tree], eps, ANISO, strict=False)
    box = (slice(4, 19), slice(3, 27), slice(2, 13))
    part = within_distance(mask[box], [tree], eps, ANISO, offset=(4, 3, 2), strict=False)
    np.testing.assert_array_equal(part, full[box])
    np.testing.assert_array_equal(full, brute_within(mask, [points], eps, ANISO, False))
    # with a target: the point set on the box's grid, padded
    pad = np.floor(eps / np.asarray(ANISO) + 1e-9).astype(int)
    wide = np.pad(points, [(p, p) for p in pad])
    target = wide[tuple(slice(b.start, b.stop + 2 * p) for b, p in zip(box, pad, strict=True))]
    np.testing.assert_array_equal(
        within_distance(mask[box], [tree], eps, ANISO, offset=(4, 3, 2), strict=False, target=target), full[box])


def test_within_distance_no_trees_or_empty_mask():
    mask = blobs((6, 6, 6), 1)
    assert not within_distance(mask, [], 2.0, ANISO).any()
    assert not within_distance(mask, [None], 2.0, ANISO).any()
    tree = make_tree(points_mm(mask, ANISO))
    assert not within_distance(np.zeros_like(mask), [tree], 2.0, ANISO).any()


def test_within_distance_rejects_unknown_combine():
    mask = np.ones((3, 3, 3), bool)
    tree = make_tree(points_mm(mask, ANISO))
    with pytest.raises(ValueError):
        within_distance(mask, [tree, tree], 2.0, ANISO, combine="max")


# ----------------------------------------------------------------------------- local_nearest

@pytest.mark.parametrize("radius", [1.5, 2.0, 3.3])
def test_local_nearest_matches_brute_force(radius):
    rng = np.random.default_rng(5)
    sp = np.asarray(ANISO)
    pad = np.floor(radius / sp + 1e-9).astype(int)
    core = blobs(SHAPE, 71, sigma=1.0, fraction=0.03)
    target = np.pad(core, [(p, p) for p in pad])
    points = np.stack([rng.integers(0, n, 400) for n in SHAPE], axis=1) + pad
    got = local_nearest(points, target, ANISO, radius)
    d = cdist(points * sp, np.argwhere(target) * sp).min(axis=1)
    expected = np.where(d <= radius + TIE, d, np.inf)
    assert np.isfinite(expected).any() and np.isinf(expected).any()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    # stop_at: resolved only up to that length
    stop = 0.8 * radius
    got_stop = local_nearest(points, target, ANISO, radius, stop_at=stop)
    np.testing.assert_allclose(got_stop, np.where(d <= stop + TIE, d, np.inf), rtol=0, atol=1e-9)


def test_local_nearest_no_points():
    assert local_nearest(np.zeros((0, 3), int), np.ones((5, 5, 5), bool), ANISO, 1.0).shape == (0,)

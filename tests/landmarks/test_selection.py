"""Landmark selection for the local refinement: NMS spacing on known point sets, regions, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist

from mskseg.landmarks.selection import (
    DEFAULT_COUNTS,
    distance_to_structure,
    near_structure,
    region_vote,
    select_spread,
)
from mskseg.volume import Volume
from tests.conftest import ROTATED


def grid(n=(9, 7, 5), step=(1.0, 1.5, 2.0)) -> np.ndarray:
    """A regular grid of points (mm): many exactly equal distances."""
    axes = [np.arange(k) * s for k, s in zip(n, step, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def sphere(n=600, radius=20.0) -> np.ndarray:
    """A Fibonacci sphere: points spread evenly, no ties."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return radius * np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


def brute_nms(points: np.ndarray, order: np.ndarray, radius: float) -> list[int]:
    """Greedy NMS: in ``order``, keep a point unless a kept one is closer than ``radius``."""
    kept: list[int] = []
    for i in order:
        if all(np.linalg.norm(points[i] - points[j]) >= radius for j in kept):
            kept.append(int(i))
    return kept


def check_nms(points: np.ndarray, sel, k: int, candidates: np.ndarray) -> None:
    idx = sel.indices
    assert len(idx) == k == len(set(idx.tolist()))
    assert set(idx.tolist()) <= set(candidates.tolist())
    if k > 1:
        assert pdist(points[idx]).min() >= sel.radius_mm - 1e-12  # the packing
    discarded = np.setdiff1d(candidates, idx)
    nearest = cdist(points[discarded], points[idx]).min(axis=1)
    assert nearest.max() <= sel.covering_mm + 1e-12 <= sel.radius_mm + 1e-12  # the covering
    assert np.isclose(nearest.max(), sel.covering_mm)


@pytest.mark.parametrize("points", [grid(), sphere()], ids=["grid", "sphere"])
@pytest.mark.parametrize("k", [1, 2, 30, 100])
def test_nms_spacing_holds_and_exactly_k_remain(points: np.ndarray, k: int) -> None:
    sel = select_spread(points, k)
    check_nms(points, sel, k, np.arange(len(points)))


def test_it_is_nms_with_the_radius_it_reports() -> None:
    points = sphere()
    for k in (30, 100):
        sel = select_spread(points, k)
        assert sel.covering_mm < sel.radius_mm  # no tie at the k-th step on this set
        radius = 0.5 * (sel.covering_mm + sel.radius_mm)  # any radius in (covering, radius]
        rest = np.setdiff1d(np.arange(len(points)), sel.indices)
        order = np.concatenate([sel.indices, rest])
        assert brute_nms(points, order, radius) == sel.indices.tolist()
        assert brute_nms(points, order, sel.radius_mm) == sel.indices.tolist()


@pytest.mark.parametrize("points", [grid(), sphere()], ids=["grid", "sphere"])
def test_the_same_points_for_any_input_order(points: np.ndarray) -> None:
    sel = select_spread(points, 30)
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(len(points))
        other = select_spread(points[perm], 30)
        assert np.array_equal(points[perm][other.indices], points[sel.indices])  # same points, same order
        assert other.radius_mm == sel.radius_mm and other.covering_mm == sel.covering_mm


def test_a_region_restricts_the_candidates_and_indices_stay_global() -> None:
    points = sphere()
    region = points[:, 2] > 5.0  # a cap
    sel = select_spread(points, DEFAULT_COUNTS["tibia"], region=region)
    assert region[sel.indices].all()
    check_nms(points, sel, 30, np.flatnonzero(region))


def test_small_and_empty_regions() -> None:
    points = sphere(50)
    few = np.zeros(50, bool)
    few[[3, 17, 40]] = True
    sel = select_spread(points, 10, region=few)
    assert sorted(sel.indices.tolist()) == [3, 17, 40]
    assert sel.covering_mm == 0.0 and np.isclose(sel.radius_mm, pdist(points[[3, 17, 40]]).min())
    none = select_spread(points, 10, region=np.zeros(50, bool))
    assert none.indices.shape == (0,) and none.radius_mm == np.inf and np.isnan(none.covering_mm)
    one = select_spread(points, 1)
    assert one.radius_mm == np.inf and one.covering_mm > 0
    assert select_spread(np.zeros((0, 3)), 5).indices.shape == (0,)


def test_duplicate_points_are_never_both_kept_while_others_remain() -> None:
    points = np.concatenate([grid((4, 4, 1)), grid((4, 4, 1))])
    sel = select_spread(points, 16)
    assert len({tuple(p) for p in points[sel.indices]}) == 16


def test_distance_to_structure_and_region() -> None:
    mask = np.zeros((10, 12, 8), np.uint8)
    mask[2:5, 3:6, 1:4] = 2
    mask[7, 7, 7] = 5
    vol = Volume(mask, (0.7, 0.4, 0.5), (3.0, -2.0, 1.0), ROTATED)
    index = np.array([[3.0, 4.0, 2.0], [6.0, 4.0, 2.0], [3.0, 4.0, 6.5], [7.0, 7.0, 7.0]])
    points = vol.index_to_world(index)
    d = distance_to_structure(points, vol, [2])
    assert np.allclose(d, [0.0, 2 * 0.7, 3.5 * 0.5, np.linalg.norm([3 * 0.7, 2 * 0.4, 4 * 0.5])])
    assert np.allclose(distance_to_structure(points, vol, [2, 5])[3], 0.0)
    assert near_structure(points, vol, [2], within_mm=1.75).tolist() == [True, True, True, False]
    assert near_structure(points, vol, [2], within_mm=1.0).tolist() == [True, False, False, False]
    assert np.isinf(distance_to_structure(points, vol, [9])).all()
    assert not near_structure(points, vol, [9], within_mm=100.0).any()
    assert distance_to_structure(np.zeros((0, 3)), vol, [2]).shape == (0,)


def test_region_vote() -> None:
    votes = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0]], bool)
    assert region_vote(votes).tolist() == [True, True, False, False]
    assert region_vote(votes, min_fraction=1 / 3).tolist() == [True, True, True, False]
    assert region_vote(votes, min_fraction=1.0).tolist() == [True, False, False, False]
    assert region_vote(np.zeros((0, 4), bool)).tolist() == [False] * 4


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="k must"):
        select_spread(grid(), 0)
    with pytest.raises(ValueError, match="region"):
        select_spread(grid(), 3, region=np.ones(5, bool))
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        select_spread(np.zeros((4, 2)), 3)
    with pytest.raises(ValueError, match="non-finite"):
        select_spread(np.full((4, 3), np.nan), 3)
    with pytest.raises(ValueError, match="within_mm"):
        near_structure(grid(), Volume(np.zeros((2, 2, 2), np.uint8), (1, 1, 1)), [1], within_mm=-1)
    with pytest.raises(ValueError, match="min_fraction"):
        region_vote(np.ones((2, 3), bool), min_fraction=0)

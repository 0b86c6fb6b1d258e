"""Largest connected component per label and the reassignment of islands, against exact arrays and loops."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mskseg.postprocess.components import (
    find_islands,
    group_islands,
    island_voxels,
    kept_components,
    largest_components,
    reassign,
)
from tests.postprocess import brute


def two_bones() -> np.ndarray:
    """Label 1 (a box), label 2 (a box beside it), background elsewhere; 12 x 10 x 8."""
    a = np.zeros((12, 10, 8), np.uint8)
    a[1:6, 1:8, 1:7] = 1
    a[6:11, 1:8, 1:7] = 2
    return a


def test_an_island_in_background_goes_to_background() -> None:
    a = two_bones()
    a[9, 9, 0] = 1  # away from everything (touches no other label's voxel)
    out, changes = largest_components(a, [1, 2])
    assert np.array_equal(out, two_bones())
    assert changes.removed == {0: 0, 1: 1, 2: 0}
    assert changes.added == {0: 1, 1: 0, 2: 0}
    assert changes.changed == 1


def test_an_island_inside_another_label_joins_it() -> None:
    a = two_bones()
    a[8:10, 3:5, 3] = 1  # four voxels of label 1 inside label 2
    expected = two_bones()
    out, changes = largest_components(a, [1, 2])
    assert np.array_equal(out, expected)
    assert changes.removed == {0: 0, 1: 4, 2: 0} and changes.added == {0: 0, 1: 0, 2: 4}


def test_removed_to_background_clears_it() -> None:
    a = two_bones()
    a[8:10, 3:5, 3] = 1
    out, changes = largest_components(a, [1, 2], removed_to="background")
    expected = two_bones()
    expected[8:10, 3:5, 3] = 0
    assert np.array_equal(out, expected)
    assert changes.removed == {0: 0, 1: 4, 2: 0} and changes.added == {0: 4, 1: 0, 2: 0}


def test_the_most_touching_label_wins_and_ties_go_to_the_smaller_value() -> None:
    a = np.zeros((7, 7, 7), np.int16)
    a[:, :, :3] = 3
    a[:, :, 4:] = 5
    a[3, 3, 3] = 7  # the stray voxel of 7, between equal numbers of 3 and 5 neighbours
    a[6, 6, 3] = 7
    a[5, 6, 3] = 7
    a[6, 5, 3] = 7  # 7's largest component: 3 voxels in a corner
    out, _ = largest_components(a, [3, 5, 7])
    assert out[3, 3, 3] == 3  # 9 neighbours of 3, 9 of 5, 8 of background: the smaller value
    a[2, 3, 3] = 5  # now 5 touches it more
    out, _ = largest_components(a, [3, 5, 7])
    assert out[3, 3, 3] == 5


def test_connectivity_decides_what_is_one_component() -> None:
    a = np.zeros((6, 6, 6), np.uint8)
    a[1:3, 1:3, 1:3] = 1
    a[3, 3, 3] = 1  # touches the cube at a corner only
    out26, c26 = largest_components(a, [1], connectivity=26)
    out6, c6 = largest_components(a, [1], connectivity=6)
    assert np.array_equal(out26, a) and c26.changed == 0
    assert out6[3, 3, 3] == 0 and c6.removed[1] == 1
    assert kept_components(a == 1, 18).sum() == 8


@pytest.mark.parametrize("labels", [np.zeros((5, 6, 7), np.uint8), two_bones()])
def test_empty_masks_stay_empty(labels: np.ndarray) -> None:
    out, changes = largest_components(labels, [1, 2, 9])  # 9 absent
    assert np.array_equal(out, labels)
    assert changes.changed == 0 and changes.removed[9] == 0 and changes.added[9] == 0
    out, changes = largest_components(labels, [])
    assert np.array_equal(out, labels) and changes.removed == {0: 0}
    assert not kept_components(np.zeros((3, 3, 3), bool)).any()


def test_equal_components_keep_the_first_in_scan_order() -> None:
    a = np.zeros((9, 4, 4), np.uint8)
    a[1:3, 1:3, 1:3] = 1
    a[6:8, 1:3, 1:3] = 1
    out, _ = largest_components(a, [1])
    assert out[1:3].sum() == 8 and out[6:8].sum() == 0


def test_unlisted_labels_are_left_alone_and_count_as_neighbours() -> None:
    a = two_bones()
    a[0, 9, 7] = 4  # an unlisted stray voxel
    a[2:4, 3:5, 3] = 2  # label 2 inside label 1
    out, _ = largest_components(a, [2])
    assert out[0, 9, 7] == 4
    assert (out[2:4, 3:5, 3] == 1).all()  # label 1 is not listed, but it is what touches the island


def test_the_input_is_not_modified() -> None:
    a = two_bones()
    a[9, 9, 0] = 1
    before = a.copy()
    largest_components(a, [1, 2])
    assert np.array_equal(a, before)


@pytest.mark.parametrize("rank,connectivity", [(1, 6), (2, 18), (3, 26)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_maps_against_loops(seed: int, rank: int, connectivity: int) -> None:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((18, 16, 14)), 1.5)
    labels = np.digitize(field, np.quantile(field, [0.4, 0.6, 0.8])).astype(np.uint8)  # 0..3
    labels[rng.random(labels.shape) < 0.03] = rng.integers(0, 4)  # speckle: many islands
    removed = island_voxels(labels, [1, 2, 3], connectivity=connectivity)
    assert np.array_equal(removed, brute.largest_kept(labels, [1, 2, 3], rank))
    out, changes = reassign(labels, find_islands(labels, [1, 2, 3], connectivity=connectivity),
                            connectivity=connectivity, label_values=[1, 2, 3])
    assert np.array_equal(out, brute.reassign(labels, removed, rank))
    regrouped, _ = reassign(labels, group_islands(labels, removed, connectivity=connectivity),
                            connectivity=connectivity, label_values=[1, 2, 3])
    assert np.array_equal(regrouped, out)
    moved = out != labels
    for v in (0, 1, 2, 3):
        assert changes.removed[v] == np.count_nonzero(moved & (labels == v))
        assert changes.added[v] == np.count_nonzero(moved & (out == v))
    assert sum(changes.removed.values()) == sum(changes.added.values())
    whole, _ = largest_components(labels, [1, 2, 3], connectivity=connectivity)
    assert np.array_equal(whole, out)


def test_keep_more_components_per_label() -> None:
    a = np.zeros((12, 12, 6), np.uint8)
    a[1:4, 1:4, 1:4] = 4  # a plate of 27 voxels
    a[1:4, 7:11, 1:4] = 4  # another of 36 (medial and lateral tibial cartilage)
    a[8, 8, 2] = 4  # a stray voxel
    a[6:10, 1:4, 1:3] = 2  # label 2 in two pieces: 24 and 1 voxels
    a[11, 0, 5] = 2
    out, changes = largest_components(a, [2, 4], keep={4: 2})
    expected = a.copy()
    expected[8, 8, 2] = 0
    expected[11, 0, 5] = 0
    assert np.array_equal(out, expected) and changes.removed == {0: 0, 2: 1, 4: 1}
    out1, _ = largest_components(a, [2, 4])
    assert (out1[1:4, 1:4, 1:4] == 0).all()  # keep 1: the smaller plate is gone
    assert np.array_equal(kept_components(a == 4, keep=3), a == 4)
    removed = island_voxels(a, [2, 4], keep=2)
    assert removed.sum() == 1 and removed[8, 8, 2]  # label 2's two pieces both stay with keep=2
    with pytest.raises(ValueError, match="positive integer"):
        largest_components(a, [4], keep={4: 0})


def test_group_islands_of_any_map() -> None:
    a = two_bones()
    removed = np.zeros(a.shape, bool)
    removed[1:3, 1:3, 1:3] = True  # a corner of label 1
    removed[0, 0, 0] = True  # background: ignored
    islands = group_islands(a, removed)
    assert len(islands.label) == 1 and islands.label[0] == 1 and len(islands.coords) == 8
    out, changes = reassign(a, islands, label_values=[1, 2])
    assert (out[1:3, 1:3, 1:3] == 0).all() and changes.added[0] == 8  # touches background most
    assert len(group_islands(a, np.zeros(a.shape, bool)).coords) == 0


def test_bad_inputs() -> None:
    a = two_bones()
    with pytest.raises(ValueError, match="connectivity"):
        largest_components(a, [1], connectivity=8)
    with pytest.raises(ValueError, match="removed_to"):
        largest_components(a, [1], removed_to="nowhere")
    with pytest.raises(ValueError, match="positive"):
        largest_components(a, [0, 1])
    with pytest.raises(ValueError, match="distinct"):
        largest_components(a, [1, 1])
    with pytest.raises(ValueError, match="integers"):
        largest_components(a.astype(float), [1])
    with pytest.raises(ValueError, match="3D"):
        largest_components(a[0], [1])

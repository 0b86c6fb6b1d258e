"""The hip paper's symmetric components of left/right pairs: against a slow reference, in the chain, in the settings."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from scipy import ndimage

from mskseg.postprocess import PostprocessSettings, close_labels, fill_holes, largest_components, postprocess_labels
from mskseg.postprocess.symmetric import check_pairs, symmetric_components
from mskseg.workflow.settings import postprocess_settings
from tests.conftest import REPO

SPACING = (0.8, 0.8, 1.0)
PAIRS = ((1, 2), (3, 4))  # label 5 in no pair
RANK = {6: 1, 18: 2, 26: 3}


def brute_symmetric(labels: np.ndarray, pairs, connectivity: int) -> np.ndarray:
    """Per member, from the input: scipy label, keep the largest (ties: the first numbered, i.e. first in
    C order), every other component -> the other member."""
    st = ndimage.generate_binary_structure(3, RANK[connectivity])
    out = labels.copy()
    for a, b in pairs:
        for value, other in ((a, b), (b, a)):
            lab, n = ndimage.label(labels == value, st)
            if n < 2:
                continue
            sizes = [np.count_nonzero(lab == i) for i in range(1, n + 1)]
            largest = 1 + sizes.index(max(sizes))
            for i in range(1, n + 1):
                if i != largest:
                    out[lab == i] = other
    return out


def random_map(seed: int) -> np.ndarray:
    """12 x 10 x 8 values 0..5 in blobs, with speckle: several components per label."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((12, 10, 8)), 1.0)
    labels = np.digitize(field, np.quantile(field, [0.35, 0.5, 0.62, 0.75, 0.88])).astype(np.uint8)  # 0..5
    speckle = rng.random(labels.shape) < 0.05
    labels[speckle] = rng.integers(0, 6, size=int(speckle.sum()))
    return labels


@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_maps_against_the_slow_reference(seed: int, connectivity: int) -> None:
    labels = random_map(seed)
    before = labels.copy()
    out, changes = symmetric_components(labels, PAIRS, connectivity=connectivity)
    expected = brute_symmetric(labels, PAIRS, connectivity)
    assert np.array_equal(out, expected) and out.dtype == labels.dtype
    assert np.array_equal(labels, before)  # the input is not modified
    assert (expected != labels).any()  # the maps do move voxels
    moved = expected != labels
    assert changes.step == "symmetric_components" and set(changes.removed) == {0, 1, 2, 3, 4}
    for v in (0, 1, 2, 3, 4):
        assert changes.removed[v] == np.count_nonzero(moved & (labels == v))
        assert changes.added[v] == np.count_nonzero(moved & (expected == v))
    assert changes.removed[0] == changes.added[0] == 0 and np.array_equal(out == 5, labels == 5)


@pytest.mark.parametrize("seed", [0, 4])
def test_the_order_of_members_and_pairs_does_not_matter(seed: int) -> None:
    labels = random_map(seed)
    out, changes = symmetric_components(labels, PAIRS)
    for pairs in (((2, 1), (4, 3)), ((3, 4), (1, 2)), ([4, 3], [2, 1])):
        again, again_changes = symmetric_components(labels, pairs)
        assert np.array_equal(again, out) and again_changes == changes


def two_femurs() -> np.ndarray:
    """Left femur (1) and right femur (2), two blocks apart; a sacrum (5) between them; 16 x 10 x 8."""
    a = np.zeros((16, 10, 8), np.uint8)
    a[1:6, 1:8, 1:7] = 1
    a[10:15, 1:8, 1:7] = 2
    a[7:9, 3:6, 3:5] = 5
    return a


def test_a_left_piece_on_the_right_femur_becomes_right_and_a_stray_island_is_removed_next() -> None:
    clean = two_femurs()
    a = clean.copy()
    a[12:14, 3:5, 3] = 1  # left femur voxels inside the right femur (4)
    a[14, 1:8, 1:7] = 1  # and a slice of the right femur's side labelled left (42)
    a[0, 9, 7] = 2  # a right-femur voxel away from everything
    out, changes = symmetric_components(a, [(1, 2)])
    expected = clean.copy()
    expected[0, 9, 7] = 1  # it has become left, still floating
    assert np.array_equal(out, expected)
    assert changes.removed == {0: 0, 1: 46, 2: 1} and changes.added == {0: 0, 1: 1, 2: 46}
    chained, report = postprocess_labels(a, [1, 2, 5], spacing=SPACING,
                                         settings=PostprocessSettings(symmetric_pairs=[[1, 2]]))
    assert np.array_equal(chained, clean)
    assert [c.step for c in report] == ["symmetric_components", "largest_component", "fill_holes"]
    assert report[0] == changes and report[1].removed == {0: 0, 1: 1, 2: 0, 5: 0}
    plain, _ = postprocess_labels(a, [1, 2, 5], spacing=SPACING)
    assert (plain[12:15] == 1).sum() == 0 and (plain[14] == 0).all()  # without it, the side slice is lost


def test_edge_cases() -> None:
    a = two_femurs()
    a[1:6, 1:8, 1:7] = 2  # both femurs labelled right, left absent: the smaller block becomes left
    a[1, 1, 1] = 0
    out, changes = symmetric_components(a, [(1, 2)])
    assert (out[1:6, 1:8, 1:7] == 1).sum() == 5 * 7 * 6 - 1 and (out[10:15, 1:8, 1:7] == 2).all()
    assert changes.removed[2] == changes.added[1] == 5 * 7 * 6 - 1
    one, changes = symmetric_components(two_femurs(), [(1, 2), (3, 4)])  # one component each; 3, 4 absent
    assert np.array_equal(one, two_femurs()) and changes.changed == 0 and set(changes.removed) == {0, 1, 2, 3, 4}
    empty = np.zeros((4, 5, 6), np.int16)
    out, changes = symmetric_components(empty, [(1, 2)])
    assert np.array_equal(out, empty) and out is not empty and changes.changed == 0
    out, changes = symmetric_components(empty, [])
    assert changes.removed == {0: 0} and np.array_equal(out, empty)
    ties = np.zeros((9, 4, 4), np.uint8)
    ties[1:3, 1:3, 1:3] = 1
    ties[6:8, 1:3, 1:3] = 1  # equal sizes: the first in C order stays
    out, _ = symmetric_components(ties, [(2, 1)])
    assert (out[1:3] == 1).sum() == 8 and (out[6:8] == 2).sum() == 8


def test_connectivity_decides_what_is_one_component() -> None:
    a = np.zeros((6, 6, 6), np.uint8)
    a[1:3, 1:3, 1:3] = 1
    a[3, 3, 3] = 1  # touches the cube at a corner only
    assert np.array_equal(symmetric_components(a, [(1, 2)], connectivity=26)[0], a)
    assert symmetric_components(a, [(1, 2)], connectivity=6)[0][3, 3, 3] == 2
    assert symmetric_components(a, [(1, 2)], connectivity=18)[0][3, 3, 3] == 2
    with pytest.raises(ValueError, match="connectivity"):
        symmetric_components(np.zeros((3, 3, 3), np.uint8), [(1, 2)], connectivity=8)


@pytest.mark.parametrize("pairs,match", [
    ([(1, 1)], "two different positive"), ([(0, 2)], "two different positive"), ([(1,)], "two different"),
    ([(1, 2, 3)], "two different"), ([(1.5, 2)], "two different"), ([("1", 2)], "two different"),
    ([(True, 2)], "two different"), ([3], "two different"), ([(1, 2), (2, 3)], r"\[2\] are in more than one"),
    ([(1, 2), (2, 1)], "more than one")])
def test_bad_pairs(pairs, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_pairs(pairs)
    with pytest.raises(ValueError, match=match):
        PostprocessSettings(symmetric_pairs=pairs)
    with pytest.raises(ValueError, match=match):
        symmetric_components(two_femurs(), pairs)


def test_settings_take_yaml_lists_and_round_trip() -> None:
    settings = PostprocessSettings.from_dict(yaml.safe_load("symmetric_pairs: [[1, 2], [3, 4]]"))
    assert settings.symmetric_pairs == ((1, 2), (3, 4)) and check_pairs(np.array([[1, 2]])) == ((1, 2),)
    assert settings.to_dict()["symmetric_pairs"] == [[1, 2], [3, 4]]
    assert PostprocessSettings.from_dict(settings.to_dict()) == settings
    assert PostprocessSettings().symmetric_pairs == () and PostprocessSettings().to_dict()["symmetric_pairs"] == []
    with pytest.raises(ValueError, match=r"symmetric pair values \[4\] are not among the label values"):
        postprocess_labels(two_femurs(), [1, 2, 3, 5], spacing=SPACING, settings=settings)


@pytest.mark.parametrize("settings", [PostprocessSettings(),
                                      PostprocessSettings(connectivity=6, removed_to="background"),
                                      PostprocessSettings(closing_radius_mm=1.0, keep_components={3: 2}),
                                      PostprocessSettings(largest_component=False, fill_holes=False)])
def test_without_pairs_the_chain_is_the_existing_steps(settings: PostprocessSettings) -> None:
    labels, values = random_map(5), [1, 2, 3, 4, 5]
    out, report = postprocess_labels(labels, values, spacing=SPACING, settings=settings)
    expected, steps = labels.copy(), []
    if settings.largest_component:
        expected, c = largest_components(expected, values, connectivity=settings.connectivity,
                                         removed_to=settings.removed_to, keep=settings.keep_components)
        steps.append(c)
    if settings.closing_radius_mm > 0:
        expected, c = close_labels(expected, values, radius_mm=settings.closing_radius_mm, spacing=SPACING)
        steps.append(c)
    if settings.fill_holes:
        expected, c = fill_holes(expected, values, connectivity=settings.connectivity)
        steps.append(c)
    assert np.array_equal(out, expected) and report == steps
    assert all(c.step != "symmetric_components" for c in report)


def test_the_symmetric_step_uses_the_chain_connectivity() -> None:
    labels = random_map(6)
    for connectivity in (6, 26):
        settings = PostprocessSettings(symmetric_pairs=PAIRS, connectivity=connectivity, largest_component=False,
                                       fill_holes=False)
        out, report = postprocess_labels(labels, [1, 2, 3, 4, 5], spacing=SPACING, settings=settings)
        assert np.array_equal(out, brute_symmetric(labels, PAIRS, connectivity))
        assert [c.step for c in report] == ["symmetric_components"]


# ---- the workflow's settings of a dataset ------------------------------------------------------------
def _datasets() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]


def test_postprocess_settings_give_the_pairs_as_label_values() -> None:
    hip, knee = _datasets()["hip"], _datasets()["knee"]
    assert postprocess_settings(hip)["symmetric_pairs"] == [[1, 2], [3, 4]]  # default: on, the dataset has pairs
    on = postprocess_settings({**hip, "postprocess": {"symmetric": True, "fill_holes": False}})
    assert on == {"symmetric_pairs": [[1, 2], [3, 4]], "fill_holes": False, "keep_components": {}}
    assert PostprocessSettings.from_dict(on).symmetric_pairs == ((1, 2), (3, 4))
    off = postprocess_settings({**hip, "postprocess": {"symmetric": False}})
    assert off == {"keep_components": {}}
    assert "symmetric_pairs" not in postprocess_settings(knee)  # no pairs: the settings as before
    assert postprocess_settings({**knee, "postprocess": {"symmetric": True}}) == {"keep_components": {}}
    swapped = {**hip, "symmetric_pairs": [["femur_right", "femur_left"]]}
    assert postprocess_settings(swapped)["symmetric_pairs"] == [[2, 1]]


def test_the_schema_takes_the_symmetric_switch() -> None:
    from mskseg.workflow.config import validate_schema

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    good = copy.deepcopy(config)
    good["datasets"]["hip"]["postprocess"] = {"symmetric": False}
    validate_schema(good)
    assert "symmetric" not in good["datasets"]["knee"]["postprocess"]  # no schema default: it follows the pairs
    bad = copy.deepcopy(config)
    bad["datasets"]["hip"]["postprocess"] = {"symmetric": "yes"}
    with pytest.raises(Exception, match="is not of type 'boolean'"):
        validate_schema(bad)

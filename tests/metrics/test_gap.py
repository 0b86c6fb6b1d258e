"""GapDice and the collision count of evaluate_arrays against whole-volume distance transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from mskseg.metrics.evaluate import EvaluationSettings, evaluate_arrays
from tests.metrics.brute import LABELS, SHAPE, brute_gap_and_collisions, label_map, perturbed

SPACING = (0.7, 0.3646, 1.3)



def check_against_brute(pred, ref, gap_eps, coll_eps, threads=1):
    settings = EvaluationSettings(gap_eps_mm=gap_eps, collision_eps_mm=coll_eps, threads=threads)
    table = evaluate_arrays(pred, ref, SPACING, LABELS, settings).table.set_index("structure")
    expected = brute_gap_and_collisions(pred, ref, SPACING, list(LABELS.values()), gap_eps, coll_eps)
    for name, c in LABELS.items():
        row = table.loc[name]
        dice, n_ref, n_pred, tp, coll = expected[c]
        assert (row["gap_ref_voxels"], row["gap_pred_voxels"], row["gap_tp_voxels"]) == (n_ref, n_pred, tp), name
        if math.isnan(dice):
            assert math.isnan(row["gap_dice"]) and row["gap_flag"] == "no_gap", name
        else:
            assert row["gap_dice"] == pytest.approx(dice, abs=1e-12), name
            assert row["gap_flag"] == "ok", name
        assert row["collisions"] == coll, name
        assert row["collisions_mm3"] == pytest.approx(coll * np.prod(SPACING))
    assert table.loc["all", "collisions"] == sum(v[4] for v in expected.values())
    return table, expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gap_dice_and_collisions_match_brute_force(seed):
    ref = label_map(seed)
    pred = perturbed(ref, seed + 10)
    _table, expected = check_against_brute(pred, ref, gap_eps=4.0, coll_eps=2.0)
    # the cases are not trivial: gaps and collisions exist, and the prediction is imperfect there
    assert all(v[1] > 0 for v in expected.values())
    assert sum(v[4] for v in expected.values()) > 0
    assert any(v[0] < 1 for v in expected.values())
    classes = list(LABELS.values())
    d = np.sort(np.stack([ndimage.distance_transform_edt(ref != c, sampling=SPACING) for c in classes]), axis=0)
    gap = d[0] + d[1] < 4.0
    assert ((pred != 0) & (ref == 0) & gap).any()  # false positives in the background part of G
    assert ((pred != 0) & (ref != 0) & (pred != ref) & gap).any()  # and inside other classes


def test_gap_dice_and_collisions_other_eps():
    ref = label_map(3)
    pred = perturbed(ref, 13)
    check_against_brute(pred, ref, gap_eps=10.0, coll_eps=1.3)
    check_against_brute(pred, ref, gap_eps=1.5, coll_eps=3.0)


def test_gap_dice_perfect_prediction_is_one_and_touching_classes_collide():
    ref = label_map(4)
    table, _expected = check_against_brute(ref.copy(), ref, gap_eps=4.0, coll_eps=2.0)
    for name in LABELS:
        assert table.loc[name, "gap_dice"] == pytest.approx(1.0)
    # the reference classes are at least 2 voxels (0.73 mm along axis 1) apart: some collide within 2 mm
    assert table.loc["all", "collisions"] > 0


def test_false_positive_inside_other_class_counts_in_gap():
    ref = np.zeros((12, 12, 12), np.uint8)
    ref[1:6, 1:11, 1:11] = 1
    ref[7:11, 1:11, 1:11] = 2
    pred = ref.copy()
    pred[7, 5, 5] = 1  # next to class 1: inside the gap region of class 2
    pred[10, 5, 5] = 1  # far from class 1 (eps 2 mm, spacing 1): outside it
    spacing = (1.0, 1.0, 1.0)
    labels = {"a": 1, "b": 2}
    table = evaluate_arrays(pred, ref, spacing, labels,
                            EvaluationSettings(gap_eps_mm=2.5, collision_eps_mm=1.0)).table.set_index("structure")
    # G in class 1: the slab i=5 (d2 = 2 mm); in class 2: the slab i=7
    assert table.loc["a", "gap_ref_voxels"] == 100
    assert table.loc["a", "gap_pred_voxels"] == 101
    assert table.loc["a", "gap_tp_voxels"] == 100
    assert table.loc["a", "gap_dice"] == pytest.approx(200 / 201)
    assert table.loc["b", "gap_ref_voxels"] == 100 and table.loc["b", "gap_pred_voxels"] == 99
    expected = brute_gap_and_collisions(pred, ref, spacing, [1, 2], 2.5, 1.0)
    assert table.loc["a", "collisions"] == expected[1][4]
    assert table.loc["b", "collisions"] == expected[2][4]


def test_single_class_has_no_gap_and_no_collisions():
    ref = label_map(5, classes=(1,))
    pred = perturbed(ref, 15)
    pred[pred > 1] = 1
    table, _ = check_against_brute(pred, ref, gap_eps=10.0, coll_eps=2.0)
    row = table.loc["femur"]
    assert row["gap_flag"] == "no_gap" and math.isnan(row["gap_dice"])
    assert row["collisions"] == 0
    assert table.loc["all", "collisions"] == 0


def test_classes_far_apart_have_no_collisions_and_no_gap():
    ref = np.zeros(SHAPE, np.uint8)
    ref[2:10, 3:15, 2:8] = 1
    ref[24:34, 3:15, 2:8] = 2  # 15 voxels x 0.7 mm = 10.5 mm apart along axis 0
    ref[24:34, 30:38, 12:20] = 3
    table, _expected = check_against_brute(ref.copy(), ref, gap_eps=5.0, coll_eps=2.0)
    assert table.loc["all", "collisions"] == 0
    for name in ("femur", "tibia", "patella", "fibula"):
        assert table.loc[name, "gap_flag"] == "no_gap"


def test_collisions_at_exactly_eps():
    spacing = (0.5, 1.0, 1.0)
    pred = np.zeros((14, 5, 5), np.uint8)
    pred[0:3, :, :] = 1
    pred[7:10, :, :] = 2  # 5 voxels of 0.5 mm: class boundaries exactly 2.5 mm apart
    ref = pred.copy()
    labels = {"a": 1, "b": 2}
    at = evaluate_arrays(pred, ref, spacing, labels, EvaluationSettings(gap_eps_mm=None, collision_eps_mm=2.5))
    below = evaluate_arrays(pred, ref, spacing, labels,
                            EvaluationSettings(gap_eps_mm=None, collision_eps_mm=2.5 - 1e-6))
    assert list(at.table["collisions"]) == [25, 25, 50]
    assert list(below.table["collisions"]) == [0, 0, 0]
    assert "gap_dice" not in at.table


def test_gap_at_exactly_eps_is_excluded():
    spacing = (0.5, 1.0, 1.0)
    ref = np.zeros((14, 5, 5), np.uint8)
    ref[0:3, :, :] = 1
    ref[7:10, :, :] = 2  # 2.5 mm apart: G (strict d1 + d2 < eps) is empty for eps = 2.5
    labels = {"a": 1, "b": 2}
    at = evaluate_arrays(ref, ref, spacing, labels, EvaluationSettings(gap_eps_mm=2.5)).table
    above = evaluate_arrays(ref, ref, spacing, labels, EvaluationSettings(gap_eps_mm=2.5 + 1e-6)).table
    assert list(at["gap_flag"][:2]) == ["no_gap", "no_gap"]
    assert list(above["gap_ref_voxels"][:2]) == [25, 25]
    # background voxels between the classes are in G too but belong to neither class
    assert list(above["gap_dice"][:2]) == [1.0, 1.0]
    # a false positive in the background between them: d1 + d2 = 1.0 + 1.5 mm, exactly eps
    pred = ref.copy()
    pred[4, 2, 2] = 1
    at = evaluate_arrays(pred, ref, spacing, labels, EvaluationSettings(gap_eps_mm=2.5)).table
    above = evaluate_arrays(pred, ref, spacing, labels, EvaluationSettings(gap_eps_mm=2.5 + 1e-6)).table
    assert at.loc[0, "gap_flag"] == "no_gap" and at.loc[0, "gap_pred_voxels"] == 0
    assert above.loc[0, "gap_pred_voxels"] == 26
    assert above.loc[0, "gap_dice"] == pytest.approx(50 / 51)

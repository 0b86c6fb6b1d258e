"""evaluate_pair / evaluate_arrays: hand-computed tables, the confusion matrix, empty structures,
input checks, thread independence and per-slice Dice along a world axis."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mskseg.metrics.evaluate import (
    COLUMNS,
    EvaluationInputError,
    EvaluationSettings,
    evaluate_arrays,
    evaluate_pair,
    fov_axis_of,
)
from mskseg.metrics.fov import slice_dice
from mskseg.metrics.overlap import mean_iou
from mskseg.volume import Volume
from tests.conftest import ROTATED
from tests.metrics.brute import LABELS, brute_gap_and_collisions, brute_surface, label_map, perturbed

SPACING = (0.8, 0.5, 1.5)
SHAPE = (12, 14, 10)
AB = {"a": 1, "b": 2}


IDENTITY = np.eye(3)


def two_box_pair(spacing=SPACING, direction=IDENTITY):
    """Structure a: a 4x5x3 box, predicted one voxel (1.5 mm) further along axis 2; b: a perfect 3x4x4 box."""
    ref = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    ref[3:7, 4:9, 2:5] = 1
    pred[3:7, 4:9, 3:6] = 1
    ref[8:11, 2:6, 5:9] = 2
    pred[8:11, 2:6, 5:9] = 2
    origin = (10.0, -4.0, 2.5)
    return Volume(pred, spacing, origin, direction), Volume(ref, spacing, origin, direction)


def brute_confusion(pred, ref, values):
    m = np.zeros((len(values), len(values)), np.int64)
    for i, r in enumerate(values):
        for j, p in enumerate(values):
            m[i, j] = np.count_nonzero((ref == r) & (pred == p))
    return m


def test_two_boxes_hand_values():
    pred, ref = two_box_pair()
    ev = evaluate_pair(pred, ref, AB, pred_name="p.nii.gz", ref_name="r.nii.gz")
    t = ev.table.set_index("structure")
    assert list(ev.table.columns) == COLUMNS
    assert list(ev.table["structure"]) == ["a", "b", "all"]
    voxel = 0.8 * 0.5 * 1.5
    a = t.loc["a"]
    assert (a["label"], a["ref_voxels"], a["pred_voxels"], a["tp"], a["fp"], a["fn"]) == (1, 60, 60, 40, 20, 20)
    assert a["ref_volume_mm3"] == pytest.approx(60 * voxel)
    assert a["pred_volume_mm3"] == pytest.approx(60 * voxel)
    assert a["dice"] == pytest.approx(2 / 3)
    assert a["iou"] == pytest.approx(0.5)
    assert a["voe"] == pytest.approx(0.5)
    assert a["ravd"] == pytest.approx(0.0)
    assert a["hd_mm"] == pytest.approx(1.5)
    assert a["surface_flag"] == "ok"
    hd, hd95, assd = brute_surface(pred.array == 1, ref.array == 1, SPACING)
    assert (a["hd_mm"], a["hd95_mm"], a["assd_mm"]) == pytest.approx((hd, hd95, assd), abs=1e-9)
    b = t.loc["b"]
    assert (b["tp"], b["fp"], b["fn"], b["dice"], b["hd_mm"], b["assd_mm"]) == (48, 0, 0, 1.0, 0.0, 0.0)
    # the "all" row: means of the structures and sums of the counts
    al = t.loc["all"]
    assert al["dice"] == pytest.approx((2 / 3 + 1) / 2)
    assert al["iou"] == pytest.approx(0.75)
    assert al["hd_mm"] == pytest.approx(0.75)
    assert (al["tp"], al["fp"], al["fn"], al["ref_voxels"]) == (88, 20, 20, 108)
    assert al["ref_volume_mm3"] == pytest.approx(108 * voxel)
    total = np.prod(SHAPE)
    bg = total - 60 - 48 - 20
    assert al["mean_iou"] == pytest.approx((bg / (bg + 40) + 0.5 + 1.0) / 3)
    # the confusion matrix: rows reference, columns prediction
    expected = np.array([[bg, 20, 0], [20, 40, 0], [0, 0, 48]])
    np.testing.assert_array_equal(ev.confusion.to_numpy(), expected)
    assert list(ev.confusion.index) == ["background", "a", "b"]
    assert list(ev.confusion.columns) == ["background", "a", "b"]
    assert ev.confusion.index.name == "reference" and ev.confusion.columns.name == "prediction"
    assert ev.fov.empty


@pytest.mark.parametrize("seed", [0, 1])
def test_confusion_and_counts_match_brute_force(seed):
    ref = label_map(seed)
    pred = perturbed(ref, seed + 20)
    spacing = (0.7, 0.3646, 1.3)
    ev = evaluate_arrays(pred, ref, spacing, LABELS)
    values = [0, *list(LABELS.values())]
    m = brute_confusion(pred, ref, values)
    np.testing.assert_array_equal(ev.confusion.to_numpy(), m)
    assert ev.confusion.to_numpy().sum() == pred.size
    t = ev.table.set_index("structure")
    for i, (name, c) in enumerate(LABELS.items(), start=1):
        assert t.loc[name, "tp"] == m[i, i]
        assert t.loc[name, "fp"] == m[:, i].sum() - m[i, i]
        assert t.loc[name, "fn"] == m[i, :].sum() - m[i, i]
        p, y = pred == c, ref == c
        assert t.loc[name, "dice"] == pytest.approx(2 * (p & y).sum() / (p.sum() + y.sum()))
        hd, hd95, assd = brute_surface(p, y, spacing)
        assert (t.loc[name, "hd_mm"], t.loc[name, "hd95_mm"], t.loc[name, "assd_mm"]) == pytest.approx(
            (hd, hd95, assd), abs=1e-9)
    structures = ev.table[ev.table["structure"] != "all"]
    assert t.loc["all", "dice"] == pytest.approx(structures["dice"].mean())
    assert t.loc["all", "hd95_mm"] == pytest.approx(structures["hd95_mm"].mean())
    assert t.loc["all", "mean_iou"] == pytest.approx(mean_iou(m))


def test_sparse_label_values_in_any_order():
    ref = label_map(3)
    pred = perturbed(ref, 5)
    lut = np.array([0, 300, 7, 2, 9], np.uint16)
    ref, pred = lut[ref], lut[pred]
    labels = {"x": 7, "y": 300, "z": 2, "w": 9, "absent": 4}
    spacing = (0.7, 0.3646, 1.3)
    ev = evaluate_arrays(pred, ref, spacing, labels, EvaluationSettings(gap_eps_mm=4.0))
    values = [0, *list(labels.values())]
    np.testing.assert_array_equal(ev.confusion.to_numpy(), brute_confusion(pred, ref, values))
    assert list(ev.confusion.index) == ["background", "x", "y", "z", "w", "absent"]
    t = ev.table.set_index("structure")
    expected = brute_gap_and_collisions(pred, ref, spacing, list(labels.values()), 4.0, 2.0)
    for name, c in labels.items():
        assert t.loc[name, "label"] == c
        assert t.loc[name, "tp"] == np.count_nonzero((pred == c) & (ref == c))
        _dice, n_ref, n_pred, tp, coll = expected[c]
        assert (t.loc[name, "gap_ref_voxels"], t.loc[name, "gap_pred_voxels"], t.loc[name, "gap_tp_voxels"],
                t.loc[name, "collisions"]) == (n_ref, n_pred, tp, coll)
    assert t.loc["absent", "surface_flag"] == "both_empty"


def test_structure_on_volume_edge():
    # structures cut by the field of view: border voxels lie on the cut
    ref = label_map(2)
    pred = perturbed(ref, 9)
    ref, pred = ref[8:30, 10:30, 4:17], pred[8:30, 10:30, 4:17]
    for c in LABELS.values():  # every structure is cut by the edge
        m = ref == c
        assert m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any() or m[:, :, 0].any() or m[:, :, -1].any()
    spacing = (0.7, 0.3646, 1.3)
    t = evaluate_arrays(pred, ref, spacing, LABELS).table.set_index("structure")
    for name, c in LABELS.items():
        hd, _hd95, assd = brute_surface(pred == c, ref == c, spacing)
        assert (t.loc[name, "hd_mm"], t.loc[name, "assd_mm"]) == pytest.approx((hd, assd), abs=1e-9)


def test_empty_prediction_reference_and_absent_structure():
    ref = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    ref[2:6, 2:6, 2:6] = 1  # a: only in the reference
    pred[7:10, 8:12, 3:7] = 2  # b: only in the prediction; c: nowhere
    ev = evaluate_pair(Volume(pred, SPACING), Volume(ref, SPACING), {"a": 1, "b": 2, "c": 3})
    t = ev.table.set_index("structure")
    a, b, c = t.loc["a"], t.loc["b"], t.loc["c"]
    assert (a["dice"], a["iou"], a["voe"], a["ravd"]) == (0.0, 0.0, 1.0, 1.0)
    assert a["surface_flag"] == "empty_prediction" and math.isnan(a["hd_mm"]) and math.isnan(a["assd_mm"])
    assert (b["dice"], b["iou"], b["voe"]) == (0.0, 0.0, 1.0) and math.isnan(b["ravd"])
    assert b["surface_flag"] == "empty_reference" and math.isnan(b["hd95_mm"])
    assert (c["dice"], c["iou"], c["voe"], c["ravd"]) == (1.0, 1.0, 0.0, 0.0)
    assert c["surface_flag"] == "both_empty" and math.isnan(c["hd_mm"])
    assert c["gap_flag"] == "no_gap" and math.isnan(c["gap_dice"])
    assert (a["collisions"], b["collisions"], c["collisions"]) == (0, 0, 0)
    assert (c["ref_voxels"], c["pred_voxels"], c["tp"]) == (0, 0, 0)
    assert math.isnan(t.loc["all", "hd_mm"])
    assert t.loc["all", "dice"] == pytest.approx(1 / 3)
    assert ev.confusion.to_numpy().sum() == np.prod(SHAPE)
    assert ev.confusion.loc["a", "background"] == 64 and ev.confusion.loc["background", "b"] == 48


def test_both_volumes_empty():
    zeros = Volume(np.zeros(SHAPE, np.uint8), SPACING)
    ev = evaluate_pair(zeros, zeros, AB, fov_axis="SI")
    t = ev.table.set_index("structure")
    assert list(t.loc[["a", "b"], "surface_flag"]) == ["both_empty", "both_empty"]
    assert list(t.loc[["a", "b"], "dice"]) == [1.0, 1.0]
    assert t.loc["all", "mean_iou"] == 1.0
    np.testing.assert_array_equal(ev.confusion.to_numpy(), [[np.prod(SHAPE), 0, 0], [0, 0, 0], [0, 0, 0]])
    assert ev.fov.empty


# ----------------------------------------------------------------------------- input errors

def test_grid_mismatches_name_the_prediction_file():
    pred, ref = two_box_pair()
    cases = [Volume(pred.array, (0.8, 0.5, 1.6), pred.origin),
             Volume(pred.array, SPACING, (10.0, -4.0, 3.5)),
             Volume(np.zeros((12, 14, 11), np.uint8), SPACING, pred.origin),
             Volume(pred.array, SPACING, pred.origin, np.diag([-1.0, 1.0, 1.0]))]
    for bad in cases:
        with pytest.raises(EvaluationInputError, match=r"subject07_pred.nii.gz"):
            evaluate_pair(bad, ref, AB, pred_name="subject07_pred.nii.gz", ref_name="subject07_ref.nii.gz")
    assert issubclass(EvaluationInputError, ValueError)


def test_unknown_label_value_is_named():
    pred, ref = two_box_pair()
    arr = pred.array.copy()
    arr[0, 0, 0] = 7
    with pytest.raises(EvaluationInputError, match=r"p\.nii\.gz.*7"):
        evaluate_pair(pred.with_array(arr), ref, AB, pred_name="p.nii.gz", ref_name="r.nii.gz")
    with pytest.raises(EvaluationInputError, match=r"r\.nii\.gz.*7"):
        evaluate_pair(ref, pred.with_array(arr), AB, pred_name="r0.nii.gz", ref_name="r.nii.gz")


def test_non_integral_float_labels_are_rejected():
    pred, ref = two_box_pair()
    arr = pred.array.astype(np.float32)
    arr[5, 5, 4] = 1.5
    with pytest.raises(EvaluationInputError, match=r"p.nii.gz"):
        evaluate_pair(pred.with_array(arr), ref, AB, pred_name="p.nii.gz")
    arr[5, 5, 4] = np.nan
    with pytest.raises(EvaluationInputError, match=r"p.nii.gz"):
        evaluate_pair(pred.with_array(arr), ref, AB, pred_name="p.nii.gz")


def test_large_float_label_is_not_wrapped_into_a_known_label():
    # 65537.0 is integral but no label of the dataset; cast to uint16 it would read as label 1
    pred, ref = two_box_pair()
    arr = pred.array.astype(np.float32)
    arr[0, 0, 0] = 65537.0
    with pytest.raises(EvaluationInputError, match="65537"):
        evaluate_pair(pred.with_array(arr), ref, AB, pred_name="p.nii.gz")


def test_integral_float_and_bool_labels_are_accepted():
    pred, ref = two_box_pair()
    as_float = evaluate_pair(pred.with_array(pred.array.astype(np.float64)), ref, AB)
    as_int = evaluate_pair(pred, ref, AB)
    pd.testing.assert_frame_equal(as_float.table, as_int.table)
    mask = Volume(ref.array == 1, SPACING)
    t = evaluate_pair(mask, mask, {"a": 1}).table
    assert t.loc[0, "dice"] == 1.0


def test_negative_labels_are_rejected():
    pred, ref = two_box_pair()
    arr = pred.array.astype(np.int16)
    arr[0, 0, 0] = -1
    with pytest.raises(EvaluationInputError, match=r"p.nii.gz"):
        evaluate_pair(pred.with_array(arr), ref, AB, pred_name="p.nii.gz")


# ----------------------------------------------------------------------------- threads, fov

def test_threads_give_identical_results():
    ref = label_map(6)
    pred = perturbed(ref, 26)
    spacing = (0.7, 0.3646, 1.3)
    one = evaluate_arrays(pred, ref, spacing, LABELS, EvaluationSettings(threads=1, fov_axis=1))
    two = evaluate_arrays(pred, ref, spacing, LABELS, EvaluationSettings(threads=2, fov_axis=1))
    pd.testing.assert_frame_equal(one.table, two.table)
    pd.testing.assert_frame_equal(one.confusion, two.confusion)
    pd.testing.assert_frame_equal(one.fov, two.fov)


def brute_fov(pred, ref, axis):
    """Per-slice Dice over the reference's extent along axis, positions 0..100 from the low index."""
    others = tuple(a for a in range(3) if a != axis)
    held = np.flatnonzero(ref.any(axis=others))
    lo, hi = held[0], held[-1]
    rows = []
    for k in range(lo, hi + 1):
        p, r = np.take(pred, k, axis), np.take(ref, k, axis)
        denom = p.sum() + r.sum()
        rows.append((k, (k - lo) / (hi - lo) * 100, 2 * (p & r).sum() / denom if denom else np.nan))
    return pd.DataFrame(rows, columns=["slice", "position_pct", "dice"])


@pytest.mark.parametrize("world,axis", [("LR", 0), ("AP", 1), ("SI", 2)])
def test_fov_identity_direction(world, axis):
    pred, ref = two_box_pair()
    ev = evaluate_pair(pred, ref, AB, fov_axis=world)
    assert list(ev.fov.columns) == ["structure", "slice", "position_pct", "dice"]
    for name, c in AB.items():
        got = ev.fov[ev.fov["structure"] == name].drop(columns="structure").reset_index(drop=True)
        expected = brute_fov(pred.array == c, ref.array == c, axis)
        np.testing.assert_array_equal(got["slice"].to_numpy(), expected["slice"].to_numpy())
        np.testing.assert_allclose(got["position_pct"].to_numpy(float), expected["position_pct"].to_numpy(float))
        np.testing.assert_allclose(got["dice"].to_numpy(float), expected["dice"].to_numpy(float))


def test_fov_along_axis_2_hand_values():
    pred, ref = two_box_pair()
    fov = evaluate_pair(pred, ref, AB, fov_axis="SI").fov
    a = fov[fov["structure"] == "a"]
    # reference slices 2, 3, 4; prediction slices 3, 4, 5
    assert list(a["slice"]) == [2, 3, 4]
    assert list(a["position_pct"]) == [0.0, 50.0, 100.0]
    assert list(a["dice"]) == [0.0, 1.0, 1.0]


def test_fov_flipped_direction_reverses_positions():
    pred, ref = two_box_pair()
    plain = evaluate_pair(pred, ref, AB, fov_axis="LR").fov
    flipped_dir = np.diag([-1.0, 1.0, 1.0])
    pred_f, ref_f = two_box_pair(direction=flipped_dir)
    assert fov_axis_of(ref_f, "LR") == (0, True)
    flipped = evaluate_pair(pred_f, ref_f, AB, fov_axis="LR").fov
    np.testing.assert_array_equal(flipped["slice"], plain["slice"])
    np.testing.assert_allclose(flipped["position_pct"], 100.0 - plain["position_pct"])
    np.testing.assert_allclose(flipped["dice"].to_numpy(float), plain["dice"].to_numpy(float))
    assert not np.array_equal(flipped["position_pct"], plain["position_pct"])


def test_fov_axis_of_rotated_direction():
    vol = Volume(np.zeros((2, 2, 2)), (1, 1, 1), direction=ROTATED)
    # ROTATED: index axis 0 -> +AP, axis 1 -> -SI, axis 2 -> -LR
    assert fov_axis_of(vol, "LR") == (2, True)
    assert fov_axis_of(vol, "AP") == (0, False)
    assert fov_axis_of(vol, "SI") == (1, True)
    with pytest.raises(ValueError):
        fov_axis_of(vol, "XY")


def test_fov_slices_are_volume_indices_on_a_cropped_frame():
    ref = label_map(1)
    pred = perturbed(ref, 31)
    spacing = (0.7, 0.3646, 1.3)
    ev = evaluate_arrays(pred, ref, spacing, LABELS, EvaluationSettings(fov_axis=0, fov_flip=True))
    for name, c in LABELS.items():
        got = ev.fov[ev.fov["structure"] == name].reset_index(drop=True)
        expected = brute_fov(pred == c, ref == c, 0)
        np.testing.assert_array_equal(got["slice"].to_numpy(), expected["slice"].to_numpy())
        np.testing.assert_allclose(got["position_pct"].to_numpy(float), 100 - expected["position_pct"].to_numpy(float))
        np.testing.assert_allclose(got["dice"].to_numpy(float), expected["dice"].to_numpy(float))
    assert slice_dice(pred == 1, ref == 1, 0).shape[0] == (ev.fov["structure"] == "femur").sum()

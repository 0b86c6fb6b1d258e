"""Per-slice Dice over the reference's field of view and landmark errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mskseg.metrics.fov import slice_dice
from mskseg.metrics.landmarks import landmark_errors


def three_slice_masks():
    ref = np.zeros((6, 4, 4), bool)
    pred = np.zeros_like(ref)
    ref[1, :2, :2] = True  # 4 voxels
    pred[1, :2, :2] = True
    ref[3, :, :] = True  # 16 voxels
    pred[3, :2, :] = True  # 8 voxels, all inside
    pred[5, 0, 0] = True  # beyond the reference's extent: not reported
    return pred, ref


def test_slice_dice_hand_case():
    pred, ref = three_slice_masks()
    df = slice_dice(pred, ref, 0)
    assert list(df.columns) == ["slice", "position_pct", "dice"]
    assert list(df["slice"]) == [1, 2, 3]
    assert list(df["position_pct"]) == [0.0, 50.0, 100.0]
    assert df["dice"].iloc[0] == 1.0
    assert math.isnan(df["dice"].iloc[1])  # empty in both
    assert df["dice"].iloc[2] == pytest.approx(2 * 8 / 24)


def test_slice_dice_start_and_flip():
    pred, ref = three_slice_masks()
    df = slice_dice(pred, ref, 0, start=10, flip=True, n_slices=20)
    assert list(df["slice"]) == [11, 12, 13]
    assert list(df["position_pct"]) == [100.0, 50.0, 0.0]
    assert df["dice"].iloc[0] == 1.0 and df["dice"].iloc[2] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        slice_dice(pred, ref, 0, start=10, n_slices=13)


def test_slice_dice_other_axis_and_prediction_only_slice():
    ref = np.zeros((3, 5, 3), bool)
    pred = np.zeros_like(ref)
    ref[:, 0, :] = True
    ref[:, 4, :] = True
    pred[:, 0, :] = True
    pred[1, 2, 1] = True  # a false positive inside the reference's run of slices
    df = slice_dice(pred, ref, 1)
    assert list(df["slice"]) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(df["position_pct"], [0, 25, 50, 75, 100])
    np.testing.assert_allclose(df["dice"], [1.0, np.nan, 0.0, np.nan, 0.0])


def test_slice_dice_single_slice_and_empty_reference():
    ref = np.zeros((4, 4, 4), bool)
    ref[:, :, 2] = True
    df = slice_dice(ref, ref, 2)
    assert list(df["slice"]) == [2] and list(df["position_pct"]) == [50.0] and list(df["dice"]) == [1.0]
    empty = slice_dice(ref, np.zeros_like(ref), 0)
    assert empty.empty and list(empty.columns) == ["slice", "position_pct", "dice"]


def landmarks(rows, with_structure=True):
    df = pd.DataFrame(rows, columns=["structure", "index", "x", "y", "z"])
    return df if with_structure else df.drop(columns="structure")


def test_landmark_errors_hand_case():
    ref = landmarks([("femur", 0, 0.0, 0.0, 0.0), ("femur", 1, 1.0, 1.0, 1.0), ("tibia", 0, 5.0, 5.0, 5.0)])
    # rows in another order: matched on (structure, index), not on position
    pred = landmarks([("tibia", 0, 5.0, 5.0, 5.0), ("femur", 1, 1.0, 7.0, 9.0), ("femur", 0, 3.0, 4.0, 0.0)])
    out = landmark_errors(pred, ref).set_index("structure")
    assert sorted(out.index) == ["all", "femur", "tibia"] and out.index[-1] == "all"
    f = out.loc["femur"]
    assert f["n"] == 2
    assert f["mean_mm"] == pytest.approx(7.5)  # errors 5 (3-4-5) and 10 (6-8-10)
    assert f["max_mm"] == pytest.approx(10.0)
    assert f["rms_mm"] == pytest.approx(math.sqrt((25 + 100) / 2))
    assert out.loc["tibia", "max_mm"] == 0.0
    a = out.loc["all"]
    assert a["n"] == 3
    assert a["mean_mm"] == pytest.approx(5.0)
    assert a["median_mm"] == pytest.approx(5.0)
    assert a["p95_mm"] == pytest.approx(9.5)
    assert a["rms_mm"] == pytest.approx(math.sqrt(125 / 3))


def test_landmark_errors_without_structure_column():
    ref = landmarks([("x", 0, 0.0, 0.0, 0.0), ("x", 1, 0.0, 0.0, 0.0)], with_structure=False)
    pred = landmarks([("x", 1, 0.0, 3.0, 4.0), ("x", 0, 0.0, 0.0, 2.0)], with_structure=False)
    out = landmark_errors(pred, ref)
    assert list(out["structure"]) == ["all"]
    assert out.loc[0, "mean_mm"] == pytest.approx(3.5)
    assert out.loc[0, "max_mm"] == pytest.approx(5.0)


def test_landmark_errors_unmatched_landmarks_raise():
    ref = landmarks([("femur", 0, 0.0, 0.0, 0.0), ("femur", 1, 1.0, 1.0, 1.0)])
    pred = landmarks([("femur", 0, 0.0, 0.0, 0.0), ("femur", 2, 1.0, 1.0, 1.0), ("tibia", 0, 0.0, 0.0, 0.0)])
    with pytest.raises(ValueError, match="3 landmarks"):
        landmark_errors(pred, ref)

"""Dice, IoU, VOE, RAVD from voxel counts and the mean IoU of a confusion matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mskseg.metrics.overlap import mean_iou, overlap_scores


def test_overlap_scores_hand_counts():
    s = overlap_scores(tp=6, fp=2, fn=4)
    # pred 8, ref 10, union 12
    assert s["dice"] == pytest.approx(12 / 18)
    assert s["iou"] == pytest.approx(6 / 12)
    assert s["voe"] == pytest.approx(0.5)
    assert s["ravd"] == pytest.approx(2 / 10)


def test_overlap_scores_perfect_and_disjoint():
    assert overlap_scores(5, 0, 0) == pytest.approx({"dice": 1.0, "iou": 1.0, "voe": 0.0, "ravd": 0.0})
    s = overlap_scores(0, 3, 9)
    assert s["dice"] == 0.0 and s["iou"] == 0.0 and s["voe"] == 1.0
    assert s["ravd"] == pytest.approx(6 / 9)


def test_overlap_scores_relation_dice_iou():
    for tp, fp, fn in [(1, 1, 1), (10, 3, 0), (7, 0, 2), (100, 37, 12)]:
        s = overlap_scores(tp, fp, fn)
        assert s["dice"] == pytest.approx(2 * s["iou"] / (1 + s["iou"]))
        assert s["voe"] == pytest.approx(1 - s["iou"])


def test_overlap_scores_both_empty():
    assert overlap_scores(0, 0, 0) == {"dice": 1.0, "iou": 1.0, "voe": 0.0, "ravd": 0.0}


def test_overlap_scores_empty_prediction():
    assert overlap_scores(0, 0, 7) == {"dice": 0.0, "iou": 0.0, "voe": 1.0, "ravd": 1.0}


def test_overlap_scores_empty_reference():
    s = overlap_scores(0, 7, 0)
    assert (s["dice"], s["iou"], s["voe"]) == (0.0, 0.0, 1.0)
    assert math.isnan(s["ravd"])


def test_overlap_scores_rejects_negative_counts():
    with pytest.raises(ValueError):
        overlap_scores(1, -1, 0)


def test_mean_iou_hand_confusion():
    # rows reference, columns prediction: background, a, b
    c = np.array([[50, 2, 3],
                  [4, 10, 1],
                  [0, 5, 20]])
    iou_bg = 50 / (50 + 4 + 0 + 2 + 3)
    iou_a = 10 / (10 + 4 + 1 + 2 + 5)
    iou_b = 20 / (20 + 0 + 5 + 3 + 1)
    assert mean_iou(c) == pytest.approx((iou_bg + iou_a + iou_b) / 3)


def test_mean_iou_absent_class_counts_one():
    c = np.array([[9, 1, 0],
                  [1, 4, 0],
                  [0, 0, 0]])
    expected = (9 / 11 + 4 / 6 + 1.0) / 3
    assert mean_iou(c) == pytest.approx(expected)


def test_mean_iou_perfect():
    assert mean_iou(np.diag([5, 3, 0, 8])) == pytest.approx(1.0)

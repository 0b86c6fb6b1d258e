"""Per-subject tables stacked with method, subject and fold; confusion matrices summed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mskseg.metrics.collect import collect, merge
from mskseg.metrics.evaluate import evaluate_arrays
from mskseg.workflow.checkpoints import test_folds

SPLITS = pd.DataFrame({
    "split": ["fold0", "fold0", "fold0", "fold1", "fold1", "fold1"],
    "subject": ["s1", "s2", "s3", "s1", "s2", "s3"],
    "patient": ["p1", "p2", "p3", "p1", "p2", "p3"],
    "role": ["test", "train", "val", "train", "test", "train"],
})
FOLDS = test_folds(SPLITS)


def confusion(values, names=("background", "a", "b")):
    df = pd.DataFrame(np.asarray(values), index=pd.Index(list(names), name="reference"),
                      columns=pd.Index(list(names), name="prediction"))
    return df.reset_index()


def metrics(dice_a, dice_b):
    return pd.DataFrame({"structure": ["a", "b", "all"], "dice": [dice_a, dice_b, (dice_a + dice_b) / 2]})


def fov(n):
    return pd.DataFrame({"structure": ["a"] * n, "slice": list(range(n)), "position_pct": np.linspace(0, 100, n),
                         "dice": [1.0] * n})


def test_collect_tags_rows_and_sums_confusions():
    subjects = ["s1", "s2", "s3"]
    confs = [confusion([[10, 1, 0], [2, 5, 0], [0, 0, 3]]),
             confusion([[20, 0, 1], [0, 4, 1], [1, 0, 6]]),
             confusion([[7, 0, 0], [0, 0, 0], [0, 2, 9]])]
    out = collect("unet", subjects, FOLDS, [metrics(0.9, 0.8), metrics(0.7, 0.6), metrics(0.5, 0.4)],
                  confs, [fov(3), fov(2), fov(4)])
    m = out.metrics
    assert list(m.columns[:3]) == ["method", "subject", "fold"]
    assert list(m.columns[3:]) == ["structure", "dice"]
    assert len(m) == 9
    assert (m["method"] == "unet").all()
    assert list(m["subject"]) == ["s1"] * 3 + ["s2"] * 3 + ["s3"] * 3
    assert list(m["fold"]) == ["fold0"] * 3 + ["fold1"] * 3 + [""] * 3
    assert m.loc[(m["subject"] == "s2") & (m["structure"] == "b"), "dice"].item() == pytest.approx(0.6)
    f = out.fov
    assert len(f) == 9 and list(f.columns[:3]) == ["method", "subject", "fold"]
    assert list(f["subject"]) == ["s1"] * 3 + ["s2"] * 2 + ["s3"] * 4
    c = out.confusion.set_index("reference")
    expected = np.array([[37, 1, 1], [2, 9, 1], [1, 2, 18]])
    names = ["background", "a", "b"]
    np.testing.assert_array_equal(c.loc[names, names].to_numpy(), expected)


def test_collect_real_evaluations():
    rng = np.random.default_rng(0)
    labels = {"a": 1, "b": 2}
    evs = []
    for _ in range(2):
        ref = rng.integers(0, 3, size=(6, 7, 5)).astype(np.uint8)
        pred = ref.copy()
        pred[rng.random(ref.shape) < 0.2] = 0
        evs.append(evaluate_arrays(pred, ref, (1.0, 0.5, 2.0), labels))
    out = collect("m", ["s1", "s2"], FOLDS, [e.table for e in evs], [e.confusion.reset_index() for e in evs],
                  [e.fov for e in evs])
    total = evs[0].confusion + evs[1].confusion
    c = out.confusion.set_index("reference")
    np.testing.assert_array_equal(c.loc[total.index, total.columns].to_numpy(), total.to_numpy())
    assert c.to_numpy().sum() == 2 * 6 * 7 * 5
    assert len(out.metrics) == 6


def test_collect_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        collect("m", ["s1", "s2"], FOLDS, [metrics(1, 1)], [confusion(np.eye(3))], [fov(1)])


def test_merging_batches_equals_collecting_all_subjects_at_once():
    subjects = ["s1", "s2", "s3"]
    confs = [confusion([[10, 1, 0], [2, 5, 0], [0, 0, 3]]), confusion([[20, 0, 1], [0, 4, 1], [1, 0, 6]]),
             confusion([[7, 0, 0], [0, 0, 0], [0, 2, 9]])]
    mets = [metrics(0.9, 0.8), metrics(0.7, 0.6), metrics(0.5, 0.4)]
    fovs = [fov(3), fov(2), fov(4)]
    whole = collect("unet", subjects, FOLDS, mets, confs, fovs)
    parts = [collect("unet", subjects[:2], FOLDS, mets[:2], confs[:2], fovs[:2]),
             collect("unet", subjects[2:], FOLDS, mets[2:], confs[2:], fovs[2:])]
    merged = merge(parts)
    pd.testing.assert_frame_equal(merged.metrics, whole.metrics)
    pd.testing.assert_frame_equal(merged.fov, whole.fov)
    pd.testing.assert_frame_equal(merged.confusion, whole.confusion, check_dtype=False)


def test_merge_rejects_a_subject_in_two_batches_and_no_batch():
    part = collect("unet", ["s1"], FOLDS, [metrics(1, 1)], [confusion(np.eye(3))], [fov(1)])
    with pytest.raises(ValueError, match="more than one batch"):
        merge([part, part])
    with pytest.raises(ValueError, match="no batch"):
        merge([])

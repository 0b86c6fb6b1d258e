"""A three-plane method scored per plane and fused on test subjects, against direct predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mskseg.metrics.evaluate import EvaluationSettings
from mskseg.nn.model_info import load_trained
from mskseg.nn.plane_eval import evaluate_planes
from mskseg.nn.predict import predict_case, predict_view
from mskseg.nn.settings import InferenceSettings
from mskseg.nn.training import ModelFiles, train_fold
from tests.nn.test_training import LABELS, cases, files, method, one_thread  # noqa: F401 (fixtures)

VIEWS = ("axial", "coronal", "sagittal")
WEIGHTS = {"axial": 0.2, "coronal": 0.3, "sagittal": 0.5}


@pytest.fixture(scope="module")
def models(files, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("planes")
    spec = method(view="three_plane")
    subjects = {"train": ["s0", "s1"], "val": ["s2"]}
    inputs = {f"{role}_{kind}": [files[kind][int(s[1])] for s in names]
              for role, names in subjects.items() for kind in ("image", "mask")}
    out = []
    for view in VIEWS:
        files_out = ModelFiles(model=root / f"{view}.pt", info=root / f"{view}.json", history=root / f"{view}.csv",
                               rounds=root / f"{view}_rounds.csv", round_weights=root / f"{view}_rounds.pt")
        train_fold(spec, view, LABELS, subjects, inputs, root / f"work-{view}", files_out)
        out.append((files_out.model, files_out.info))
    return out


def _dice(pred: np.ndarray, target: np.ndarray, value: int) -> float:
    p, t = pred == value, target == value
    return 2 * float((p & t).sum()) / float(p.sum() + t.sum())


def test_each_plane_and_the_blend_score_as_direct_predictions_do(models, files) -> None:  # noqa: F811
    scores, confusion = evaluate_planes(models, WEIGHTS, ["s3", "s4"], files["image"][3:5], files["mask"][3:5],
                                        inference=InferenceSettings(), labels=LABELS,
                                        evaluation=EvaluationSettings(gap_eps_mm=None, collision_eps_mm=None))
    assert set(scores["plane"]) == {*VIEWS, "fused"} and list(scores.columns[:2]) == ["plane", "subject"]
    assert scores.loc[scores["structure"] == "all", "mean_iou"].notna().all()
    device = torch.device("cpu")
    nets = [load_trained(m, i, device) for m, i in models]
    case = cases(files, [3])[0]
    direct = {info.view: predict_view(net, info, case, device=device, batch_size=32) for net, info in nets}
    fused = predict_case(nets, case, weights=WEIGHTS, device=device, precision="fp32", batch_size=32)
    direct["fused"] = fused
    for plane, probs in direct.items():
        got = scores.loc[(scores["plane"] == plane) & (scores["subject"] == "s3") & (scores["structure"] == "bone"),
                         "dice"].item()
        assert got == pytest.approx(_dice(probs.argmax(0), case.target, 1), abs=1e-6), plane
    counts = confusion[(confusion["plane"] == "fused") & (confusion["subject"] == "s3")].set_index("reference")
    pred = fused.argmax(0)
    assert counts.loc["bone", "cartilage"] == int(((case.target == 1) & (pred == 2)).sum())
    assert int(counts[["background", "bone", "cartilage"]].to_numpy().sum()) == case.target.size


def test_weights_that_miss_a_plane_are_refused(models, files) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="do not cover the planes"):
        evaluate_planes(models, {"axial": 1.0}, ["s3"], files["image"][3:4], files["mask"][3:4],
                        inference=InferenceSettings(), labels=LABELS, evaluation=EvaluationSettings())
    with pytest.raises(ValueError, match="1 subjects but 2 images"):
        evaluate_planes(models, WEIGHTS, ["s3"], files["image"][3:5], files["mask"][3:4],
                        inference=InferenceSettings(), labels=LABELS, evaluation=EvaluationSettings())


def test_the_confusion_table_is_a_frame_per_reference_class(models, files) -> None:  # noqa: F811
    _, confusion = evaluate_planes(models, WEIGHTS, ["s4"], files["image"][4:5], files["mask"][4:5],
                                   inference=InferenceSettings(), labels=LABELS,
                                   evaluation=EvaluationSettings(gap_eps_mm=None, collision_eps_mm=None))
    assert isinstance(confusion, pd.DataFrame) and len(confusion) == 4 * 3  # planes x reference classes

"""The report rules' inputs: QC pages, galleries and the speed/accuracy table of what `all` runs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from mskseg.workflow.load import Workflow
from mskseg.workflow.plan import Plan
from tests.workflow.fakes import FakeCheckpoints, demo_config, splits_table, wildcards

HIP = [f"hip{i:03d}" for i in range(6)]
KNEE = [f"knee{i:03d}" for i in range(6)]


def _folds(ids: list[str]) -> dict[str, dict[str, list[str]]]:
    return {"0": {"train": ids[:3], "val": ids[3:4], "test": ids[4:6]},
            "1": {"train": ids[2:5], "val": ids[5:6], "test": ids[:2]}}


@pytest.fixture(scope="module")
def plan() -> Plan:
    return Plan.from_config(demo_config())


@pytest.fixture
def wf(plan, tmp_path: Path) -> Workflow:
    cps = FakeCheckpoints()
    for d, ids in (("hip", HIP), ("knee", KNEE)):
        cps.qc_done(d, tmp_path, passed=ids)
        cps.splits_done(d, tmp_path, splits_table(_folds(ids)))
    return Workflow.build(plan, cps)


def test_the_report_targets_every_dataset_of_all_and_a_gallery_per_scored_method(wf) -> None:
    targets = wf.targets.report()
    assert targets[0] == "results/report/provenance.html"
    assert {t for t in targets if t.endswith("qc.html")} == {
        f"results/report/{d}/qc.html" for d in ("knee", "hip", "kneescans", "hipscans")}  # not hipspar (spar only)
    assert sorted(t for t in targets if t.endswith("_gallery")) == [
        "results/report/hip/method-unet2d_gallery", "results/report/knee/method-shapefit_gallery",
        "results/report/knee/method-unet2d_gallery"]
    assert targets[-2:] == ["results/tables/speed_accuracy.csv", "results/report/speed_accuracy.html"]


def test_a_gallery_reads_each_test_subjects_image_prediction_and_reference(wf) -> None:
    w = wildcards(dataset="knee", method="shapefit")
    files = wf.report.gallery_inputs(w)
    order = wf.report.gallery_subjects(w)
    assert sorted(order) == sorted(KNEE[:2] + KNEE[4:])  # each fold's test subjects
    assert files["predictions"] == [f"results/predictions/knee/sub-{s}_method-shapefit_pred.nii.gz" for s in order]
    assert files["images"][0] == f"results/preprocess/knee/sub-{order[0]}_image.nii.gz"
    assert files["references"][0] == f"results/preprocess/knee/sub-{order[0]}_mask.nii.gz"
    assert files["metrics"] == "results/evaluation/knee/method-shapefit_metrics.csv"
    settings = wf.report.gallery_settings(w)
    assert settings["slices_per_plane"] == 3 and settings["labels"]["femur"] == 1


def test_a_bad_gallery_setting_is_named(plan, tmp_path) -> None:
    config = copy.deepcopy(dict(plan.config))
    config["report"] = {"gallery": {"slices_per_plane": 0}}
    wf = Workflow.build(Plan.from_config(config), FakeCheckpoints())
    with pytest.raises(ValueError, match="slices_per_plane"):
        wf.report.gallery_settings(wildcards(dataset="knee", method="unet2d"))


def test_training_costs_count_every_job_a_method_needs_shared_ones_named(wf) -> None:
    methods = {(m["dataset"], m["method"]): m for m in wf.report.speed_methods()}
    assert set(methods) == {("knee", "unet2d"), ("knee", "shapefit"), ("hip", "unet2d")}
    fit = methods[("knee", "shapefit")]
    assert "results/benchmarks/knee/method-shapefit_fold-1_part-tibia_regression.tsv" in fit["training"]
    assert "results/benchmarks/knee/method-shapefit_fold-0_refinement.tsv" in fit["training"]
    assert "results/benchmarks/knee/method-unet2d_fold-0_view-sagittal_train.tsv" in fit["training"]
    assert fit["shared"] == ["unet2d (pre-segmentation)"]
    hip = methods[("hip", "unet2d")]
    assert hip["training"] == [f"results/benchmarks/hip/method-unet2d_fold-{f}_view-axial_{k}.tsv"
                               for f in ("0", "1") for k in ("train", "pretrain")]
    assert hip["predictions"][0].startswith("results/benchmarks/hip/sub-") and len(hip["records"]) == 4
    inputs = wf.report.speed_inputs()
    assert "results/models/hip/method-unet2d_fold-1_view-axial_model.pt" in inputs
    assert not any("benchmarks" in f for f in inputs)  # benchmark files are no rule's declared output


def test_an_ablation_that_reuses_a_pretraining_counts_it_and_says_so(plan, tmp_path) -> None:
    config = copy.deepcopy(dict(plan.config))
    config["datasets"]["hip"]["evaluation"]["methods"] = ["unet2d", "unet2dNoWeight"]
    cps = FakeCheckpoints()
    cps.qc_done("hip", tmp_path, passed=HIP)
    cps.splits_done("hip", tmp_path, splits_table(_folds(HIP)))
    cps.qc_done("knee", tmp_path, passed=KNEE)
    cps.splits_done("knee", tmp_path, splits_table(_folds(KNEE)))
    wf = Workflow.build(Plan.from_config(config), cps)
    ablation = next(m for m in wf.report.speed_methods() if m["method"] == "unet2dNoWeight")
    assert "results/benchmarks/hip/method-unet2d_fold-0_view-axial_pretrain.tsv" in ablation["training"]
    assert ablation["shared"] == ["unet2d (pre-training)"]

"""Every input function of mskseg.workflow, as the rules call it: Snakemake's wildcards, the demo's plan and
checkpoint tables written by the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from mskseg.qc import QCSettings
from mskseg.workflow.load import Workflow
from mskseg.workflow.plan import Plan
from mskseg.workflow.segmentation import method_from_params, subject_files
from mskseg.workflow.settings import ALL_COMPONENTS
from tests.workflow.fakes import FakeCheckpoints, NotYet, demo_config, splits_table, wildcards

KNEE = [f"knee{i:03d}" for i in range(10)]
HIP = [f"hip{i:03d}" for i in range(8)]
KNEE_FOLDS = {"0": {"train": KNEE[:5], "val": KNEE[5:6], "test": KNEE[6:9]},
              "1": {"train": KNEE[3:8], "val": KNEE[8:9], "test": KNEE[:3]}}


@pytest.fixture(scope="module")
def plan() -> Plan:
    return Plan.from_config({**demo_config(), "batch_subjects": 4})


@pytest.fixture
def wf(plan, tmp_path: Path) -> Workflow:
    cps = FakeCheckpoints()
    cps.qc_done("knee", tmp_path, passed=KNEE[:9], failed=KNEE[9:])
    cps.splits_done("knee", tmp_path, splits_table(KNEE_FOLDS))
    return Workflow.build(plan, cps)


def test_data(wf) -> None:
    w = wildcards(dataset="knee", subject="knee003")
    assert wf.data.synthetic_spec(w) == {"kind": "knee", "n_landmarks": 200, "n_subjects": 10, "seed": 1,
                                         "patients": 1, "poor_labels": False, "shape": None, "spacing": None}
    assert list(wf.data.synthetic_spec(w)) == sorted(wf.data.synthetic_spec(w))  # canonical order
    assert wf.data.synthetic_index(w) == 3
    assert wf.data.synthetic_mem_mb(w, 1) == int(1000 + 128 ** 3 * 160 / 1e6)
    assert wf.data.synthetic_mem_mb(w, 2) == int(2 * (1000 + 128 ** 3 * 160 / 1e6))
    assert wf.data.synthetic_outputs(w)[9] == "results/synthetic/knee/sub-knee009_image.nii.gz"
    assert wf.data.manifest_settings(w) == {"source": {"synthetic": wf.data.synthetic_spec(w)}}
    assert wf.data.manifest_source(w) == []


def test_data_on_disk(plan, tmp_path: Path) -> None:
    manifest = tmp_path / "m.tsv"
    manifest.write_text("subject\timage\tlabel\nr1\tr1.nii.gz\tr1_seg.nii.gz\nr2\tr2.nii.gz\t\n", encoding="utf-8")
    (tmp_path / "r1.nii.gz").touch()
    knee = plan["knee"].config
    real = Plan.from_config({**plan.config, "datasets": {"real": {**knee, "source": {"manifest": {
        "path": str(manifest)}}}}})
    wf = Workflow.build(real, FakeCheckpoints())
    w = wildcards(dataset="real", subject="r1")
    assert wf.data.synthetic_outputs(w) == [] and wf.data.manifest_source(w) == [str(manifest)]
    assert wf.qc.raw_paths(w) == {"image": str(tmp_path / "r1.nii.gz"), "label": str(tmp_path / "r1_seg.nii.gz")}
    assert wf.qc.raw_inputs(w) == {"image": str(tmp_path / "r1.nii.gz")}  # the missing label is QC's to record
    assert wf.qc.raw_inputs(wildcards(dataset="real", subject="r2")) == {}
    assert wf.predictions.path(wildcards(dataset="real", subject="r1", method="perturbedMild")) == (
        "results/predictions/real/sub-r1_method-perturbedMild_pred.nii.gz")


def test_qc(wf, plan) -> None:
    w = wildcards(dataset="hip", subject="hip002")
    assert wf.qc.raw_inputs(w) == {"image": "results/synthetic/hip/sub-hip002_image.nii.gz",
                                   "label": "results/synthetic/hip/sub-hip002_mask.nii.gz"}  # phantoms: made later
    settings = QCSettings.from_dict(wf.qc.settings(w))
    assert settings.expected_values == (1, 2, 3, 4, 5) and settings.mask_geometry == "check"
    assert QCSettings.from_dict(settings.to_dict()) == settings
    assert wf.qc.fatal(w) is False
    assert wf.qc.records(w) == [f"results/qc/hip/sub-{s}_qc.tsv" for s in HIP]


def test_batches(wf) -> None:
    w = wildcards(dataset="knee", batch="001", method="unet2d")
    assert wf.batches.of("knee", "passed") == {"000": KNEE[:4], "001": KNEE[4:8], "002": KNEE[8:9]}
    assert wf.batches.passed(w) == KNEE[4:8]
    assert wf.batches.of("knee", "evaluated") == {"000": KNEE[6:9] + KNEE[:1], "001": KNEE[1:3]}
    assert wf.batches.evaluated(w) == KNEE[1:3]
    with pytest.raises(ValueError, match="knee has no batch 009 of passed subjects"):
        wf.batches.passed(wildcards(dataset="knee", batch="009"))
    with pytest.raises(ValueError, match="batch kind"):
        wf.batches.of("knee", "failed")
    files = wf.batches.files("results/x/{dataset}/sub-{subject}_method-{method}.csv", "evaluated")
    assert files(w) == ["results/x/knee/sub-knee001_method-unet2d.csv", "results/x/knee/sub-knee002_method-unet2d.csv"]
    tables = wf.batches.tables_of("results/x/{dataset}/batch-{batch}.tsv", "passed")
    assert tables(wildcards(dataset="knee")) == [f"results/x/knee/batch-00{b}.tsv" for b in range(3)]
    w = wildcards(dataset="knee", batch="002")
    assert wf.batches.instances(w) == [("knee008", "femur"), ("knee008", "tibia")]
    assert wf.batches.correspondence(w) == [
        "results/landmarks/knee/sub-knee008_structure-femur_correspondence.json",
        "results/landmarks/knee/sub-knee008_structure-tibia_correspondence.json"]
    assert wf.batches.instance_subjects(w) == ["knee008", "knee008"]
    with pytest.raises(NotYet):
        wf.batches.passed(wildcards(dataset="hip", batch="000"))  # hip's QC has not run


def test_preprocess_and_splits(wf, tmp_path: Path, monkeypatch) -> None:
    w = wildcards(dataset="hip", subject="hip001")
    settings = wf.preprocess.settings(w)
    assert settings["modality"] == "ct" and settings["crop_labels"] == [1, 2, 3, 4, 5] and settings["spacing"] is None
    assert wf.preprocess.mask_geometry(w) == "check"
    assert wf.preprocess.labels(w) == {"femur_left": 1, "femur_right": 2, "hip_left": 3, "hip_right": 4, "sacrum": 5}
    assert wf.preprocess.poor_mask(w) == "results/synthetic/hip/sub-hip001_poormask.nii.gz"
    assert wf.preprocess.raw_image(w) == "results/synthetic/hip/sub-hip001_image.nii.gz"
    with pytest.raises(ValueError, match="knee: subject knee001 has no label_poor"):
        wf.preprocess.poor_mask(wildcards(dataset="knee", subject="knee001"))
    assert wf.splits.settings(w) == {"k": 4, "method": "kfold", "n_val": 1, "n_val_folds": 1, "seed": 42,
                                     "stratify": None}
    monkeypatch.chdir(tmp_path)
    assert wf.splits.base(w) == str(tmp_path)


def test_shape(wf) -> None:
    w = wildcards(dataset="knee", bone="femur", subject="knee002", structure="femur")
    assert wf.shape.selection_settings(w)["working_spacing_mm"] == 2.0
    assert "n_landmarks" not in wf.shape.registration_settings(w)
    assert wf.shape.registration_settings(w)["demons"]["iterations"] == [40, 20]
    assert wf.shape.landmark_settings(w)["n_landmarks"] == 500 and "labels" in wf.shape.landmark_settings(w)
    assert wf.shape.model_settings(w)["quality"]["n_samples"] == 50
    assert wf.shape.members(w) == [["femur", False]] and wf.shape.member_structures(w) == ["femur"]
    assert wf.shape.mirrored(w) is False
    assert wf.shape.subjects(w) == KNEE[:9]
    assert wf.shape.masks(w)[-1] == "results/preprocess/knee/sub-knee008_mask.nii.gz"
    assert wf.shape.reference(w) == "results/registration/knee/bone-femur_reference.nii.gz"
    assert wf.shape.truth(w)[0] == "results/synthetic/knee/sub-knee000_landmarks.csv"
    assert wf.shape.truth_subjects(w) == KNEE[:9]
    assert wf.shape.warp_inputs(w) == {
        "reference_landmarks": "results/landmarks/knee/bone-femur_reference_landmarks.csv",
        "reference_truth": "results/landmarks/knee/bone-femur_reference_truth.csv",
        "truth": "results/synthetic/knee/sub-knee002_landmarks.csv"}
    assert wf.shape.landmarks(w)[1] == "results/landmarks/knee/sub-knee001_structure-femur_landmarks.csv"
    hip = wildcards(dataset="hip", bone="femur", structure="femur_left")
    assert wf.shape.members(hip) == [["femur_right", False], ["femur_left", True]] and wf.shape.mirrored(hip)


def test_segmentation(wf) -> None:
    w = wildcards(dataset="knee", method="unet2d", fold="1", view="sagittal", wmap="unet")
    spec = wf.segmentation.spec(w)
    assert spec.loss == "ce_distance" and spec.train.epochs == 24
    assert wf.segmentation.weight_map_settings(w) == {"erode_radius_mm": 0, "sigma_mm": 6.0, "w0": 10}
    params = wf.segmentation.method_settings(w)
    assert params["weight_map"] == wf.segmentation.weight_map_settings(w) and params["labels"]["tibia"] == 3
    assert method_from_params("unet2d", params) == (spec, params["labels"])
    assert wf.segmentation.fold_subjects(w) == {"train": KNEE[3:8], "val": KNEE[8:9]}
    inputs = wf.segmentation.training_inputs(w)
    assert sorted(inputs) == ["train_image", "train_mask", "train_weight", "val_image", "val_mask", "val_weight"]
    assert inputs["val_weight"] == ["results/weightmaps/knee/sub-knee008_wmap-unet_weight.nii.gz"]
    assert inputs["train_image"][0] == "results/preprocess/knee/sub-knee003_image.nii.gz"
    poor = wf.segmentation.pretraining_inputs(w)["poormask"]
    assert poor[-1] == "results/preprocess/knee/sub-knee008_poormask.nii.gz"
    assert wf.segmentation.work_dir(w) == "results/models/.work/knee/method-unet2d_fold-1_view-sagittal"
    assert wf.segmentation.threads(w) == 1 and wf.segmentation.runtime(w, 2) == 120
    fusion = wf.segmentation.fusion_inputs(w)
    assert fusion["image"] == ["results/preprocess/knee/sub-knee008_image.nii.gz"]
    assert fusion["models"] == ["results/models/knee/method-unet2d_fold-1_view-sagittal_model.pt"]
    assert subject_files("d", ["s"], ["weight", "poormask"], "w") == {
        "weight": ["results/weightmaps/d/sub-s_wmap-w_weight.nii.gz"],
        "poormask": ["results/preprocess/d/sub-s_poormask.nii.gz"]}


def test_segmentation_with_pretraining(plan, tmp_path: Path) -> None:
    cps = FakeCheckpoints()
    cps.splits_done("hip", tmp_path, splits_table({"0": {"train": HIP[:4], "val": HIP[4:5], "test": HIP[5:]}}))
    wf = Workflow.build(plan, cps)
    w = wildcards(dataset="hip", method="unet2d", fold="0", view="axial", subject="hip006")
    assert wf.segmentation.training_inputs(w)["pretrained"] == (
        "results/models/hip/method-unet2d_fold-0_view-axial_pretrained.pt")
    assert wf.segmentation.pretraining_inputs(w)["image"] == [
        f"results/preprocess/hip/sub-{s}_image.nii.gz" for s in HIP[:5]]
    assert wf.predictions.model_inputs(w)["models"] == ["results/models/hip/method-unet2d_fold-0_view-axial_model.pt"]


def test_predictions(wf, plan, tmp_path: Path) -> None:
    w = wildcards(dataset="knee", method="unet2d", subject="knee001")
    assert wf.predictions.path(w) == "results/predictions/knee/sub-knee001_method-unet2d_pred.nii.gz"
    assert wf.predictions.model_inputs(w) == {
        "image": "results/preprocess/knee/sub-knee001_image.nii.gz",
        "models": ["results/models/knee/method-unet2d_fold-1_view-sagittal_model.pt"],
        "infos": ["results/models/knee/method-unet2d_fold-1_view-sagittal_model.json"]}
    settings = wf.predictions.inference_settings(w)
    assert settings == {"inference": {"batch_size": 32, "device": "auto", "precision": "auto"}, "threads": 1,
                        "labels": plan["knee"].labels,
                        "postprocess": {"closing_radius_mm": 0, "connectivity": 26, "fill_holes": True,
                                        "keep_components": {"4": 2}, "largest_component": True,
                                        "removed_to": "neighbour"}}  # the shipped knee opts in; label 4 keeps 2
    from mskseg.postprocess import PostprocessSettings

    assert PostprocessSettings.from_dict(settings["postprocess"]).keep_components == {4: 2}
    whole = {**plan["knee"].config, "postprocess": {"keep_components": {"femoral_cartilage": "all"}}}
    kept = Workflow.build(Plan.from_config({**plan.config, "datasets": {"knee": whole}}), FakeCheckpoints())
    assert kept.predictions.inference_settings(w)["postprocess"]["keep_components"] == {"2": ALL_COMPONENTS}
    unet = {**plan["hip"].config["methods"]["unet2d"], "postprocess": False}
    hip = {**plan["hip"].config, "methods": {**plan["hip"].config["methods"], "unet2d": unet}}
    off = Workflow.build(Plan.from_config({**plan.config, "datasets": {"hip": hip}}), FakeCheckpoints())
    assert off.predictions.inference_settings(wildcards(dataset="hip", method="unet2d"))["postprocess"] is None
    assert wf.predictions.perturb_settings(wildcards(dataset="knee", method="perturbedStrong")) == {
        "blob_radius_mm": 3.0, "displacement_mm": 1.0, "n_blobs": 3, "offset_mm": -0.3, "seed": 2,
        "smoothness_mm": 10.0}
    files = {**plan["knee"].config, "methods": {"mine": {"kind": "files", "path": "/preds/{subject}.nii.gz"}}}
    mine = Workflow.build(Plan.from_config({**plan.config, "datasets": {"knee": files}, "studies": {}}),
                          FakeCheckpoints())
    assert mine.predictions.path(wildcards(dataset="knee", method="mine", subject="k9")) == "/preds/k9.nii.gz"


def test_three_plane_predictions_read_the_fusion_weights(plan, tmp_path: Path) -> None:
    knee = plan["knee"].config
    tp = {**knee, "methods": {"tp": {"kind": "trained", "view": "three_plane"}}, "evaluation": {
        **knee["evaluation"], "methods": ["tp"]}}
    cps = FakeCheckpoints()
    cps.splits_done("knee", tmp_path, splits_table(KNEE_FOLDS))
    wf = Workflow.build(Plan.from_config({**plan.config, "datasets": {"knee": tp}, "studies": {}}), cps)
    inputs = wf.predictions.model_inputs(wildcards(dataset="knee", method="tp", subject="knee007"))
    assert [Path(p).name for p in inputs["models"]] == [f"method-tp_fold-0_view-{v}_model.pt"
                                                         for v in ("axial", "coronal", "sagittal")]
    assert inputs["fusion"] == "results/models/knee/method-tp_fold-0_fusion.json"
    assert "results/models/knee/method-tp_fold-1_fusion.json" in wf.targets.models()


def test_evaluation(wf) -> None:
    w = wildcards(dataset="hip", metric="dice")
    assert wf.evaluation.settings(w) == {"collision_eps_mm": 6.0, "fov_axis": "SI", "gap_eps_mm": 10.0,
                                         "percentile": 95.0, "threads": 1}
    assert wf.evaluation.labels(w)["sacrum"] == 5 and wf.evaluation.threads(w) == 1
    assert wf.evaluation.method_tables("fov.csv")(w) == ["results/evaluation/hip/method-unet2d_fov.csv"]
    table = wf.evaluation.table_settings(w)
    assert table["methods"] == ["unet2d"] and table["structures"][-1] == "all"
    assert wf.evaluation.metric_tables(w)[-1] == "results/tables/hip/metric-collisions_table.md"
    assert wf.evaluation.study_sizes(w) == {} and wf.evaluation.study_inputs(w) == []


def test_targets(wf) -> None:
    t = wf.targets
    assert t.data()[:2] == ["results/data/knee/manifest.tsv", "results/data/hip/manifest.tsv"]
    assert len(t.data()) == 4 + 2 * (10 + 8 + 1 + 1)  # two datasets to train on, two of new scans
    assert t.qc()[:4] == ["results/qc/knee/qc_table.tsv", "results/qc/knee/subjects.tsv",
                          "results/qc/hip/qc_table.tsv", "results/qc/hip/subjects.tsv"]
    assert len(t.qc()) == 8  # the new scans are checked too (kneescans, hipscans)
    assert t.splits() == ["results/splits/knee/splits.tsv", "results/splits/hip/splits.tsv"]
    with pytest.raises(NotYet):
        t.preprocess()  # waits for hip's QC
    assert "results/landmarks/hip/bone-sacrum_correspondence.tsv" in t.landmarks() and len(t.landmarks()) == 10
    with pytest.raises(NotYet):
        t.shape_models()  # hip's splits
    # named from the config alone (the collect rules ask later); per metric a table as .md, .html (the report's),
    # .csv, .tex, stats and a box plot; the knee's shape fitting adds its landmark table (.md, .html)
    assert len(t.tables()) == 2 * (1 + 4 * 5 + 4 + 1) + 2 and "results/tables/knee/landmarks.html" in t.tables()


def test_targets_once_the_checkpoints_ran(plan, tmp_path: Path) -> None:
    cps = FakeCheckpoints()
    for d, subjects in (("knee", KNEE), ("hip", HIP)):
        cps.qc_done(d, tmp_path, passed=subjects)
        cps.splits_done(d, tmp_path, splits_table({"0": {"train": subjects[:5], "test": subjects[5:]},
                                                   "1": {"train": subjects[3:], "test": subjects[:3]}}))
    t = Workflow.build(plan, cps).targets
    assert len(t.preprocess()) == 3 * (10 + 8) + 2
    assert "results/shape/hip/bone-femur_fold-1_modes.png" in t.shape_models() and len(t.shape_models()) == 5 * 2 * 4
    models = t.models()  # unet2d of both datasets (mpunet is declared, not scored, in the demo)
    assert "results/models/hip/method-unet2d_fold-0_view-axial_rounds.csv" in models
    assert not [m for m in models if "mpunet" in m] and len(models) == 2 * 2 * 3 + 2 * 3
    # the knee's shape fitting: a regression network per bone and the refinement, per fold
    assert "results/models/knee/method-shapefit_fold-1_part-tibia_regression.pt" in models
    assert "results/models/knee/method-shapefit_fold-0_refinement.pt" in models
    fitting = Workflow.build(plan, cps).shape_fitting
    subject = KNEE[0]  # tested by fold 1
    inputs = fitting.predict_inputs(wildcards(dataset="knee", method="shapefit", subject=subject))
    assert inputs["pre_model"] == "results/models/knee/method-unet2d_fold-1_view-sagittal_model.pt"
    assert inputs["regressions"] == [f"results/models/knee/method-shapefit_fold-1_part-{b}_regression.pt"
                                     for b in ("femur", "tibia")]
    assert inputs["selection"] == "results/models/knee/method-shapefit_fold-1_selection.tsv"
    assert inputs["shape_models"] == [f"results/shape/knee/bone-{b}_fold-1_model.npz" for b in ("femur", "tibia")]
    regression = fitting.regression_inputs(wildcards(dataset="knee", method="shapefit", fold="0", part="tibia"))
    assert regression["train_landmarks_0"] == [f"results/landmarks/knee/sub-{s}_structure-tibia_landmarks.csv"
                                               for s in KNEE[:5]]
    assert regression["shape_models"] == ["results/shape/knee/bone-tibia_fold-0_model.npz"]
    # a refinement setting reaches the refinement and the prediction, not the regression networks
    w = wildcards(dataset="knee", method="shapefit", fold="0", part="femur")
    assert "refinement" not in fitting.regression_settings(w)["methods"]["shapefit"]
    assert "regression" not in fitting.refinement_settings(w)["methods"]["shapefit"]
    assert fitting.settings(w)["postprocess"] is not None and fitting.regression_settings(w)["postprocess"] is None
    tables = t.tables()
    assert "results/tables/knee/metric-assd_mm_stats.csv" in tables and "results/plots/hip/fov.png" in tables
    assert not [p for p in tables if "powerlaw" in p]


def test_resources_reach_the_plan(wf) -> None:
    from snakemake.iocontainers import Namedlist

    from mskseg.workflow.resources import TRAINING_BASE_MB, training_mem_mb

    assert training_mem_mb(wildcards(), Namedlist(fromdict={"image": []}), 1) == TRAINING_BASE_MB  # no volume

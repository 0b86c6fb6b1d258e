"""The studies' plan and input functions: the hip paper's Table 1 (studies.hip_transfer)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mskseg.errors import ConfigError
from mskseg.workflow.compose import compose_config
from mskseg.workflow.load import Workflow
from mskseg.workflow.plan import Plan
from mskseg.workflow.studies import KneeStudy, PlaneStudy, TransferStudy
from tests.workflow.fakes import REPO, FakeCheckpoints, demo_config, splits_table, wildcards

HIP = [f"hip{i:03d}" for i in range(8)]
HIP_FOLDS = {"0": {"train": HIP[:4], "val": HIP[4:6], "test": HIP[6:8]},
             "1": {"train": HIP[2:6], "val": HIP[6:8], "test": HIP[:2]},
             "2": {"train": HIP[4:8], "val": HIP[:2], "test": HIP[2:4]}}


@pytest.fixture(scope="module")
def plan() -> Plan:
    return Plan.from_config(demo_config())


@pytest.fixture
def wf(plan, tmp_path: Path) -> Workflow:
    cps = FakeCheckpoints()
    cps.qc_done("hip", tmp_path, passed=HIP, failed=[])
    cps.splits_done("hip", tmp_path, splits_table(HIP_FOLDS))
    return Workflow.build(plan, cps)


def test_the_shipped_study_is_the_papers_table_with_its_ablations(wf) -> None:
    study = wf.studies.transfer
    assert study.dataset == "hip" and study.reference == "full"
    # the paper's table on the multi-planar U-Net, and the recipe on the axial U-Net beside it
    assert study.rows == (("full", "mpunet"), ("NoPretrain", "mpunetNoPretrain"), ("NoWeight", "mpunetNoWeight"),
                          ("3DUNet", "unet3dRecipe"), ("2DUNet", "unet2d"))
    assert study.metrics[:3] == ("dice", "hd_mm", "hd95_mm") and "gap_dice" in study.metrics
    assert wf.targets.hip_transfer() == ["results/studies/hip_transfer/table.md",
                                         "results/studies/hip_transfer/table.html",
                                         "results/studies/hip_transfer/table.csv"]
    assert wf.targets.studies() == wf.targets.hip_transfer() + wf.targets.knee_shape_fitting()  # `all` makes both


def test_round_inputs_are_the_models_files_and_the_folds_test_subjects(wf) -> None:
    w = wildcards(dataset="hip", method="unet3dRecipe", fold="1")
    files = wf.studies.round_inputs(w)
    assert files["model"] == "results/models/hip/method-unet3dRecipe_fold-1_view-3d_model.pt"
    assert files["round_weights"].endswith("view-3d_rounds.pt") and files["rounds"].endswith("view-3d_rounds.csv")
    assert files["images"] == [f"results/preprocess/hip/sub-{s}_image.nii.gz" for s in HIP[:2]]
    assert files["masks"] == [f"results/preprocess/hip/sub-{s}_mask.nii.gz" for s in HIP[:2]]
    assert wf.studies.round_subjects(w) == HIP[:2]
    assert wf.studies.round_settings(w)["collision_eps_mm"] == 6.0


def test_the_table_reads_every_row_and_fold_and_the_last_rounds_from_the_evaluation_stage(wf) -> None:
    inputs, params = wf.studies.transfer_inputs(), wf.studies.transfer_params()
    assert len(inputs["earlier"]) == len(inputs["rounds"]) == 5 == len(params["cells"])  # the demo: fold 0
    assert inputs["earlier"][0] == "results/evaluation/hip/method-mpunet_fold-0_rounds.csv"
    assert inputs["rounds"][0] == "results/models/hip/method-mpunet_fold-0_view-mpr_rounds.csv"
    assert len(inputs["final"]) == len(params["final"]) == 5 * 2  # two test subjects per fold
    assert inputs["final"][0] == "results/evaluation/hip/sub-hip006_method-mpunet_metrics.csv"
    assert params["final"][0] == ["full", "0", "hip006"] and params["cells"][-1] == ["2DUNet", "0"]
    # the config's order, not sorted
    assert params["labels"] == ["full", "NoPretrain", "NoWeight", "3DUNet", "2DUNet"]


def test_a_study_on_every_fold(plan, tmp_path) -> None:
    config = copy.deepcopy(dict(plan.config))
    config["studies"]["hip_transfer"]["folds"] = None
    cps = FakeCheckpoints()
    cps.qc_done("hip", tmp_path, passed=HIP, failed=[])
    cps.splits_done("hip", tmp_path, splits_table(HIP_FOLDS))
    wf = Workflow.build(Plan.from_config(config), cps)
    assert {f for _, f in wf.studies.transfer_params()["cells"]} == {"0", "1", "2"}


@pytest.mark.parametrize(("change", "message"), [
    ({"dataset": "nope"}, "not a dataset this run trains on"),
    ({"rows": [{"label": "a", "method": "perturbedMild"}]}, "not a trained method"),
    ({"rows": [{"label": "a", "method": "unet2d"}, {"label": "a", "method": "unet2dNoWeight"}]}, "labels must differ"),
    ({"reference": "best"}, "not a row label"),
    ({"metrics": ["dice", "speed"]}, "unknown"),
])
def test_bad_study_settings_are_named(plan, change, message) -> None:
    block = {**plan.config["studies"]["hip_transfer"], **change}
    with pytest.raises(ConfigError, match=message):
        TransferStudy.from_config(block, plan)


def test_a_method_without_rounds_cannot_be_a_row(plan) -> None:
    config = copy.deepcopy(dict(plan.config))
    config["datasets"]["hip"]["methods"]["unet3dRecipe"].pop("interactive")
    with pytest.raises(ConfigError, match="interactive rounds"):
        TransferStudy.from_config(config["studies"]["hip_transfer"], Plan.from_config(config))


def test_own_datasets_run_only_the_studies_declared_with_them() -> None:
    shipped = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    own = {"datasets": {"mine": {"template": "knee"}}}
    config = {**shipped, "datasets": {**shipped["datasets"], **own["datasets"]}}
    assert "hip_transfer" not in compose_config(config, own, shipped)["studies"]
    own_hip = {"datasets": {"hip": {"template": "hip", "methods": {"mine": {"kind": "perturbed"}}}}}
    assert compose_config({**shipped, **own_hip}, own_hip, shipped)["studies"] == {}  # even one named hip
    declared = {**own, "studies": {"hip_transfer": shipped["studies"]["hip_transfer"]}}
    with pytest.raises(ConfigError, match=r"studies\.hip_transfer\.dataset: 'hip' is not a dataset of this run"):
        compose_config(config, declared, shipped)  # a study the user declares on a dataset they did not
    mine = {"datasets": {"mine": {"template": "hip"}}, "studies": {"hip_transfer": {
        **shipped["studies"]["hip_transfer"], "dataset": "mine"}}}
    assert compose_config({**config, **mine}, mine, shipped)["studies"]["hip_transfer"]["dataset"] == "mine"


SPAR_SUBJECTS = [f"hipspar{i:03d}" for i in range(5)]


@pytest.fixture
def spar_wf(plan, tmp_path: Path) -> Workflow:
    cps = FakeCheckpoints()
    cps.qc_done("hipspar", tmp_path, passed=SPAR_SUBJECTS, failed=[])
    folds = {str(i): {"train": [s for j, s in enumerate(SPAR_SUBJECTS) if j not in (i, (i + 1) % 5)],
                      "val": [SPAR_SUBJECTS[(i + 1) % 5]], "test": [SPAR_SUBJECTS[i]]} for i in range(5)}
    cps.splits_done("hipspar", tmp_path, splits_table(folds))
    return Workflow.build(plan, cps)


def test_the_regularised_methods_share_one_auto_encoder_per_fold(spar_wf) -> None:
    inputs = {m: spar_wf.segmentation.regularised_inputs(wildcards(dataset="hipspar", method=m, fold="2",
                                                                    view="axial"))
              for m in ("unet", "adversarialMask", "shapePrior", "spar")}
    weights = {i["autoencoder_weights"] for i in inputs.values()}
    assert len(weights) == 1  # equal auto-encoder settings and seed: trained once
    path = weights.pop()
    assert path.startswith("results/models/hipspar/autoencoder-")
    assert path.endswith("_fold-2_view-axial_autoencoder.pt")
    assert inputs["spar"]["train_mask"] == [f"results/preprocess/hipspar/sub-{s}_mask.nii.gz"
                                            for s in SPAR_SUBJECTS if s not in ("hipspar002", "hipspar003")]
    key = path.split("autoencoder-")[1][:10]
    w = wildcards(dataset="hipspar", aekey=key, fold="2", view="axial")
    assert spar_wf.segmentation.autoencoder_inputs(w)["masks"] == inputs["spar"]["train_mask"]
    settings = spar_wf.segmentation.autoencoder_settings(w)
    assert settings["seed"] == 1 and settings["settings"]["autoencoder_base"] == 8
    assert settings["subjects"] == ["hipspar000", "hipspar001", "hipspar004"]
    with pytest.raises(ValueError, match="no regularised method"):
        spar_wf.segmentation.autoencoder_settings(wildcards(dataset="hipspar", aekey="0" * 10, fold="2",
                                                            view="axial"))


def test_each_training_rule_takes_its_own_methods(plan) -> None:
    import re

    plain, regularised = plan.trained_pattern(regularised=False), plan.trained_pattern(regularised=True)
    for method in ("unet", "adversarialMask", "shapePrior", "spar"):
        assert re.fullmatch(regularised, method) and not re.fullmatch(plain, method)
    for method in ("unet2d", "unet3dRecipe", "mpunet"):
        assert re.fullmatch(plain, method) and not re.fullmatch(regularised, method)


def test_the_spar_study_is_its_own_target_and_stays_out_of_the_default_one(plan, spar_wf) -> None:
    assert "hipspar" in plan.datasets and "hipspar" not in plan.default_plan().datasets
    assert "hip" in plan.default_plan().datasets  # named by hip_transfer, which `all` makes
    assert not any("hipspar" in p for p in spar_wf.targets.data() + spar_wf.targets.qc())
    assert spar_wf.targets.studies() == spar_wf.targets.hip_transfer() + spar_wf.targets.knee_shape_fitting()
    targets = spar_wf.targets.spar()
    assert "results/tables/hipspar/metric-ravd_table.md" in targets
    assert "results/tables/hipspar/metric-hd_mm_stats.csv" in targets
    assert [t for t in targets if t.endswith("latents.png")] == [
        f"results/plots/hipspar/method-{m}_fold-0_latents.png" for m in ("unet", "adversarialMask", "shapePrior",
                                                                          "spar")]
    from mskseg.workflow.targets import Targets

    config = {**plan.config, "studies": {"spar": {"dataset": "hipspar", "in_all": True}}}
    models = Targets(Plan(config, {"hipspar": plan["hipspar"]}), spar_wf.tables).models()
    assert "results/models/hipspar/method-spar_fold-4_view-axial_latents.npz" in models
    assert not any("hipspar" in m and m.endswith("rounds.csv") for m in models)
    w = wildcards(dataset="hipspar", method="spar", fold="0")
    assert spar_wf.studies.latents_input(w) == "results/models/hipspar/method-spar_fold-0_view-axial_latents.npz"


def test_a_spar_study_needs_a_regularised_method(plan) -> None:
    from mskseg.workflow.studies import SparStudy

    with pytest.raises(ConfigError, match="no method with a `regularisation` block"):
        SparStudy.from_config({"dataset": "knee"}, plan)


def test_an_ablation_that_differs_after_the_pre_training_shares_it(wf) -> None:
    inputs = {m: wf.segmentation.training_inputs(wildcards(dataset="hip", method=m, fold="0", view="axial"))
              for m in ("unet2d", "unet2dNoWeight")}
    shared = "results/models/hip/method-unet2d_fold-0_view-axial_pretrained.pt"
    assert inputs["unet2d"]["pretrained"] == inputs["unet2dNoWeight"]["pretrained"] == shared
    assert "pretrained" not in wf.segmentation.training_inputs(wildcards(dataset="hip", method="unet2dNoPretrain",
                                                                         fold="0", view="axial"))
    three_d = wf.segmentation.training_inputs(wildcards(dataset="hip", method="unet3dRecipe", fold="0", view="3d"))
    assert three_d["pretrained"] == "results/models/hip/method-unet3dRecipe_fold-0_view-3d_pretrained.pt"


def test_the_knee_study_reads_its_rows_metrics_and_the_fitted_methods_landmark_tables(wf) -> None:
    study = wf.studies.knee
    assert study.dataset == "knee" and study.rows == (("2D U-Net", "unet2d"), ("full method", "shapefit"))
    assert study.fitted == ("shapefit",) and study.in_all
    inputs = wf.studies.knee_inputs()
    assert inputs["metrics"] == ["results/evaluation/knee/method-unet2d_metrics.csv",
                                 "results/evaluation/knee/method-shapefit_metrics.csv"]
    assert inputs["errors"] == "results/tables/knee/landmarks.tsv" and inputs["steps"].endswith("steps.tsv")
    params = wf.studies.knee_params()
    assert params["metrics"] == ["dice", "hd95_mm", "assd_mm"] and params["tables"]["decimals"] == 3
    assert "results/studies/knee_shape_fitting/table.md" in wf.targets.studies()


@pytest.mark.parametrize(("change", "message"), [
    ({"dataset": "nope"}, "not a dataset this run trains on"),
    ({"rows": [{"label": "a", "method": "unet3d"}]}, "not a scored method"),
    ({"rows": [{"label": "a", "method": "unet2d"}, {"label": "a", "method": "shapefit"}]}, "labels must differ"),
    ({"metrics": ["dice", "speed"]}, "unknown"),
])
def test_bad_knee_study_settings_are_named(plan, change, message) -> None:
    block = {**plan.config["studies"]["knee_shape_fitting"], **change}
    with pytest.raises(ConfigError, match=message):
        KneeStudy.from_config(block, plan)


def test_a_study_setting_reaches_only_its_own_table(plan, tmp_path) -> None:
    """What Snakemake compares to decide a re-run (the rules' params): a changed study block changes its table's
    params and the provenance page's (which states the config), nothing a training or a score depends on."""
    changed = copy.deepcopy(dict(plan.config))
    changed["studies"]["knee_shape_fitting"]["metrics"] = ["dice"]
    before, after = (Workflow.build(Plan.from_config(c), FakeCheckpoints()) for c in (plan.config, changed))
    assert before.studies.knee_params() != after.studies.knee_params()
    for d, m in (("knee", "unet2d"), ("hip", "unet2d")):
        w = wildcards(dataset=d, method=m, fold="0", view="axial")
        assert before.segmentation.method_settings(w) == after.segmentation.method_settings(w)
        assert before.evaluation.settings(w) == after.evaluation.settings(w)
        assert before.evaluation.table_settings(w) == after.evaluation.table_settings(w)
        assert before.report.gallery_settings(w) == after.report.gallery_settings(w)
    assert before.studies.transfer == after.studies.transfer  # the other studies are untouched


KNEE = [f"knee{i:03d}" for i in range(6)]


def test_the_three_plane_study_scores_each_fold_per_plane_and_stays_out_of_all(plan, tmp_path) -> None:
    cps = FakeCheckpoints()
    cps.qc_done("knee", tmp_path, passed=KNEE)
    cps.splits_done("knee", tmp_path, splits_table({"0": {"train": KNEE[:3], "val": KNEE[3:4], "test": KNEE[4:]},
                                                    "1": {"train": KNEE[2:5], "val": KNEE[5:], "test": KNEE[:2]}}))
    cps.qc_done("hip", tmp_path, passed=HIP)
    cps.splits_done("hip", tmp_path, splits_table(HIP_FOLDS))
    wf = Workflow.build(plan, cps)
    assert wf.studies.planes.method == "unet3plane" and not wf.studies.planes.in_all
    files = wf.studies.plane_inputs(wildcards(dataset="knee", method="unet3plane", fold="1"))
    assert files["models"] == [f"results/models/knee/method-unet3plane_fold-1_view-{v}_model.pt"
                               for v in ("axial", "coronal")] + [
        "results/models/knee/method-unet2d_fold-1_view-sagittal_model.pt"]  # trained alike: unet2d's, shared
    assert files["fusion"] == "results/models/knee/method-unet3plane_fold-1_fusion.json"
    assert files["images"] == [f"results/preprocess/knee/sub-{s}_image.nii.gz" for s in KNEE[:2]]
    table = wf.studies.plane_table_inputs()
    assert table["scores"] == [f"results/evaluation/knee/method-unet3plane_fold-{f}_planes.csv" for f in "01"]
    assert wf.studies.plane_params()["folds"] == ["0", "1"]
    assert wf.targets.three_plane_fusion()[-1] == "results/studies/three_plane_fusion/confusion.png"
    assert not any("three_plane" in t for t in wf.targets.studies())
    assert not any("unet3plane" in t for t in wf.targets.models())  # `all` trains it only for the study


def test_the_three_plane_study_needs_a_three_plane_method(plan) -> None:
    block = {**plan.config["studies"]["three_plane_fusion"], "method": "unet2d"}
    with pytest.raises(ConfigError, match="with view three_plane"):
        PlaneStudy.from_config(block, plan)


def test_the_shipped_ankle_config_runs_spar_on_ankle_phantoms(tmp_path: Path) -> None:
    """configs/spar_ankle.yaml (the SPAR paper's bones): only its dataset is planned, ankle phantoms on sagittal
    slices, the spar target makes its tables and latent figures, and the other studies stay out."""
    from mskseg.workflow.compose import read_shipped
    from mskseg.workflow.config import resolve_config

    shipped = read_shipped(REPO / "config.yaml")
    user = yaml.safe_load((REPO / "configs" / "spar_ankle.yaml").read_text(encoding="utf-8"))
    config = resolve_config({**shipped, **user}, overrides=user, shipped=shipped)
    plan = Plan.from_config(config)
    assert list(plan.datasets) == ["anklespar"] and list(config["studies"]) == ["spar"]
    ankle = plan["anklespar"]
    assert config["datasets"]["anklespar"]["source"]["synthetic"]["kind"] == "ankle"
    assert dict(ankle.config["labels"]) == {"tibia": 1, "talus": 2, "calcaneus": 3}
    assert {m: s.view for m, s in ankle.trained.items()} == dict.fromkeys(
        ("unet", "adversarialMask", "shapePrior", "spar"), "sagittal")
    assert [ankle.trained[m].regularisation.regulariser for m in ankle.trained] == [
        "none", "adversarial_mask", "shape_prior", "spar"]
    subjects = [f"anklespar{i:03d}" for i in range(5)]
    cps = FakeCheckpoints()
    cps.qc_done("anklespar", tmp_path, passed=subjects, failed=[])
    folds = {str(i): {"train": [s for j, s in enumerate(subjects) if j not in (i, (i + 1) % 5)],
                      "val": [subjects[(i + 1) % 5]], "test": [subjects[i]]} for i in range(5)}
    cps.splits_done("anklespar", tmp_path, splits_table(folds))
    wf = Workflow.build(plan, cps)
    targets = wf.targets.spar()
    assert "results/tables/anklespar/metric-dice_table.md" in targets
    assert "results/plots/anklespar/method-spar_fold-0_latents.png" in targets
    assert wf.targets.hip_transfer() == [] and wf.targets.knee_shape_fitting() == []

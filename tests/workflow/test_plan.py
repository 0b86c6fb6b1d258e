"""The parse-time plan, the checkpoint tables, paths, resources and the loader of mskseg.workflow."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from snakemake.iocontainers import Namedlist

from mskseg.errors import ConfigError
from mskseg.io.tables import write_table
from mskseg.nn.method import MethodSpec
from mskseg.workflow.checkpoints import (
    CheckpointTables,
    flag,
    fold_subjects,
    passed_subjects,
    split_ids,
    test_folds,
    usable,
)
from mskseg.workflow.config import SCHEMA, resolve_config
from mskseg.workflow.load import Workflow, load_workflow
from mskseg.workflow.paths import entity_path, log_path, model_path, optional_input, out, training_work_dir
from mskseg.workflow.plan import NOTHING, Plan, dataset_manifest, synthetic_manifest
from mskseg.workflow.resources import mem_from_input, registration_mem_mb, selection_mem_mb, training_mem_mb
from tests.workflow.fakes import FakeCheckpoints, NotYet, demo_config, splits_table


@pytest.fixture(scope="module")
def config() -> dict:
    return demo_config()


@pytest.fixture(scope="module")
def plan(config) -> Plan:
    return Plan.from_config(config)


# ---- config -----------------------------------------------------------------------------------
def test_resolve_config_fills_defaults_and_leaves_the_input_alone() -> None:
    raw = {"datasets": {"k": {"modality": "mri", "labels": {"femur": 1, "femoral_cartilage": 2, "tibia": 3,
                                                               "tibial_cartilage": 4},
                              "source": {"synthetic": {"kind": "knee", "n_subjects": 3}}}}}
    before = repr(raw)
    resolved = resolve_config(raw, SCHEMA)
    assert repr(raw) == before  # Snakemake's config stays as the user wrote it
    assert resolved["batch_subjects"] == 20 and resolved["qc"]["fatal"] is False
    assert resolved["datasets"]["k"]["shape"]["enabled"] is True
    with pytest.raises(ConfigError, match=r"datasets\.k\.bones"):
        resolve_config({"datasets": {"k": {**raw["datasets"]["k"], "bones": ["patella"]}}})


def test_a_bad_training_setting_fails_when_the_plan_is_made(config) -> None:
    bad = {**config["datasets"]["knee"]}
    bad["methods"] = {**bad["methods"], "unet2d": {**bad["methods"]["unet2d"], "train": {"epochs": -1}}}
    with pytest.raises(ConfigError, match=r"methods\.unet2d\.train: training setting 'epochs'"):
        Plan.from_config({**config, "datasets": {"knee": bad}})


# ---- plan -------------------------------------------------------------------------------------
def test_the_plan_of_the_demo(plan) -> None:
    assert list(plan.datasets) == ["knee", "hip", "hipspar", "kneedesign", "kneescans", "hipscans"]
    assert plan.synthetic == list(plan.datasets)
    assert list(plan.training) == ["knee", "hip", "hipspar", "kneedesign"]
    assert list(plan.segmenting) == ["kneescans", "hipscans"]
    # hipspar and kneedesign: only the spar and cartilage_design studies' (not in all)
    assert list(plan.default_plan().training) == ["knee", "hip"]
    scans = plan["kneescans"]
    assert scans.methods == {} and scans.shape_models == {} and scans.evaluated == [] and scans.trained == {}
    assert scans.row("knee000")["label"] == ""  # unlabelled: the phantom's mask is hidden truth only
    knee, hip = plan["knee"], plan["hip"]
    assert knee.synthetic and knee.kind == "synthetic" and knee.subjects[:2] == ["knee000", "knee001"]
    assert knee.row("knee003")["image"] == "results/synthetic/knee/sub-knee003_image.nii.gz"
    with pytest.raises(ValueError, match="no subject 'nobody'"):
        knee.row("nobody")
    assert knee.labels == {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4}
    assert hip.shape_models["femur"] == [("femur_right", False), ("femur_left", True)]
    assert hip.bone_of("femur_left") == ("femur", True)
    with pytest.raises(ValueError, match="no shape model"):
        hip.bone_of("tibia")
    assert knee.methods_of_kind("perturbed") == ["perturbedMild", "perturbedStrong"]
    assert set(hip.trained) == {"unet2d", "unet2dNoPretrain", "unet2dNoWeight", "unet3dRecipe", "mpunet",
                                "mpunetNoPretrain", "mpunetNoWeight"} and isinstance(hip.trained["mpunet"], MethodSpec)
    assert hip.trained["mpunet"].multiplanar.dim == 64 and hip.trained["unet2d"].interactive.rounds == (2, 4)
    assert knee.evaluated == ["unet2d", "shapefit"]
    assert set(knee.fitted) == {"shapefit"} and knee.fitted["shapefit"].presegmentation == "unet2d"
    assert knee.fitted["shapefit"].landmarks.counts == {"femur": 100, "tibia": 30} and hip.fitted == {}
    assert plan.batch_size == 20 and set(plan.with_shape_models) == {"knee", "hip"}


def test_wildcard_constraints(plan) -> None:
    c = plan.wildcard_constraints()
    assert set(c) == {"dataset", "subject", "bone", "structure", "fold", "method", "metric", "view", "wmap", "batch",
                      "part"}
    assert re.fullmatch(c["dataset"], "hip") and not re.fullmatch(c["dataset"], "ankle")
    assert c["bone"] == "femur|hip|sacrum|tibia"
    assert re.fullmatch(c["structure"], "femur_left") and re.fullmatch(c["wmap"], "eroded")
    assert re.fullmatch(c["subject"], "9001104.v00_R-1") and not re.fullmatch(c["subject"], "a/b")
    assert re.fullmatch(c["view"], "mpr") and re.fullmatch(c["batch"], "000") and not re.fullmatch(c["batch"], "1")
    assert plan.method_pattern("trained") == (
        "adversarialMask|deeplab|deeplabN2S1|deeplabN4S1|mpunet|mpunetNoPretrain|mpunetNoWeight|segnet|segnetN2S1|"
        "segnetN4S1|shapePrior|spar|unet|unet25d3|unet25d5|unet25d7|unet2d|unet2dN2S1|unet2dN4S1|unet2dNoPretrain|"
        "unet2dNoWeight|unet3d|unet3dRecipe|unet3plane|unetBce|unetNoAug|unetWce")  # the design study's sizes too
    assert plan.method_pattern("files") == NOTHING and not re.fullmatch(NOTHING, "")
    assert plan.synthetic_pattern() == "knee|hip|hipspar|kneedesign|kneescans|hipscans"


def test_manifests_of_every_source(tmp_path: Path, config) -> None:
    spec = {"kind": "hip", "n_subjects": 3, "patients": 2, "poor_labels": True}
    frame = synthetic_manifest("h", spec, root="out")
    assert frame["subject"].tolist() == ["hip000", "hip001", "hip002"]
    assert frame["patient"].tolist() == ["hipp000", "hipp000", "hipp001"]
    assert frame["timepoint"].tolist() == [0, 1, 0]
    assert frame.loc[0, "label_poor"] == "out/synthetic/h/sub-hip000_poormask.nii.gz"
    assert synthetic_manifest("h", {"kind": "hip", "n_subjects": 1}).loc[0, "label_poor"] == ""
    pd.DataFrame({"subject": ["a", "b"], "image": ["a.nii.gz", "b.nii.gz"], "label": ["", "b_seg.nii.gz"]}).to_csv(
        tmp_path / "m.csv", index=False)
    (tmp_path / "cov.csv").write_text("subject,patient,kl_grade\na,P1,2\nb,P1,3\n", encoding="utf-8")
    knee = config["datasets"]["knee"]
    real = dataset_manifest("real", {**knee, "source": {"manifest": {"path": str(tmp_path / "m.csv"),
                                                                     "covariates": str(tmp_path / "cov.csv")}}})
    assert real["patient"].tolist() == ["P1", "P1"] and real["kl_grade"].tolist() == ["2", "3"]
    assert real.loc[1, "label"] == str(tmp_path / "b_seg.nii.gz")


# ---- checkpoint tables ------------------------------------------------------------------------
SPLITS = splits_table({"0": {"train": ["a", "b"], "val": ["c"], "test": ["d"]},
                       "1": {"train": ["c", "d"], "val": ["a"], "test": ["b"]},
                       "10": {"train": ["a"], "val": ["b"], "test": ["c", "d"]}})


def test_one_definition_of_who_goes_on_and_of_each_fold(tmp_path: Path) -> None:
    subjects = pd.DataFrame({"subject": ["007", "b", "c"], "qc_passed": [True, True, False],
                             "has_label": ["True", "False", "True"]})
    assert flag(subjects["has_label"]).tolist() == [True, False, True]
    assert usable(subjects).tolist() == [True, False, False]
    assert passed_subjects(subjects) == ["007"] and passed_subjects(subjects, labelled=False) == ["007", "b"]
    assert split_ids(SPLITS) == ["0", "1", "10"]
    assert fold_subjects(SPLITS, "1", "train") == ["c", "d"] and fold_subjects(SPLITS, 0, "test") == ["d"]
    with pytest.raises(ValueError, match="role must be one of"):
        fold_subjects(SPLITS, "0", "holdout")
    assert test_folds(SPLITS) == {"d": "0", "b": "1", "c": "10"}  # the first split that tests a subject


def test_checkpoint_tables_read_each_version_once(tmp_path: Path) -> None:
    cps = FakeCheckpoints()
    tables = CheckpointTables(cps)
    with pytest.raises(NotYet):
        tables.passed("knee")  # the checkpoint has not run: Snakemake's signal passes through
    cps.qc_done("knee", tmp_path, passed=["a", "b"], failed=["c"], unlabelled=["d"])
    cps.splits_done("knee", tmp_path, SPLITS)
    assert tables.passed("knee") == ["a", "b"] and tables.passed("knee", labelled=False) == ["a", "b", "d"]
    assert tables.folds("knee") == ["0", "1", "10"] and tables.fold_subjects("knee", "10", "test") == ["c", "d"]
    assert tables.evaluated("knee") == ["d", "b", "c"] and tables.test_fold("knee", "c") == "10"
    with pytest.raises(ValueError, match="knee: subject a is in no split's test set"):
        tables.test_fold("knee", "a")
    reads = []
    counting = CheckpointTables(cps, reader=lambda p: reads.append(p) or pd.read_csv(p, sep="\t", dtype=str))
    for _ in range(3):
        counting.folds("knee")
    assert len(reads) == 1
    write_table(splits_table({"5": {"test": ["a"]}}), tables.splits_table("knee"))  # the checkpoint ran again
    assert counting.folds("knee") == ["5"] and len(reads) == 2


# ---- paths and resources ----------------------------------------------------------------------
def test_paths() -> None:
    assert entity_path("qc", "knee", "qc.tsv", subject="s1") == "results/qc/knee/sub-s1_qc.tsv"
    assert entity_path("splits", "hip", "splits.tsv", root="x") == "x/splits/hip/splits.tsv"
    assert out("landmarks", "landmarks.csv", subject="{subject}", structure="{structure}") == (
        "results/landmarks/{dataset}/sub-{subject}_structure-{structure}_landmarks.csv")
    assert log_path("qc") == "logs/qc/{dataset}/{subject}.log" and log_path("qc", "summary").endswith("summary.log")
    assert model_path("hip", "fusion.json", method="m", fold="1") == "results/models/hip/method-m_fold-1_fusion.json"
    assert model_path("hip", "model.pt", method="m", fold="1", view="axial").endswith("fold-1_view-axial_model.pt")
    assert training_work_dir("hip", "m", "1", "mpr") == "results/models/.work/hip/method-m_fold-1_view-mpr"
    inputs = Namedlist(fromdict={"image": "a.nii.gz", "pretrained": "w.pt"})
    assert "pretrained" not in inputs  # a Namedlist holds the paths: membership tests them, not the names
    assert optional_input(inputs, "pretrained") == Path("w.pt") and optional_input(inputs, "fusion") is None


def test_memory_grows_with_the_inputs_and_the_attempt() -> None:
    small, big = SimpleNamespace(size_mb=1.0, masks=[]), SimpleNamespace(size_mb=100.0, masks=["m"] * 500)
    assert mem_from_input(None, small, 1) == 1000 and mem_from_input(None, big, 2) == 8000
    assert registration_mem_mb(None, small, 1) == 1500 and registration_mem_mb(None, big, 1) == 6000
    assert selection_mem_mb(None, small, 1) == 2000 and selection_mem_mb(None, big, 3) == 9000


def test_training_memory_follows_the_largest_volume_not_the_number_of_subjects(tmp_path) -> None:
    import numpy as np

    from mskseg.io.volumes import write_volume
    from mskseg.volume import Volume

    def nifti(name: str, shape: tuple[int, int, int]) -> str:
        path = tmp_path / name
        write_volume(Volume(np.zeros(shape, np.uint8), (1.0, 1.0, 1.0)), path)
        return str(path)

    small, big = nifti("small_image.nii.gz", (10, 20, 50)), nifti("big_image.nii.gz", (100, 100, 100))
    mask = nifti("big_mask.nii.gz", (200, 100, 100))  # not an image: ignored

    def job(n_train: int, n_val: int, *extra: str) -> Namedlist:
        return Namedlist(fromdict={"train_image": [small] * n_train, "train_mask": [mask] * n_train,
                                   "val_image": [small, *extra] * n_val, "val_mask": [mask] * n_val})

    base = 1500 + 150 * 0.01  # MB: the base and 150 MB per million voxels of the largest image (10 000 voxels)
    assert training_mem_mb(None, job(4, 1), 1) == training_mem_mb(None, job(64, 16), 1) == int(base)
    assert training_mem_mb(None, job(4, 1, big), 1) == 1650 and training_mem_mb(None, job(64, 16, big), 2) == 3300
    assert training_mem_mb(None, Namedlist(fromdict={"image": big, "models": ["m.pt"]}), 1) == 1650  # prediction
    missing = str(tmp_path / "later_image.nii.gz")
    with pytest.raises(FileNotFoundError) as raised:  # not made yet: Snakemake evaluates it again when it is
        training_mem_mb(None, Namedlist(fromdict={"image": missing}), 1)
    assert raised.value.filename == missing


# ---- the loader -------------------------------------------------------------------------------
def test_load_workflow_resolves_plans_and_patches_the_group_check() -> None:
    import yaml

    from tests.conftest import REPO

    class DAG:
        def _check_groups(self):
            for group in self._group.values():
                assert group is not None

    raw = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    wf = load_workflow(raw, FakeCheckpoints(), dag_class=DAG)
    assert isinstance(wf, Workflow) and getattr(DAG._check_groups, "_mskseg_once", False)
    assert wf.plan["knee"].config["shape"]["enabled"] is True  # defaults filled
    assert wf.targets.checkpoints is wf.tables is wf.shape.checkpoints  # one reader of the checkpoint tables
    assert "datasets" in raw and "batch_subjects" not in raw  # the caller's config is not changed


# ---- the settings each stage reads, and the rule logs ---------------------------------------------
def test_each_stage_reads_its_settings(config) -> None:
    from mskseg.workflow.compose import deep_merge
    from mskseg.workflow.config import validate_schema
    from mskseg.workflow.settings import (
        check_evaluation,
        evaluated_methods,
        evaluation_settings,
        source_kind,
        table_metrics,
    )

    knee = config["datasets"]["knee"]
    assert source_kind(knee) == "synthetic" and source_kind({"source": {"layout": {}}}) == "layout"
    assert evaluated_methods(knee) == ["unet2d", "shapefit"]
    assert evaluated_methods({"methods": {"a": {}, "b": {}}}) == ["a", "b"]  # default: every method, config order
    assert evaluation_settings(knee) == {"percentile": 95.0, "gap_eps_mm": 10.0, "collision_eps_mm": None,
                                         "fov_axis": "LR", "threads": 1}
    assert table_metrics(knee) == ["dice", "voe", "hd95_mm", "assd_mm"]
    assert table_metrics({}) == ["dice", "voe", "hd_mm", "hd95_mm", "assd_mm"]
    with pytest.raises(ConfigError, match=r"datasets\.knee\.evaluation\.methods: \['other'\] not among"):
        check_evaluation("knee", {**knee, "evaluation": {"methods": ["other"]}})
    with pytest.raises(ConfigError, match=r"evaluation\.fov\.structures: \['patella'\]"):
        check_evaluation("knee", {**knee, "evaluation": {"fov": {"structures": ["patella"]}}})
    with pytest.raises(ConfigError, match=r"methods\.mine\.path: needs a \{subject\} placeholder"):
        files = {"mine": {"kind": "files", "path": "/p.nii.gz"}}
        check_evaluation("knee", {**knee, "evaluation": {}, "methods": files})
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": 5}, "d": [2]}) == {"a": {"b": 5, "c": 2},
                                                                                     "d": [2]}
    bad = {"datasets": {"k": {**knee, "modality": "pet"}}}
    with pytest.raises(Exception, match="'pet' is not one of"):
        validate_schema(bad)


def test_rule_logs_keep_the_error_where_snakemake_points(tmp_path: Path) -> None:
    import sys

    from mskseg.workflow.logs import setup_logging

    log = tmp_path / "logs" / "rule.log"
    before = sys.excepthook
    try:
        logger = setup_logging(log, "rule")
        logger.info("mean %s", "± 0.1")
        assert logger.name == "mskseg.rule"
        try:
            raise ValueError("a broken input")
        except ValueError as err:
            sys.excepthook(type(err), err, err.__traceback__)
    finally:
        sys.excepthook = before
    text = log.read_text(encoding="utf-8")
    assert "INFO mskseg.rule: mean ± 0.1" in text and "ERROR: Traceback" in text and "a broken input" in text


def test_checkpoint_table_paths(tmp_path: Path) -> None:
    cps = FakeCheckpoints()
    cps.qc_done("hip", tmp_path, passed=["h"])
    tables = CheckpointTables(cps)
    assert tables.subjects_table("hip") == str(tmp_path / "hip_subjects.tsv")
    with pytest.raises(NotYet):
        tables.splits_table("hip")


def test_a_log_keeps_every_attempt(tmp_path: Path) -> None:
    import sys

    from mskseg.workflow.logs import ATTEMPT, attempts_path, setup_logging

    log = tmp_path / "job.log"
    before = sys.excepthook
    try:
        setup_logging(log, "job").warning("the first attempt failed here")
        log.unlink()  # Snakemake deletes a job's log before it runs the job again
        setup_logging(log, "job").info("the second attempt")
    finally:
        sys.excepthook = before
    assert attempts_path(log) == tmp_path / "job.attempts.log"
    lines = attempts_path(log).read_text(encoding="utf-8").splitlines()
    assert [line.startswith(ATTEMPT) for line in lines] == [True, False, True, False]
    assert "the first attempt failed here" in lines[1] and "the second attempt" in lines[3]
    current = log.read_text(encoding="utf-8").splitlines()
    assert current[0].startswith(ATTEMPT) and current[1:] == lines[3:]

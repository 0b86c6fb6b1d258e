"""The cartilage design study (studies.cartilage_design): its parse, the training-size methods it adds, their
nested patient subsets and equal steps, and what a changed setting re-runs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mskseg.errors import ConfigError
from mskseg.workflow.cartilage_design import DesignStudy, expand_training_sizes, size_method_name
from mskseg.workflow.config import resolve_config
from mskseg.workflow.load import Workflow
from mskseg.workflow.plan import Plan
from tests.workflow.fakes import REPO, FakeCheckpoints, splits_table, wildcards

SUBJECTS = [f"knee{i:03d}" for i in range(24)]  # 12 patients scanned twice (kneep000 = knee000 + knee001)
FOLD = {"0": {"train": SUBJECTS[:16], "val": SUBJECTS[16:20], "test": SUBJECTS[20:]}}


def shipped() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))


def workflow(config: dict, tmp_path: Path) -> Workflow:
    cps = FakeCheckpoints()
    cps.qc_done("kneedesign", tmp_path, passed=SUBJECTS)
    cps.splits_done("kneedesign", tmp_path, splits_table(FOLD))
    return Workflow.build(Plan.from_config(resolve_config(config)), cps)


def test_the_shipped_study_adds_each_size_as_a_scored_method_and_reads_every_row(tmp_path: Path) -> None:
    wf = workflow(shipped(), tmp_path)
    study = wf.studies.design
    assert study.dataset == "kneedesign" and study.structure == "femoral_cartilage"
    assert [name for name, _ in study.experiments] == ["architecture", "volumetric", "loss", "augmentation"]
    plan = wf.plan["kneedesign"]
    derived = {"unet2dN2S1", "unet2dN4S1", "segnetN2S1", "segnetN4S1", "deeplabN2S1", "deeplabN4S1"}
    assert derived <= set(plan.evaluated) and derived <= set(plan.trained)
    spec = plan.trained["segnetN4S1"]
    assert spec.network == plan.trained["segnet"].network and spec.train_subjects.size == 4
    assert dict(study.sizes)["unet2d"] == ((2.0, 1, "unet2dN2S1"), (4.0, 1, "unet2dN4S1"), (1.0, 1, "unet2d"))
    inputs = wf.studies.design_inputs()
    assert len(inputs["metrics"]) == 16 and len(inputs["fovs"]) == 10  # each method once
    assert "results/evaluation/kneedesign/method-unet2d_metrics.csv" in inputs["metrics"]
    assert "cartilage_design" not in str(wf.targets.studies())  # its own target only (in_all: false)
    assert wf.targets.cartilage_design()[-1] == "results/studies/cartilage_design/powerlaw.png"


def test_size_runs_train_on_nested_whole_patients_with_the_same_validation(tmp_path: Path) -> None:
    wf = workflow(shipped(), tmp_path)
    seg = wf.segmentation

    def subjects(method: str) -> dict[str, list[str]]:
        return seg.fold_subjects(wildcards(dataset="kneedesign", method=method, fold="0", view="sagittal"))

    two, four, full = subjects("unet2dN2S1"), subjects("unet2dN4S1"), subjects("unet2d")
    assert len(two["train"]) == 4 and len(four["train"]) == 8 and full["train"] == FOLD["0"]["train"]
    assert set(two["train"]) < set(four["train"]) < set(full["train"])  # nested
    for chosen in (two["train"], four["train"]):  # whole patients: both scans of each
        assert {int(s[4:]) // 2 for s in chosen} == {int(s[4:]) // 2 for s in chosen if int(s[4:]) % 2 == 0}
        assert len(chosen) == 2 * len({int(s[4:]) // 2 for s in chosen})
    assert two["val"] == four["val"] == FOLD["0"]["val"]
    params = wf.studies.design_params()
    assert params["patients"]["unet2dN2S1"] == 2 and params["patients"]["deeplabN4S1"] == 4
    assert params["patients"]["unet2d"] == 8
    # the same seed, another architecture: the same patients (the curves compare networks on equal data)
    assert subjects("segnetN2S1")["train"] == two["train"]


def test_epochs_scale_to_equal_steps_when_an_epoch_is_one_pass(tmp_path: Path) -> None:
    config = shipped()
    config["datasets"]["kneedesign"]["methods"]["unet2d"]["train"]["steps_per_epoch"] = None
    wf = workflow(config, tmp_path)
    w = wildcards(dataset="kneedesign", method="unet2dN2S1", fold="0", view="sagittal")
    assert wf.segmentation.method_settings(w)["method"]["train"]["epochs"] == 16 * 8 // 2
    full = wildcards(dataset="kneedesign", method="unet2d", fold="0", view="sagittal")
    assert wf.segmentation.method_settings(full)["method"]["train"]["epochs"] == 16
    fixed = workflow(shipped(), tmp_path)  # steps_per_epoch 25: equal steps already
    assert fixed.segmentation.method_settings(w)["method"]["train"]["epochs"] == 16


def test_a_changed_size_reruns_only_the_new_runs_and_the_table(tmp_path: Path) -> None:
    changed = shipped()
    changed["studies"]["cartilage_design"]["training_size"]["sizes"] = [2, 3]
    before, after = workflow(shipped(), tmp_path), workflow(changed, tmp_path)
    assert "unet2dN3S1" in after.plan["kneedesign"].trained and "unet2dN4S1" not in after.plan["kneedesign"].trained
    for method in ("unet2d", "unet2dN2S1", "segnet", "unetNoAug"):
        w = wildcards(dataset="kneedesign", method=method, fold="0", view="sagittal", subject="knee020")
        assert before.segmentation.method_settings(w) == after.segmentation.method_settings(w)
        assert before.segmentation.fold_subjects(w) == after.segmentation.fold_subjects(w)
        assert before.predictions.inference_settings(w) == after.predictions.inference_settings(w)
    assert before.studies.design_params() != after.studies.design_params()
    w = wildcards(dataset="knee", method="unet2d", fold="0", view="sagittal")
    assert before.segmentation.method_settings(w) == after.segmentation.method_settings(w)


def test_bad_blocks_are_named(tmp_path: Path) -> None:
    def fails(edit, match: str) -> None:
        config = shipped()
        edit(config)
        with pytest.raises(ConfigError, match=match):
            Workflow.build(Plan.from_config(resolve_config(config)), FakeCheckpoints())

    def unknown_row(c):
        c["studies"]["cartilage_design"]["experiments"]["loss"][1]["method"] = "nope"

    def unknown_size_method(c):
        c["studies"]["cartilage_design"]["training_size"]["methods"] = ["nope"]

    def unscored_structure(c):
        c["studies"]["cartilage_design"]["structure"] = "tibia"

    fails(unknown_row, r"experiments.loss: BCE: 'nope' is not a scored method")
    fails(unknown_size_method, r"training_size.methods: 'nope' is not a trained method")
    fails(unscored_structure, r"structure: 'tibia' is not a label of 'kneedesign'")

    def no_fov(c):
        c["datasets"]["kneedesign"]["evaluation"]["fov"]["structures"] = []
        c["datasets"]["kneedesign"]["labels"] = {"femoral_cartilage": 2, "tibial_cartilage": 4}
        c["datasets"]["kneedesign"]["evaluation"]["fov"]["structures"] = ["tibial_cartilage"]

    fails(no_fov, r"structure: 'femoral_cartilage' is not among .*fov")


def test_a_phantom_dataset_declares_some_of_its_structures_when_the_rest_is_background() -> None:
    config = resolve_config(shipped())
    assert config["datasets"]["kneedesign"]["labels"] == {"femoral_cartilage": 2}
    for labels, background in (({"femoral_cartilage": 2}, False), ({"femoral_cartilage": 3}, True)):
        changed = shipped()
        changed["datasets"]["kneedesign"]["labels"] = labels
        if not background:
            del changed["datasets"]["kneedesign"]["undeclared_labels"]
        with pytest.raises(ConfigError, match="the synthetic knee phantom writes"):
            resolve_config(changed)


def test_expansion_is_idempotent_and_names_runs() -> None:
    assert size_method_name("segnet", 15, 3) == "segnetN15S3" and size_method_name("unet", 0.5, 1) == "unetP50S1"
    config = resolve_config(shipped())
    again = expand_training_sizes(config)
    assert again["datasets"]["kneedesign"]["methods"] == config["datasets"]["kneedesign"]["methods"]
    block = copy.deepcopy(config["studies"]["cartilage_design"])
    block["training_size"]["seeds"] = [1, 2]
    grown = expand_training_sizes({**config, "studies": {"cartilage_design": block}})
    methods = grown["datasets"]["kneedesign"]["methods"]
    assert methods["unet2dP100S2"]["train_subjects"]["size"] == 1.0 and methods["unet2dP100S2"]["train"]["seed"] == 2
    assert "unet2dP100S1" not in methods  # the full set with the method's own seed is the method itself
    plan = Plan.from_config(resolve_config({**shipped(), "studies": {**shipped()["studies"], "cartilage_design": {
        **shipped()["studies"]["cartilage_design"], "training_size": {**block["training_size"]}}}}))
    study = DesignStudy.from_config(plan.config["studies"]["cartilage_design"], plan)
    assert [m for _, _, m in dict(study.sizes)["unet2d"]] == ["unet2dN2S1", "unet2dN4S1", "unet2d", "unet2dN2S2",
                                                             "unet2dN4S2", "unet2dP100S2"]

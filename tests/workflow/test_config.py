import pytest
import yaml

from mskseg.errors import ConfigError
from mskseg.workflow.compose import apply_scale
from mskseg.workflow.config import canonical, check_dataset
from mskseg.workflow.plan import dataset_manifest
from mskseg.workflow.settings import preprocess_settings, qc_settings, shape_models, shape_settings
from tests.conftest import REPO


def _config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_demo_scale_is_the_config_as_written_and_paper_overlays_it() -> None:
    config = _config()
    assert apply_scale(config)["datasets"] == config["datasets"]
    paper = apply_scale({**config, "scale": "paper"})
    knee = paper["datasets"]["knee"]
    assert knee["source"]["synthetic"]["shape"] == [160, 384, 384]
    assert knee["split"]["k"] == 10 and knee["labels"] == config["datasets"]["knee"]["labels"]


def test_a_scale_never_replaces_real_data() -> None:
    config = _config()
    config["datasets"]["knee"]["source"] = {"manifest": {"path": "m.tsv"}}
    paper = apply_scale({**config, "scale": "paper"})
    assert paper["datasets"]["knee"]["source"] == {"manifest": {"path": "m.tsv"}}
    with pytest.raises(ConfigError, match="scale: 'huge' is not defined"):
        apply_scale({**config, "scale": "huge"})


def test_cross_field_errors_name_the_key() -> None:
    ds = _config()["datasets"]["knee"]
    with pytest.raises(ConfigError, match=r"datasets.knee.bones: \['patella'\] not among"):
        check_dataset("knee", {**ds, "bones": ["patella"]})
    with pytest.raises(ConfigError, match=r"datasets.knee.labels: label value"):
        check_dataset("knee", {**ds, "labels": {"femur": 1, "tibia": 1}, "bones": [], "cartilage": [],
                               "preprocess": {}})
    with pytest.raises(ConfigError, match="synthetic knee phantom writes"):
        check_dataset("knee", {**ds, "labels": {**ds["labels"], "patella": 5}})
    with pytest.raises(ConfigError, match=r"split.file"):
        check_dataset("knee", {**ds, "split": {"method": "fixed"}})


def test_synthetic_manifest_and_settings() -> None:
    config = apply_scale(_config())
    hip = config["datasets"]["hip"]
    frame = dataset_manifest("hip", hip)
    assert frame["subject"].tolist()[:2] == ["hip000", "hip001"]
    assert frame.loc[0, "image"] == "results/synthetic/hip/sub-hip000_image.nii.gz"
    assert frame.loc[0, "label_poor"].endswith("poormask.nii.gz")
    assert qc_settings(hip, {}).expected_values == (1, 2, 3, 4, 5)
    assert preprocess_settings(hip)["modality"] == "ct"
    assert preprocess_settings(hip)["crop_labels"] == (1, 2, 3, 4, 5)


def test_shape_models_pool_left_and_right_and_mirror_the_left() -> None:
    hip = _config()["datasets"]["hip"]
    assert shape_models(hip) == {"sacrum": [("sacrum", False)],
                                 "femur": [("femur_right", False), ("femur_left", True)],
                                 "hip": [("hip_right", False), ("hip_left", True)]}
    knee = _config()["datasets"]["knee"]
    assert shape_models(knee) == {"femur": [("femur", False)], "tibia": [("tibia", False)]}
    custom = {**hip, "shape": {"models": {"thigh": ["femur_left", "femur_right"]}, "mirror": ["femur_right"]}}
    assert shape_models(custom) == {"thigh": [("femur_left", False), ("femur_right", True)]}


def test_shape_config_errors_name_the_key() -> None:
    hip = _config()["datasets"]["hip"]
    with pytest.raises(ConfigError, match=r"datasets.hip.shape.models.thigh: \['knee'\] not among"):
        check_dataset("hip", {**hip, "shape": {"models": {"thigh": ["knee"]}}})
    with pytest.raises(ConfigError, match="'femur_left' is in both 'a' and 'b'"):
        check_dataset("hip", {**hip, "shape": {"models": {"a": ["femur_left"], "b": ["femur_left"]}}})
    with pytest.raises(ConfigError, match="model name 'a_b' must be letters and digits"):
        check_dataset("hip", {**hip, "shape": {"models": {"a_b": ["femur_left"]}}})


def test_each_shape_rule_sees_only_its_settings_in_a_canonical_order() -> None:
    knee = _config()["datasets"]["knee"]
    knee = {**knee, "shape": {"n_landmarks": 7, "working_spacing_mm": 2.0, "demons": {"iterations": [1]}}}
    assert shape_settings(knee, "landmarks") == {"n_landmarks": 7, "labels": knee["labels"]}
    assert "n_landmarks" not in shape_settings(knee, "registration")
    a = canonical({"b": 1, "a": {"y": (1, 2), "x": None}})
    assert list(a) == ["a", "b"] and list(a["a"]) == ["x", "y"] and a["a"]["y"] == [1, 2]
    assert repr(canonical({"k": 3, "m": 1})) == repr(canonical({"m": 1, "k": 3}))


def test_paper_scale_plans_every_study_at_its_papers_size() -> None:
    from mskseg.workflow.config import resolve_config
    from mskseg.workflow.plan import Plan
    from mskseg.workflow.studies import StudyInputs
    from tests.workflow.fakes import FakeCheckpoints

    config = _config()
    plan = Plan.from_config(resolve_config({**config, "scale": "paper"}, overrides={"scale": "paper"},
                                           shipped=config))
    studies = StudyInputs(plan, FakeCheckpoints())
    assert [label for label, _ in studies.transfer.rows] == ["full", "NoPretrain", "NoWeight", "3DUNet", "2DUNet"]
    assert studies.transfer.rows[0][1] == "mpunet" and studies.transfer.folds is None
    assert studies.transfer.reference == "full" and plan["hip"].trained["mpunet"].multiplanar.dim == 256
    design = plan["kneedesign"]
    assert len(design.subjects) == 176 and design.trained["segnet"].network["base"] == 64
    assert [m for _, _, m in dict(studies.design.sizes)["unet2d"]][:4] == ["unet2dN5S1", "unet2dN15S1",
                                                                           "unet2dN30S1", "unet2d"]
    assert len(dict(studies.design.sizes)["deeplab"]) == 3 * 4  # 5, 15, 30 and all of them, three seeds
    assert design.trained["unet2dN5S2"].train_subjects.size == 5 and design.trained["unet2dN5S2"].train.seed == 2
    planes = plan["knee"].trained["unet3plane"]
    assert planes.loss == "dice" and planes.train.batch_size == 2 and planes.train.lr == 1e-4
    spar = plan["hipspar"]
    assert len(spar.subjects) == 17 and spar.config["postprocess"]["closing_radius_mm"] == 2.0
    keys = {s.regularisation.autoencoder_key(s.train.seed) for s in spar.trained.values()}
    assert len(keys) == 1  # the four regularisers share one auto-encoder per fold
    assert len(plan["knee"].subjects) == 507

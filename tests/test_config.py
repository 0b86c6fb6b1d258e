import pytest
import yaml

from mskseg.config import ConfigError, apply_scale, check_dataset, dataset_manifest, preprocess_settings, qc_settings
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
    with pytest.raises(ConfigError, match="datasets.knee.labels: label value"):
        check_dataset("knee", {**ds, "labels": {"femur": 1, "tibia": 1}, "bones": [], "cartilage": [],
                               "preprocess": {}})
    with pytest.raises(ConfigError, match="synthetic knee phantom writes"):
        check_dataset("knee", {**ds, "labels": {**ds["labels"], "patella": 5}})
    with pytest.raises(ConfigError, match="split.file"):
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

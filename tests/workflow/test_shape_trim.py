"""The shape stage's trim setting through the config resolution: validated, per model, only in the params of the
rules it changes, and absent (the params of old) when not configured; the phantoms' field-of-view jitter."""

from __future__ import annotations

import copy

import pytest
import yaml

from mskseg.errors import ConfigError
from mskseg.workflow.config import resolve_config
from mskseg.workflow.load import Workflow
from mskseg.workflow.plan import Plan
from mskseg.workflow.settings import check_trim, shape_settings
from tests.conftest import REPO
from tests.workflow.fakes import FakeCheckpoints, wildcards

TRIM = {"femur": {"length_mm": 60, "from": "inferior"}, "tibia": {"length_mm": 50, "from": "superior"}}


def _written(**knee_shape) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    config["datasets"]["knee"]["shape"].pop("trim", None)  # the shipped demo trims; these tests set their own
    config["datasets"]["knee"]["shape"].update(knee_shape)
    return config


def _shape_inputs(config: dict):
    return Workflow.build(Plan.from_config(resolve_config(config)), FakeCheckpoints()).shape


def test_each_model_sees_its_own_trim_in_the_rules_it_changes() -> None:
    shape = _shape_inputs(_written(trim=TRIM))
    femur = {"length_mm": 60, "from": "inferior"}
    for w in (wildcards(dataset="knee", bone="femur"), wildcards(dataset="knee", subject="knee001",
                                                                structure="femur")):
        assert shape.registration_settings(w)["trim"] == femur
        assert shape.landmark_settings(w)["trim"] == femur
        assert "trim" not in shape.model_settings(w)
    assert shape.selection_settings(wildcards(dataset="knee", bone="femur"))["trim"] == femur
    tibia = wildcards(dataset="knee", subject="knee001", structure="tibia")
    assert shape.registration_settings(tibia)["trim"] == {"from": "superior", "length_mm": 50}
    hip = wildcards(dataset="hip", subject="hip001", structure="femur_left")
    assert "trim" not in shape.registration_settings(hip)


def test_without_trim_the_params_are_those_of_old() -> None:
    shape = _shape_inputs(_written())
    for w in (wildcards(dataset="knee", bone="femur"), wildcards(dataset="knee", subject="knee001",
                                                                structure="tibia")):
        for part in (shape.selection_settings, shape.registration_settings, shape.landmark_settings,
                     shape.model_settings):
            assert "trim" not in part(w)
    knee = resolve_config(_written())["datasets"]["knee"]
    assert "trim" not in knee["shape"]  # the schema fills no default: the resolved config is unchanged
    assert shape_settings(knee, "registration", "femur") == shape_settings(knee, "registration")


def test_changing_one_models_trim_re_runs_only_its_registrations() -> None:
    before = _shape_inputs(_written(trim=TRIM))
    longer = copy.deepcopy(TRIM)
    longer["femur"]["length_mm"] = 70
    after = _shape_inputs(_written(trim=longer))
    femur = wildcards(dataset="knee", subject="knee001", structure="femur")
    tibia = wildcards(dataset="knee", subject="knee001", structure="tibia")
    assert repr(before.registration_settings(femur)) != repr(after.registration_settings(femur))
    assert repr(before.registration_settings(tibia)) == repr(after.registration_settings(tibia))
    assert repr(before.model_settings(femur)) == repr(after.model_settings(femur))


def test_trim_is_validated() -> None:
    with pytest.raises(Exception, match="distal"):
        resolve_config(_written(trim={"femur": {"length_mm": 60, "from": "distal"}}))
    with pytest.raises(Exception, match="length_mm"):
        resolve_config(_written(trim={"femur": {"from": "inferior"}}))
    knee = resolve_config(_written())["datasets"]["knee"]
    check_trim("datasets.knee", knee)
    bad = {**knee, "shape": {**knee["shape"], "trim": {"patella": {"length_mm": 60, "from": "inferior"}}}}
    with pytest.raises(ConfigError, match=r"datasets.knee.shape.trim: \['patella'\] not among the dataset's shape"):
        check_trim("datasets.knee", bad)


def test_fov_jitter_is_an_opt_in_phantom_setting() -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    assert "fov_jitter_mm" not in resolve_config(config)["datasets"]["knee"]["source"]["synthetic"]
    config["datasets"]["knee"]["source"]["synthetic"]["fov_jitter_mm"] = 10.0
    assert resolve_config(config)["datasets"]["knee"]["source"]["synthetic"]["fov_jitter_mm"] == 10.0
    config["datasets"]["knee"]["source"]["synthetic"]["fov_jitter_mm"] = -1.0
    with pytest.raises(Exception, match=r"fov_jitter_mm|minimum"):
        resolve_config(config)

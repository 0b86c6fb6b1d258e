"""Parsing a ``kind: shape_fitting`` method against its dataset: defaults, and errors that name the field."""

from __future__ import annotations

import pytest

from mskseg.errors import ConfigError
from mskseg.nn.shape_method import WHOLE_VOLUME, ShapeFittingSpec

DATASET = {"labels": {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4},
           "cartilage": ["femoral_cartilage", "tibial_cartilage"],
           "methods": {"unet2d": {"kind": "trained", "view": "sagittal"},
                       "mp": {"kind": "trained", "view": "multiplanar"},
                       "rough": {"kind": "perturbed"}}}
MODELS = {"femur": [("femur", False)], "tibia": [("tibia", False)]}


def parse(entry: dict, models: dict = MODELS) -> ShapeFittingSpec:
    return ShapeFittingSpec.from_config("fit", {"kind": "shape_fitting", "presegmentation": "unet2d", **entry},
                                        DATASET, models)


def test_defaults_are_the_papers():
    spec = parse({})
    assert spec.bones == ("femur", "tibia") and spec.parts == ["femur", "tibia"]
    assert spec.landmarks.counts == {"femur": 100, "tibia": 30}
    assert spec.landmarks.region == ("femoral_cartilage", "tibial_cartilage")
    assert spec.regression.cube_size == 88 and spec.ensemble and spec.refinement is None
    refined = parse({"refinement": {"patch": {"size": [16, 32, 32]}}})
    assert refined.refinement.network["name"] == "unet3d" and refined.refinement.view == "volume"
    assert parse({"whole_volume": True}).parts == [WHOLE_VOLUME]


@pytest.mark.parametrize(("entry", "models", "field"), [
    ({"presegmentation": "rough"}, MODELS, "methods.fit.presegmentation"),
    ({"presegmentation": "mp"}, MODELS, "methods.fit.presegmentation"),
    ({"colour": 1}, MODELS, "unknown key"),
    ({}, {"femur": [("femur_right", False), ("femur_left", True)]}, "symmetric pairs"),
    ({}, {}, "has none"),
    ({"landmarks": {"counts": {"femur": 10}}}, MODELS, "methods.fit.landmarks.counts"),
    ({"landmarks": {"region": ["meniscus"]}}, MODELS, "methods.fit.landmarks.region"),
    ({"landmarks": {"counts": {"femur": 0, "tibia": 3}}}, MODELS, "methods.fit.landmarks.counts.femur"),
    ({"regression": {"cube_size": 4}}, MODELS, "methods.fit.regression"),
    ({"refinement": {"patch": {"size": [10, 32, 32]}}}, MODELS, "patch.size"),
    ({"ensemble": False, "refinement": None}, MODELS, "methods.fit.ensemble"),
    ({"crop_jitter_mm": -1}, MODELS, "methods.fit.crop_jitter_mm"),
])
def test_errors_name_the_field(entry, models, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse(entry, models)

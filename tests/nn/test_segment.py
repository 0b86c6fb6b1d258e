"""The pieces of segmenting a new scan that need no trained network: the model's label order, its
preprocessing for a scan without a mask, and the Dice against a reference in two spaces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mskseg.nn.segment import SegmentModel, _preprocessing, _reference_dice
from mskseg.volume import Volume

CARD = {"method": "m", "kind": "trained", "labels": {"b": 2, "a": 1},
        "preprocess": {"orientation": "LPS", "spacing": None, "image_interpolator": "linear",
                       "mask_interpolator": "nearest", "modality": "mri", "clip_percentiles": [0.5, 99.5],
                       "crop_labels": [1, 2], "crop_margin_mm": 8.0},
        "method_config": {"entry": {"kind": "trained"}}}


def test_labels_in_value_order_and_channels_as_the_model_was_trained(tmp_path: Path) -> None:
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"label_values": [2, 1]}), encoding="utf-8")
    model = SegmentModel(card=CARD, folds={"0": {"model/sagittal": tmp_path / "m.pt", "info/sagittal": info}})
    assert list(model.labels) == ["a", "b"]           # value order, whatever the card's key order
    assert model.channel_values == [2, 1]             # the networks' channels: the training's order
    assert SegmentModel(card=CARD, folds={}).channel_values == [2, 1]  # no description: the card's order


def test_a_scan_is_preprocessed_as_training_without_the_crop_at_the_training_spacing(tmp_path: Path) -> None:
    volumes = tmp_path / "volumes.json"
    volumes.write_text(json.dumps({"spacing_mm": [1.6, 1.25, 1.25]}), encoding="utf-8")
    settings = _preprocessing(SegmentModel(card=CARD, folds={"0": {"volumes": volumes}}))
    assert settings.crop_labels == () and settings.spacing == (1.6, 1.25, 1.25) and settings.modality == "mri"
    assert _preprocessing(SegmentModel(card=CARD, folds={})).spacing is None  # no training spacing known: native


def test_dice_in_the_scans_space_and_on_the_preprocessed_grid() -> None:
    truth = np.zeros((6, 6, 6), np.uint8)
    truth[1:4, 1:4, 1:4] = 1
    pred = truth.copy()
    pred[1, 1:4, 1:4] = 0                              # 9 of 27 voxels missed
    scan = Volume(truth, (1.0, 1.0, 1.0))
    dice = _reference_dice(scan, scan.with_array(pred), scan.with_array(pred), {"a": 1})
    assert dice["a.dice"] == pytest.approx(2 * 18 / (27 + 18)) == dice["a.dice_preprocessed"]
    with pytest.raises(ValueError, match="not on the scan's grid"):
        _reference_dice(Volume(truth, (2.0, 1.0, 1.0)), scan.with_array(pred), scan.with_array(pred), {"a": 1})

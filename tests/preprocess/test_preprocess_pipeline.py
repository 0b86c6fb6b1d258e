import json

import numpy as np
import pytest
from preprocess_phantoms import dice, label_centroid_mm

from mskseg.preprocess import (
    PreprocessSettings,
    orientation_code,
    preprocess_pair,
    restore_to_original,
    zscore_clip,
)
from mskseg.volume import Volume

SETTINGS = [
    PreprocessSettings(orientation="RAS", spacing=(1.0, 1.0, 1.0), crop_labels=(1, 2), crop_margin_mm=5.0),
    PreprocessSettings(orientation="LPS", spacing=(1.5, 0.6, 1.0), crop_labels=(1, 2), crop_margin_mm=5.0,
                       image_interpolator="bspline"),
    PreprocessSettings(orientation="RAS", spacing=(1.0, 1.0, 1.0), mask_interpolator="label_gaussian",
                       crop_labels=(2,), crop_margin_mm=20.0),
    PreprocessSettings(orientation="SAL", spacing=None, crop_labels=(1, 2), modality="ct"),
]


def _same_geometry_exactly(a: Volume, b: Volume) -> bool:
    return (a.shape == b.shape and a.spacing == b.spacing and a.origin == b.origin
            and np.array_equal(a.direction, b.direction))


@pytest.mark.parametrize("settings", SETTINGS)
def test_preprocess_pair_preserves_label_centroids(phantom, settings):
    image, mask = phantom
    img, msk, _ = preprocess_pair(image, mask, settings)
    assert orientation_code(img) == settings.orientation
    assert _same_geometry_exactly(img, msk)  # the mask is on exactly the image's grid
    assert img.array.dtype == np.float32 and msk.array.dtype == mask.array.dtype
    if settings.spacing is not None:
        assert img.spacing == settings.spacing
    for label in (1, 2):
        shift = label_centroid_mm(msk, label) - label_centroid_mm(mask, label)
        per_axis = np.abs(msk.direction.T @ shift)  # along the new index axes
        assert np.all(per_axis < 0.5 * np.asarray(msk.spacing)), (label, per_axis)
        if settings.spacing == (1.0, 1.0, 1.0):
            assert np.linalg.norm(shift) < 0.5


@pytest.mark.parametrize("settings", SETTINGS)
def test_restore_to_original_recovers_mask(phantom, settings):
    image, mask = phantom
    _, msk, _ = preprocess_pair(image, mask, settings)
    back = restore_to_original(msk, image)
    assert _same_geometry_exactly(back, image)
    assert back.array.dtype == mask.array.dtype
    present = {1, 2} if settings.crop_labels != (2,) else {2}  # a crop to label 2 may cut label 1
    for label in present:
        assert dice(back.array == label, mask.array == label) > 0.95


def test_restore_puts_background_outside_the_crop(phantom):
    image, mask = phantom
    settings = PreprocessSettings(orientation="RAS", spacing=(1.0, 1.0, 1.0), crop_labels=(2,),
                                  crop_margin_mm=1.0)
    _, msk, record = preprocess_pair(image, mask, settings)
    filled = msk.with_array(np.full(msk.shape, 9, dtype=msk.array.dtype))
    back = restore_to_original(filled, image)
    assert set(np.unique(back.array)) == {0, 9}
    assert 0 < np.count_nonzero(back.array) < back.array.size
    assert record["crop"]["box"] != [[0, n] for n in record["crop"]["shape_before"]]


def test_record_is_json_and_describes_the_steps(phantom):
    image, mask = phantom
    settings = SETTINGS[0]
    img, msk, record = preprocess_pair(image, mask, settings)
    record = json.loads(json.dumps(record))  # JSON-serialisable, round-trips
    assert record["settings"] == settings.to_dict()
    assert PreprocessSettings.from_dict(record["settings"]) == settings
    inp = record["input"]["image"]
    assert inp["shape"] == list(image.shape) and inp["spacing"] == list(image.spacing)
    assert inp["origin"] == list(image.origin)
    assert np.array_equal(inp["direction"], image.direction)
    assert record["orientation"] == {"before": "PIR", "after": "RAS"}
    assert record["resampled"]["spacing"] == [1.0, 1.0, 1.0]
    assert record["output"]["image"]["shape"] == list(img.shape)
    assert record["output"]["mask"]["origin"] == list(msk.origin)
    box = record["crop"]["box"]
    assert [b - a for a, b in box] == list(img.shape)
    stats = record["intensity"]
    assert stats["modality"] == "mri" and stats["sd"] > 0
    assert (stats["lower_percentile"], stats["upper_percentile"]) == settings.clip_percentiles


def test_ct_record_and_no_mask(phantom):
    image, _ = phantom
    settings = PreprocessSettings(modality="ct", spacing=(1.0, 1.0, 1.0), crop_labels=(1,))
    img, msk, record = preprocess_pair(image, None, settings)
    assert msk is None and record["crop"] is None and record["input"]["mask"] is None
    assert set(record["intensity"]) >= {"median", "q25", "q75"}
    assert orientation_code(img) == "LPS"
    json.dumps(record)


def test_without_resampling_values_are_only_reordered(phantom):
    image, mask = phantom
    img, msk, record = preprocess_pair(image, mask, PreprocessSettings(orientation="RAS"))
    assert record["resampled"] is None and record["crop"] is None
    np.testing.assert_allclose(np.sort(img.array, axis=None), np.sort(zscore_clip(image.array), axis=None))
    assert np.array_equal(np.bincount(msk.array.ravel()), np.bincount(mask.array.ravel()))


def test_mask_on_another_grid_raises(phantom):
    image, mask = phantom
    moved = Volume(mask.array, mask.spacing, (0.0, 0.0, 0.0), mask.direction)
    with pytest.raises(ValueError, match="mask is not on the image grid: origin"):
        preprocess_pair(image, moved, PreprocessSettings())


def test_absent_crop_label_raises(phantom):
    image, mask = phantom
    with pytest.raises(ValueError, match=r"labels \[5\]"):
        preprocess_pair(image, mask, PreprocessSettings(crop_labels=(5,)))


def test_settings_from_dict_and_validation():
    s = PreprocessSettings.from_dict({"orientation": "ras", "spacing": [1, 1, 2], "crop_labels": [1, 3],
                                      "clip_percentiles": [1, 99], "modality": "ct"})
    assert s.orientation == "RAS" and s.spacing == (1.0, 1.0, 2.0) and s.crop_labels == (1, 3)
    assert s.clip_percentiles == (1.0, 99.0)
    assert PreprocessSettings.from_dict(s.to_dict()) == s
    assert PreprocessSettings.from_dict({}) == PreprocessSettings()
    with pytest.raises(ValueError, match="unknown preprocessing settings: spacingg"):
        PreprocessSettings.from_dict({"spacingg": [1, 1, 1]})
    for bad in ({"orientation": "XYZ"}, {"spacing": [1, 0, 1]}, {"image_interpolator": "cubic"},
                {"modality": "pet"}, {"clip_percentiles": [99, 1]}, {"crop_margin_mm": -1},
                {"crop_labels": ["a"]}):
        with pytest.raises(ValueError):
            PreprocessSettings.from_dict(bad)


def test_labels_not_kept_become_background_and_are_recorded(phantom):
    image, mask = phantom
    settings = PreprocessSettings(orientation="RAS", spacing=None, crop_labels=(2,), crop_margin_mm=5.0,
                                  keep_labels=(2,))
    _, msk, record = preprocess_pair(image, mask, settings)
    _, full, _ = preprocess_pair(image, mask, PreprocessSettings(orientation="RAS", spacing=None, crop_labels=(2,),
                                                                 crop_margin_mm=5.0))
    assert set(np.unique(msk.array)) == {0, 2} and 1 in np.unique(full.array)
    assert np.array_equal(msk.array == 2, full.array == 2)  # label 2 untouched, the same crop
    assert record["dropped_labels"] == {1: int(np.count_nonzero(mask.array == 1))}
    assert PreprocessSettings.from_dict(settings.to_dict()) == settings
    assert "keep_labels" not in PreprocessSettings().to_dict()  # datasets without it read as before
    with pytest.raises(ValueError, match="keep_labels"):
        PreprocessSettings(keep_labels=(0,))

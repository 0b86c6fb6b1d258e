"""The post-processing chain: an island removed and a hole filled in one call, with the counts per step."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mskseg.postprocess import PostprocessSettings, postprocess_labels

SPACING = (0.7, 0.36, 0.36)


def knee_like() -> np.ndarray:
    """Femur (1) with cartilage (2) on top, tibia (3) below; 14 x 12 x 10."""
    a = np.zeros((14, 12, 10), np.uint8)
    a[1:6, 1:11, 1:9] = 1
    a[6:7, 2:10, 2:8] = 2
    a[8:13, 1:11, 1:9] = 3
    return a


def test_removes_an_island_and_fills_a_hole() -> None:
    clean = knee_like()
    a = clean.copy()
    a[3, 5:7, 4] = 0  # a hole in the femur (2 voxels)
    a[13, 0, 0] = 2  # a cartilage island in a corner of the background
    a[10, 5, 5] = 1  # a femur island inside the tibia
    out, report = postprocess_labels(a, [1, 2, 3], spacing=SPACING)
    assert np.array_equal(out, clean)
    assert [c.step for c in report] == ["largest_component", "fill_holes"]
    lcc, holes = report
    assert lcc.removed == {0: 0, 1: 1, 2: 1, 3: 0} and lcc.added == {0: 1, 1: 0, 2: 0, 3: 1}
    assert holes.added == {0: 0, 1: 2, 2: 0, 3: 0} and holes.removed == {0: 2, 1: 0, 2: 0, 3: 0}
    rows = [r for c in report for r in c.rows()]
    assert {"step": "fill_holes", "label": 1, "removed": 0, "added": 2} in rows


def test_steps_can_be_switched_off_and_closing_on() -> None:
    a = knee_like()
    a[13, 0, 0] = 2
    out, report = postprocess_labels(a, [1, 2, 3], spacing=SPACING,
                                     settings=PostprocessSettings(largest_component=False, fill_holes=False))
    assert np.array_equal(out, a) and report == [] and out is not a
    notched = knee_like()
    notched[1, 5, 2:8] = 0  # a groove one voxel wide and deep in the femur's outer face, along axis 2
    out, report = postprocess_labels(notched, [1, 2, 3], spacing=SPACING,
                                     settings=PostprocessSettings(closing_radius_mm=0.4))  # a cross in y, z
    assert [c.step for c in report] == ["largest_component", "closing", "fill_holes"]
    assert np.array_equal(out, knee_like()) and report[1].added == {0: 0, 1: 6, 2: 0, 3: 0}


def test_empty_map_stays_empty() -> None:
    z = np.zeros((5, 6, 7), np.int32)
    out, report = postprocess_labels(z, [1, 2], spacing=SPACING, settings=PostprocessSettings(closing_radius_mm=1.0))
    assert np.array_equal(out, z) and all(c.changed == 0 for c in report) and len(report) == 3


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="removed_to"):
        PostprocessSettings(removed_to="void")
    with pytest.raises(ValueError, match="connectivity"):
        PostprocessSettings(connectivity=5)
    with pytest.raises(ValueError, match="closing_radius_mm"):
        PostprocessSettings(closing_radius_mm=float("nan"))


def test_two_cartilage_plates_survive_with_keep_components() -> None:
    a = knee_like()
    a[7, 2:5, 2:8] = 4  # medial and lateral tibial cartilage plates on the tibia, apart
    a[7, 7:10, 2:8] = 4
    out, _ = postprocess_labels(a, [1, 2, 3, 4], spacing=SPACING,
                                settings=PostprocessSettings(keep_components={4: 2}))
    assert np.array_equal(out, a)
    out, report = postprocess_labels(a, [1, 2, 3, 4], spacing=SPACING)
    assert report[0].removed[4] == 18 and (out == 4).sum() == 18
    with pytest.raises(ValueError, match="keep_components"):
        PostprocessSettings(keep_components={4: 0})


def test_settings_round_trip_through_json() -> None:
    settings = PostprocessSettings(keep_components={4: 2}, closing_radius_mm=1.5, connectivity=6)
    back = PostprocessSettings.from_dict(json.loads(json.dumps(settings.to_dict())))
    assert back == settings and back.keep_components == {4: 2}
    with pytest.raises(ValueError, match="unknown post-processing settings: spam"):
        PostprocessSettings.from_dict({"spam": 1})

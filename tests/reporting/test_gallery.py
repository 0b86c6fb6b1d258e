"""The report's overlay gallery: the order of cases, the slices shown, the pictures written."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from mskseg.io.volumes import write_volume
from mskseg.reporting.gallery import (
    GallerySettings,
    build_gallery,
    gallery_name,
    gallery_order,
    slice_positions,
    subject_scores,
    write_gallery,
)
from mskseg.volume import Volume
from tests.conftest import sphere_pair

NAMES = {"a": 1, "b": 2}


def _brute_order(scores: dict[str, float], limit: int | None) -> list[tuple[str, str]]:
    """Take the worst left, then the best left, until ``limit`` are taken (NaN worst, ties by id)."""
    left = sorted(scores, key=lambda s: (-1e9 if math.isnan(scores[s]) else scores[s], s))
    out, turn = [], "worst"
    while left and len(out) < (len(scores) if limit is None else limit):
        out.append((left.pop(0), "worst") if turn == "worst" else (left.pop(), "best"))
        turn = "best" if turn == "worst" else "worst"
    return out


@pytest.mark.parametrize("limit", [None, 1, 2, 3, 4, 10])
def test_worst_and_best_cases_come_first_as_a_brute_force_alternation(limit) -> None:
    scores = {"s1": 0.9, "s2": 0.5, "s3": math.nan, "s4": 0.95, "s5": 0.7, "s6": 0.7}
    assert gallery_order(scores, limit) == _brute_order(scores, limit)
    names = [gallery_name(i, tag, s) for i, (s, tag) in enumerate(gallery_order(scores), start=1)]
    assert names == sorted(names) and names[0] == "01-worst_sub-s3.png" and names[1] == "02-best_sub-s4.png"


def test_subject_scores_average_structures_without_the_all_rows() -> None:
    metrics = pd.DataFrame({"subject": ["x", "x", "x", "y", "y"], "structure": ["a", "b", "all", "a", "b"],
                            "dice": [0.8, 0.6, 0.0, 1.0, math.nan]})
    assert subject_scores(metrics) == pytest.approx({"x": 0.7, "y": 1.0})
    with pytest.raises(ValueError, match="no column"):
        subject_scores(metrics.drop(columns="dice"))


def test_slices_spread_over_the_labelled_extent_or_the_whole_axis() -> None:
    assert slice_positions((10, 30), 50, 3) == [15, 20, 25]
    assert slice_positions(None, 9, 1) == [4]
    assert slice_positions((0, 0), 5, 2) == [0, 0]


def test_settings_are_checked() -> None:
    assert GallerySettings.from_config({"max_subjects": None}).max_subjects is None
    with pytest.raises(ValueError, match="slices_per_plane"):
        GallerySettings(slices_per_plane=0)
    with pytest.raises(ValueError, match="max_subjects"):
        GallerySettings(max_subjects=0)
    with pytest.raises(ValueError, match="unknown setting"):
        GallerySettings.from_config({"colours": 3})


def test_a_figure_has_three_planes_of_slices_and_refuses_another_grid() -> None:
    image, mask = sphere_pair()
    fig = build_gallery(image, mask, mask, label_names=NAMES, slices_per_plane=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 6 and all(t.startswith(p) for t, p in zip(titles, ["sagittal"] * 2 + ["coronal"] * 2
                                                                    + ["axial"] * 2, strict=True))
    other = Volume(mask.array, (1.0, 1.0, 1.0), mask.origin, mask.direction)
    with pytest.raises(ValueError, match="prediction are on another grid"):
        build_gallery(image, other, mask, label_names=NAMES)


def test_the_gallery_folder_holds_one_picture_per_subject_in_order(tmp_path: Path) -> None:
    image, mask = sphere_pair()
    files = {}
    for s, drop in (("good", False), ("bad", True)):
        pred = mask.with_array(np.where(mask.array == 2, 0, mask.array).astype(np.uint8)) if drop else mask
        for kind, vol in (("image", image), ("pred", pred), ("ref", mask)):
            write_volume(vol, tmp_path / f"{s}_{kind}.nii.gz")
        files[s] = [tmp_path / f"{s}_{k}.nii.gz" for k in ("image", "pred", "ref")]
    metrics = pd.DataFrame({"subject": ["good", "good", "bad", "bad"], "structure": ["a", "b", "a", "b"],
                            "dice": [1.0, 1.0, 1.0, 0.0]})
    folder = tmp_path / "gallery"
    folder.mkdir()
    (folder / "stale.png").write_bytes(b"old")
    written = write_gallery(folder, method="m", metrics=metrics, subjects=["good", "bad"],
                            images=[files[s][0] for s in ("good", "bad")],
                            predictions=[files[s][1] for s in ("good", "bad")],
                            references=[files[s][2] for s in ("good", "bad")], label_names=NAMES,
                            settings=GallerySettings(slices_per_plane=1))
    assert [p.name for p in written] == ["01-worst_sub-bad.png", "02-best_sub-good.png"]
    assert sorted(p.name for p in folder.iterdir()) == [p.name for p in written]  # replaced as a whole
    assert matplotlib.image.imread(written[0]).shape[2] == 4
    assert not (tmp_path / "gallery.partial").exists()
    other = Volume(mask.array, (1.0, 1.0, 1.0), mask.origin, mask.direction)
    write_volume(other, tmp_path / "other.nii.gz")
    with pytest.raises(ValueError, match="subject bad: prediction are on another grid"):
        write_gallery(folder, method="m", metrics=metrics, subjects=["bad"], images=[files["bad"][0]],
                      predictions=[tmp_path / "other.nii.gz"], references=[files["bad"][2]], label_names=NAMES,
                      settings=GallerySettings(slices_per_plane=1))
    assert not (tmp_path / "gallery.partial").exists()  # nothing half-written left behind
    assert sorted(p.name for p in folder.iterdir()) == [p.name for p in written]  # the last gallery stays
    with pytest.raises(ValueError, match="2 subjects but 1 images"):
        write_gallery(folder, method="m", metrics=metrics, subjects=["good", "bad"], images=[files["good"][0]],
                      predictions=[], references=[], label_names=NAMES, settings=GallerySettings())

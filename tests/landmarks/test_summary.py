"""The correspondence table: the reference marked and kept out of the means, with the instances the models
leave out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mskseg.io.tables import read_table, write_table
from mskseg.landmarks.summary import summarise_correspondence
from mskseg.registration.reference import Instance


def _frame(trim: bool = False) -> pd.DataFrame:
    frame = pd.DataFrame({
        "subject": ["a", "b", "c", "d", "b"],
        "structure": ["femur_right", "femur_right", "femur_right", "femur_right", "femur_left"],
        "mirrored": [False, False, False, False, True],
        "converged": [True, True, True, False, True],
        "reason": ["", "", "", "Dice after warping 0.41 < min_dice 0.85", ""],
        "dice": [0.96, 1.0, 0.98, 0.41, 0.94],
        "surface_mean_mm": [0.4, 0.0, 0.2, 3.0, 0.6],
        "truth_mean_mm": [1.0, 0.0, 0.8, 5.0, 1.2],
    })
    if trim:
        frame["trim_length_mm"] = 60.0
        frame["trim_from"] = "inferior"
        frame["trim_extent_mm"] = [70.0, 75.0, 52.0, 66.0, 71.0]
        frame["trim_short"] = [False, False, True, False, False]
    return frame


def test_the_reference_is_listed_but_not_averaged() -> None:
    summary = summarise_correspondence(_frame(), Instance("b", "femur_right"))
    table = summary.table
    assert table["reference"].tolist() == [False, True, False, False, False]  # not b's other side
    assert len(table) == 5 and table["subject"].tolist() == ["a", "b", "c", "d", "b"]
    assert summary.counted == 3  # a, c and b's left femur: not the reference, not d (not converged)
    assert summary.means["dice"] == pytest.approx(np.mean([0.96, 0.98, 0.94]))
    assert summary.means["surface_mean_mm"] == pytest.approx(0.4)
    assert summary.means["truth_mean_mm"] == pytest.approx(1.0)
    assert summary.excluded == [("d", "femur_right", "registration did not converge "
                                 "(Dice after warping 0.41 < min_dice 0.85)")]
    # with the reference counted the means would be flattered
    flattered = summarise_correspondence(_frame(), None)
    assert not flattered.table["reference"].any() and flattered.counted == 4
    assert flattered.means["dice"] > summary.means["dice"]
    assert flattered.means["surface_mean_mm"] < summary.means["surface_mean_mm"]


def test_short_bones_are_named_and_not_averaged(tmp_path: Path) -> None:
    write_table(_frame(trim=True), tmp_path / "t.tsv")  # flags read back as a workflow reads them
    summary = summarise_correspondence(read_table(tmp_path / "t.tsv"), Instance("b", "femur_right"))
    assert [e[:2] for e in summary.excluded] == [("c", "femur_right"), ("d", "femur_right")]
    assert "shorter than the trim: 52.0 mm from its inferior end < 60 mm" in summary.excluded[0][2]
    assert summary.counted == 2
    assert summary.means["dice"] == pytest.approx(np.mean([0.96, 0.94]))


def test_a_table_with_only_the_reference_has_no_mean() -> None:
    frame = _frame().iloc[[1]]
    summary = summarise_correspondence(frame, Instance("b", "femur_right"))
    assert summary.counted == 0 and summary.means.isna().all()

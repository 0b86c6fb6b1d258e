"""The three-plane fusion study's table: planes and blend compared, weights, confusion in percent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mskseg.reporting.plane_table import confusion_figure, confusion_percent, plane_markdown

SETTINGS = {"structures": ["bone", "all"], "decimals": 3, "style": "mean_sd", "alpha": 0.05, "p_adjust": "holm"}


def _scores() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for plane, level in (("sagittal", 0.80), ("coronal", 0.85), ("axial", 0.82), ("fused", 0.90)):
        for i in range(8):
            dice = level + 0.005 * rng.standard_normal()
            rows += [{"plane": plane, "subject": f"s{i}", "fold": str(i % 2), "structure": "bone", "dice": dice},
                     {"plane": plane, "subject": f"s{i}", "fold": str(i % 2), "structure": "all", "dice": dice,
                      "mean_iou": dice - 0.1}]
    return pd.DataFrame(rows)


def _confusion() -> pd.DataFrame:
    rows = []
    for plane in ("axial", "fused"):
        for subject in ("s0", "s1"):
            rows += [{"plane": plane, "subject": subject, "reference": "background", "background": 90, "bone": 10},
                     {"plane": plane, "subject": subject, "reference": "bone", "background": 5, "bone": 15}]
    return pd.DataFrame(rows)


def test_planes_in_paper_order_the_blend_best_and_weights_per_fold() -> None:
    text, frame = plane_markdown(_scores(), _confusion(), {"0": {"axial": 0.2, "coronal": 0.3, "sagittal": 0.5}},
                                 dataset="knee", method="tp", table_settings=SETTINGS)
    dice = text.split("knee: Dice")[1].split("\n\n")[1].splitlines()
    assert [line.split(" | ")[0] for line in dice[2:]] == ["| axial", "| coronal", "| sagittal", "| fused"]
    assert "†" in dice[2] and "†" in dice[4] and "†" not in dice[5]  # axial, sagittal differ from the best: fused
    assert "mean IoU" in text and "| 0 | 0.20 | 0.30 | 0.50 |" in text
    assert "The paper (quoted;" in text and "Dice 0.9129" in text
    assert set(frame["plane"]) == {"axial", "coronal", "sagittal", "fused"} and set(frame["metric"]) == {
        "dice", "mean_iou"}


def test_confusion_rows_are_percent_of_the_reference_class_summed_over_subjects(tmp_path) -> None:
    matrix = confusion_percent(_confusion(), "fused")
    assert matrix.loc["bone", "bone"] == pytest.approx(75.0) and matrix.loc["background", "bone"] == pytest.approx(10)
    assert np.allclose(matrix.sum(axis=1), 100.0)
    text, _ = plane_markdown(_scores(), _confusion(), {}, dataset="knee", method="tp", table_settings=SETTINGS)
    assert "| bone | 25.00 | 75.00 |" in text
    png = confusion_figure(_confusion(), tmp_path / "c.png", title="t")
    assert png.stat().st_size > 1000

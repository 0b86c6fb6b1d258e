"""The knee paper's Table 1 as a study: our rows relabelled, the paper's numbers quoted, landmarks and steps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mskseg.reporting.knee_study import QUOTED_DICE, knee_study_markdown, quoted_rows

SETTINGS = {"structures": ["femur", "femoral_cartilage", "all"], "decimals": 3, "style": "mean_sd", "alpha": 0.05,
            "p_adjust": "holm"}


def _metrics() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for method, shift in (("unet2d", 0.0), ("shapefit", 0.05)):
        for i in range(8):
            for s in ("femur", "femoral_cartilage"):
                rows.append({"method": method, "subject": f"s{i}", "structure": s,
                             "dice": 0.85 + shift + 0.01 * rng.standard_normal(), "hd95_mm": 2.0 - 10 * shift})
            rows.append({"method": method, "subject": f"s{i}", "structure": "all", "dice": 0.9, "hd95_mm": 2.0})
    return pd.DataFrame(rows)


def test_rows_are_relabelled_tested_and_the_papers_numbers_quoted_after_ours() -> None:
    text, frame = knee_study_markdown(_metrics(), [("2D U-Net", "unet2d"), ("full method", "shapefit")],
                                      dataset="knee", table_settings=SETTINGS, metrics_shown=["dice", "hd95_mm"])
    dice = text.split("knee: Dice")[1].split("knee: 95th")[0]
    lines = [line for line in dice.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in lines[1:]] == [
        "| 2D U-Net", "| full method", "| 2D U-Net (paper, quoted)", "| full method (paper, quoted)",
        "| Ambellan et al. (paper, quoted)"]
    assert "**" in lines[2] and "†" in lines[1]  # the full method is better by 0.05 on every subject
    assert lines[3] == "| 2D U-Net (paper, quoted) | 0.985 | 0.890 |  |"
    assert "Quoted: the paper's Table 1" in dice and "(quoted)" not in text.split("knee: 95th")[1]
    assert set(frame["metric"]) == {"dice", "hd95_mm"} and set(frame["method"]) == {"2D U-Net", "full method"}


def test_fitted_rows_bring_their_landmark_errors_and_steps() -> None:
    errors = pd.DataFrame({"method": ["shapefit"] * 2, "subject": ["s0", "s1"], "structure": ["femur"] * 2,
                           "n": [500, 500], "mean_mm": [3.0, 4.0], "median_mm": [3.0, 4.0], "p95_mm": [6.0, 7.0],
                           "max_mm": [7.0, 8.0]})
    steps = pd.DataFrame({"method": ["shapefit"] * 2, "subject": ["s0", "s1"], "device": ["cpu"] * 2,
                          "total": [1.0, 3.0]})
    text, _ = knee_study_markdown(_metrics(), [("U", "unet2d"), ("full", "shapefit")], dataset="knee",
                                  table_settings=SETTINGS, metrics_shown=["dice"], errors=errors, steps=steps)
    assert "| full | femur | 500 | 3.50 ± 0.71 |" in text and "| full | cpu | 2.000 ± 1.414 |" in text
    assert "8 s per volume" in text


def test_quoted_cells_only_for_structures_the_paper_reports_and_missing_methods_are_named() -> None:
    assert quoted_rows(["tibia", "patella"], 2)[0] == "| 2D U-Net (paper, quoted) | 0.98 |  |"
    assert len(quoted_rows(["femur"], 3)) == len(QUOTED_DICE)
    with pytest.raises(ValueError, match="no metrics for method"):
        knee_study_markdown(_metrics(), [("x", "nope")], dataset="knee", table_settings=SETTINGS,
                            metrics_shown=["dice"])

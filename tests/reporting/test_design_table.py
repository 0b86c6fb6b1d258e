"""The cartilage design study's table: means, Kruskal-Wallis and Dunn per experiment, bold rows, power-law fits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sstats

from mskseg.reporting.design_table import design_markdown, experiment_scores, fov_figure, size_figure, size_scores

SUBJECTS = [f"s{i}" for i in range(6)]


def frame(values: dict[str, list[float]], structure: str = "femoral_cartilage") -> pd.DataFrame:
    """Per-subject rows of each method: dice as given, voe = 1 - iou of that dice (as the metrics relate)."""
    rows = []
    for method, dices in values.items():
        for subject, d in zip(SUBJECTS, dices, strict=False):
            rows.append({"method": method, "subject": subject, "structure": structure, "dice": d,
                         "voe": 1 - d / (2 - d)})
            rows.append({"method": method, "subject": subject, "structure": "femur", "dice": 0.5, "voe": 0.5})
    return pd.DataFrame(rows)


EXPERIMENTS = [("architecture", [("U-Net", "a"), ("SegNet", "b"), ("DLV3+", "c")]),
               ("loss", [("Dice", "a"), ("BCE", "d")])]


def test_means_tests_and_the_bold_row_match_a_direct_computation() -> None:
    values = {"a": [0.90, 0.91, 0.92, 0.93, 0.94, 0.95], "b": [0.70, 0.71, 0.72, 0.73, 0.74, 0.75],
              "c": [0.50, 0.51, 0.52, 0.53, 0.54, 0.55], "d": [0.905, 0.915, 0.925, 0.935, 0.945, 0.89]}
    rows, tests = experiment_scores(frame(values), EXPERIMENTS, structure="femoral_cartilage",
                                    metric_names=["dice", "voe"], alpha=0.05)
    arch = rows[(rows["experiment"] == "architecture") & (rows["metric"] == "dice")].set_index("label")
    assert arch.loc["SegNet", "mean"] == pytest.approx(np.mean(values["b"]))
    assert arch.loc["SegNet", "sd"] == pytest.approx(np.std(values["b"], ddof=1))
    kw = tests.set_index(["experiment", "metric"]).loc[("architecture", "dice")]
    assert kw["kruskal_p"] == pytest.approx(sstats.kruskal(values["a"], values["b"], values["c"]).pvalue)
    assert "U-Net vs DLV3+" in kw["dunn"]
    # U-Net beats DLV3+ but not SegNet significantly with 6 scans each (Dunn, Holm): not bold; nothing is
    assert not arch["bold"].any()
    voe = rows[(rows["experiment"] == "architecture") & (rows["metric"] == "voe")].set_index("label")
    assert voe.loc["U-Net", "mean"] < voe.loc["DLV3+", "mean"]  # lower is better for VOE
    loss = tests.set_index(["experiment", "metric"]).loc[("loss", "dice")]
    assert loss["dunn"] == ""  # overlapping: no pair


def test_a_clearly_better_row_is_bold() -> None:
    many = {m: [base + 0.001 * i for i in range(6)] for m, base in (("a", 0.9), ("b", 0.6), ("c", 0.3))}
    rows, _ = experiment_scores(frame(many), EXPERIMENTS[:1], structure="femoral_cartilage", metric_names=["dice"],
                                alpha=0.2)
    bold = rows.set_index("label")["bold"]
    assert bold["U-Net"] and not bold["SegNet"] and not bold["DLV3+"]


def test_size_fits_recover_an_exact_power_law_and_the_markdown_lists_everything(tmp_path: Path) -> None:
    sizes = {"a2": 2, "a4": 4, "a": 8}
    values = {m: [0.6 * n ** 0.1] * 4 for m, n in sizes.items()}
    runs = [("U-Net", [(2.0, 1, "a2"), (4.0, 1, "a4"), (1.0, 1, "a")])]
    table, points, fits = size_scores(frame(values), runs, sizes, structure="femoral_cartilage",
                                      metric_names=["dice"])
    fit = fits["dice"]["U-Net"]
    assert fit.a == pytest.approx(0.6, rel=1e-4) and fit.b == pytest.approx(0.1, rel=1e-3)
    assert fit.r2 == pytest.approx(1.0)
    assert sorted(table["patients"]) == [2, 4, 8] and list(points["dice"]["n_train"]) == [2, 4, 8]
    rows, tests = experiment_scores(frame({"a": [0.9] * 4, "d": [0.8] * 4}), EXPERIMENTS[1:],
                                    structure="femoral_cartilage", metric_names=["dice"], alpha=0.05)
    text = design_markdown(rows, tests, table, dataset="kneedesign", structure="femoral_cartilage",
                           metric_names=["dice"], alpha=0.05, n_scans=4)
    assert "## Loss" in text and "| Dice | a | **0.900 (0.000)** |" in text and "## Training-set size" in text
    assert "| U-Net | DSC |" in text and "0.1 | 1.000 |" in text
    assert text.count("The paper (quoted)") == 2  # the loss experiment's finding and the power law
    png, _ = size_figure(points, fits, tmp_path / "powerlaw")
    assert png.stat().st_size > 0


def test_the_fov_figure_draws_a_panel_per_experiment(tmp_path: Path) -> None:
    fov = pd.DataFrame([{"method": m, "subject": s, "structure": "femoral_cartilage", "position_pct": p, "dice": d}
                        for m, d in (("a", 0.9), ("b", 0.7), ("c", 0.5), ("d", 0.8)) for s in SUBJECTS[:3]
                        for p in (0.0, 50.0, 100.0)])
    png, _ = fov_figure(fov, EXPERIMENTS, tmp_path / "fov", structure="femoral_cartilage", bins=4)
    assert png.stat().st_size > 0
    with pytest.raises(ValueError, match="no field-of-view rows"):
        fov_figure(fov, EXPERIMENTS, tmp_path / "x", structure="tibia", bins=4)

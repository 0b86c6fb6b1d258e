"""Tests of mskseg.reporting.tables: summaries by hand, cell text, marks, writers, FOV curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mskseg.reporting.tables import (
    MetricTable,
    format_cell,
    fov_curve,
    higher_is_better,
    metric_table,
    summarise,
    to_csv_frame,
    to_latex,
    to_markdown,
)
from mskseg.stats import compare_methods


def _tiny() -> pd.DataFrame:
    # rows interleaved so that first appearance of (method, structure) pairs differs from
    # first appearance of methods then structures
    rows = [("B", "s1", "tibia", 1.0), ("A", "s1", "femur", 10.0), ("B", "s1", "femur", 3.0),
            ("A", "s1", "tibia", np.nan), ("B", "s2", "tibia", 2.0), ("A", "s2", "femur", 20.0),
            ("B", "s3", "tibia", 4.0), ("A", "s2", "tibia", np.nan), ("B", "s4", "tibia", np.nan)]
    return pd.DataFrame(rows, columns=["method", "subject", "structure", "dice"])


def test_higher_is_better() -> None:
    assert higher_is_better("dice") and higher_is_better("gap_dice") and higher_is_better("mean_iou")
    assert not higher_is_better("voe") and not higher_is_better("collisions")
    assert not higher_is_better("hd95_mm") and not higher_is_better("new_distance_mm")
    with pytest.raises(ValueError, match="direction"):
        higher_is_better("ref_volume_mm3")


def test_summarise_by_hand() -> None:
    out = summarise(_tiny(), "dice")
    assert list(out.columns) == ["method", "structure", "n", "n_missing", "mean", "sd", "median", "q1", "q3"]
    assert list(zip(out["method"], out["structure"], strict=True)) == [("B", "tibia"), ("B", "femur"),
                                                          ("A", "tibia"), ("A", "femur")]
    b_tibia, b_femur, a_tibia, a_femur = (out.iloc[i] for i in range(4))
    # B/tibia: 1, 2, 4 and a NaN
    assert (b_tibia["n"], b_tibia["n_missing"]) == (3, 1)
    assert b_tibia["mean"] == pytest.approx(7 / 3)
    assert b_tibia["sd"] == pytest.approx(math.sqrt(7 / 3))  # squared deviations 42/9 over 2
    assert (b_tibia["median"], b_tibia["q1"], b_tibia["q3"]) == pytest.approx((2.0, 1.5, 3.0))
    # B/femur: one value
    assert (b_femur["n"], b_femur["mean"], b_femur["median"]) == (1, 3.0, 3.0) and np.isnan(b_femur["sd"])
    # A/tibia: only NaN
    assert (a_tibia["n"], a_tibia["n_missing"]) == (0, 2)
    assert a_tibia[["mean", "sd", "median", "q1", "q3"]].isna().all()
    # A/femur: 10, 20
    assert a_femur["sd"] == pytest.approx(math.sqrt(50))
    assert (a_femur["q1"], a_femur["median"], a_femur["q3"]) == pytest.approx((12.5, 15.0, 17.5))


def test_summarise_other_grouping() -> None:
    out = summarise(_tiny(), "dice", by=["structure"])
    assert list(out["structure"]) == ["tibia", "femur"]
    assert list(out["n"]) == [3, 3] and list(out["n_missing"]) == [3, 0]


def test_format_cell() -> None:
    s = {"n": 12, "n_missing": 0, "mean": 0.91234, "sd": 0.0126, "median": 0.915, "q1": 0.9011, "q3": 0.92549}
    assert format_cell(s) == "0.912 ± 0.013"
    assert format_cell(s, "median_iqr") == "0.915 [0.901, 0.925]"
    assert format_cell({**s, "n": 7, "n_missing": 5}, decimals=2) == "0.91 ± 0.01 (n=7)"
    assert format_cell({**s, "n": 1, "sd": np.nan}) == "0.912"
    assert format_cell({"n": 0, "n_missing": 3}) == "n/a"
    with pytest.raises(ValueError, match="mean_sd"):
        format_cell(s, "mean")


def test_metric_table_cells_layout() -> None:
    table = metric_table(_tiny(), "dice", decimals=1, structures=["femur", "tibia", "patella"])
    assert list(table.cells.index) == ["B", "A"] and list(table.cells.columns) == ["femur", "tibia", "patella"]
    assert table.cells.loc["A", "femur"] == "15.0 ± 7.1"
    assert table.cells.loc["B", "tibia"] == "2.3 ± 1.5 (n=3)"
    assert table.cells.loc["A", "tibia"] == "n/a" and table.cells.loc["A", "patella"] == "n/a"
    assert not table.bold.to_numpy().any() and not table.dagger.to_numpy().any() and table.note == ""
    median = metric_table(_tiny(), "dice", style="median_iqr", decimals=1)
    assert median.cells.loc["A", "femur"] == "15.0 [12.5, 17.5]"


def _separated(offsets: dict[str, float], metric: str = "dice", n_subjects: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for s in ("femur", "tibia"):
        for m, off in offsets.items():
            for i in range(n_subjects):
                rows.append({"method": m, "subject": f"s{i}", "structure": s,
                             metric: off + 0.005 * rng.standard_normal()})
    return pd.DataFrame(rows)


def test_marks_for_a_clearly_best_method() -> None:
    frame = _separated({"B": 0.80, "A": 0.90, "C": 0.70})
    table = metric_table(frame, "dice", comparisons=compare_methods(frame, "dice"))
    assert table.bold.loc["A"].all() and not table.bold.loc[["B", "C"]].to_numpy().any()
    assert table.dagger.loc[["B", "C"]].to_numpy().all() and not table.dagger.loc["A"].any()
    assert "Dunn" in table.note and "Holm" in table.note and "0.05" in table.note


def test_marks_follow_direction_and_two_method_wilcoxon() -> None:
    frame = _separated({"A": 2.0, "B": 1.0}, metric="hd95_mm")
    comps = compare_methods(frame, "hd95_mm", p_adjust="bonferroni", alpha=0.01)
    table = metric_table(frame, "hd95_mm", comparisons=comps)
    assert table.bold.loc["B"].all() and table.dagger.loc["A"].all()
    assert not table.bold.loc["A"].any() and not table.dagger.loc["B"].any()
    assert "Wilcoxon" in table.note and "Bonferroni" in table.note and "0.01" in table.note


def test_no_bold_when_best_ties_with_another() -> None:
    frame = _separated({"A": 0.90, "B": 0.70})
    close = frame[frame["method"] == "A"].assign(method="A2")
    k = np.arange(len(close))
    close["dice"] = close["dice"] + np.where(k % 2 == 0, 1e-4, -1e-4) * (1 + 0.01 * k)  # no tied differences
    frame = pd.concat([frame, close], ignore_index=True)
    table = metric_table(frame, "dice", comparisons=compare_methods(frame, "dice"))
    assert not table.bold.to_numpy().any()
    assert table.dagger.loc["B"].all() and not table.dagger.loc[["A", "A2"]].to_numpy().any()


def test_no_marks_for_identical_values() -> None:
    frame = _separated({"A": 0.9, "B": 0.9, "C": 0.9})
    frame["dice"] = 0.9
    table = metric_table(frame, "dice", comparisons=compare_methods(frame, "dice"))
    assert not table.bold.to_numpy().any() and not table.dagger.to_numpy().any()


def test_comparisons_of_another_metric_are_refused() -> None:
    frame = _separated({"A": 0.9, "B": 0.8})
    frame["voe"] = 1 - frame["dice"]
    with pytest.raises(ValueError, match="voe"):
        metric_table(frame, "dice", comparisons=compare_methods(frame, "voe"))


@pytest.fixture(scope="module")
def marked_table() -> MetricTable:
    frame = _separated({"A": 0.90, "B": 0.80, "C": 0.70})
    frame["structure"] = frame["structure"].map({"femur": "femoral_cartilage", "tibia": "50% & #1"})
    return metric_table(frame, "dice", comparisons=compare_methods(frame, "dice"))


def test_markdown_output(marked_table: MetricTable) -> None:
    table = marked_table
    text = to_markdown(table, caption="Dice per structure")
    lines = text.splitlines()
    assert lines[0] == "Dice per structure"
    assert "| method | femoral_cartilage | 50% & #1 |" in lines
    assert "|---|---|---|" in lines
    row_a = next(line for line in lines if line.startswith("| A |"))
    assert row_a.count("**") == 4
    row_b = next(line for line in lines if line.startswith("| B |"))
    assert row_b.count(" †") == 2 and "**" not in row_b
    assert lines[-1].startswith("Bold: best method") and "Dunn" in lines[-1]
    assert "Bold" not in to_markdown(metric_table(_tiny(), "dice"))


def test_latex_output(marked_table: MetricTable) -> None:
    table = marked_table
    text = to_latex(table, caption="Dice", label="tab:dice")
    for part in ("\\begin{table}", "\\caption{Dice}", "\\label{tab:dice}", "\\begin{tabular}{lcc}",
                 "\\toprule", "\\midrule", "\\bottomrule", "\\end{table}",
                 "method & femoral\\_cartilage & 50\\% \\& \\#1 \\\\", "$\\pm$", "\\textbf{0.9",
                 "$^\\dagger$", "$\\alpha$"):
        assert part in text, part
    assert "±" not in text and "†" not in text
    row_c = next(line for line in text.splitlines() if line.strip().startswith("C &"))
    assert row_c.count("$^\\dagger$") == 2 and "textbf" not in row_c


def test_csv_frame(marked_table: MetricTable) -> None:
    table = metric_table(_tiny(), "dice", structures=["tibia", "femur", "patella"])
    out = to_csv_frame(table)
    assert list(out.columns) == ["method", "structure", "n", "n_missing", "mean", "sd", "median", "q1", "q3",
                                 "bold", "dagger"]
    assert len(out) == 6
    row = out[(out["method"] == "B") & (out["structure"] == "tibia")].iloc[0]
    assert (row["n"], row["n_missing"]) == (3, 1) and row["mean"] == pytest.approx(7 / 3)
    patella = out[out["structure"] == "patella"]
    assert (patella["n"] == 0).all() and patella["mean"].isna().all() and not patella["bold"].any()
    marked = to_csv_frame(marked_table)
    assert marked.loc[marked["method"] == "A", "bold"].all()
    assert marked.loc[marked["method"] != "A", "dagger"].all()


def test_fov_curve_by_hand() -> None:
    rows = [("M", "s1", "S", 0, 0.0, 0.2), ("M", "s1", "S", 1, 10.0, 0.4), ("M", "s1", "S", 2, 25.0, 0.6),
            ("M", "s1", "S", 3, 99.0, np.nan), ("M", "s1", "S", 4, 100.0, 0.8),
            ("M", "s2", "S", 0, 5.0, 0.5), ("M", "s2", "S", 1, 60.0, 1.0), ("M", "s2", "S", 2, 100.0, np.nan),
            ("N", "s1", "T", 0, 50.0, 0.3)]
    fov = pd.DataFrame(rows, columns=["method", "subject", "structure", "slice", "position_pct", "dice"])
    out = fov_curve(fov, bins=4)
    assert list(out.columns) == ["method", "structure", "bin", "bin_low", "bin_high", "bin_centre", "mean",
                                 "sd", "n"]
    assert list(zip(out["method"], out["structure"], strict=True)) == [("M", "S")] * 4 + [("N", "T")] * 4
    m = out[out["method"] == "M"]
    np.testing.assert_allclose(m["bin_low"], [0, 25, 50, 75])
    np.testing.assert_allclose(m["bin_high"], [25, 50, 75, 100])
    np.testing.assert_allclose(m["bin_centre"], [12.5, 37.5, 62.5, 87.5])
    # bin 0: s1 mean(0.2, 0.4) = 0.3, s2 0.5; bin 1: s1 0.6 (25 is the lower edge);
    # bin 2: s2 1.0; bin 3: s1 0.8 (100 in the last bin, NaN skipped), s2 only NaN
    np.testing.assert_allclose(m["mean"], [0.4, 0.6, 1.0, 0.8])
    assert list(m["n"]) == [2, 1, 1, 1]
    assert m["sd"].iloc[0] == pytest.approx(math.sqrt(0.02)) and m["sd"].iloc[1:].isna().all()
    n = out[out["method"] == "N"]
    assert list(n["n"]) == [0, 0, 1, 0] and n["mean"].iloc[2] == pytest.approx(0.3)
    assert n["mean"].iloc[[0, 1, 3]].isna().all()


def test_fov_curve_rejects_bad_input() -> None:
    fov = pd.DataFrame({"method": ["M"], "subject": ["s"], "structure": ["S"], "slice": [0],
                        "position_pct": [100.5], "dice": [0.5]})
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        fov_curve(fov)
    with pytest.raises(ValueError, match="bins"):
        fov_curve(fov.assign(position_pct=50.0), bins=0)
    with pytest.raises(ValueError, match="lacks"):
        fov_curve(fov.drop(columns="dice"))

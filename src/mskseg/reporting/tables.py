"""Summary tables of metrics frames, as in papers: methods in rows, structures in columns.

A metrics frame has one row per (method, subject, structure) and metric columns (NaN where
a metric is undefined); :func:`summarise` reduces it per group, :func:`metric_table`
formats one metric into cells marked by significance tests (:mod:`mskseg.stats`), and
:func:`to_markdown`, :func:`to_latex` and :func:`to_csv_frame` write it out.
:func:`fov_curve` reduces a per-slice Dice frame to a curve along the field of view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mskseg.stats import significance

#: metrics where a larger value is better
HIGHER_IS_BETTER: frozenset[str] = frozenset({"dice", "iou", "mean_iou", "gap_dice"})
#: metrics where a smaller value is better (as are all columns ending in ``_mm``)
LOWER_IS_BETTER: frozenset[str] = frozenset({"voe", "ravd", "hd_mm", "hd95_mm", "assd_mm", "collisions"})

#: statistics columns of :func:`summarise`
SUMMARY_COLUMNS = ("n", "n_missing", "mean", "sd", "median", "q1", "q3")
STYLES = ("mean_sd", "median_iqr")

_CORRECTIONS = {"holm": "Holm-corrected", "bonferroni": "Bonferroni-corrected",
                "fdr_bh": "Benjamini-Hochberg-corrected", "none": "uncorrected"}


def higher_is_better(metric: str) -> bool:
    """Whether larger values of ``metric`` are better.

    Raises
    ------
    ValueError
        For a metric without a known direction (e.g. volumes), rather than guessing.
    """
    if metric in HIGHER_IS_BETTER:
        return True
    if metric in LOWER_IS_BETTER or metric.endswith("_mm"):
        return False
    raise ValueError(f"no known direction (higher or lower is better) for metric {metric!r}")


def _stats(values: np.ndarray) -> dict[str, float]:
    """n, n_missing, mean, sd (ddof=1), median, q1, q3 of values, NaNs counted as missing."""
    ok = values[~np.isnan(values)]
    n = ok.size
    if n == 0:
        return {"n": 0, "n_missing": int(values.size), "mean": np.nan, "sd": np.nan, "median": np.nan,
                "q1": np.nan, "q3": np.nan}
    q1, median, q3 = np.percentile(ok, [25, 50, 75])
    return {"n": int(n), "n_missing": int(values.size - n), "mean": float(ok.mean()),
            "sd": float(ok.std(ddof=1)) if n >= 2 else np.nan, "median": float(median),
            "q1": float(q1), "q3": float(q3)}


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}")


def summarise(frame: pd.DataFrame, metric: str, *, by: Sequence[str] = ("method", "structure")) -> pd.DataFrame:
    """Per-group statistics of one metric.

    Parameters
    ----------
    frame
        Metrics frame.
    metric
        Column to summarise (in its own units).
    by
        Grouping columns.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, n, n_missing, mean, sd, median, q1, q3``: ``n`` counts non-NaN values,
        ``n_missing`` NaN ones; ``sd`` has ddof=1 (NaN for n < 2); ``q1``/``q3`` are the
        25th/75th percentiles (numpy linear); statistics are NaN for n = 0. One row per
        observed group, ordered by first appearance of each ``by`` value (first column
        slowest), not alphabetically.
    """
    by = list(by)
    _require(frame, [*by, metric], "metrics frame")
    values = frame[metric].to_numpy(dtype=float)
    order = {c: {v: i for i, v in enumerate(pd.unique(frame[c]))} for c in by}
    rows = []
    for group, idx in frame.groupby(by, sort=False).indices.items():
        key = group if isinstance(group, tuple) else (group,)
        rows.append({**dict(zip(by, key, strict=True)), **_stats(values[idx])})
    rows.sort(key=lambda r: tuple(order[c][r[c]] for c in by))
    out = pd.DataFrame(rows, columns=[*by, *SUMMARY_COLUMNS])
    return out.astype({"n": int, "n_missing": int})


@dataclass
class MetricTable:
    """One metric formatted for a paper: rows methods, columns structures.

    ``cells`` holds the text, ``bold`` and ``dagger`` the significance marks (same shape),
    ``summary`` the :func:`summarise` frame behind the cells, and ``note`` a plain-text
    explanation of the marks (empty without comparisons).
    """

    cells: pd.DataFrame
    bold: pd.DataFrame
    dagger: pd.DataFrame
    metric: str
    style: str
    summary: pd.DataFrame
    note: str = ""


def format_cell(stats: dict, style: str = "mean_sd", decimals: int = 3) -> str:
    """Text of one cell: ``"0.912 ± 0.013"`` or ``"0.915 [0.901, 0.925]"``.

    ``"n/a"`` when there is no value; the SD is left out when there is one value only;
    ``" (n=7)"`` is appended when some values of the cell are missing (n counts the present ones).
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; allowed: {', '.join(STYLES)}")
    n = int(stats.get("n", 0))
    if n == 0:
        return "n/a"
    f = f"{{:.{decimals}f}}"
    if style == "mean_sd":
        text = f.format(stats["mean"])
        if np.isfinite(stats["sd"]):
            text += " ± " + f.format(stats["sd"])
    else:
        text = f"{f.format(stats['median'])} [{f.format(stats['q1'])}, {f.format(stats['q3'])}]"
    if int(stats.get("n_missing", 0)) > 0:
        text += f" (n={n})"
    return text


def _compared_methods(comparisons: pd.DataFrame) -> list[str]:
    pairs = comparisons[comparisons["test"] != "kruskal"]
    return list(pd.unique(pd.concat([pairs["method_a"], pairs["method_b"]])))


def _marks_note(comparisons: pd.DataFrame, n_methods: int) -> str:
    test = ("Dunn's test after a significant Kruskal-Wallis test" if n_methods >= 3
            else "paired Wilcoxon signed-rank test")
    p_adjust, alpha = comparisons.attrs.get("p_adjust"), comparisons.attrs.get("alpha")
    correction = _CORRECTIONS.get(p_adjust, "corrected for multiple comparisons")
    level = f"alpha = {alpha:g}" if alpha is not None else "significance level of the comparisons"
    return ("Bold: best method, significantly different from every other method; "
            f"†: significantly different from the best method ({test}, {correction}, {level}).")


def metric_table(frame: pd.DataFrame, metric: str, *, methods: Sequence[str] | None = None,
                 structures: Sequence[str] | None = None, style: str = "mean_sd", decimals: int = 3,
                 comparisons: pd.DataFrame | None = None) -> MetricTable:
    """Format one metric as a table of methods (rows) by structures (columns).

    Parameters
    ----------
    frame
        Metrics frame.
    metric
        Column to report.
    methods, structures
        Rows and columns in this order; default all, in order of first appearance. Names
        absent from the frame give ``"n/a"`` cells.
    style
        ``"mean_sd"`` or ``"median_iqr"`` (see :func:`format_cell`).
    decimals
        Decimal places of every number.
    comparisons
        Output of :func:`mskseg.stats.compare_methods` for the same metric. Per structure the
        best method (by mean, direction from :func:`higher_is_better`) is bold when it differs
        significantly (:func:`mskseg.stats.significance`) from every other method with values;
        each method differing significantly from the best gets a dagger.

    Raises
    ------
    ValueError
        For an unknown style, missing columns, or comparisons of another metric.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; allowed: {', '.join(STYLES)}")
    summary = summarise(frame, metric)
    methods = list(pd.unique(frame["method"])) if methods is None else list(methods)
    structures = list(pd.unique(frame["structure"])) if structures is None else list(structures)
    index = pd.Index(methods, name="method")
    columns = pd.Index(structures, name="structure")
    keyed = summary.set_index(["method", "structure"])
    cells = pd.DataFrame("n/a", index=index, columns=columns, dtype=object)
    means = pd.DataFrame(np.nan, index=index, columns=columns)
    for m in methods:
        for s in structures:
            if (m, s) in keyed.index:
                row = keyed.loc[(m, s)]
                cells.loc[m, s] = format_cell(row.to_dict(), style, decimals)
                means.loc[m, s] = row["mean"]
    bold = pd.DataFrame(False, index=index, columns=columns)
    dagger = pd.DataFrame(False, index=index, columns=columns)
    note = ""
    if comparisons is not None:
        other_metrics = set(comparisons["metric"]) - {metric}
        if other_metrics:
            raise ValueError(f"comparisons are of {sorted(other_metrics)}, not {metric!r}")
        n_methods = len(_compared_methods(comparisons))
        higher = higher_is_better(metric)
        for s in structures:
            col = means[s].dropna()
            if len(col) < 2:
                continue
            best = col.idxmax() if higher else col.idxmin()
            verdicts = {m: significance(comparisons, s, best, m, n_methods=n_methods)
                        for m in col.index if m != best}
            for m, sig in verdicts.items():
                dagger.loc[m, s] = sig is True
            bold.loc[best, s] = all(sig is True for sig in verdicts.values())
        if n_methods >= 2:
            note = _marks_note(comparisons, n_methods)
    return MetricTable(cells, bold, dagger, metric, style, summary, note)


def _marked(table: MetricTable, method: str, structure: str, bold: str, dagger: str,
            text: str | None = None) -> str:
    text = table.cells.loc[method, structure] if text is None else text
    if table.bold.loc[method, structure]:
        text = bold.format(text)
    if table.dagger.loc[method, structure]:
        text += dagger
    return text


def to_markdown(table: MetricTable, caption: str = "") -> str:
    """GitHub pipe table: first column ``method``, bold as ``**x**``, dagger as ``" †"``.

    The caption (if any) goes on a line above the table, the marks' note below it.
    """
    def esc(s: object) -> str:
        return str(s).replace("|", "\\|")

    lines = [caption, ""] if caption else []
    lines.append("| " + " | ".join(["method", *map(esc, table.cells.columns)]) + " |")
    lines.append("|" + "---|" * (table.cells.shape[1] + 1))
    for m in table.cells.index:
        cells = [esc(_marked(table, m, s, "**{}**", " †")) for s in table.cells.columns]
        lines.append("| " + " | ".join([esc(m), *cells]) + " |")
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines) + "\n"


def latex_escape(text: object) -> str:
    """Escape ``_ % & # $`` for LaTeX text."""
    out = str(text)
    for ch in "_%&#$":
        out = out.replace(ch, "\\" + ch)
    return out


def to_latex(table: MetricTable, caption: str = "", label: str = "") -> str:
    """booktabs ``tabular`` in a ``table`` environment.

    Names are escaped (:func:`latex_escape`); ``±`` becomes ``$\\pm$``, bold ``\\textbf``,
    the dagger ``$^\\dagger$``. ``caption`` and ``label`` are inserted verbatim (LaTeX).
    """
    lines = ["\\begin{table}[htbp]", "  \\centering"]
    if caption:
        lines.append(f"  \\caption{{{caption}}}")
    if label:
        lines.append(f"  \\label{{{label}}}")
    lines += [f"  \\begin{{tabular}}{{l{'c' * table.cells.shape[1]}}}", "    \\toprule",
              "    " + " & ".join(["method", *map(latex_escape, table.cells.columns)]) + " \\\\",
              "    \\midrule"]
    for m in table.cells.index:
        cells = [_marked(table, m, s, "\\textbf{{{}}}", "$^\\dagger$",
                         latex_escape(table.cells.loc[m, s]).replace("±", "$\\pm$"))
                 for s in table.cells.columns]
        lines.append("    " + " & ".join([latex_escape(m), *cells]) + " \\\\")
    lines += ["    \\bottomrule", "  \\end{tabular}"]
    if table.note:
        note = latex_escape(table.note).replace("†", "$^\\dagger$").replace("alpha", "$\\alpha$")
        lines += ["  \\par\\smallskip", f"  {{\\footnotesize {note}}}"]
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def to_csv_frame(table: MetricTable) -> pd.DataFrame:
    """Numbers behind the table, long: one row per (method, structure) of the table.

    Columns ``method, structure, n, n_missing, mean, sd, median, q1, q3, bold, dagger``;
    pairs absent from the metrics frame have n = 0 and NaN statistics.
    """
    keyed = table.summary.set_index(["method", "structure"])
    rows = []
    for m in table.cells.index:
        for s in table.cells.columns:
            stats = keyed.loc[(m, s)].to_dict() if (m, s) in keyed.index else _stats(np.empty(0))
            rows.append({"method": m, "structure": s, **{c: stats[c] for c in SUMMARY_COLUMNS},
                         "bold": bool(table.bold.loc[m, s]), "dagger": bool(table.dagger.loc[m, s])})
    out = pd.DataFrame(rows, columns=["method", "structure", *SUMMARY_COLUMNS, "bold", "dagger"])
    return out.astype({"n": int, "n_missing": int})


def fov_curve(fov: pd.DataFrame, bins: int = 20) -> pd.DataFrame:
    """Dice along the normalised field of view, averaged per bin then across subjects.

    Parameters
    ----------
    fov
        One row per (method, subject, structure, slice) with ``position_pct`` in [0, 100]
        (per cent of the field of view) and ``dice`` (NaN allowed, skipped).
    bins
        Number of equal bins over [0, 100]; bin k covers ``[k, k+1) * 100 / bins`` and the
        last bin also holds 100.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, structure, bin, bin_low, bin_high, bin_centre, mean, sd, n``: every
        bin of every (method, structure) present, in order of first appearance. Per subject
        the slices' Dice of a bin are averaged; ``mean``/``sd`` (ddof=1, NaN for n < 2) are
        across subjects with a value and ``n`` counts them (0 and NaN for empty bins).

    Raises
    ------
    ValueError
        For missing columns, ``bins < 1`` or a position outside [0, 100] (or NaN).
    """
    _require(fov, ["method", "subject", "structure", "position_pct", "dice"], "FOV frame")
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    bins = int(bins)
    pos = fov["position_pct"].to_numpy(dtype=float)
    if not np.all((pos >= 0) & (pos <= 100)):
        raise ValueError("position_pct must lie in [0, 100] (and not be NaN)")
    work = fov[["method", "subject", "structure"]].copy()
    work["bin"] = np.minimum(np.floor(pos * bins / 100.0).astype(int), bins - 1)
    work["dice"] = fov["dice"].to_numpy(dtype=float)
    per_subject = work.groupby(["method", "structure", "subject", "bin"], sort=False)["dice"].mean()
    across = per_subject.groupby(level=["method", "structure", "bin"], sort=False).agg(["mean", "std", "count"])
    width = 100.0 / bins
    rows = []
    for m in pd.unique(fov["method"]):
        for s in pd.unique(fov.loc[fov["method"] == m, "structure"]):
            for k in range(bins):
                mean, sd, n = (across.loc[(m, s, k)] if (m, s, k) in across.index else (np.nan, np.nan, 0))
                rows.append({"method": m, "structure": s, "bin": k, "bin_low": k * width,
                             "bin_high": (k + 1) * width, "bin_centre": (k + 0.5) * width,
                             "mean": float(mean), "sd": float(sd) if n >= 2 else np.nan, "n": int(n)})
    return pd.DataFrame(rows, columns=["method", "structure", "bin", "bin_low", "bin_high", "bin_centre",
                                       "mean", "sd", "n"])

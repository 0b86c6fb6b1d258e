"""The cartilage design study's table and figures (Desai et al., Fig. 2-4).

Per experiment (architecture, volumetric, loss, augmentation ...), each row's DSC and VOE of one structure
over the test scans as mean (SD), a Kruskal-Wallis test across the experiment's rows and Dunn's post-hoc test
of every pair (Holm-adjusted). A row is **bold** when it is better than every other row of its experiment
with Dunn p < alpha after a Kruskal-Wallis p < alpha (the paper bolds the significantly superior model of a
category). The training-size runs give mean DSC and VOE per architecture and number of training patients, with
the power law ``y = a n^b`` fitted to the means (:func:`mskseg.stats.power_law_fit`, R^2 of the means).

==========================  ==================================================================
rows without scores         the row shows "-", its experiment's tests run on the others
an experiment of one row    no tests (nothing to compare)
all values equal            Kruskal-Wallis and Dunn give no p (the reason is written)
a size with one run         the fit uses its mean; fewer than 2 sizes: no fit (note)
==========================  ==================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mskseg.reporting.plots import fov_plot, power_law_panels
from mskseg.reporting.tables import fov_curve, higher_is_better
from mskseg.stats import PowerLawFit, dunn, kruskal_wallis, power_law_fit

#: metric -> the paper's abbreviation
NAMES = {"dice": "DSC", "voe": "VOE", "iou": "IoU", "hd95_mm": "HD95 (mm)", "hd_mm": "HD (mm)",
         "assd_mm": "ASSD (mm)", "ravd": "RAVD"}


#: the paper's findings per experiment (Desai et al., ISMRM 2019), quoted: its numbers are in a figure, not the text
QUOTED_PAPER = {
    "architecture": "The 2D U-Net significantly outperformed SegNet (p<0.01); DeeplabV3+ is the third "
                    "architecture compared.",
    "volumetric": "The 2D U-Net significantly outperformed [...] 2.5D and 3D U-Net volumetric models (p<0.01).",
    "loss": "The U-Net model using dice loss had higher DSC and VOE performance compared to WCE (p<0.01) and BCE.",
    "augmentation": "Data augmentation resulted in a significant (p<0.01) segmentation improvement.",
    "training_size": "Retrospective subsampling of training data showed a power-law trend between number of "
                     "patients (training) and segmentation accuracy.",
}


def _name(metric: str) -> str:
    return NAMES.get(metric, metric)


def experiment_scores(metrics: pd.DataFrame, experiments: Sequence[tuple[str, Sequence[tuple[str, str]]]], *,
                      structure: str, metric_names: Sequence[str], alpha: float = 0.05
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean (SD) per experiment row and metric, and the tests.

    ``metrics``: the evaluation stage's per-subject metrics (method, subject, structure, metric columns).
    Returns (rows: experiment, label, method, metric, n, mean, sd, bold; tests: experiment, metric,
    kruskal_p, note, and one ``dunn`` string listing the pairs with p < alpha).
    """
    part = metrics[metrics["structure"] == structure]
    rows, tests = [], []
    for experiment, members in experiments:
        for metric in metric_names:
            groups = {label: part.loc[part["method"] == method, metric].to_numpy(float) for label, method in members}
            groups = {k: v[np.isfinite(v)] for k, v in groups.items()}
            kw = kruskal_wallis(groups)
            pairs = dunn(groups) if np.isfinite(kw.pvalue) else None
            means = {k: float(v.mean()) if v.size else np.nan for k, v in groups.items()}
            better = (lambda a, b: a > b) if higher_is_better(metric) else (lambda a, b: a < b)
            for label, method in members:
                values = groups[label]
                bold = bool(pairs is not None and kw.pvalue < alpha and values.size and all(
                    np.isfinite(means[o]) and better(means[label], means[o]) and pairs.loc[label, o] < alpha
                    for o in groups if o != label))
                rows.append({"experiment": experiment, "label": label, "method": method, "metric": metric,
                             "n": int(values.size), "mean": means[label],
                             "sd": float(values.std(ddof=1)) if values.size > 1 else np.nan, "bold": bold})
            significant = []
            if pairs is not None:
                labels = list(groups)
                for i, a in enumerate(labels):
                    for b in labels[i + 1:]:
                        p = pairs.loc[a, b]
                        if np.isfinite(p) and p < alpha:
                            significant.append(f"{a} vs {b} (p = {p:.3g})")
            tests.append({"experiment": experiment, "metric": metric, "kruskal_p": kw.pvalue, "note": kw.reason,
                          "dunn": "; ".join(significant)})
    return pd.DataFrame(rows), pd.DataFrame(tests)


def size_scores(metrics: pd.DataFrame, runs: Sequence[tuple[str, Sequence[tuple[str, int, str]]]],
                patients: Mapping[str, float], *, structure: str, metric_names: Sequence[str]
                ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, dict[str, PowerLawFit]]]:
    """Training-size means per architecture and patient count, and the power-law fits.

    ``runs``: architecture -> (size, seed, method) of its runs; ``patients``: method -> the number of training
    patients it was trained on (the mean over folds). Returns (table: architecture, patients, metric, n_runs,
    mean, sd, a, b, r2 -- the fit's columns repeated on its rows; points per metric: series, n_train, metric --
    one point per run, the mean over its test scans; fits per metric and architecture).
    """
    part = metrics[metrics["structure"] == structure]
    rows, points, fits = [], {}, {}
    for metric in metric_names:
        pts = []
        fits[metric] = {}
        for arch, members in runs:
            for _, seed, method in members:
                values = part.loc[part["method"] == method, metric].to_numpy(float)
                values = values[np.isfinite(values)]
                pts.append({"series": arch, "n_train": float(patients[method]), "seed": seed,
                            metric: float(values.mean()) if values.size else np.nan})
        frame = pd.DataFrame(pts)
        points[metric] = frame
        for arch, group in frame.groupby("series", sort=False):
            means = group.dropna(subset=[metric]).groupby("n_train")[metric].agg(["mean", "std", "count"])
            fit = None
            if len(means) >= 2 and (means["mean"] > 0).all():
                fit = power_law_fit(means.index.to_numpy(float), means["mean"].to_numpy(float))
                fits[metric][str(arch)] = fit
            for n, stats in means.iterrows():
                rows.append({"architecture": arch, "patients": n, "metric": metric, "n_runs": int(stats["count"]),
                             "mean": stats["mean"], "sd": stats["std"],
                             "a": fit.a if fit else np.nan, "b": fit.b if fit else np.nan,
                             "r2": fit.r2 if fit else np.nan})
    return pd.DataFrame(rows), points, fits


def _cell(mean: float, sd: float, decimals: int) -> str:
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.{decimals}f} ({sd:.{decimals}f})" if np.isfinite(sd) else f"{mean:.{decimals}f}"


def design_markdown(rows: pd.DataFrame, tests: pd.DataFrame, sizes: pd.DataFrame, *, dataset: str, structure: str,
                    metric_names: Sequence[str], alpha: float, n_scans: int, decimals: int = 3) -> str:
    """The study's Markdown: a table per experiment with its tests, then the training-size table and fits."""
    heads = [f"{_name(m)} mean (SD)" for m in metric_names]
    out = [f"# Cartilage design study: {structure} on {dataset}", "",
           f"Desai et al.'s experiments on {dataset}: {n_scans} test scans per row. Cells are mean (SD) "
           f"over the test scans. **Bold**: better than every other row of its experiment (Kruskal-Wallis and "
           f"Dunn's test with Holm's correction, both p < {alpha:g}). The networks segment all four structures; "
           f"the table scores {structure}, which the paper trained alone.", ""]
    for experiment in pd.unique(rows["experiment"]) if not rows.empty else []:
        part = rows[rows["experiment"] == experiment]
        out += [f"## {experiment.replace('_', ' ').capitalize()}", "", "| row | method | " + " | ".join(heads) + " |",
                "|---|---|" + "---|" * len(heads)]
        for label in pd.unique(part["label"]):
            cells = []
            for metric in metric_names:
                r = part[(part["label"] == label) & (part["metric"] == metric)].iloc[0]
                text = _cell(r["mean"], r["sd"], decimals)
                cells.append(f"**{text}**" if r["bold"] else text)
            method = part.loc[part["label"] == label, "method"].iloc[0]
            out.append(f"| {label} | {method} | " + " | ".join(cells) + " |")
        out.append("")
        if experiment in QUOTED_PAPER:
            out += [f"The paper (quoted): \"{QUOTED_PAPER[experiment]}\"", ""]
        for _, t in tests[tests["experiment"] == experiment].iterrows():
            p = f"p = {t['kruskal_p']:.3g}" if np.isfinite(t["kruskal_p"]) else f"no p ({t['note']})"
            pairs = t["dunn"] or f"no pair with p < {alpha:g}"
            out.append(f"- {_name(t['metric'])}: Kruskal-Wallis {p}; Dunn: {pairs}")
        out.append("")
    if not sizes.empty:
        out += ["## Training-set size", "",
                "Each architecture retrained on nested subsets of the training patients, epochs scaled to equal "
                "optimiser steps; mean (SD) over runs (seeds) of the per-run mean over the test scans. The fit "
                "is y = a n^b on the means, R^2 of the means.", "",
                f"The paper (quoted): \"{QUOTED_PAPER['training_size']}\"", "",
                "| architecture | metric | " + " | ".join(f"n = {n:g}" for n in sorted(pd.unique(sizes["patients"])))
                + " | a | b | R^2 |",
                "|---|---|" + "---|" * (len(pd.unique(sizes["patients"])) + 3)]
        for (arch, metric), part in sizes.groupby(["architecture", "metric"], sort=False):
            by_n = part.set_index("patients")
            cells = [_cell(by_n.loc[n, "mean"], by_n.loc[n, "sd"], decimals) if n in by_n.index else "-"
                     for n in sorted(pd.unique(sizes["patients"]))]
            fit = part.iloc[0]
            fitted = [f"{fit['a']:.3g}", f"{fit['b']:.3g}", f"{fit['r2']:.3f}"] if np.isfinite(fit["a"]) else ["-"] * 3
            out.append(f"| {arch} | {_name(metric)} | " + " | ".join(cells + fitted) + " |")
        out.append("")
    return "\n".join(out)


def fov_figure(fov: pd.DataFrame, experiments: Sequence[tuple[str, Sequence[tuple[str, str]]]], stem: str | os.PathLike,
               *, structure: str, bins: int, title: str = "") -> tuple[Path, Path]:
    """Dice along the normalised field of view: a panel per experiment, a line per row (the paper's Fig. 4)."""
    part = fov[fov["structure"] == structure]
    frames = []
    for experiment, members in experiments:
        for label, method in members:
            rows = part[part["method"] == method]
            if not rows.empty:
                frames.append(rows.assign(method=label, structure=experiment))
    if not frames:
        raise ValueError(f"no field-of-view rows of {structure} for the study's methods")
    return fov_plot(fov_curve(pd.concat(frames, ignore_index=True), bins=bins), stem, title=title)


def size_figure(points: Mapping[str, pd.DataFrame], fits: Mapping[str, Mapping[str, PowerLawFit]],
                stem: str | os.PathLike, *, title: str = "") -> tuple[Path, Path]:
    """Accuracy against training patients per architecture with the fits, a panel per metric (Fig. 3)."""
    return power_law_panels(points, fits, stem, x_label="training patients", title=title)


__all__ = ["QUOTED_PAPER", "design_markdown", "experiment_scores", "fov_figure", "size_figure", "size_scores"]

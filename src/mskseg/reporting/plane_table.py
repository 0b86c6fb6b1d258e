"""The three-plane fusion paper's experiment as one table (study ``three_plane_fusion``): each plane's model
alone and the fitted blend, Dice per structure and mean IoU with the paired tests, the blending weights of
every fold, and the confusion matrices (summed over the test subjects of every fold, as percentages of each
reference class) with their figure.

The planes are compared as the dataset's methods are (:func:`mskseg.reporting.build.metric_tables`: paired
Wilcoxon tests, Holm-corrected; bold = better than every other row, † = differs from the best).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mskseg.reporting.build import metric_tables
from mskseg.reporting.overlays import save_png

PLANE_ORDER = ("axial", "coronal", "sagittal", "fused")
#: what the paper reports (Luan et al.), quoted as it stands: its planes are named only by the order of its matrices
QUOTED_PAPER = ("The paper (quoted; 88 patients at two time points, 384 x 384 x 160 voxels, a VGG16 U-Net per plane): "
                "the fused model reaches Dice 0.9129 and outperforms the individual plane models; the three plane "
                "models' mean IoU are 83.54 %, 77.93 % and 72.85 % and the blending weights (0.5077, 0.4012, "
                "0.0911), in the order of its matrices C, A, S (coronal, axial, sagittal).")


def _planes(frame: pd.DataFrame) -> list[str]:
    present = list(pd.unique(frame["plane"]))
    return [p for p in PLANE_ORDER if p in present] + [p for p in present if p not in PLANE_ORDER]


def confusion_percent(confusions: pd.DataFrame, plane: str) -> pd.DataFrame:
    """A plane's confusion matrix summed over subjects and folds, each reference row in % of its voxels."""
    part = confusions[confusions["plane"] == plane].drop(columns=[c for c in ("plane", "subject", "fold")
                                                                     if c in confusions])
    summed = part.groupby("reference", sort=False).sum()
    totals = summed.sum(axis=1).replace(0, np.nan)
    return summed.div(totals, axis=0) * 100.0


def plane_markdown(scores: pd.DataFrame, confusions: pd.DataFrame, weights: Mapping[str, Mapping[str, float]], *,
                   dataset: str, method: str, table_settings: Mapping) -> tuple[str, pd.DataFrame]:
    """The study's Markdown and its CSV frame (metric, plane, structure, mean, sd, ...)."""
    planes = _planes(scores)
    frame = scores.rename(columns={"plane": "method"})
    settings = {**dict(table_settings), "methods": planes}
    tables = metric_tables(frame, ["dice", "mean_iou"], settings, dataset)
    lines = [f"{dataset}: the three-plane fusion paper's experiment (three_plane_fusion) with method {method}: each "
             "plane's model alone and the blend of the three with the weights fitted on the validation subjects",
             ""]
    for files in tables.values():
        lines += [files.markdown.rstrip("\n"), ""]
    views = [p for p in planes if p != "fused"]
    lines += [QUOTED_PAPER, ""]
    lines += ["Blending weights fitted per fold (alpha, beta, gamma of the paper):", "",
              "| fold | " + " | ".join(views) + " |", "|---|" + "---|" * len(views)]
    lines += [f"| {fold} | " + " | ".join(f"{w.get(v, float('nan')):.2f}" for v in views) + " |"
              for fold, w in weights.items()]
    for plane in planes:
        matrix = confusion_percent(confusions, plane)
        lines += ["", f"Confusion matrix, {plane} (rows: reference, % of its voxels; columns: prediction):", "",
                  "| reference | " + " | ".join(matrix.columns) + " |", "|---|" + "---|" * len(matrix.columns)]
        lines += [f"| {ref} | " + " | ".join(f"{v:.2f}" for v in row) + " |" for ref, row in matrix.iterrows()]
    csv = pd.concat([f.csv.assign(metric=m) for m, f in tables.items()], ignore_index=True)
    return "\n".join(lines) + "\n", csv.rename(columns={"method": "plane"})


def confusion_figure(confusions: pd.DataFrame, path: str | os.PathLike[str], *, title: str = "") -> Path:
    """One heat map per plane of :func:`confusion_percent` (log-free, 0-100 %), written as a PNG."""
    planes = _planes(confusions)
    fig = Figure(figsize=(3.4 * len(planes), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(planes)))
    for ax, plane in zip(axes, planes, strict=True):
        matrix = confusion_percent(confusions, plane)
        image = ax.imshow(matrix.to_numpy(float), cmap="viridis", vmin=0.0, vmax=100.0)
        ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(matrix.index)), matrix.index, fontsize=7)
        for (i, j), value in np.ndenumerate(matrix.to_numpy(float)):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=6,
                    color="black" if value > 60 else "white")
        ax.set_title(plane, fontsize=9)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="% of the reference class")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_png(fig, path, 90)


__all__ = ["PLANE_ORDER", "confusion_figure", "confusion_percent", "plane_markdown"]

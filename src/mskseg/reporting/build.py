"""Every table and its statistics for one dataset, from the methods' collected metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from mskseg.reporting.tables import metric_table, to_csv_frame, to_latex, to_markdown
from mskseg.stats import compare_methods

#: how metrics are named in captions
METRIC_NAMES = {"dice": "Dice", "iou": "IoU", "voe": "volumetric overlap error", "ravd": "relative absolute volume "
                "difference", "hd_mm": "Hausdorff distance (mm)", "hd95_mm": "95th percentile Hausdorff distance (mm)",
                "assd_mm": "average symmetric surface distance (mm)", "gap_dice": "GapDice",
                "collisions": "collision count |E| (voxels)", "mean_iou": "mean IoU (with background)",
                "ref_volume_mm3": "reference volume (mm^3)", "pred_volume_mm3": "predicted volume (mm^3)"}


@dataclass(frozen=True)
class TableFiles:
    """The texts and frames of one metric's table."""

    markdown: str
    latex: str
    csv: pd.DataFrame
    stats: pd.DataFrame
    rows: pd.DataFrame
    structures: list[str]


def metric_rows(frame: pd.DataFrame, metric: str, structures: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """The rows a metric's table and box plot show, and their structures in table order.

    Every metric has a value per subject and structure, except the mean IoU, which is one value per
    subject (the ``all`` row).
    """
    rows = frame[frame["structure"].isin(structures)]
    if metric == "mean_iou":
        rows = rows[rows["structure"] == "all"]
    present = set(rows["structure"])
    return rows, [s for s in structures if s in present]


def metric_tables(frame: pd.DataFrame, metrics: Sequence[str], settings: Mapping, dataset: str
                  ) -> dict[str, TableFiles]:
    """One table per metric: rows methods, columns structures (see :mod:`mskseg.reporting.tables`)."""
    methods = list(settings["methods"])
    structures = [s for s in settings["structures"] if s in set(frame["structure"])]
    out: dict[str, TableFiles] = {}
    for metric in metrics:
        sub, shown = metric_rows(frame, metric, structures)
        comparisons = compare_methods(sub, metric, methods=methods, p_adjust=settings["p_adjust"],
                                      alpha=settings["alpha"])
        table = metric_table(sub, metric, methods=methods, structures=shown, style=settings["style"],
                             decimals=settings["decimals"], comparisons=comparisons if len(methods) > 1 else None)
        caption = f"{dataset}: {METRIC_NAMES.get(metric, metric)}, " + (
            "mean ± SD" if settings["style"] == "mean_sd" else "median [IQR]") + " over test subjects"
        out[metric] = TableFiles(markdown=to_markdown(table, caption), latex=to_latex(table, caption,
                                 f"tab:{dataset}-{metric}"), csv=to_csv_frame(table), stats=comparisons, rows=sub,
                                 structures=shown)
    return out

"""The knee paper's experiment as one table (study ``knee_shape_fitting``): its Table 1 (the 2D U-Net against
the full method, Dice per structure) with the paper's own numbers quoted beside ours, further metrics, the
landmark errors of the fitted shapes and the seconds of each inference step.

Our rows come from the evaluation stage's per-subject metrics of the study's methods, relabelled with the
study's row labels, with the dataset's statistics (paired Wilcoxon tests, Holm-corrected: bold = better than
every other row, † = differs from the best; :mod:`mskseg.reporting.tables`). The quoted rows are the paper's
Table 1 (Schock, Kopaczka et al., OAI-ZIB: 507 MRIs, 10-fold cross-validation; Dice in %), written as
fractions and marked ``(paper, quoted)``; a structure the paper does not report, or that the dataset lacks, has no
quoted cell. The runtime the paper quotes (8 s per volume, all steps, GeForce RTX 2080 Ti) stands below the
measured seconds per step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from mskseg.reporting.build import metric_tables
from mskseg.reporting.fitting import fitting_markdown

#: the paper's Table 1 (Dice, fractions) per structure, by row
QUOTED_DICE: dict[str, dict[str, float]] = {
    "2D U-Net": {"femur": 0.985, "tibia": 0.985, "femoral_cartilage": 0.890, "tibial_cartilage": 0.849},
    "full method": {"femur": 0.985, "tibia": 0.985, "femoral_cartilage": 0.899, "tibial_cartilage": 0.859},
    "Ambellan et al.": {"femur": 0.986, "tibia": 0.985, "femoral_cartilage": 0.899,
                                "tibial_cartilage": 0.856},
}
QUOTED_SOURCE = ("Quoted: the paper's Table 1 (Schock, Kopaczka et al.; OAI-ZIB, 507 knee MRIs at 0.36 x 0.36 x 0.7 "
                 "mm, 10-fold cross-validation), not recomputed here.")
QUOTED_RUNTIME = ("The paper quotes 8 s per volume for all steps on a GeForce RTX 2080 Ti, against 9 min 32 s for "
                  "Ambellan et al. on a GeForce 980 Ti.")


def quoted_rows(structures: Sequence[str], decimals: int) -> list[str]:
    """The quoted rows as Markdown table rows over ``structures`` (the ``all`` column and unknown ones empty)."""
    lines = []
    for label, values in QUOTED_DICE.items():
        cells = [f"{values[s]:.{decimals}f}" if s in values else "" for s in structures]
        lines.append(f"| {label} (paper, quoted) | " + " | ".join(cells) + " |")
    return lines


def _with_quotes(markdown: str, structures: Sequence[str], decimals: int) -> str:
    """Insert the quoted rows after the table's last row, the source note after the marks' note."""
    lines = markdown.rstrip("\n").split("\n")
    last = max(i for i, line in enumerate(lines) if line.startswith("|"))
    lines[last + 1:last + 1] = quoted_rows(structures, decimals)
    return "\n".join([*lines, "", QUOTED_SOURCE]) + "\n"


def knee_study_markdown(metrics: pd.DataFrame, rows: Sequence[tuple[str, str]], *, dataset: str,
                        table_settings: Mapping, metrics_shown: Sequence[str], errors: pd.DataFrame | None = None,
                        steps: pd.DataFrame | None = None) -> tuple[str, pd.DataFrame]:
    """The study's Markdown and its CSV frame (metric, row, structure, mean, sd, n, bold, dagger).

    ``metrics``: the per-subject metrics of the rows' methods (column ``method``); ``rows``: (label, method)
    in table order; ``table_settings``: the dataset's (structures, decimals, style, alpha, p_adjust);
    ``errors``/``steps``: the landmark-error and step tables of the fitted methods (None: left out).
    """
    missing = {method for _, method in rows} - set(metrics["method"])
    if missing:
        raise ValueError(f"no metrics for method(s) {', '.join(sorted(missing))} of the study")
    label_of = {method: label for label, method in rows}
    frame = metrics[metrics["method"].isin(label_of)].assign(method=lambda f: f["method"].map(label_of))
    settings = {**dict(table_settings), "methods": [label for label, _ in rows]}
    tables = metric_tables(frame, list(metrics_shown), settings, dataset)
    parts, csv = [], []
    for metric, files in tables.items():
        text = files.markdown
        if metric == "dice":
            text = _with_quotes(text, [*files.structures], int(settings["decimals"]))
        parts.append(text)
        csv.append(files.csv.assign(metric=metric))
    if errors is not None and steps is not None and len(errors):
        fitted = errors.assign(method=errors["method"].map(label_of).fillna(errors["method"]))
        timed = steps.assign(method=steps["method"].map(label_of).fillna(steps["method"]))
        parts.append(fitting_markdown(fitted, timed, dataset=dataset) + "\n" + QUOTED_RUNTIME + "\n")
    title = (f"{dataset}: the knee paper's experiment (knee_shape_fitting): "
             + ", ".join(f"{label} = {method}" for label, method in rows))
    return title + "\n\n" + "\n".join(parts), pd.concat(csv, ignore_index=True)


__all__ = ["QUOTED_DICE", "QUOTED_RUNTIME", "QUOTED_SOURCE", "knee_study_markdown", "quoted_rows"]

"""The hip paper's Table 1: each design choice after each interactive round, on the test subjects.

Input: the scores of the rounds before the last of every (method, fold)
(:func:`mskseg.nn.round_eval.evaluate_rounds`, one row per round, subject and structure), the
evaluation stage's metrics of each method's model (its last round) and the rounds tables of the
trainings (the label-free collision count ``|E|`` of the scans each round predicts next, the
number that tells when to stop).

Output: one row per method and round with, over the test subjects of every fold, the mean ± SD of
the ``all`` row of each metric (the mean over structures; ``collisions``: their sum, ``|E|`` of the
test predictions) and the mean ``|E|`` per newly predicted scan of the rounds tables. A method that
differs from the reference method (the full recipe) at the same round by a paired Wilcoxon
signed-rank test on the test subjects (Holm-corrected over the methods of that round, alpha 0.05)
is marked ``†``.

====================  ==============================================================
case                  cell
====================  ==============================================================
no test subject       the method and round are left out
a metric NaN          (empty prediction: no surface) left out of that cell's mean
one test subject      SD 0, no test
====================  ==============================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mskseg.stats import adjust_pvalues, paired_wilcoxon

PathLike = str | os.PathLike

#: how the metrics are named in the table
HEADINGS = {"dice": "Dice", "hd_mm": "HD (mm)", "hd95_mm": "HD95 (mm)", "gap_dice": "GapDice", "assd_mm": "ASSD (mm)",
            "collisions": "|E| test", "voe": "VOE", "ravd": "RAVD"}

#: what the hip paper's text says of its Table 1 (its cells are an image the text does not hold)
QUOTED_PAPER = ("the recipe on the multi-planar U-Net reaches an overall Dice above 0.98 and a GapDice above 0.96 on 9 "
                "test CTs after round 2 (4 accurate scans); pre-training and the weight map give a significantly "
                "better GapDice and HD, and pre-training matters most after round 1 (2 scans). Not recomputed here.")


def _all_rows(path: PathLike, needed: set[str]) -> pd.DataFrame:
    table = pd.read_csv(path)
    missing = needed - set(table.columns)
    if missing:
        raise ValueError(f"{path}: not a metrics table (no column {', '.join(sorted(missing))})")
    return table.loc[table["structure"] == "all"].copy()


def earlier_frame(files: Sequence[tuple[str, str, PathLike]]) -> pd.DataFrame:
    """The ``all`` rows of the earlier rounds' scores ``(label, fold, path)``
    (:func:`mskseg.nn.round_eval.evaluate_rounds`), with ``method`` = label and ``fold``."""
    frames = []
    for label, fold, path in files:
        table = _all_rows(path, {"round", "n_train", "subject", "structure"})
        table.insert(0, "fold", str(fold))
        table.insert(0, "method", label)
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def final_frame(files: Sequence[tuple[str, str, str, PathLike]], rounds: pd.DataFrame) -> pd.DataFrame:
    """The ``all`` rows of the evaluation stage's metrics ``(label, fold, subject, path)`` of each method's
    model, which is its last round: ``round`` and ``n_train`` from that (label, fold)'s rounds table
    (:func:`unseen_frame`)."""
    frames = []
    for label, fold, subject, path in files:
        mine = rounds.loc[(rounds["method"] == label) & (rounds["fold"] == str(fold))]
        if mine.empty:
            raise ValueError(f"no rounds table of {label}, fold {fold} for {path}")
        last = mine.loc[mine["round"].idxmax()]
        table = _all_rows(path, {"structure"})
        for column, value in (("subject", subject), ("n_train", int(last["n_train"])), ("round", int(last["round"])),
                              ("fold", str(fold)), ("method", label)):
            if column in table:
                table = table.drop(columns=column)
            table.insert(0, column, value)
        frames.append(table)
    if not frames:
        raise ValueError("no test subject's metrics to tabulate")
    return pd.concat(frames, ignore_index=True)


def unseen_frame(files: Sequence[tuple[str, str, PathLike]]) -> pd.DataFrame:
    """The rounds tables ``(label, fold, path)`` of the trainings: method, fold, round, collisions per scan."""
    frames = []
    for label, fold, path in files:
        table = pd.read_csv(path)[["round", "n_train", "collisions_per_subject"]]
        table.insert(0, "fold", str(fold))
        table.insert(0, "method", label)
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["method", "fold", "round", "n_train", "collisions_per_subject"])


def _marks(frame: pd.DataFrame, metric: str, reference: str, alpha: float) -> dict[tuple[str, int], bool]:
    """(method, round) -> differs from ``reference`` at that round (Holm over the round's methods)."""
    marks: dict[tuple[str, int], bool] = {}
    for r, part in frame.groupby("round"):
        ref = part.loc[part["method"] == reference].set_index("subject")[metric]
        others = [m for m in part["method"].unique() if m != reference]
        tests = [paired_wilcoxon(part.loc[part["method"] == m].set_index("subject")[metric], ref) for m in others]
        ok = [i for i, t in enumerate(tests) if np.isfinite(t.pvalue)]
        adjusted = adjust_pvalues([tests[i].pvalue for i in ok]) if ok else []
        for i, p in zip(ok, adjusted, strict=True):
            marks[(others[i], int(r))] = bool(p < alpha)
    return marks


def transfer_table(frame: pd.DataFrame, unseen: pd.DataFrame, *, metrics: Sequence[str], order: Sequence[str],
                   reference: str, alpha: float = 0.05) -> pd.DataFrame:
    """One row per method (in ``order``) and round: ``method``, ``round``, ``n_train``, ``n_test``, then per
    metric ``<metric>_mean``, ``<metric>_sd`` and ``<metric>_differs`` (against ``reference``), then
    ``unseen_collisions`` (mean ``|E|`` per scan the round predicted next; NaN after the last round)."""
    absent = [m for m in metrics if m not in frame.columns]
    if absent:
        raise ValueError(f"metric(s) {', '.join(absent)} not in the rounds metrics (columns: {', '.join(frame)})")
    marks = {m: _marks(frame, m, reference, alpha) if reference in set(frame["method"]) else {} for m in metrics}
    rows = []
    for method in order:
        for r, part in frame.loc[frame["method"] == method].groupby("round"):
            row: dict = {"method": method, "round": int(r), "n_train": int(part["n_train"].iloc[0]),
                         "n_test": int(part["subject"].nunique())}
            for m in metrics:
                values = pd.to_numeric(part[m], errors="coerce").dropna()
                row[f"{m}_mean"] = float(values.mean()) if len(values) else np.nan
                row[f"{m}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
                row[f"{m}_differs"] = marks[m].get((method, int(r)), False)
            seen = unseen.loc[(unseen["method"] == method) & (unseen["round"] == r), "collisions_per_subject"]
            seen = pd.to_numeric(seen, errors="coerce").dropna()
            row["unseen_collisions"] = float(seen.mean()) if len(seen) else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def transfer_markdown(table: pd.DataFrame, *, metrics: Sequence[str], title: str, reference: str,
                      notes: Mapping[str, str] | None = None, decimals: int = 3) -> str:
    """The table as Markdown: a title, one line per method and round, and the legend."""
    heads = [HEADINGS.get(m, m).replace("|", "\\|") for m in metrics]  # a bar in a cell is escaped
    lines = [title, "", "| method | round | accurate scans | test subjects | " + " | ".join(heads)
             + " | \\|E\\| per next scan |", "|---|---|---|---|" + "---|" * (len(metrics) + 1)]
    for _, row in table.iterrows():
        cells = []
        for m in metrics:
            digits = 0 if m == "collisions" else decimals
            cell = f"{row[f'{m}_mean']:.{digits}f} ± {row[f'{m}_sd']:.{digits}f}"
            cells.append(cell + (" †" if row[f"{m}_differs"] else ""))
        unseen = "" if pd.isna(row["unseen_collisions"]) else f"{row['unseen_collisions']:.0f}"
        lines.append(f"| {row['method']} | {row['round']} | {row['n_train']} | {row['n_test']} | "
                     + " | ".join(cells) + f" | {unseen} |")
    lines += ["", f"Mean ± SD over the test subjects of every fold (the `all` row: the mean over structures; |E|: "
              f"collision voxels summed over structures). †: differs from {reference} at the same round (paired "
              "Wilcoxon signed-rank test on the test subjects, Holm-corrected over the round's methods, alpha = "
              "0.05). |E| per next scan: the label-free collision count of the scans the round predicts next (after "
              "the last round: none)."]
    lines += [f"{name}: {text}" for name, text in (notes or {}).items()]
    return "\n".join(lines) + "\n"


__all__ = ["HEADINGS", "QUOTED_PAPER", "earlier_frame", "final_frame", "transfer_markdown", "transfer_table",
           "unseen_frame"]

"""One method's per-subject results gathered into long tables with method, subject and fold columns:
per batch of subjects (:func:`collect`), then the batches into the dataset's tables (:func:`merge`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Collected:
    """``metrics``: one row per subject and structure; ``confusion``: voxel counts summed over
    subjects (rows reference, columns prediction); ``fov``: per-slice Dice of every subject."""

    metrics: pd.DataFrame
    confusion: pd.DataFrame
    fov: pd.DataFrame


def collect(method: str, subjects: Sequence[str], folds: Mapping[str, str], metrics: Sequence[pd.DataFrame],
            confusions: Sequence[pd.DataFrame], fovs: Sequence[pd.DataFrame]) -> Collected:
    """Stack per-subject tables (same order as ``subjects``) and add ``method``, ``subject``, ``fold``.

    ``folds``: subject -> the split that tests it (:func:`mskseg.workflow.checkpoints.test_folds`); a subject
    without one gets an empty fold.
    """
    if not (len(subjects) == len(metrics) == len(confusions) == len(fovs)):
        raise ValueError("one metrics, confusion and fov table per subject expected")

    def tag(frame: pd.DataFrame, subject: str) -> pd.DataFrame:
        return frame.assign(method=method, subject=subject, fold=folds.get(subject, ""))[
            ["method", "subject", "fold", *list(frame.columns)]]

    table = pd.concat([tag(m, s) for m, s in zip(metrics, subjects, strict=True)], ignore_index=True)
    fov = (pd.concat([tag(f, s) for f, s in zip(fovs, subjects, strict=True)], ignore_index=True) if fovs
           else pd.DataFrame())
    conf = None
    for frame in confusions:
        c = frame.set_index("reference")
        conf = c if conf is None else conf.add(c, fill_value=0)
    confusion = conf.reset_index() if conf is not None else pd.DataFrame()
    return Collected(metrics=table, confusion=confusion, fov=fov)


def merge(parts: Sequence[Collected]) -> Collected:
    """Batches' tables in one: metrics and per-slice Dice stacked in order, confusion counts summed."""
    if not parts:
        raise ValueError("no batch to merge")
    metrics = pd.concat([p.metrics for p in parts], ignore_index=True)
    fovs = [p.fov for p in parts if len(p.fov.columns)]
    fov = pd.concat(fovs, ignore_index=True) if fovs else pd.DataFrame()
    conf = None
    for part in parts:
        if not len(part.confusion.columns):
            continue
        c = part.confusion.set_index("reference")
        conf = c if conf is None else conf.add(c, fill_value=0)
    confusion = conf.reset_index() if conf is not None else pd.DataFrame()
    if "subject" in metrics and metrics.duplicated(["subject", "structure"]).any():
        raise ValueError("a subject is in more than one batch")
    return Collected(metrics=metrics, confusion=confusion, fov=fov)

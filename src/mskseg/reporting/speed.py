"""The speed/accuracy table: every method that ran, its Dice per structure, what its training and its inference
cost, and where it ran.

Costs come from the rules' ``benchmark:`` files (Snakemake's columns: ``s`` wall seconds, ``max_rss`` peak
resident memory in MB) and the prediction records (``seconds``: inference and post-processing of one volume,
the model already loaded; ``device``). A method's training is every training job its models need, whoever
owns it: a pre-training shared by several methods or the knee method's pre-segmentation network is counted in
each method that uses it (what training that method from nothing costs; ``shared`` names them).

==========================  ==================================================================
column                      meaning
==========================  ==================================================================
``dice_<structure>``        mean Dice over the test subjects (the ``all`` column: over structures)
``train_s``                 wall seconds of every training job summed (all folds)
``train_peak_mb``           the largest peak memory of those jobs
``infer_s``                 mean seconds per volume of inference and post-processing
``predict_job_s``           mean wall seconds per prediction job (start-up and reading included)
``predict_peak_mb``         the largest peak memory of the prediction jobs
``device``                  the prediction records' device(s)
==========================  ==================================================================

A benchmark file or record that is missing (a job run before benchmarks were kept) makes its figure NaN and
is counted in ``missing``; an unreadable one is an error naming the file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mskseg.reporting.html import frame_html, html_document

PathLike = str | os.PathLike


@dataclass(frozen=True)
class MethodCosts:
    """The files one method's row is read from."""

    dataset: str
    method: str
    metrics: PathLike
    training: Sequence[PathLike] = ()
    predictions: Sequence[PathLike] = ()
    records: Sequence[PathLike] = ()
    shared: Sequence[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, block: Mapping[str, object]) -> MethodCosts:
        """From the rule's parameters (lists of paths as plain strings)."""
        return cls(dataset=str(block["dataset"]), method=str(block["method"]), metrics=str(block["metrics"]),
                   training=list(block.get("training", [])), predictions=list(block.get("predictions", [])),
                   records=list(block.get("records", [])), shared=list(block.get("shared", [])))


def read_benchmark(path: PathLike) -> dict[str, float] | None:
    """``s`` and ``max_rss`` (MB) of a benchmark file (its last row: the last attempt); None when absent."""
    p = Path(path)
    if not p.exists():
        return None
    try:
        frame = pd.read_csv(p, sep="\t")
        row = frame.iloc[-1]
        return {"s": float(row["s"]), "max_rss": float(pd.to_numeric(row["max_rss"], errors="coerce"))}
    except (KeyError, IndexError, ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"{p}: not a Snakemake benchmark file (columns s, max_rss): {err}") from err


def _read_record(path: PathLike) -> dict | None:
    p = Path(path)
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{p}: not a prediction record (JSON): {err}") from err


def _dice(metrics: PathLike) -> dict[str, float]:
    frame = pd.read_csv(metrics)
    missing = {"structure", "dice"} - set(frame.columns)
    if missing:
        raise ValueError(f"{metrics}: not a metrics table (no column(s) {', '.join(sorted(missing))})")
    means = pd.to_numeric(frame["dice"], errors="coerce").groupby(frame["structure"].astype(str), sort=False).mean()
    out = {f"dice_{s}": float(v) for s, v in means.items() if s != "all"}
    out["dice_all"] = float(means.drop("all", errors="ignore").mean()) if len(means) else math.nan
    return out


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


def method_row(costs: MethodCosts) -> dict[str, object]:
    """One row of :func:`speed_accuracy_frame`."""
    row: dict[str, object] = {"dataset": costs.dataset, "method": costs.method, **_dice(costs.metrics)}
    missing = 0
    train = [read_benchmark(p) for p in costs.training]
    missing += sum(b is None for b in train)
    done = [b for b in train if b is not None]
    row["train_s"] = sum(b["s"] for b in done) if done and len(done) == len(train) else math.nan
    row["train_peak_mb"] = max((b["max_rss"] for b in done), default=math.nan)
    jobs = [read_benchmark(p) for p in costs.predictions]
    missing += sum(b is None for b in jobs)
    ran = [b for b in jobs if b is not None]
    records = [_read_record(p) for p in costs.records]
    missing += sum(r is None for r in records)
    kept = [r for r in records if r is not None]
    row["infer_s"] = _mean([float(r["seconds"]) for r in kept if "seconds" in r])
    row["predict_job_s"] = _mean([b["s"] for b in ran])
    row["predict_peak_mb"] = max((b["max_rss"] for b in ran), default=math.nan)
    row["device"] = ", ".join(sorted({str(r.get("device", "?")) for r in kept})) or ""
    row["shared"] = ", ".join(costs.shared)
    row["missing"] = missing
    return row


def speed_accuracy_frame(methods: Sequence[MethodCosts]) -> pd.DataFrame:
    """One row per method (in the order given); Dice columns are the union over datasets (NaN where a dataset
    lacks the structure)."""
    rows = [method_row(m) for m in methods]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["dataset", "method", "dice_all", "train_s", "train_peak_mb", "infer_s",
                                     "predict_job_s", "predict_peak_mb", "device", "shared", "missing"])
    dice = [c for c in frame.columns if c.startswith("dice_") and c != "dice_all"]
    rest = ["train_s", "train_peak_mb", "infer_s", "predict_job_s", "predict_peak_mb", "device", "shared", "missing"]
    return frame[["dataset", "method", *dice, "dice_all", *rest]]


def dataset_view(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The rows of one dataset with only its own Dice columns (for the report's per-dataset tables)."""
    part = frame[frame["dataset"] == dataset].drop(columns="dataset")
    keep = [c for c in part.columns if not c.startswith("dice_") or part[c].notna().any()]
    return part[keep].reset_index(drop=True)


def speed_accuracy_page(frame: pd.DataFrame) -> str:
    """The report's page: one table per dataset, then what the columns mean."""
    parts = []
    for dataset in pd.unique(frame["dataset"]):
        parts.append(f"<h3>{dataset}</h3>" + frame_html(dataset_view(frame, dataset)))
    if not parts:
        parts.append("<p>No trained or fitted method was scored.</p>")
    legend = ("<p class=\"note\">dice_*: mean Dice over the test subjects (dice_all: over structures). train_s: wall "
              "seconds of every training job the method needs, all folds summed (shared: jobs it shares with another "
              "method, counted in both). *_peak_mb: the largest peak resident memory of those jobs (MB). infer_s: "
              "mean seconds per volume of inference and post-processing; predict_job_s: of the whole prediction job "
              "(start-up and reading included). missing: benchmark files or records not found (their figures NaN). "
              "From the rules' benchmark files (results/benchmarks/).</p>")
    return html_document("Speed and accuracy of every method that ran", "\n".join(parts) + legend)


__all__ = ["MethodCosts", "dataset_view", "method_row", "read_benchmark", "speed_accuracy_frame", "speed_accuracy_page"]

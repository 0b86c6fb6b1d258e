"""The shape fitting's own tables (knee paper 4.2): landmark errors of the fitted shapes, and the seconds of each
inference step, per method.

:func:`landmark_error_frame` scores each test subject's fitted landmarks against the landmarks the shape stage
warped to that subject (:func:`mskseg.metrics.landmarks.landmark_errors`, mm); :func:`step_frame` reads the
per-step seconds from the prediction records; :func:`fitting_markdown` summarises both as mean ± SD over
subjects (landmark errors: of each subject's mean, median, 95th percentile and maximum).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import pandas as pd

from mskseg.io.landmarks import read_landmarks_csv
from mskseg.io.tables import read_json, read_table
from mskseg.metrics.landmarks import landmark_errors

__all__ = ["fitting_markdown", "landmark_error_frame", "step_frame"]

PathLike = str | os.PathLike
ERROR_COLUMNS = ("mean_mm", "median_mm", "p95_mm", "max_mm")


def landmark_error_frame(fitted: Sequence[PathLike], rows: Sequence[tuple[str, str]],
                         references: Mapping[str, Sequence[PathLike]], subjects: Sequence[str]) -> pd.DataFrame:
    """One row per (method, subject, structure) with :func:`landmark_errors`' columns.

    ``fitted[i]`` is the fitted-landmark table (``structure``, ``index``, ``x``, ``y``, ``z``) of
    ``rows[i] = (method, subject)``; ``references[bone][j]`` the warped landmarks of ``subjects[j]``.
    """
    position = {s: j for j, s in enumerate(subjects)}
    out = []
    for path, (method, subject) in zip(fitted, rows, strict=True):
        predicted = read_table(path)
        reference = []
        for bone in predicted["structure"].unique():
            ref = read_landmarks_csv(references[str(bone)][position[subject]])[["index", "x", "y", "z"]]
            reference.append(ref.assign(structure=bone))
        errors = landmark_errors(predicted, pd.concat(reference, ignore_index=True))
        out.append(errors.assign(method=method, subject=subject))
    frame = pd.concat(out, ignore_index=True)
    return frame[["method", "subject", "structure", *[c for c in frame if c not in ("method", "subject",
                                                                                    "structure")]]]


def step_frame(records: Sequence[PathLike], rows: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """One row per (method, subject): the device and the seconds of each inference step (and ``total``)."""
    out = []
    for path, (method, subject) in zip(records, rows, strict=True):
        record = read_json(path)
        steps = dict(record.get("steps_seconds") or {})
        out.append({"method": method, "subject": subject, "device": record.get("device", ""), **steps,
                    "total": record.get("seconds")})
    return pd.DataFrame(out)


def _mean_sd(values: pd.Series, decimals: int) -> str:
    return f"{values.mean():.{decimals}f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.{decimals}f}"


def fitting_markdown(errors: pd.DataFrame, steps: pd.DataFrame, *, dataset: str, decimals: int = 2) -> str:
    """Both tables as Markdown (module docstring)."""
    lines = [f"{dataset}: landmark error of the fitted shapes (mm) against the warped landmarks, mean ± SD over "
             "test subjects", "", "| method | structure | n | " + " | ".join(ERROR_COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(ERROR_COLUMNS)]
    for (method, structure), part in errors.groupby(["method", "structure"], sort=False):
        cells = [_mean_sd(part[c], decimals) for c in ERROR_COLUMNS]
        lines.append(f"| {method} | {structure} | {int(part['n'].iloc[0])} | " + " | ".join(cells) + " |")
    names = [c for c in steps if c not in ("method", "subject", "device")]
    lines += ["", f"{dataset}: seconds per volume of each inference step, mean ± SD over test subjects", "",
              "| method | device | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for (method, device), part in steps.groupby(["method", "device"], sort=False):
        lines.append(f"| {method} | {device} | " + " | ".join(_mean_sd(part[c].astype(float), 3) for c in names)
                     + " |")
    return "\n".join(lines) + "\n"

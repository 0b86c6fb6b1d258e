"""Landmark distance errors (mm) of a fitted shape against its reference landmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd


def landmark_errors(predicted: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Euclidean errors (mm) per structure between two landmark tables.

    Both tables have columns ``index``, ``x``, ``y``, ``z`` (mm) and optionally ``structure``;
    landmarks are matched on (structure, index). Returns one row per structure plus ``all``:
    ``n``, ``mean_mm``, ``median_mm``, ``p95_mm``, ``max_mm``, ``rms_mm``. A landmark present in
    only one table is an error (ValueError naming the count), not silently dropped.
    """
    key = ["structure", "index"] if "structure" in predicted and "structure" in reference else ["index"]
    merged = predicted.merge(reference, on=key, how="outer", suffixes=("_p", "_r"), indicator=True)
    unmatched = merged["_merge"] != "both"
    if unmatched.any():
        raise ValueError(f"{int(unmatched.sum())} landmarks are in only one of the two tables (matched on {key})")
    d = np.sqrt(sum((merged[f"{a}_p"] - merged[f"{a}_r"]) ** 2 for a in "xyz"))
    merged["error"] = d
    groups = list(merged.groupby("structure", sort=False)) if "structure" in merged else []
    rows = []
    for name, part in [*groups, ("all", merged)]:
        e = part["error"].to_numpy(dtype=float)
        rows.append({"structure": name, "n": e.size, "mean_mm": e.mean(), "median_mm": np.median(e),
                     "p95_mm": np.percentile(e, 95), "max_mm": e.max(), "rms_mm": np.sqrt(np.mean(e ** 2))})
    return pd.DataFrame(rows)

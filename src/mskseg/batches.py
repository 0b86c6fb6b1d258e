"""Subjects in batches, and per-subject records gathered in two levels (batch tables, then dataset tables).

A batch is the unit of one cluster job for the per-subject chains (preprocessing, registration and
landmarks, evaluation): the rule that gathers a batch's records is in the same ``group:`` as the
per-subject rules, so Snakemake submits the batch's jobs and their gathering as one job. The
dataset-wide tables are then made from the batch tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

#: batch names in file names and wildcards: digits, at least three
BATCH_PATTERN = r"[0-9][0-9][0-9]+"


def batches(subjects: Sequence[str], size: int) -> dict[str, list[str]]:
    """Consecutive runs of ``size`` subjects in the given order, named ``000``, ``001``, ...

    >>> batches(["a", "b", "c"], 2)
    {'000': ['a', 'b'], '001': ['c']}
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_subjects must be a positive integer, got {size!r}")
    if len(set(subjects)) != len(subjects):
        raise ValueError("subjects are listed more than once")
    n = (len(subjects) + size - 1) // size
    width = max(3, len(str(n - 1)))
    return {f"{i:0{width}d}": list(subjects[i * size:(i + 1) * size]) for i in range(n)}


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings become dotted columns; lists and other containers are kept as JSON text.

    >>> flatten({"a": 1, "b": {"c": [1, 2], "d": None}})
    {'a': 1, 'b.c': '[1, 2]', 'b.d': None}
    """
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value, default=float)
        else:
            out[name] = value
    return out


def records_table(records: Sequence[Mapping[str, Any]], subjects: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per record (flattened). With ``subjects`` (one per record) a leading ``subject``
    column is set from them; a record's own ``subject`` must agree."""
    rows = [flatten(r) for r in records]
    if subjects is not None:
        if len(subjects) != len(records):
            raise ValueError(f"{len(records)} records for {len(subjects)} subjects")
        for row, subject in zip(rows, subjects):
            if "subject" in row and str(row["subject"]) != str(subject):
                raise ValueError(f"record of subject {row['subject']!r} listed as {subject!r}")
            row.pop("subject", None)
        rows = [{"subject": s, **row} for s, row in zip(subjects, rows)]
    return pd.DataFrame(rows)


def gather(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Batch tables stacked in order; columns that only some batches have are kept (empty elsewhere)."""
    tables = [t for t in tables if len(t.columns)]
    if not tables:
        return pd.DataFrame()
    return pd.concat(tables, ignore_index=True, sort=False)


__all__ = ["BATCH_PATTERN", "batches", "flatten", "gather", "records_table"]

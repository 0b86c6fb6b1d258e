"""Tables (TSV, or CSV by the ``.csv`` ending) and JSON records, read with one rule and written atomically.

The one dtype rule of :func:`read_table`: identifier columns (:data:`TEXT_COLUMNS`) are always text,
even when their values look like numbers (subject ``9001104``, fold ``0``); every other column is what
pandas infers (numbers, ``True``/``False``, text); an empty cell is ``""`` in a text column and NaN in a
numeric one. Nothing else (``NA``, ``null``, ``None``) is read as missing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mskseg.io.atomic import atomic_path, write_text

#: columns that hold identifiers or names and are never parsed as numbers
TEXT_COLUMNS = ("subject", "patient", "structure", "check", "status", "role", "method", "fold", "split", "dataset",
                "bone", "view", "series", "surface_flag", "gap_flag")


def _sep(path: Path) -> str:
    return "," if path.suffix.lower() == ".csv" else "\t"


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a TSV/CSV table under the module's one dtype rule."""
    p = Path(path)
    header = pd.read_csv(p, sep=_sep(p), nrows=0).columns
    frame = pd.read_csv(p, sep=_sep(p), dtype={c: str for c in header if c in TEXT_COLUMNS},
                        keep_default_na=False, na_values=[""])
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].fillna("")
    return frame


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a table atomically (TSV, or CSV for a ``.csv`` ending)."""
    p = Path(path)
    with atomic_path(p) as tmp:
        frame.to_csv(tmp, sep=_sep(p), index=False)


def read_tables(paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Several tables stacked in order (:func:`read_table` each)."""
    return pd.concat([read_table(p) for p in paths], ignore_index=True)


def read_json(path: str | os.PathLike[str]) -> Any:
    """A JSON file (a record of a rule), read as UTF-8."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_json(path: str | os.PathLike[str], value: Any, *, sort_keys: bool = False) -> None:
    """Write ``value`` as indented JSON, atomically; numpy scalars become floats."""
    write_text(path, json.dumps(value, indent=2, sort_keys=sort_keys, default=float))


# ---- records gathered into tables ----------------------------------------------------------------
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
        for row, subject in zip(rows, subjects, strict=True):
            if "subject" in row and str(row["subject"]) != str(subject):
                raise ValueError(f"record of subject {row['subject']!r} listed as {subject!r}")
            row.pop("subject", None)
        rows = [{"subject": s, **row} for s, row in zip(subjects, rows, strict=True)]
    return pd.DataFrame(rows)


def gather(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Batch tables stacked in order; columns that only some batches have are kept (empty elsewhere)."""
    tables = [t for t in tables if len(t.columns)]
    if not tables:
        return pd.DataFrame()
    return pd.concat(tables, ignore_index=True, sort=False)


__all__ = ["TEXT_COLUMNS", "flatten", "gather", "read_json", "read_table", "read_tables", "records_table",
           "write_json", "write_table"]

"""Tables (TSV/CSV by file ending), written atomically; id columns always read as text."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mskseg.io.atomic import atomic_path

#: columns that hold identifiers and must never be parsed as numbers
ID_COLUMNS = ("subject", "patient", "structure", "check", "status", "role")


def _sep(path: Path) -> str:
    return "," if path.suffix.lower() == ".csv" else "\t"


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a TSV/CSV table; empty cells stay empty strings, id columns stay text."""
    p = Path(path)
    header = pd.read_csv(p, sep=_sep(p), nrows=0).columns
    dtypes = {c: str for c in header if c in ID_COLUMNS}
    return pd.read_csv(p, sep=_sep(p), dtype=dtypes, keep_default_na=False)


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a table atomically (TSV, or CSV for a ``.csv`` ending)."""
    p = Path(path)
    with atomic_path(p) as tmp:
        frame.to_csv(tmp, sep=_sep(p), index=False)


def read_numeric_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a TSV/CSV table of numbers: empty cells are NaN, id columns (and ``method``, ``fold``) text."""
    p = Path(path)
    header = pd.read_csv(p, sep=_sep(p), nrows=0).columns
    ids = set(ID_COLUMNS) | {"method", "fold", "split", "dataset", "surface_flag", "gap_flag"}
    return pd.read_csv(p, sep=_sep(p), dtype={c: str for c in header if c in ids})

"""A user's split file, validated against the subjects that passed QC."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from mskseg.splits.common import (
    ROLES,
    SPLIT_COLUMNS,
    SplitError,
    _finish,
    _listing,
    _prepare,
    check_splits,
)

# ----------------------------------------------------------------------------- fixed files


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab", ".txt"):
        sep = "\t"
    elif suffix == ".csv":
        sep = ","
    else:
        raise SplitError(f"split file {str(path)!r}: unknown extension {suffix!r} (use .tsv or .csv)")
    if not path.is_file():
        raise SplitError(f"split file {str(path)!r} does not exist")
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, comment=None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise SplitError(f"split file {str(path)!r} cannot be read: {err}") from err
    table.columns = [str(c).strip().lower() for c in table.columns]
    return table


def read_fixed(
    path: str | Path,
    subjects: pd.DataFrame,
    excluded: Iterable[str] = frozenset(),
) -> pd.DataFrame:
    """Read and validate a user's split file.

    The file (tab-separated for ``.tsv``/``.tab``/``.txt``, comma-separated for ``.csv``)
    has columns ``split`` (integers ``0 .. n-1``), ``subject`` and ``role`` (one of
    :data:`ROLES`, case-insensitive); further columns are ignored. Patients are taken from
    ``subjects``.

    Parameters
    ----------
    path
        The split file.
    subjects
        The subjects table (``subject``, optionally ``patient``).
    excluded
        Subject ids excluded e.g. by quality control: file rows naming them are dropped
        when they are not in ``subjects``, and they may be missing from the file.

    Returns
    -------
    pandas.DataFrame
        Columns ``split``, ``subject``, ``patient``, ``role`` (see module docstring).

    Raises
    ------
    SplitError
        Naming the file and the offending row, subject or patient when a column is
        missing, a split number or role is invalid, a subject is unknown, missing from a
        split or listed twice in one, a patient straddles roles, or a split has no
        training or no test subject.
    """
    path = Path(path)
    where = f"split file {str(path)!r}"
    table = _prepare(subjects)
    patient_of = dict(zip(table["subject"], table["patient"], strict=True))
    excluded = {str(s).strip() for s in excluded}

    raw = _read_table(path)
    missing_cols = [c for c in ("split", "subject", "role") if c not in raw.columns]
    if missing_cols:
        raise SplitError(
            f"{where} lacks column(s) {_listing(missing_cols)} (has {_listing(raw.columns, 20)})"
        )
    raw = raw[["split", "subject", "role"]].apply(lambda col: col.str.strip())
    line = pd.Series(np.arange(len(raw)) + 2, index=raw.index)  # 1-based, after the header
    blank = (raw == "").all(axis=1)
    raw, line = raw[~blank], line[~blank]

    for column in ("split", "subject", "role"):
        empty = raw[column] == ""
        if empty.any():
            raise SplitError(f"{where}: empty {column!r} on line(s) {_listing(line[empty])}")

    splits = pd.to_numeric(raw["split"], errors="coerce")
    bad = splits.isna() | (splits < 0) | (splits != np.floor(splits))
    if bad.any():
        first = bad.idxmax()
        raise SplitError(
            f"{where}, line {line[first]}: split must be a non-negative integer, "
            f"got {raw.loc[first, 'split']!r}"
        )
    raw = raw.assign(split=splits.astype("int64"), role=raw["role"].str.lower())
    numbers = sorted(raw["split"].unique())
    if numbers != list(range(len(numbers))):
        raise SplitError(
            f"{where}: splits must be numbered 0 .. n-1 without gaps, got {_listing(numbers, 20)}"
        )

    bad_role = ~raw["role"].isin(ROLES)
    if bad_role.any():
        first = bad_role.idxmax()
        raise SplitError(
            f"{where}, line {line[first]}: invalid role {raw.loc[first, 'role']!r} "
            f"for subject {raw.loc[first, 'subject']!r} (roles: {', '.join(ROLES)})"
        )

    known = raw["subject"].isin(patient_of)
    unknown = raw.loc[~known, "subject"]
    not_excused = sorted(set(unknown[~unknown.isin(excluded)]))
    if not_excused:
        raise SplitError(
            f"{where} names subject(s) not in the subjects table: {_listing(not_excused)}"
        )
    raw, line = raw[known], line[known]

    dup = raw.duplicated(["split", "subject"], keep="first")
    if dup.any():
        first = dup.idxmax()
        raise SplitError(
            f"{where}, line {line[first]}: subject {raw.loc[first, 'subject']!r} "
            f"appears more than once in split {raw.loc[first, 'split']}"
        )

    required = set(patient_of) - excluded
    for split in numbers:
        present = set(raw.loc[raw["split"] == split, "subject"])
        absent = sorted(required - present)
        if absent:
            raise SplitError(
                f"{where}: split {split} lacks {len(absent)} subject(s): {_listing(absent)}"
            )

    out = raw.assign(patient=raw["subject"].map(patient_of))
    out = _finish(list(out[list(SPLIT_COLUMNS)].itertuples(index=False, name=None)))
    try:
        check_splits(out)
    except SplitError as err:
        raise SplitError(f"{where}: {err}") from None
    for split in numbers:
        roles = set(out.loc[out["split"] == split, "role"])
        for needed in ("train", "test"):
            if needed not in roles:
                raise SplitError(f"{where}: split {split} has no {needed!r} subject")
    return out


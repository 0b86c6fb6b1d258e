"""Shared parts of the split methods: constants, input checks, output table, validation."""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Hashable, Iterable
from typing import Any

import pandas as pd

#: the roles a subject can have in a split, in output order
ROLES: tuple[str, ...] = ("train", "val", "test")

#: columns of a split table, in order
SPLIT_COLUMNS: tuple[str, ...] = ("split", "subject", "patient", "role")

#: splitting methods understood by :func:`make_splits`
METHODS: tuple[str, ...] = ("kfold", "loo", "fixed", "holdout")

#: defaults of the :func:`make_splits` configuration
DEFAULT_CONFIG: dict[str, Any] = {
    "method": "kfold",
    "k": 5,
    "n_val_folds": 1,
    "stratify": None,
    "seed": 0,
    "n_val": 1,
    "file": None,
    "fractions": [60, 14, 14],
}

#: how many offending ids an error message lists before eliding the rest
_MAX_LISTED = 5

_ROLE_ORDER = {role: i for i, role in enumerate(ROLES)}


class SplitError(ValueError):
    """Invalid subjects table, split configuration or split file."""


# ----------------------------------------------------------------------------- helpers


def _listing(items: Iterable[Any], limit: int = _MAX_LISTED) -> str:
    """``'a', 'b', 'c' and 4 more`` for error messages."""
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:limit])
    if len(items) > limit:
        shown += f" and {len(items) - limit} more"
    return shown


def _is_missing(value: Any) -> bool:
    """True for ``None``, NaN/NaT/NA and empty or blank strings."""
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-like values
        return False


def _sorted_values(values: Iterable[Hashable]) -> list[Hashable]:
    """Sort values naturally where they compare, else by (type name, text)."""
    values = list(values)
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=lambda v: (type(v).__name__, str(v)))


def _as_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int ``>= minimum`` or a :class:`SplitError` naming ``name``."""
    if isinstance(value, bool):
        raise SplitError(f"{name} must be an integer, got {value!r}")
    try:
        as_int = operator.index(value)
    except TypeError:
        raise SplitError(f"{name} must be an integer, got {value!r}") from None
    if as_int < minimum:
        raise SplitError(f"{name} must be >= {minimum}, got {as_int}")
    return int(as_int)


def _prepare(subjects: pd.DataFrame, stratify: str | None = None) -> pd.DataFrame:
    """Validate ``subjects``; return columns ``subject``, ``patient`` (str) [+ ``stratum``].

    Rows are sorted by subject so that the result does not depend on the input row order.
    """
    if not isinstance(subjects, pd.DataFrame):
        raise SplitError(f"subjects must be a pandas DataFrame, got {type(subjects).__name__}")
    if "subject" not in subjects.columns:
        raise SplitError(
            f"the subjects table has no 'subject' column (columns: {_listing(subjects.columns, 20)})"
        )
    missing_subject = [i for i, v in subjects["subject"].items() if _is_missing(v)]
    if missing_subject:
        raise SplitError(f"the 'subject' column is empty in row(s) {_listing(missing_subject)}")
    out = pd.DataFrame({"subject": subjects["subject"].astype(str).str.strip().to_numpy()})
    duplicated = sorted(set(out.loc[out["subject"].duplicated(), "subject"]))
    if duplicated:
        raise SplitError(f"subject ids must be unique; duplicated: {_listing(duplicated)}")

    if "patient" in subjects.columns:
        patients = subjects["patient"].to_numpy()
        no_patient = [s for s, p in zip(out["subject"], patients, strict=True) if _is_missing(p)]
        if no_patient:
            raise SplitError(f"no patient given for subject(s) {_listing(sorted(no_patient))}")
        out["patient"] = pd.Series(patients).astype(str).str.strip().to_numpy()
    else:
        out["patient"] = out["subject"]

    if stratify is not None:
        if stratify not in subjects.columns:
            raise SplitError(
                f"stratification column {stratify!r} is not in the subjects table "
                f"(columns: {_listing(subjects.columns, 20)})"
            )
        out["stratum"] = subjects[stratify].to_numpy()
    return out.sort_values("subject", kind="stable").reset_index(drop=True)


class _Missing:
    """Sentinel stratum of missing values; sorts after every other stratum."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _stratum_key(value: Hashable) -> Hashable:
    return _MISSING if _is_missing(value) else value


def _order_strata(values: Iterable[Hashable]) -> list[Hashable]:
    """Present values in sorted order, then the missing stratum if any."""
    values = set(values)
    has_missing = _MISSING in values
    ordered = _sorted_values(v for v in values if v is not _MISSING)
    return ordered + ([_MISSING] if has_missing else [])


def _patient_strata(table: pd.DataFrame) -> dict[str, Hashable]:
    """A patient's stratum: its most common value over its scans.

    Ties go to the smallest value; missing values count as one value of their own that
    loses ties to any present value.
    """
    strata: dict[str, Hashable] = {}
    for patient, values in table.groupby("patient", sort=True)["stratum"]:
        counts = Counter(_stratum_key(v) for v in values)
        best = max(counts.values())
        strata[patient] = _order_strata(v for v, c in counts.items() if c == best)[0]
    return strata


def _finish(rows: list[tuple[int, str, str, str]]) -> pd.DataFrame:
    """Rows ``(split, subject, patient, role)`` -> sorted split table."""
    out = pd.DataFrame(rows, columns=list(SPLIT_COLUMNS))
    out["split"] = out["split"].astype("int64")
    order = out["role"].map(_ROLE_ORDER)
    out = (
        out.assign(_role_order=order)
        .sort_values(["split", "_role_order", "subject"], kind="stable")
        .drop(columns="_role_order")
        .reset_index(drop=True)
    )
    return out


def _check_seed(seed: Any) -> int:
    return _as_int(seed, "seed", 0)


# ----------------------------------------------------------------------------- checks


def check_splits(splits: pd.DataFrame) -> None:
    """Validate a split table.

    Raises
    ------
    SplitError
        If a column of :data:`SPLIT_COLUMNS` is missing, a role is invalid, a subject
        appears twice in one split or a patient's scans have different roles in one split.
    """
    missing = [c for c in SPLIT_COLUMNS if c not in splits.columns]
    if missing:
        raise SplitError(f"split table lacks column(s) {_listing(missing)}")
    bad_role = ~splits["role"].isin(ROLES)
    if bad_role.any():
        row = splits[bad_role].iloc[0]
        raise SplitError(
            f"invalid role {row['role']!r} for subject {row['subject']!r} in split {row['split']}"
        )
    dup = splits.duplicated(["split", "subject"])
    if dup.any():
        row = splits[dup].iloc[0]
        raise SplitError(f"subject {row['subject']!r} appears more than once in split {row['split']}")
    n_roles = splits.groupby(["split", "patient"])["role"].nunique()
    straddling = n_roles[n_roles > 1]
    if len(straddling):
        split, patient = straddling.index[0]
        rows = splits[(splits["split"] == split) & (splits["patient"] == patient)]
        detail = ", ".join(f"{s}: {r}" for s, r in zip(rows["subject"], rows["role"], strict=True))
        raise SplitError(
            f"patient {patient!r} straddles roles in split {split} ({detail}); "
            "all scans of a patient must share a role"
        )


def summarise(splits: pd.DataFrame) -> pd.DataFrame:
    """Number of subjects and patients per split and role.

    Returns
    -------
    pandas.DataFrame
        Columns ``split``, ``role``, ``n_subjects``, ``n_patients``; one row per split and
        role of :data:`ROLES` (zeros included), sorted by split then role order.
    """
    rows = []
    for split in sorted(splits["split"].unique()):
        part = splits[splits["split"] == split]
        for role in ROLES:
            members = part[part["role"] == role]
            rows.append((int(split), role, len(members), members["patient"].nunique()))
    return pd.DataFrame(rows, columns=["split", "role", "n_subjects", "n_patients"])

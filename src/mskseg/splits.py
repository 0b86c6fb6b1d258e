"""Deterministic, patient-level data splits (k-fold, leave-one-patient-out, fixed files).

Input is a table of subjects, one row per scan, with columns

* ``subject``: unique id of the scan (required);
* ``patient``: the person the scan belongs to; several scans (e.g. time points) may share
  a patient. Without the column every subject is its own patient;
* optionally a stratification column (e.g. ``kl_grade``) that may hold missing values.

Every splitting function returns a *long* table with columns ``split`` (int,
``0 .. n_splits - 1``), ``subject``, ``patient`` and ``role`` (one of :data:`ROLES`),
sorted by split, then role (in the order of :data:`ROLES`), then subject. Every subject
appears exactly once per split and the scans of one patient always share a role within a
split, so no patient leaks from training into validation or test.

Subject and patient ids are handled as strings (they name files), so ``1`` and ``"1"``
are the same id. Output depends only on the set of rows and the seed, never on row order:
patients are sorted before being shuffled with ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: the roles a subject can have in a split, in output order
ROLES: tuple[str, ...] = ("train", "val", "test")

#: columns of a split table, in order
SPLIT_COLUMNS: tuple[str, ...] = ("split", "subject", "patient", "role")

#: splitting methods understood by :func:`make_splits`
METHODS: tuple[str, ...] = ("kfold", "loo", "fixed")

#: defaults of the :func:`make_splits` configuration
DEFAULT_CONFIG: dict[str, Any] = {
    "method": "kfold",
    "k": 5,
    "n_val_folds": 1,
    "stratify": None,
    "seed": 0,
    "n_val": 1,
    "file": None,
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
        no_patient = [s for s, p in zip(out["subject"], patients) if _is_missing(p)]
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


# ----------------------------------------------------------------------------- k-fold


def assign_folds(
    subjects: pd.DataFrame, k: int, *, stratify: str | None = None, seed: int = 0
) -> dict[str, int]:
    """Deal patients into ``k`` folds, balanced by scan count (and stratum).

    Patients are grouped by stratum (see :func:`kfold`); strata are handled in sorted order
    (missing last), and within each the patients, sorted by id, are shuffled with
    ``numpy.random.default_rng(seed)`` and assigned one by one to the fold with the fewest
    scans of that stratum (ties: fewest scans overall, then lowest fold index).

    Parameters
    ----------
    subjects
        Table with ``subject`` and optionally ``patient`` and the ``stratify`` column.
    k
        Number of folds, ``2 <= k <= number of patients``.
    stratify
        Column to stratify by, or ``None``.
    seed
        Seed of the shuffle.

    Returns
    -------
    dict
        Patient id -> fold index.

    Raises
    ------
    SplitError
        On invalid input or fewer than ``k`` patients.
    """
    k = _as_int(k, "k", 2)
    seed = _check_seed(seed)
    table = _prepare(subjects, stratify)
    n_patients = table["patient"].nunique()
    if n_patients < k:
        raise SplitError(
            f"k={k} folds need at least {k} patients, but there are only {n_patients} "
            f"({len(table)} subjects)"
        )
    scans = table.groupby("patient", sort=True).size()
    if stratify is None:
        strata = {p: None for p in scans.index}
    else:
        strata = _patient_strata(table)
    by_stratum: dict[Hashable, list[str]] = {}
    for patient in scans.index:  # sorted patient ids
        by_stratum.setdefault(strata[patient], []).append(patient)

    rng = np.random.default_rng(seed)
    total = np.zeros(k, dtype=np.int64)
    folds: dict[str, int] = {}
    for stratum in _order_strata(by_stratum) if stratify is not None else [None]:
        members = by_stratum[stratum]
        order = rng.permutation(len(members))
        in_stratum = np.zeros(k, dtype=np.int64)
        for i in order:
            patient = members[i]
            # lexicographic minimum of (stratum scans, total scans, index)
            fold = min(range(k), key=lambda f: (in_stratum[f], total[f], f))
            folds[patient] = fold
            n = int(scans[patient])
            in_stratum[fold] += n
            total[fold] += n
    return folds


def kfold(
    subjects: pd.DataFrame,
    k: int,
    *,
    n_val_folds: int = 1,
    stratify: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Patient-level k-fold cross-validation splits.

    Patients are dealt into ``k`` folds by :func:`assign_folds`. In split ``f`` the test set
    is fold ``f``, the validation set the ``n_val_folds`` folds after it (cyclically) and
    the training set the rest; e.g. ``k=10, n_val_folds=1`` gives 8 training, 1 validation
    and 1 test fold per split, and every subject is tested exactly once over the ``k``
    splits.

    With ``stratify`` a patient's stratum is the most common value of that column over its
    scans (ties: the smallest value; missing or empty values form a stratum of their own),
    and every fold gets a balanced share of each stratum.

    Parameters
    ----------
    subjects
        One row per scan: ``subject`` (unique), optionally ``patient`` and the
        ``stratify`` column.
    k
        Number of folds/splits; ``2 + n_val_folds <= k <= number of patients``.
    n_val_folds
        Validation folds per split (0 for no validation set).
    stratify
        Name of the stratification column, or ``None``.
    seed
        Seed of the patient shuffle.

    Returns
    -------
    pandas.DataFrame
        Columns ``split``, ``subject``, ``patient``, ``role`` (see module docstring).

    Raises
    ------
    SplitError
        On invalid input, invalid ``k``/``n_val_folds`` or too few patients.
    """
    n_val_folds = _as_int(n_val_folds, "n_val_folds", 0)
    k = _as_int(k, "k", 2)
    if k < 2 + n_val_folds:
        raise SplitError(
            f"k={k} folds leave no training fold with n_val_folds={n_val_folds} "
            f"(need k >= {2 + n_val_folds})"
        )
    folds = assign_folds(subjects, k, stratify=stratify, seed=seed)
    table = _prepare(subjects)
    rows: list[tuple[int, str, str, str]] = []
    for split in range(k):
        val_folds = {(split + 1 + j) % k for j in range(n_val_folds)}
        for subject, patient in zip(table["subject"], table["patient"]):
            fold = folds[patient]
            role = "test" if fold == split else "val" if fold in val_folds else "train"
            rows.append((split, subject, patient, role))
    return _finish(rows)


# ----------------------------------------------------------------------------- leave one out


def leave_one_out(subjects: pd.DataFrame, *, n_val: int = 1, seed: int = 0) -> pd.DataFrame:
    """Leave-one-patient-out splits: one split per patient.

    Split ``i`` tests the ``i``-th patient in sorted id order. Its validation set is the
    ``n_val`` patients that follow the test patient (cyclically) in a permutation of the
    sorted patients drawn with ``numpy.random.default_rng(seed)``; the rest train.

    Parameters
    ----------
    subjects
        One row per scan: ``subject`` (unique) and optionally ``patient``.
    n_val
        Validation patients per split (0 for none).
    seed
        Seed of the permutation that picks the validation patients.

    Returns
    -------
    pandas.DataFrame
        Columns ``split``, ``subject``, ``patient``, ``role`` (see module docstring).

    Raises
    ------
    SplitError
        On invalid input or fewer than ``n_val + 2`` patients.
    """
    n_val = _as_int(n_val, "n_val", 0)
    seed = _check_seed(seed)
    table = _prepare(subjects)
    patients = sorted(table["patient"].unique())
    needed = n_val + 2
    if len(patients) < needed:
        raise SplitError(
            f"leave-one-out with n_val={n_val} needs at least {needed} patients "
            f"(1 test, {n_val} validation, 1 training), but there are only {len(patients)}"
        )
    permuted = [patients[i] for i in np.random.default_rng(seed).permutation(len(patients))]
    position = {p: i for i, p in enumerate(permuted)}
    n = len(patients)
    rows: list[tuple[int, str, str, str]] = []
    for split, test_patient in enumerate(patients):
        start = position[test_patient]
        val = {permuted[(start + 1 + j) % n] for j in range(n_val)}
        for subject, patient in zip(table["subject"], table["patient"]):
            role = "test" if patient == test_patient else "val" if patient in val else "train"
            rows.append((split, subject, patient, role))
    return _finish(rows)


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
    patient_of = dict(zip(table["subject"], table["patient"]))
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


# ----------------------------------------------------------------------------- dispatch


def make_splits(
    subjects: pd.DataFrame,
    config: Mapping[str, Any],
    *,
    fixed_base: Path | None = None,
    excluded: Iterable[str] = frozenset(),
) -> pd.DataFrame:
    """Make splits as configured.

    Parameters
    ----------
    subjects
        One row per scan (see module docstring).
    config
        ``method`` (``"kfold"``, ``"loo"`` or ``"fixed"``; default ``"kfold"``) and its
        parameters: ``k`` (5), ``n_val_folds`` (1), ``stratify`` (None), ``seed`` (0) for
        k-fold; ``n_val`` (1), ``seed`` for leave-one-out; ``file`` for fixed. Missing or
        ``None`` values take these defaults; unknown keys are an error (typos would
        otherwise pass silently).
    fixed_base
        Directory a relative ``file`` is resolved against (default: the working
        directory).
    excluded
        Subjects excluded by quality control (see :func:`read_fixed`); only used by
        ``"fixed"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``split``, ``subject``, ``patient``, ``role``.

    Raises
    ------
    SplitError
        On an unknown method or key, a fixed method without ``file``, or anything the
        chosen method rejects.
    """
    if not isinstance(config, Mapping):
        raise SplitError(f"split config must be a mapping, got {type(config).__name__}")
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise SplitError(
            f"unknown split config key(s) {_listing(unknown)} (allowed: {', '.join(DEFAULT_CONFIG)})"
        )
    cfg = {key: (default if config.get(key) is None else config[key])
           for key, default in DEFAULT_CONFIG.items()}
    method = cfg["method"]
    if method == "kfold":
        return kfold(subjects, cfg["k"], n_val_folds=cfg["n_val_folds"],
                     stratify=cfg["stratify"], seed=cfg["seed"])
    if method == "loo":
        return leave_one_out(subjects, n_val=cfg["n_val"], seed=cfg["seed"])
    if method == "fixed":
        if not cfg["file"]:
            raise SplitError("split method 'fixed' needs a 'file'")
        path = Path(cfg["file"])
        if fixed_base is not None and not path.is_absolute():
            path = Path(fixed_base) / path
        return read_fixed(path, subjects, excluded)
    raise SplitError(f"unknown split method {method!r} (allowed: {', '.join(METHODS)})")


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
        detail = ", ".join(f"{s}: {r}" for s, r in zip(rows["subject"], rows["role"]))
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

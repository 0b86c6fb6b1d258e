"""K-fold (optionally stratified) and leave-one-patient-out splits, patients kept whole."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd

from mskseg.splits.common import (
    SplitError,
    _as_int,
    _check_seed,
    _finish,
    _order_strata,
    _patient_strata,
    _prepare,
)

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
    strata = dict.fromkeys(scans.index) if stratify is None else _patient_strata(table)
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
        for subject, patient in zip(table["subject"], table["patient"], strict=True):
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
        for subject, patient in zip(table["subject"], table["patient"], strict=True):
            role = "test" if patient == test_patient else "val" if patient in val else "train"
            rows.append((split, subject, patient, role))
    return _finish(rows)


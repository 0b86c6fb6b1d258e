"""Nested, balanced training subsets (learning curves over the amount of training data).

Desai et al. subsampled their training set into sub-training sets of 5, 15, 30 and 60 patients
with similar distributions of KL grades. Here the subsets are the prefixes of one seeded order
of the patients (:func:`patient_order`), so for one seed and table a smaller subset is always
part of a larger one and learning curves are monotone in the data, and every prefix is
balanced by a covariate (e.g. ``kl_grade``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable
from fractions import Fraction

import numpy as np
import pandas as pd

from mskseg.splits.common import (
    SplitError,
    _check_seed,
    _is_missing,
    _listing,
    _order_strata,
    _prepare,
)


def _patient_values(subjects: pd.DataFrame, balance_by: str | None) -> tuple[pd.DataFrame, dict[str, Hashable]]:
    """The prepared table (``subject``, ``patient`` [, ``stratum``]) and each patient's stratum."""
    if balance_by is not None and balance_by not in getattr(subjects, "columns", ()):
        columns = _listing(getattr(subjects, "columns", ()), 20)
        raise SplitError(f"balance column {balance_by!r} is not in the subjects table (columns: {columns})")
    table = _prepare(subjects, balance_by)
    if balance_by is None:
        return table, dict.fromkeys(table["patient"])
    missing = [s for s, v in zip(table["subject"], table["stratum"], strict=True) if _is_missing(v)]
    if missing:
        raise SplitError(f"balance column {balance_by!r} is empty for subject(s) {_listing(missing)}")
    strata: dict[str, Hashable] = {}
    for patient, values in table.groupby("patient", sort=True)["stratum"]:
        distinct = _order_strata(values)
        if len(distinct) > 1:
            raise SplitError(
                f"balance column {balance_by!r} must be constant within a patient; patient {patient!r} "
                f"has {_listing(distinct)}"
            )
        strata[patient] = distinct[0]
    return table, strata


def patient_order(subjects: pd.DataFrame, *, seed: int, balance_by: str | None = None) -> list[str]:
    """A seeded order of the patients whose every prefix is balanced by ``balance_by``.

    The patients of each stratum (the value of ``balance_by``; strata sorted), sorted by id,
    are shuffled with ``numpy.random.default_rng(seed)``, and the strata are then interleaved
    by the quota method of apportionment (Balinski & Young 1975): position ``n`` (1-based)
    goes to the stratum with the largest ``m_s / (c_s + 1)`` among those with ``c_s < n *
    m_s / N``, where ``m_s`` is the stratum's size, ``c_s`` how many of its patients precede
    position ``n`` and ``N`` the number of patients (ties go to the stratum earlier in a
    seeded random ranking of the strata, drawn after the shuffles); the stratum contributes
    its next shuffled patient. Every prefix of length ``n`` then holds between
    ``floor(n * m_s / N)`` and ``ceil(n * m_s / N)`` patients of every stratum, i.e. each
    stratum's count is within 1 of proportional. Without ``balance_by`` the order is the
    shuffle of all patients.

    The order depends only on the set of rows and the seed, not on their order.

    Parameters
    ----------
    subjects
        One row per scan: ``subject`` (unique), optionally ``patient`` (default: the subject
        itself) and the ``balance_by`` column.
    seed
        Seed of the shuffles.
    balance_by
        Column to balance by (e.g. ``kl_grade``), or ``None``. It must be present, have no
        missing values and be constant within each patient.

    Returns
    -------
    list of str
        Every patient id once.

    Raises
    ------
    SplitError
        (a ``ValueError``) On an invalid table or ``balance_by`` column.
    """
    seed = _check_seed(seed)
    _, strata = _patient_values(subjects, balance_by)
    by_stratum: dict[Hashable, list[str]] = {}
    for patient in sorted(strata):
        by_stratum.setdefault(strata[patient], []).append(patient)
    order = _order_strata(by_stratum) if balance_by is not None else [None]

    rng = np.random.default_rng(seed)
    shuffled = [[by_stratum[s][i] for i in rng.permutation(len(by_stratum[s]))] for s in order]
    rank = [int(r) for r in rng.permutation(len(order))]  # tie-break: lower rank first
    sizes = [len(members) for members in shuffled]
    total = sum(sizes)
    taken = [0] * len(order)
    result: list[str] = []
    for n in range(1, total + 1):
        eligible = [s for s in range(len(order)) if taken[s] * total < n * sizes[s]]
        best = max(eligible, key=lambda s: (Fraction(sizes[s], taken[s] + 1), -rank[s]))
        result.append(shuffled[best][taken[best]])
        taken[best] += 1
    return result


def _subset_size(size: int | float, n_patients: int) -> int:
    """Number of patients for ``size``: an int count ``>= 1`` or a float fraction in (0, 1]."""
    if isinstance(size, bool) or not isinstance(size, numbers.Real):
        raise SplitError(f"subset size must be an int >= 1 or a fraction in (0, 1], got {size!r}")
    if isinstance(size, numbers.Integral):
        n = int(size)
        if n < 1:
            raise SplitError(f"subset size {size!r} must be >= 1 (or a fraction in (0, 1])")
    else:
        if not (math.isfinite(size) and 0 < size <= 1):
            raise SplitError(
                f"subset size {size!r} is a fraction (float) and must be in (0, 1]; pass an int for a "
                "number of patients"
            )
        n = max(1, math.floor(size * n_patients + 0.5))
    if n > n_patients:
        raise SplitError(f"subset size {size!r} exceeds the number of patients ({n_patients})")
    return n


def training_subset(
    subjects: pd.DataFrame, size: int | float, *, seed: int, balance_by: str | None = None
) -> list[str]:
    """The subjects of the first ``size`` patients of :func:`patient_order`.

    Subsets are nested: for the same table, seed and ``balance_by``, the subset of a smaller
    size is part of the subset of a larger one. With ``balance_by`` each subset holds every
    stratum within 1 patient of its proportional share (see :func:`patient_order`).

    Parameters
    ----------
    subjects
        One row per scan: ``subject`` (unique), optionally ``patient`` and ``balance_by``.
    size
        Number of patients (an int ``>= 1``; ``bool`` is rejected) or a fraction of the
        patients (a float in (0, 1]; ``round(size * n_patients)``, halves rounded up, at
        least 1).
    seed
        Seed of :func:`patient_order`.
    balance_by
        Column to balance by, or ``None``.

    Returns
    -------
    list of str
        The chosen patients' subject ids (as strings), in the order of the table's rows.

    Raises
    ------
    SplitError
        (a ``ValueError``) On an invalid table, ``balance_by`` column or size (not positive,
        not a valid fraction, or more patients than there are).
    """
    table, strata = _patient_values(subjects, balance_by)
    n = _subset_size(size, len(strata))
    chosen = set(patient_order(subjects, seed=seed, balance_by=balance_by)[:n])
    patient_of = dict(zip(table["subject"], table["patient"], strict=True))
    in_order = subjects["subject"].astype(str).str.strip()
    return [s for s in in_order if patient_of[s] in chosen]

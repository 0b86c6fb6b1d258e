"""A single train/validation/test hold-out split by patient fractions, optionally stratified.

Modelled on the 60/14/14 patient split of Desai et al. (88 patients randomly split into disjoint
training, validation and test cohorts with approximately equal distributions of KL grades).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from mskseg.splits.common import (
    ROLES,
    SplitError,
    _as_int,
    _check_seed,
    _finish,
    _order_strata,
    _patient_strata,
    _prepare,
)

#: default ``fractions`` of :func:`holdout` (train, val, test), as in Desai et al.
DEFAULT_FRACTIONS: tuple[float, float, float] = (60, 14, 14)


def _check_fractions(fractions: Any) -> tuple[Fraction, Fraction, Fraction]:
    """Three finite numbers ``>= 0`` with train and test ``> 0``, normalised (exactly) to sum 1."""
    values: list[Any] | None = None
    if not isinstance(fractions, (str, bytes, Mapping)):
        try:
            values = list(fractions)
        except TypeError:
            values = None
    if values is None or len(values) != 3:
        raise SplitError(f"fractions must be three numbers (train, val, test), got {fractions!r}")
    fractions = values
    for value in fractions:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise SplitError(f"fractions must be finite numbers >= 0, got {list(fractions)!r}")
    train, val, test = (Fraction(int(v)) if isinstance(v, numbers.Integral) else Fraction(float(v)) for v in fractions)
    if train <= 0 or test <= 0:
        raise SplitError(
            f"fractions {list(fractions)!r}: the train and test fractions must be > 0 (val may be 0)"
        )
    total = train + val + test
    return train / total, val / total, test / total


def holdout_counts(n_patients: int, fractions: Any) -> dict[str, int]:
    """Patients per role of a hold-out split of ``n_patients`` patients.

    ``fractions`` (train, val, test) are normalised by their sum and the quotas
    ``n_patients * fraction`` rounded by largest remainders (ties in role order train, val,
    test), so the counts sum to ``n_patients``. Every role with a positive fraction then gets
    at least one patient: a role left empty by the rounding takes one patient from the
    largest role (ties in role order).

    Raises
    ------
    SplitError
        On invalid ``fractions`` or fewer patients than roles with a positive fraction.
    """
    n_patients = _as_int(n_patients, "n_patients", 0)
    shares = _check_fractions(fractions)
    needed = sum(1 for s in shares if s > 0)
    if n_patients < needed:
        raise SplitError(
            f"a hold-out split with fractions {list(fractions)!r} needs at least {needed} patients "
            f"(one per role with a positive fraction), but there are only {n_patients}"
        )
    quotas = [n_patients * s for s in shares]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(3), key=lambda r: (-(quotas[r] - counts[r]), r))
    for r in by_remainder[: n_patients - sum(counts)]:
        counts[r] += 1
    for r in range(3):
        if shares[r] > 0 and counts[r] == 0:
            donor = max(range(3), key=lambda j: (counts[j], -j))
            counts[donor] -= 1
            counts[r] += 1
    return dict(zip(ROLES, counts, strict=True))


def _controlled_rounding(sizes: list[int], totals: list[int]) -> list[list[int]]:
    """Integer table with row sums ``sizes`` and column sums ``totals``, each cell the floor or
    the ceiling of its proportional share ``sizes[s] * totals[r] / sum(sizes)``.

    Each row is first rounded by largest remainders (ties: lower column); columns that end up
    over their total then hand units to columns under theirs along shortest chains of
    single-unit moves within rows, each move from a rounded-up cell to a rounded-down cell
    with a positive remainder (preferring the row where the move loses least remainder, ties:
    lower row). Such a table always exists (Bacharach 1966), and the repair reaches one.
    Exact integer arithmetic throughout.
    """
    n = sum(sizes)
    k = len(totals)
    floors = [[m * t // n for t in totals] for m in sizes]
    rems = [[m * t % n for t in totals] for m in sizes]  # remainders, in units of 1/n
    up = [[False] * k for _ in sizes]  # cell rounded up
    for s, row in enumerate(rems):
        extra = sizes[s] - sum(floors[s])
        for r in sorted(range(k), key=lambda r: (-row[r], r))[:extra]:
            up[s][r] = True

    def column_sum(r: int) -> int:
        return sum(floors[s][r] + up[s][r] for s in range(len(sizes)))

    while True:
        excess = [column_sum(r) - totals[r] for r in range(k)]
        if not any(excess):
            break
        # edges r -> r2: the best row that can move one unit from column r to column r2
        edges: dict[tuple[int, int], int] = {}
        for r in range(k):
            for r2 in range(k):
                if r == r2:
                    continue
                rows = [s for s in range(len(sizes)) if up[s][r] and not up[s][r2] and rems[s][r2] > 0]
                if rows:
                    edges[r, r2] = min(rows, key=lambda s: (rems[s][r] - rems[s][r2], s))
        # breadth-first search from the columns over their totals to one under its total
        parent: dict[int, int | None] = {r: None for r in range(k) if excess[r] > 0}
        queue = list(parent)
        target = None
        while queue and target is None:
            r = queue.pop(0)
            for r2 in range(k):
                if (r, r2) in edges and r2 not in parent:
                    parent[r2] = r
                    if excess[r2] < 0:
                        target = r2
                        break
                    queue.append(r2)
        if target is None:  # pragma: no cover - impossible by the rounding theorem
            raise AssertionError("controlled rounding found no repair path")
        r2 = target
        while parent[r2] is not None:
            r = parent[r2]
            s = edges[r, r2]
            up[s][r], up[s][r2] = False, True
            r2 = r
    return [[floors[s][r] + up[s][r] for r in range(k)] for s in range(len(sizes))]


def holdout(
    subjects: pd.DataFrame,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    *,
    stratify: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """One patient-level train/validation/test split by fractions of the patients.

    Counting is by patients, all scans of a patient share a role. The number of patients per
    role comes from :func:`holdout_counts`: ``fractions`` (train, val, test; e.g. ``[60, 14,
    14]`` or ``[0.68, 0.16, 0.16]``) are normalised by their sum, rounded by largest remainders
    and every role with a positive fraction gets at least one patient; 88 patients with ``[60,
    14, 14]`` give exactly 60/14/14.

    With ``stratify`` a patient's stratum is, as for :func:`~mskseg.splits.kfold`, the most
    common value of that column over its scans (ties: the smallest value; missing or empty
    values form a stratum of their own). The role totals stay exactly those above, and each
    stratum of ``m`` patients gives role ``r`` either the floor or the ceiling of its
    proportional share ``m * total_r / n_patients`` (controlled rounding of the strata x roles
    table), so every role's distribution of the column approximates the whole's.

    Patients are assigned stratum by stratum (sorted, missing last; one stratum without
    ``stratify``): the stratum's patients, sorted by id, are shuffled with
    ``numpy.random.default_rng(seed)`` and the first ones train, the next validate, the rest
    test.

    Parameters
    ----------
    subjects
        One row per scan: ``subject`` (unique), optionally ``patient`` and the ``stratify``
        column.
    fractions
        Three numbers ``>= 0`` (train, val, test); train and test must be positive, val may
        be 0 (no validation set).
    stratify
        Name of the stratification column, or ``None``.
    seed
        Seed of the patient shuffle.

    Returns
    -------
    pandas.DataFrame
        Columns ``split`` (always 0), ``subject``, ``patient``, ``role`` (see
        :mod:`mskseg.splits`).

    Raises
    ------
    SplitError
        On invalid input or fractions, or too few patients.
    """
    seed = _check_seed(seed)
    _check_fractions(fractions)
    table = _prepare(subjects, stratify)
    patients = sorted(table["patient"].unique())
    counts = holdout_counts(len(patients), fractions)
    totals = [counts[role] for role in ROLES]

    strata = dict.fromkeys(patients) if stratify is None else _patient_strata(table)
    by_stratum: dict[Hashable, list[str]] = {}
    for patient in patients:  # sorted ids
        by_stratum.setdefault(strata[patient], []).append(patient)
    order = _order_strata(by_stratum) if stratify is not None else [None]
    allocation = _controlled_rounding([len(by_stratum[s]) for s in order], totals)

    rng = np.random.default_rng(seed)
    role_of: dict[str, str] = {}
    for stratum, row in zip(order, allocation, strict=True):
        members = by_stratum[stratum]
        shuffled = [members[i] for i in rng.permutation(len(members))]
        start = 0
        for role, count in zip(ROLES, row, strict=True):
            for patient in shuffled[start:start + count]:
                role_of[patient] = role
            start += count
    rows = [(0, subject, patient, role_of[patient])
            for subject, patient in zip(table["subject"], table["patient"], strict=True)]
    return _finish(rows)

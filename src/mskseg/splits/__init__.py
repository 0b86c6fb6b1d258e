"""Deterministic, patient-level data splits (k-fold, leave-one-patient-out, hold-out, fixed files)
and nested, balanced training subsets (:mod:`mskseg.splits.subsets`).

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

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mskseg.splits.common import (
    DEFAULT_CONFIG,
    METHODS,
    ROLES,
    SPLIT_COLUMNS,
    SplitError,
    _listing,
    check_splits,
    summarise,
)
from mskseg.splits.fixed import read_fixed
from mskseg.splits.folds import assign_folds, kfold, leave_one_out
from mskseg.splits.holdout import holdout, holdout_counts
from mskseg.splits.subsets import patient_order, training_subset

__all__ = ["DEFAULT_CONFIG", "METHODS", "ROLES", "SPLIT_COLUMNS", "SplitError", "assign_folds", "check_splits",
           "holdout", "holdout_counts", "kfold", "leave_one_out", "make_splits", "patient_order", "read_fixed",
           "summarise", "training_subset"]

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
        ``method`` (``"kfold"``, ``"loo"``, ``"fixed"`` or ``"holdout"``; default ``"kfold"``)
        and its parameters: ``k`` (5), ``n_val_folds`` (1), ``stratify`` (None), ``seed`` (0)
        for k-fold; ``n_val`` (1), ``seed`` for leave-one-out; ``file`` for fixed;
        ``fractions`` (``[60, 14, 14]``, train/val/test), ``stratify``, ``seed`` for a single
        hold-out split (:func:`holdout`). Keys another method uses are ignored. Missing or
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
    if method == "holdout":
        return holdout(subjects, cfg["fractions"], stratify=cfg["stratify"], seed=cfg["seed"])
    if method == "fixed":
        if not cfg["file"]:
            raise SplitError("split method 'fixed' needs a 'file'")
        path = Path(cfg["file"])
        if fixed_base is not None and not path.is_absolute():
            path = Path(fixed_base) / path
        return read_fixed(path, subjects, excluded)
    raise SplitError(f"unknown split method {method!r} (allowed: {', '.join(METHODS)})")


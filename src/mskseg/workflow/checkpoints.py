"""What the checkpoint tables say, each rule defined once: who passed QC, the splits' ids, a fold's
subjects, the fold that tests a subject.

The functions on frames serve the rule scripts and :mod:`mskseg.metrics`; :class:`CheckpointTables`
gives the workflow the same answers from the checkpoints' output files (``subjects.tsv`` of
``qc_summary``, ``splits.tsv`` of ``make_splits``), reading each file once per version.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mskseg.io.tables import read_table

ROLES = ("train", "val", "test")


def flag(column: pd.Series) -> pd.Series:
    """A True/False column as booleans, whether read as booleans or as text."""
    return column.astype(str).str.strip().str.lower() == "true"


def usable(subjects: pd.DataFrame, labelled: bool = True) -> pd.Series:
    """Which rows of QC's ``subjects.tsv`` go on: passed QC (and, with ``labelled``, have a label)."""
    keep = flag(subjects["qc_passed"])
    if labelled:
        keep &= flag(subjects["has_label"])
    return keep


def passed_subjects(subjects: pd.DataFrame, labelled: bool = True) -> list[str]:
    """The subjects of QC's ``subjects.tsv`` that go on, in its order."""
    return subjects.loc[usable(subjects, labelled), "subject"].astype(str).tolist()


def split_ids(splits: pd.DataFrame) -> list[str]:
    """The split ids of ``splits.tsv``, in natural order (``0, 1, ..., 10``)."""
    return sorted(splits["split"].astype(str).unique(), key=lambda v: (len(v), v))


def fold_subjects(splits: pd.DataFrame, fold: str, role: str) -> list[str]:
    """The subjects with ``role`` (train, val, test) in split ``fold``, in the table's order."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    rows = (splits["split"].astype(str) == str(fold)) & (splits["role"] == role)
    return splits.loc[rows, "subject"].astype(str).tolist()


def test_folds(splits: pd.DataFrame) -> dict[str, str]:
    """subject -> the split that tests it (the first, if several do), for every test subject in table order."""
    test = splits[splits["role"] == "test"]
    out: dict[str, str] = {}
    for subject, split in zip(test["subject"].astype(str), test["split"].astype(str), strict=True):
        out.setdefault(subject, split)
    return out


test_folds.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


class CheckpointTables:
    """The checkpoint tables of a run, found through Snakemake's ``checkpoints`` object.

    ``checkpoints.qc_summary.get(dataset=...)`` raises Snakemake's incomplete-checkpoint signal
    until the table exists, which makes Snakemake re-plan once it does; a file is read again
    whenever its size or modification time changes.
    """

    def __init__(self, checkpoints: Any, reader: Callable[[str], pd.DataFrame] = read_table) -> None:
        self._checkpoints = checkpoints
        self._reader = reader
        self._cache: dict[str, tuple[tuple[int, int], pd.DataFrame]] = {}

    def _read(self, path: str | os.PathLike) -> pd.DataFrame:
        key = str(path)
        st = Path(path).stat()
        stamp = (st.st_size, st.st_mtime_ns)
        hit = self._cache.get(key)
        if hit is None or hit[0] != stamp:
            hit = (stamp, self._reader(key))
            self._cache[key] = hit
        return hit[1]

    def subjects_table(self, dataset: str) -> str:
        """Path of QC's ``subjects.tsv`` of ``dataset`` (a checkpoint)."""
        return str(self._checkpoints.qc_summary.get(dataset=dataset).output.subjects)

    def splits_table(self, dataset: str) -> str:
        """Path of ``splits.tsv`` of ``dataset`` (a checkpoint)."""
        return str(self._checkpoints.make_splits.get(dataset=dataset).output.splits)

    def passed(self, dataset: str, labelled: bool = True) -> list[str]:
        """Subjects that passed QC (and have a label)."""
        return passed_subjects(self._read(self.subjects_table(dataset)), labelled)

    def folds(self, dataset: str) -> list[str]:
        """The dataset's split ids."""
        return split_ids(self._read(self.splits_table(dataset)))

    def fold_subjects(self, dataset: str, fold: str, role: str) -> list[str]:
        """Subjects with ``role`` in split ``fold``."""
        return fold_subjects(self._read(self.splits_table(dataset)), fold, role)

    def evaluated(self, dataset: str) -> list[str]:
        """Subjects with a test role (each is scored once, by the fold that tests it)."""
        return list(test_folds(self._read(self.splits_table(dataset))))

    def test_fold(self, dataset: str, subject: str) -> str:
        """The split whose test set holds ``subject`` (its predictions come from that fold's model)."""
        fold = test_folds(self._read(self.splits_table(dataset))).get(subject)
        if fold is None:
            raise ValueError(f"{dataset}: subject {subject} is in no split's test set")
        return fold


__all__ = ["ROLES", "CheckpointTables", "flag", "fold_subjects", "passed_subjects", "split_ids", "test_folds",
           "usable"]

"""Stand-ins for what Snakemake hands the workflow package: wildcards and the checkpoints object."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import yaml
from snakemake.iocontainers import Wildcards

from mskseg.io.tables import write_table
from mskseg.workflow.config import resolve_config
from tests.conftest import REPO


class NotYet(Exception):
    """What the fake raises for a checkpoint that has not run (Snakemake raises its own signal)."""


def wildcards(**values: str) -> Wildcards:
    """Snakemake's own wildcards object."""
    return Wildcards(fromdict=values)


class _Checkpoint:
    def __init__(self, outputs: dict[str, dict[str, Path]]) -> None:
        self.outputs = outputs

    def get(self, dataset: str) -> SimpleNamespace:
        if dataset not in self.outputs:
            raise NotYet(dataset)
        return SimpleNamespace(output=SimpleNamespace(**{k: str(v) for k, v in self.outputs[dataset].items()}))


class FakeCheckpoints:
    """``qc_summary`` and ``make_splits`` with outputs per dataset; a dataset without them has not run."""

    def __init__(self) -> None:
        self.qc_summary = _Checkpoint({})
        self.make_splits = _Checkpoint({})

    def qc_done(self, dataset: str, folder: Path, passed: list[str], failed: list[str] = (),
                unlabelled: list[str] = ()) -> None:
        rows = [{"subject": s, "patient": s, "qc_passed": True, "qc_failures": "", "qc_fixes": "", "has_label": True}
                for s in passed]
        rows += [{"subject": s, "patient": s, "qc_passed": False, "qc_failures": "x: y", "qc_fixes": "",
                  "has_label": True} for s in failed]
        rows += [{"subject": s, "patient": s, "qc_passed": True, "qc_failures": "", "qc_fixes": "",
                  "has_label": False} for s in unlabelled]
        path = folder / f"{dataset}_subjects.tsv"
        write_table(pd.DataFrame(rows), path)
        self.qc_summary.outputs[dataset] = {"subjects": path}

    def splits_done(self, dataset: str, folder: Path, table: pd.DataFrame) -> None:
        path = folder / f"{dataset}_splits.tsv"
        write_table(table, path)
        self.make_splits.outputs[dataset] = {"splits": path}


def demo_config(**extra_datasets: dict) -> dict:
    """The shipped config.yaml (with extra datasets), resolved as the workflow resolves it."""
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    config["datasets"].update(extra_datasets)
    return resolve_config(config)


def splits_table(folds: dict[str, dict[str, list[str]]]) -> pd.DataFrame:
    """``{fold: {role: subjects}}`` as a splits table (patient = subject)."""
    rows = [{"split": f, "subject": s, "patient": s, "role": role} for f, roles in folds.items()
            for role, subjects in roles.items() for s in subjects]
    return pd.DataFrame(rows)

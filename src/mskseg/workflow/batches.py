"""Subjects in batches: the unit of one cluster job for the per-subject chains.

A batch's per-subject rules (preprocessing, registration and landmarks, evaluation) and the rule
that gathers its records share a ``group:``, so Snakemake submits the batch's jobs and their
gathering as one job; the dataset-wide tables are then made from the batch tables
(:func:`mskseg.io.tables.records_table`, :func:`mskseg.io.tables.gather`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mskseg.workflow.paths import entity_path

if TYPE_CHECKING:
    from mskseg.workflow.checkpoints import CheckpointTables
    from mskseg.workflow.plan import Plan

#: batch names in file names and wildcards: digits, at least three
BATCH_PATTERN = r"[0-9][0-9][0-9]+"


def batches(subjects: Sequence[str], size: int) -> dict[str, list[str]]:
    """Consecutive runs of ``size`` subjects in the given order, named ``000``, ``001``, ...

    >>> batches(["a", "b", "c"], 2)
    {'000': ['a', 'b'], '001': ['c']}
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_subjects must be a positive integer, got {size!r}")
    if len(set(subjects)) != len(subjects):
        raise ValueError("subjects are listed more than once")
    n = (len(subjects) + size - 1) // size
    width = max(3, len(str(n - 1)))
    return {f"{i:0{width}d}": list(subjects[i * size:(i + 1) * size]) for i in range(n)}


def _items(wildcards: Any) -> dict[str, str]:
    """A Snakemake ``Wildcards`` object (or any namespace) as a dict."""
    return dict(wildcards.items()) if hasattr(wildcards, "items") else dict(vars(wildcards))


class BatchInputs:
    """The batch rules' members: subjects that passed QC (``passed``) or are scored (``evaluated``)."""

    KINDS = ("passed", "evaluated")

    def __init__(self, plan: Plan, tables: CheckpointTables) -> None:
        self.plan = plan
        self.checkpoints = tables

    def of(self, dataset: str, kind: str) -> dict[str, list[str]]:
        """{batch: subjects} of a dataset's ``kind`` subjects."""
        if kind not in self.KINDS:
            raise ValueError(f"batch kind must be one of {', '.join(self.KINDS)}, got {kind!r}")
        subjects = self.checkpoints.passed(dataset) if kind == "passed" else self.checkpoints.evaluated(dataset)
        return batches(subjects, self.plan.batch_size)

    def subjects(self, wildcards: Any, kind: str) -> list[str]:
        """The subjects of batch ``{batch}``."""
        members = self.of(wildcards.dataset, kind)
        if wildcards.batch not in members:
            raise ValueError(f"{wildcards.dataset} has no batch {wildcards.batch} of {kind} subjects "
                             f"(batch_subjects: {self.plan.batch_size}; batches {', '.join(members) or 'none'})")
        return members[wildcards.batch]

    def passed(self, wildcards: Any) -> list[str]:
        """Members of a batch of subjects that passed QC."""
        return self.subjects(wildcards, "passed")

    def evaluated(self, wildcards: Any) -> list[str]:
        """Members of a batch of scored subjects."""
        return self.subjects(wildcards, "evaluated")

    def files(self, path: str, kind: str) -> Callable[[Any], list[str]]:
        """Input function: ``path`` (with ``{subject}`` and the rule's wildcards) for every member of the batch."""
        def inputs(wildcards: Any) -> list[str]:
            return [path.format(subject=s, **_items(wildcards)) for s in self.subjects(wildcards, kind)]
        return inputs

    def tables_of(self, path: str, kind: str) -> Callable[[Any], list[str]]:
        """Input function: ``path`` (with ``{batch}`` and the rule's wildcards) for every batch of the dataset."""
        def inputs(wildcards: Any) -> list[str]:
            return [path.format(batch=b, **_items(wildcards)) for b in self.of(wildcards.dataset, kind)]
        return inputs

    def instances(self, wildcards: Any) -> list[tuple[str, str]]:
        """(subject, structure) of every shape model's member, for the members of a batch."""
        models = self.plan[wildcards.dataset].shape_models
        return [(s, st) for s in self.passed(wildcards) for bone in models for st, _ in models[bone]]

    def correspondence(self, wildcards: Any) -> list[str]:
        """The correspondence records of a batch's instances."""
        return [entity_path("landmarks", wildcards.dataset, "correspondence.json", subject=s, structure=st)
                for s, st in self.instances(wildcards)]

    def instance_subjects(self, wildcards: Any) -> list[str]:
        """The subject of each of :meth:`correspondence`'s records."""
        return [s for s, _ in self.instances(wildcards)]


__all__ = ["BATCH_PATTERN", "BatchInputs", "batches"]

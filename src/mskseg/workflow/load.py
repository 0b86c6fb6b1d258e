"""The workflow's one entry point into the package: :func:`load_workflow` resolves the configuration,
builds the parse-time plan and gives the rules their input functions, grouped by stage.

``rules/common.smk`` calls it once; the rules then name ``wf.<stage>.<function>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mskseg.workflow.batches import BatchInputs
from mskseg.workflow.checkpoints import CheckpointTables
from mskseg.workflow.compose import read_shipped
from mskseg.workflow.config import SCHEMA, resolve_config
from mskseg.workflow.data import DataInputs
from mskseg.workflow.evaluation import EvaluationInputs
from mskseg.workflow.plan import Plan
from mskseg.workflow.predictions import PredictionInputs
from mskseg.workflow.preprocess import PreprocessInputs, SplitInputs
from mskseg.workflow.qc import QCInputs
from mskseg.workflow.report import ReportInputs
from mskseg.workflow.segment import SegmentInputs
from mskseg.workflow.segmentation import SegmentationInputs
from mskseg.workflow.shape import ShapeInputs
from mskseg.workflow.shape_fitting import ShapeFittingInputs
from mskseg.workflow.snakemake_compat import check_each_group_once, one_pending_reevaluation
from mskseg.workflow.studies import StudyInputs
from mskseg.workflow.targets import Targets


@dataclass(frozen=True, eq=False)
class Workflow:
    """The plan, the checkpoint tables and each stage's input functions."""

    plan: Plan
    tables: CheckpointTables
    data: DataInputs
    qc: QCInputs
    batches: BatchInputs
    preprocess: PreprocessInputs
    splits: SplitInputs
    shape: ShapeInputs
    segmentation: SegmentationInputs
    shape_fitting: ShapeFittingInputs
    segment: SegmentInputs
    predictions: PredictionInputs
    evaluation: EvaluationInputs
    studies: StudyInputs
    report: ReportInputs
    targets: Targets

    @classmethod
    def build(cls, plan: Plan, checkpoints: Any) -> Workflow:
        """The input functions of ``plan``; ``checkpoints``: Snakemake's object (or a stand-in with the same
        ``qc_summary.get(dataset=...).output.subjects`` and ``make_splits.get(...).output.splits``)."""
        tables = CheckpointTables(checkpoints)
        return cls(plan=plan, tables=tables, data=DataInputs(plan), qc=QCInputs(plan),
                   batches=BatchInputs(plan, tables), preprocess=PreprocessInputs(plan), splits=SplitInputs(plan),
                   shape=ShapeInputs(plan, tables), segmentation=SegmentationInputs(plan, tables),
                   shape_fitting=ShapeFittingInputs(plan, tables), segment=SegmentInputs(plan, tables),
                   predictions=PredictionInputs(plan, tables), evaluation=EvaluationInputs(plan),
                   studies=StudyInputs(plan, tables), report=ReportInputs(plan, tables),
                   targets=Targets(plan, tables))


def load_workflow(config: Mapping[str, Any], checkpoints: Any, *, schema: str | Path = SCHEMA,
                  overrides: Mapping[str, Any] | None = None, shipped: Sequence[str | Path] = (),
                  dag_class: type | None = None, scheduler_class: type | None = None) -> Workflow:
    """Resolve ``config`` (the user's datasets, scale, schema defaults, cross-field checks), plan it and build
    the input functions.

    ``overrides``: what the user's ``--configfile`` files and ``--config`` declare (Snakemake's
    ``workflow.config_settings.overwrite_config``): datasets declared there replace the shipped ones;
    ``shipped``: where the shipped ``config.yaml`` may be, the first found wins (the templates of user
    datasets). ``dag_class``: Snakemake's ``DAG``, given the group-check work-around of
    :mod:`mskseg.workflow.snakemake_compat` (batch groups make the unpatched check quadratic);
    ``scheduler_class``: its ``JobScheduler``, given the one-pending-timer work-around (the process exits when
    the last job is done instead of up to a rate-limit timespan later).
    """
    if dag_class is not None:
        check_each_group_once(dag_class)
    if scheduler_class is not None:
        one_pending_reevaluation(scheduler_class)
    resolved = resolve_config(config, schema, overrides=overrides, shipped=read_shipped(*shipped))
    return Workflow.build(Plan.from_config(resolved), checkpoints)


__all__ = ["Workflow", "load_workflow"]

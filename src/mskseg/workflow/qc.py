"""Input functions of the quality-control rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mskseg.workflow.config import canonical
from mskseg.workflow.paths import entity_path
from mskseg.workflow.plan import Plan
from mskseg.workflow.settings import qc_settings


class QCInputs:
    """``qc_subject`` and the ``qc_summary`` checkpoint."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def raw_paths(self, wildcards: Any) -> dict[str, str]:
        """Image and label paths of a subject as the manifest gives them (they may not exist)."""
        row = self.plan[wildcards.dataset].row(wildcards.subject)
        return {"image": row["image"], "label": row["label"]}

    def raw_inputs(self, wildcards: Any) -> dict[str, str]:
        """The subject's raw files that exist (a missing one is recorded by QC, not a DAG error);
        a phantom's files are made by the workflow, so they are inputs whether they exist yet or not."""
        synthetic = self.plan[wildcards.dataset].synthetic
        return {key: value for key, value in self.raw_paths(wildcards).items()
                if value and (synthetic or Path(value).exists())}

    def settings(self, wildcards: Any) -> dict[str, Any]:
        """The checks of the dataset (:class:`mskseg.qc.QCSettings` keyword arguments, canonical)."""
        settings = qc_settings(self.plan[wildcards.dataset].config, self.plan.config["qc"])
        return canonical(settings.to_dict())

    def fatal(self, wildcards: Any) -> bool:
        """``qc.fatal``: a failing subject stops the run instead of being recorded and excluded."""
        return bool(self.plan.config["qc"]["fatal"])

    def records(self, wildcards: Any) -> list[str]:
        """Every subject's QC record of the dataset."""
        plan = self.plan[wildcards.dataset]
        return [entity_path("qc", plan.name, "qc.tsv", subject=s) for s in plan.subjects]


__all__ = ["QCInputs"]

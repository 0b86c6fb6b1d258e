"""Input functions of the evaluation rules: per-subject metrics, tables, plots, the training-size study."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mskseg.workflow.config import canonical
from mskseg.workflow.paths import entity_path
from mskseg.workflow.plan import Plan
from mskseg.workflow.settings import evaluation_settings, table_metrics, table_settings


class EvaluationInputs:
    """``evaluate_subject``, ``metric_table``, ``fov_curve``, ``table_summary`` and ``training_size_study``."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def settings(self, wildcards: Any) -> dict[str, Any]:
        """What one subject's metrics depend on (canonical)."""
        return canonical(evaluation_settings(self.plan[wildcards.dataset].config))

    def labels(self, wildcards: Any) -> dict[str, int]:
        """The dataset's label map (canonical)."""
        return canonical(self.plan[wildcards.dataset].labels)

    def threads(self, wildcards: Any) -> int:
        """``evaluation.threads`` of the dataset."""
        return int(evaluation_settings(self.plan[wildcards.dataset].config)["threads"])

    def method_tables(self, suffix: str) -> Callable[[Any], list[str]]:
        """Input function: every scored method's collected table ``suffix`` (metrics.csv, fov.csv)."""
        def inputs(wildcards: Any) -> list[str]:
            return [entity_path("evaluation", wildcards.dataset, suffix, method=m)
                    for m in self.plan[wildcards.dataset].evaluated]
        return inputs

    def table_settings(self, wildcards: Any) -> dict[str, Any]:
        """What the tables, statistics and plots of a dataset depend on (canonical)."""
        return canonical(table_settings(self.plan[wildcards.dataset].config))

    def metric_tables(self, wildcards: Any) -> list[str]:
        """Every metric's Markdown table of the dataset, in the configured order."""
        return [entity_path("tables", wildcards.dataset, "table.md", metric=m)
                for m in table_metrics(self.plan[wildcards.dataset].config)]

    def study_sizes(self, wildcards: Any) -> dict[str, int]:
        """The training-size study: method -> its number of training subjects (canonical)."""
        return canonical(dict(self.plan[wildcards.dataset].config["evaluation"]["training_size"]))

    def study_inputs(self, wildcards: Any) -> list[str]:
        """The collected metrics of every method of the training-size study."""
        return [entity_path("evaluation", wildcards.dataset, "metrics.csv", method=m)
                for m in self.study_sizes(wildcards)]


__all__ = ["EvaluationInputs"]

"""Input functions of the data rules: the synthetic phantoms and the dataset manifests."""

from __future__ import annotations

from typing import Any

from mskseg.workflow.config import canonical
from mskseg.workflow.paths import entity_path
from mskseg.workflow.plan import Plan


class DataInputs:
    """``synthesize_subject`` and ``dataset_manifest``."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def synthetic_spec(self, wildcards: Any) -> dict[str, Any]:
        """The dataset's ``source.synthetic`` block (canonical: reordering keys re-runs nothing)."""
        return canonical(self.plan[wildcards.dataset].config["source"]["synthetic"])

    def synthetic_index(self, wildcards: Any) -> int:
        """The subject's position in its dataset (the phantom generator's index)."""
        return self.plan[wildcards.dataset].subjects.index(wildcards.subject)

    def synthetic_mem_mb(self, wildcards: Any, attempt: int) -> int:
        """About 40 float32 copies of the phantom's volume, plus a base; more on a retry."""
        shape = self.synthetic_spec(wildcards).get("shape") or (128, 128, 128)
        voxels = shape[0] * shape[1] * shape[2]
        return int((1000 + voxels * 4 * 40 / 1e6) * attempt)

    def synthetic_outputs(self, wildcards: Any) -> list[str]:
        """The images of every phantom of a synthetic dataset (none for data on disk)."""
        plan = self.plan[wildcards.dataset]
        if not plan.synthetic:
            return []
        return [entity_path("synthetic", plan.name, "image.nii.gz", subject=s) for s in plan.subjects]

    def manifest_settings(self, wildcards: Any) -> dict[str, Any]:
        """What the manifest depends on: the source only (so other settings never redo the QC)."""
        return canonical({"source": self.plan[wildcards.dataset].config["source"]})

    def manifest_source(self, wildcards: Any) -> list[str]:
        """The user's manifest file, when the source is one."""
        source = self.plan[wildcards.dataset].config["source"]
        return [source["manifest"]["path"]] if "manifest" in source else []


__all__ = ["DataInputs"]

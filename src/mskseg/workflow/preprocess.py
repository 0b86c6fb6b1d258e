"""Input functions of the preprocessing and split rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mskseg.workflow.config import canonical
from mskseg.workflow.plan import Plan
from mskseg.workflow.settings import mask_geometry, preprocess_settings


class PreprocessInputs:
    """``preprocess_subject``, ``preprocess_poor_mask`` and the batch tables."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def settings(self, wildcards: Any) -> dict[str, Any]:
        """:class:`mskseg.preprocess.PreprocessSettings` keyword arguments of the dataset (canonical)."""
        return canonical(preprocess_settings(self.plan[wildcards.dataset].config))

    def mask_geometry(self, wildcards: Any) -> str:
        """The dataset's mask-header policy (``check`` or ``from_image``)."""
        return mask_geometry(self.plan[wildcards.dataset].config)

    def labels(self, wildcards: Any) -> dict[str, int]:
        """The dataset's label map (canonical)."""
        return canonical(self.plan[wildcards.dataset].labels)

    def poor_mask(self, wildcards: Any) -> str:
        """The subject's poor mask (manifest column ``label_poor``), which methods with ``pretrain`` need."""
        path = self.plan[wildcards.dataset].row(wildcards.subject).get("label_poor", "")
        if not isinstance(path, str) or not path:
            raise ValueError(f"{wildcards.dataset}: subject {wildcards.subject} has no label_poor in the manifest, "
                             "but a method of this dataset pre-trains on poor labels")
        return path

    def raw_image(self, wildcards: Any) -> str:
        """The subject's raw image (the grid its poor mask lies on)."""
        return self.plan[wildcards.dataset].row(wildcards.subject)["image"]


class SplitInputs:
    """The ``make_splits`` checkpoint."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def settings(self, wildcards: Any) -> dict[str, Any]:
        """The dataset's ``split`` block (canonical)."""
        return canonical(self.plan[wildcards.dataset].config.get("split", {}))

    def base(self, wildcards: Any) -> str:
        """The folder a fixed split file's relative path is relative to: the working directory."""
        return str(Path.cwd())


__all__ = ["PreprocessInputs", "SplitInputs"]

"""Input functions of the shape stage: reference selection, registration, landmarks, shape models."""

from __future__ import annotations

from typing import Any

from mskseg.workflow.checkpoints import CheckpointTables
from mskseg.workflow.config import canonical
from mskseg.workflow.paths import entity_path
from mskseg.workflow.plan import Plan
from mskseg.workflow.settings import shape_settings


class ShapeInputs:
    """``select_reference``, ``register_structure``, ``reference_landmarks``, ``warp_landmarks``,
    ``correspondence_table`` and ``shape_model``."""

    def __init__(self, plan: Plan, tables: CheckpointTables) -> None:
        self.plan = plan
        self.checkpoints = tables

    def _settings(self, wildcards: Any, part: str) -> dict[str, Any]:
        return canonical(shape_settings(self.plan[wildcards.dataset].config, part, self._model(wildcards)))

    def _model(self, wildcards: Any) -> str | None:
        """The shape model of a job: ``{bone}``, or the model of ``{structure}``."""
        bone = getattr(wildcards, "bone", None)
        structure = getattr(wildcards, "structure", None)
        if bone is None and structure is not None:
            return self.plan[wildcards.dataset].bone_of(structure)[0]
        return bone

    def selection_settings(self, wildcards: Any) -> dict[str, Any]:
        """What the reference selection reads of the ``shape`` block (with the model's ``trim``, if any)."""
        return self._settings(wildcards, "selection")

    def registration_settings(self, wildcards: Any) -> dict[str, Any]:
        """What a registration reads of the ``shape`` block (with its model's ``trim``, if any)."""
        return self._settings(wildcards, "registration")

    def landmark_settings(self, wildcards: Any) -> dict[str, Any]:
        """What the landmark rules read of the ``shape`` block (with the model's ``trim``, if any)."""
        return self._settings(wildcards, "landmarks")

    def model_settings(self, wildcards: Any) -> dict[str, Any]:
        """What the shape model reads of the ``shape`` block."""
        return self._settings(wildcards, "model")

    def members(self, wildcards: Any) -> list[list[Any]]:
        """``[[structure, mirrored], ...]`` of the model ``{bone}``."""
        return [[s, bool(m)] for s, m in self.plan[wildcards.dataset].shape_models[wildcards.bone]]

    def member_structures(self, wildcards: Any) -> list[str]:
        """The structures of the model ``{bone}``."""
        return [s for s, _ in self.members(wildcards)]

    def mirrored(self, wildcards: Any) -> bool:
        """Whether ``{structure}`` is mirrored onto its model's side."""
        return self.plan[wildcards.dataset].bone_of(wildcards.structure)[1]

    def subjects(self, wildcards: Any) -> list[str]:
        """The subjects that passed QC (reference candidates; the order of :meth:`masks` and :meth:`truth`)."""
        return self.checkpoints.passed(wildcards.dataset)

    def masks(self, wildcards: Any) -> list[str]:
        """The preprocessed mask of every subject that passed QC."""
        return [entity_path("preprocess", wildcards.dataset, "mask.nii.gz", subject=s)
                for s in self.subjects(wildcards)]

    def reference(self, wildcards: Any) -> str:
        """The working image of the reference of ``{structure}``'s model."""
        bone = self.plan[wildcards.dataset].bone_of(wildcards.structure)[0]
        return entity_path("registration", wildcards.dataset, "reference.nii.gz", bone=bone)

    def truth(self, wildcards: Any) -> list[str]:
        """Every passed subject's true landmarks (phantoms only; data on disk: none)."""
        if not self.plan[wildcards.dataset].synthetic:
            return []
        return [entity_path("synthetic", wildcards.dataset, "landmarks.csv", subject=s)
                for s in self.subjects(wildcards)]

    def truth_subjects(self, wildcards: Any) -> list[str]:
        """The subject of each of :meth:`truth`'s files."""
        return self.subjects(wildcards) if self.plan[wildcards.dataset].synthetic else []

    def warp_inputs(self, wildcards: Any) -> dict[str, str]:
        """The reference landmarks of ``{structure}``'s model (and, on phantoms, the true landmarks of subject
        and reference)."""
        bone = self.plan[wildcards.dataset].bone_of(wildcards.structure)[0]
        inputs = {"reference_landmarks": entity_path("landmarks", wildcards.dataset, "reference_landmarks.csv",
                                                     bone=bone),
                  "reference_truth": entity_path("landmarks", wildcards.dataset, "reference_truth.csv", bone=bone)}
        if self.plan[wildcards.dataset].synthetic:
            inputs["truth"] = entity_path("synthetic", wildcards.dataset, "landmarks.csv", subject=wildcards.subject)
        return inputs

    def landmarks(self, wildcards: Any) -> list[str]:
        """The landmarks of every member of the model ``{bone}`` of every passed subject."""
        members = self.plan[wildcards.dataset].shape_models[wildcards.bone]
        return [entity_path("landmarks", wildcards.dataset, "landmarks.csv", subject=s, structure=st)
                for s in self.subjects(wildcards) for st, _ in members]


__all__ = ["ShapeInputs"]

"""Input functions of the segmentation rules: weight maps, (pre-)training, fusion weights."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mskseg.nn.method import MethodSpec
from mskseg.workflow.checkpoints import CheckpointTables
from mskseg.workflow.config import canonical
from mskseg.workflow.paths import entity_path, model_path, training_work_dir
from mskseg.workflow.plan import Plan


def subject_files(dataset: str, subjects: list[str], kinds: list[str], wmap: str | None = None
                  ) -> dict[str, list[str]]:
    """kind -> one file per subject: ``weight`` (the weight map ``wmap``) or a preprocessed ``image``,
    ``mask``, ``poormask``."""
    files = {}
    for kind in kinds:
        if kind == "weight":
            files[kind] = [entity_path("weightmaps", dataset, "weight.nii.gz", subject=s, wmap=wmap)
                           for s in subjects]
        else:
            files[kind] = [entity_path("preprocess", dataset, f"{kind}.nii.gz", subject=s) for s in subjects]
    return files


def method_from_params(method: str, settings: Mapping[str, Any]) -> tuple[MethodSpec, dict[str, int]]:
    """The typed method and its label map from the params of :meth:`SegmentationInputs.method_settings`
    (they travel as plain values: Snakemake re-runs a job when they change, which it cannot see in an object)."""
    return MethodSpec.from_config(method, settings["method"]), dict(settings["labels"])


class SegmentationInputs:
    """``weight_map``, ``pretrain_model``, ``train_model`` and ``fit_fusion``."""

    def __init__(self, plan: Plan, tables: CheckpointTables) -> None:
        self.plan = plan
        self.checkpoints = tables

    def spec(self, wildcards: Any) -> MethodSpec:
        """The trained method ``{method}`` of ``{dataset}``, as parsed when the workflow loaded."""
        return self.plan[wildcards.dataset].trained[wildcards.method]

    def weight_map_settings(self, wildcards: Any) -> dict[str, Any]:
        """The weight map ``{wmap}``'s settings (canonical)."""
        return canonical(dict(self.plan[wildcards.dataset].config["weight_maps"][wildcards.wmap]))

    def method_settings(self, wildcards: Any) -> dict[str, Any]:
        """Everything a trained method's jobs depend on: its config entry, the labels, its weight map."""
        config = self.plan[wildcards.dataset].config
        wmap = self.spec(wildcards).weight_map
        return canonical({"method": dict(config["methods"][wildcards.method]), "labels": dict(config["labels"]),
                          "weight_map": dict(config["weight_maps"][wmap]) if wmap else None})

    def fold_subjects(self, wildcards: Any) -> dict[str, list[str]]:
        """The fold's training and validation subjects."""
        return {role: self.checkpoints.fold_subjects(wildcards.dataset, wildcards.fold, role)
                for role in ("train", "val")}

    def training_inputs(self, wildcards: Any) -> dict[str, Any]:
        """Images, masks (and weight maps) of the fold's training and validation subjects, and the pre-trained
        weights of a method that pre-trains."""
        spec = self.spec(wildcards)
        kinds = ["image", "mask"] + (["weight"] if spec.uses_weight_map() else [])
        inputs: dict[str, Any] = {}
        for role, subjects in self.fold_subjects(wildcards).items():
            for kind, files in subject_files(wildcards.dataset, subjects, kinds, spec.weight_map).items():
                inputs[f"{role}_{kind}"] = files
        if spec.pretrain is not None:
            inputs["pretrained"] = model_path(wildcards.dataset, "pretrained.pt", method=wildcards.method,
                                              fold=wildcards.fold, view=wildcards.view)
        return inputs

    def pretraining_inputs(self, wildcards: Any) -> dict[str, list[str]]:
        """Images and poor masks of the fold's training and validation subjects."""
        subjects = [s for group in self.fold_subjects(wildcards).values() for s in group]
        return subject_files(wildcards.dataset, subjects, ["image", "poormask"])

    def work_dir(self, wildcards: Any) -> str:
        """The training job's checkpoint folder (kept across a kill, so a re-run resumes)."""
        return training_work_dir(wildcards.dataset, wildcards.method, wildcards.fold, wildcards.view)

    def threads(self, wildcards: Any) -> int:
        """The method's ``threads``."""
        return self.spec(wildcards).threads

    def runtime(self, wildcards: Any, attempt: int) -> int:
        """The method's ``runtime_min``, times the attempt."""
        return self.spec(wildcards).runtime_min * attempt

    def fusion_inputs(self, wildcards: Any) -> dict[str, list[str]]:
        """The fold's validation images and masks, and every view's model."""
        subjects = self.checkpoints.fold_subjects(wildcards.dataset, wildcards.fold, "val")
        inputs = subject_files(wildcards.dataset, subjects, ["image", "mask"])
        views = self.spec(wildcards).views
        for key, suffix in (("models", "model.pt"), ("infos", "model.json")):
            inputs[key] = [model_path(wildcards.dataset, suffix, method=wildcards.method, fold=wildcards.fold, view=v)
                           for v in views]
        return inputs


__all__ = ["SegmentationInputs", "method_from_params", "subject_files"]

"""Input functions of the segmentation rules: weight maps, (pre-)training, SPAR's shape auto-encoder and
regularised training, fusion weights."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pandas as pd

from mskseg.errors import ConfigError
from mskseg.nn.method import MethodSpec
from mskseg.nn.subset_settings import SubsetSettings
from mskseg.splits import training_subset
from mskseg.workflow.checkpoints import CheckpointTables
from mskseg.workflow.config import canonical
from mskseg.workflow.paths import entity_path, model_path, training_work_dir
from mskseg.workflow.plan import DatasetPlan, Plan


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


def _pretrain_key(spec: MethodSpec) -> str:
    """What a method's pre-training depends on: its pre-training spec without the method's name."""
    return repr(replace(spec.pretraining(), name=""))


def _patient(plan: DatasetPlan, subject: str) -> str:
    """The subject's patient (the subject itself when the manifest names none)."""
    return str(plan.row(subject).get("patient") or subject)


def count_patients(plan: DatasetPlan, subjects: list[str]) -> int:
    """How many patients ``subjects`` (scans) belong to."""
    return len({_patient(plan, s) for s in subjects})


def subset_subjects(plan: DatasetPlan, train: list[str], subset: SubsetSettings) -> list[str]:
    """The subjects of ``subset``'s patients among a fold's ``train`` subjects, in their order
    (:func:`mskseg.splits.training_subset`: nested across sizes, balanced by ``subset.balance_by``)."""
    table = pd.DataFrame({"subject": train, "patient": [_patient(plan, s) for s in train]})
    if subset.balance_by is not None:
        if subset.balance_by not in plan.manifest.columns:
            raise ConfigError(f"datasets.{plan.name}: train_subjects.balance_by {subset.balance_by!r} is not a "
                              f"column of the manifest ({list(plan.manifest.columns)})")
        table[subset.balance_by] = [plan.row(s).get(subset.balance_by) for s in train]
    try:
        return training_subset(table, subset.size, seed=subset.seed, balance_by=subset.balance_by)
    except ValueError as err:
        raise ConfigError(f"datasets.{plan.name}: train_subjects: {err}") from None


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
        """Everything a trained method's jobs depend on: its config entry, the labels, its weight map. A method
        trained on a subset of the fold's patients gets its epochs scaled here (equal optimiser steps)."""
        config = self.plan[wildcards.dataset].config
        spec = self.spec(wildcards)
        method = dict(config["methods"][wildcards.method])
        fold = getattr(wildcards, "fold", None)
        if spec.train_subjects is not None and fold is not None:
            full = self.checkpoints.fold_subjects(wildcards.dataset, fold, "train")
            subset = self.fold_subjects(wildcards)["train"]
            epochs = spec.train_subjects.epochs(spec.train.epochs, steps_per_epoch=spec.train.steps_per_epoch,
                                                n_full=count_patients(self.plan[wildcards.dataset], full),
                                                n_subset=count_patients(self.plan[wildcards.dataset], subset))
            method["train"] = {**dict(method.get("train") or {}), "epochs": epochs}
        wmap = spec.weight_map
        return canonical({"method": method, "labels": dict(config["labels"]),
                          "weight_map": dict(config["weight_maps"][wmap]) if wmap else None})

    def fold_subjects(self, wildcards: Any) -> dict[str, list[str]]:
        """The fold's training and validation subjects; of a method with ``train_subjects``, the training
        subjects of its nested subset of patients (:func:`subset_subjects`)."""
        subjects = {role: self.checkpoints.fold_subjects(wildcards.dataset, wildcards.fold, role)
                    for role in ("train", "val")}
        subset = self.spec(wildcards).train_subjects
        if subset is not None:
            subjects["train"] = subset_subjects(self.plan[wildcards.dataset], subjects["train"], subset)
        return subjects

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
            inputs["pretrained"] = model_path(wildcards.dataset, "pretrained.pt",
                                              method=self.pretrain_owner(wildcards.dataset, wildcards.method),
                                              fold=wildcards.fold, view=wildcards.view)
        return inputs

    def pretrain_owner(self, dataset: str, method: str) -> str:
        """The first method of the dataset whose pre-training equals ``method``'s (network, view, loss, settings):
        methods that differ only after the pre-training (an ablation's loss or weight map) share one."""
        trained = self.plan[dataset].trained
        key = _pretrain_key(trained[method])
        return next(m for m, spec in trained.items() if spec.pretrain is not None and _pretrain_key(spec) == key)

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

    def autoencoder_path(self, dataset: str, method: str, fold: str, suffix: str) -> str:
        """A regularised method's shape auto-encoder file (shared by the methods with equal auto-encoder
        settings and seed: its name holds their key)."""
        spec = self.plan[dataset].trained[method]
        key = spec.regularisation.autoencoder_key(spec.train.seed)
        return entity_path("models", dataset, suffix, autoencoder=key, fold=fold, view=spec.view)

    def regularised_inputs(self, wildcards: Any) -> dict[str, Any]:
        """``train_regularised``: the fold's files as ``train_model``'s and the shape auto-encoder."""
        inputs = self.training_inputs(wildcards)
        for key, suffix in (("autoencoder_weights", "autoencoder.pt"), ("autoencoder_info", "autoencoder.json")):
            inputs[key] = self.autoencoder_path(wildcards.dataset, wildcards.method, wildcards.fold, suffix)
        return inputs

    def _autoencoder_method(self, wildcards: Any) -> MethodSpec:
        """The first regularised method whose auto-encoder key is ``{aekey}`` on the view ``{view}``."""
        for spec in self.plan[wildcards.dataset].trained.values():
            spar = spec.regularisation
            if spar is not None and spec.view == wildcards.view and \
                    spar.autoencoder_key(spec.train.seed) == wildcards.aekey:
                return spec
        raise ValueError(f"{wildcards.dataset}: no regularised method has auto-encoder {wildcards.aekey!r} on "
                         f"view {wildcards.view!r}")

    def autoencoder_inputs(self, wildcards: Any) -> dict[str, list[str]]:
        """``train_shape_autoencoder``: the masks of the fold's training subjects."""
        subjects = self.checkpoints.fold_subjects(wildcards.dataset, wildcards.fold, "train")
        return {"masks": subject_files(wildcards.dataset, subjects, ["mask"])["mask"]}

    def autoencoder_settings(self, wildcards: Any) -> dict[str, Any]:
        """What the auto-encoder depends on: its settings and seed, the labels, the training subjects (canonical)."""
        spec = self._autoencoder_method(wildcards)
        return canonical({"settings": spec.regularisation.to_dict(), "seed": spec.train.seed,
                          "labels": self.plan[wildcards.dataset].labels,
                          "subjects": self.checkpoints.fold_subjects(wildcards.dataset, wildcards.fold, "train")})

    def autoencoder_work_dir(self, wildcards: Any) -> str:
        """The auto-encoder job's checkpoint folder."""
        return entity_path(".work", wildcards.dataset, "", autoencoder=wildcards.aekey, fold=wildcards.fold,
                           view=wildcards.view, root="results/models").rstrip("_")

    def fusion_inputs(self, wildcards: Any) -> dict[str, list[str]]:
        """The fold's validation images and masks, and every view's model."""
        subjects = self.checkpoints.fold_subjects(wildcards.dataset, wildcards.fold, "val")
        inputs = subject_files(wildcards.dataset, subjects, ["image", "mask"])
        views = self.spec(wildcards).views
        for key, suffix in (("models", "model.pt"), ("infos", "model.json")):
            inputs[key] = [self.plan[wildcards.dataset].view_model(suffix, method=wildcards.method,
                                                                   fold=wildcards.fold, view=v) for v in views]
        return inputs


__all__ = ["SegmentationInputs", "count_patients", "method_from_params", "subject_files", "subset_subjects"]

"""Input functions of the shape-fitting rules (knee paper): regression and refinement training per fold, a
test subject's prediction, and the landmark-error and per-step timing tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mskseg.nn.shape_method import WHOLE_VOLUME, ShapeFittingSpec
from mskseg.workflow.checkpoints import CheckpointTables
from mskseg.workflow.config import canonical
from mskseg.workflow.paths import entity_path
from mskseg.workflow.plan import Plan
from mskseg.workflow.segmentation import subject_files
from mskseg.workflow.settings import postprocess_settings


def fitting_path(dataset: str, suffix: str, *, method: str, fold: str, part: str | None = None) -> str:
    """A shape-fitting model file (per method, fold and, for a regression network, part: a bone or ``all``).

    >>> fitting_path("knee", "regression.pt", method="shapefit", fold="0", part="femur")
    'results/models/knee/method-shapefit_fold-0_part-femur_regression.pt'
    """
    return entity_path("models", dataset, suffix, method=method, fold=fold,
                       **({"part": part} if part is not None else {}))


#: the keys of a method's entry that its regression networks and its refinement depend on
REGRESSION_KEYS = ("kind", "presegmentation", "regression", "whole_volume", "crops_per_subject", "crop_jitter_mm",
                   "threads", "runtime_min")
REFINEMENT_KEYS = ("kind", "presegmentation", "landmarks", "refinement", "threads", "runtime_min")


def spec_from_params(method: str, settings: Mapping[str, Any]) -> ShapeFittingSpec:
    """The typed method from the params of :meth:`ShapeFittingInputs.settings` (plain values, so that Snakemake
    re-runs a job when they change)."""
    dataset = {"methods": dict(settings["methods"]), "labels": dict(settings["labels"]),
               "cartilage": list(settings.get("cartilage") or [])}
    models = {bone: [(structure, False)] for bone, structure in settings["bones"].items()}
    return ShapeFittingSpec.from_config(method, settings["methods"][method], dataset, models)


class ShapeFittingInputs:
    """``train_shape_regression``, ``train_refinement``, ``predict_shape_fitting`` and ``landmark_errors``."""

    def __init__(self, plan: Plan, tables: CheckpointTables) -> None:
        self.plan = plan
        self.checkpoints = tables

    def spec(self, wildcards: Any) -> ShapeFittingSpec:
        """The method ``{method}`` of ``{dataset}``, as parsed when the workflow loaded."""
        return self.plan[wildcards.dataset].fitted[wildcards.method]

    def _settings(self, wildcards: Any, keys: tuple[str, ...] | None) -> dict[str, Any]:
        dataset = self.plan[wildcards.dataset]
        spec = self.spec(wildcards)
        entry = dict(dataset.methods[wildcards.method])
        pre = dataset.methods[spec.presegmentation]  # only what the check of the method reads of it
        return canonical({"methods": {wildcards.method: entry if keys is None else
                                      {k: v for k, v in entry.items() if k in keys},
                                      spec.presegmentation: {"kind": pre["kind"], "view": pre.get("view")}},
                          "labels": dataset.labels, "cartilage": list(dataset.config.get("cartilage") or []),
                          "bones": {b: self.structure(wildcards.dataset, b) for b in spec.bones},
                          "postprocess": postprocess_settings(dataset.config) if spec.postprocess and keys is None
                          else None})

    def regression_settings(self, wildcards: Any) -> dict[str, Any]:
        """What a regression network depends on (:data:`REGRESSION_KEYS` of the method; a refinement or
        post-processing setting re-runs none)."""
        return self._settings(wildcards, REGRESSION_KEYS)

    def refinement_settings(self, wildcards: Any) -> dict[str, Any]:
        """What the refinement depends on (:data:`REFINEMENT_KEYS` of the method)."""
        return self._settings(wildcards, REFINEMENT_KEYS)

    def settings(self, wildcards: Any) -> dict[str, Any]:
        """Everything a prediction depends on: the method's whole entry, the labels, the post-processing."""
        return self._settings(wildcards, None)

    def bones(self, wildcards: Any) -> list[str]:
        """The bones of ``{part}`` (every bone for the whole-volume network)."""
        spec = self.spec(wildcards)
        return list(spec.bones) if wildcards.part == WHOLE_VOLUME else [wildcards.part]

    def structure(self, dataset: str, bone: str) -> str:
        """The structure (label name) of a single-bone shape model."""
        return self.plan[dataset].shape_models[bone][0][0]

    def _shape_models(self, dataset: str, fold: str, bones: list[str]) -> dict[str, list[str]]:
        return {"shape_models": [entity_path("shape", dataset, "model.npz", bone=b, fold=fold) for b in bones],
                "shape_headers": [entity_path("shape", dataset, "model.json", bone=b, fold=fold) for b in bones]}

    def _fold_files(self, dataset: str, fold: str, bones: list[str]) -> dict[str, list[str]]:
        inputs: dict[str, list[str]] = {}
        for role in ("train", "val"):
            subjects = self.checkpoints.fold_subjects(dataset, fold, role)
            for kind, files in subject_files(dataset, subjects, ["image", "mask"]).items():
                inputs[f"{role}_{kind}"] = files
            for k, bone in enumerate(bones):
                structure = self.structure(dataset, bone)
                inputs[f"{role}_landmarks_{k}"] = [entity_path("landmarks", dataset, "landmarks.csv", subject=s,
                                                               structure=structure) for s in subjects]
        return inputs

    def fold_subjects(self, wildcards: Any) -> dict[str, list[str]]:
        """The fold's training and validation subjects."""
        return {role: self.checkpoints.fold_subjects(wildcards.dataset, wildcards.fold, role)
                for role in ("train", "val")}

    def regression_inputs(self, wildcards: Any) -> dict[str, list[str]]:
        """The fold's shape models of ``{part}``'s bones, and the training and validation subjects' images,
        masks and warped landmarks (``<role>_landmarks_<k>``: the k-th bone's)."""
        bones = self.bones(wildcards)
        return self._shape_models(wildcards.dataset, wildcards.fold, bones) | self._fold_files(
            wildcards.dataset, wildcards.fold, bones)

    def refinement_inputs(self, wildcards: Any) -> dict[str, list[str]]:
        """The fold's shape models of every bone, and the training and validation subjects' images, masks and
        warped landmarks."""
        bones = list(self.spec(wildcards).bones)
        return self._shape_models(wildcards.dataset, wildcards.fold, bones) | self._fold_files(
            wildcards.dataset, wildcards.fold, bones)

    def part_labels(self, wildcards: Any) -> dict[str, Any]:
        """``bones`` of ``{part}`` and the label ``values`` of their boxes (none for the whole volume)."""
        labels = self.plan[wildcards.dataset].labels
        bones = self.bones(wildcards)
        values = None if wildcards.part == WHOLE_VOLUME else [labels[self.structure(wildcards.dataset, b)]
                                                             for b in bones]
        return {"bones": bones, "values": values}

    def bone_labels(self, wildcards: Any) -> dict[str, int]:
        """Each bone's label value."""
        labels = self.plan[wildcards.dataset].labels
        return {b: labels[self.structure(wildcards.dataset, b)] for b in self.spec(wildcards).bones}

    def predict_inputs(self, wildcards: Any) -> dict[str, Any]:
        """The subject's preprocessed image and the models of the fold that tests it: the pre-segmentation's,
        each regression network's, the refinement's and its landmark selection, and the shape models."""
        dataset, method = wildcards.dataset, wildcards.method
        spec = self.spec(wildcards)
        fold = self.checkpoints.test_fold(dataset, wildcards.subject)
        pre = self.plan[dataset].trained[spec.presegmentation]
        inputs: dict[str, Any] = {
            "image": entity_path("preprocess", dataset, "image.nii.gz", subject=wildcards.subject),
            "pre_model": self.plan[dataset].view_model("model.pt", method=pre.name, fold=fold, view=pre.views[0]),
            "pre_info": self.plan[dataset].view_model("model.json", method=pre.name, fold=fold, view=pre.views[0]),
            "regressions": [fitting_path(dataset, "regression.pt", method=method, fold=fold, part=p)
                            for p in spec.parts],
            "regression_infos": [fitting_path(dataset, "regression.json", method=method, fold=fold, part=p)
                                 for p in spec.parts]}
        inputs |= self._shape_models(dataset, fold, list(spec.bones))
        if spec.refinement is not None:
            inputs |= {key: fitting_path(dataset, suffix, method=method, fold=fold)
                       for key, suffix in (("refinement", "refinement.pt"), ("refinement_info", "refinement.json"),
                                           ("selection", "selection.tsv"))}
        return inputs

    def work_dir(self, wildcards: Any) -> str:
        """The training job's checkpoint folder (kept across a kill, so a re-run resumes): per part, or the
        refinement's."""
        part = getattr(wildcards, "part", None)
        return entity_path(".work", wildcards.dataset, "", method=wildcards.method, fold=wildcards.fold,
                           **({"part": part} if part else {"step": "refinement"}), root="results/models").rstrip("_")

    def threads(self, wildcards: Any) -> int:
        """The method's ``threads``."""
        return self.spec(wildcards).threads

    def runtime(self, wildcards: Any, attempt: int) -> int:
        """The method's ``runtime_min``, times the attempt."""
        return self.spec(wildcards).runtime_min * attempt

    def methods(self, dataset: str) -> list[str]:
        """The dataset's shape-fitting methods that are scored."""
        return [m for m in self.plan[dataset].evaluated if m in self.plan[dataset].fitted]

    def error_inputs(self, wildcards: Any) -> dict[str, list[str]]:
        """Every scored shape-fitting method's fitted landmarks and records of every test subject, and the
        subjects' warped landmarks of each bone (``reference_<bone>``)."""
        dataset = wildcards.dataset
        subjects = self.checkpoints.evaluated(dataset)
        methods = self.methods(dataset)
        inputs = {kind: [entity_path("predictions", dataset, suffix, subject=s, method=m) for m in methods
                         for s in subjects] for kind, suffix in (("fitted", "landmarks.csv"), ("records", "pred.json"))}
        for bone in self.plan[dataset].shape_models:
            inputs[f"reference_{bone}"] = [entity_path("landmarks", dataset, "landmarks.csv", subject=s,
                                                       structure=self.structure(dataset, bone)) for s in subjects]
        return inputs

    def error_rows(self, wildcards: Any) -> list[list[str]]:
        """``[method, subject]`` of each of :meth:`error_inputs`' fitted files, in order."""
        subjects = self.checkpoints.evaluated(wildcards.dataset)
        return [[m, s] for m in self.methods(wildcards.dataset) for s in subjects]


__all__ = ["REFINEMENT_KEYS", "REGRESSION_KEYS", "ShapeFittingInputs", "fitting_path", "spec_from_params"]

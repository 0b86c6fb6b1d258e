"""Input functions of the rules that segment new scans and export trained models as bundles.

A trained method's files per fold are named by *role* (:mod:`mskseg.nn.bundle`: ``model/<view>``,
``regression/<part>``, ``qc_shape_model/<bone>`` ...), the same whether they come from this run or from a
bundle, so the segmentation code reads one mapping ``fold -> role -> path`` either way.
"""

from __future__ import annotations

from typing import Any

from mskseg.workflow.checkpoints import CheckpointTables
from mskseg.workflow.config import canonical
from mskseg.workflow.paths import entity_path, model_path
from mskseg.workflow.plan import Plan
from mskseg.workflow.settings import postprocess_settings, preprocess_settings, shape_settings
from mskseg.workflow.shape_fitting import fitting_path


class SegmentInputs:
    """``volume_reference``, ``segment_scan``, ``segment_table`` and ``export_bundle``."""

    def __init__(self, plan: Plan, tables: CheckpointTables) -> None:
        self.plan = plan
        self.checkpoints = tables

    # ---- the model's files by role ------------------------------------------------------------------
    def qc_roles(self, dataset: str) -> dict[str, str]:
        """The label-free QC's files of a training dataset: its training volumes and, per single-bone shape
        model, the first fold's model, the reference mask and its landmarks."""
        roles = {"volumes": entity_path("models", dataset, "volumes.json")}
        folds = self.checkpoints.folds(dataset)
        for bone in self.plan[dataset].shape_models:
            roles[f"qc_shape_model/{bone}"] = entity_path("shape", dataset, "model.npz", bone=bone, fold=folds[0])
            roles[f"qc_shape_header/{bone}"] = entity_path("shape", dataset, "model.json", bone=bone, fold=folds[0])
            roles[f"qc_reference_mask/{bone}"] = entity_path("registration", dataset, "refmask.nii.gz", bone=bone)
            roles[f"qc_reference_landmarks/{bone}"] = entity_path("landmarks", dataset, "reference_landmarks.csv",
                                                                  bone=bone)
        return roles

    def fold_roles(self, dataset: str, method: str, fold: str) -> dict[str, str]:
        """Role -> path of one fold of a method this run trains (:mod:`mskseg.nn.bundle`'s roles)."""
        plan = self.plan[dataset]
        roles: dict[str, str] = {}
        if method in plan.trained:
            spec = plan.trained[method]
            for view in spec.views:
                for role, suffix in (("model", "model.pt"), ("info", "model.json"), ("history", "history.csv")):
                    roles[f"{role}/{view}"] = plan.view_model(suffix, method=method, fold=fold, view=view)
            if spec.view == "three_plane":
                roles["fusion"] = model_path(dataset, "fusion.json", method=method, fold=fold)
        else:
            spec = plan.fitted[method]
            pre = plan.trained[spec.presegmentation]
            for role, suffix in (("pre_model", "model.pt"), ("pre_info", "model.json"), ("pre_history", "history.csv")):
                roles[f"{role}/{pre.views[0]}"] = plan.view_model(suffix, method=pre.name, fold=fold,
                                                                   view=pre.views[0])
            for part in spec.parts:
                for role, suffix in (("regression", "regression.pt"), ("regression_info", "regression.json"),
                                     ("regression_history", "regressionhistory.csv")):
                    roles[f"{role}/{part}"] = fitting_path(dataset, suffix, method=method, fold=fold, part=part)
            for bone in spec.bones:
                roles[f"shape_model/{bone}"] = entity_path("shape", dataset, "model.npz", bone=bone, fold=fold)
                roles[f"shape_header/{bone}"] = entity_path("shape", dataset, "model.json", bone=bone, fold=fold)
            if spec.refinement is not None:
                for role, suffix in (("refinement", "refinement.pt"), ("refinement_info", "refinement.json"),
                                     ("refinement_history", "refinementhistory.csv"), ("selection", "selection.tsv")):
                    roles[role] = fitting_path(dataset, suffix, method=method, fold=fold)
        return roles | self.qc_roles(dataset)

    def method_roles(self, dataset: str, method: str) -> dict[str, dict[str, str]]:
        """Fold -> role -> path of every fold of a method this run trains."""
        return {fold: self.fold_roles(dataset, method, fold) for fold in self.checkpoints.folds(dataset)}

    def _model(self, wildcards: Any) -> dict[str, str]:
        return dict(self.plan[wildcards.dataset].segment["model"])

    def roles(self, wildcards: Any) -> dict[str, dict[str, str]]:
        """Fold -> role -> path of the model of ``{dataset}`` (empty for a bundle: its card says)."""
        model = self._model(wildcards)
        return {} if "bundle" in model else self.method_roles(model["dataset"], model["method"])

    def scan_inputs(self, wildcards: Any) -> dict[str, Any]:
        """The scan's image (as the manifest gives it) and the model's files or bundle."""
        row = self.plan[wildcards.dataset].row(wildcards.subject)
        model = self._model(wildcards)
        if "bundle" in model:
            return {"image": row["image"], "bundle": model["bundle"]}
        return {"image": row["image"], "files": sorted({p for fold in self.roles(wildcards).values()
                                                        for p in fold.values()})}

    def reference(self, wildcards: Any) -> str:
        """The scan's label file, scored in the scan's own space: its manifest's, or a phantom's hidden mask
        (an unlabelled phantom's truth); '' when there is none."""
        plan = self.plan[wildcards.dataset]
        label = str(plan.row(wildcards.subject).get("label") or "")
        if not label and plan.synthetic:
            label = entity_path("synthetic", wildcards.dataset, "mask.nii.gz", subject=wildcards.subject)
        return label

    def scan_settings(self, wildcards: Any) -> dict[str, Any]:
        """What a scan's segmentation depends on besides the model's files (canonical): its labels, the outputs
        and thresholds, and the model's card (:meth:`card`; a bundle brings its own)."""
        dataset = self.plan[wildcards.dataset]
        block = dataset.segment
        model = self._model(wildcards)
        return canonical({"labels": dataset.labels, "overlays": bool(block.get("overlays", True)),
                          "meshes": block.get("meshes", "stl"), "qc": dict(block.get("qc") or {}), "model": model,
                          "preprocess": preprocess_settings(dataset.config),
                          "card": None if "bundle" in model else self.card(model["dataset"], model["method"])})

    def card(self, dataset: str, method: str) -> dict[str, Any]:
        """A method's card as a bundle holds it (without files): kind, labels, preprocessing and
        ``method_config``: the method's entry (a shape-fitting method's with its pre-segmentation's), the
        post-processing, the dataset's cartilage, the QC's bones and collision pairs."""
        plan = self.plan[dataset]
        entry = dict(plan.methods[method])
        bones = list(plan.config.get("bones") or [])
        config = {"entry": entry, "postprocess": postprocess_settings(plan.config) if entry.get("postprocess")
                  else None, "bones": self.qc_bones(dataset), "cartilage": list(plan.config.get("cartilage") or []),
                  "collision_pairs": [[a, b] for i, a in enumerate(bones) for b in bones[i + 1:]]}
        if entry["kind"] == "shape_fitting":
            pre = entry["presegmentation"]
            config["presegmentation"] = {pre: {"kind": "trained", "view": plan.methods[pre].get("view")}}
        return {"method": method, "kind": entry["kind"], "method_config": config, "labels": plan.labels,
                "preprocess": preprocess_settings(plan.config)}

    def qc_bones(self, dataset: str) -> dict[str, Any]:
        """Per single-bone shape model of a training dataset: its structure, whether it is mirrored, and the
        registration settings (with its trim) that the shape QC registers a predicted bone with."""
        plan = self.plan[dataset]
        return {bone: {"structure": members[0][0], "mirrored": bool(members[0][1]),
                       "registration": shape_settings(plan.config, "registration", bone)}
                for bone, members in plan.shape_models.items() if len(members) == 1}

    def scan_records(self, wildcards: Any) -> list[str]:
        """The QC record of every scan of ``{dataset}`` that passed QC (labelled or not)."""
        return [entity_path("segment", wildcards.dataset, "qc.json", subject=s)
                for s in self.checkpoints.passed(wildcards.dataset, labelled=False)]

    def volume_masks(self, wildcards: Any) -> list[str]:
        """The preprocessed masks of every labelled subject of a training dataset (the training volumes)."""
        return [entity_path("preprocess", wildcards.dataset, "mask.nii.gz", subject=s)
                for s in self.checkpoints.passed(wildcards.dataset)]

    def volume_images(self, wildcards: Any) -> list[str]:
        """The preprocessed images of the same subjects (their spacing)."""
        return [entity_path("preprocess", wildcards.dataset, "image.nii.gz", subject=s)
                for s in self.checkpoints.passed(wildcards.dataset)]

    # ---- export -------------------------------------------------------------------------------------
    def export_files(self, wildcards: Any) -> list[str]:
        """Every file of every fold of ``{method}`` of ``{dataset}``."""
        return sorted({p for fold in self.method_roles(wildcards.dataset, wildcards.method).values()
                       for p in fold.values()})

    def export_settings(self, wildcards: Any) -> dict[str, Any]:
        """The bundle's card (:meth:`card`) and per fold its roles and subject counts (canonical)."""
        folds = {fold: {"roles": roles,
                        "n_train": len(self.checkpoints.fold_subjects(wildcards.dataset, fold, "train")),
                        "n_val": len(self.checkpoints.fold_subjects(wildcards.dataset, fold, "val"))}
                 for fold, roles in self.method_roles(wildcards.dataset, wildcards.method).items()}
        return canonical(self.card(wildcards.dataset, wildcards.method) | {"folds": folds})


__all__ = ["SegmentInputs"]

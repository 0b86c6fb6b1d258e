"""Studies: a paper's experiment over a dataset's methods, with its own table and one target.

``hip_transfer`` (the hip paper's Table 1): rows of ``{label, method}``, each a trained method with
interactive rounds; the reference row is the full recipe. Each round before the last is scored on
the test subjects of the study's folds by ``evaluate_rounds``; the last round is the method's model,
scored by the evaluation stage (the same numbers as the dataset's tables).

``spar`` (the SPAR paper's comparison): a dataset (leave-one-out) whose scored methods are the plain
segmenter and the regularised ones; its tables are the comparison (mean ± SD, paired tests) and each
regularised method's first fold gets the figure of its latent codes per epoch (``spar_latents``).

``knee_shape_fitting`` (the knee paper's Table 1): rows of ``{label, method}`` among the dataset's scored
methods; the table quotes the paper's own numbers beside ours and adds the landmark errors and seconds per
inference step of the shape-fitting rows (the dataset's ``landmark_errors`` tables).

With a user's own datasets only the studies the user declares run
(:func:`mskseg.workflow.compose.compose_config`); a study is checked here, when the workflow loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mskseg.errors import ConfigError
from mskseg.workflow.cartilage_design import CARTILAGE_DESIGN, DesignStudy
from mskseg.workflow.checkpoints import CheckpointTables
from mskseg.workflow.config import canonical
from mskseg.workflow.paths import entity_path, model_path
from mskseg.workflow.plan import Plan
from mskseg.workflow.segmentation import count_patients, subset_subjects
from mskseg.workflow.settings import TABLE_METRICS, evaluation_settings, table_settings

#: the study that regenerates the hip paper's Table 1
HIP_TRANSFER = "hip_transfer"
#: the SPAR paper's comparison of regularisers
SPAR = "spar"
#: the knee paper's Table 1, landmark errors and runtime per step
KNEE_SHAPE_FITTING = "knee_shape_fitting"
#: the three-plane fusion paper's per-plane and fused scores
THREE_PLANE_FUSION = "three_plane_fusion"


def _training_dataset(key: str, block: Mapping[str, Any], plan: Plan) -> str:
    """The study's ``dataset``, checked to be one this run trains on."""
    dataset = block["dataset"]
    if dataset not in plan.training:
        raise ConfigError(f"{key}.dataset: {dataset!r} is not a dataset this run trains on ({list(plan.training)})")
    return dataset


def _rows(key: str, block: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The block's ``rows`` as (label, method), the labels checked to differ."""
    rows = tuple((str(r["label"]), str(r["method"])) for r in block["rows"])
    labels = [label for label, _ in rows]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{key}.rows: labels must differ, got {labels}")
    return rows


def _metrics(key: str, block: Mapping[str, Any]) -> tuple[str, ...]:
    """The block's ``metrics``, checked to be table metrics."""
    metrics = tuple(block["metrics"])
    unknown = [m for m in metrics if m not in TABLE_METRICS]
    if unknown:
        raise ConfigError(f"{key}.metrics: unknown {unknown}; known: {list(TABLE_METRICS)}")
    return metrics


@dataclass(frozen=True)
class TransferStudy:
    """The parsed ``studies.hip_transfer`` block: dataset, rows (label, method), reference label, metrics,
    how many folds (None: all), whether ``all`` includes it."""

    dataset: str
    rows: tuple[tuple[str, str], ...]
    reference: str
    metrics: tuple[str, ...]
    folds: int | None
    in_all: bool

    @classmethod
    def from_config(cls, block: Mapping[str, Any], plan: Plan) -> TransferStudy:
        """Parse and check the block against the plan (errors name the key)."""
        key = f"studies.{HIP_TRANSFER}"
        dataset = _training_dataset(key, block, plan)
        rows = _rows(key, block)
        labels = [label for label, _ in rows]
        trained = plan[dataset].trained
        for label, method in rows:
            spec = trained.get(method)
            if spec is None:
                raise ConfigError(f"{key}.rows: {label}: {method!r} is not a trained method of {dataset!r} "
                                  f"({list(trained)})")
            if spec.interactive is None or len(spec.views) != 1:
                raise ConfigError(f"{key}.rows: {label}: method {method!r} must fine-tune in interactive rounds on "
                                  f"one view (interactive: {spec.interactive}, views: {spec.views})")
        reference = block.get("reference") or labels[0]
        if reference not in labels:
            raise ConfigError(f"{key}.reference: {reference!r} is not a row label ({labels})")
        return cls(dataset, rows, reference, _metrics(key, block), block.get("folds"),
                   bool(block.get("in_all", True)))


@dataclass(frozen=True)
class SparStudy:
    """The parsed ``studies.spar`` block: the dataset whose scored methods are the comparison (its tables:
    mean ± SD and paired tests), the regularised ones among them (their latent-code figures), whether
    ``all`` includes it."""

    dataset: str
    methods: tuple[str, ...]
    regularised: tuple[str, ...]
    in_all: bool

    @classmethod
    def from_config(cls, block: Mapping[str, Any], plan: Plan) -> SparStudy:
        """Parse and check the block against the plan (errors name the key)."""
        key = f"studies.{SPAR}"
        dataset = _training_dataset(key, block, plan)
        methods = tuple(plan[dataset].evaluated)
        trained = plan[dataset].trained
        regularised = tuple(m for m in methods if m in trained and trained[m].regularisation is not None)
        if not regularised:
            raise ConfigError(f"{key}: dataset {dataset!r} scores no method with a `regularisation` block "
                              f"(evaluation.methods: {list(methods)})")
        return cls(dataset, methods, regularised, bool(block.get("in_all", False)))


@dataclass(frozen=True)
class KneeStudy:
    """The parsed ``studies.knee_shape_fitting`` block: dataset, rows (label, method) of scored methods, the
    metrics of its tables, whether ``all`` includes it; ``fitted``: the rows' shape-fitting methods (their
    landmark errors and step times join the table)."""

    dataset: str
    rows: tuple[tuple[str, str], ...]
    metrics: tuple[str, ...]
    fitted: tuple[str, ...]
    in_all: bool

    @classmethod
    def from_config(cls, block: Mapping[str, Any], plan: Plan) -> KneeStudy:
        """Parse and check the block against the plan (errors name the key)."""
        key = f"studies.{KNEE_SHAPE_FITTING}"
        dataset = _training_dataset(key, block, plan)
        rows = _rows(key, block)
        scored = plan[dataset].evaluated
        for label, method in rows:
            if method not in scored:
                raise ConfigError(f"{key}.rows: {label}: {method!r} is not a scored method of {dataset!r} "
                                  f"(evaluation.methods: {scored})")
        fitted = tuple(m for _, m in rows if m in plan[dataset].fitted)
        return cls(dataset, rows, _metrics(key, block), fitted, bool(block.get("in_all", True)))


@dataclass(frozen=True)
class PlaneStudy:
    """The parsed ``studies.three_plane_fusion`` block: the dataset, its ``three_plane`` method, whether ``all``
    includes it."""

    dataset: str
    method: str
    in_all: bool

    @classmethod
    def from_config(cls, block: Mapping[str, Any], plan: Plan) -> PlaneStudy:
        """Parse and check the block against the plan (errors name the key)."""
        key = f"studies.{THREE_PLANE_FUSION}"
        dataset = _training_dataset(key, block, plan)
        method = str(block["method"])
        spec = plan[dataset].trained.get(method)
        if spec is None or spec.view != "three_plane":
            three = [m for m, s in plan[dataset].trained.items() if s.view == "three_plane"]
            raise ConfigError(f"{key}.method: {method!r} is not a trained method of {dataset!r} with view "
                              f"three_plane ({three})")
        return cls(dataset, method, bool(block.get("in_all", False)))


class StudyInputs:
    """Input functions of the studies' rules (``evaluate_rounds``, ``hip_transfer_table``) and targets."""

    def __init__(self, plan: Plan, tables: CheckpointTables) -> None:
        self.plan = plan
        self.checkpoints = tables
        studies = plan.studies
        self.transfer = TransferStudy.from_config(studies[HIP_TRANSFER], plan) if HIP_TRANSFER in studies else None
        self.spar = SparStudy.from_config(studies[SPAR], plan) if SPAR in studies else None
        self.knee = KneeStudy.from_config(studies[KNEE_SHAPE_FITTING], plan) if KNEE_SHAPE_FITTING in studies else None
        self.planes = (PlaneStudy.from_config(studies[THREE_PLANE_FUSION], plan) if THREE_PLANE_FUSION in studies
                       else None)
        self.design = (DesignStudy.from_config(studies[CARTILAGE_DESIGN], plan) if CARTILAGE_DESIGN in studies
                       else None)

    def _transfer(self) -> TransferStudy:
        if self.transfer is None:
            raise ConfigError(f"no studies.{HIP_TRANSFER} block in the configuration")
        return self.transfer

    def study_folds(self) -> list[str]:
        """The hip_transfer study's folds: the dataset's first ``folds`` (all when not set)."""
        study = self._transfer()
        folds = self.checkpoints.folds(study.dataset)
        return folds[:study.folds] if study.folds else folds

    def round_inputs(self, wildcards: Any) -> dict[str, Any]:
        """``evaluate_rounds``: the model's files (its one view) and the fold's test images and masks."""
        d, m, f = wildcards.dataset, wildcards.method, wildcards.fold
        view = self.plan[d].trained[m].views[0]
        subjects = self.checkpoints.fold_subjects(d, f, "test")
        files = {kind: self.plan[d].view_model(suffix, method=m, fold=f, view=view)
                 for kind, suffix in (("model", "model.pt"), ("info", "model.json"), ("round_weights", "rounds.pt"),
                                      ("rounds", "rounds.csv"))}
        files["images"] = [entity_path("preprocess", d, "image.nii.gz", subject=s) for s in subjects]
        files["masks"] = [entity_path("preprocess", d, "mask.nii.gz", subject=s) for s in subjects]
        return files

    def round_subjects(self, wildcards: Any) -> list[str]:
        """The fold's test subjects (the order of ``round_inputs``' images)."""
        return self.checkpoints.fold_subjects(wildcards.dataset, wildcards.fold, "test")

    def round_settings(self, wildcards: Any) -> dict[str, Any]:
        """What the round scores depend on besides the files: the evaluation settings (canonical)."""
        return canonical(evaluation_settings(self.plan[wildcards.dataset].config))

    def latents_input(self, wildcards: Any) -> str:
        """``spar_latents``: the latent codes a regularised training recorded."""
        spec = self.plan[wildcards.dataset].trained[wildcards.method]
        return self.plan[wildcards.dataset].view_model("latents.npz", method=wildcards.method, fold=wildcards.fold,
                                                       view=spec.views[0])

    def _cells(self) -> list[tuple[str, str, str]]:
        """(label, method, fold) of every trained model the table reads."""
        study = self._transfer()
        return [(label, method, f) for label, method in study.rows for f in self.study_folds()]

    def transfer_inputs(self, wildcards: Any = None) -> dict[str, list[str]]:
        """The table's inputs: per row and fold the earlier rounds' scores and the rounds table; per test
        subject the evaluation stage's metrics of the last round (in :meth:`transfer_params`' order)."""
        study = self._transfer()
        d = study.dataset
        inputs: dict[str, list[str]] = {"earlier": [], "rounds": [], "final": []}
        for _, method, f in self._cells():
            view = self.plan[d].trained[method].views[0]
            inputs["earlier"].append(entity_path("evaluation", d, "rounds.csv", method=method, fold=f))
            inputs["rounds"].append(self.plan[d].view_model("rounds.csv", method=method, fold=f, view=view))
            inputs["final"] += [entity_path("evaluation", d, "metrics.csv", subject=s, method=method)
                                for s in self.checkpoints.fold_subjects(d, f, "test")]
        return inputs

    def transfer_params(self, wildcards: Any = None) -> dict[str, Any]:
        """Rows, reference, metrics and the (label, fold, subject) of each final metrics file (canonical)."""
        study = self._transfer()
        cells = [[label, f] for label, _, f in self._cells()]
        final = [[label, f, s] for label, _, f in self._cells()
                 for s in self.checkpoints.fold_subjects(study.dataset, f, "test")]
        return canonical({"dataset": study.dataset, "labels": [label for label, _ in study.rows],
                          "methods": [method for _, method in study.rows], "reference": study.reference,
                          "metrics": list(study.metrics), "cells": cells, "final": final})


    def _knee(self) -> KneeStudy:
        if self.knee is None:
            raise ConfigError(f"no studies.{KNEE_SHAPE_FITTING} block in the configuration")
        return self.knee

    def knee_inputs(self, wildcards: Any = None) -> dict[str, Any]:
        """The knee study's inputs: each row's collected metrics and, with a shape-fitting row, the dataset's
        landmark-error and step tables."""
        study = self._knee()
        d = study.dataset
        inputs: dict[str, Any] = {"metrics": [entity_path("evaluation", d, "metrics.csv", method=m)
                                              for _, m in study.rows]}
        if study.fitted:
            inputs["errors"] = entity_path("tables", d, "landmarks.tsv")
            inputs["steps"] = entity_path("tables", d, "steps.tsv")
        return inputs

    def knee_params(self, wildcards: Any = None) -> dict[str, Any]:
        """Rows, metrics and the dataset's table settings (canonical)."""
        study = self._knee()
        return canonical({"dataset": study.dataset, "rows": [list(r) for r in study.rows],
                          "metrics": list(study.metrics),
                          "tables": table_settings(self.plan[study.dataset].config)})


    def _planes(self) -> PlaneStudy:
        if self.planes is None:
            raise ConfigError(f"no studies.{THREE_PLANE_FUSION} block in the configuration")
        return self.planes

    def plane_inputs(self, wildcards: Any) -> dict[str, Any]:
        """``evaluate_planes``: every plane's model and description, the fold's fusion weights, its test images
        and masks."""
        d, m, f = wildcards.dataset, wildcards.method, wildcards.fold
        views = self.plan[d].trained[m].views
        subjects = self.checkpoints.fold_subjects(d, f, "test")
        return {"models": [self.plan[d].view_model("model.pt", method=m, fold=f, view=v) for v in views],
                "infos": [self.plan[d].view_model("model.json", method=m, fold=f, view=v) for v in views],
                "fusion": model_path(d, "fusion.json", method=m, fold=f),
                "images": [entity_path("preprocess", d, "image.nii.gz", subject=s) for s in subjects],
                "masks": [entity_path("preprocess", d, "mask.nii.gz", subject=s) for s in subjects]}

    def plane_table_inputs(self, wildcards: Any = None) -> dict[str, list[str]]:
        """``three_plane_table``: every fold's plane scores, confusions and fusion weights (in fold order)."""
        study = self._planes()
        d, m = study.dataset, study.method
        folds = self.checkpoints.folds(d)
        return {"scores": [entity_path("evaluation", d, "planes.csv", method=m, fold=f) for f in folds],
                "confusions": [entity_path("evaluation", d, "planeconfusion.csv", method=m, fold=f) for f in folds],
                "fusions": [model_path(d, "fusion.json", method=m, fold=f) for f in folds]}

    def plane_params(self, wildcards: Any = None) -> dict[str, Any]:
        """Dataset, method, folds and the dataset's table settings (canonical)."""
        study = self._planes()
        return canonical({"dataset": study.dataset, "method": study.method,
                          "folds": self.checkpoints.folds(study.dataset),
                          "tables": table_settings(self.plan[study.dataset].config)})

    def _design(self) -> DesignStudy:
        if self.design is None:
            raise ConfigError(f"no studies.{CARTILAGE_DESIGN} block in the configuration")
        return self.design

    def _experiment_methods(self) -> list[str]:
        return list(dict.fromkeys(m for _, rows in self._design().experiments for _, m in rows))

    def design_inputs(self, wildcards: Any = None) -> dict[str, list[str]]:
        """``cartilage_design_table``: the collected metrics of every method the study reads, the field-of-view
        slices of the experiments' methods (in :meth:`design_params`' order)."""
        study = self._design()
        d = study.dataset
        return {"metrics": [entity_path("evaluation", d, "metrics.csv", method=m) for m in study.methods],
                "fovs": [entity_path("evaluation", d, "fov.csv", method=m) for m in self._experiment_methods()],
                "splits": [self.checkpoints.splits_table(d)]}  # the patients of each size run (params)

    def design_params(self, wildcards: Any = None) -> dict[str, Any]:
        """Experiments, training-size runs with the patients each trained on (the mean over folds), structure,
        metrics, alpha, the field of view's bins (canonical)."""
        study = self._design()
        plan = self.plan[study.dataset]
        patients = {}
        for _, runs in study.sizes:
            for _, _, method in runs:
                subset = plan.trained[method].train_subjects
                counts = []
                for fold in self.checkpoints.folds(study.dataset):
                    train = self.checkpoints.fold_subjects(study.dataset, fold, "train")
                    chosen = train if subset is None else subset_subjects(plan, train, subset)
                    counts.append(count_patients(plan, chosen))
                patients[method] = sum(counts) / len(counts)
        return canonical({"dataset": study.dataset, "structure": study.structure,
                          "experiments": [[name, [list(r) for r in rows]] for name, rows in study.experiments],
                          "sizes": [[arch, [list(r) for r in runs]] for arch, runs in study.sizes],
                          "patients": patients, "metrics": list(study.metrics), "alpha": study.alpha,
                          "methods": study.methods, "fov_methods": self._experiment_methods(),
                          "bins": table_settings(plan.config)["fov_bins"],
                          "decimals": table_settings(plan.config)["decimals"]})


__all__ = ["HIP_TRANSFER", "KNEE_SHAPE_FITTING", "SPAR", "THREE_PLANE_FUSION", "KneeStudy", "PlaneStudy", "SparStudy",
           "StudyInputs", "TransferStudy"]

"""Input functions of the report rules: the run's provenance, each dataset's QC page, the overlay galleries and
the speed/accuracy table (what ``snakemake --report report.html`` gathers beyond the stages' own figures)."""

from __future__ import annotations

from typing import Any

from mskseg.reporting.gallery import GallerySettings
from mskseg.workflow.checkpoints import CheckpointTables
from mskseg.workflow.config import canonical
from mskseg.workflow.paths import entity_path
from mskseg.workflow.plan import Plan
from mskseg.workflow.predictions import PredictionInputs
from mskseg.workflow.segmentation import SegmentationInputs
from mskseg.workflow.shape_fitting import fitting_path

PROVENANCE = "results/report/provenance.html"
SPEED_TABLE = "results/tables/speed_accuracy.csv"
SPEED_PAGE = "results/report/speed_accuracy.html"


def gallery_path(dataset: str, method: str) -> str:
    """The folder of a method's gallery PNGs.

    >>> gallery_path("knee", "unet2d")
    'results/report/knee/method-unet2d_gallery'
    """
    return entity_path("report", dataset, "gallery", method=method)


def _benchmark(dataset: str, kind: str, **entities: str) -> str:
    return entity_path("benchmarks", dataset, f"{kind}.tsv", **entities)


class ReportInputs:
    """``run_provenance``, ``qc_page``, ``overlay_gallery`` and ``speed_accuracy``."""

    def __init__(self, plan: Plan, tables: CheckpointTables) -> None:
        self.plan = plan
        self.default = plan.default_plan()  # the speed table covers what `all` runs (not a study outside it)
        self.checkpoints = tables
        self.predictions = PredictionInputs(plan, tables)
        self.segmentation = SegmentationInputs(plan, tables)

    def config(self, wildcards: Any = None) -> dict[str, Any]:
        """The resolved configuration (canonical): the provenance page shows it, and re-runs when it changes."""
        return canonical(dict(self.plan.config))

    def gallery_settings(self, wildcards: Any) -> dict[str, Any]:
        """The ``report.gallery`` block (validated here: a bad value stops the run naming it) and the labels."""
        block = (self.plan.config.get("report") or {}).get("gallery") or {}
        settings = GallerySettings.from_config(block)
        return canonical({"slices_per_plane": settings.slices_per_plane, "max_subjects": settings.max_subjects,
                          "metric": settings.metric, "labels": self.plan[wildcards.dataset].labels})

    def gallery_subjects(self, wildcards: Any) -> list[str]:
        """The dataset's test subjects, in the order of :meth:`gallery_inputs`' lists."""
        return self.checkpoints.evaluated(wildcards.dataset)

    def gallery_inputs(self, wildcards: Any) -> dict[str, Any]:
        """The method's collected metrics and, per test subject, image, prediction and reference."""
        d = wildcards.dataset
        subjects = self.checkpoints.evaluated(d)
        preds = []
        for s in subjects:
            preds.append(self.predictions.path(_Wildcards(dataset=d, method=wildcards.method, subject=s)))
        return {"metrics": entity_path("evaluation", d, "metrics.csv", method=wildcards.method),
                "images": [entity_path("preprocess", d, "image.nii.gz", subject=s) for s in subjects],
                "predictions": preds,
                "references": [entity_path("preprocess", d, "mask.nii.gz", subject=s) for s in subjects]}

    def _ran(self) -> list[tuple[str, str]]:
        """(dataset, method) of every scored method the default target trains or fits."""
        return [(d, m) for d, plan in self.default.training.items() for m in plan.evaluated
                if m in plan.trained or m in plan.fitted]

    def _training(self, d: str, method: str, fold: str) -> tuple[list[str], list[str], list[str]]:
        """(model files, benchmark files, other methods named) of every training job ``method`` needs in a fold."""
        plan = self.plan[d]
        if method in plan.fitted:
            spec = plan.fitted[method]
            models = [fitting_path(d, "regression.pt", method=method, fold=fold, part=p) for p in spec.parts]
            marks = [_benchmark(d, "regression", method=method, fold=fold, part=p) for p in spec.parts]
            if spec.refinement is not None:
                models.append(fitting_path(d, "refinement.pt", method=method, fold=fold))
                marks.append(_benchmark(d, "refinement", method=method, fold=fold))
            pre_models, pre_marks, _ = self._training(d, spec.presegmentation, fold)
            return models + pre_models, marks + pre_marks, [f"{spec.presegmentation} (pre-segmentation)"]
        spec = plan.trained[method]
        models, marks, shared = [], [], []
        for v in spec.views:
            owner = plan.model_owner(method, v)
            models.append(plan.view_model("model.pt", method=method, fold=fold, view=v))
            marks.append(_benchmark(d, "train", method=owner, fold=fold, view=v))
            if owner != method:
                shared.append(f"{owner} ({v} model)")
            if spec.pretrain is not None:
                owner = self.segmentation.pretrain_owner(d, method)
                marks.append(_benchmark(d, "pretrain", method=owner, fold=fold, view=v))
                if owner != method:
                    shared.append(f"{owner} (pre-training)")
            if spec.regularisation is not None:
                key = spec.regularisation.autoencoder_key(spec.train.seed)
                marks.append(_benchmark(d, "autoencoder", autoencoder=key, fold=fold, view=v))
        if spec.view == "three_plane":
            marks.append(_benchmark(d, "fusion", method=method, fold=fold))
        return models, marks, shared

    def speed_methods(self, wildcards: Any = None) -> list[dict[str, Any]]:
        """Per method that ran: its metrics table, training and prediction benchmark files, prediction records."""
        out = []
        for d, m in self._ran():
            marks: list[str] = []
            shared: list[str] = []
            for fold in self.checkpoints.folds(d):
                _, fold_marks, fold_shared = self._training(d, m, fold)
                marks += fold_marks
                shared += [s for s in fold_shared if s not in shared]
            subjects = self.checkpoints.evaluated(d)
            out.append({"dataset": d, "method": m,
                        "metrics": entity_path("evaluation", d, "metrics.csv", method=m),
                        "training": list(dict.fromkeys(marks)), "shared": shared,
                        "predictions": [_benchmark(d, "predict", subject=s, method=m) for s in subjects],
                        "records": [entity_path("predictions", d, "pred.json", subject=s, method=m)
                                    for s in subjects]})
        return out

    def speed_inputs(self, wildcards: Any = None) -> list[str]:
        """The files the table is made from that the workflow declares (benchmark files are not rule outputs:
        the models and records stand for them)."""
        files = []
        for d, m in self._ran():
            for fold in self.checkpoints.folds(d):
                files += self._training(d, m, fold)[0]
            files.append(entity_path("evaluation", d, "metrics.csv", method=m))
            files += [entity_path("predictions", d, "pred.json", subject=s, method=m)
                      for s in self.checkpoints.evaluated(d)]
        return list(dict.fromkeys(files))


class _Wildcards:
    def __init__(self, **values: str) -> None:
        self.__dict__.update(values)


__all__ = ["PROVENANCE", "SPEED_PAGE", "SPEED_TABLE", "ReportInputs", "gallery_path"]

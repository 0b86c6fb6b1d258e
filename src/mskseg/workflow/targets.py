"""The files each named target (``snakemake qc``, ``shape``, ``tables`` ...) asks for.

A target known only after a checkpoint (who passed QC, the splits) asks the checkpoint, so
Snakemake plans it once the checkpoint's table exists.
"""

from __future__ import annotations

from typing import Any

from mskseg.workflow.checkpoints import CheckpointTables
from mskseg.workflow.paths import entity_path, model_path
from mskseg.workflow.plan import Plan
from mskseg.workflow.report import PROVENANCE, SPEED_PAGE, SPEED_TABLE, gallery_path
from mskseg.workflow.settings import table_metrics
from mskseg.workflow.shape_fitting import fitting_path


class Targets:
    """One method per target of the Snakefile. The stage targets (and so ``all``) leave out the datasets that
    only studies outside ``all`` name (their own targets make them)."""

    def __init__(self, plan: Plan, tables: CheckpointTables) -> None:
        self.full = plan
        self.plan = plan.default_plan()  # the stage targets leave out datasets only a study outside `all` names
        self.checkpoints = tables

    def data(self, wildcards: Any = None) -> list[str]:
        """Every manifest, and the phantoms with their true landmarks."""
        targets = [entity_path("data", d, "manifest.tsv") for d in self.plan.datasets]
        for d in self.plan.synthetic:
            targets += [entity_path("synthetic", d, kind, subject=s) for s in self.plan[d].subjects
                        for kind in ("image.nii.gz", "landmarks.csv")]
        return targets

    def qc(self, wildcards: Any = None) -> list[str]:
        """Every dataset's QC table and subject list."""
        return [entity_path("qc", d, name) for d in self.plan.datasets for name in ("qc_table.tsv", "subjects.tsv")]

    def splits(self, wildcards: Any = None) -> list[str]:
        """Every dataset's splits."""
        return [entity_path("splits", d, "splits.tsv") for d in self.plan.training]

    def preprocess(self, wildcards: Any = None) -> list[str]:
        """Every passed subject's preprocessed image, mask and record, and each dataset's table."""
        targets = []
        for d in self.plan.training:
            targets += [entity_path("preprocess", d, kind, subject=s) for s in self.checkpoints.passed(d)
                        for kind in ("image.nii.gz", "mask.nii.gz", "preprocess.json")]
            targets.append(entity_path("preprocess", d, "preprocess.tsv"))
        return targets

    def landmarks(self, wildcards: Any = None) -> list[str]:
        """Reference and correspondence tables of every shape model (known once QC is; not waiting for splits)."""
        return [path for d, plan in self.plan.with_shape_models.items() for bone in plan.shape_models
                for path in (entity_path("registration", d, "reference.tsv", bone=bone),
                             entity_path("landmarks", d, "correspondence.tsv", bone=bone))]

    def shape_models(self, wildcards: Any = None) -> list[str]:
        """Every fold's shape model and its quality report (known once the splits are)."""
        return [entity_path("shape", d, kind, bone=bone, fold=f) for d, plan in self.plan.with_shape_models.items()
                for bone in plan.shape_models for f in self.checkpoints.folds(d)
                for kind in ("model.npz", "quality.tsv", "quality.png", "modes.png")]

    def models(self, wildcards: Any = None) -> list[str]:
        """Models, learning curves and fusion weights of every trained method that is scored."""
        targets = []
        for d, plan in self.plan.datasets.items():
            for m, spec in plan.trained.items():
                if m not in plan.evaluated:
                    continue
                suffixes = ("model.pt", "curve.png", "latents.npz" if spec.regularisation else "rounds.csv")
                for f in self.checkpoints.folds(d):
                    targets += [plan.view_model(suffix, method=m, fold=f, view=v)
                                for v in spec.views for suffix in suffixes]
                    if spec.view == "three_plane":
                        targets.append(model_path(d, "fusion.json", method=m, fold=f))
            for m, fitted in plan.fitted.items():
                if m not in plan.evaluated:
                    continue
                for f in self.checkpoints.folds(d):
                    targets += [fitting_path(d, "regression.pt", method=m, fold=f, part=p) for p in fitted.parts]
                    if fitted.refinement is not None:
                        targets.append(fitting_path(d, "refinement.pt", method=m, fold=f))
        return targets

    def tables(self, wildcards: Any = None) -> list[str]:
        """Every dataset's tables and plots (named from the config alone; the rules that make them ask the splits)."""
        return [path for d, plan in self.plan.datasets.items() if plan.evaluated for path in self.dataset_tables(d)]

    def dataset_tables(self, d: str) -> list[str]:
        """A dataset's tables, statistics and plots."""
        plan = self.full[d]
        metrics = table_metrics(plan.config)
        targets = [entity_path("tables", d, "tables.md")]
        targets += [entity_path("tables", d, suffix, metric=m) for m in metrics
                    for suffix in ("table.md", "table.html", "table.csv", "table.tex", "stats.csv")]
        targets += [entity_path("plots", d, "boxplot.png", metric=m) for m in metrics]
        targets.append(entity_path("plots", d, "fov.png"))
        if any(m in plan.fitted for m in plan.evaluated):
            targets += [entity_path("tables", d, "landmarks.md"), entity_path("tables", d, "landmarks.html")]
        if plan.config["evaluation"]["training_size"]:
            targets += [entity_path("plots", d, "powerlaw.png", study="trainingsize", metric=m)
                        for m in plan.config["evaluation"]["training_size_metrics"]]
        return targets

    def segment(self, wildcards: Any = None) -> list[str]:
        """Every scan to segment that passed QC: its segmentation, overlay and meshes; each dataset's QC table."""
        targets = []
        for d, plan in self.plan.segmenting.items():
            model = plan.segment["model"]
            if "dataset" in model:  # the model's subjects and folds are asked here, so that Snakemake resolves
                self.checkpoints.passed(model["dataset"])  # every checkpoint a scan's inputs need in one pass
                self.checkpoints.folds(model["dataset"])
            targets += [entity_path("segment", d, kind, subject=s) for s in self.checkpoints.passed(d, labelled=False)
                        for kind in ("dseg.nii.gz", "overlay.png")]
            targets.append(entity_path("segment", d, "qc.tsv"))
        return targets

    def hip_transfer(self, wildcards: Any = None) -> list[str]:
        """The hip paper's Table 1 (studies.hip_transfer), when configured."""
        if "hip_transfer" not in self.full.studies:
            return []
        return [entity_path("studies", "hip_transfer", suffix) for suffix in ("table.md", "table.html", "table.csv")]

    def knee_shape_fitting(self, wildcards: Any = None) -> list[str]:
        """The knee paper's Table 1 with landmark errors and step times (studies.knee_shape_fitting)."""
        if "knee_shape_fitting" not in self.full.studies:
            return []
        return [entity_path("studies", "knee_shape_fitting", suffix) for suffix in ("table.md", "table.html",
                                                                                     "table.csv")]

    def three_plane_fusion(self, wildcards: Any = None) -> list[str]:
        """Each plane alone and fused, blending weights, confusion matrices (studies.three_plane_fusion)."""
        if "three_plane_fusion" not in self.full.studies:
            return []
        return [entity_path("studies", "three_plane_fusion", suffix)
                for suffix in ("table.md", "table.html", "table.csv", "confusion.png")]

    def cartilage_design(self, wildcards: Any = None) -> list[str]:
        """The cartilage paper's experiments, field of view and training-size fits (studies.cartilage_design)."""
        if "cartilage_design" not in self.full.studies:
            return []
        return [entity_path("studies", "cartilage_design", suffix)
                for suffix in ("table.md", "table.html", "table.csv", "powerlaw.csv", "fov.png", "powerlaw.png")]

    def spar(self, wildcards: Any = None) -> list[str]:
        """The SPAR comparison (studies.spar), when configured: its dataset's tables and, for each regularised
        method, the latent codes per epoch of its first fold."""
        block = self.full.studies.get("spar")
        if not block:
            return []
        d = block["dataset"]
        plan = self.full[d]
        first = self.checkpoints.folds(d)[0]
        regularised = [m for m in plan.evaluated if m in plan.trained and plan.trained[m].regularisation is not None]
        return self.dataset_tables(d) + [entity_path("plots", d, "latents.png", method=m, fold=first)
                                         for m in regularised]

    def studies(self, wildcards: Any = None) -> list[str]:
        """The studies the default target makes (their ``in_all``)."""
        studies = self.full.studies
        targets = self.hip_transfer() if studies.get("hip_transfer", {}).get("in_all", True) else []
        targets += self.knee_shape_fitting() if studies.get("knee_shape_fitting", {}).get("in_all", True) else []
        targets += self.three_plane_fusion() if studies.get("three_plane_fusion", {}).get("in_all", False) else []
        targets += self.cartilage_design() if studies.get("cartilage_design", {}).get("in_all", False) else []
        return targets + (self.spar() if studies.get("spar", {}).get("in_all", False) else [])

    def report(self, wildcards: Any = None) -> list[str]:
        """What the report gathers beyond the stages' figures: the run's provenance, each dataset's QC page, an
        overlay gallery per scored method and, when a method was trained or fitted, the speed/accuracy table."""
        targets = [PROVENANCE] + [entity_path("report", d, "qc.html") for d in self.plan.datasets]
        targets += [gallery_path(d, m) for d, plan in self.plan.training.items() for m in plan.evaluated]
        if any(m in p.trained or m in p.fitted for p in self.plan.training.values() for m in p.evaluated):
            targets += [SPEED_TABLE, SPEED_PAGE]
        return targets

    def export_models(self, wildcards: Any = None) -> list[str]:
        """A bundle of every scored trained and shape-fitting method of every training dataset."""
        return [entity_path("bundles", d, "bundle.tar.gz", method=m) for d, plan in self.plan.training.items()
                for m in plan.evaluated if m in plan.trained or m in plan.fitted]


__all__ = ["Targets"]

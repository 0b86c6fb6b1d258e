"""The parse-time plan: what a resolved configuration declares, worked out once when the workflow loads.

For every dataset: its config block, its manifest (subjects known before any job runs, so QC is
planned for all of them), its shape models and its methods by kind, the trained ones parsed into
:class:`~mskseg.nn.method.MethodSpec`. Across datasets: the names the wildcards may take.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from mskseg.errors import ConfigError
from mskseg.io.manifest import SUBJECT_ID_PATTERN, normalise_manifest
from mskseg.io.sources import read_source
from mskseg.nn.method import VIEW_NAMES, MethodSpec
from mskseg.nn.shape_method import WHOLE_VOLUME, ShapeFittingSpec
from mskseg.synthetic.cohort import patient_of, subject_ids, timepoint_of
from mskseg.workflow.batches import BATCH_PATTERN
from mskseg.workflow.paths import entity_path, model_path
from mskseg.workflow.settings import TABLE_METRICS, evaluated_methods, shape_models, source_kind

#: a pattern that matches nothing: the constraint of a wildcard with no allowed value
NOTHING = "(?!)"


def synthetic_manifest(name: str, spec: Mapping[str, Any], root: str = "results") -> pd.DataFrame:
    """The manifest of a synthetic dataset: the files its ``synthesize_subject`` jobs write."""
    rows = []
    for i, subject in enumerate(subject_ids(spec)):
        def path(kind: str, s: str = subject) -> str:
            return entity_path("synthetic", name, f"{kind}.nii.gz", subject=s, root=root)

        rows.append({"subject": subject, "patient": patient_of(spec, i), "timepoint": timepoint_of(spec, i),
                     "image": path("image"), "label": "" if spec.get("unlabelled") else path("mask"),
                     "label_poor": path("poormask") if spec.get("poor_labels") else ""})
    return normalise_manifest(pd.DataFrame(rows), None, f"datasets.{name} (synthetic)")


def dataset_manifest(name: str, dataset: Mapping[str, Any], root: str = "results") -> pd.DataFrame:
    """The manifest of any dataset (synthetic, a manifest file or a folder layout)."""
    kind = source_kind(dataset)
    if kind == "synthetic":
        return synthetic_manifest(name, dataset["source"]["synthetic"], root)
    return read_source(kind, dataset["source"][kind], f"datasets.{name}.source.{kind}")


def _pattern(names: Any) -> str:
    return "|".join(names) or NOTHING


@dataclass(frozen=True, eq=False)
class DatasetPlan:
    """One dataset as the workflow plans it."""

    name: str
    config: Mapping[str, Any]
    manifest: pd.DataFrame = field(repr=False)

    @property
    def kind(self) -> str:
        """The source kind: synthetic, manifest or layout."""
        return source_kind(self.config)

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"

    @cached_property
    def subjects(self) -> list[str]:
        """Every subject of the manifest, in its order."""
        return self.manifest["subject"].tolist()

    @cached_property
    def _rows(self) -> dict[str, dict[str, Any]]:
        return {str(row["subject"]): row for row in self.manifest.to_dict("records")}

    def row(self, subject: str) -> dict[str, Any]:
        """The manifest row of ``subject``."""
        try:
            return self._rows[subject]
        except KeyError:
            raise ValueError(f"{self.name}: no subject {subject!r} in the manifest") from None

    @property
    def labels(self) -> dict[str, int]:
        return dict(self.config["labels"])

    @property
    def segment(self) -> dict[str, Any] | None:
        """The ``segment`` block of a dataset of scans to segment (None for a dataset that trains and scores)."""
        block = self.config.get("segment")
        return dict(block) if block else None

    @cached_property
    def shape_models(self) -> dict[str, list[tuple[str, bool]]]:
        """model -> [(structure, mirrored)], empty when the shape stage is off or there are no bones (or the
        dataset only holds scans to segment)."""
        if self.segment or not (self.config["shape"]["enabled"] and self.config.get("bones")):
            return {}
        return shape_models(self.config)

    def bone_of(self, structure: str) -> tuple[str, bool]:
        """(shape model, mirrored) of a structure."""
        for bone, members in self.shape_models.items():
            for s, mirrored in members:
                if s == structure:
                    return bone, mirrored
        raise ValueError(f"{structure} belongs to no shape model of {self.name}")

    @property
    def methods(self) -> dict[str, Mapping[str, Any]]:
        """The methods it trains or scores (none for a dataset of scans to segment)."""
        return {} if self.segment else dict(self.config.get("methods") or {})

    def methods_of_kind(self, kind: str) -> list[str]:
        """The dataset's methods of ``kind`` (trained, shape_fitting, perturbed, files), in config order."""
        return [m for m, spec in self.methods.items() if spec["kind"] == kind]

    @cached_property
    def trained(self) -> dict[str, MethodSpec]:
        """The trained methods, parsed (a bad setting fails here, when the workflow loads)."""
        maps = self.config.get("weight_maps") or {}
        return {m: MethodSpec.from_config(m, self.methods[m], maps) for m in self.methods_of_kind("trained")}

    @cached_property
    def _model_owners(self) -> dict[tuple[str, str], str]:
        """(method, view) -> the first trained method (config order) whose model of that view trains alike."""
        first: dict[str, str] = {}
        owners = {}
        for method, spec in self.trained.items():
            for view in spec.views:
                owners[(method, view)] = first.setdefault(spec.view_training_key(view), method)
        return owners

    def model_owner(self, method: str, view: str) -> str:
        """The method whose training job makes ``method``'s model of ``view``: ``method`` itself unless an
        earlier method trains that model with equal settings (:meth:`MethodSpec.view_training_key`), which
        is then shared -- nothing is trained twice."""
        return self._model_owners[(method, view)]

    def view_model(self, suffix: str, *, method: str, fold: str, view: str) -> str:
        """A file of ``method``'s model of ``view`` in ``fold`` (``model.pt``, ``model.json``, ``history.csv``,
        ``rounds.csv`` ...), at its owner's path (:meth:`model_owner`)."""
        return model_path(self.name, suffix, method=self.model_owner(method, view), fold=fold, view=view)

    @cached_property
    def fitted(self) -> dict[str, ShapeFittingSpec]:
        """The shape-fitting methods (knee paper), parsed against the dataset (a bad setting fails here)."""
        return {m: ShapeFittingSpec.from_config(m, self.methods[m], self.config, self.shape_models)
                for m in self.methods_of_kind("shape_fitting")}

    @property
    def evaluated(self) -> list[str]:
        """Methods scored, in table order."""
        return [] if self.segment else evaluated_methods(self.config)


@dataclass(frozen=True, eq=False)
class Plan:
    """Every dataset of a resolved configuration."""

    config: Mapping[str, Any]
    datasets: dict[str, DatasetPlan]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], root: str = "results") -> Plan:
        """The plan of a resolved configuration (:func:`mskseg.workflow.config.resolve_config`); every trained
        method is parsed here, so a bad setting stops the workflow before any job runs."""
        plan = cls(config, {name: DatasetPlan(name, ds, dataset_manifest(name, ds, root))
                            for name, ds in config["datasets"].items()})
        for dataset in plan.datasets.values():
            _ = dataset.trained, dataset.fitted
        for dataset in plan.segmenting.values():
            check_segment(plan, dataset)
        return plan

    def __getitem__(self, dataset: str) -> DatasetPlan:
        return self.datasets[dataset]

    @property
    def batch_size(self) -> int:
        return int(self.config["batch_subjects"])

    @property
    def synthetic(self) -> list[str]:
        """Datasets generated by the workflow."""
        return [d for d, p in self.datasets.items() if p.synthetic]

    @property
    def segmenting(self) -> dict[str, DatasetPlan]:
        """Datasets of scans to segment."""
        return {d: p for d, p in self.datasets.items() if p.segment}

    @property
    def training(self) -> dict[str, DatasetPlan]:
        """Datasets that are split, preprocessed with their labels, trained on and scored."""
        return {d: p for d, p in self.datasets.items() if not p.segment}

    @property
    def with_shape_models(self) -> dict[str, DatasetPlan]:
        return {d: p for d, p in self.datasets.items() if p.shape_models}

    def _union(self, values: Any) -> list[str]:
        return sorted({v for p in self.datasets.values() for v in values(p)})

    def wildcard_constraints(self) -> dict[str, str]:
        """The regular expression each wildcard must match."""
        return {
            "dataset": _pattern(self.datasets),
            "subject": SUBJECT_ID_PATTERN,
            "bone": _pattern(self._union(lambda p: p.shape_models)),
            "structure": _pattern(self._union(lambda p: [s for m in p.shape_models.values() for s, _ in m])),
            "fold": "[A-Za-z0-9]+",
            "method": _pattern(self._union(lambda p: p.methods)),
            "metric": _pattern(TABLE_METRICS),
            "view": _pattern(VIEW_NAMES),
            "wmap": _pattern(self._union(lambda p: p.config.get("weight_maps") or {})),
            "batch": BATCH_PATTERN,
            "part": _pattern([*self._union(lambda p: p.shape_models), WHOLE_VOLUME]),
        }

    def method_pattern(self, kind: str) -> str:
        """The ``method`` constraint of a rule that makes one kind's predictions."""
        return _pattern(self._union(lambda p: p.methods_of_kind(kind)))

    @property
    def studies(self) -> dict[str, Mapping[str, Any]]:
        """The configured studies whose dataset this plan has (the default target's plan leaves some out)."""
        return {name: block for name, block in (self.config.get("studies") or {}).items()
                if block.get("dataset") in self.datasets}

    def trained_pattern(self, *, regularised: bool) -> str:
        """The ``method`` constraint of the plain (``train_model``) or the regularised (SPAR,
        ``train_regularised``) training rule."""
        return _pattern(self._union(lambda p: [m for m, s in p.trained.items()
                                               if (s.regularisation is not None) == regularised]))

    def default_plan(self) -> Plan:
        """The plan of the default target ``all``: without the datasets that only studies outside it
        (``in_all: false``) name and no scans to segment use."""
        flags: dict[str, list[bool]] = {}
        for study in self.studies.values():
            flags.setdefault(study["dataset"], []).append(bool(study.get("in_all", True)))
        used = {(p.segment or {}).get("model", {}).get("dataset") for p in self.segmenting.values()}
        skipped = {d for d, kept in flags.items() if not any(kept) and d not in used}
        return Plan(self.config, {d: p for d, p in self.datasets.items() if d not in skipped})

    def synthetic_pattern(self) -> str:
        """The ``dataset`` constraint of the phantom generator."""
        return _pattern(self.synthetic)


def check_segment(plan: Plan, dataset: DatasetPlan) -> None:
    """A dataset's ``segment.model`` names a trained or shape-fitting method of a training dataset of this run
    with the same labels, or a bundle (read and checked by the rule that uses it)."""
    key = f"datasets.{dataset.name}.segment.model"
    model = dict(dataset.segment["model"])
    if ("bundle" in model) == ("dataset" in model or "method" in model):
        raise ConfigError(f"{key}: give either bundle or dataset and method, got {sorted(model)}")
    if "bundle" in model:
        return
    ref, method = model.get("dataset"), model.get("method")
    if ref not in plan.training:
        raise ConfigError(f"{key}.dataset: {ref!r} is not a dataset this run trains on ({list(plan.training)})")
    found = plan[ref].trained.get(method) or plan[ref].fitted.get(method)
    if found is None:
        raise ConfigError(f"{key}.method: {method!r} is not a trained or shape_fitting method of {ref!r} "
                          f"({list(plan[ref].trained) + list(plan[ref].fitted)})")
    if plan[ref].labels != dataset.labels:
        raise ConfigError(f"datasets.{dataset.name}.labels: {dataset.labels} differ from the model's dataset "
                          f"{ref!r}: {plan[ref].labels}")


__all__ = ["NOTHING", "DatasetPlan", "Plan", "check_segment", "dataset_manifest", "synthetic_manifest"]

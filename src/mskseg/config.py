"""Reading the workflow configuration: scale overlays, dataset sources, per-stage settings.

Snakemake validates the config against ``schemas/config.schema.yaml``; the checks here are the
ones a schema cannot state (names that must refer to declared labels, a synthetic dataset's
labels matching its phantom). Errors name the config key.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from mskseg.io.layouts import LAYOUTS, scan_layout
from mskseg.io.manifest import add_covariates, normalise_manifest, read_manifest
from mskseg.paths import entity_path
from mskseg.qc import QCSettings


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted (recursively), as plain dicts and lists.

    Snakemake re-runs a job when its params change, comparing them as written; params in a
    canonical order make reordering keys in ``config.yaml`` change nothing.
    """
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay`` merged in, mappings recursively, everything else replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_scale(config: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``scales[scale]`` onto the config.

    A scale never replaces a dataset's real data: where a dataset's source is a manifest or a
    layout and the overlay brings another kind of source, the overlay's source is ignored.
    """
    scale = config.get("scale", "demo")
    scales = config.get("scales", {}) or {}
    if scale not in scales and scale != "demo":
        raise ConfigError(f"scale: {scale!r} is not defined under 'scales' (defined: {', '.join(scales) or 'none'})")
    overlay = copy.deepcopy(scales.get(scale, {}) or {})
    for name, ds_overlay in (overlay.get("datasets") or {}).items():
        base_ds = (config.get("datasets") or {}).get(name)
        if base_ds is None:
            continue
        new_src, old_src = ds_overlay.get("source"), base_ds.get("source")
        if isinstance(new_src, Mapping) and isinstance(old_src, Mapping) and set(new_src) != set(old_src):
            del ds_overlay["source"]
    overlay.setdefault("datasets", {})
    overlay["datasets"] = {k: v for k, v in overlay["datasets"].items() if k in (config.get("datasets") or {})}
    return deep_merge(config, overlay)


def source_kind(dataset: Mapping[str, Any]) -> str:
    (kind,) = dataset["source"].keys()
    return kind


def synthetic_subject_ids(dataset: Mapping[str, Any]) -> list[str]:
    spec = dataset["source"]["synthetic"]
    return [f"{spec['kind']}{i:03d}" for i in range(int(spec.get("n_subjects", 8)))]


def synthetic_patient(dataset: Mapping[str, Any], index: int) -> str:
    spec = dataset["source"]["synthetic"]
    return f"{spec['kind']}p{index // int(spec.get('patients', 1)):03d}"


def synthetic_manifest(name: str, dataset: Mapping[str, Any], root: str = "results") -> pd.DataFrame:
    """The manifest of a synthetic dataset (paths of the files the generator rule writes)."""
    spec = dataset["source"]["synthetic"]
    rows = []
    for i, subject in enumerate(synthetic_subject_ids(dataset)):
        rows.append({
            "subject": subject,
            "patient": synthetic_patient(dataset, i),
            "timepoint": i % int(spec.get("patients", 1)),
            "image": entity_path("synthetic", name, "image.nii.gz", subject=subject, root=root),
            "label": entity_path("synthetic", name, "mask.nii.gz", subject=subject, root=root),
            "label_poor": entity_path("synthetic", name, "poormask.nii.gz", subject=subject, root=root)
            if spec.get("poor_labels") else "",
        })
    return normalise_manifest(pd.DataFrame(rows), None, f"datasets.{name} (synthetic)")


def dataset_manifest(name: str, dataset: Mapping[str, Any], root: str = "results") -> pd.DataFrame:
    """The manifest of any dataset, as known when the workflow is parsed."""
    kind = source_kind(dataset)
    src = dataset["source"][kind]
    if kind == "synthetic":
        return synthetic_manifest(name, dataset, root)
    frame = read_manifest(src["path"]) if kind == "manifest" else scan_layout(src["name"], src["path"])
    if src.get("covariates"):
        frame = add_covariates(frame, src["covariates"])
    return frame


def mask_geometry(dataset: Mapping[str, Any]) -> str:
    if "mask_geometry" in dataset:
        return str(dataset["mask_geometry"])
    if source_kind(dataset) == "layout":
        return LAYOUTS[dataset["source"]["layout"]["name"]].mask_geometry
    return "check"


def check_dataset(name: str, dataset: Mapping[str, Any]) -> None:
    """Cross-field checks the schema cannot express; raises :class:`ConfigError` naming the key."""
    key = f"datasets.{name}"
    labels = dataset["labels"]
    values = list(labels.values())
    dup = sorted({v for v in values if values.count(v) > 1})
    if dup:
        raise ConfigError(f"{key}.labels: label value(s) {dup} used by more than one structure")

    def known(field: str, names: list[str]) -> None:
        unknown = [n for n in names if n not in labels]
        if unknown:
            raise ConfigError(f"{key}.{field}: {unknown} not among the declared labels {list(labels)}")

    known("bones", list(dataset.get("bones", [])))
    known("cartilage", list(dataset.get("cartilage", [])))
    known("expected_structures", list(dataset.get("expected_structures", [])))
    known("preprocess.crop.structures", list(dataset.get("preprocess", {}).get("crop", {}).get("structures", [])))
    for pair in dataset.get("symmetric_pairs", []):
        known("symmetric_pairs", list(pair))
    if source_kind(dataset) == "synthetic":
        from mskseg.synthetic import (
            LABELS,  # imported here: only synthetic datasets need it
        )

        kind = dataset["source"]["synthetic"]["kind"]
        if dict(labels) != LABELS[kind]:
            raise ConfigError(f"{key}.labels: the synthetic {kind} phantom writes {LABELS[kind]}, "
                              f"the config declares {dict(labels)}")
    shape = dataset.get("shape", {})
    for model, members in (shape.get("models") or {}).items():
        known(f"shape.models.{model}", list(members))
    known("shape.mirror", list(shape.get("mirror", [])))
    if shape.get("enabled", True) and dataset.get("bones"):
        models = shape_models(dataset)
        owners: dict[str, str] = {}
        for model, members in models.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", model):
                raise ConfigError(f"{key}.shape.models: model name {model!r} must be letters and digits "
                                  "(it names files and a wildcard)")
            for structure, _ in members:
                if structure in owners:
                    raise ConfigError(f"{key}.shape.models: {structure!r} is in both {owners[structure]!r} "
                                      f"and {model!r}")
                owners[structure] = model
    check_evaluation(name, dataset)
    split = dataset.get("split", {})
    if split.get("method") == "fixed" and not split.get("file"):
        raise ConfigError(f"{key}.split.file: method 'fixed' needs a split file")
    if split.get("stratify") and source_kind(dataset) == "synthetic":
        raise ConfigError(f"{key}.split.stratify: synthetic datasets have no column to stratify by")


def qc_settings(dataset: Mapping[str, Any], qc: Mapping[str, Any]) -> QCSettings:
    tol = qc.get("tolerance", {})
    return QCSettings(
        labels=dict(dataset["labels"]),
        expected=tuple(dataset.get("expected_structures", ())),
        mask_geometry=mask_geometry(dataset),
        spacing_range_mm=tuple(qc.get("spacing_range_mm", (0.05, 10.0))),  # type: ignore[arg-type]
        spacing_tol_mm=float(tol.get("spacing_mm", 1e-3)),
        origin_tol_mm=float(tol.get("origin_mm", 1e-2)),
        direction_tol=float(tol.get("direction", 1e-3)),
    )


def preprocess_settings(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :class:`mskseg.preprocess.PreprocessSettings` for a dataset."""
    pre = dataset.get("preprocess", {})
    crop = pre.get("crop", {})
    return {
        "orientation": pre.get("orientation", "LPS"),
        "spacing": tuple(pre["spacing"]) if pre.get("spacing") else None,
        "image_interpolator": pre.get("image_interpolator", "linear"),
        "mask_interpolator": pre.get("mask_interpolator", "nearest"),
        "modality": dataset["modality"],
        "clip_percentiles": tuple(pre.get("clip_percentiles", (0.5, 99.5))),
        "crop_labels": tuple(int(dataset["labels"][s]) for s in crop.get("structures", [])),
        "crop_margin_mm": float(crop.get("margin_mm", 10.0)),
    }


def _stem(pair: Sequence[str]) -> str:
    """Common name of a left/right pair: ``femur_left, femur_right -> femur``."""
    left, right = pair
    prefix = os.path.commonprefix([left, right]).rstrip("_-. ")
    return prefix if prefix else f"{left}{right}"


def shape_models(dataset: Mapping[str, Any]) -> dict[str, list[tuple[str, bool]]]:
    """Shape models of a dataset: name -> ``[(structure, mirrored), ...]``.

    Explicit ``shape.models`` win; otherwise each bone is its own model and the two members
    of a symmetric pair share one, named after their common stem with ``_``/``-`` removed
    (``femur_left`` + ``femur_right`` -> ``femur``). Mirrored structures are
    ``shape.mirror`` or, by default, the left (first) member of each symmetric pair.
    """
    shape = dataset.get("shape", {})
    pairs = [list(p) for p in dataset.get("symmetric_pairs", [])]
    mirror = set(shape.get("mirror") or [p[0] for p in pairs])
    explicit = shape.get("models")
    if explicit:
        return {name: [(s, s in mirror) for s in members] for name, members in explicit.items()}
    bones = list(dataset.get("bones", []))
    models: dict[str, list[tuple[str, bool]]] = {}
    paired = {s for p in pairs for s in p}
    for bone in bones:
        if bone not in paired:
            models[re.sub(r"[^A-Za-z0-9]", "", bone)] = [(bone, bone in mirror)]
    for pair in pairs:
        members = [s for s in pair[::-1] if s in bones]  # right first: the unmirrored side
        if members:
            models[re.sub(r"[^A-Za-z0-9]", "", _stem(pair))] = [(s, s in mirror) for s in members]
    return models


#: the keys of a dataset's ``shape`` block each shape rule reads (so that changing one setting
#: re-runs only the rules that use it: e.g. ``n_landmarks`` re-runs no registration)
SHAPE_PARTS: dict[str, tuple[str, ...]] = {
    "selection": ("reference", "selection_spacing_mm", "working_spacing_mm", "margin_mm"),
    "registration": ("backend", "working_spacing_mm", "margin_mm", "min_dice", "max_folding", "affine", "demons",
                     "ants"),
    "landmarks": ("n_landmarks", "landmark_seed"),
    "model": ("procrustes_scale", "n_modes", "variance_kept", "model_roles", "quality"),
}


def shape_settings(dataset: Mapping[str, Any], part: str | None = None) -> dict[str, Any]:
    """The dataset's ``shape`` block (or the keys one rule reads) with the labels attached."""
    block = dict(dataset.get("shape", {}))
    out = block if part is None else {k: block[k] for k in SHAPE_PARTS[part] if k in block}
    out["labels"] = dict(dataset["labels"])
    return out


# ---- evaluation ------------------------------------------------------------------------------
#: metrics that can have a table (see schemas/config.schema.yaml, evaluation.tables.metrics)
TABLE_METRICS = ("dice", "iou", "voe", "ravd", "hd_mm", "hd95_mm", "assd_mm", "gap_dice", "collisions", "mean_iou",
                 "ref_volume_mm3", "pred_volume_mm3")
PERTURB_KEYS = ("displacement_mm", "smoothness_mm", "n_blobs", "blob_radius_mm", "offset_mm", "seed")


def check_evaluation(name: str, dataset: Mapping[str, Any]) -> None:
    """Methods, evaluation structures and the training-size study refer to things that exist."""
    key = f"datasets.{name}"
    labels = dataset["labels"]
    methods = dataset.get("methods") or {}
    ev = dataset.get("evaluation") or {}
    for field, names in (("evaluation.methods", ev.get("methods") or []),
                         ("evaluation.training_size", list(ev.get("training_size") or {}))):
        unknown = [m for m in names if m not in methods]
        if unknown:
            raise ConfigError(f"{key}.{field}: {unknown} not among the dataset's methods {list(methods)}")
    structures = list(labels) + ["all"]
    for field, names in (("evaluation.fov.structures", (ev.get("fov") or {}).get("structures") or []),
                         ("evaluation.tables.structures", (ev.get("tables") or {}).get("structures") or [])):
        unknown = [s for s in names if s not in structures]
        if unknown:
            raise ConfigError(f"{key}.{field}: {unknown} not among the declared labels {list(labels)} (or 'all')")
    for method, spec in methods.items():
        if spec.get("kind") == "files" and "{subject}" not in str(spec.get("path", "")):
            raise ConfigError(f"{key}.methods.{method}.path: needs a {{subject}} placeholder")


def evaluated_methods(dataset: Mapping[str, Any]) -> list[str]:
    """Methods scored, in table order."""
    ev = dataset.get("evaluation") or {}
    return list(ev.get("methods") or (dataset.get("methods") or {}))


def perturb_settings(dataset: Mapping[str, Any], method: str) -> dict[str, Any]:
    """Keyword arguments of :class:`mskseg.perturb.PerturbSettings` for a perturbed method."""
    spec = dataset["methods"][method]
    return {k: spec[k] for k in PERTURB_KEYS if k in spec}


def evaluation_settings(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """What one subject's metrics depend on (so table settings never redo the metrics)."""
    ev = dataset.get("evaluation") or {}
    return {
        "percentile": float(ev.get("hd_percentile", 95)),
        "gap_eps_mm": ev.get("gap_eps_mm", 10.0),
        "collision_eps_mm": ev.get("collision_eps_mm", 2.0),
        "fov_axis": (ev.get("fov") or {}).get("axis", "LR"),
        "threads": int(ev.get("threads", 1)),
    }


def table_settings(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """What the tables, statistics and plots of a dataset depend on."""
    ev = dataset.get("evaluation") or {}
    tables = ev.get("tables") or {}
    fov = ev.get("fov") or {}
    stats = ev.get("stats") or {}
    return {
        "methods": evaluated_methods(dataset),
        "structures": list(tables.get("structures") or (list(dataset["labels"]) + ["all"])),
        "decimals": int(tables.get("decimals", 3)),
        "style": tables.get("style", "mean_sd"),
        "alpha": float(stats.get("alpha", 0.05)),
        "p_adjust": stats.get("p_adjust", "holm"),
        "fov_structures": list(fov.get("structures") or list(dataset["labels"])),
        "fov_bins": int(fov.get("bins", 20)),
    }


def table_metrics(dataset: Mapping[str, Any]) -> list[str]:
    ev = dataset.get("evaluation") or {}
    return list((ev.get("tables") or {}).get("metrics") or ["dice", "voe", "hd_mm", "hd95_mm", "assd_mm"])

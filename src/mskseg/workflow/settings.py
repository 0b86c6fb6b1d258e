"""Each stage's settings of one dataset, read from its (resolved) config block.

Every function takes a dataset's config mapping and returns what one rule depends on, so that a
setting reaches only the rules that use it (``n_landmarks`` re-runs no registration, a table's
decimals re-run no metric). Errors name the config key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mskseg.errors import ConfigError
from mskseg.io.layouts import LAYOUTS
from mskseg.qc import QCSettings

#: metrics that can have a table (see schemas/config.schema.yaml, evaluation.tables.metrics)
TABLE_METRICS = ("dice", "iou", "voe", "ravd", "hd_mm", "hd95_mm", "assd_mm", "gap_dice", "collisions", "mean_iou",
                 "ref_volume_mm3", "pred_volume_mm3")
PERTURB_KEYS = ("displacement_mm", "smoothness_mm", "n_blobs", "blob_radius_mm", "offset_mm", "seed")
#: the keys of a dataset's ``shape`` block each shape rule reads (so that changing one setting
#: re-runs only the rules that use it: e.g. ``n_landmarks`` re-runs no registration)
SHAPE_PARTS: dict[str, tuple[str, ...]] = {
    "selection": ("reference", "selection_spacing_mm", "working_spacing_mm", "margin_mm"),
    "registration": ("backend", "working_spacing_mm", "margin_mm", "min_dice", "max_folding", "affine", "demons",
                     "ants"),
    "landmarks": ("n_landmarks", "landmark_seed"),
    "model": ("procrustes_scale", "n_modes", "variance_kept", "model_roles", "quality"),
}
#: the parts that see their model's ``shape.trim`` entry (as ``trim``; absent when the model is not trimmed,
#: so that a config without trimming gives the same params as before it existed)
TRIMMED_PARTS = ("selection", "registration", "landmarks")


def source_kind(dataset: Mapping[str, Any]) -> str:
    """``synthetic``, ``manifest`` or ``layout``: the one key of the dataset's ``source``."""
    (kind,) = dataset["source"].keys()
    return kind


def mask_geometry(dataset: Mapping[str, Any]) -> str:
    """The mask-header policy: the dataset's ``mask_geometry``, else its layout's, else ``check``."""
    if "mask_geometry" in dataset:
        return str(dataset["mask_geometry"])
    if source_kind(dataset) == "layout":
        return LAYOUTS[dataset["source"]["layout"]["name"]].mask_geometry
    return "check"


def qc_settings(dataset: Mapping[str, Any], qc: Mapping[str, Any]) -> QCSettings:
    """The quality checks of a dataset (its labels and policies, the run's ``qc`` block)."""
    tol = qc.get("tolerance", {})
    return QCSettings(
        labels=dict(dataset["labels"]),
        expected=tuple(dataset.get("expected_structures", ())),
        undeclared=dataset.get("undeclared_labels", "error"),
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
        **({"keep_labels": tuple(int(v) for v in dataset["labels"].values())}
           if dataset.get("undeclared_labels") == "background" else {}),
    }


def _stem(pair: Sequence[str]) -> str:
    """Common name of a left/right pair: ``femur_left, femur_right -> femur``."""
    left, right = pair
    same = next((i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b), min(len(left), len(right)))
    prefix = left[:same].rstrip("_-. ")
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


def shape_settings(dataset: Mapping[str, Any], part: str | None = None, model: str | None = None) -> dict[str, Any]:
    """The dataset's ``shape`` block (or the keys one rule reads, :data:`SHAPE_PARTS`) with the labels attached;
    for a part of :data:`TRIMMED_PARTS` and a ``model`` with a ``shape.trim`` entry, that entry as ``trim`` (a
    model's trim re-runs only its own rules)."""
    block = dict(dataset.get("shape", {}))
    out = block if part is None else {k: block[k] for k in SHAPE_PARTS[part] if k in block}
    trim = (block.get("trim") or {}).get(model) if part in TRIMMED_PARTS else None
    if trim:
        out["trim"] = dict(trim)
    out["labels"] = dict(dataset["labels"])
    return out


def check_trim(key: str, dataset: Mapping[str, Any]) -> None:
    """``shape.trim`` names shape models of the dataset (``key``: ``datasets.<name>``)."""
    trim = (dataset.get("shape") or {}).get("trim") or {}
    if not trim:
        return
    models = list(shape_models(dataset))
    unknown = [m for m in trim if m not in models]
    if unknown:
        raise ConfigError(f"{key}.shape.trim: {unknown} not among the dataset's shape models {models}")


# ---- evaluation ------------------------------------------------------------------------------
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
    structures = [*list(labels), "all"]
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
    """Keyword arguments of :class:`mskseg.synthetic.perturb.PerturbSettings` for a perturbed method."""
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
        "structures": list(tables.get("structures") or ([*list(dataset["labels"]), "all"])),
        "decimals": int(tables.get("decimals", 3)),
        "style": tables.get("style", "mean_sd"),
        "alpha": float(stats.get("alpha", 0.05)),
        "p_adjust": stats.get("p_adjust", "holm"),
        "fov_structures": list(fov.get("structures") or list(dataset["labels"])),
        "fov_bins": int(fov.get("bins", 20)),
    }


def table_metrics(dataset: Mapping[str, Any]) -> list[str]:
    """The metrics that get a table and a box plot."""
    ev = dataset.get("evaluation") or {}
    return list((ev.get("tables") or {}).get("metrics") or ["dice", "voe", "hd_mm", "hd95_mm", "assd_mm"])



# ---- post-processing -------------------------------------------------------------------------
#: ``keep_components: {structure: all}``: more components than a label map can hold (the step keeps them all)
ALL_COMPONENTS = 2**31 - 1


def postprocess_settings(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset's ``postprocess`` block as :class:`mskseg.postprocess.PostprocessSettings` keyword values
    (``keep_components`` by label value, as the label maps hold them; ``all`` as :data:`ALL_COMPONENTS`).

    ``symmetric`` (default: true when the dataset declares ``symmetric_pairs``) becomes
    ``symmetric_pairs``, the dataset's pairs as ``[[left value, right value], ...]``; the key is left out
    when the step is off or there are no pairs (so the settings of a dataset without pairs do not change).
    """
    block = dict(dataset.get("postprocess") or {})
    labels = dataset["labels"]
    block["keep_components"] = {str(labels[s]): ALL_COMPONENTS if n == "all" else int(n)
                                for s, n in (block.get("keep_components") or {}).items()}
    pairs = [list(p) for p in dataset.get("symmetric_pairs") or []]
    symmetric = block.pop("symmetric", None)
    if pairs and (symmetric is None or bool(symmetric)):
        block["symmetric_pairs"] = [[int(labels[a]), int(labels[b])] for a, b in pairs]
    return block


__all__ = ["ALL_COMPONENTS", "PERTURB_KEYS", "SHAPE_PARTS", "TABLE_METRICS", "TRIMMED_PARTS", "check_evaluation",
           "check_trim", "evaluated_methods", "evaluation_settings", "mask_geometry", "perturb_settings",
           "postprocess_settings", "preprocess_settings", "qc_settings", "shape_models", "shape_settings",
           "source_kind", "table_metrics", "table_settings"]

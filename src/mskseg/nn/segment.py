"""Segmenting a new scan in its own space: every fold of a trained method, averaged, back onto the scan's grid.

:func:`segment_scan` is what the ``segment_scan`` rule runs for one scan without labels:

1. the scan is read with its full header and preprocessed as the model's training data was
   (:class:`~mskseg.preprocess.PreprocessSettings` from the model's card, without the crop, which needs a
   mask; with ``spacing: null`` the training set's median spacing, from the QC volumes file);
2. every fold's model predicts its class probabilities (:func:`fold_probabilities`: one or more views
   blended by the fusion weights for a ``trained`` method, the whole shape fitting for a ``shape_fitting``
   one) and the folds' probabilities are averaged (the fold ensemble); the argmax is post-processed with
   the model's settings;
3. the averaged probabilities are resampled (linearly) onto the scan's own grid and the argmax and the
   post-processing happen there (a label map resampled by nearest neighbour would alias thin structures
   such as cartilage): the ``_dseg.nii.gz`` carries exactly the scan's shape, spacing, origin and
   direction; a TSV lists its label values and names;
4. a three-plane overlay PNG and a surface mesh per structure (STL or VTK, LPS world mm);
5. the label-free QC row (:mod:`mskseg.metrics.labelfree`: volumes as z-scores against the training
   masks, collisions between structures that must not touch, each single-bone shape model's plausibility).

A model is a :class:`SegmentModel`: its card (as :mod:`mskseg.nn.bundle` writes it) and its files by fold
and role, from this run or from a bundle (:func:`model_from_bundle`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mskseg.io.atomic import atomic_path
from mskseg.io.locks import folder_lock
from mskseg.io.meshes import structure_meshes, write_stl, write_vtk
from mskseg.io.tables import read_json, write_json, write_table
from mskseg.io.volumes import read_volume, write_volume
from mskseg.metrics.labelfree import LabelFreeThresholds, VolumeReference, flag_segmentation, scan_metrics
from mskseg.metrics.shape_plausibility import shape_plausibility
from mskseg.nn import device as dev
from mskseg.nn.bundle import check_compatible, load_bundle
from mskseg.nn.data import Case, decode_labels
from mskseg.nn.fusion import read_fusion_weights
from mskseg.nn.model_info import load_trained
from mskseg.nn.predict import predict_case
from mskseg.nn.shape_fitting import fit_volume, load_fitting_models
from mskseg.nn.shape_fitting_train import read_points
from mskseg.nn.shape_method import ShapeFittingSpec
from mskseg.postprocess import PostprocessSettings, postprocess_labels
from mskseg.preprocess import PreprocessSettings
from mskseg.preprocess.pipeline import preprocess_pair, restore_to_original
from mskseg.preprocess.resample import resample_like
from mskseg.reporting.overlays import overlay_figure
from mskseg.shape.storage import load_shape_model
from mskseg.volume import Volume

__all__ = ["SegmentModel", "fold_probabilities", "model_from_bundle", "segment_dataset_scan", "segment_scan",
           "volume_reference_file"]

PathLike = str | os.PathLike


@dataclass(frozen=True)
class SegmentModel:
    """A trained method to segment with: its card (``method``, ``kind``, ``labels``, ``preprocess``,
    ``method_config``) and ``folds``: fold -> role -> file."""

    card: Mapping[str, Any]
    folds: Mapping[str, Mapping[str, Path]]

    @property
    def labels(self) -> dict[str, int]:
        """Structure -> label value, in label-value order."""
        return dict(sorted(((str(k), int(v)) for k, v in self.card["labels"].items()), key=lambda kv: kv[1]))

    @property
    def channel_values(self) -> list[int]:
        """The label value of each foreground channel of the networks' probabilities, as their training stored
        it (the first model description found; the card's label order, which the workflow writes alike, else)."""
        for role in ("info", "pre_info"):
            for files in self.folds.values():
                info = next((Path(p) for r, p in files.items() if r.startswith(f"{role}/")), None)
                if info is not None:
                    return [int(v) for v in read_json(info)["label_values"]]
        return [int(v) for v in self.card["labels"].values()]

    def first(self, role: str) -> Path | None:
        """The file of ``role`` of the first fold that has one (the QC's files are the same in every fold)."""
        return next((Path(f[role]) for f in self.folds.values() if role in f), None)


def model_from_bundle(path: PathLike, *, labels: Mapping[str, int], preprocess: Mapping[str, Any], where: str,
                      extract_to: PathLike | None = None) -> SegmentModel:
    """A bundle's model, its checksums verified and its labels and preprocessing checked against the dataset's
    (:func:`mskseg.nn.bundle.check_compatible`: a mismatch raises naming ``where`` and what differs)."""
    with folder_lock(Path(f"{path}.lock")):  # scans segmented in parallel extract an archive once
        bundle = load_bundle(Path(path), extract_to=Path(extract_to) if extract_to else None)
    check_compatible(bundle, labels=labels, preprocess=preprocess, where=where)
    card = {"method": bundle.method, "kind": bundle.kind, "labels": bundle.labels, "preprocess": bundle.preprocess,
            "method_config": bundle.method_config}
    return SegmentModel(card=card, folds={name: dict(fold.files) for name, fold in bundle.folds.items()})


def _keyed(files: Mapping[str, Path], role: str) -> dict[str, Path]:
    return {r.split("/", 1)[1]: Path(p) for r, p in files.items() if r.startswith(f"{role}/")}


def _shape_spec(model: SegmentModel) -> ShapeFittingSpec:
    config = model.card["method_config"]
    method = model.card["method"]
    dataset = {"methods": {method: config["entry"], **config["presegmentation"]}, "labels": model.labels,
               "cartilage": config.get("cartilage") or []}
    bones = {bone: [(info["structure"], False)] for bone, info in config["bones"].items()}
    return ShapeFittingSpec.from_config(method, config["entry"], dataset, bones)


def fold_probabilities(model: SegmentModel, files: Mapping[str, Path], image: Volume, *, device: torch.device,
                       precision: str) -> np.ndarray:
    """One fold's class probabilities ``(K, X, Y, Z)`` (float32, background first) on a preprocessed image."""
    values = model.channel_values
    if model.card["kind"] == "trained":
        models, infos = _keyed(files, "model"), _keyed(files, "info")
        trained = [load_trained(models[v], infos[v], device) for v in sorted(models)]
        weights = read_fusion_weights(files["fusion"]) if "fusion" in files else None
        case = Case("scan", np.asarray(image.array, dtype=np.float32), None, None, image.spacing, image.direction)
        batch = int((model.card["method_config"]["entry"].get("inference") or {}).get("batch_size", 32))
        return predict_case(trained, case, weights=weights, device=device, precision=precision, batch_size=batch)
    spec = _shape_spec(model)
    pre_models, pre_infos = _keyed(files, "pre_model"), _keyed(files, "pre_info")
    view = next(iter(pre_models))
    regressions, infos = _keyed(files, "regression"), _keyed(files, "regression_info")
    fitted = load_fitting_models(
        presegmentation=(pre_models[view], pre_infos[view]),
        regressions=[(regressions[p], infos[p]) for p in spec.parts], shape_models=_keyed(files, "shape_model"),
        shape_headers=_keyed(files, "shape_header"),
        refinement=(files["refinement"], files["refinement_info"]) if "refinement" in files else None,
        selection=files.get("selection"), device=device)
    result = fit_volume(fitted, image, spec, values, precision=precision, keep_scores=True)
    assert result.scores is not None
    return result.scores


def volume_reference_file(masks: list[PathLike], images: list[PathLike], labels: Mapping[str, int],
                          path: PathLike) -> dict[str, Any]:
    """The training masks' volumes per structure (:class:`VolumeReference`) and the median spacing of their
    images (``spacing_mm``: the grid new scans are resampled to when the preprocessing keeps the native one),
    written as JSON."""
    from mskseg.metrics.labelfree import structure_volumes

    reference = VolumeReference.from_volumes([structure_volumes(read_volume(m), labels) for m in masks])
    spacing = np.median([read_volume(i).spacing for i in images], axis=0) if images else None
    out = reference.to_dict() | {"spacing_mm": None if spacing is None else [float(s) for s in spacing]}
    write_json(path, out)
    return out


def _preprocessing(model: SegmentModel) -> PreprocessSettings:
    pre = dict(model.card["preprocess"])
    volumes = model.first("volumes")
    if pre.get("spacing") is None and volumes is not None:
        pre["spacing"] = read_json(volumes).get("spacing_mm")
    pre["crop_labels"] = ()  # a crop needs a mask; normalisation does not depend on it (it comes first)
    pre["spacing"] = tuple(pre["spacing"]) if pre.get("spacing") else None
    pre["clip_percentiles"] = tuple(pre.get("clip_percentiles", (0.5, 99.5)))
    return PreprocessSettings(**pre)


def _shape_checks(dseg: Volume, model: SegmentModel, logger: logging.Logger) -> dict[str, dict[str, Any]]:
    results = {}
    for bone, info in (model.card["method_config"].get("bones") or {}).items():
        needed = [model.first(f"qc_{role}/{bone}") for role in ("shape_model", "shape_header", "reference_mask",
                                                                "reference_landmarks")]
        if any(p is None for p in needed):
            continue
        shape_model, header, reference_mask, landmarks = needed
        result = shape_plausibility(dseg, model.labels[info["structure"]], reference_mask=read_volume(reference_mask),
                                    reference_landmarks=read_points(landmarks),
                                    model=load_shape_model(shape_model, header),
                                    registration_settings=info["registration"], mirrored=bool(info["mirrored"]),
                                    name=info["structure"])
        logger.info("%s shape: %s", info["structure"], {k: v for k, v in result.items() if k != "reason"})
        results[info["structure"]] = result
    return results


def segment_scan(subject: str, image: PathLike, model: SegmentModel, *, outputs: Mapping[str, PathLike],
                 overlays: bool = True, meshes: str = "stl", qc: Mapping[str, Any] | None = None,
                 reference: PathLike | None = None, device: str = "auto", precision: str = "auto",
                 logger: logging.Logger | None = None) -> dict[str, Any]:
    """Segment one scan (module docstring); ``outputs``: ``dseg`` (NIfTI), ``labels`` (TSV), ``record`` (the
    QC row, JSON), ``overlay`` (PNG) and ``meshes`` (a folder). With a ``reference`` label file on the scan's
    grid, the row also holds each structure's Dice in the scan's own space (``<structure>.dice``). Returns the
    QC row, with ``flagged`` and ``reasons``."""
    logger = logger or logging.getLogger(__name__)
    qc = dict(qc or {})
    start = time.perf_counter()
    scan = read_volume(image)
    prepared, _, record = preprocess_pair(scan, None, _preprocessing(model))
    torch_device = dev.resolve_device(device)
    precision = dev.resolve_precision(torch_device, precision)
    logger.info("%s: %s on %s grid %s (was %s, %s); %d folds on %s", subject, model.card["method"],
                record["orientation"]["after"], prepared.shape, scan.shape, record["orientation"]["before"],
                len(model.folds), dev.describe(torch_device))
    probs = None
    for files in model.folds.values():
        fold = fold_probabilities(model, {k: Path(v) for k, v in files.items()}, prepared, device=torch_device,
                                  precision=precision)
        probs = fold if probs is None else probs + fold
    assert probs is not None
    values = model.channel_values
    post = model.card["method_config"].get("postprocess")
    settings = PostprocessSettings.from_dict(post) if post else None
    on_grid = prepared.with_array(_labels(probs, values, prepared.spacing, settings, logger))
    # the probabilities go back onto the scan's grid (linear), the argmax and post-processing happen there:
    # a label map resampled by nearest neighbour would alias thin structures (cartilage) between grids
    back = np.stack([np.asarray(restore_to_original(prepared.with_array(p), scan, "linear").array) for p in probs])
    dseg = scan.with_array(_labels(back, values, scan.spacing, settings, logger))
    write_volume(dseg, outputs["dseg"])
    write_table(pd.DataFrame({"index": [0, *model.labels.values()], "name": ["background", *model.labels]}),
                outputs["labels"])
    seconds = time.perf_counter() - start
    _views(subject, scan, dseg, model, outputs, overlays=overlays, meshes=meshes)
    row = _qc_row(subject, dseg, model, qc, logger)
    row["seconds"] = round(seconds, 3)
    if reference is not None:
        row |= _reference_dice(read_volume(reference), dseg, on_grid, model.labels)
        logger.info("%s: Dice in its own space (and on the preprocessed grid) %s", subject,
                    {k: round(v, 3) for k, v in row.items() if ".dice" in k})
    write_json(outputs["record"], row)
    logger.info("%s: %s%s", subject, "FLAGGED: " if row["flagged"] else "passed label-free QC",
                row["reasons"] or "")
    return row


def _labels(probs: np.ndarray, values: list[int], spacing: Any, settings: PostprocessSettings | None,
            logger: logging.Logger) -> np.ndarray:
    """The label map (uint8 label values) of class probabilities ``(K, ...)``, post-processed when asked."""
    labels = decode_labels(probs.argmax(axis=0), values).astype(np.uint8)
    if settings is not None:
        labels, steps = postprocess_labels(labels, values, spacing=spacing, settings=settings)
        for step in steps:
            logger.debug("post-processing %s: %d voxels changed label", step.step, step.changed)
    return np.asarray(labels).astype(np.uint8)


def _dice(a: np.ndarray, b: np.ndarray, value: int) -> float:
    x, y = a == value, b == value
    return float(2 * (x & y).sum() / max(1, x.sum() + y.sum()))


def _reference_dice(truth: Volume, dseg: Volume, on_grid: Volume, labels: Mapping[str, int]) -> dict[str, float]:
    """Each structure's Dice against a reference on the scan's grid: ``<s>.dice`` in the scan's own space and
    ``<s>.dice_preprocessed`` on the preprocessed grid (the reference resampled there by nearest neighbour)."""
    mismatches = truth.geometry_mismatches(dseg)
    if mismatches:
        raise ValueError("the reference labels are not on the scan's grid: " + "; ".join(mismatches))
    moved = np.asarray(resample_like(truth, on_grid, "nearest").array)
    out = {}
    for name, value in labels.items():
        out[f"{name}.dice"] = _dice(np.asarray(dseg.array), np.asarray(truth.array), value)
        out[f"{name}.dice_preprocessed"] = _dice(np.asarray(on_grid.array), moved, value)
    return out


def _views(subject: str, scan: Volume, dseg: Volume, model: SegmentModel, outputs: Mapping[str, PathLike], *,
           overlays: bool, meshes: str) -> None:
    """The overlay PNG and the meshes folder (always made, so a rule's outputs exist; empty when switched off)."""
    if overlays:
        overlay_figure(scan, dseg, outputs["overlay"], label_names=model.labels, title=f"{subject}: "
                       f"{model.card['method']}")
    else:
        with atomic_path(outputs["overlay"]) as tmp:
            Path(tmp).write_bytes(b"")
    folder = Path(outputs["meshes"])
    folder.mkdir(parents=True, exist_ok=True)
    if meshes != "none":
        writer = write_stl if meshes == "stl" else write_vtk
        for name, mesh in structure_meshes(dseg, model.labels).items():
            writer(mesh, folder / f"sub-{subject}_{name}.{meshes}", name=name)


def _qc_row(subject: str, dseg: Volume, model: SegmentModel, qc: Mapping[str, Any],
            logger: logging.Logger) -> dict[str, Any]:
    volumes = model.first("volumes")
    reference = VolumeReference.from_dict(read_json(volumes)) if volumes else VolumeReference({}, {}, {})
    pairs = qc.get("collision_pairs", model.card["method_config"].get("collision_pairs"))
    row = scan_metrics(subject, dseg, model.labels, volume_reference=reference,
                       collision_pairs=[tuple(p) for p in pairs or []] if pairs is not None else None,
                       collision_eps_mm=float(qc.get("collision_eps_mm", 2.0)),
                       shapes=_shape_checks(dseg, model, logger))
    fields = set(LabelFreeThresholds.__dataclass_fields__)
    thresholds = LabelFreeThresholds(**{k: v for k, v in qc.items() if k in fields})
    reasons = flag_segmentation(row, thresholds)
    return row | {"flagged": bool(reasons), "reasons": "; ".join(reasons)}


def segment_dataset_scan(subject: str, image: PathLike, settings: Mapping[str, Any], *,
                         roles: Mapping[str, Mapping[str, str]], bundle: PathLike | None,
                         outputs: Mapping[str, PathLike], reference: PathLike | None = None,
                         where: str = "segment.model.bundle", logger: logging.Logger | None = None) -> dict[str, Any]:
    """What the ``segment_scan`` rule runs: the model from this run's files (``settings["card"]`` and ``roles``:
    fold -> role -> path) or from ``bundle`` (checked against ``settings["labels"]`` and
    ``settings["preprocess"]``), then :func:`segment_scan` with the dataset's outputs and QC settings."""
    if bundle is not None:
        model = model_from_bundle(bundle, labels=settings["labels"], preprocess=settings["preprocess"], where=where)
    else:
        model = SegmentModel(card=settings["card"], folds={f: {r: Path(p) for r, p in files.items()}
                                                         for f, files in roles.items()})
    return segment_scan(subject, image, model, outputs=outputs, overlays=bool(settings.get("overlays", True)),
                        meshes=str(settings.get("meshes", "stl")), qc=settings.get("qc"), reference=reference,
                        logger=logger)

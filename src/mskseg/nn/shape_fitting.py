"""The knee paper's method on one volume, on one device from the image to the label map, timed per step.

:func:`fit_volume` runs (:mod:`mskseg.nn.shape_method` describes the method):

1. ``presegmentation`` -- the 2D U-Net on every slice (:func:`~mskseg.nn.on_device.slice_probabilities`);
2. ``boxes`` -- each bone's largest component in the pre-segmentation (:func:`largest_component_box`);
3. ``crops`` -- each box plus the margin resampled to the regression's cube (:func:`resample_crop`);
4. ``shape_fit`` -- the shape regression networks: landmarks in world mm;
5. ``refinement`` -- the local 3D U-Net on patches at the selected landmarks;
6. ``ensemble`` -- the patches merged (overlaps averaged) in the box they span, 2D + 3D probabilities there
   (or the 3D where patches cover, without ensembling), argmax (elsewhere the 2D argmax), label values;
   then the label map comes to the host (``to_host``).

Each step's seconds are measured with the device synchronised. Post-processing (scipy, on the host)
and file input/output are timed by :func:`predict_shape_fitting` around it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mskseg.io.tables import write_json, write_table
from mskseg.io.volumes import read_volume, write_volume
from mskseg.nn import device as dev
from mskseg.nn.data import plane_axis
from mskseg.nn.model_info import ModelInfo, load_trained
from mskseg.nn.models.shape_regression import ShapeRegressionNet
from mskseg.nn.on_device import (
    channel_argmax,
    extract_patches_t,
    largest_component_box,
    merge_patches_t,
    slice_probabilities,
)
from mskseg.nn.shape_crop import crop_geometry, resample_crop
from mskseg.nn.shape_fitting_train import RegressionInfo
from mskseg.nn.shape_method import ShapeFittingSpec
from mskseg.nn.shape_regression import build_shape_regression, to_world
from mskseg.nn.shape_settings import ShapeRegressionSettings
from mskseg.nn.weights import load_weights
from mskseg.postprocess import PostprocessSettings, postprocess_labels
from mskseg.preprocess.patches import patch_layout, union_region
from mskseg.shape.storage import load_shape_model
from mskseg.volume import Volume

__all__ = ["FitResult", "FittingModels", "fit_volume", "load_fitting_models", "predict_shape_fitting",
           "predict_subject_files"]

PathLike = str | os.PathLike


@dataclass
class FittingModels:
    """A fold's trained parts, on one device: the pre-segmentation, each regression network, the local U-Net
    (None without refinement) and each bone's refinement landmark indices."""

    presegmentation: tuple[nn.Module, ModelInfo]
    regressions: list[tuple[ShapeRegressionNet, RegressionInfo]]
    refinement: tuple[nn.Module, ModelInfo] | None
    selection: dict[str, np.ndarray]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def load_regression(weights: PathLike, info_path: PathLike, shape_models: Mapping[str, PathLike],
                    device: torch.device, shape_headers: Mapping[str, PathLike] | None = None
                    ) -> tuple[ShapeRegressionNet, RegressionInfo]:
    """A trained shape regression network (eval mode, on ``device``) rebuilt from its description and the
    fold's shape models (``bone -> model.npz``; their ``.json`` headers beside them, or ``shape_headers``)."""
    info = RegressionInfo.read(info_path)
    settings = ShapeRegressionSettings.from_dict(info.settings)
    headers = shape_headers or {}
    models = [load_shape_model(shape_models[bone], headers.get(bone)) for bone in info.bones]
    net = build_shape_regression(models, settings, rotation=np.asarray(info.rotation),
                                 half_extent_mm=np.asarray(info.half_extent_mm))
    load_weights(net, weights)
    return net.to(device).eval(), info


def load_fitting_models(*, presegmentation: tuple[PathLike, PathLike], regressions: Sequence[tuple[PathLike, PathLike]],
                        shape_models: Mapping[str, PathLike], refinement: tuple[PathLike, PathLike] | None,
                        selection: PathLike | None, device: torch.device,
                        shape_headers: Mapping[str, PathLike] | None = None) -> FittingModels:
    """Every part of a fold's method from its files (weights, description pairs; the selection table of
    :func:`mskseg.nn.shape_fitting_train.select_landmarks`, columns ``bone``, ``index``)."""
    chosen: dict[str, np.ndarray] = {}
    if selection is not None:
        table = pd.read_csv(selection, sep="\t")
        chosen = {str(b): part["index"].to_numpy(dtype=np.int64) for b, part in table.groupby("bone", sort=False)}
    return FittingModels(presegmentation=load_trained(*presegmentation, device),
                         regressions=[load_regression(w, i, shape_models, device, shape_headers)
                                      for w, i in regressions],
                         refinement=load_trained(*refinement, device) if refinement else None,
                         selection=chosen, device=device)


@dataclass
class FitResult:
    """One volume's result: the label map (host), each bone's fitted landmarks (world mm, host) and the
    seconds of each step."""

    labels: np.ndarray
    landmarks: dict[str, np.ndarray]
    seconds: dict[str, float]
    scores: np.ndarray | None = None


class _Clock:
    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds = device, {}
        self.last = self._now()

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def step(self, name: str) -> None:
        now = self._now()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self.last
        self.last = now


def _class_index(values: Sequence[int], label_values: Sequence[int]) -> list[int]:
    return [list(label_values).index(int(v)) + 1 for v in values]


def fit_volume(models: FittingModels, image: Volume, spec: ShapeFittingSpec, label_values: Sequence[int], *,
               precision: str = "fp32", keep_scores: bool = False) -> FitResult:
    """The method on one preprocessed image (module docstring). ``keep_scores``: also return the class
    probabilities ``(K, X, Y, Z)`` the label map is the argmax of (host, float32): the 2D ones, and where
    patches cover, the mean of 2D and 3D (with ensembling) or the 3D ones (e.g. to average several folds)."""
    device = models.device
    clock = _Clock(device)
    x = torch.as_tensor(np.asarray(image.array, dtype=np.float32)).to(device)
    clock.step("to_device")
    pre, pre_info = models.presegmentation
    probs2d = slice_probabilities(pre, x, plane_axis(image.direction, pre_info.view), n_slices=pre_info.n_slices,
                                  multiple=pre_info.multiple, batch_size=spec.inference.batch_size,
                                  precision=precision)
    clock.step("presegmentation")
    classes = channel_argmax(probs2d)
    boxes = []
    for _, info in models.regressions:
        if info.part == "all":
            boxes.append(None)
            continue
        wanted = torch.tensor(_class_index(info.label_values, label_values), dtype=classes.dtype, device=device)
        box = largest_component_box(torch.isin(classes, wanted))
        boxes.append(box if box is not None else ((0, 0, 0), tuple(s - 1 for s in image.shape)))
    clock.step("boxes")
    cubes, geometries = [], []
    for (_, info), box in zip(models.regressions, boxes, strict=True):
        settings = info.settings
        geometry = crop_geometry(image.shape, image.spacing, image.origin, image.direction, box,
                                 margin_mm=settings["margin_mm"], cube_size=settings["cube_size"],
                                 isotropic=settings["isotropic"])
        geometries.append(geometry)
        cubes.append(resample_crop(x, geometry))
    clock.step("crops")
    points: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for (net, info), cube, geometry in zip(models.regressions, cubes, geometries, strict=True):
            world = to_world(net(cube[None, None])[0], geometry)
            points.update(zip(info.bones, net.split_points(world), strict=True))
    clock.step("shape_fit")
    lookup = torch.tensor([0, *label_values], device=device, dtype=torch.int32)
    if models.refinement is not None:
        local, local_info = models.refinement
        centres = torch.cat([points[b][torch.as_tensor(models.selection[b], device=device)] for b in points])
        to_index = torch.tensor(np.linalg.inv(np.asarray(image.direction) * np.asarray(image.spacing)),
                                dtype=torch.float64, device=device)  # world -> index: inv(D diag(s)) (w - o)
        origin = torch.tensor(np.asarray(image.origin, dtype=float), dtype=torch.float64, device=device)
        voxels = torch.floor((centres - origin) @ to_index.T + 0.5).long().cpu().numpy()
        layout = patch_layout(voxels, local_info.patch_size, image.shape, border="shift")
        patches = extract_patches_t(x, layout, fill=float(x.min()))
        outs = []
        step = max(1, spec.inference.batch_size // 4)
        with torch.inference_mode():
            for start in range(0, len(layout), step):
                with dev.autocast(device, precision):
                    outs.append(local(patches[start:start + step, None]).float().softmax(dim=1))
        clock.step("refinement")
        region = union_region(layout)
        if region is not None:  # outside the patches the 2D argmax stands (2D + 2D has the same argmax)
            merged, coverage = merge_patches_t(torch.cat(outs), layout, image.shape, region=region)
            inside = probs2d[(slice(None), *region)]
            local_probs = torch.where(coverage > 0, merged, inside)
            scores = inside + local_probs if spec.ensemble else local_probs
            classes[region] = channel_argmax(scores)
            if keep_scores:
                with torch.inference_mode():  # probs2d is an inference tensor
                    probs2d[(slice(None), *region)] = scores / 2 if spec.ensemble else scores
    labelled = lookup[classes.long()]
    clock.step("ensemble")
    labels = labelled.cpu().numpy()
    landmarks = {b: p.cpu().numpy() for b, p in points.items()}
    clock.step("to_host")
    return FitResult(labels=labels, landmarks=landmarks, seconds=clock.seconds,
                     scores=probs2d.cpu().numpy() if keep_scores else None)


def landmark_table(landmarks: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Fitted landmarks as one table: ``structure``, ``index``, ``x``, ``y``, ``z`` (mm)."""
    rows = [pd.DataFrame({"structure": bone, "index": np.arange(len(p)), "x": p[:, 0], "y": p[:, 1], "z": p[:, 2]})
            for bone, p in landmarks.items()]
    return pd.concat(rows, ignore_index=True)


def predict_shape_fitting(subject: str, image: PathLike, models: FittingModels, spec: ShapeFittingSpec,
                          labels: Mapping[str, int], *, prediction: PathLike, record: PathLike, landmarks: PathLike,
                          postprocess: PostprocessSettings | None = None, precision: str = "fp32",
                          logger: logging.Logger | None = None) -> dict[str, Any]:
    """A subject's label map by the fold's fitted method, post-processed when ``postprocess`` is given, written
    with its fitted landmarks and a record (device, seconds per step and in all)."""
    logger = logger or logging.getLogger(__name__)
    start = time.perf_counter()
    volume = read_volume(image)
    read_s = time.perf_counter() - start
    values = [int(v) for v in labels.values()]
    result = fit_volume(models, volume, spec, values, precision=precision)
    steps = dict(result.seconds)
    array = result.labels.astype(np.uint8 if max(values, default=0) < 256 else np.int32)
    done: dict[str, Any] = {"subject": subject, "image": str(image), "device": dev.describe(models.device),
                            "precision": precision}
    if postprocess is not None:
        t0 = time.perf_counter()
        array, changes = postprocess_labels(array, values, spacing=volume.spacing, settings=postprocess)
        steps["postprocess"] = time.perf_counter() - t0
        done["postprocess"] = [row for step in changes for row in step.rows()]
        for step in changes:
            logger.info("post-processing %s: %d voxels changed label", step.step, step.changed)
    done["steps_seconds"] = {k: round(v, 4) for k, v in steps.items()}
    done["seconds"] = round(sum(v for k, v in steps.items() if k != "postprocess"), 4)
    done["read_seconds"] = round(read_s, 4)
    write_volume(volume.with_array(array), prediction)
    write_table(landmark_table(result.landmarks), landmarks)
    write_json(record, done)
    logger.info("%s: %s", subject, ", ".join(f"{k} {v:.3f} s" for k, v in steps.items()))
    return done


def predict_subject_files(subject: str, image: PathLike, spec: ShapeFittingSpec, labels: Mapping[str, int], *,
                          models: Mapping[str, Any], prediction: PathLike, record: PathLike, landmarks: PathLike,
                          postprocess: PostprocessSettings | None = None,
                          logger: logging.Logger | None = None) -> dict[str, Any]:
    """What the ``predict_shape_fitting`` rule runs: the fold's models loaded (``models``: the keyword arguments of
    :func:`load_fitting_models` but the device) on the device of ``spec.inference``, then
    :func:`predict_shape_fitting` at its precision."""
    device = dev.resolve_device(spec.inference.device)
    precision = dev.resolve_precision(device, spec.inference.precision)
    (logger or logging.getLogger(__name__)).info("device %s, precision %s", dev.describe(device), precision)
    fitted = load_fitting_models(device=device, **models)
    return predict_shape_fitting(subject, image, fitted, spec, labels, prediction=prediction, record=record,
                                 landmarks=landmarks, postprocess=postprocess, precision=precision, logger=logger)

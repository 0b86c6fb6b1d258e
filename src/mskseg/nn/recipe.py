"""From a :class:`~mskseg.nn.method.MethodSpec` to a trained model and to predictions.

One model is trained per view (a plane, ``mpr`` for the multi-planar U-Net, ``3d`` for patches);
what inference needs besides the weights (network, classes, view, slice size, the multi-planar
views and pixel size, the patch size) is kept in a JSON sidecar, :class:`ModelInfo`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mskseg.io.atomic import write_text
from mskseg.nn import device as dev
from mskseg.nn.augment import AugmentSettings, build_augmenter
from mskseg.nn.data import Case, PatchDataset, SliceDataset, in_plane_size
from mskseg.nn.engine import TrainResult, TrainSettings, train
from mskseg.nn.inference import predict_slices, sliding_window_3d
from mskseg.nn.losses import get_loss
from mskseg.nn.method import PLANE_VIEWS, MethodSpec
from mskseg.nn.models import build_model
from mskseg.nn.multiplanar import (
    MultiPlanarDataset,
    PlaneGrid,
    draw_views,
    inference_grid,
    physical_extents,
    predict_multiplanar,
    sphere_span,
    training_grid,
)
from mskseg.nn.weights import load_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What predicting with a trained model needs besides its weights."""

    method: str
    view: str                      # sagittal | coronal | axial | mpr | 3d
    network: dict[str, Any]        # build_model name and options
    n_classes: int
    label_values: list[int]
    n_slices: int = 1
    multiple: int = 16
    slice_size: list[int] | None = None          # 2D training slice size
    views: list[list[float]] | None = None       # multi-planar view normals
    pixel_mm: float | None = None                # multi-planar pixel size
    patch_size: list[int] | None = None          # 3D
    overlap: float = 0.5
    train_subjects: list[str] | None = None
    val_subjects: list[str] | None = None

    def write(self, path: str | os.PathLike) -> None:
        write_text(path, json.dumps(asdict(self), indent=2))

    @classmethod
    def read(cls, path: str | os.PathLike) -> "ModelInfo":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"{path}: not a model description written by mskseg ({err})") from None

    def build(self) -> nn.Module:
        options = {k: v for k, v in self.network.items() if k not in ("name", "weights")}
        return build_model(self.network["name"], in_channels=1, n_classes=self.n_classes, **options)


def loss_function(name: str):  # noqa: ANN201 - returns an engine LossFn
    """The engine's ``(logits, target, weight, sample_weight)`` loss for a loss name."""
    fn = get_loss(name)
    if name in ("weighted_ce", "ce_distance"):
        def with_map(logits, target, weight, sample_weight):  # noqa: ANN001, ANN202
            return fn(logits, target, weight, sample_weight=sample_weight)
        return with_map

    def without_map(logits, target, weight, sample_weight):  # noqa: ANN001, ANN202
        return fn(logits, target, sample_weight=sample_weight)
    return without_map


def settings_of(spec: MethodSpec) -> TrainSettings:
    """The method's training settings (errors name the method)."""
    try:
        return TrainSettings.from_dict(spec.train)
    except ValueError as err:
        raise ValueError(f"methods.{spec.name}.train: {err}") from None


def _info(spec: MethodSpec, view: str, label_values: Sequence[int], train_cases: Sequence[Case],
          val_cases: Sequence[Case]) -> ModelInfo:
    network = {"name": spec.network["name"], **spec.network_options}
    info = ModelInfo(method=spec.name, view=view, network=network, n_classes=len(label_values) + 1,
                     label_values=[int(v) for v in label_values], n_slices=spec.n_slices, multiple=spec.multiple,
                     train_subjects=[c.name for c in train_cases], val_subjects=[c.name for c in val_cases])
    if view in PLANE_VIEWS:
        return _replace(info, slice_size=list(in_plane_size(train_cases, view, spec.multiple)))
    if view == "mpr":
        mp = spec.multiplanar
        span = sphere_span(physical_extents((c.image.shape, c.spacing) for c in train_cases), at="train")
        grid = training_grid(span, int(mp["dim"]))
        views = draw_views(int(mp["n_views"]), int(mp["seed"]), min_angle_deg=float(mp["min_angle_deg"]))
        return _replace(info, views=views.tolist(), pixel_mm=grid.pixel_mm)
    return _replace(info, patch_size=[int(s) for s in spec.patch["size"]], overlap=float(spec.patch["overlap"]))


def _replace(info: ModelInfo, **changes: Any) -> ModelInfo:
    return ModelInfo(**{**asdict(info), **changes})


def make_dataset(spec: MethodSpec, info: ModelInfo, cases: Sequence[Case]) -> torch.utils.data.Dataset:
    """The training samples of one view, augmented as the method says."""
    seed = int(spec.train.get("seed", 0))
    if info.view in PLANE_VIEWS:
        augment = build_augmenter(AugmentSettings.from_dict(spec.augment), 2)
        return SliceDataset(cases, info.view, n_slices=info.n_slices, size=tuple(info.slice_size),
                            multiple=info.multiple, augment=augment, seed=seed)
    if info.view == "mpr":
        augment = build_augmenter(AugmentSettings.from_dict(spec.augment), 2)
        grid = PlaneGrid(int(spec.multiplanar["dim"]), float(info.pixel_mm))
        return MultiPlanarDataset(cases, np.asarray(info.views), grid,
                                  samples_per_epoch=int(spec.multiplanar["samples_per_epoch"]), augment=augment,
                                  seed=seed)
    augment = build_augmenter(AugmentSettings.from_dict(spec.augment), 3)
    return PatchDataset(cases, tuple(info.patch_size), samples_per_case=int(spec.patch["samples_per_case"]),
                        foreground_fraction=float(spec.patch["foreground_fraction"]), augment=augment, seed=seed)


def predict_view(model: nn.Module, info: ModelInfo, case: Case, *, device: torch.device, precision: str = "fp32",
                 channels_last: bool = False, batch_size: int = 32) -> np.ndarray:
    """Probabilities ``(K, X, Y, Z)`` of one view's model on the grid of ``case.image``."""
    common = {"device": device, "precision": precision, "channels_last": channels_last}
    if info.view in PLANE_VIEWS:
        return predict_slices(model, case.image, case.axis(info.view), n_slices=info.n_slices,
                              multiple=info.multiple, batch_size=batch_size, **common)
    if info.view == "mpr":
        extent = np.asarray(case.image.shape) * np.asarray(case.spacing)
        grid = inference_grid(float(np.linalg.norm(extent)), float(info.pixel_mm), info.multiple)
        return predict_multiplanar(model, case.image, case.spacing, case.direction, np.asarray(info.views), grid,
                                   batch_size=batch_size, **common)
    return sliding_window_3d(model, case.image, tuple(info.patch_size), overlap=info.overlap,
                             batch_size=max(1, batch_size // 8), **common)


def dice_and_nll(probs: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Mean foreground Dice of the argmax (classes present in either) and the mean -log p(target)."""
    pred = probs.argmax(axis=0)
    dices = []
    for c in range(1, probs.shape[0]):
        p, t = pred == c, target == c
        denom = int(p.sum()) + int(t.sum())
        if denom:
            dices.append(2.0 * np.logical_and(p, t).sum() / denom)
    picked = np.take_along_axis(probs, target[None].astype(np.int64), axis=0)[0]
    nll = float(-np.log(np.clip(picked, 1e-7, 1.0)).mean())
    return (float(np.mean(dices)) if dices else 1.0), nll


def make_validator(info: ModelInfo, cases: Sequence[Case], batch_size: int):  # noqa: ANN201 - engine ValidateFn
    """Validation on whole volumes: mean Dice and cross-entropy of the assembled prediction."""
    def validate(model: nn.Module, device: torch.device, precision: str) -> dict[str, float]:
        scores = [dice_and_nll(predict_view(model, info, case, device=device, precision=precision,
                                            channels_last=dev.use_channels_last(device), batch_size=batch_size),
                               case.target) for case in cases]
        return {"val_dice": float(np.mean([s[0] for s in scores])), "val_loss": float(np.mean([s[1] for s in scores]))}
    return validate


def train_view(spec: MethodSpec, view: str, train_cases: Sequence[Case], val_cases: Sequence[Case],
               label_values: Sequence[int], workdir: str | os.PathLike, *,
               init_weights: str | os.PathLike | None = None,
               logger: logging.Logger | None = None) -> tuple[TrainResult, ModelInfo]:
    """Train one view's model of ``spec``; checkpoints and logs go to ``workdir`` (resumable)."""
    logger = logger or log
    if not train_cases:
        raise ValueError(f"method {spec.name!r}: no training subjects")
    info = _info(spec, view, label_values, train_cases, val_cases)
    settings = settings_of(spec)
    torch.manual_seed(settings.seed)
    model = info.build()
    start = init_weights or spec.network.get("weights")
    if start:
        result = load_weights(model, start)
        logger.info("started from %s (%s)", start, result)
    dataset = make_dataset(spec, info, train_cases)
    validate = make_validator(info, val_cases, int(spec.inference["batch_size"])) if val_cases else None
    if validate is None and settings.monitor.startswith("val_"):
        settings = TrainSettings.from_dict({**spec.train, "monitor": "train_loss"})
        logger.warning("no validation subjects: monitoring the training loss")
    logger.info("method %s view %s: %d training samples from %d subjects, %d validation subjects", spec.name, view,
                len(dataset), len(train_cases), len(val_cases))
    result = train(model, dataset, loss_function(spec.loss), settings, Path(workdir), validate=validate,
                   logger=logger)
    return result, info


def load_trained(weights: str | os.PathLike, info_path: str | os.PathLike, device: torch.device) -> tuple[nn.Module,
                                                                                                          ModelInfo]:
    info = ModelInfo.read(info_path)
    model = info.build()
    load_weights(model, weights)
    return model.to(device).eval(), info


def predict_case(models: Sequence[tuple[nn.Module, ModelInfo]], case: Case, *, weights: Mapping[str, float] | None,
                 device: torch.device, precision: str, batch_size: int) -> np.ndarray:
    """Probabilities of a method on one case: one view, or the views blended with ``weights`` (by view name)."""
    channels_last = dev.use_channels_last(device)
    total = None
    norm = 0.0
    for model, info in models:
        w = 1.0 if weights is None else float(weights[info.view])
        if w == 0.0:
            continue
        probs = predict_view(model, info, case, device=device, precision=precision, channels_last=channels_last,
                             batch_size=batch_size)
        total = probs * w if total is None else total + probs * w
        norm += w
    if total is None:
        raise ValueError("every fusion weight is zero")
    return total / norm

"""Training one view's model of a :class:`~mskseg.nn.method.MethodSpec`: its samples, loss and validation.

:func:`train_view` builds the network and the view's dataset (slices, multi-planar slices or 3D
patches, augmented as the method says), validates as its ``train.validation`` settings say
(:mod:`mskseg.nn.validation`) and runs the engine (:func:`mskseg.nn.engine.train`) in a resumable work folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mskseg.nn.augment import build_augmenter
from mskseg.nn.data import Case, PatchDataset, SliceDataset, in_plane_size
from mskseg.nn.engine import LossFn, TrainResult, ValidateFn, train
from mskseg.nn.losses import get_loss
from mskseg.nn.method import PLANE_VIEWS, MethodSpec
from mskseg.nn.model_info import ModelInfo
from mskseg.nn.multiplanar import (
    MultiPlanarDataset,
    PlaneGrid,
    draw_views,
    physical_extents,
    sphere_span,
    training_grid,
)
from mskseg.nn.validation import dice_and_nll, make_validator
from mskseg.nn.weights import load_weights

log = logging.getLogger(__name__)


def loss_function(name: str) -> LossFn:
    """The engine's ``(logits, target, weight, sample_weight)`` loss for a loss name."""
    fn = get_loss(name)
    if name in ("weighted_ce", "ce_distance"):
        def with_map(logits, target, weight, sample_weight):
            return fn(logits, target, weight, sample_weight=sample_weight)
        return with_map

    def without_map(logits, target, weight, sample_weight):
        return fn(logits, target, sample_weight=sample_weight)
    return without_map


def model_info(spec: MethodSpec, view: str, label_values: Sequence[int], train_cases: Sequence[Case],
               val_cases: Sequence[Case]) -> ModelInfo:
    """The description of the model ``spec`` trains for ``view`` on these cases (input geometry included)."""
    network = {"name": spec.network["name"], **spec.network_options}
    info = ModelInfo(method=spec.name, view=view, network=network, n_classes=len(label_values) + 1,
                     label_values=[int(v) for v in label_values], n_slices=spec.n_slices, multiple=spec.multiple,
                     train_subjects=[c.name for c in train_cases], val_subjects=[c.name for c in val_cases])
    if view in PLANE_VIEWS:
        return info.with_(slice_size=list(in_plane_size(train_cases, view, spec.multiple)))
    if view == "mpr":
        mp = spec.multiplanar
        span = sphere_span(physical_extents((c.image.shape, c.spacing) for c in train_cases), at="train")
        grid = training_grid(span, mp.dim)
        views = draw_views(mp.n_views, mp.seed, min_angle_deg=mp.min_angle_deg)
        return info.with_(views=views.tolist(), pixel_mm=grid.pixel_mm, slice_size=[grid.dim, grid.dim],
                          inference_span=mp.inference_span, max_offset_fraction=mp.max_offset_fraction)
    return info.with_(patch_size=list(spec.patch.size), overlap=spec.patch.overlap)


def make_dataset(spec: MethodSpec, info: ModelInfo, cases: Sequence[Case], *,
                 centres: Sequence[np.ndarray] | None = None, jitter_voxels: Sequence[float] = (0, 0, 0)
                 ) -> torch.utils.data.Dataset:
    """The training samples of one view, augmented as the method says (3D patches: at ``centres``, per case a
    ``(n, 3)`` voxel-index array, when given; :class:`~mskseg.nn.data.PatchDataset`)."""
    seed = spec.train.seed
    if info.view in PLANE_VIEWS:
        return SliceDataset(cases, info.view, n_slices=info.n_slices, size=tuple(info.slice_size),
                            multiple=info.multiple, augment=build_augmenter(spec.augment, 2), seed=seed)
    if info.view == "mpr":
        grid = PlaneGrid(spec.multiplanar.dim, float(info.pixel_mm))
        return MultiPlanarDataset(cases, np.asarray(info.views), grid,
                                  samples_per_epoch=spec.multiplanar.samples_per_epoch,
                                  augment=build_augmenter(spec.augment, 2), seed=seed,
                                  max_rotation_deg=spec.multiplanar.max_rotation_deg,
                                  max_offset_fraction=spec.multiplanar.max_offset_fraction)
    return PatchDataset(cases, tuple(info.patch_size), samples_per_case=spec.patch.samples_per_case,
                        foreground_fraction=spec.patch.foreground_fraction, augment=build_augmenter(spec.augment, 3),
                        seed=seed, centres=centres, jitter_voxels=jitter_voxels)


def train_view(spec: MethodSpec, view: str, train_cases: Sequence[Case], val_cases: Sequence[Case],
               label_values: Sequence[int], workdir: str | os.PathLike, *,
               init_weights: str | os.PathLike | None = None, centres: Sequence[np.ndarray] | None = None,
               jitter_voxels: Sequence[float] = (0, 0, 0), validate: ValidateFn | None = None,
               logger: logging.Logger | None = None) -> tuple[TrainResult, ModelInfo]:
    """Train one view's model of ``spec``; checkpoints and logs go to ``workdir`` (resumable). ``centres`` and
    ``jitter_voxels``: where 3D patches are drawn (:func:`make_dataset`); ``validate``: the engine's validate
    function instead of the view's own (:func:`make_validator` on ``val_cases``)."""
    logger = logger or log
    if not train_cases:
        raise ValueError(f"method {spec.name!r}: no training subjects")
    info = model_info(spec, view, label_values, train_cases, val_cases)
    settings = spec.train
    torch.manual_seed(settings.seed)
    model = info.build()
    start = init_weights or spec.network.get("weights")
    if start:
        result = load_weights(model, start)
        logger.info("started from %s (%s)", start, result)
    dataset = make_dataset(spec, info, train_cases, centres=centres, jitter_voxels=jitter_voxels)
    if validate is None and val_cases:
        validate = make_validator(info, val_cases, spec.inference.batch_size, settings.validation)
    if validate is None and settings.monitor.startswith("val_"):
        settings = replace(settings, monitor="train_loss")
        logger.warning("no validation subjects: monitoring the training loss")
    logger.info("method %s view %s: %d training samples from %d subjects, %d validation subjects", spec.name, view,
                len(dataset), len(train_cases), len(val_cases))
    result = train(model, dataset, loss_function(spec.loss), settings, Path(workdir), validate=validate,
                   logger=logger)
    return result, info


__all__ = ["dice_and_nll", "loss_function", "make_dataset", "make_validator", "model_info", "train_view"]

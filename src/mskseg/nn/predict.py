"""Predictions of trained models: one view's probabilities on a case, a method's (views blended by the
fusion weights), and a test subject's label map as the ``predict_subject`` rule writes it."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mskseg.io.probabilities import write_probabilities
from mskseg.io.tables import write_json
from mskseg.io.volumes import write_volume
from mskseg.nn import device as dev
from mskseg.nn.data import Case, decode_labels, load_case
from mskseg.nn.fusion import read_fusion_weights
from mskseg.nn.inference import predict_slices, sliding_window_3d
from mskseg.nn.method import PLANE_VIEWS
from mskseg.nn.model_info import ModelInfo, load_trained
from mskseg.nn.multiplanar import predict_multiplanar, prediction_grid
from mskseg.nn.settings import InferenceSettings
from mskseg.postprocess import PostprocessSettings, postprocess_labels
from mskseg.volume import Volume


def predict_view(model: nn.Module, info: ModelInfo, case: Case, *, device: torch.device, precision: str = "fp32",
                 channels_last: bool = False, batch_size: int = 32) -> np.ndarray:
    """Probabilities ``(K, X, Y, Z)`` of one view's model on the grid of ``case.image``."""
    common = {"device": device, "precision": precision, "channels_last": channels_last}
    if info.view in PLANE_VIEWS:
        return predict_slices(model, case.image, case.axis(info.view), n_slices=info.n_slices,
                              multiple=info.multiple, batch_size=batch_size, **common)
    if info.view == "mpr":
        extent = np.asarray(case.image.shape) * np.asarray(case.spacing)
        train_dim = info.slice_size[0] if info.slice_size else None
        grid, normal_span = prediction_grid(extent, float(info.pixel_mm), inference_span=info.inference_span,
                                            train_dim=train_dim, multiple=info.multiple,
                                            max_offset_fraction=info.max_offset_fraction)
        return predict_multiplanar(model, case.image, case.spacing, case.direction, np.asarray(info.views), grid,
                                   normal_span_mm=normal_span, batch_size=batch_size, **common)
    return sliding_window_3d(model, case.image, tuple(info.patch_size), overlap=info.overlap,
                             batch_size=max(1, batch_size // 8), **common)


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


def prediction_volume(probs: np.ndarray, image: Volume, label_values: Sequence[int]) -> Volume:
    """The label map of probabilities ``(K, X, Y, Z)`` on the image's geometry (label values restored)."""
    classes = probs.argmax(axis=0)
    return image.with_array(decode_labels(classes, label_values))


def predict_subject(subject: str, image: str | os.PathLike, models: Sequence[str | os.PathLike],
                    infos: Sequence[str | os.PathLike], settings: InferenceSettings, labels: Mapping[str, int], *,
                    prediction: str | os.PathLike, record: str | os.PathLike,
                    fusion: str | os.PathLike | None = None, postprocess: PostprocessSettings | None = None,
                    probabilities: str | os.PathLike | None = None,
                    logger: logging.Logger | None = None) -> dict[str, Any]:
    """A subject's label map by a method's model(s) (blended with the fusion weights), post-processed when
    ``postprocess`` is given, written with its record; its class probabilities (before post-processing,
    uint8-quantised, :mod:`mskseg.io.probabilities`) to ``probabilities`` when given.

    Returns the record: subject, image, models, fusion weights, device, precision, seconds of inference
    and, when post-processed, the voxels each step moved per label value (``postprocess``) and its seconds.
    """
    logger = logger or logging.getLogger(__name__)
    device = dev.resolve_device(settings.device)
    precision = dev.resolve_precision(device, settings.precision)
    logger.info("device %s, precision %s", dev.describe(device), precision)
    values = list(labels.values())
    case, volume = load_case(subject, Path(image), label_values=values)
    trained = [load_trained(m, i, device) for m, i in zip(models, infos, strict=True)]
    weights = read_fusion_weights(fusion) if fusion else None
    start = time.perf_counter()
    probs = predict_case(trained, case, weights=weights, device=device, precision=precision,
                         batch_size=settings.batch_size)
    seconds = time.perf_counter() - start
    labelled = prediction_volume(probs, volume, values)
    if probabilities is not None:
        write_probabilities(probs, volume, values, probabilities)
    done = {"subject": subject, "image": str(image), "models": [str(m) for m in models], "fusion_weights": weights,
            "device": dev.describe(device), "precision": precision, "seconds": round(seconds, 3)}
    if postprocess is not None:
        start = time.perf_counter()
        array, steps = postprocess_labels(labelled.array, values, spacing=volume.spacing, settings=postprocess)
        labelled = labelled.with_array(array.astype(labelled.array.dtype, copy=False))
        done["postprocess"] = [row for step in steps for row in step.rows()]
        done["postprocess_seconds"] = round(time.perf_counter() - start, 3)
        for step in steps:
            moved = {k: v for k, v in step.removed.items() if v}
            logger.info("post-processing %s: %d voxels changed label (left, by label value: %s)", step.step,
                        step.changed, moved or "none")
    write_volume(labelled, prediction)
    write_json(record, done)
    return done


__all__ = ["predict_case", "predict_subject", "predict_view", "prediction_volume"]

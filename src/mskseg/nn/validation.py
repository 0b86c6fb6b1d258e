"""Scoring a model on the validation subjects during training: whole volumes or a fixed sample of slices.

:func:`make_validator` gives the engine its validate function (mean foreground Dice and mean
cross-entropy over the validation cases, :func:`dice_and_nll`). By default every voxel of every
validation volume is predicted (as :func:`mskseg.nn.predict.predict_view` predicts a test subject).
With ``slices_per_volume`` (plane views, 2D and 2.5D) only the slices :func:`validation_slices`
picks are predicted and scored, the same ones at every validation: the scores are those of the
whole-volume prediction restricted to these slices, and only they (with their 2.5D neighbours) are
read from a cached case. The 3D-patch and multi-planar views always score whole volumes: their
prediction of a voxel blends overlapping windows or every view, which a sample would change.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from mskseg.nn import device as dev
from mskseg.nn.cache import mapped
from mskseg.nn.data import Case
from mskseg.nn.engine import ValidateFn
from mskseg.nn.inference import predict_slices, to_labels
from mskseg.nn.method import PLANE_VIEWS
from mskseg.nn.model_info import ModelInfo
from mskseg.nn.predict import predict_view
from mskseg.nn.settings import ValidationSettings


def dice_and_nll(probs: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Mean foreground Dice of the argmax (classes present in either) and the mean -log p(target).

    Temporaries of at most one float32 and one int64 volume besides ``probs`` (the argmax is uint8,
    the logarithm taken in place).
    """
    pred = to_labels(probs)
    dices = []
    for c in range(1, probs.shape[0]):
        p, t = pred == c, target == c
        denom = int(p.sum()) + int(t.sum())
        if denom:
            dices.append(2.0 * np.logical_and(p, t).sum() / denom)
    del pred
    picked = np.take_along_axis(probs, target[None].astype(np.int64, copy=False), axis=0)[0]
    np.clip(picked, 1e-7, 1.0, out=picked)
    np.log(picked, out=picked)
    nll = -float(picked.mean())
    return (float(np.mean(dices)) if dices else 1.0), nll


def validation_slices(n_slices: int, count: int | None, *, seed: int, name: str) -> np.ndarray:
    """The slice indices (ascending) a validation scores of a volume with ``n_slices`` slices.

    All of them for ``count`` None or ``count >= n_slices``; otherwise one slice drawn uniformly from
    each of ``count`` equal runs of the slices (``floor(i * n / count)`` up to the next run's start),
    with ``np.random.default_rng([seed, crc32(name)])``: the same slices for a subject at every
    validation, spread over the whole volume.
    """
    if count is None or count >= n_slices:
        return np.arange(n_slices)
    edges = (np.arange(count + 1) * n_slices) // count
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
    return edges[:-1] + (rng.random(count) * np.diff(edges)).astype(np.intp)


def _score_slices(model: nn.Module, info: ModelInfo, case: Case, indices: np.ndarray, *, device: torch.device,
                  precision: str, batch_size: int) -> tuple[float, float]:
    axis = case.axis(info.view)
    with mapped(case.image) as image:  # an array on disk: only these slices and their neighbours are read
        probs = predict_slices(model, image, axis, n_slices=info.n_slices, multiple=info.multiple,
                               batch_size=batch_size, device=device, precision=precision,
                               channels_last=dev.use_channels_last(device), indices=indices,
                               pad_value=float(case.image.min()))
    return dice_and_nll(probs, case.target.take(indices, axis=axis))


def make_validator(info: ModelInfo, cases: Sequence[Case], batch_size: int,
                   settings: ValidationSettings | None = None) -> ValidateFn:
    """The validate function: mean Dice and cross-entropy over ``cases`` (whole volumes or sampled slices).

    Raises
    ------
    ValueError
        ``settings.slices_per_volume`` for a view that is not a plane (3D patches, multi-planar).
    """
    settings = settings or ValidationSettings()
    count = settings.slices_per_volume
    if count is not None and info.view not in PLANE_VIEWS:
        raise ValueError(f"validation on a sample of slices needs a plane view, not {info.view!r}: the 3D and "
                         "multi-planar views validate on whole volumes (set slices_per_volume: null)")

    def validate(model: nn.Module, device: torch.device, precision: str) -> dict[str, float]:
        scores = []
        for case in cases:
            if count is None:  # the whole volume, as a test subject is predicted
                loaded = replace(case, weight=None, foreground=None).load()
                probs = predict_view(model, info, loaded, device=device, precision=precision,
                                     channels_last=dev.use_channels_last(device), batch_size=batch_size)
                scores.append(dice_and_nll(probs, loaded.target))
                del loaded, probs
            else:
                indices = validation_slices(case.image.shape[case.axis(info.view)], count, seed=settings.seed,
                                            name=case.name)
                scores.append(_score_slices(model, info, case, indices, device=device, precision=precision,
                                            batch_size=batch_size))
        return {"val_dice": float(np.mean([s[0] for s in scores])), "val_loss": float(np.mean([s[1] for s in scores]))}
    return validate


__all__ = ["dice_and_nll", "make_validator", "validation_slices"]

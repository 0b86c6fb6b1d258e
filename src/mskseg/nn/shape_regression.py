"""Deep shape regression (knee paper, 3.4): samples, loss, building, training and prediction.

The network (:class:`~mskseg.nn.models.shape_regression.ShapeRegressionNet`) sees a crop resampled
to a cube (:mod:`mskseg.nn.shape_crop`) and predicts landmarks in the crop's *normalised* frame
``u`` (``[-1, 1]`` across the box). A training sample holds the target landmarks mapped into that
frame (exactly, by the crop's affine) and, as the loss ``weight``, each coordinate's squared world
mm per normalised unit (the crop's half extent, squared) times the point's weight; so
:func:`landmark_mse` of a sample is the mean squared coordinate error in world mm^2, though the
crops differ in size and shape. The training runs through the engine (:func:`mskseg.nn.engine.train`:
Adam, seeded, checkpoints and exact resume), whose sample dicts carry the landmarks as ``target``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mskseg.nn.device import autocast
from mskseg.nn.engine import TrainResult, ValidateFn, train
from mskseg.nn.models.pca_layer import PCALayer, crop_half_extent_mm
from mskseg.nn.models.shape_regression import ShapeRegressionNet
from mskseg.nn.shape_crop import CropGeometry
from mskseg.nn.shape_settings import ShapeRegressionSettings
from mskseg.shape.model import ShapeModel

__all__ = ["LandmarkDataset", "build_shape_regression", "fit_shape_regression", "landmark_mse", "landmark_sample",
           "landmark_validation", "predict_landmarks", "to_world"]


def landmark_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                 sample_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared coordinate error of landmarks ``(B, N, 3)`` (the paper's MSE loss), in fp32.

    Per sample: the mean over points and coordinates of ``weight * (pred - target)^2``, ``weight``
    ``(B, N, 3)`` or per point ``(B, N)`` (None: 1); then the mean over samples weighted by
    ``sample_weight`` ``(B,)``. In mm^2 for points in mm, or with the weights of :func:`landmark_sample`
    (the mean squared point distance is 3 times this). The engine's loss signature.
    """
    if pred.dim() != 3 or pred.shape[-1] != 3 or pred.shape != target.shape:
        raise ValueError(f"predicted {tuple(pred.shape)} and target {tuple(target.shape)} landmarks must both be "
                         "(B, N, 3)")
    squared = (pred.float() - target.float()) ** 2
    if weight is not None:
        w = weight.to(squared)
        squared = squared * (w[..., None] if w.dim() == 2 else w)
    per_sample = squared.flatten(1).mean(dim=1)
    if sample_weight is None:
        return per_sample.mean()
    sw = sample_weight.to(per_sample).reshape(-1)
    return (per_sample * sw).sum() / sw.sum().clamp_min(1e-12)


def landmark_sample(cube: np.ndarray | torch.Tensor, landmarks_mm: Any, geometry: CropGeometry, *,
                    point_weight: Any | None = None, sample_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """One training sample of the engine: a crop and its landmarks.

    Parameters
    ----------
    cube : array ``(n, n, n)`` or ``(C, n, n, n)``
        The crop (:func:`~mskseg.nn.shape_crop.resample_crop` of ``geometry``).
    landmarks_mm : array ``(N, 3)``
        Target landmarks, world (LPS) mm; for a multi-shape network every shape's points, in the order
        of its PCA layers.
    geometry : CropGeometry
        The crop.
    point_weight : array ``(N,)``, optional
        Relative weight of each point (normalised to mean 1; None: all 1).

    Returns
    -------
    dict
        ``image`` float32 ``(C, n, n, n)``; ``target`` float32 ``(N, 3)``, normalised frame; ``weight``
        float32 ``(N, 3)``, point weight x squared mm per normalised unit; ``sample_weight`` float32 ();
        ``half_extent_mm`` float64 ``(3,)``.
    """
    image = torch.as_tensor(np.asarray(cube) if not isinstance(cube, torch.Tensor) else cube).float()
    image = image[None] if image.dim() == 3 else image
    points = np.asarray(landmarks_mm, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3 or not np.all(np.isfinite(points)):
        raise ValueError(f"landmarks must be finite (N, 3) world mm, got shape {points.shape}")
    pw = np.ones(len(points)) if point_weight is None else np.asarray(point_weight, dtype=float).reshape(-1)
    if pw.shape != (len(points),) or not np.all(np.isfinite(pw)) or np.any(pw < 0) or pw.sum() <= 0:
        raise ValueError(f"point_weight must be {len(points)} finite non-negative numbers, not all zero")
    half = np.asarray(geometry.half_extent_mm, dtype=float)
    return {"image": image.contiguous(),
            "target": torch.tensor(geometry.to_normalised(points), dtype=torch.float32),
            "weight": torch.tensor((pw / pw.mean())[:, None] * half**2, dtype=torch.float32),
            "sample_weight": torch.tensor(float(sample_weight), dtype=torch.float32),
            "half_extent_mm": torch.tensor(half, dtype=torch.float64)}


class LandmarkDataset(Dataset):
    """Samples of :func:`landmark_sample`, held in memory (the crops are small)."""

    def __init__(self, samples: Sequence[Mapping[str, torch.Tensor]]) -> None:
        self.samples = [dict(sample) for sample in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.samples[index]


def build_shape_regression(shape_models: ShapeModel | Sequence[ShapeModel], settings: ShapeRegressionSettings, *,
                           rotation: Any | None = None, half_extent_mm: Any | None = None) -> ShapeRegressionNet:
    """The network of ``settings`` with one PCA layer per shape model, initialised with ``settings.seed``.

    Parameters
    ----------
    shape_models
        One model (a single-bone network) or several (the multi-shape variant, e.g. femur and tibia).
    rotation : array ``(3, 3)``, optional
        ``R0`` of every layer, model frame -> crop axes (e.g. the transpose of the images' direction
        when the models' frames follow the world's axes); None: identity.
    half_extent_mm : float or array ``(3,)``, optional
        The crops' typical half extent: each layer's ``base_scale`` is its inverse, so an untrained
        network puts the mean shape at the crop's centre at this size. None: each model's mean plus
        ``settings.margin_mm`` (:func:`~mskseg.nn.models.pca_layer.crop_half_extent_mm`; widened to its
        largest side with ``isotropic``); give the volume's for a whole-volume network.
    """
    models = [shape_models] if isinstance(shape_models, ShapeModel) else list(shape_models)
    layers = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        for model in models:
            half = crop_half_extent_mm(model.mean, settings.margin_mm, rotation) if half_extent_mm is None else (
                np.broadcast_to(np.asarray(half_extent_mm, dtype=float), (3,)))
            half = np.full(3, half.max()) if settings.isotropic else half
            layers.append(PCALayer.from_shape_model(model, n_modes=settings.n_modes,
                                                    scaled=settings.scaled_coefficients, rotation=rotation,
                                                    base_scale=1.0 / half, trainable_shape=settings.fine_tune_modes))
        return ShapeRegressionNet(layers, in_channels=settings.in_channels, base=settings.base_features,
                                  separable=settings.separable)


def _distance_mm(pred: torch.Tensor, target: torch.Tensor, half_extent_mm: torch.Tensor) -> torch.Tensor:
    """Euclidean distance (world mm) of each point ``(B, N)`` from normalised coordinates and half extents."""
    return ((pred.double() - target.double()) * half_extent_mm.double()[:, None, :]).norm(dim=-1)


def landmark_validation(dataset: Dataset, *, batch_size: int = 1) -> ValidateFn:
    """The engine's validate function on samples of :func:`landmark_sample`.

    Returns ``val_loss`` (:func:`landmark_mse` over all samples, mm^2) and ``val_distance_mm`` (the mean
    distance of predicted to target points, mm).
    """
    def validate(model: torch.nn.Module, device: torch.device, precision: str) -> dict[str, float]:
        loss_sum, distance_sum, weight_sum, points = 0.0, 0.0, 0.0, 0
        for start in range(0, len(dataset), batch_size):
            batch = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            stacked = {key: torch.stack([s[key] for s in batch]).to(device) for key in batch[0]}
            with autocast(device, precision):
                pred = model(stacked["image"])
            sw = stacked["sample_weight"].float()
            per = torch.stack([landmark_mse(pred[i:i + 1], stacked["target"][i:i + 1], stacked["weight"][i:i + 1])
                               for i in range(len(batch))])
            loss_sum += float((per * sw).sum())
            weight_sum += float(sw.sum())
            distance = _distance_mm(pred, stacked["target"], stacked["half_extent_mm"])
            distance_sum, points = distance_sum + float(distance.sum()), points + distance.numel()
        return {"val_loss": loss_sum / max(weight_sum, 1e-12), "val_distance_mm": distance_sum / max(points, 1)}
    return validate


def fit_shape_regression(model: ShapeRegressionNet, train_set: Dataset, settings: ShapeRegressionSettings,
                         workdir: str | Path, *, validation_set: Dataset | None = None,
                         logger: logging.Logger | None = None) -> TrainResult:
    """Train ``model`` on samples of :func:`landmark_sample` with :func:`landmark_mse` (mm^2) through the engine.

    Adam at ``settings.lr``, seeded, resumable in ``workdir`` (:func:`mskseg.nn.engine.train`); with a
    ``validation_set`` the best epoch is the lowest ``val_loss`` (and ``val_distance_mm`` is logged), else
    the lowest training loss. ``model`` ends with the last epoch's weights.
    """
    validate = None
    if validation_set is not None:
        validate = landmark_validation(validation_set, batch_size=settings.batch_size)
    return train(model, train_set, landmark_mse, settings.train_settings(validation=validate is not None), workdir,
                 validate=validate, logger=logger)


def to_world(points: torch.Tensor, geometry: CropGeometry) -> torch.Tensor:
    """Points ``(..., 3)`` in a crop's normalised frame -> world mm, float64 on the points' device."""
    affine = torch.tensor(geometry.normalised_to_world, dtype=torch.float64, device=points.device)
    return points.double() @ affine[:3, :3].T + affine[:3, 3]


def predict_landmarks(model: ShapeRegressionNet, cube: np.ndarray | torch.Tensor, geometry: CropGeometry, *,
                      precision: str = "fp32") -> list[torch.Tensor]:
    """Each PCA layer's landmarks ``(N_l, 3)``, world mm (float64, on the model's device), for one crop.

    ``cube`` is ``(n, n, n)`` or ``(C, n, n, n)`` (numpy, or a tensor on any device); the model runs in
    eval mode without gradients (``precision`` as :func:`mskseg.nn.device.autocast`; the PCA layers
    compute in their own dtype).
    """
    device = next(model.parameters()).device
    x = (cube if isinstance(cube, torch.Tensor) else torch.from_numpy(np.asarray(cube))).to(device).float()
    x = x[None, None] if x.dim() == 3 else x[None]
    model.eval()
    with torch.no_grad(), autocast(device, precision):
        points = model(x)[0]
    return model.split_points(to_world(points, geometry))

"""MPUNet's training samples: random oblique slices of the training cases along the model's views."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mskseg.nn.cache import mapped
from mskseg.nn.multiplanar.geometry import PlaneGrid, plane_coordinates, sample_plane, view_bases


@dataclass
class MultiPlanarCase:
    """The arrays of one training case (``mskseg.nn.data.Case`` has the same attributes, and its arrays may be
    :class:`~mskseg.nn.cache.CachedArray` handles: a sample reads only what its plane crosses).

    ``image`` float32 ``(X, Y, Z)``; ``target`` int64 class indices or None; ``weight`` float32
    loss weights or None (ones); ``spacing`` (mm) and ``direction`` as in :mod:`mskseg.volume`.
    """

    name: str
    image: np.ndarray
    target: np.ndarray | None = None
    weight: np.ndarray | None = None
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))


class MultiPlanarDataset(torch.utils.data.Dataset):
    """Random oblique 2D training slices of the cases, ``samples_per_epoch`` per epoch.

    Item ``index`` of epoch ``e`` draws, with ``np.random.default_rng([seed, e, index])`` and in
    this order: a case, a view of ``views``, an in-plane rotation (``max_rotation_deg`` 180, the
    default: ``uniform(0, 2 pi)``; else uniform in ``[-max, max]`` degrees, 0 giving the unrotated
    plane), an offset uniform in ``[-f, f] * span / 2`` (``f = max_offset_fraction``, span =
    ``grid.span_mm``); then ``augment`` (if given) gets the same generator. Outside the volume the
    image is the case's minimum, the target 0 and the weight 1.

    Returns the spec's sample dict: ``image`` float32 ``(1, dim, dim)``, ``target`` int64
    ``(dim, dim)``, ``weight`` float32 ``(dim, dim)``, ``sample_weight`` float32 ``()``.
    """

    def __init__(self, cases, views: np.ndarray, grid: PlaneGrid, *, samples_per_epoch: int,
                 augment: Callable[..., Any] | None = None, seed: int = 0, max_offset_fraction: float = 0.5,
                 max_rotation_deg: float = 180.0) -> None:
        self.cases = list(cases)
        if not self.cases:
            raise ValueError("MultiPlanarDataset needs at least one case")
        if int(samples_per_epoch) < 1:
            raise ValueError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}")
        if not 0.0 <= float(max_offset_fraction) <= 1.0:
            raise ValueError(f"max_offset_fraction must lie in [0, 1], got {max_offset_fraction}")
        if not 0.0 <= float(max_rotation_deg) <= 180.0:
            raise ValueError(f"max_rotation_deg must lie in [0, 180] (degrees), got {max_rotation_deg}")
        self.bases = view_bases(views)
        self.grid = grid
        self.samples_per_epoch = int(samples_per_epoch)
        self.augment = augment
        self.seed = int(seed)
        self.max_offset_fraction = float(max_offset_fraction)
        self.max_rotation_deg = float(max_rotation_deg)
        self.epoch = 0
        self._image_min = [self._check_case(case) for case in self.cases]

    @staticmethod
    def _check_case(case) -> float:
        name = getattr(case, "name", "?")
        image = case.image if hasattr(case.image, "take") else np.asarray(case.image)
        if image.ndim != 3:
            raise ValueError(f"case {name}: image must be 3D (X, Y, Z), got shape {image.shape}")
        if case.target is None:
            raise ValueError(f"case {name} has no target; training needs one")
        for what in ("target", "weight"):
            arr = getattr(case, what)
            if arr is not None and np.shape(arr) != image.shape:
                raise ValueError(f"case {name}: {what} shape {np.shape(arr)} differs from image {image.shape}")
        return float(image.min())

    def __len__(self) -> int:
        return self.samples_per_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        n_case = int(rng.integers(len(self.cases)))
        basis = self.bases[int(rng.integers(len(self.bases)))]
        if self.max_rotation_deg >= 180.0:  # any angle: MPUNet's draw, kept as it was (same results)
            rotation = float(rng.uniform(0.0, 2.0 * math.pi))
        else:
            bound = math.radians(self.max_rotation_deg)
            rotation = float(rng.uniform(-bound, bound))
        half = self.max_offset_fraction * self.grid.span_mm / 2.0
        offset = float(rng.uniform(-half, half))
        case = self.cases[n_case]
        coords = plane_coordinates(case.image.shape, case.spacing, case.direction, basis, self.grid, offset, rotation)
        with mapped(case.image) as image:  # an array on disk: only the pages the plane crosses are read
            img = sample_plane(image, coords, order=1, cval=self._image_min[n_case])[None]
        with mapped(case.target) as labels:
            target = sample_plane(labels, coords, order=0, cval=0).astype(np.int64)
        if case.weight is None:
            weight = np.ones(target.shape, np.float32)
        else:
            with mapped(case.weight) as weights:
                weight = sample_plane(weights, coords, order=1, cval=1.0)
        sample_weight = 1.0
        if self.augment is not None:
            img, target, weight, sample_weight = self.augment(img, target, weight, rng)
        return {"image": torch.as_tensor(np.ascontiguousarray(img, dtype=np.float32)),
                "target": torch.as_tensor(np.ascontiguousarray(target, dtype=np.int64)),
                "weight": torch.as_tensor(np.ascontiguousarray(weight, dtype=np.float32)),
                "sample_weight": torch.tensor(float(sample_weight), dtype=torch.float32)}


__all__ = ["MultiPlanarCase", "MultiPlanarDataset"]

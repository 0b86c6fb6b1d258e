"""The distance weight map of the U-Net paper as the hip paper uses it (Xu et al., eq. 1).

``w(x) = 1 + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))`` where ``d1 <= d2`` are the distances
from ``x`` to the nearest and the second-nearest foreground class (0 inside a class), so voxels
in and around the narrow gaps between classes weigh most; the class-balance term ``w_c`` is 1
as in the paper. The paper's values are ``w0 = 10``, ``sigma = 5``; its variant first erodes
every class by a ball of radius 3 voxels and doubles ``w0`` to 20, which moves the weight from
the gap itself onto the boundaries around it.

Every length is in millimetres, as the GapDice and collision ``eps`` of the evaluation: distances
with the voxel spacing, ``sigma_mm``, and the erosion ball's radius ``erode_radius_mm`` (an
ellipsoid of voxels on an anisotropic grid). The paper's voxel values are millimetres at its
spacing (0.77-0.96 mm: sigma 5 voxels is about 4 mm, radius 3 about 2.4 mm). A map with fewer than
two foreground classes is all ones. Computed once per subject (a workflow rule) and sampled with the
slices during training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mskseg.volume import Volume


@dataclass(frozen=True)
class WeightMapSettings:
    """``w0``; ``sigma_mm`` (> 0); ``erode_radius_mm``: the erosion ball's radius (0: none)."""

    w0: float = 10.0
    sigma_mm: float = 5.0
    erode_radius_mm: float = 0.0

    def __post_init__(self) -> None:
        if not self.sigma_mm > 0:
            raise ValueError(f"weight map sigma_mm must be > 0, got {self.sigma_mm}")
        if self.w0 < 0 or self.erode_radius_mm < 0:
            raise ValueError(f"weight map w0 and erode_radius_mm must be >= 0, got {self.w0}, {self.erode_radius_mm}")


#: the hip paper's two settings on a 1 mm grid (its 5 and 3 voxels)
PAPER = WeightMapSettings(w0=10.0, sigma_mm=5.0)
PAPER_ERODED = WeightMapSettings(w0=20.0, sigma_mm=5.0, erode_radius_mm=3.0)


def ball(radius_mm: float, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """The voxels within ``radius_mm`` of the centre voxel (an ellipsoid of voxels on an anisotropic grid)."""
    sp = [float(s) for s in spacing]
    half = [int(np.floor(radius_mm / s + 1e-9)) for s in sp]
    g = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    return sum((a * s) ** 2 for a, s in zip(g, sp, strict=True)) <= radius_mm * radius_mm + 1e-9


def erode_labels(labels: np.ndarray, radius_mm: float, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Every class eroded on its own by a ball of ``radius_mm`` (background stays 0)."""
    structure = ball(radius_mm, spacing)
    if radius_mm <= 0 or structure.sum() == 1:
        return labels.copy()
    out = np.zeros_like(labels)
    for value in np.unique(labels):
        if value == 0:
            continue
        kept = ndimage.binary_erosion(labels == value, structure=structure, border_value=1)
        out[kept] = value
    return out


def distance_weight_map(labels: np.ndarray, settings: WeightMapSettings = PAPER,
                        spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """The weight map (float32, same shape) of an integer label array with voxel ``spacing`` (mm); see the
    module docstring."""
    lab = erode_labels(np.asarray(labels), settings.erode_radius_mm, spacing)
    values = [v for v in np.unique(lab) if v != 0]
    out = np.ones(lab.shape, dtype=np.float32)
    if len(values) < 2 or settings.w0 == 0:
        return out
    sampling = tuple(float(s) for s in spacing)
    d1 = np.full(lab.shape, np.inf, dtype=np.float32)
    d2 = np.full(lab.shape, np.inf, dtype=np.float32)
    for v in values:
        d = ndimage.distance_transform_edt(lab != v, sampling=sampling).astype(np.float32)
        d2 = np.where(d < d1, d1, np.minimum(d2, d))
        d1 = np.minimum(d1, d)
    s = d1 + d2
    out += (settings.w0 * np.exp(-(s * s) / (2.0 * settings.sigma_mm ** 2))).astype(np.float32)
    return out


def weight_map_volume(mask: Volume, settings: WeightMapSettings = PAPER) -> Volume:
    """:func:`distance_weight_map` of a mask volume, with its geometry."""
    return mask.with_array(distance_weight_map(mask.array, settings, mask.spacing))

"""The distance weight map of the U-Net paper as the hip paper uses it (Xu et al., eq. 1).

``w(x) = 1 + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))`` where ``d1 <= d2`` are the distances
from ``x`` to the nearest and the second-nearest foreground class (0 inside a class), so voxels
in and around the narrow gaps between classes weigh most; the class-balance term ``w_c`` is 1
as in the paper. The paper's values are ``w0 = 10``, ``sigma = 5``; its variant first erodes
every class by a ball of radius 3 voxels and doubles ``w0`` to 20, which moves the weight from
the gap itself onto the boundaries around it.

Distances are in voxels (the papers' unit) or, with ``unit="mm"``, in millimetres with the
spacing. A map with fewer than two foreground classes is all ones. Computed once per subject
(a workflow rule) and sampled with the slices during training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mskseg.volume import Volume


@dataclass(frozen=True)
class WeightMapSettings:
    """``w0``, ``sigma`` (in ``unit``), ``erode_radius`` (voxels, 0: none), ``unit`` voxel|mm."""

    w0: float = 10.0
    sigma: float = 5.0
    erode_radius: int = 0
    unit: str = "voxel"

    def __post_init__(self) -> None:
        if self.unit not in ("voxel", "mm"):
            raise ValueError(f"weight map unit must be 'voxel' or 'mm', got {self.unit!r}")
        if not self.sigma > 0:
            raise ValueError(f"weight map sigma must be > 0, got {self.sigma}")
        if self.w0 < 0 or self.erode_radius < 0:
            raise ValueError("weight map w0 and erode_radius must be >= 0")


#: the hip paper's two settings
PAPER = WeightMapSettings(w0=10.0, sigma=5.0)
PAPER_ERODED = WeightMapSettings(w0=20.0, sigma=5.0, erode_radius=3)


def ball(radius: int) -> np.ndarray:
    """A 3D ball of ``radius`` voxels (index units) as a boolean structuring element."""
    r = int(radius)
    g = np.ogrid[-r:r + 1, -r:r + 1, -r:r + 1]
    return sum(a * a for a in g) <= r * r


def erode_labels(labels: np.ndarray, radius: int) -> np.ndarray:
    """Every class eroded on its own by a ball of ``radius`` voxels (background stays 0)."""
    if radius <= 0:
        return labels.copy()
    out = np.zeros_like(labels)
    structure = ball(radius)
    for value in np.unique(labels):
        if value == 0:
            continue
        kept = ndimage.binary_erosion(labels == value, structure=structure, border_value=1)
        out[kept] = value
    return out


def distance_weight_map(labels: np.ndarray, settings: WeightMapSettings = PAPER,
                        spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """The weight map (float32, same shape) of an integer label array; see the module docstring."""
    lab = erode_labels(np.asarray(labels), settings.erode_radius)
    values = [v for v in np.unique(lab) if v != 0]
    out = np.ones(lab.shape, dtype=np.float32)
    if len(values) < 2 or settings.w0 == 0:
        return out
    sampling = tuple(float(s) for s in spacing) if settings.unit == "mm" else None
    d1 = np.full(lab.shape, np.inf, dtype=np.float32)
    d2 = np.full(lab.shape, np.inf, dtype=np.float32)
    for v in values:
        d = ndimage.distance_transform_edt(lab != v, sampling=sampling).astype(np.float32)
        d2 = np.where(d < d1, d1, np.minimum(d2, d))
        d1 = np.minimum(d1, d)
    s = d1 + d2
    out += (settings.w0 * np.exp(-(s * s) / (2.0 * settings.sigma ** 2))).astype(np.float32)
    return out


def weight_map_volume(mask: Volume, settings: WeightMapSettings = PAPER) -> Volume:
    """:func:`distance_weight_map` of a mask volume, with its geometry."""
    return mask.with_array(distance_weight_map(mask.array, settings, mask.spacing))

"""A phantom on a grid of its own: an oblique direction and a shifted origin, as a new scan would come.

New scans to segment are not on the training data's grid: their direction cosines are oblique, their
origin and spacing differ. :func:`oblique_copy` puts a phantom's image and mask on such a grid: the
volume's direction rotated by ``degrees`` about the axis ``(1, 1, 1) / sqrt(3)`` (every direction
cosine changes), the grid's centre kept, the image resampled linearly and the mask by nearest
neighbour (the mask is the ground truth *on the new grid*), then the whole subject (image, mask and
landmarks) moved by ``shift_mm`` in the world, so its world position differs too. Voxels of the new
grid outside the phantom's field of view get the image's minimum and label 0.

With ``degrees == 0`` and no shift the copy is the input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mskseg.preprocess.resample import resample_like
from mskseg.volume import Volume

__all__ = ["oblique_copy", "rotation_about_diagonal"]


def rotation_about_diagonal(degrees: float) -> np.ndarray:
    """The rotation by ``degrees`` about ``(1, 1, 1) / sqrt(3)`` (Rodrigues), ``(3, 3)``."""
    axis = np.ones(3) / np.sqrt(3.0)
    angle = np.deg2rad(float(degrees))
    skew = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * skew @ skew


def _grid(volume: Volume, degrees: float) -> Volume:
    """``volume``'s grid (shape, spacing) with its direction rotated about its centre."""
    direction = rotation_about_diagonal(degrees) @ np.asarray(volume.direction)
    centre = volume.index_to_world((np.asarray(volume.shape) - 1) / 2.0)[0]
    half = direction @ ((np.asarray(volume.shape) - 1) / 2.0 * np.asarray(volume.spacing))
    return Volume(np.zeros(volume.shape, np.uint8), volume.spacing, tuple(centre - half), direction)


def oblique_copy(image: Volume, mask: Volume, landmarks: pd.DataFrame | None = None, *, degrees: float,
                 shift_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> tuple[Volume, Volume, pd.DataFrame | None]:
    """Image, mask and landmarks (columns ``x``, ``y``, ``z``, mm) on an oblique, shifted grid (module docstring).

    Raises
    ------
    ValueError
        Image and mask on different grids, a non-finite angle or a shift that is not three numbers.
    """
    if image.geometry_mismatches(mask):
        raise ValueError("image and mask must share one grid: " + "; ".join(image.geometry_mismatches(mask)))
    shift = np.asarray(shift_mm, dtype=float).reshape(-1)
    if shift.shape != (3,) or not np.all(np.isfinite(shift)) or not np.isfinite(degrees):
        raise ValueError(f"degrees must be finite and shift_mm three finite numbers, got {degrees!r}, {shift_mm!r}")
    grid = _grid(image, degrees)
    fill = float(np.min(image.array))
    new_image = resample_like(image, grid, "linear", default_value=fill)
    new_mask = resample_like(mask, grid, "nearest", default_value=0.0)
    origin = tuple(np.asarray(grid.origin) + shift)
    moved = [Volume(v.array, v.spacing, origin, v.direction) for v in (new_image, new_mask)]
    points = None
    if landmarks is not None:
        points = landmarks.copy()
        points[["x", "y", "z"]] = points[["x", "y", "z"]].to_numpy(dtype=float) + shift
    return moved[0], moved[1], points

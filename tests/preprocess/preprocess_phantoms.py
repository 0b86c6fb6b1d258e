"""Tiny analytic phantoms (anisotropic spacing, rotated direction, offset origin) and helpers."""

from __future__ import annotations

import numpy as np
import pytest

from mskseg.volume import Volume

#: index axis i -> +y (P), j -> -z (I), k -> -x (R): orientation "PIR"
DIRECTION = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
SPACING = (0.7, 1.3, 2.1)
ORIGIN = (12.5, -30.1, 7.25)
SHAPE = (64, 36, 22)


def world_coordinates(volume: Volume) -> np.ndarray:
    """World positions (mm) of all voxel centres, shape ``volume.shape + (3,)``."""
    idx = np.stack(np.meshgrid(*(np.arange(n) for n in volume.shape), indexing="ij"), axis=-1)
    return volume.index_to_world(idx.reshape(-1, 3)).reshape(*volume.shape, 3)


def label_centroid_mm(mask: Volume, label: int) -> np.ndarray:
    idx = np.argwhere(mask.array == label).astype(float)
    return mask.index_to_world(idx).mean(axis=0)


def label_volume_mm3(mask: Volume, label: int) -> float:
    return float(np.count_nonzero(mask.array == label)) * mask.voxel_volume_mm3


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def empty_volume(shape=SHAPE, dtype=np.float32) -> Volume:
    return Volume(np.zeros(shape, dtype=dtype), SPACING, ORIGIN, DIRECTION)


#: label -> (centre offset from the grid centre in world mm, radius mm)
SPHERES = {1: (np.array([-9.0, 0.5, 2.0]), 8.0), 2: (np.array([10.0, 3.0, -4.0]), 7.0)}


def grid_centre(volume: Volume) -> np.ndarray:
    return volume.index_to_world((np.asarray(volume.shape) - 1) / 2.0)[0]


@pytest.fixture
def phantom() -> tuple[Volume, Volume]:
    """(image, mask): two spheres (labels 1, 2) in world mm; image = tissue values + a ramp."""
    ref = empty_volume()
    world = world_coordinates(ref)
    centre = grid_centre(ref)
    labels = np.zeros(ref.shape, dtype=np.uint8)
    for label, (offset, radius) in SPHERES.items():
        inside = np.linalg.norm(world - (centre + offset), axis=-1) <= radius
        labels[inside] = label
    rng = np.random.default_rng(0)
    image = (100.0 + 300.0 * (labels == 1) + 600.0 * (labels == 2)
             + 2.0 * world[..., 0] + rng.normal(0, 10.0, ref.shape))
    return ref.with_array(image.astype(np.float32)), ref.with_array(labels)

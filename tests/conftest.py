"""Shared fixtures: tiny analytic volumes with anisotropic spacing and a rotated, offset grid."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mskseg.volume import Volume

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "workflow_scripts"))  # tests import each rule script's main()

#: a proper rotation that permutes axes (det +1), like a sagittal acquisition
ROTATED = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def sphere_pair(shape=(20, 24, 16), spacing=(0.8, 0.6, 1.5), origin=(-5.0, 12.0, 30.0),
                direction=ROTATED, labels=(1, 2)) -> tuple[Volume, Volume]:
    """An image and a mask of ``len(labels)`` spheres side by side, with noise-free intensities."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    mm = idx * np.asarray(spacing)
    centre = np.asarray(shape) * np.asarray(spacing) / 2
    mask = np.zeros(shape, np.uint8)
    width = 2 * centre[0] / len(labels)  # spheres side by side along index axis 0
    radius = min(0.3 * centre.min() + 1.0, 0.45 * width)
    for n, label in enumerate(labels):
        c = centre.copy()
        c[0] = (n + 0.5) * width
        mask[np.linalg.norm(mm - c, axis=-1) < radius] = label
    image = (100.0 + 50.0 * mask + idx[..., 1]).astype(np.float32)
    return Volume(image, spacing, origin, direction), Volume(mask, spacing, origin, direction)


@pytest.fixture
def pair() -> tuple[Volume, Volume]:
    return sphere_pair()

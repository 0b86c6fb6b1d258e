"""Shared helpers for the synthetic-phantom tests (cached subjects, label metrics)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from mskseg.synthetic import generate_subject
from mskseg.synthetic.generate import SyntheticSubject


@lru_cache(maxsize=32)
def subject(kind: str, index: int, seed: int = 0, shape: tuple | None = None,
            spacing: tuple | None = None, poor_labels: bool = False,
            n_landmarks: int = 200) -> SyntheticSubject:
    """A cached :func:`generate_subject` result (treat as read-only)."""
    return generate_subject(kind, index, seed=seed, shape=shape, spacing=spacing,
                            poor_labels=poor_labels, n_landmarks=n_landmarks)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays."""
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int((a & b).sum()) / s


def contacts(labels: np.ndarray, a: int, b: int) -> int:
    """Number of 6-connected voxel pairs with labels ``a`` and ``b``."""
    n = 0
    for ax in range(3):
        x = np.moveaxis(labels, ax, 0)
        n += int(((x[:-1] == a) & (x[1:] == b)).sum() + ((x[:-1] == b) & (x[1:] == a)).sum())
    return n


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a 6-neighbour outside it."""
    return mask & ~ndimage.binary_erosion(mask, border_value=1)


def block_mode(labels: np.ndarray, f: int = 2) -> np.ndarray:
    """Majority label over ``f**3`` blocks (shape divisible by ``f``)."""
    n = [s // f for s in labels.shape]
    blocks = labels.reshape(n[0], f, n[1], f, n[2], f)
    values = np.unique(labels)
    counts = np.stack([(blocks == v).sum(axis=(1, 3, 5)) for v in values])
    return values[np.argmax(counts, axis=0)]

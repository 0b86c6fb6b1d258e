"""Class probabilities kept beside a prediction, quantised to bound the disk: ``.npz`` files holding
``probs`` uint8 ``(K, X, Y, Z)`` (probability x 255, rounded), ``label_values`` (``0`` for the background
class, then the label values in class order) and the grid (``spacing``, ``origin``, ``direction``).

A probability read back is within 1/510 of the one written (the quantisation step is 1/255). Its argmax
can differ from the unquantised one only where two classes were within that of each other.

==========================  ======================================================
input                       written
==========================  ======================================================
probabilities in [0, 1]     ``round(p * 255)`` as uint8
slightly outside [0, 1]     clipped first (sums of float32 terms can reach 1 + 1e-7)
NaN                         an error naming the file: a prediction has no holes
==========================  ======================================================
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from mskseg.io.atomic import atomic_path
from mskseg.volume import Volume

#: quantisation levels: a probability p is stored as round(p * SCALE)
SCALE = 255


def write_probabilities(probs: np.ndarray, grid: Volume, label_values: Sequence[int],
                        path: str | os.PathLike[str]) -> None:
    """Write ``probs`` ``(K, *grid.shape)`` (class 0 the background, then ``label_values`` in order), atomically.

    Raises
    ------
    ValueError
        Naming ``path`` for NaN values, a class count other than ``len(label_values) + 1`` or a grid mismatch.
    """
    p = np.asarray(probs)
    if p.ndim != 4 or p.shape[1:] != tuple(grid.shape):
        raise ValueError(f"{path}: probabilities of shape {p.shape} do not fit the grid {tuple(grid.shape)}")
    if p.shape[0] != len(label_values) + 1:
        raise ValueError(f"{path}: {p.shape[0]} classes for {len(label_values)} labels + background")
    if np.isnan(p).any():
        raise ValueError(f"{path}: the probabilities hold NaN")
    quantised = np.rint(np.clip(p, 0.0, 1.0) * SCALE).astype(np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, probs=quantised, label_values=np.asarray([0, *label_values], dtype=np.int64),
                            spacing=np.asarray(grid.spacing, float), origin=np.asarray(grid.origin, float),
                            direction=np.asarray(grid.direction, float))


def read_probabilities(path: str | os.PathLike[str]) -> tuple[np.ndarray, Volume, list[int]]:
    """The probabilities (float32 ``(K, X, Y, Z)``), their grid (a Volume of the background class's array)
    and the label values (without the background's 0) of a file :func:`write_probabilities` wrote."""
    with np.load(path) as data:
        probs = data["probs"].astype(np.float32) / SCALE
        grid = Volume(probs[0], tuple(data["spacing"]), tuple(data["origin"]), data["direction"])
        values = [int(v) for v in data["label_values"][1:]]
    return probs, grid, values


__all__ = ["SCALE", "read_probabilities", "write_probabilities"]

"""Bounding boxes of labels, found in few passes over a label volume.

Every metric works only inside the boxes of the structures it compares: at the OAI-ZIB size
(160 x 384 x 384) the structures fill about a quarter of the volume, so the whole volume is
touched only once, to find the box of the foreground.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

Box = tuple[slice, slice, slice]


def nonzero_box(*arrays: np.ndarray) -> Box | None:
    """The smallest box holding every nonzero voxel of all ``arrays`` (same shape); None if all zero."""
    lows, highs = [], []
    # two passes per array: the max over the last axis, then over the first axis
    plane = np.zeros(arrays[0].shape[:2], dtype=bool)
    line = np.zeros(arrays[0].shape[2], dtype=bool)
    for array in arrays:
        a = array.view(np.uint8) if array.dtype == bool else array
        plane |= a.max(axis=2) > 0
        line |= a.max(axis=0).max(axis=0) > 0
    present_axes = [plane.any(axis=1), plane.any(axis=0), line]
    for axis in range(3):
        hits = np.flatnonzero(present_axes[axis])
        if hits.size == 0:
            return None
        lows.append(int(hits[0]))
        highs.append(int(hits[-1]) + 1)
    return tuple(slice(lo, hi) for lo, hi in zip(lows, highs, strict=True))  # type: ignore[return-value]


def label_boxes(labels: np.ndarray, max_label: int = 0) -> list[Box | None]:
    """``boxes[v]`` is the box of voxels equal to ``v`` (index 0 unused, None if absent).

    ``max_label`` > 0 ignores higher values; 0 covers every value present.
    """
    found = ndimage.find_objects(labels, max_label=max_label)
    return [None] + [tuple(s) if s is not None else None for s in found]  # type: ignore[misc]


def union_box(*boxes: Box | None) -> Box | None:
    """The smallest box holding all given boxes (None entries ignored)."""
    real = [b for b in boxes if b is not None]
    if not real:
        return None
    return tuple(slice(min(b[a].start for b in real), max(b[a].stop for b in real))
                 for a in range(3))  # type: ignore[return-value]


def grow_box(box: Box, margin: Sequence[int], shape: Sequence[int]) -> Box:
    """``box`` widened by ``margin[a]`` voxels on both sides of axis ``a``, clipped to ``shape``."""
    return tuple(slice(max(0, b.start - m), min(n, b.stop + m))
                 for b, m, n in zip(box, margin, shape, strict=True))  # type: ignore[return-value]


def box_offset(box: Box) -> np.ndarray:
    """Index of the box's first voxel."""
    return np.array([b.start for b in box], dtype=np.int64)


def relative(box: Box, frame: Box) -> Box:
    """``box`` (in volume indices) expressed in the indices of the sub-volume ``frame``."""
    return tuple(slice(b.start - f.start, b.stop - f.start) for b, f in zip(box, frame, strict=True))  # type: ignore[return-value]

"""What a post-processing step changed, per label value, and the checks of the label maps it works on.

Every step of :mod:`mskseg.postprocess` takes an integer label map (label *values*, 0 background)
and the list of label values it may touch, and returns the new map with a :class:`Changes`: how many
voxels left and joined each label value (background ``0`` included), so the workflow can log them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

#: foreground connectivity (neighbours of a voxel) -> :func:`scipy.ndimage.generate_binary_structure` rank
CONNECTIVITY = {6: 1, 18: 2, 26: 3}


@dataclass(frozen=True)
class Changes:
    """Voxels moved by one step: ``removed[v]`` left label ``v``, ``added[v]`` joined it.

    Both hold every label value the step was given and background (0), zeros included, so logs
    have the same columns for every subject; ``sum(removed.values()) == sum(added.values())``.
    """

    step: str
    removed: dict[int, int] = field(default_factory=dict)
    added: dict[int, int] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        """Voxels whose label changed."""
        return int(sum(self.removed.values()))

    def rows(self) -> list[dict[str, int | str]]:
        """One row per label value, ``{"step", "label", "removed", "added"}``, ascending labels."""
        keys = sorted(set(self.removed) | set(self.added))
        return [{"step": self.step, "label": k, "removed": self.removed.get(k, 0), "added": self.added.get(k, 0)}
                for k in keys]


def empty_changes(step: str, label_values: Sequence[int]) -> Changes:
    """A step that changed nothing, with zero counts for background and every label value."""
    keys = [0, *label_values]
    return Changes(step, dict.fromkeys(keys, 0), dict.fromkeys(keys, 0))


def check_labels(labels: np.ndarray, label_values: Sequence[int]) -> tuple[np.ndarray, tuple[int, ...]]:
    """The label map as an integer ndarray (3D) and the label values as distinct positive ints.

    Values present in the map but not listed are left alone by every step (never removed, never
    overwritten) but count as other structures (not background).
    """
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise ValueError(f"a label map is 3D, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"a label map holds integers, got {arr.dtype}")
    values = tuple(int(v) for v in label_values)
    if any(int(v) != v for v in label_values):
        raise ValueError(f"label values must be integers, got {list(label_values)}")
    if len(set(values)) != len(values) or min(values, default=1) <= 0:
        raise ValueError(f"label values must be distinct and positive (0 is background), got {list(values)}")
    return arr, values


def structure(connectivity: int) -> np.ndarray:
    """The 3x3x3 neighbourhood of a voxel for 6-, 18- or 26-connectivity."""
    if connectivity not in CONNECTIVITY:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity!r}")
    return ndimage.generate_binary_structure(3, CONNECTIVITY[connectivity])


def complement_structure(connectivity: int) -> np.ndarray:
    """The background's neighbourhood that goes with a foreground connectivity: 26 -> 6, 18 -> 6,
    6 -> 26 (so that a one-voxel-thick wall closes a cavity in both descriptions)."""
    return structure(26 if connectivity == 6 else 6) if connectivity in CONNECTIVITY else structure(connectivity)


def boxes(labels: np.ndarray, label_values: Sequence[int]) -> dict[int, tuple[slice, slice, slice] | None]:
    """Bounding box of each (positive) label value, None when absent; one pass over the map
    (:func:`scipy.ndimage.find_objects`, 0.04 s at the OAI-ZIB size)."""
    arr = np.asarray(labels)
    top = max(label_values, default=0)
    if top <= 0:
        return {}
    if top > 2**16:  # find_objects makes a list up to the largest value: look at each one instead
        return {v: _box_of(arr == v) for v in label_values}
    found = ndimage.find_objects(arr, max_label=top)
    return {v: (tuple(found[v - 1]) if found[v - 1] is not None else None) for v in label_values}  # type: ignore[misc]


def _box_of(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    found = ndimage.find_objects(mask.astype(np.uint8))
    return tuple(found[0]) if found and found[0] is not None else None  # type: ignore[return-value]

"""Largest connected component per label: stray islands removed and handed to their neighbours.

Two steps, a function each, so that a variant can replace the first (issue 19's symmetric one for
left/right pairs decides differently *which* voxels go) and keep the second:

1. :func:`find_islands` -- which voxels to remove: for each listed label value, every connected
   component (3D, 6-, 18- or 26-connectivity) but its ``keep`` largest, grouped into *islands*
   (the components). ``keep`` is 1 by default and can be set per label: the tibial cartilage is two
   plates (medial, lateral) that do not touch -- on the OAI-ZIB-size knee phantom they are 11.4 k and
   12.3 k voxels -- so the knee needs ``keep={tibial cartilage: 2}``, or one plate is lost.
   :func:`group_islands` groups any other boolean map of voxels to remove the same way;
2. :func:`reassign` -- where they go. An island takes the label that touches it most: the most
   frequent label among the voxels next to it (same neighbourhood), counting each voxel once and
   leaving out voxels that are being removed themselves, background included; ties go to the smaller
   label value. An island that touches only removed voxels or the volume's border goes to background.
   So a spurious cartilage blob inside the femur becomes femur, one floating in background becomes
   background.

:func:`largest_components` chains them (or, with ``removed_to="background"``, clears the islands).
The labelling works in each label's box (one :func:`scipy.ndimage.find_objects` pass), and the
reassignment only on the removed voxels and their neighbours.

Edge cases (``largest_components``):

======================================  ==========================================
case                                    result
======================================  ==========================================
a listed label absent (empty mask)      nothing changes, its counts are 0
a label in ``keep`` pieces or fewer     unchanged
all background / no label values        unchanged, all counts 0
equal component sizes                   the first in scan order (C order) ranks higher
a value present but not listed          never removed; counts as a neighbour label
======================================  ==========================================

Cost at the OAI-ZIB size (160 x 384 x 384, the knee phantom's 4 labels, 26-connectivity, 2 cores):
0.13 s on its labels; 1.2 s with speckle all over the volume (0.1 % of the voxels set to a random
label: every label's box is the whole volume, 18 k voxels move); ``benchmarks/bench_postprocess.py``.
The reassignment costs ``O(26 x removed voxels)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mskseg.postprocess.changes import Changes, boxes, check_labels, empty_changes, structure


def _check_keep(keep: int) -> int:
    if int(keep) != keep or keep < 1:
        raise ValueError(f"the number of components to keep must be a positive integer, got {keep!r}")
    return int(keep)


def _label_components(mask: np.ndarray, connectivity: int, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Component labelling of ``mask`` and a lookup ``component -> island number`` (-1: background or
    one of the ``keep`` largest components, which stay)."""
    lab, n = ndimage.label(mask, structure=structure(connectivity))
    sizes = np.bincount(lab[mask], minlength=n + 1)[1:]  # over the foreground only: cheaper
    order = np.argsort(-sizes, kind="stable")  # largest first; equal sizes in scan order
    lut = np.full(n + 1, -1, dtype=np.int64)
    lut[1 + np.sort(order[keep:])] = np.arange(max(n - keep, 0))
    return lab, lut


def kept_components(mask: np.ndarray, connectivity: int = 26, keep: int = 1) -> np.ndarray:
    """Boolean mask of the ``keep`` largest connected components of ``mask`` (all False for an empty
    mask; between equal sizes the component met first in C order)."""
    lab, lut = _label_components(np.asarray(mask, dtype=bool), connectivity, _check_keep(keep))
    return np.isin(lab, np.flatnonzero(lut < 0)[1:])


@dataclass(frozen=True)
class Islands:
    """Voxels to relabel, grouped into islands.

    Attributes
    ----------
    coords
        int64 ``(N, 3)`` volume indices of the voxels.
    island
        int64 ``(N,)`` island number of each voxel, ``0 .. m - 1``.
    label
        int64 ``(m,)`` the label value each island has now.
    """

    coords: np.ndarray
    island: np.ndarray
    label: np.ndarray

    def mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """The voxels as a boolean map of ``shape``."""
        out = np.zeros(shape, dtype=bool)
        out[tuple(self.coords.T)] = True
        return out


def _collect(parts: list[tuple[np.ndarray, np.ndarray, int, int]]) -> Islands:
    """Islands from ``(coords, local island number, count, label value)`` per labelled mask."""
    coords, island, label, first = [], [], [], 0
    for c, i, n, value in parts:
        coords.append(c)
        island.append(i + first)
        label.extend([value] * n)
        first += n
    if not coords:
        return Islands(np.zeros((0, 3), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Islands(np.concatenate(coords).astype(np.int64), np.concatenate(island), np.array(label, np.int64))


def find_islands(labels: np.ndarray, label_values: Sequence[int], *, connectivity: int = 26,
                 keep: int | Mapping[int, int] = 1) -> Islands:
    """Every component of each listed label but its ``keep`` largest (``keep`` an int for every label,
    or a mapping label value -> count, 1 for the labels it leaves out). One labelling per label,
    in its box."""
    arr, values = check_labels(labels, label_values)
    counts = {v: _check_keep(keep.get(v, 1) if isinstance(keep, Mapping) else keep) for v in values}
    parts = []
    for value, box in boxes(arr, values).items():
        if box is None:
            continue
        lab, lut = _label_components(arr[box] == value, connectivity, counts[value])
        n_islands = int(lut.max()) + 1
        if n_islands == 0:
            continue
        island = lab > 0
        for kept in np.flatnonzero(lut[1:] < 0) + 1:  # cheaper than a lookup over the whole box
            island &= lab != kept
        local = np.argwhere(island)
        offset = np.array([b.start for b in box])
        parts.append((local + offset, lut[lab[tuple(local.T)]], n_islands, value))
    return _collect(parts)


def group_islands(labels: np.ndarray, removed: np.ndarray, *, connectivity: int = 26) -> Islands:
    """Islands of an arbitrary boolean map of voxels to relabel (background voxels in it are ignored):
    the connected components of its voxels of each label value. For variants that decide otherwise
    which voxels go (issue 19's symmetric components)."""
    arr = np.asarray(labels)
    rem = np.asarray(removed, dtype=bool)
    if rem.shape != arr.shape:
        raise ValueError(f"removed has shape {rem.shape}, the labels {arr.shape}")
    rem = rem & (arr != 0)
    if not rem.any():
        return _collect([])
    box = ndimage.find_objects(rem.astype(np.uint8))[0]
    sub, r = arr[box], rem[box]
    offset = np.array([b.start for b in box])
    parts = []
    for value in np.unique(sub[r]):
        lab, n = ndimage.label(r & (sub == value), structure=structure(connectivity))
        local = np.argwhere(lab > 0)
        parts.append((local + offset, lab[tuple(local.T)].astype(np.int64) - 1, n, int(value)))
    return _collect(parts)


def island_voxels(labels: np.ndarray, label_values: Sequence[int], *, connectivity: int = 26,
                  keep: int | Mapping[int, int] = 1) -> np.ndarray:
    """Boolean map of the voxels of each listed label outside its ``keep`` largest components."""
    return find_islands(labels, label_values, connectivity=connectivity, keep=keep).mask(np.shape(labels))


def _neighbour_offsets(connectivity: int) -> np.ndarray:
    offsets = np.argwhere(structure(connectivity)) - 1
    return offsets[np.any(offsets != 0, axis=1)]


def reassign(labels: np.ndarray, islands: Islands, *, connectivity: int = 26,
             label_values: Sequence[int] = ()) -> tuple[np.ndarray, Changes]:
    """Give each island the label that touches it most (module docstring).

    Parameters
    ----------
    labels
        Integer label map.
    islands
        The voxels to relabel (:func:`find_islands`, or :func:`group_islands` of any boolean map).
    connectivity
        6, 18 or 26: which voxels count as touching an island.
    label_values
        Label values to list in the counts even when nothing moved (for stable logs).

    Returns
    -------
    labels, changes
        A new label map (the input is not modified) and the voxels that left / joined each label
        under the step name ``"largest_component"``.
    """
    arr = np.asarray(labels)
    values = sorted({int(v) for v in label_values})
    changes = empty_changes("largest_component", values)
    out = arr.copy()
    coords, island = islands.coords, islands.island
    m = len(islands.label)
    if len(coords) == 0:
        return out, changes
    rem = islands.mask(arr.shape)
    flat_arr, flat_rem = arr.ravel(), rem.ravel()
    # the voxels next to each island that stay: (island, flat index) pairs, each counted once
    pair_island, pair_voxel = [], []
    shape = np.asarray(arr.shape)
    for off in _neighbour_offsets(connectivity):
        nb = coords + off
        ok = np.all((nb >= 0) & (nb < shape), axis=1)
        flat = np.ravel_multi_index(tuple(nb[ok].T), arr.shape)
        keep = ~flat_rem[flat]
        pair_island.append(island[ok][keep])
        pair_voxel.append(flat[keep])
    dest = np.zeros(m, dtype=np.int64)  # no neighbour: background
    key = np.unique(np.concatenate(pair_island) * arr.size + np.concatenate(pair_voxel))
    if len(key):
        ring_island, ring_voxel = np.divmod(key, arr.size)
        kinds, kind_index = np.unique(flat_arr[ring_voxel], return_inverse=True)  # sorted values
        counts = np.zeros((m, len(kinds)), dtype=np.int64)
        np.add.at(counts, (ring_island, kind_index), 1)
        touched = counts.sum(axis=1) > 0
        dest[touched] = kinds[np.argmax(counts[touched], axis=1)]  # ties: the smaller label value
    new = dest[island]
    out[tuple(coords.T)] = new.astype(arr.dtype)
    _count(changes, islands.label[island], new)
    return out, changes


def _count(changes: Changes, old: np.ndarray, new: np.ndarray) -> None:
    for value, n in zip(*np.unique(old, return_counts=True), strict=True):
        changes.removed[int(value)] = changes.removed.get(int(value), 0) + int(n)
    for value, n in zip(*np.unique(new, return_counts=True), strict=True):
        changes.added[int(value)] = changes.added.get(int(value), 0) + int(n)


def largest_components(labels: np.ndarray, label_values: Sequence[int], *, connectivity: int = 26,
                       removed_to: str = "neighbour", keep: int | Mapping[int, int] = 1) -> tuple[np.ndarray, Changes]:
    """Keep each listed label's largest connected component (its ``keep`` largest: e.g. ``{4: 2}`` for
    the two tibial cartilage plates); the rest goes to the label touching it most
    (``removed_to="neighbour"``) or to background (``"background"``).

    Returns a new label map and its :class:`~mskseg.postprocess.changes.Changes` (step
    ``"largest_component"``); see the module docstring for the rules and the empty cases.
    """
    arr, values = check_labels(labels, label_values)
    if removed_to not in ("neighbour", "background"):
        raise ValueError(f"removed_to must be 'neighbour' or 'background', got {removed_to!r}")
    islands = find_islands(arr, values, connectivity=connectivity, keep=keep)
    if removed_to == "neighbour":
        return reassign(arr, islands, connectivity=connectivity, label_values=values)
    out = arr.copy()
    changes = empty_changes("largest_component", values)
    if len(islands.coords):
        out[tuple(islands.coords.T)] = 0
        _count(changes, islands.label[islands.island], np.zeros(len(islands.island), np.int64))
    return out, changes

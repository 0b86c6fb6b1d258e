"""GapDice and the label-free collision count of Xu et al. (hip CT), exact on the voxel grid.

For a reference label map ``Y`` with foreground classes ``c``, ``d_c(x)`` is the distance (mm)
from voxel ``x`` to the nearest voxel of class ``c`` (0 inside it); ``d1 <= d2`` are the two
smallest of them. The *gap region* is ``G = {x : d1(x) + d2(x) < eps}`` (eq. 4, eps = 10 mm):
inside class ``c`` it is the part within eps of another class, in the background the voxels
between two classes. ``GapDice_c = 2 |P_c & Y_c & G| / (|P_c & G| + |Y_c & G|)``; it is NaN
(``gap_flag`` ``no_gap``) when neither mask of ``c`` reaches into ``G``, e.g. a class far
from all others.

The *collision set* of a prediction ``P`` (eq. 2, eps = 2 mm) is
``E = {x : P(x) != 0 and d(x) <= eps}`` with ``d(x)`` the distance from ``x`` to the nearest
voxel of another foreground class of ``P``: bones that should be apart but touch. Needs no
reference; ``|E|`` is a voxel count (times the voxel volume for mm^3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.spatial import cKDTree

from mskseg.metrics.distances import voxel_indices, within_distance


def gap_region(
    ref_c: np.ndarray, label: int, ref_trees: Mapping[int, cKDTree | None], eps_mm: float,
    spacing: Sequence[float], offset: Sequence[int] = (0, 0, 0),
) -> np.ndarray:
    """``G`` on the voxels of reference class ``label`` (``ref_c``, a box at ``offset``): those
    closer than eps to another class (there ``d1 = 0``, ``d2`` the distance to the other classes)."""
    others = [t for c, t in ref_trees.items() if c != label and t is not None]
    return within_distance(ref_c, others, eps_mm, spacing, offset=offset, strict=True)


def gap_counts(
    pred_c: np.ndarray, ref_c: np.ndarray, ref_values: np.ndarray, label: int,
    regions: Mapping[int, tuple[np.ndarray, np.ndarray]], ref_trees: Mapping[int, cKDTree | None],
    eps_mm: float, spacing: Sequence[float], offset: Sequence[int] = (0, 0, 0),
) -> dict[str, float | int | str]:
    """GapDice of one class on a box (first voxel ``offset``) holding all of ``pred_c | ref_c``.

    ``ref_values`` is the reference label map on the same box; ``regions[c]`` is
    ``(gap_region of class c, offset of its box)`` for every reference class present, that of
    ``label`` on this very box. Returns
    ``gap_dice``, ``gap_ref_voxels`` (``|Y_c & G|``), ``gap_pred_voxels`` (``|P_c & G|``),
    ``gap_tp_voxels`` and ``gap_flag``.
    """
    g_ref = regions[label][0]  # on this same box
    off = np.asarray(offset)
    tp = int(np.count_nonzero(g_ref & pred_c))
    n_ref = int(np.count_nonzero(g_ref))
    fp = pred_c & ~ref_c
    n_fp = 0
    # false positives inside another reference class: G there is that class's region
    for c, (g_other, o_off) in regions.items():
        if c == label:
            continue
        sel = fp & (ref_values == c)
        if sel.any():
            idx = voxel_indices(sel) + off - o_off
            n_fp += int(np.count_nonzero(g_other[tuple(idx.T)]))
    # false positives in the reference background: d1 + d2 < eps over all classes
    bg = fp & (ref_values == 0)
    if bg.any():
        trees = [t for t in ref_trees.values() if t is not None]
        n_fp += int(np.count_nonzero(within_distance(bg, trees, eps_mm, spacing, offset=offset,
                                                     strict=True, combine="sum2")))
    n_pred = tp + n_fp
    if n_ref + n_pred == 0:
        return {"gap_dice": float("nan"), "gap_ref_voxels": 0, "gap_pred_voxels": 0,
                "gap_tp_voxels": 0, "gap_flag": "no_gap"}
    return {"gap_dice": 2 * tp / (n_ref + n_pred), "gap_ref_voxels": n_ref, "gap_pred_voxels": n_pred,
            "gap_tp_voxels": tp, "gap_flag": "ok"}


def collision_count(
    pred_c: np.ndarray, label: int, pred_trees: Mapping[int, cKDTree | None], eps_mm: float,
    spacing: Sequence[float], offset: Sequence[int] = (0, 0, 0), window: np.ndarray | None = None,
) -> int:
    """``|E & (P == label)|``: voxels of class ``label`` within ``eps_mm`` (<=) of another predicted class.

    ``window``: optionally the predicted label map on ``pred_c``'s box padded by
    ``floor(eps / spacing)`` voxels per axis (zeros beyond the volume), for a faster last step.
    """
    others = [t for c, t in pred_trees.items() if c != label and t is not None]
    target = None if window is None else (window != 0) & (window != label)
    return int(np.count_nonzero(within_distance(pred_c, others, eps_mm, spacing, offset=offset, strict=False,
                                                target=target)))


def padded_window(array: np.ndarray, box: tuple[slice, slice, slice], pad: Sequence[int]) -> np.ndarray:
    """``array[box]`` widened by ``pad[a]`` voxels per side, zero where that leaves ``array``."""
    shape = tuple(b.stop - b.start + 2 * p for b, p in zip(box, pad, strict=True))
    out = np.zeros(shape, dtype=array.dtype)
    src = tuple(slice(max(0, b.start - p), min(n, b.stop + p)) for b, p, n in zip(box, pad, array.shape, strict=True))
    dst = tuple(slice(s.start - (b.start - p), s.stop - (b.start - p)) for s, b, p in zip(src, box, pad, strict=True))
    out[dst] = array[src]
    return out

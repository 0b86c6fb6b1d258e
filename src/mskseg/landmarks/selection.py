"""Landmarks that centre the local refinement (knee paper 3.5): evenly spaced points of a region.

The paper samples the local 3D U-Net's patches "centered at landmark positions in the cartilage
regions of the bones" (100 femur, 30 tibia), "selected using distance-based non maximum
suppression to ensure equidistant spacing". The selection is made once, on one point set (the
reference subject's landmarks, or the model mean), and returned as *landmark indices*, so that the
same landmark ids are used for every subject and every fitted shape.

Two steps, one function each:

* :func:`near_structure` -- which landmarks lie in the region: within ``within_mm`` of a voxel
  centre of a structure (e.g. the cartilage labels); :func:`region_vote` combines the answers of
  several subjects;
* :func:`select_spread` -- ``k`` of the region's points, spread evenly.

The spreading is greedy farthest-point sampling, which *is* distance-based non-maximum suppression
with the radius that leaves exactly ``k`` points: with the points ranked in farthest-point order,
``d_i`` the distance of the ``i``-th point to the ``i - 1`` before it (non-increasing), suppressing
every point closer than ``r = d_k`` to a kept one (in that rank order) keeps exactly the first ``k``
(when ``d_{k+1} < d_k``). So, with ``r = radius_mm`` of the result,

* the kept points are pairwise at least ``r`` apart (the packing of NMS), and
* every discarded region point lies within ``covering_mm = d_{k+1} <= r`` of a kept one (the
  covering of NMS);

no bisection over ``r`` is needed, and on point sets with many equal distances (grids), where the
number NMS keeps jumps past ``k`` as ``r`` grows, the count is still exactly ``k``.

Determinism: the points are first put in lexicographic order of their coordinates, the start is
the point nearest their centroid, and every tie (equal distances) goes to the lexicographically
first point, so the selected *points* do not depend on the order of the input (only their indices
follow it) nor on any random state.

Empty and small inputs:

==========================  ==============  ===========  =============
case                        ``indices``     radius_mm    covering_mm
==========================  ==============  ===========  =============
no point in the region      empty           inf          NaN
fewer than ``k`` points     all of them     min pair     0
exactly one point kept      that point      inf          its max dist
==========================  ==============  ===========  =============

Cost: ``O(n k)`` for ``n`` region points (115 points, k = 100: 1 ms); :func:`near_structure`
finds the structure's voxels and builds a k-d tree of their centres (at the OAI-ZIB size, 160 x
384 x 384, with the knee phantom's femoral cartilage of 73 k voxels: 0.1 s on 2 cores;
``benchmarks/bench_postprocess.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from mskseg.landmarks.surface import as_points
from mskseg.volume import Volume

#: default number of refinement landmarks per bone (knee paper 4.3)
DEFAULT_COUNTS = {"femur": 100, "tibia": 30}


@dataclass(frozen=True)
class Selection:
    """``k`` evenly spread landmarks.

    Attributes
    ----------
    indices
        int64 ``(k,)`` indices into the landmark array given, in farthest-point order (the first
        is the point nearest the region's centroid).
    radius_mm
        The NMS radius: the smallest distance between two kept points (``inf`` with fewer than 2).
    covering_mm
        The largest distance of a region point to its nearest kept point (0 when all are kept,
        NaN for an empty region).
    """

    indices: np.ndarray
    radius_mm: float
    covering_mm: float


def _points(points_mm: np.ndarray) -> np.ndarray:
    return as_points(points_mm, "landmarks", "n")


def distance_to_structure(points_mm: np.ndarray, mask: Volume, labels: Sequence[int]) -> np.ndarray:
    """Distance (mm) from each world point ``(n, 3)`` to the nearest voxel centre of a structure.

    The structure is every voxel of ``mask`` holding one of ``labels``; voxel centres are placed
    in the world with :meth:`Volume.index_to_world` (anisotropic spacing and direction exact).
    A point at a voxel centre of the structure gets 0; with an empty structure every distance is
    ``inf``; ``n == 0`` gives an empty array.
    """
    pts = _points(points_mm)
    inside = np.isin(mask.array, [int(v) for v in labels])
    out = np.full(len(pts), np.inf)
    if len(pts) == 0 or not inside.any():
        return out
    tree = cKDTree(mask.index_to_world(np.argwhere(inside)))
    return tree.query(pts, k=1)[0]


def near_structure(points_mm: np.ndarray, mask: Volume, labels: Sequence[int], *, within_mm: float) -> np.ndarray:
    """Boolean ``(n,)``: which points lie within ``within_mm`` of the structure (see
    :func:`distance_to_structure`; an empty structure gives all False).

    Landmarks sit on the bone surface, half a voxel from the bone's voxel centres, so a landmark
    under cartilage is about half a voxel edge from the nearest cartilage voxel centre: 1 to 2 mm
    selects the cartilage-covered part of the bone at OAI-ZIB resolutions.
    """
    within = float(within_mm)
    if not np.isfinite(within) or within < 0:
        raise ValueError(f"within_mm must be a finite distance >= 0, got {within_mm!r}")
    return distance_to_structure(points_mm, mask, labels) <= within


def region_vote(in_region: np.ndarray, *, min_fraction: float = 0.5) -> np.ndarray:
    """Landmarks in the region for at least ``min_fraction`` of the subjects.

    ``in_region`` is a boolean ``(subjects, n)`` array (one :func:`near_structure` per subject,
    on its own landmarks and mask); returns boolean ``(n,)``. No subject gives all False.
    """
    votes = np.asarray(in_region, dtype=bool)
    if votes.ndim != 2:
        raise ValueError(f"in_region must have shape (subjects, n), got {votes.shape}")
    if not 0 < min_fraction <= 1:
        raise ValueError(f"min_fraction must lie in (0, 1], got {min_fraction!r}")
    if votes.shape[0] == 0:
        return np.zeros(votes.shape[1], dtype=bool)
    return votes.mean(axis=0) >= min_fraction - 1e-12


def _farthest_points(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """First ``k`` points (positions) in farthest-point order, and ``d_1..d_{k+1}`` (``d_1 = inf``).

    ``d_{k+1}`` is the largest distance of any point to the ``k`` chosen (0 when all are chosen).
    Ties go to the lowest position.
    """
    n = len(points)
    start = int(np.argmin(((points - points.mean(axis=0)) ** 2).sum(axis=1)))
    chosen = np.empty(k, dtype=np.int64)
    steps = np.empty(k + 1)
    best = np.full(n, np.inf)  # squared distance to the chosen set
    last, step = start, np.inf
    for i in range(k):
        chosen[i], steps[i] = last, step
        np.minimum(best, ((points - points[last]) ** 2).sum(axis=1), out=best)
        last = int(np.argmax(best))
        step = float(np.sqrt(best[last]))
    steps[k] = step
    return chosen, steps


def select_spread(points_mm: np.ndarray, k: int, *, region: np.ndarray | None = None) -> Selection:
    """``k`` points of ``points_mm[region]`` spread evenly: distance-based NMS with exactly ``k`` kept.

    Parameters
    ----------
    points_mm
        ``(n, 3)`` landmark coordinates (mm): a subject's, the reference's or the model mean.
    k
        How many to keep (:data:`DEFAULT_COUNTS`: 100 femur, 30 tibia); a region with fewer points
        keeps them all.
    region
        Boolean ``(n,)``: the candidates (e.g. :func:`near_structure`); None: every point.

    Returns
    -------
    Selection
        Indices into ``points_mm`` and the NMS radius and covering distance (module docstring),
        the same points for any order of the input.

    Raises
    ------
    ValueError
        ``k < 1``, points not a finite ``(n, 3)`` array, or a region of the wrong shape.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    pts = _points(points_mm)
    if region is None:
        candidates = np.arange(len(pts))
    else:
        mask = np.asarray(region)
        if mask.dtype != bool or mask.shape != (len(pts),):
            raise ValueError(f"region must be a boolean array of shape ({len(pts)},), got {mask.dtype} {mask.shape}")
        candidates = np.flatnonzero(mask)
    if len(candidates) == 0:
        return Selection(np.zeros(0, dtype=np.int64), float("inf"), float("nan"))

    sub = pts[candidates]
    # canonical order: lexicographic in (x, y, z), then the index (only for duplicate points)
    order = np.lexsort((candidates, sub[:, 2], sub[:, 1], sub[:, 0]))
    kk = min(int(k), len(order))
    chosen, steps = _farthest_points(sub[order], kk)
    return Selection(
        indices=candidates[order[chosen]].astype(np.int64),
        radius_mm=float(steps[1:kk].min()) if kk > 1 else float("inf"),
        covering_mm=float(steps[kk]),
    )

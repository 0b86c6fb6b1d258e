"""Exact surface distances between binary masks on a voxel grid, in millimetres.

Definitions (those of MONAI's ``compute_hausdorff_distance`` / ``compute_average_surface_distance``
and of SimpleITK's Hausdorff filter applied to the border voxels):

* The *border* of a mask is its voxels with at least one of the 6 face neighbours outside the
  mask; the space beyond the volume counts as outside, so a structure cut by the field of view
  has border voxels on the cut.
* The *directed distances* from mask A to mask B are, for every border voxel of A, the
  Euclidean distance in mm (voxel centres, index times spacing) to the nearest border voxel of B.
  They are exact: the distance to the nearest point of a set of grid points, as a Euclidean
  distance transform with spacing gives it, not a chamfer approximation.
* Hausdorff distance (HD, also called MSSD) is the largest directed distance either way; HD95
  is the larger of the two directions' 95th percentiles (numpy's linear interpolation); ASSD is
  the mean of both directions' distances taken together.

Instead of a distance transform of the whole volume, the border voxels of each mask go into a
k-d tree (scipy) and only border voxels are queried; voxels on both borders are at distance 0
and are not queried at all. :func:`within_distance` decides "closer than eps" for all voxels of
a (large) mask block by block first, with exact queries only near the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

#: threshold ties: d < eps means d < eps - TIE_MM, d <= eps means d <= eps + TIE_MM
TIE_MM = 1e-9


def border(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (outside the array counts as outside)."""
    m = np.asarray(mask, dtype=bool)
    if m.size == 0:
        return m.copy()
    inner = np.zeros_like(m)
    core = (slice(1, -1),) * 3
    # a voxel is inner when it and its six face neighbours are inside; array-edge voxels never are
    if min(m.shape) >= 3:
        c = m[core].copy()
        c &= m[:-2, 1:-1, 1:-1]
        c &= m[2:, 1:-1, 1:-1]
        c &= m[1:-1, :-2, 1:-1]
        c &= m[1:-1, 2:, 1:-1]
        c &= m[1:-1, 1:-1, :-2]
        c &= m[1:-1, 1:-1, 2:]
        inner[core] = c
    return m & ~inner


def voxel_indices(mask: np.ndarray) -> np.ndarray:
    """``(N, 3)`` int64 indices of the True voxels in C order (as ``np.argwhere``, about twice as fast)."""
    flat = np.flatnonzero(mask)
    return np.stack(np.unravel_index(flat, mask.shape), axis=1).astype(np.int64, copy=False)


def points_mm(mask: np.ndarray, spacing: Sequence[float], offset: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """``(N, 3)`` coordinates in mm (``(offset + index) * spacing``) of the True voxels of ``mask``."""
    idx = voxel_indices(mask)
    return (idx + np.asarray(offset, dtype=np.int64)) * np.asarray(spacing, dtype=float)


def make_tree(points: np.ndarray) -> cKDTree | None:
    """A k-d tree of points (None for no points)."""
    if len(points) == 0:
        return None
    return cKDTree(points, leafsize=16, balanced_tree=False, compact_nodes=False)


def _near_box(tree: cKDTree, points: np.ndarray, upper: float) -> np.ndarray:
    """Which points lie within ``upper`` of the tree's bounding box (the others cannot have a
    tree point within ``upper``)."""
    if not np.isfinite(upper):
        return np.ones(len(points), dtype=bool)
    gap = np.maximum(tree.mins - points, 0) + np.maximum(points - tree.maxes, 0)
    return (gap ** 2).sum(axis=1) <= upper ** 2


def nearest(tree: cKDTree | None, points: np.ndarray, upper: float = np.inf) -> np.ndarray:
    """Distance (mm) from each point to the nearest tree point (inf beyond ``upper`` or with no tree)."""
    out = np.full(len(points), np.inf)
    if tree is None or len(points) == 0:
        return out
    near = _near_box(tree, points, upper)
    if near.any():
        d, _ = tree.query(points[near], k=1, distance_upper_bound=upper)
        out[near] = d
    return out


@dataclass(frozen=True)
class SurfaceDistances:
    """Surface distance summary of one structure; distances in mm, NaN when a border is empty.

    ``flag`` is ``ok``, ``empty_prediction``, ``empty_reference`` or ``both_empty``.
    """

    hd: float
    hd95: float
    assd: float
    pred_to_ref_mean: float
    ref_to_pred_mean: float
    n_pred_border: int
    n_ref_border: int
    flag: str

    def as_dict(self) -> dict[str, float | int | str]:
        return {"hd_mm": self.hd, "hd95_mm": self.hd95, "assd_mm": self.assd,
                "pred_to_ref_mm": self.pred_to_ref_mean, "ref_to_pred_mm": self.ref_to_pred_mean,
                "pred_border_voxels": self.n_pred_border, "ref_border_voxels": self.n_ref_border,
                "surface_flag": self.flag}


def empty_flag(pred_empty: bool, ref_empty: bool) -> str:
    if pred_empty and ref_empty:
        return "both_empty"
    if pred_empty:
        return "empty_prediction"
    if ref_empty:
        return "empty_reference"
    return "ok"


#: surface distances up to this many mm are found by the local offset search, longer ones by the k-d tree
LOCAL_MM = 1.5


def directed_distances(
    from_border: np.ndarray, to_border: np.ndarray, spacing: Sequence[float],
    to_tree: cKDTree | None = None, offset: Sequence[int] = (0, 0, 0),
) -> np.ndarray:
    """Distances (mm) from every True voxel of ``from_border`` to the nearest True voxel of ``to_border``.

    Both arrays share one grid (``offset`` places it in a larger volume when ``to_tree`` holds
    points of that larger volume). Voxels in both sets get 0 without a search; the others are
    searched among nearby offsets first (:func:`local_nearest`, up to :data:`LOCAL_MM`, at most
    :data:`MAX_OFFSETS` offsets) and in the k-d tree when farther. Order: that of
    ``np.argwhere(from_border)``.
    """
    out = np.zeros(int(np.count_nonzero(from_border)), dtype=float)
    if out.size == 0:
        return out
    if to_tree is None:
        to_tree = make_tree(points_mm(to_border, spacing, offset))
    if to_tree is None:
        return np.full(out.size, np.inf)
    todo = ~to_border[from_border]
    if not todo.any():
        return out
    idx = voxel_indices(from_border & ~to_border)
    sp = np.asarray(spacing, dtype=float)
    radius = LOCAL_MM
    while len(offset_table(sp, radius)[0]) > MAX_OFFSETS:
        radius *= 0.8
    pad = np.floor(radius / sp + 1e-9).astype(np.int64)
    target = np.pad(to_border, [(p, p) for p in pad])
    d = local_nearest(idx + pad, target, sp, radius)
    far = ~np.isfinite(d)
    if far.any():
        d[far] = nearest(to_tree, (idx[far] + np.asarray(offset)) * sp)
    out[todo] = d
    return out


def summarise(d_pred: np.ndarray, d_ref: np.ndarray, percentile: float = 95.0) -> tuple[float, float, float]:
    """(HD, HD<percentile>, ASSD) from the two directed distance arrays (both non-empty)."""
    hd = max(float(d_pred.max()), float(d_ref.max()))
    hdp = max(float(np.percentile(d_pred, percentile)), float(np.percentile(d_ref, percentile)))
    assd = float((d_pred.sum() + d_ref.sum()) / (d_pred.size + d_ref.size))
    return hd, hdp, assd


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], *, percentile: float = 95.0,
    pred_border: np.ndarray | None = None, ref_border: np.ndarray | None = None,
    pred_tree: cKDTree | None = None, ref_tree: cKDTree | None = None, offset: Sequence[int] = (0, 0, 0),
) -> SurfaceDistances:
    """HD, HD95 and ASSD (mm) between two binary masks on one grid (see the module docstring).

    An empty mask gives NaN distances with ``flag`` naming the case; never an error. Borders
    and trees may be passed in when the caller has them already (same grid and ``offset``).
    """
    pb = border(pred) if pred_border is None else pred_border
    rb = border(ref) if ref_border is None else ref_border
    n_p, n_r = int(np.count_nonzero(pb)), int(np.count_nonzero(rb))
    flag = empty_flag(n_p == 0, n_r == 0)
    if flag != "ok":
        nan = float("nan")
        return SurfaceDistances(nan, nan, nan, nan, nan, n_p, n_r, flag)
    d_pred = directed_distances(pb, rb, spacing, ref_tree, offset)
    d_ref = directed_distances(rb, pb, spacing, pred_tree, offset)
    hd, hdp, assd = summarise(d_pred, d_ref, percentile)
    return SurfaceDistances(hd, hdp, assd, float(d_pred.mean()), float(d_ref.mean()), n_p, n_r, flag)


def offset_table(spacing: Sequence[float], radius_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer voxel offsets with physical length <= ``radius_mm``, sorted by length, and the lengths (mm)."""
    sp = np.asarray(spacing, dtype=float)
    r = np.floor(radius_mm / sp + 1e-9).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-n, n + 1) for n in r], indexing="ij"), -1).reshape(-1, 3)
    length = np.sqrt(((grid * sp) ** 2).sum(axis=1))
    keep = length <= radius_mm + TIE_MM
    order = np.argsort(length[keep], kind="stable")
    return grid[keep][order], length[keep][order]


#: the local search of :func:`local_nearest` checks at most this many offsets
MAX_OFFSETS = 400


def local_nearest(
    points: np.ndarray, target: np.ndarray, spacing: Sequence[float], radius_mm: float,
    *, stop_at: float | None = None,
) -> np.ndarray:
    """Exact distance (mm) from voxel indices ``points`` to the nearest True voxel of ``target``
    when it is at most ``radius_mm``; inf otherwise.

    Offsets are tried in order of length, so the first hit is the nearest. ``target`` must
    hold every ``point`` at least ``radius_mm`` inside its edges (pad it). ``stop_at``: stop
    once the remaining offsets are longer than this (points left unresolved get inf).
    """
    out = np.full(len(points), np.inf)
    if len(points) == 0:
        return out
    offsets, lengths = offset_table(spacing, radius_mm)
    flat = target.ravel()
    strides = np.array([target.shape[1] * target.shape[2], target.shape[2], 1], dtype=np.int64)
    lin = points.astype(np.int64) @ strides
    todo = np.arange(len(points))
    for off, length in zip(offsets @ strides, lengths, strict=True):
        if stop_at is not None and length > stop_at:
            break
        hit = flat[lin[todo] + off]
        if hit.any():
            out[todo[hit]] = length
            todo = todo[~hit]
            if todo.size == 0:
                break
    return out


def nearest_points(trees: Sequence[cKDTree], points: np.ndarray, upper: float) -> tuple[np.ndarray, np.ndarray]:
    """Per point: the distance to the nearest point of any tree and that point (nan beyond ``upper``)."""
    d = np.full(len(points), np.inf)
    where = np.full((len(points), 3), np.nan)
    for tree in trees:
        near = np.flatnonzero(_near_box(tree, points, upper))
        if near.size == 0:
            continue
        dt, it = tree.query(points[near], k=1, distance_upper_bound=upper)
        better = dt < d[near]
        d[near[better]] = dt[better]
        where[near[better]] = tree.data[it[better]]
    return d, where


def two_nearest_sum(trees: Sequence[cKDTree], points: np.ndarray, upper: float) -> np.ndarray:
    """Per point: the sum of the distances to the two nearest trees (inf with fewer than two trees,
    and beyond ``upper``)."""
    if len(trees) < 2:
        return np.full(len(points), np.inf)
    d = np.stack([nearest(tree, points, upper) for tree in trees], axis=1)
    d.partition(1, axis=1)
    return d[:, 0] + d[:, 1]


def levels(spacing: np.ndarray, eps_mm: float) -> list[np.ndarray]:
    """Block shapes (voxels per axis) from coarse to 1 voxel: halving, the coarsest about max(eps, 4 mm)."""
    top = np.maximum(1, 2 ** np.floor(np.log2(np.maximum(1.0, max(eps_mm, 4.0) / spacing)))).astype(np.int64)
    levels = [top]
    while levels[-1].max() > 1:
        levels.append(np.maximum(1, levels[-1] // 2))
    return levels


def _occupancy(padded: np.ndarray, levels: list[np.ndarray]) -> list[np.ndarray]:
    """Per level, whether each block of that level's shape holds a True voxel (pairwise ORs, fine to coarse)."""
    occ = [padded]
    current = padded
    for coarse, fine in zip(levels[-2::-1], levels[:0:-1], strict=True):
        for axis in range(3):
            if coarse[axis] != fine[axis]:
                lo = [slice(None)] * 3
                hi = [slice(None)] * 3
                lo[axis], hi[axis] = slice(0, None, 2), slice(1, None, 2)
                current = current[tuple(lo)] | current[tuple(hi)]
        occ.append(current)
    return occ[::-1]


def within_distance(
    mask: np.ndarray, trees: Sequence[cKDTree | None], eps_mm: float, spacing: Sequence[float],
    *, offset: Sequence[int] = (0, 0, 0), strict: bool = True, target: np.ndarray | None = None,
    combine: str = "min",
) -> np.ndarray:
    """The voxels of ``mask`` whose distance to the nearest point of any tree is below ``eps_mm``.

    With ``combine="sum2"`` the tested value is instead the sum of the distances to the two
    nearest trees (2-Lipschitz, so block radii count twice); ``target`` is then not used.

    ``strict``: ``d < eps`` (else ``d <= eps``), ties within :data:`TIE_MM` excluded (included).
    Exact, hierarchical: the mask is cut into blocks (about max(eps, 4 mm), halved level by
    level down to single voxels). A block whose centre lies farther than ``eps + r`` from the
    trees (``r`` its centre-to-corner distance) is outside whole; with ``combine="min"`` a block
    whose farthest voxel is nearer than eps to a *witness* (the nearest tree point found for it
    or for its parent block) is inside whole, else (``sum2``) one whose centre is nearer than
    ``eps - r``; only the others are split. ``offset`` places ``mask``'s grid in the frame of the tree points.
    ``target``: optionally the point set as a boolean array on ``mask``'s grid padded by
    ``pad = floor(eps / spacing)`` voxels per axis; the last level then searches offsets
    instead of the trees (faster for small eps).
    """
    if combine not in ("min", "sum2"):
        raise ValueError(f"combine must be 'min' or 'sum2', got {combine!r}")
    out = np.zeros(mask.shape, dtype=bool)
    trees = [t for t in trees if t is not None]
    if not trees or not mask.any():
        return out
    sp = np.asarray(spacing, dtype=float)
    off = np.asarray(offset, dtype=np.int64)
    limit = eps_mm - TIE_MM if strict else eps_mm + TIE_MM

    def inside(d: np.ndarray) -> np.ndarray:
        return d < limit if strict else d <= limit

    levels_ = levels(sp, eps_mm)
    top = levels_[0]
    nb = -(-np.asarray(mask.shape) // top)
    padded = np.zeros(tuple(nb * top), dtype=bool)
    padded[tuple(slice(0, n) for n in mask.shape)] = mask
    decided = np.zeros(padded.shape, dtype=bool)  # voxels found inside
    occupancy = _occupancy(padded, levels_)
    # candidate blocks at the current level: their first voxel (index); with combine "min" each
    # carries a witness, a tree point near it (nan until known): a block whose farthest voxel is
    # closer than the limit to its witness is inside without a query
    starts = voxel_indices(occupancy[0]) * top
    witness = np.full((len(starts), 3), np.nan)
    use_witness = combine == "min"
    for level, b in enumerate(levels_):
        shape6 = (padded.shape[0] // b[0], b[0], padded.shape[1] // b[1], b[1], padded.shape[2] // b[2], b[2])
        if level > 0:  # split the undecided parents into their occupied children of shape b
            steps = [np.arange(0, p, c) for p, c in zip(levels_[level - 1], b, strict=True)]
            kids = np.stack(np.meshgrid(*steps, indexing="ij"), -1).reshape(-1, 3)
            starts = (starts[:, None, :] + kids[None, :, :]).reshape(-1, 3)
            witness = np.repeat(witness, len(kids), axis=0)
            keep = occupancy[level][tuple((starts // b).T)]
            starts, witness = starts[keep], witness[keep]
        if len(starts) == 0:
            break
        last = bool(np.all(b == 1))
        lo = (off + starts) * sp
        hi = (off + starts + b - 1) * sp
        if use_witness:  # the farthest point of a box from w is the corner away from it on every axis
            far = np.sqrt((np.maximum(np.abs(lo - witness), np.abs(hi - witness)) ** 2).sum(axis=1))
            known_in = inside(np.where(np.isnan(far), np.inf, far))
            bi = starts[known_in] // b
            decided.reshape(shape6)[bi[:, 0], :, bi[:, 1], :, bi[:, 2], :] = True
            keep = ~known_in
            starts, witness, lo, hi = starts[keep], witness[keep], lo[keep], hi[keep]
            if len(starts) == 0:
                break
        if last and target is not None and use_witness:
            pad = np.floor(eps_mm / sp + 1e-9).astype(np.int64)
            d = local_nearest(starts + pad, target, sp, eps_mm + TIE_MM)
            hit = starts[inside(d)]
            decided[tuple(hit.T)] = True
            break
        centre = (lo + hi) / 2.0
        radius = 0.5 * float(np.linalg.norm((b - 1) * sp)) * (2.0 if combine == "sum2" else 1.0)
        if use_witness:
            d, witness = nearest_points(trees, centre, limit + radius + 1e-6)
            far = np.sqrt((np.maximum(np.abs(lo - witness), np.abs(hi - witness)) ** 2).sum(axis=1))
            whole_in = inside(np.where(np.isfinite(d), far, np.inf))
        else:
            d = two_nearest_sum(trees, centre, limit + radius + 1e-6)
            whole_in = inside(d + radius)
        bi = starts[whole_in] // b
        decided.reshape(shape6)[bi[:, 0], :, bi[:, 1], :, bi[:, 2], :] = True
        if last:
            break
        keep = ~whole_in & ~(d - radius > limit)
        starts, witness = starts[keep], witness[keep]
    out = mask & decided[tuple(slice(0, n) for n in mask.shape)]
    return out

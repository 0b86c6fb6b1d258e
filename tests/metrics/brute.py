"""Brute-force reference implementations and random test volumes for the metrics tests."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.distance import cdist

TIE = 1e-9


def blobs(shape, seed, sigma=2.0, fraction=0.25):
    """A random blobby binary mask: smoothed noise above its (1 - fraction) quantile."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > np.quantile(field, 1.0 - fraction)


def brute_border(mask):
    """Voxels of mask with a face neighbour outside it, the array's outside counting as outside."""
    m = np.pad(np.asarray(mask, bool), 1)
    inner = m.copy()
    for axis in range(3):
        for shift in (-1, 1):
            inner &= np.roll(m, shift, axis=axis)
    return (m & ~inner)[1:-1, 1:-1, 1:-1]


def brute_directed(a, b, spacing):
    """For every border voxel of a (argwhere order): distance (mm) to the nearest border voxel of b."""
    pa = np.argwhere(brute_border(a)) * np.asarray(spacing, float)
    pb = np.argwhere(brute_border(b)) * np.asarray(spacing, float)
    return cdist(pa, pb).min(axis=1)


def brute_surface(pred, ref, spacing, percentile=95.0):
    """(HD, HDp, ASSD) by the definitions of mskseg.metrics.distances, all pairs of border voxels."""
    dp = brute_directed(pred, ref, spacing)
    dr = brute_directed(ref, pred, spacing)
    hd = max(dp.max(), dr.max())
    hdp = max(np.percentile(dp, percentile), np.percentile(dr, percentile))
    assd = np.concatenate([dp, dr]).mean()
    return hd, hdp, assd


def distance_to(points_mask, shape_mask_points, spacing):
    """Distance (mm) from each index in shape_mask_points (N, 3) to the nearest True voxel of points_mask."""
    targets = np.argwhere(points_mask) * np.asarray(spacing, float)
    if len(targets) == 0:
        return np.full(len(shape_mask_points), np.inf)
    return cdist(np.asarray(shape_mask_points) * np.asarray(spacing, float), targets).min(axis=1)


def brute_gap_and_collisions(pred, ref, spacing, labels, gap_eps, coll_eps):
    """Per label value: (gap_dice, |Y_c & G|, |P_c & G|, |P_c & Y_c & G|, collisions) from whole-volume EDTs."""
    classes = [c for c in labels if np.any(ref == c)]
    if classes:
        d = np.stack([ndimage.distance_transform_edt(ref != c, sampling=spacing) for c in classes])
        d.sort(axis=0)
        gap = d[0] + d[1] < gap_eps - TIE if len(classes) >= 2 else np.zeros(ref.shape, bool)
    else:
        gap = np.zeros(ref.shape, bool)
    out = {}
    for c in labels:
        p, y = pred == c, ref == c
        n_ref = int(np.count_nonzero(y & gap))
        n_pred = int(np.count_nonzero(p & gap))
        tp = int(np.count_nonzero(p & y & gap))
        dice = 2 * tp / (n_ref + n_pred) if n_ref + n_pred else float("nan")
        others = (pred != 0) & (pred != c)
        if others.any() and p.any():
            dist = ndimage.distance_transform_edt(~others, sampling=spacing)
            coll = int(np.count_nonzero(p & (dist <= coll_eps + TIE)))
        else:
            coll = 0
        out[c] = (dice, n_ref, n_pred, tp, coll)
    return out


SHAPE = (36, 40, 22)
LABELS = {"femur": 1, "tibia": 2, "patella": 3, "fibula": 4}
#: a region per class; neighbouring regions are 2 to 4 voxels apart
REGIONS = {1: (slice(2, 15), slice(3, 37), slice(2, 20)),
           2: (slice(18, 33), slice(3, 19), slice(2, 20)),
           3: (slice(18, 33), slice(22, 37), slice(2, 12)),
           4: (slice(18, 33), slice(22, 37), slice(14, 20))}


def label_map(seed, classes=(1, 2, 3, 4)):
    """Reference classes as blobs filling most of their regions (boundaries a few voxels apart)."""
    rng = np.random.default_rng(seed)
    ref = np.zeros(SHAPE, np.uint8)
    for c in classes:
        box = REGIONS[c]
        shape = tuple(s.stop - s.start for s in box)
        idx = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"), -1)
        noise = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
        ref[box][(np.abs(idx) ** 3).sum(-1) + 4 * noise < 1.6] = c
    return ref


def perturbed(ref, seed):
    """A prediction: shifted boundaries, false positives in the background and in other classes, holes."""
    rng = np.random.default_rng(seed)
    pred = ref.copy()
    for c in (1, 2, 3, 4):
        shift = tuple(int(v) for v in rng.integers(-1, 2, size=3))
        moved = np.roll(ref == c, shift, axis=(0, 1, 2))
        pred[(pred == c) & ~moved] = 0
        pred[moved & (pred == 0)] = c
    # false-positive blobs in the background and across class boundaries
    for _ in range(6):
        centre = np.array([rng.integers(0, n) for n in SHAPE])
        value = int(rng.integers(1, 5))
        lo = np.maximum(centre - 2, 0)
        pred[lo[0]:centre[0] + 2, lo[1]:centre[1] + 3, lo[2]:centre[2] + 1] = value
    # holes
    for _ in range(3):
        centre = np.array([rng.integers(0, n) for n in SHAPE])
        pred[centre[0]:centre[0] + 2, centre[1]:centre[1] + 3, centre[2]:centre[2] + 2] = 0
    return pred

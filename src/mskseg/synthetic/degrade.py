"""Degraded ("poor") label maps, like inferior public segmentations.

Each structure is dilated into the background by a per-structure distance plus a smooth
random boundary perturbation, narrow gaps between two different structures (joint
spaces) are filled with the nearer structure's label, and a few whole slices are dropped
(set to 0). All distances are in mm; randomness comes only from the given generator, and
the boundary noise is a sum of random plane waves in world coordinates (so it does not
depend on the grid).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mskseg.volume import Volume

N_WAVES = 6


def _crop_points(vol: Volume, sl: tuple[slice, slice, slice]) -> np.ndarray:
    """World coordinates (mm), ``(3, M)`` ``float32``, of the voxels of a crop (C order)."""
    idx = [np.arange(s.start, s.stop, dtype=float) * sp for s, sp in zip(sl, vol.spacing, strict=True)]
    d = vol.direction
    out = []
    for w in range(3):
        v = (vol.origin[w] + d[w, 0] * idx[0][:, None, None] + d[w, 1] * idx[1][None, :, None]
             + d[w, 2] * idx[2][None, None, :])
        out.append(v.astype(np.float32).ravel())
    return np.stack(out)


def _waves(rng: np.random.Generator, amplitude_mm: float) -> dict:
    """Random plane waves (unit directions, wavelengths 15-40 mm, phases) of std ``amplitude_mm``."""
    dirs = rng.normal(size=(N_WAVES, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return {
        "directions": dirs.tolist(),
        "wavelengths_mm": rng.uniform(15.0, 40.0, N_WAVES).tolist(),
        "phases": rng.uniform(0.0, 2 * np.pi, N_WAVES).tolist(),
        "amplitude_mm": float(amplitude_mm),
    }


def _noise(points: np.ndarray, waves: dict) -> np.ndarray:
    """Smooth noise (mm) at world points ``(3, M)``."""
    acc = np.zeros(points.shape[1], dtype=np.float32)
    for d, lam, ph in zip(waves["directions"], waves["wavelengths_mm"], waves["phases"], strict=True):
        arg = (points[0] * float(d[0]) + points[1] * float(d[1]) + points[2] * float(d[2])) * float(2 * np.pi / lam)
        acc += np.sin(arg + float(ph))
    return acc * np.float32(waves["amplitude_mm"] * np.sqrt(2.0 / N_WAVES))


def degrade_labels(
    mask: Volume,
    rng: np.random.Generator,
    *,
    dilate_vox: tuple[float, float] = (0.5, 1.0),
    noise_vox: float = 0.5,
    gap_mm: float = 4.0,
    n_drop: tuple[int, int] = (2, 4),
    drop_axis: int = 2,
) -> tuple[Volume, dict]:
    """A degraded copy of a label volume, and the parameters used (JSON-serialisable).

    Parameters
    ----------
    mask
        Integer labels (0 = background).
    rng
        Source of all randomness.
    dilate_vox
        Range of the per-structure dilation, in units of the voxel size (geometric mean
        spacing, mm); only background voxels are claimed.
    noise_vox
        Standard deviation of the smooth boundary perturbation, in voxel sizes.
    gap_mm
        Gaps between two different structures narrower than about this (mm) are filled:
        a background voxel whose distances to its two nearest structures sum to at most
        ``gap_mm + max(spacing)`` takes the nearer structure's label.
    n_drop
        Inclusive range of the number of slices along ``drop_axis`` set to 0, chosen
        among slices that contain labels.
    """
    lab = np.asarray(mask.array)
    spacing = np.asarray(mask.spacing, float)
    h = float(np.prod(spacing) ** (1 / 3))
    values = [int(v) for v in np.unique(lab) if v != 0]
    per = {}
    for v in values:  # draw everything first: a fixed number of draws per structure
        per[v] = {"dilate_mm": float(rng.uniform(*dilate_vox) * h), "waves": _waves(rng, noise_vox * h)}
    n = int(rng.integers(n_drop[0], n_drop[1] + 1))
    best = np.full(lab.shape, np.inf, dtype=np.float32)  # dilation score (< 0: claimed)
    best_label = np.zeros(lab.shape, dtype=lab.dtype)
    d1 = np.full(lab.shape, np.inf, dtype=np.float32)  # nearest / second-nearest distances
    d2 = np.full(lab.shape, np.inf, dtype=np.float32)
    l1 = np.zeros(lab.shape, dtype=lab.dtype)
    reach = max(dilate_vox[1] * h + 3 * noise_vox * h, gap_mm + spacing.max()) + spacing.max()
    pad = np.ceil(reach / spacing).astype(int)
    objects = ndimage.find_objects(lab)
    for v in values:
        box = objects[v - 1]
        sl = tuple(slice(max(b.start - p, 0), min(b.stop + p, s)) for b, p, s in zip(box, pad, lab.shape, strict=True))
        crop = lab[sl]
        dist = ndimage.distance_transform_edt(crop != v, sampling=spacing).astype(np.float32)
        bg = crop == 0
        score = dist - per[v]["dilate_mm"] - _noise(_crop_points(mask, sl), per[v]["waves"]).reshape(crop.shape)
        b, bl = best[sl], best_label[sl]
        upd = bg & (score < 0) & (score < b)
        b[upd], bl[upd] = score[upd], v
        a1, a2, al = d1[sl], d2[sl], l1[sl]
        closer = dist < a1
        a2[:] = np.where(closer, a1, np.minimum(a2, dist))
        a1[:] = np.where(closer, dist, a1)
        al[closer] = v
    out = lab.copy()
    claimed = (lab == 0) & (best_label > 0)
    out[claimed] = best_label[claimed]
    bridge = (out == 0) & (d1 + d2 <= gap_mm + spacing.max())
    out[bridge] = l1[bridge]
    other = tuple(a for a in range(3) if a != drop_axis)
    occupied = np.flatnonzero(np.any(lab > 0, axis=other))
    dropped = (sorted(int(k) for k in rng.choice(occupied, size=min(n, occupied.size), replace=False))
               if occupied.size else [])
    index = [slice(None)] * 3
    for k in dropped:
        index[drop_axis] = k
        out[tuple(index)] = 0
    params = {
        "structures": {str(v): per[v] for v in values},
        "gap_mm": float(gap_mm),
        "dropped_slices": dropped,
        "drop_axis": int(drop_axis),
    }
    return mask.with_array(out), params

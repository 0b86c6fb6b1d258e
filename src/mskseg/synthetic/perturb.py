"""Perturbed copies of reference label maps: stand-in predictions with known, seeded errors.

Until trained models exist (and to test the evaluation stage on any data), a *perturbed*
method turns each reference mask into a plausible imperfect segmentation:

1. a smooth random displacement of the whole label map (Gaussian-smoothed white noise with
   correlation length ``smoothness_mm``, scaled to an RMS of ``displacement_mm``), applied
   with nearest-neighbour sampling, so boundaries move by about that much;
2. ``n_blobs`` spheres of radius ``blob_radius_mm`` centred on random boundary voxels, each
   either added to a random structure (a false-positive outlier, which drives the Hausdorff
   distance) or cut out of the label map (a hole);
3. optionally every structure grown (positive) or shrunk (negative) by ``offset_mm``, a
   volume bias that shows in the relative volume difference.

The random stream is fixed by ``seed`` and the subject id, so a rerun gives the same voxels.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mskseg.metrics.boxes import grow_box, nonzero_box
from mskseg.volume import Volume


@dataclass(frozen=True)
class PerturbSettings:
    """See the module docstring; lengths in mm."""

    displacement_mm: float = 1.0
    smoothness_mm: float = 10.0
    n_blobs: int = 2
    blob_radius_mm: float = 3.0
    offset_mm: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("displacement_mm", "blob_radius_mm"):
            if not np.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"perturbation {name} must be a finite value >= 0, got {getattr(self, name)}")
        if not self.smoothness_mm > 0:
            raise ValueError(f"perturbation smoothness_mm must be > 0, got {self.smoothness_mm}")
        if self.n_blobs < 0:
            raise ValueError(f"perturbation n_blobs must be >= 0, got {self.n_blobs}")


def subject_rng(seed: int, subject: str) -> np.random.Generator:
    """The random stream of one subject (stable across runs and machines)."""
    return np.random.default_rng([int(seed), zlib.crc32(subject.encode("utf-8"))])


def _displace(labels: np.ndarray, spacing: np.ndarray, s: PerturbSettings, rng: np.random.Generator) -> np.ndarray:
    if s.displacement_mm == 0:
        return labels.copy()
    # noise on a coarse grid (a few points per correlation length), smoothed, then interpolated
    step = np.maximum(1, np.floor(s.smoothness_mm / 3.0 / spacing)).astype(int)
    coarse_shape = tuple(int(n) for n in -(-np.asarray(labels.shape) // step) + 1)
    sigma = s.smoothness_mm / (step * spacing)
    fields = []
    for _ in range(3):
        f = ndimage.gaussian_filter(rng.standard_normal(coarse_shape), sigma, mode="wrap")
        fields.append(f)
    rms = np.sqrt(np.mean([np.mean(f ** 2) for f in fields]))
    grid = np.meshgrid(*[np.arange(n) / st for n, st in zip(labels.shape, step, strict=True)], indexing="ij",
                       sparse=True)
    out_coords = []
    for axis, f in enumerate(fields):
        u_mm = f / max(rms, 1e-12) * s.displacement_mm
        u = ndimage.map_coordinates(u_mm, np.broadcast_arrays(*grid), order=1, mode="nearest") / spacing[axis]
        out_coords.append(np.arange(labels.shape[axis]).reshape([-1 if a == axis else 1 for a in range(3)]) + u)
    return ndimage.map_coordinates(labels, out_coords, order=0, mode="nearest").astype(labels.dtype)


def _ball(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    r = np.floor(radius_mm / spacing).astype(int)
    g = np.meshgrid(*[np.arange(-n, n + 1) * sp for n, sp in zip(r, spacing, strict=True)], indexing="ij")
    return sum(x ** 2 for x in g) <= radius_mm ** 2


def perturb_labels(mask: Volume, settings: PerturbSettings, subject: str) -> Volume:
    """A perturbed copy of the label map ``mask`` (see the module docstring); ``mask`` is not changed."""
    labels = np.asarray(mask.array)
    out = np.zeros_like(labels)
    box = nonzero_box(labels)
    if box is None:
        return mask.with_array(out)
    spacing = np.asarray(mask.spacing, dtype=float)
    rng = subject_rng(settings.seed, subject)
    reach = 3 * settings.displacement_mm + 2 * settings.blob_radius_mm + abs(settings.offset_mm) + 1.0
    box = grow_box(box, np.ceil(reach / spacing).astype(int), labels.shape)
    work = _displace(labels[box], spacing, settings, rng)
    values = [int(v) for v in np.unique(work) if v != 0]
    if settings.offset_mm and values:
        dist_in = ndimage.distance_transform_edt(work != 0, sampling=spacing)
        if settings.offset_mm > 0:
            dist_out, idx = ndimage.distance_transform_edt(work == 0, sampling=spacing, return_indices=True)
            grown = work[tuple(idx)]
            work = np.where(dist_out <= settings.offset_mm, grown, work)
        else:
            work = np.where((work != 0) & (dist_in <= -settings.offset_mm), 0, work)
    edge = np.zeros((0, 3), dtype=np.int64)
    if settings.n_blobs and np.any(work):
        edge = np.argwhere((work != 0) & (ndimage.minimum_filter(work, size=3, mode="constant", cval=0) == 0))
    if len(edge) and values:
        ball = _ball(settings.blob_radius_mm, spacing)
        half = np.asarray(ball.shape) // 2
        for _ in range(settings.n_blobs):
            centre = edge[rng.integers(len(edge))]
            add = bool(rng.integers(2))
            value = values[int(rng.integers(len(values)))] if add else 0
            lo = centre - half
            sl = tuple(slice(max(0, a), min(n, a + b)) for a, b, n in zip(lo, ball.shape, work.shape, strict=True))
            bsl = tuple(slice(s.start - a, s.stop - a) for s, a in zip(sl, lo, strict=True))
            target = work[sl]
            target[ball[bsl]] = value
    out[box] = work
    return mask.with_array(out)

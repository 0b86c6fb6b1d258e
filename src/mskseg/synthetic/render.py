"""Voxel grids, partial-volume compositing, bias fields and noise.

A phantom model (:class:`mskseg.synthetic.knee.KneeModel`,
:class:`mskseg.synthetic.hip.HipModel`, :class:`mskseg.synthetic.ankle.AnkleModel`) maps world
points (mm, ITK/LPS, shape ``(3, N)``) to labels and a noise-free intensity; :func:`render`
evaluates it over a grid slab by slab (along index axis ``i``) in ``float32`` so that large
grids stay within memory, then adds the model's bias field and noise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from mskseg.synthetic.sdf import BIG, Frame
from mskseg.volume import Volume


class PhantomModel(Protocol):
    """What :func:`render` needs from a phantom model."""

    def evaluate(self, points: np.ndarray, voxel_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels ``uint8 (N,)``, noise-free intensity ``float32 (N,)`` and the smallest
        ``|SDF|`` (mm) over every field whose zero level set is a label or tissue boundary
        (:attr:`Painter.margin`), at world points ``(3, N)``."""
        ...

    def bias(self, points: np.ndarray) -> np.ndarray | None:
        """Multiplicative bias field at points ``(3, N)``, or ``None``."""
        ...

    def add_noise(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``values`` with the model's noise added."""
        ...


#: bound on the gradient norm of every SDF a model paints or labels with (the ellipsoid
#: bound's gradient is at most its axis ratio, <= 2.5 here, inside and 1.15 outside; the
#: tapered cartilage thickness fields add up to about 1.5); used to skip voxel blocks
#: far from any boundary
LIPSCHITZ = 4.0


def centred_origin(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    direction: np.ndarray,
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[float, float, float]:
    """Origin (mm) that puts the centre of the grid at world point ``centre``."""
    half = (np.asarray(shape, float) - 1.0) / 2.0 * np.asarray(spacing, float)
    o = np.asarray(centre, float) - np.asarray(direction, float) @ half
    return (float(o[0]), float(o[1]), float(o[2]))


def slab_points(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float],
    direction: np.ndarray,
    i0: int,
    i1: int,
    dtype: type = np.float32,
) -> np.ndarray:
    """World coordinates (mm), ``(3, N)``, of the voxel centres with ``i0 <= i < i1``.

    The points are in C order of the array block ``array[i0:i1]``.
    """
    d = np.asarray(direction, float)
    a = np.arange(i0, i1, dtype=float) * spacing[0]
    b = np.arange(shape[1], dtype=float) * spacing[1]
    c = np.arange(shape[2], dtype=float) * spacing[2]
    n = (i1 - i0) * shape[1] * shape[2]
    out = np.empty((3, n), dtype=dtype)
    for w in range(3):
        v = (
            origin[w]
            + d[w, 0] * a[:, None, None]
            + d[w, 1] * b[None, :, None]
            + d[w, 2] * c[None, None, :]
        )
        out[w] = v.astype(dtype, copy=False).ravel()
    return out


def slabs(
    shape: tuple[int, int, int], max_voxels: int = 1 << 20, multiple: int = 1
) -> Iterator[tuple[int, int]]:
    """Ranges ``(i0, i1)`` of index ``i`` with about ``max_voxels`` voxels each, a multiple
    of ``multiple`` slices (at least ``multiple``)."""
    per = max(max_voxels // max(shape[1] * shape[2], 1), 1)
    per = max(per // multiple * multiple, multiple)
    for i0 in range(0, shape[0], per):
        yield i0, min(i0 + per, shape[0])


def occupancy(sdf: np.ndarray, voxel_mm: float) -> np.ndarray:
    """Partial-volume fraction of a voxel of size ``voxel_mm`` centred where the SDF is ``sdf``.

    ``clip(0.5 - sdf / voxel_mm, 0, 1)``: 0.5 on the surface, so ``occupancy >= 0.5`` is the
    voxel-centre test ``sdf <= 0`` used for labels.
    """
    return np.clip(0.5 - sdf * (1.0 / voxel_mm), 0.0, 1.0)


class Painter:
    """Composites tissues in priority order ("over" operator on partial-volume fractions).

    Parameters
    ----------
    n
        Number of points.
    background
        Intensity where no tissue is painted.
    voxel_mm
        Voxel size (mm) for :func:`occupancy`.
    """

    def __init__(self, n: int, background: float, voxel_mm: float) -> None:
        self.value = np.full(n, background, dtype=np.float32)
        self.voxel_mm = float(voxel_mm)
        #: smallest |SDF| (mm) seen per point, over painted tissues and tracked fields
        self.margin = np.full(n, np.inf, dtype=np.float32)

    def track(self, sdf: np.ndarray) -> None:
        """Record a field whose zero level set is a boundary (e.g. of a label)."""
        np.minimum(self.margin, np.abs(sdf), out=self.margin)

    def paint(self, sdf: np.ndarray, value: float) -> None:
        """Paint a tissue of (scalar) intensity inside the SDF's zero level set."""
        self.track(sdf)
        o = occupancy(sdf, self.voxel_mm).astype(np.float32, copy=False)
        self.value += o * (np.float32(value) - self.value)


def legendre_bias(points: np.ndarray, coeffs: list[float], half_size_mm: float) -> np.ndarray:
    """``exp`` of a degree-2 polynomial in world coordinates scaled by ``half_size_mm``.

    ``coeffs`` multiply ``x, y, z, x^2-1/3, y^2-1/3, z^2-1/3, xy, yz, zx`` (9 values).
    """
    x, y, z = (points[a] * (1.0 / half_size_mm) for a in range(3))
    terms = (x, y, z, x * x - 1 / 3, y * y - 1 / 3, z * z - 1 / 3, x * y, y * z, z * x)
    acc = np.zeros(points.shape[1], dtype=points.dtype)
    for c, t in zip(coeffs, terms, strict=True):
        acc += float(c) * t
    return np.exp(acc)


def rician_noise(values: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of a complex signal ``values`` + Gaussian noise of ``sigma`` per channel."""
    n1 = rng.standard_normal(values.shape, dtype=np.float32)
    n2 = rng.standard_normal(values.shape, dtype=np.float32)
    re = values + np.float32(sigma) * n1
    im = np.float32(sigma) * n2
    return np.sqrt(re * re + im * im)


def mr_appearance(rng: np.random.Generator | None, *, bias_half_size_mm: float,
                  extra: dict[str, tuple[float, float]] | None = None) -> dict:
    """DESS/PD-like MR appearance (arbitrary units): tissue intensities (air, fat, muscle, fluid, cartilage,
    cortex, marrow, then ``extra`` tissues drawn uniform in their ranges), 9 bias-field coefficients and the
    Rician noise sigma, drawn in that order (``rng=None``: the ranges' midpoints, :class:`Draw`)."""
    from mskseg.synthetic._draw import Draw

    d = Draw(rng)
    intensity = {"air": 0.0, "fat": d.uniform(90.0, 140.0), "muscle": d.uniform(230.0, 300.0),
                 "fluid": d.uniform(850.0, 1000.0), "cartilage": d.uniform(520.0, 640.0),
                 "cortex": d.uniform(15.0, 40.0), "marrow": d.uniform(120.0, 180.0)}
    intensity.update({name: d.uniform(lo, hi) for name, (lo, hi) in (extra or {}).items()})
    return {"intensity": intensity, "bias_coefficients": d.uniforms(-0.12, 0.12, 9),
            "bias_half_size_mm": float(bias_half_size_mm), "noise_sigma": d.uniform(10.0, 22.0)}


class MRSignal:
    """The bias field and Rician noise of an MR phantom model whose ``appearance`` is :func:`mr_appearance`'s."""

    appearance: dict

    def bias(self, p: np.ndarray) -> np.ndarray:
        """Smooth multiplicative bias field (scanner frame) at world points ``(3, N)``."""
        ap = self.appearance
        return legendre_bias(p, ap["bias_coefficients"], ap["bias_half_size_mm"])

    def add_noise(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rician noise (magnitude image)."""
        return rician_noise(values, self.appearance["noise_sigma"], rng)


def gaussian_noise(values: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``values`` + Gaussian noise of standard deviation ``sigma``."""
    return values + np.float32(sigma) * rng.standard_normal(values.shape, dtype=np.float32)


def _block_centres(
    shape: tuple[int, int, int], i0: int, i1: int, b: int
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Continuous indices ``(N, 3)`` of the centres of ``b**3`` blocks of ``[i0, i1)``."""
    nb = (-(-(i1 - i0) // b), -(-shape[1] // b), -(-shape[2] // b))
    axes = [i0 + np.arange(nb[0]) * b, np.arange(nb[1]) * b, np.arange(nb[2]) * b]
    g = np.meshgrid(*[a + (b - 1) / 2.0 for a in axes], indexing="ij")
    return np.stack([x.ravel() for x in g], axis=1), nb


def _upsample(a: np.ndarray, nb: tuple[int, int, int], b: int, dims: tuple[int, int, int]) -> np.ndarray:
    """Per-block values ``a`` repeated over each block's voxels, cropped to ``dims``, raveled."""
    a = a.reshape(nb)
    for ax in range(3):
        a = np.repeat(a, b, axis=ax)
    return a[: dims[0], : dims[1], : dims[2]].ravel()


def render(
    model: PhantomModel,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float],
    direction: np.ndarray,
    rng: np.random.Generator,
    max_voxels: int = 1 << 20,
    block: int = 2,
) -> tuple[Volume, Volume]:
    """Image (``float32``) and label (``uint8``) volumes of a model on a grid.

    The partial-volume width is the geometric mean of ``spacing``. The model is first
    evaluated at the centres of ``block**3`` voxel blocks; blocks whose distance to every
    boundary exceeds :data:`LIPSCHITZ` times their half-diagonal plus a voxel are uniform
    and take that value (the same value a per-voxel evaluation gives), the others are
    evaluated voxel by voxel. The result is a deterministic function of the model, the
    grid, ``max_voxels``, ``block`` and the state of ``rng``.
    """
    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    image = np.empty(shape, dtype=np.float32)
    labels = np.empty(shape, dtype=np.uint8)
    voxel_mm = float(np.prod(spacing) ** (1.0 / 3.0))
    geom = {"spacing": spacing, "origin": origin, "direction": np.asarray(direction, float)}
    ref = Volume(labels, **geom)
    b = max(int(block), 1)
    half_diag = 0.5 * (b - 1) * float(np.linalg.norm(spacing))
    for i0, i1 in slabs(shape, max_voxels, multiple=b):
        pts = slab_points(shape, spacing, origin, direction, i0, i1)
        dims = (i1 - i0, shape[1], shape[2])
        if b > 1:
            idx, nb = _block_centres(shape, i0, i1, b)
            cpts = ref.index_to_world(idx).T.astype(np.float32)
            clab, cval, cmargin = model.evaluate(cpts, voxel_mm)
            uniform = cmargin > LIPSCHITZ * half_diag + voxel_mm

            lab, val = _upsample(clab, nb, b, dims), _upsample(cval, nb, b, dims)
            todo = np.flatnonzero(~_upsample(uniform, nb, b, dims))
            if todo.size:
                flab, fval, _ = model.evaluate(pts[:, todo], voxel_mm)
                lab[todo], val[todo] = flab, fval
        else:
            lab, val, _ = model.evaluate(pts, voxel_mm)
        bias = model.bias(pts)
        if bias is not None:
            val = val * bias.astype(np.float32, copy=False)
        val = model.add_noise(val, rng)
        image[i0:i1] = val.reshape(dims)
        labels[i0:i1] = lab.reshape(dims)
    return Volume(image, **geom), Volume(labels, **geom)


def world_box(
    parts: list[tuple[object, Frame]], margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned world box (``lo``, ``hi``; mm) around primitives placed by frames."""
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for prim, frame in parts:
        for c, r in prim.bounds():  # type: ignore[attr-defined]
            w = frame.to_world(np.asarray(c, float).reshape(3, 1))[:, 0]
            lo = np.minimum(lo, w - r - margin)
            hi = np.maximum(hi, w + r + margin)
    return lo, hi


def in_box(p: np.ndarray, box: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Boolean ``(N,)``: which points ``(3, N)`` lie in an axis-aligned box."""
    lo, hi = box
    m = (p[0] >= lo[0]) & (p[0] <= hi[0])
    m &= (p[1] >= lo[1]) & (p[1] <= hi[1])
    m &= (p[2] >= lo[2]) & (p[2] <= hi[2])
    return m


def eval_in_box(
    fn: Callable[[np.ndarray], np.ndarray], p: np.ndarray, box: tuple[np.ndarray, np.ndarray], n_out: int = 1
) -> np.ndarray:
    """``fn(p)`` (shape ``(n_out, N)``) where ``p`` is in ``box``, :data:`BIG` elsewhere.

    ``fn`` maps points ``(3, M)`` to an array ``(n_out, M)``. Used to skip structures far
    from a slab of voxels; the caller guarantees the box (with margin) contains every
    point where the exact values matter.
    """
    m = in_box(p, box)
    if m.all():
        return np.asarray(fn(p)).reshape(n_out, -1)
    out = np.full((n_out, p.shape[1]), BIG, dtype=p.dtype)
    if m.any():
        out[:, m] = np.asarray(fn(p[:, m])).reshape(n_out, -1)
    return out

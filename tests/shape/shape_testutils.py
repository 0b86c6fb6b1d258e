"""Synthetic corresponding-point shapes with known pose and known modes of variation (mm)."""

from __future__ import annotations

import numpy as np

from mskseg.shape.procrustes import SimilarityTransform


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation (det +1)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def random_pose(rng: np.random.Generator, *, scale: bool = True) -> SimilarityTransform:
    """A random similarity (or rigid, ``scale=False``) transform with a translation of ~100 mm."""
    factor = float(rng.uniform(0.7, 1.4)) if scale else 1.0
    return SimilarityTransform(factor, random_rotation(rng), rng.normal(0.0, 100.0, 3))


def base_shape(rng: np.random.Generator, n_points: int = 300) -> np.ndarray:
    """A bone-like anisotropic point cloud (extents ~60 x 25 x 12 mm), centred on its principal axes.

    Its second-moment matrix is diagonal (axes = coordinate axes), which the stretch family
    of :func:`stretched_shapes` relies on.
    """
    pts = rng.standard_normal((n_points, 3)) * np.array([30.0, 12.0, 6.0])
    pts -= pts.mean(axis=0)
    _, _, vt = np.linalg.svd(pts, full_matrices=False)
    return pts @ vt.T


def tangent_free_modes(rng: np.random.Generator, mean: np.ndarray, k: int) -> np.ndarray:
    """``k`` modes ``(k, N, 3)``, orthonormal when flattened, orthogonal to translations,
    infinitesimal rotations and scaling of ``mean`` (so Procrustes leaves them alone to first order)."""
    n = mean.shape[0]
    tangent = [np.tile(np.eye(3)[a], (n, 1)).ravel() for a in range(3)]
    tangent += [np.cross(np.eye(3)[a], mean).ravel() for a in range(3)]
    tangent.append(mean.ravel())
    basis, _ = np.linalg.qr(np.array(tangent).T)
    raw = rng.standard_normal((3 * n, k))
    raw -= basis @ (basis.T @ raw)
    modes, _ = np.linalg.qr(raw)
    return modes.T.reshape(k, n, 3)


def exact_coefficients(rng: np.random.Generator, n: int, sds: np.ndarray) -> np.ndarray:
    """``(n, k)`` coefficients with sample mean 0, sample SDs exactly ``sds`` and no correlation."""
    if n <= len(sds):
        raise ValueError(f"{n} shapes cannot have {len(sds)} uncorrelated centred coefficients")
    raw = rng.standard_normal((n, len(sds)))
    raw -= raw.mean(axis=0)
    q, _ = np.linalg.qr(raw)
    return q * np.sqrt(n - 1) * np.asarray(sds)


def modal_shapes(rng: np.random.Generator, n: int = 200, n_points: int = 300,
                 sds: tuple[float, ...] = (10.0, 5.0, 2.0), pose: str = "none"):
    """Shapes ``mean + b @ modes``, posed by ``pose`` in ``none``, ``rigid``, ``similarity``.

    Returns ``(shapes, mean, modes, coefficients, poses)``.
    """
    mean = base_shape(rng, n_points)
    modes = tangent_free_modes(rng, mean, len(sds))
    b = exact_coefficients(rng, n, np.asarray(sds))
    model_frame = mean + np.tensordot(b, modes, axes=1)
    if pose == "none":
        poses = [SimilarityTransform.identity() for _ in range(n)]
    else:
        poses = [random_pose(rng, scale=pose == "similarity") for _ in range(n)]
    shapes = np.stack([p.apply(s) for p, s in zip(poses, model_frame, strict=True)])
    return shapes, mean, modes, b, poses


def stretched_shapes(rng: np.random.Generator, n: int = 12, n_points: int = 200,
                     sds: tuple[float, float] = (0.10, 0.04), scale: bool = False) -> np.ndarray:
    """Shapes ``pose(diag(1 + a, 1 + c, 1) @ mean)``: two exact linear modes (stretches along the
    mean's principal axes) under random rigid (or similarity) poses.

    Procrustes aligns such shapes exactly (the cross-covariance of two of them is diagonal
    and positive), so a model with 2 modes (3 with scaling) reproduces them to rounding.
    """
    mean = base_shape(rng, n_points)
    a = rng.normal(0.0, sds[0], n)
    c = rng.normal(0.0, sds[1], n)
    shapes = [mean * np.array([1.0 + ai, 1.0 + ci, 1.0]) for ai, ci in zip(a, c, strict=True)]
    return np.stack([random_pose(rng, scale=scale).apply(s) for s in shapes])

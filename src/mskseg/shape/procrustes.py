"""Similarity transforms and (generalised) Procrustes alignment of corresponding 3D points.

Shapes are arrays of ``N`` corresponding points in physical millimetres, shape ``(N, 3)``;
a set of shapes is ``(n_shapes, N, 3)``. Point ``j`` of every shape is the same anatomical
landmark.

A :class:`SimilarityTransform` maps points ``p`` to ``scale * R p + t``; with row-vector
points this is ``scale * points @ rotation.T + translation``. ``rotation`` is always a proper
rotation (determinant +1): alignment never mirrors a shape.

:func:`generalized_procrustes` aligns a set of shapes to their common mean. Its *model
frame* is fixed so that results are deterministic and stay in millimetres:

* the mean is centred at the origin;
* the mean has the orientation of the first shape (after centring);
* with ``scale=True`` the mean's centroid size (square root of the summed squared
  distances of its points to their centroid, in mm) equals the average centroid size of
  the inputs; with ``scale=False`` only rotation and translation are removed and every
  aligned shape keeps its own size.

Each returned transform maps the model frame back to its subject's own physical frame:
``shapes[i] ~= transforms[i].apply(aligned[i])``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: tolerance on ``R^T R = I`` and ``det R = 1`` when a rotation is checked
ROTATION_TOL = 1e-6


def _centroid_size(points: np.ndarray) -> float:
    """Square root of the summed squared distances of the points to their centroid (mm)."""
    return float(np.sqrt(np.sum((points - points.mean(axis=0)) ** 2)))


def _is_degenerate(points: np.ndarray) -> bool:
    """True when all points coincide (to rounding relative to their magnitude)."""
    magnitude = max(1.0, float(np.abs(points).max()))
    return _centroid_size(points) <= 1e-12 * magnitude * np.sqrt(len(points))


def as_points(points: Any, name: str = "points") -> np.ndarray:
    """``points`` as a finite float64 ``(N, 3)`` array with ``N >= 3``; ValueError otherwise."""
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {arr.shape}")
    if arr.shape[0] < 3:
        raise ValueError(f"{name} needs at least 3 points, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds non-finite coordinates")
    return arr


def as_shapes(shapes: Any, name: str = "shapes") -> np.ndarray:
    """``shapes`` as a finite float64 ``(n, N, 3)`` array with ``n >= 1`` and ``N >= 3``."""
    arr = np.asarray(shapes, dtype=float)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{name} must have shape (n_shapes, N, 3), got {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{name} is empty")
    if arr.shape[1] < 3:
        raise ValueError(f"{name} need at least 3 points each, got {arr.shape[1]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} hold non-finite coordinates")
    return arr


@dataclass(frozen=True, eq=False)
class SimilarityTransform:
    """``p -> scale * rotation @ p + translation`` (mm in, mm out).

    Parameters
    ----------
    scale
        Isotropic scale factor, finite and > 0 (1 for a rigid transform).
    rotation
        Proper rotation ``(3, 3)``: orthonormal with determinant +1 (checked to
        :data:`ROTATION_TOL`).
    translation
        ``(3,)`` in mm.

    The arrays are copied and made read-only.
    """

    scale: float
    rotation: np.ndarray
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        scale = float(self.scale)
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be finite and > 0, got {self.scale}")
        rotation = np.array(self.rotation, dtype=float)
        translation = np.array(self.translation, dtype=float)
        if rotation.shape != (3, 3) or not np.all(np.isfinite(rotation)):
            raise ValueError(f"rotation must be a finite (3, 3) array, got shape {rotation.shape}")
        if (not np.allclose(rotation.T @ rotation, np.eye(3), atol=ROTATION_TOL)
                or abs(np.linalg.det(rotation) - 1.0) > ROTATION_TOL):
            raise ValueError("rotation must be a proper rotation (orthonormal, determinant +1)")
        if translation.shape != (3,) or not np.all(np.isfinite(translation)):
            raise ValueError(f"translation must be a finite (3,) array, got shape {translation.shape}")
        rotation.flags.writeable = False
        translation.flags.writeable = False
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", translation)

    @classmethod
    def identity(cls) -> SimilarityTransform:
        """The transform that leaves every point where it is."""
        return cls(1.0, np.eye(3), np.zeros(3))

    def apply(self, points: Any) -> np.ndarray:
        """Transform points ``(..., 3)`` in mm: ``scale * points @ rotation.T + translation``."""
        pts = np.asarray(points, dtype=float)
        if pts.shape[-1:] != (3,):
            raise ValueError(f"points must have a last axis of length 3, got shape {pts.shape}")
        return self.scale * pts @ self.rotation.T + self.translation

    def inverse(self) -> SimilarityTransform:
        """The transform undoing this one: ``p = (R^T (x - t)) / scale``."""
        rot_t = self.rotation.T
        return SimilarityTransform(1.0 / self.scale, rot_t, -(rot_t @ self.translation) / self.scale)

    def compose(self, first: SimilarityTransform) -> SimilarityTransform:
        """The transform applying ``first`` and then ``self``."""
        return SimilarityTransform(
            self.scale * first.scale,
            self.rotation @ first.rotation,
            self.scale * (self.rotation @ first.translation) + self.translation,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form: ``{"scale": float, "rotation": 3x3 lists, "translation": list}``."""
        return {
            "scale": float(self.scale),
            "rotation": self.rotation.tolist(),
            "translation": self.translation.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimilarityTransform:
        """Inverse of :meth:`as_dict`; ValueError on missing keys or invalid values."""
        missing = [key for key in ("scale", "rotation", "translation") if key not in data]
        if missing:
            raise ValueError(f"similarity transform lacks {missing}")
        return cls(float(data["scale"]), np.asarray(data["rotation"], dtype=float),
                   np.asarray(data["translation"], dtype=float))


def fit_similarity(source: Any, target: Any, *, scale: bool = True) -> SimilarityTransform:
    """Least-squares similarity transform ``T`` minimising ``||T(source) - target||^2``.

    Umeyama's closed form (Kabsch with ``scale=False``), restricted to proper rotations:
    when the best orthogonal map would be a reflection the smallest singular direction is
    flipped, so a mirrored target still gives a rotation with determinant +1.

    Parameters
    ----------
    source, target
        Corresponding points ``(N, 3)`` in mm, ``N >= 3``.
    scale
        Estimate the scale factor; with False it is fixed to 1 (rigid fit).

    Returns
    -------
    SimilarityTransform
        Maps ``source`` onto ``target``. With collinear points the rotation about their
        line is not determined; one minimiser is returned.

    Raises
    ------
    ValueError
        Mismatched shapes, fewer than 3 points, non-finite coordinates, or all points of
        ``source`` or of ``target`` coinciding (no orientation or size to fit).
    """
    src = as_points(source, "source")
    dst = as_points(target, "target")
    if src.shape != dst.shape:
        raise ValueError(f"source {src.shape} and target {dst.shape} differ in shape")
    if _is_degenerate(src):
        raise ValueError("source is degenerate: all its points coincide")
    if _is_degenerate(dst):
        raise ValueError("target is degenerate: all its points coincide")
    mu_src = src.mean(axis=0)
    mu_dst = dst.mean(axis=0)
    x_src = src - mu_src
    x_dst = dst - mu_dst
    u, sing, vt = np.linalg.svd(x_dst.T @ x_src)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    rotation = (u * d) @ vt
    factor = float(np.sum(sing * d) / np.sum(x_src**2)) if scale else 1.0
    translation = mu_dst - factor * rotation @ mu_src
    return SimilarityTransform(factor, rotation, translation)


@dataclass(eq=False)
class GPAResult:
    """Outcome of :func:`generalized_procrustes`.

    Attributes
    ----------
    aligned
        ``(n, N, 3)`` shapes in the model frame (mm).
    mean
        ``(N, 3)`` Procrustes mean in the model frame (mm): centred, in the first shape's
        orientation and, with scaling, of the average input centroid size.
    transforms
        One per shape, model frame -> subject frame: ``shapes[i] ~= transforms[i].apply(aligned[i])``.
    n_iter
        Alignment passes made.
    converged
        Whether the relative change of the mean fell below ``tol`` within ``max_iter``.
    """

    aligned: np.ndarray
    mean: np.ndarray
    transforms: list[SimilarityTransform]
    n_iter: int
    converged: bool


def _normalise_mean(mean: np.ndarray, reference: np.ndarray, size: float | None) -> np.ndarray:
    """Centre ``mean``, rotate it onto ``reference`` (centred) and, if given, set its centroid size."""
    centred = mean - mean.mean(axis=0)
    rotation = fit_similarity(centred, reference, scale=False).rotation
    centred = centred @ rotation.T
    centred -= centred.mean(axis=0)
    if size is not None:
        centred *= size / _centroid_size(centred)
    return centred


def generalized_procrustes(shapes: Any, *, scale: bool = True, tol: float = 1e-7,
                           max_iter: int = 100) -> GPAResult:
    """Generalised Procrustes analysis: align every shape to the common mean, iteratively.

    Each pass aligns all shapes to the current mean with :func:`fit_similarity` (with or
    without scaling), averages them, and re-normalises the average into the model frame
    (see the module docstring: centred, rotated back onto the first shape's orientation,
    and with ``scale=True`` resized to the average input centroid size), so the mean
    cannot drift or shrink. It stops when ``||mean_new - mean|| / ||mean|| < tol`` and
    then aligns the shapes once more to the final mean.

    Parameters
    ----------
    shapes
        ``(n, N, 3)`` corresponding points in mm, ``n >= 1``, ``N >= 3``; no shape may have
        all its points coincide.
    scale
        Remove size differences too (similarity alignment); with False only rotation and
        translation are removed and the aligned shapes keep their sizes.
    tol
        Relative change of the mean (Frobenius norm) below which the iteration stops.
    max_iter
        Most alignment passes; ``converged`` is False if they are used up.

    Returns
    -------
    GPAResult
        A single shape is returned centred (and unchanged in size) in its own orientation.
    """
    arr = as_shapes(shapes)
    if tol <= 0 or max_iter < 1:
        raise ValueError(f"tol must be > 0 and max_iter >= 1, got tol={tol}, max_iter={max_iter}")
    for i, shape in enumerate(arr):
        if _is_degenerate(shape):
            raise ValueError(f"shape {i} is degenerate: all its points coincide")
    size = float(np.mean([_centroid_size(s) for s in arr])) if scale else None
    reference = arr[0] - arr[0].mean(axis=0)
    mean = reference * (size / _centroid_size(reference)) if size is not None else reference.copy()

    converged = False
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        aligned = np.stack([fit_similarity(s, mean, scale=scale).apply(s) for s in arr])
        new_mean = _normalise_mean(aligned.mean(axis=0), reference, size)
        change = np.linalg.norm(new_mean - mean) / np.linalg.norm(mean)
        mean = new_mean
        if change < tol:
            converged = True
            break

    to_model = [fit_similarity(s, mean, scale=scale) for s in arr]
    aligned = np.stack([t.apply(s) for t, s in zip(to_model, arr, strict=True)])
    return GPAResult(aligned=aligned, mean=mean, transforms=[t.inverse() for t in to_model],
                     n_iter=n_iter, converged=converged)


def transforms_to_arrays(transforms: Sequence[SimilarityTransform]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(scales (n,), rotations (n, 3, 3), translations (n, 3))`` of a list of transforms."""
    scales = np.array([t.scale for t in transforms], dtype=float)
    rotations = np.array([t.rotation for t in transforms], dtype=float).reshape(-1, 3, 3)
    translations = np.array([t.translation for t in transforms], dtype=float).reshape(-1, 3)
    return scales, rotations, translations


def transforms_from_arrays(scales: np.ndarray, rotations: np.ndarray,
                           translations: np.ndarray) -> list[SimilarityTransform]:
    """Inverse of :func:`transforms_to_arrays`."""
    return [SimilarityTransform(float(s), r, t) for s, r, t in zip(scales, rotations, translations, strict=True)]

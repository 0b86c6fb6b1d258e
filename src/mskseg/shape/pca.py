"""Fit a statistical shape model: generalised Procrustes alignment, then PCA.

Shapes are ``(n, N, 3)`` corresponding points in mm. After
:func:`~mskseg.shape.procrustes.generalized_procrustes` the aligned shapes are flattened
to ``(n, 3N)``, centred on their average (the model mean) and decomposed by SVD. With
``n`` shapes at most ``n - 1`` modes have non-zero variance; modes whose variance is zero
to rounding (see :data:`TRIVIAL_VARIANCE_RATIO` and :data:`TRIVIAL_SIZE_RATIO`) are never
kept.

This module also re-exports :class:`~mskseg.shape.model.ShapeModel` and the file format
functions of :mod:`mskseg.shape.storage`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mskseg.shape.model import ShapeModel
from mskseg.shape.procrustes import as_shapes, generalized_procrustes
from mskseg.shape.storage import load_shape_model, save_shape_model

__all__ = ["ShapeModel", "fit_shape_model", "load_shape_model", "n_modes_for", "save_shape_model"]

#: modes whose variance is at most this fraction of the largest are treated as zero: they
#: hold rounding and the residue of the Procrustes iteration (``tol``), not shape variation
TRIVIAL_VARIANCE_RATIO = 1e-12
#: ... and so are modes whose variance is at most this fraction of the squared centroid size
#: of the mean (so identical shapes in different poses give a model without modes)
TRIVIAL_SIZE_RATIO = 1e-16


def _check_subjects(subjects: Sequence[Any], n: int) -> list[str]:
    ids = [str(s) for s in subjects]
    if len(ids) != n:
        raise ValueError(f"{len(ids)} subject ids for {n} shapes")
    seen: set[str] = set()
    duplicates = sorted({s for s in ids if s in seen or seen.add(s)})
    if duplicates:
        raise ValueError(f"duplicate subject ids: {duplicates}")
    return ids


def n_modes_for(variances: np.ndarray, total_variance: float, *, n_modes: int | None = None,
                variance_kept: float | None = None) -> int:
    """How many of the (descending) ``variances`` to keep.

    Parameters
    ----------
    variances
        Non-trivial eigenvalues, mm^2, descending.
    total_variance
        Sum of all eigenvalues, mm^2.
    n_modes
        Keep at most this many (>= 1).
    variance_kept
        ``0 < v <= 1``: keep the fewest modes whose cumulative explained ratio reaches ``v``
        (to a rounding tolerance of 1e-12); all available if none does.

    Returns
    -------
    int
        With both None, ``len(variances)``; with both given, the smaller of the two counts.
    """
    k = len(variances)
    if n_modes is not None:
        if int(n_modes) != n_modes or n_modes < 1:
            raise ValueError(f"n_modes must be an integer >= 1, got {n_modes}")
        k = min(k, int(n_modes))
    if variance_kept is not None:
        if not 0 < variance_kept <= 1:
            raise ValueError(f"variance_kept must be in (0, 1], got {variance_kept}")
        if total_variance > 0 and len(variances):
            cumulative = np.cumsum(variances) / total_variance
            reached = np.nonzero(cumulative >= variance_kept - 1e-12)[0]
            needed = int(reached[0]) + 1 if reached.size else len(variances)
            k = min(k, needed)
    return k


def fit_shape_model(
    shapes: Any,
    subjects: Sequence[Any],
    *,
    scale: bool = True,
    n_modes: int | None = None,
    variance_kept: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ShapeModel:
    """Build a :class:`~mskseg.shape.model.ShapeModel` from corresponding shapes.

    Parameters
    ----------
    shapes
        ``(n, N, 3)`` corresponding points in mm, each in its subject's physical frame.
    subjects
        ``n`` unique ids (converted to strings).
    scale
        Procrustes with scaling (similarity) if True, rigid if False.
    n_modes
        Keep at most this many modes (>= 1).
    variance_kept
        ``0 < v <= 1``: keep the fewest modes reaching this cumulative explained ratio.
        With both None all non-trivial modes (at most ``n - 1``) are kept.
    metadata
        Free JSON-safe description stored with the model.

    Returns
    -------
    ShapeModel
        Modes signed so that each one's largest-magnitude component is positive, which
        makes the model deterministic. If all aligned shapes are identical it has no modes.

    Raises
    ------
    ValueError
        Fewer than 2 shapes, a subject list of another length, duplicate ids, invalid
        shapes (see :func:`~mskseg.shape.procrustes.generalized_procrustes`) or options.
    """
    arr = as_shapes(shapes)
    n, n_points, _ = arr.shape
    if n < 2:
        raise ValueError(f"a shape model needs at least 2 shapes, got {n}")
    ids = _check_subjects(subjects, n)
    if n_modes is not None and (int(n_modes) != n_modes or n_modes < 1):
        raise ValueError(f"n_modes must be an integer >= 1, got {n_modes}")
    if variance_kept is not None and not 0 < variance_kept <= 1:
        raise ValueError(f"variance_kept must be in (0, 1], got {variance_kept}")

    gpa = generalized_procrustes(arr, scale=scale)
    if not gpa.converged:
        warnings.warn(f"generalised Procrustes did not converge in {gpa.n_iter} iterations",
                      RuntimeWarning, stacklevel=2)
    flat = gpa.aligned.reshape(n, -1)
    mean = flat.mean(axis=0)
    centred = flat - mean
    u, sing, vt = np.linalg.svd(centred, full_matrices=False)
    all_variances = sing**2 / (n - 1)
    total = float(all_variances.sum())
    size2 = float(np.sum((gpa.mean - gpa.mean.mean(axis=0)) ** 2))
    floor = max(TRIVIAL_VARIANCE_RATIO * float(all_variances[0]), TRIVIAL_SIZE_RATIO * size2)
    nontrivial = min(int(np.sum(all_variances > floor)), n - 1)
    k = n_modes_for(all_variances[:nontrivial], total, n_modes=n_modes, variance_kept=variance_kept)

    modes = vt[:k].copy()
    coefficients = u[:, :k] * sing[:k]
    signs = np.sign(modes[np.arange(k), np.argmax(np.abs(modes), axis=1)])
    signs[signs == 0] = 1.0
    modes *= signs[:, None]
    coefficients *= signs[None, :]
    return ShapeModel(
        mean=mean.reshape(n_points, 3),
        modes=modes.reshape(k, n_points, 3),
        variances=all_variances[:k].copy(),
        total_variance=total,
        coefficients=coefficients,
        transforms=gpa.transforms,
        subjects=ids,
        scale=scale,
        metadata=dict(metadata or {}),
    )

"""The statistical shape model: a mean shape and orthonormal modes of variation (mm).

A shape in the *model frame* is ``mean + sum_k b_k * modes[k]``; a
:class:`~mskseg.shape.procrustes.SimilarityTransform` places it in a subject's physical
frame. The modes are orthonormal when flattened to ``(K, 3N)``, so a coefficient ``b_k`` is
in mm and its variance across the training set is ``variances[k]`` (mm^2).
Models are built by :func:`mskseg.shape.pca.fit_shape_model` and stored by
:mod:`mskseg.shape.storage`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mskseg.shape.procrustes import SimilarityTransform, as_points, fit_similarity


@dataclass(eq=False)
class ShapeModel:
    """Point distribution model from Procrustes-aligned shapes.

    Attributes
    ----------
    mean
        ``(N, 3)`` mean shape in the model frame, mm (the average of the aligned training
        shapes; centred, in the first training shape's orientation).
    modes
        ``(K, N, 3)`` modes of variation, orthonormal when flattened to ``(K, 3N)``.
    variances
        ``(K,)`` variance of the training coefficients along each mode, mm^2, descending
        (eigenvalues of the sample covariance, divisor ``n - 1``).
    total_variance
        Total variance of the aligned training shapes, mm^2 (sum of all eigenvalues,
        including those of modes not kept).
    coefficients
        ``(n, K)`` coefficients of each training shape, mm.
    transforms
        Per training shape, model frame -> subject frame (see
        :class:`~mskseg.shape.procrustes.GPAResult`).
    subjects
        Training subject ids, in the order of ``coefficients`` and ``transforms``.
    scale
        Whether Procrustes alignment removed size (similarity) or only pose (rigid).
    metadata
        Free JSON-safe description (bone, fold, dataset, ...).
    """

    mean: np.ndarray
    modes: np.ndarray
    variances: np.ndarray
    total_variance: float
    coefficients: np.ndarray
    transforms: list[SimilarityTransform]
    subjects: list[str]
    scale: bool
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mean = as_points(self.mean, "mean")
        n_points = self.mean.shape[0]
        self.modes = np.asarray(self.modes, dtype=float).reshape(-1, n_points, 3)
        k = self.modes.shape[0]
        self.variances = np.asarray(self.variances, dtype=float).reshape(-1)
        self.coefficients = np.asarray(self.coefficients, dtype=float)
        self.subjects = [str(s) for s in self.subjects]
        self.transforms = list(self.transforms)
        self.total_variance = float(self.total_variance)
        self.scale = bool(self.scale)
        self.metadata = dict(self.metadata)
        n = len(self.subjects)
        if self.variances.shape != (k,):
            raise ValueError(f"variances has shape {self.variances.shape}, expected ({k},)")
        if self.coefficients.shape != (n, k):
            raise ValueError(f"coefficients has shape {self.coefficients.shape}, expected ({n}, {k})")
        if len(self.transforms) != n:
            raise ValueError(f"{len(self.transforms)} transforms for {n} subjects")

    # ------------------------------------------------------------------ sizes

    @property
    def n_modes(self) -> int:
        """Number of modes kept, ``K``."""
        return int(self.modes.shape[0])

    @property
    def n_points(self) -> int:
        """Number of corresponding points, ``N``."""
        return int(self.mean.shape[0])

    @property
    def n_subjects(self) -> int:
        """Number of training shapes, ``n``."""
        return len(self.subjects)

    @property
    def sd(self) -> np.ndarray:
        """Standard deviation along each mode, mm: ``sqrt(variances)``."""
        return np.sqrt(self.variances)

    @property
    def explained_ratio(self) -> np.ndarray:
        """Fraction of the total variance along each mode (zeros if the total is 0)."""
        if self.total_variance <= 0:
            return np.zeros_like(self.variances)
        return self.variances / self.total_variance

    @property
    def cumulative_ratio(self) -> np.ndarray:
        """Cumulative fraction of the total variance explained by the first 1..K modes."""
        return np.cumsum(self.explained_ratio)

    # ------------------------------------------------------------------ use

    def _check_n_modes(self, n_modes: int | None) -> int:
        if n_modes is None:
            return self.n_modes
        if int(n_modes) != n_modes or not 0 <= n_modes <= self.n_modes:
            raise ValueError(f"n_modes must be an integer in 0..{self.n_modes}, got {n_modes}")
        return int(n_modes)

    def instance(self, coefficients: Any, transform: SimilarityTransform | None = None) -> np.ndarray:
        """Shape ``mean + sum_k b_k modes[k]`` for the first ``K' <= K`` modes, mm.

        Parameters
        ----------
        coefficients
            ``(K',)`` coefficients in mm (not in SD units); an empty array gives the mean.
        transform
            Optional model -> subject transform applied to the result; None leaves the
            shape in the model frame.

        Returns
        -------
        numpy.ndarray
            ``(N, 3)`` points in mm.
        """
        b = np.asarray(coefficients, dtype=float).reshape(-1)
        if b.size > self.n_modes:
            raise ValueError(f"{b.size} coefficients for a model of {self.n_modes} modes")
        if not np.all(np.isfinite(b)):
            raise ValueError("coefficients must be finite")
        shape = self.mean + np.tensordot(b, self.modes[: b.size], axes=1)
        return transform.apply(shape) if transform is not None else shape

    def project(self, shape: Any, n_modes: int | None = None) -> tuple[np.ndarray, SimilarityTransform]:
        """Coefficients and pose of a shape given in its own frame.

        The shape is aligned onto the mean with
        :func:`~mskseg.shape.procrustes.fit_similarity` (scaling as the model was built);
        the residual in the model frame is projected onto the first ``n_modes`` modes.

        Parameters
        ----------
        shape
            ``(N, 3)`` points in mm, corresponding to the model's points.
        n_modes
            Modes to project onto, ``0..K``; None uses all.

        Returns
        -------
        coefficients, transform
            ``(n_modes,)`` coefficients in mm and the model -> shape-frame transform.
            For a training shape of a model built with scaling they are close to, but not
            exactly, ``coefficients[i]`` and ``transforms[i]``: least-squares scaling onto
            the mean of the aligned shapes differs slightly from Procrustes' normalised mean.
        """
        pts = as_points(shape, "shape")
        if pts.shape != self.mean.shape:
            raise ValueError(f"shape has {pts.shape[0]} points, the model {self.n_points}")
        m = self._check_n_modes(n_modes)
        to_model = fit_similarity(pts, self.mean, scale=self.scale)
        residual = (to_model.apply(pts) - self.mean).reshape(-1)
        b = self.modes[:m].reshape(m, 3 * self.n_points) @ residual
        return b, to_model.inverse()

    def reconstruct(self, shape: Any, n_modes: int | None = None) -> np.ndarray:
        """Best approximation of ``shape`` with ``n_modes`` modes, in the shape's own frame (mm)."""
        b, transform = self.project(shape, n_modes)
        return self.instance(b, transform)

    def aligned_training_shapes(self) -> np.ndarray:
        """``(n, N, 3)`` training shapes in the model frame as the model represents them, mm.

        With all non-trivial modes kept these are the Procrustes-aligned shapes exactly.
        """
        flat = self.coefficients @ self.modes.reshape(self.n_modes, 3 * self.n_points)
        return self.mean + flat.reshape(self.n_subjects, self.n_points, 3)

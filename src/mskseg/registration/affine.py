"""Multiscale affine registration of two structure images (SimpleITK).

ITK convention throughout: the transform maps a physical point of the *fixed* image to
the corresponding point of the *moving* image, so resampling the moving image through it
onto the fixed grid aligns the two.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class AffineSettings:
    """Pyramid and optimiser of the affine stage.

    ``shrink_factors``/``smoothing_mm`` give the pyramid, coarse to fine, relative to the
    working grid; ``iterations`` is per level. ``sampling`` is the fraction of voxels the
    metric sees (regular sampling with a fixed seed: deterministic).
    """

    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_mm: tuple[float, ...] = (2.0, 1.0, 0.0)
    iterations: int = 100
    learning_rate: float = 1.0
    min_step: float = 1e-4
    sampling: float = 0.25
    seed: int = 1
    transform: str = "affine"  # "affine" or "similarity" (rotation, translation, one scale)

    def __post_init__(self) -> None:
        if len(self.shrink_factors) != len(self.smoothing_mm) or not self.shrink_factors:
            raise ValueError("affine: shrink_factors and smoothing_mm need the same non-zero length")
        if any(int(s) < 1 for s in self.shrink_factors):
            raise ValueError("affine: shrink factors must be >= 1")
        if not 0 < self.sampling <= 1:
            raise ValueError(f"affine: sampling must be in (0, 1], got {self.sampling}")
        if self.iterations < 0:
            raise ValueError("affine: iterations must be >= 0")
        if self.transform not in ("affine", "similarity"):
            raise ValueError(f"affine: transform must be 'affine' or 'similarity', got {self.transform!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> AffineSettings:
        d = dict(d or {})
        for key in ("shrink_factors", "smoothing_mm"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class AffineResult:
    transform: sitk.AffineTransform
    metric: float
    iterations: list[int] = field(default_factory=list)
    stop: str = ""
    seconds: float = 0.0


def centre_of_mass(image: sitk.Image) -> np.ndarray:
    """Physical centre of mass of a non-negative image (mm)."""
    arr = sitk.GetArrayViewFromImage(image)  # (k, j, i)
    total = float(arr.sum())
    if total <= 0:
        raise ValueError("centre of mass of an empty image")
    idx = np.array([(arr.sum(axis=tuple(a for a in range(3) if a != ax)) * np.arange(arr.shape[ax])).sum()
                    for ax in range(3)]) / total  # (k, j, i)
    return np.array(image.TransformContinuousIndexToPhysicalPoint([float(v) for v in idx[::-1]]))


def initial_translation(fixed: sitk.Image, moving: sitk.Image) -> sitk.AffineTransform:
    """Affine that moves the fixed centre of mass onto the moving one, centred at the fixed one."""
    cf = centre_of_mass(fixed)
    cm = centre_of_mass(moving)
    tx = sitk.AffineTransform(3)
    tx.SetCenter([float(v) for v in cf])
    tx.SetTranslation([float(v) for v in cm - cf])
    return tx


def register_affine(fixed: sitk.Image, moving: sitk.Image, settings: AffineSettings,
                    initial: sitk.Transform | None = None) -> AffineResult:
    """Multiscale affine (or similarity) registration, mean squares on inside fractions.

    Starts from the linear transform ``initial`` or from the centres-of-mass translation;
    returns one :class:`sitk.AffineTransform` (fixed points to moving points) and the
    final metric value.
    """
    start = time.perf_counter()
    base = initial_translation(fixed, moving) if initial is None else to_affine(initial)
    if settings.transform == "similarity":
        tx: sitk.Transform = sitk.Similarity3DTransform()
        tx.SetCenter(base.GetCenter())
        tx.SetMatrix(base.GetMatrix())  # raises if the initial transform is not a similarity
        tx.SetTranslation(base.GetTranslation())
    else:
        tx = sitk.AffineTransform(base)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMeanSquares()
    reg.SetMetricSamplingStrategy(reg.REGULAR if settings.sampling < 1 else reg.NONE)
    reg.SetMetricSamplingPercentage(float(settings.sampling), int(settings.seed))
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=float(settings.learning_rate), minStep=float(settings.min_step),
        numberOfIterations=int(settings.iterations), relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([int(s) for s in settings.shrink_factors])
    reg.SetSmoothingSigmasPerLevel([float(s) for s in settings.smoothing_mm])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(tx, inPlace=True)
    iterations: list[int] = []
    reg.AddCommand(sitk.sitkMultiResolutionIterationEvent, lambda: iterations.append(reg.GetOptimizerIteration()))
    stop = "no iterations"
    if settings.iterations > 0:
        reg.Execute(fixed, moving)
        iterations = [*iterations[1:], reg.GetOptimizerIteration()]  # an event fires before each level
        stop = reg.GetOptimizerStopConditionDescription()
    affine = to_affine(tx)
    metric = _mean_squares(fixed, moving, affine)
    return AffineResult(affine, metric, iterations, stop, time.perf_counter() - start)


def _mean_squares(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform) -> float:
    warped = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    diff = sitk.GetArrayViewFromImage(warped) - sitk.GetArrayViewFromImage(fixed)
    return float(np.mean(diff.astype(np.float64) ** 2))


def to_affine(transform: sitk.Transform) -> sitk.AffineTransform:
    """Any linear 3D transform as an :class:`sitk.AffineTransform` (same mapping)."""
    if isinstance(transform, sitk.AffineTransform):
        return sitk.AffineTransform(transform)
    matrix = np.array(transform.GetMatrix()).reshape(3, 3)
    out = sitk.AffineTransform(3)
    out.SetMatrix([float(v) for v in matrix.ravel()])
    out.SetCenter(transform.GetCenter())
    out.SetTranslation(transform.GetTranslation())
    return out


def affine_matrix(transform: sitk.Transform) -> np.ndarray:
    """4 x 4 homogeneous matrix of a linear transform (fixed mm -> moving mm)."""
    m = np.array(transform.GetMatrix(), dtype=float).reshape(3, 3)
    c = np.array(transform.GetCenter(), dtype=float)
    t = np.array(transform.GetTranslation(), dtype=float)
    out = np.eye(4)
    out[:3, :3] = m
    out[:3, 3] = t + c - m @ c
    return out


def from_matrix(matrix: np.ndarray) -> sitk.AffineTransform:
    """An :class:`sitk.AffineTransform` from a 4 x 4 homogeneous matrix."""
    m = np.asarray(matrix, dtype=float)
    out = sitk.AffineTransform(3)
    out.SetMatrix([float(v) for v in m[:3, :3].ravel()])
    out.SetTranslation([float(v) for v in m[:3, 3]])
    return out


def compose_affine(first: sitk.Transform, second: sitk.Transform) -> sitk.AffineTransform:
    """The affine ``x -> first(second(x))``."""
    return from_matrix(affine_matrix(first) @ affine_matrix(second))


def transform_points(transform: sitk.Transform, points: Sequence[Sequence[float]]) -> np.ndarray:
    """Apply a SimpleITK transform to world points ``(N, 3)``."""
    return np.array([transform.TransformPoint([float(v) for v in p]) for p in np.asarray(points, dtype=float)])

"""Multiscale diffeomorphic demons (Vercauteren et al. 2009) on structure images, SimpleITK.

The demons run on the fixed image and the moving image already resampled through the
affine onto the fixed grid; the result is a displacement field ``u`` on the fixed grid
(physical mm) such that ``x + u(x)`` is the corresponding point of that affinely aligned
moving image. The whole mapping is therefore ``T(x) = A(x + u(x))``
(:func:`mskseg.registration.fields.full_transform`).

Each pyramid level shrinks both images, continues from the previous level's field
(resampled linearly onto the finer grid) and runs a fixed number of iterations with the
diffeomorphic (exponential) update, symmetric gradients and Gaussian smoothing of the
field (``field_sigma_mm``) and of the update (``update_sigma_mm``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import SimpleITK as sitk


@dataclass(frozen=True)
class DemonsSettings:
    """Pyramid (coarse to fine, relative to the working grid) and demons parameters."""

    shrink_factors: tuple[int, ...] = (4, 2, 1)
    iterations: tuple[int, ...] = (60, 40, 15)
    field_sigma_mm: float = 2.0
    update_sigma_mm: float = 0.0
    max_step_voxels: float = 2.0
    intensity_threshold: float = 1e-3

    def __post_init__(self) -> None:
        if len(self.shrink_factors) != len(self.iterations) or not self.shrink_factors:
            raise ValueError("demons: shrink_factors and iterations need the same non-zero length")
        if any(int(s) < 1 for s in self.shrink_factors) or any(int(i) < 0 for i in self.iterations):
            raise ValueError("demons: shrink factors must be >= 1 and iterations >= 0")
        if self.field_sigma_mm < 0 or self.update_sigma_mm < 0 or self.max_step_voxels < 0:
            raise ValueError("demons: sigmas and the step length must be >= 0")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> DemonsSettings:
        d = dict(d or {})
        for key in ("shrink_factors", "iterations"):
            if key in d:
                d[key] = tuple(int(v) for v in d[key])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class DemonsResult:
    field: sitk.Image  # sitkVectorFloat64 on the fixed grid, mm
    metric: float  # the filter's final mean squared difference at the finest level
    iterations: list[int] = field(default_factory=list)
    seconds: float = 0.0


def _shrink(image: sitk.Image, factor: int) -> sitk.Image:
    if factor == 1:
        return image
    sigma = 0.5 * factor * image.GetSpacing()[0]
    smoothed = sitk.SmoothingRecursiveGaussian(image, sigma)
    return sitk.Shrink(smoothed, [factor] * image.GetDimension())


def zero_field(grid: sitk.Image) -> sitk.Image:
    """A zero displacement field (sitkVectorFloat64) on ``grid``."""
    f = sitk.Image(grid.GetSize(), sitk.sitkVectorFloat64, 3)
    f.CopyInformation(grid)
    return f


def resample_field(field_image: sitk.Image, grid: sitk.Image) -> sitk.Image:
    """A displacement field resampled linearly onto another grid (values stay in mm).

    Points of ``grid`` beyond the field's extent take the nearest field value.
    """
    f = sitk.ResampleImageFilter()
    f.SetReferenceImage(grid)
    f.SetInterpolator(sitk.sitkLinear)
    f.SetOutputPixelType(sitk.sitkVectorFloat64)
    f.SetUseNearestNeighborExtrapolator(True)
    return f.Execute(field_image)


def register_demons(fixed: sitk.Image, moving: sitk.Image, settings: DemonsSettings,
                    initial_field: sitk.Image | None = None) -> DemonsResult:
    """Diffeomorphic demons of ``moving`` (already on the fixed grid) to ``fixed``."""
    start = time.perf_counter()
    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    current = initial_field
    metric = float("nan")
    done: list[int] = []
    for factor, n_iter in zip(settings.shrink_factors, settings.iterations, strict=True):
        f_level = _shrink(fixed, int(factor))
        m_level = _shrink(moving, int(factor))
        start_field = zero_field(f_level) if current is None else resample_field(current, f_level)
        if n_iter == 0:
            current = start_field
            done.append(0)
            continue
        demons = sitk.DiffeomorphicDemonsRegistrationFilter()
        demons.SetNumberOfIterations(int(n_iter))
        demons.SetUseGradientType(demons.Symmetric)
        demons.SetSmoothDisplacementField(settings.field_sigma_mm > 0)
        spacing = f_level.GetSpacing()[0]
        demons.SetStandardDeviations(max(settings.field_sigma_mm / spacing, 1e-3))
        demons.SetSmoothUpdateField(settings.update_sigma_mm > 0)
        if settings.update_sigma_mm > 0:
            demons.SetUpdateFieldStandardDeviations(settings.update_sigma_mm / spacing)
        demons.SetMaximumUpdateStepLength(float(settings.max_step_voxels))
        demons.SetIntensityDifferenceThreshold(float(settings.intensity_threshold))
        current = demons.Execute(f_level, m_level, start_field)
        metric = float(demons.GetMetric())
        done.append(int(demons.GetElapsedIterations()))
    assert current is not None
    out = resample_field(current, fixed) if current.GetSize() != fixed.GetSize() else current
    out = sitk.Cast(out, sitk.sitkVectorFloat64)
    return DemonsResult(out, metric, done, time.perf_counter() - start)

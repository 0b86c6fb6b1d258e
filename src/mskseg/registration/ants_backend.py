"""Deformable registration of masks with ANTs (antspyx), returned as an affine and a field.

The result follows the convention of :mod:`mskseg.registration`: ``T(x) = A(x + u(x))``
maps a physical point ``x`` (mm, LPS) of the fixed image to the corresponding point of
the moving image (ITK convention), ``u`` being a displacement field on the fixed grid in mm.

Verified with antspyx 0.6.1 (and asserted by ``tests/registration/test_ants_backend.py``):
``antsRegistration -z 1`` writes ``<prefix>0GenericAffine.mat`` (the initial moving
transform and all linear stages collapsed into one affine ``A``) and ``<prefix>1Warp.nii.gz``
(the SyN field ``u`` on the fixed grid, shrunk by the last level's shrink factor). ANTs'
``fwdtransforms`` list is ``[warp, affine]``; ``ants.apply_transforms`` and
``ants.apply_transforms_to_points`` with it compute ``A(x + u(x))`` for a fixed point ``x``:
the *last* listed transform acts first on points. In SimpleITK that is::

    sitk.CompositeTransform([affine, sitk.DisplacementFieldTransform(field)])

(a ``CompositeTransform`` applies the last added transform first).

ANTs is driven with ``antsRegistration`` arguments (the list form of :func:`ants.registration`)
rather than its ``type_of_transform`` presets, which hard-code the affine stage
(2100x1200x1200x0 iterations, all voxels) that would dominate the run time on masks.
"""

from __future__ import annotations

import glob
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

if TYPE_CHECKING:  # antspyx is optional: imported when a registration runs
    import ants

#: transform name -> (linear ANTs stages, deformable ANTs stage or None)
TRANSFORMS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "SyN": (("Affine",), "SyN"),
    "SyNRA": (("Rigid", "Affine"), "SyN"),
    "SyNOnly": ((), "SyN"),
    "Elastic": (("Affine",), "GaussianDisplacementField"),
    "Affine": (("Affine",), None),
    "Similarity": (("Similarity",), None),
    "Rigid": (("Rigid",), None),
    "Translation": (("Translation",), None),
}
_THREADS_ENV = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"
#: the 4th metric parameter of antsRegistration (CC: radius in voxels; else histogram bins)
_METRIC_PARAM = {"cc": 4}
_GEOMETRY_TOL_MM = 1e-3
#: ITK threads of ANTs in this process: ITK reads the environment variable once
#: the thread count ANTs' first call in this process fixed (ITK reads the variable once): {"threads": n}
_PROCESS: dict[str, int | None] = {"threads": None}


@dataclass(frozen=True)
class AntsSettings:
    """Settings of :func:`register_ants`; the defaults are tuned for speed on mask images.

    ``transform``: a key of :data:`TRANSFORMS` (ANTs ``type_of_transform`` names: ``"SyN"`` =
    affine + SyN, ``"SyNOnly"`` = SyN only, e.g. after our own affine given as ``initial``).
    ``iterations``: deformable iterations per level, coarse to fine. Per level the image is
    shrunk by ``shrink_factors`` (integers) and smoothed by ``smoothing_sigmas`` (voxels of
    the fixed image); by default the shrink factors make the level spacings about
    ``level_spacing_mm`` (mm; if fewer or more levels than ``iterations``, halving per level
    down to its last value; ``None``: ``2**(n-1-l)`` as in ``ants.registration``) and the
    sigmas are half the shrink factor (0 at shrink 1).
    ``aff_iterations``, ``aff_shrink_factors``, ``aff_smoothing_sigmas`` (voxels): the same for
    the linear stage(s); ``aff_step`` is their gradient step and ``aff_sampling`` the fraction
    of voxels (regular grid) their metric samples (1 = all).
    ``grad_step``, ``flow_sigma`` and ``total_sigma`` (voxels) form ANTs'
    ``SyN[grad_step,flow_sigma,total_sigma]`` (update- and total-field smoothing); ANTs'
    usual 0.2 step makes the mean-squares metric of masks oscillate and stop early.
    ``metric``: ANTs metric of all stages (``"meansquares"``, ``"mattes"``, ``"cc"``, ...).
    ``seed``: ANTs random seed. ``threads``: ITK threads, through
    ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, which ANTs' ITK reads once per process: it
    takes effect at the first ANTs call of the process only (``info['threads']`` says which).
    """

    transform: str = "SyN"
    iterations: tuple[int, ...] = (40, 20, 0)
    shrink_factors: tuple[int, ...] | None = None
    smoothing_sigmas: tuple[float, ...] | None = None
    level_spacing_mm: tuple[float, ...] | None = (8.0, 4.0, 2.0)
    aff_iterations: tuple[int, ...] = (100, 50, 0)
    aff_shrink_factors: tuple[int, ...] = (4, 2, 1)
    aff_smoothing_sigmas: tuple[float, ...] = (2.0, 1.0, 0.0)
    aff_step: float = 0.25
    aff_sampling: float = 0.25
    grad_step: float = 0.1
    flow_sigma: float = 3.0
    total_sigma: float = 0.0
    metric: str = "meansquares"
    seed: int = 1
    threads: int = 1

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ValueError(f"unsupported ANTs transform {self.transform!r}; use one of {sorted(TRANSFORMS)}")
        n = len(self.iterations)
        for name in ("shrink_factors", "smoothing_sigmas"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} levels, iterations has {n}")
        if not len(self.aff_iterations) == len(self.aff_shrink_factors) == len(self.aff_smoothing_sigmas):
            raise ValueError("aff_iterations, aff_shrink_factors and aff_smoothing_sigmas need the same length")
        if not 0.0 < self.aff_sampling <= 1.0:
            raise ValueError(f"aff_sampling must be in (0, 1], got {self.aff_sampling}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    def levels(self, fixed: sitk.Image) -> tuple[list[int], list[float]]:
        """Deformable shrink factors and smoothing sigmas (voxels) used for ``fixed``."""
        n = len(self.iterations)
        if self.shrink_factors is not None:
            shrink = [int(s) for s in self.shrink_factors]
        elif self.level_spacing_mm is None:
            shrink = [2 ** (n - 1 - lv) for lv in range(n)]
        else:
            cap = max(1, min(fixed.GetSize()) // 8)  # keep >= 8 voxels per axis
            step, mm = min(fixed.GetSpacing()), list(self.level_spacing_mm)
            if len(mm) != n:  # halve per level down to the finest spacing given
                mm = [mm[-1] * 2 ** (n - 1 - lv) for lv in range(n)]
            shrink = [min(cap, max(1, round(level / step))) for level in mm]
        sigmas = (list(self.smoothing_sigmas) if self.smoothing_sigmas is not None
                  else [s / 2.0 if s > 1 else 0.0 for s in shrink])
        return shrink, sigmas


def _ants() -> ModuleType:
    """The antspyx module, imported on first use."""
    import ants

    return ants


def _pointer(image: ants.ANTsImage) -> str:
    """The in-memory reference to ``image`` that antsRegistration arguments accept."""
    from ants.internal import get_pointer_string

    return get_pointer_string(image)


def sitk_to_ants(image: sitk.Image) -> ants.ANTsImage:
    """A scalar 3D SimpleITK image as a float32 ANTs image with the same geometry (mm, LPS)."""
    ants = _ants()
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError("expected a scalar 3D image")
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (k, j, i) -> ANTs' (i, j, k)
    return ants.from_numpy(np.ascontiguousarray(array, dtype=np.float32), origin=tuple(image.GetOrigin()),
                           spacing=tuple(image.GetSpacing()),
                           direction=np.asarray(image.GetDirection(), dtype=float).reshape(3, 3))


def ants_to_sitk(image: ants.ANTsImage) -> sitk.Image:
    """A scalar 3D ANTs image as a SimpleITK image with the same geometry (inverse of :func:`sitk_to_ants`)."""
    out = sitk.GetImageFromArray(np.ascontiguousarray(image.numpy().transpose(2, 1, 0)))
    out.SetOrigin(tuple(float(v) for v in image.origin))
    out.SetSpacing(tuple(float(v) for v in image.spacing))
    out.SetDirection(tuple(float(v) for v in np.asarray(image.direction).ravel()))
    return out


def linear_to_affine(transform: sitk.Transform) -> sitk.AffineTransform:
    """Any linear SimpleITK transform (also a composite of linear ones) as an AffineTransform.

    Matrix and translation (mm) are read off the images of the origin and the unit vectors.
    """
    if not transform.IsLinear():
        raise ValueError(f"the initial transform must be linear, got {transform.GetName()}")
    base = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    matrix = np.column_stack([np.asarray(transform.TransformPoint(tuple(e))) - base for e in np.eye(3)])
    return sitk.AffineTransform(tuple(matrix.ravel()), tuple(base), (0.0, 0.0, 0.0))


def _stage(kind: str, params: str, metric: str, iterations: tuple[int, ...], shrink: list[int],
           sigmas: list[float], convergence: str) -> list[str]:
    return ["--metric", metric, "--transform", f"{kind}[{params}]",
            "--convergence", f"[{'x'.join(str(int(i)) for i in iterations)},{convergence}]",
            "--shrink-factors", "x".join(str(int(s)) for s in shrink),
            "--smoothing-sigmas", "x".join(f"{s:g}" for s in sigmas) + "vox"]


def _build_args(fixed: ants.ANTsImage, moving: ants.ANTsImage, settings: AntsSettings, initial: str,
                prefix: str, levels: tuple[list[int], list[float]]) -> list[str]:
    """The antsRegistration command line (images passed in memory as pointer strings)."""
    linear, deformable = TRANSFORMS[settings.transform]
    param = _METRIC_PARAM.get(settings.metric.lower(), 32)
    metric = f"{settings.metric}[{_pointer(fixed)},{_pointer(moving)},1,{param}"
    aff_metric = metric + ("]" if settings.aff_sampling >= 1.0 else f",Regular,{settings.aff_sampling:g}]")
    args = ["--dimensionality", "3", "--initial-moving-transform", initial]
    for kind in linear:
        args += _stage(kind, f"{settings.aff_step:g}", aff_metric, settings.aff_iterations,
                       list(settings.aff_shrink_factors), list(settings.aff_smoothing_sigmas), "1e-6,10")
    if deformable is not None:
        args += _stage(deformable, f"{settings.grad_step:g},{settings.flow_sigma:g},{settings.total_sigma:g}",
                       metric + "]", settings.iterations, *levels, "1e-7,8")
    return [*args, "--use-histogram-matching", "0", "--collapse-output-transforms", "1", "--output", prefix,
            "--random-seed", str(int(settings.seed)), "--float", "1", "--write-composite-transform", "0"]


def _read_field(path: str | None, fixed: sitk.Image) -> tuple[sitk.Image, bool]:
    """The ANTs warp as sitkVectorFloat64 with the fixed image's exact geometry, and whether it was resampled.

    ANTs writes the field on the fixed grid shrunk by the last level's shrink factor; when that
    is not 1 the field is resampled linearly onto the fixed grid, which is how ITK evaluates a
    displacement field between its voxels (``T`` is unchanged at the fixed voxels).
    ``path`` None gives a zero field.
    """
    if path is None:
        field = sitk.Image(fixed.GetSize(), sitk.sitkVectorFloat64, 3)
        field.CopyInformation(fixed)
        return field, False
    field = sitk.Cast(sitk.ReadImage(path), sitk.sitkVectorFloat64)
    if np.max(np.abs(np.subtract(field.GetDirection(), fixed.GetDirection()))) > 1e-5:
        raise RuntimeError(f"ANTs warp {path} has direction {field.GetDirection()}, not the fixed image's")
    off = max(np.max(np.abs(np.subtract(field.GetOrigin(), fixed.GetOrigin()))),
              np.max(np.abs(np.subtract(field.GetSpacing(), fixed.GetSpacing()))))
    if field.GetSize() == fixed.GetSize() and off <= _GEOMETRY_TOL_MM:
        field.CopyInformation(fixed)  # NIfTI stores the geometry in float32: restore it exactly
        return field, False
    return sitk.Resample(field, fixed, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64), True


def register_ants(fixed: sitk.Image, moving: sitk.Image, settings: AntsSettings,
                  initial: sitk.Transform | None = None) -> tuple[sitk.AffineTransform, sitk.Image, dict]:
    """Register ``moving`` to ``fixed`` (3D scalar images, e.g. float32 masks) with ANTs.

    Returns ``(affine, field, info)``: ``affine`` a 3D :class:`sitk.AffineTransform` (identity
    when the transform type has no linear stage and ``initial`` is None); ``field`` a
    sitkVectorFloat64 displacement field in mm on the fixed grid (same size, spacing, origin,
    direction), such that ``T(x) = affine.TransformPoint(x + field(x))`` maps a physical point
    ``x`` (mm) of the fixed image to the corresponding point of the moving image; ``info`` a
    dict (``backend``, ``antspyx_version``, ``transform``, ``iterations``, ``seconds``,
    ``settings``, ``shrink_factors``, ``smoothing_sigmas``, ``threads``, ``initial``,
    ``ants_stages``, ``field_resampled``, ``max_displacement_mm``).

    ``initial`` (linear, fixed -> moving points) is ANTs' initial moving transform and is
    included in the returned ``affine``. Without it, types with a linear stage start from
    ANTs' centre-of-mass alignment, deformable-only types from the identity.
    """
    for name, image in (("fixed", fixed), ("moving", moving)):
        if image.GetDimension() != 3:
            raise ValueError(f"{name} image must be 3D")
    linear, deformable = TRANSFORMS[settings.transform]
    levels = settings.levels(fixed)
    start = time.perf_counter()
    old_threads = os.environ.get(_THREADS_ENV)
    if _PROCESS["threads"] is None:
        os.environ[_THREADS_ENV] = str(settings.threads)
    try:
        fixed_ants, moving_ants = sitk_to_ants(fixed), sitk_to_ants(moving)
        _PROCESS["threads"] = _PROCESS["threads"] or int(os.environ[_THREADS_ENV])
        with tempfile.TemporaryDirectory(prefix="mskseg_ants_") as tmp:
            prefix = os.path.join(tmp, "reg_")
            if initial is not None:
                init_arg = os.path.join(tmp, "initial.mat")
                sitk.WriteTransform(linear_to_affine(initial), init_arg)
            elif linear:
                init_arg = f"[{_pointer(fixed_ants)},{_pointer(moving_ants)},1]"
            else:
                init_arg = "Identity"
            _ants().registration(_build_args(fixed_ants, moving_ants, settings, init_arg, prefix, levels), None)
            affine_path = prefix + "0GenericAffine.mat"
            warps = sorted(glob.glob(prefix + "*[0-9]Warp.nii.gz"))  # not *InverseWarp
            if (deformable is not None and len(warps) != 1) or (linear and not os.path.exists(affine_path)):
                raise RuntimeError(f"ANTs did not write the expected transforms: {sorted(os.listdir(tmp))}")
            affine = (linear_to_affine(sitk.ReadTransform(affine_path)) if os.path.exists(affine_path)
                      else sitk.AffineTransform(3))
            field, resampled = _read_field(warps[0] if warps else None, fixed)
    finally:
        if old_threads is None:
            os.environ.pop(_THREADS_ENV, None)
        else:
            os.environ[_THREADS_ENV] = old_threads
    magnitude = np.linalg.norm(sitk.GetArrayViewFromImage(field), axis=-1)
    info = {
        "backend": "ants",
        "antspyx_version": _ants().__version__,
        "transform": settings.transform,
        "iterations": list(settings.iterations),
        "seconds": round(time.perf_counter() - start, 3),
        "settings": asdict(settings),
        "shrink_factors": levels[0] if deformable else [],
        "smoothing_sigmas": levels[1] if deformable else [],
        "threads": _PROCESS["threads"],
        "initial": initial is not None,
        "ants_stages": list(linear) + ([deformable] if deformable else []),
        "field_resampled": resampled,
        "max_displacement_mm": float(magnitude.max()),
    }
    return affine, field, info

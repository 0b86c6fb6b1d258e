"""Register one structure of one subject to the reference: affine, then demons or ANTs SyN.

The result maps reference points to subject points, ``T(x) = A(x + u(x))``
(:mod:`mskseg.registration.fields`). A registration *converges* when the subject's mask
warped through ``T`` overlaps the reference with Dice >= ``min_dice`` (on the working grid),
the field is finite and it folds on at most ``max_folding`` of the voxels. A registration
that does not converge is recorded, not raised: the shape model leaves the subject out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from mskseg.registration.affine import AffineSettings, affine_matrix, initial_translation, register_affine
from mskseg.registration.demons import DemonsSettings, register_demons
from mskseg.registration.fields import jacobian_stats, warp_image
from mskseg.registration.masks import dice, to_binary, working_image
from mskseg.volume import Volume

BACKENDS = ("simpleitk", "ants")


@dataclass(frozen=True)
class RegistrationSettings:
    """Everything that decides one registration (``shape`` block of a dataset's config)."""

    backend: str = "simpleitk"
    working_spacing_mm: float = 1.0
    margin_mm: float = 5.0
    min_dice: float = 0.85
    max_folding: float = 0.001
    affine: AffineSettings = field(default_factory=AffineSettings)
    demons: DemonsSettings = field(default_factory=DemonsSettings)
    ants: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"registration backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.working_spacing_mm <= 0 or self.margin_mm < 0:
            raise ValueError("working_spacing_mm must be > 0 and margin_mm >= 0")
        if not 0 <= self.min_dice <= 1 or not 0 <= self.max_folding <= 1:
            raise ValueError("min_dice and max_folding must lie in [0, 1]")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RegistrationSettings:
        return cls(backend=str(d.get("backend", "simpleitk")),
                   working_spacing_mm=float(d.get("working_spacing_mm", 1.0)),
                   margin_mm=float(d.get("margin_mm", 5.0)),
                   min_dice=float(d.get("min_dice", 0.85)),
                   max_folding=float(d.get("max_folding", 0.001)),
                   affine=AffineSettings.from_dict(d.get("affine")),
                   demons=DemonsSettings.from_dict(d.get("demons")),
                   ants=dict(d.get("ants") or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "working_spacing_mm": self.working_spacing_mm,
                "margin_mm": self.margin_mm, "min_dice": self.min_dice, "max_folding": self.max_folding,
                "affine": self.affine.to_dict(), "demons": self.demons.to_dict(), "ants": dict(self.ants)}


@dataclass
class RegistrationResult:
    affine: sitk.AffineTransform
    field: sitk.Image
    record: dict[str, Any]

    @property
    def converged(self) -> bool:
        return bool(self.record["converged"])


def _ants(fixed: sitk.Image, moving: sitk.Image, settings: RegistrationSettings,
          initial: sitk.Transform) -> tuple[sitk.AffineTransform, sitk.Image, dict[str, Any]]:
    from mskseg.registration.ants_backend import AntsSettings, register_ants  # antspyx only when chosen

    known = AntsSettings.__dataclass_fields__
    unknown = sorted(set(settings.ants) - set(known))
    if unknown:
        raise ValueError(f"unknown ants setting(s): {', '.join(unknown)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.ants.items()}
    return register_ants(fixed, moving, AntsSettings(**values), initial=initial)


def register_to_reference(fixed: sitk.Image, moving_mask: Volume, settings: RegistrationSettings) -> RegistrationResult:
    """Register a subject's binary structure mask to the reference working image.

    ``fixed`` is the reference's inside fraction on its working grid
    (:func:`mskseg.registration.masks.working_image`); ``moving_mask`` is the subject's
    binary structure (already mirrored where the model asks for it).
    """
    start = time.perf_counter()
    moving = working_image(moving_mask, settings.working_spacing_mm, settings.margin_mm)
    fixed_binary = to_binary(fixed)
    record: dict[str, Any] = {"backend": settings.backend}
    init = initial_translation(fixed, moving)
    if settings.backend == "simpleitk":
        aff = register_affine(fixed, moving, settings.affine, initial=init)
        aligned = warp_image(moving, fixed, aff.transform, None)
        record["dice_affine"] = dice(fixed_binary, to_binary(aligned))
        dem = register_demons(fixed, aligned, settings.demons)
        affine, field_image = aff.transform, dem.field
        record.update({"affine_metric": aff.metric, "affine_iterations": aff.iterations,
                       "affine_stop": aff.stop, "affine_seconds": aff.seconds,
                       "demons_metric": dem.metric, "demons_iterations": dem.iterations,
                       "demons_seconds": dem.seconds})
    else:
        affine, field_image, info = _ants(fixed, moving, settings, init)
        aligned = warp_image(moving, fixed, affine, None)
        record["dice_affine"] = dice(fixed_binary, to_binary(aligned))
        record.update({f"ants_{k}": v for k, v in info.items() if k != "backend"})
    warped = warp_image(moving, fixed, affine, field_image)
    record["dice"] = dice(fixed_binary, to_binary(warped))
    record["metric"] = float(np.mean((sitk.GetArrayViewFromImage(warped).astype(np.float64)
                                      - sitk.GetArrayViewFromImage(fixed)) ** 2))
    field_array = sitk.GetArrayViewFromImage(field_image)
    finite = bool(np.isfinite(field_array).all())
    record.update(jacobian_stats(field_image) if finite else
                  {"jacobian_min": float("nan"), "jacobian_max": float("nan"), "folding_fraction": float("nan")})
    record["max_displacement_mm"] = float(np.linalg.norm(field_array, axis=-1).max()) if finite else float("nan")
    reasons = []
    if not finite:
        reasons.append("displacement field is not finite")
    if not record["dice"] >= settings.min_dice:
        reasons.append(f"Dice after warping {record['dice']:.3f} < min_dice {settings.min_dice}")
    if finite and record["folding_fraction"] > settings.max_folding:
        reasons.append(f"field folds on {record['folding_fraction']:.2%} of voxels "
                       f"> max_folding {settings.max_folding}")
    record["converged"] = not reasons
    record["reason"] = "; ".join(reasons)
    record["affine_matrix"] = affine_matrix(affine).tolist()
    record["seconds"] = time.perf_counter() - start
    return RegistrationResult(affine, field_image, record)

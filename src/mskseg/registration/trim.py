"""Trim a bone to a common anatomical extent: a fixed length from its joint end along a world axis.

A scan's field of view cuts a long bone (the femur's or the tibia's shaft) at a height that varies
from subject to subject. Registered and modelled as they are, the shafts' different lengths become
the shape model's first mode: the scanner's, not the anatomy's. Trimming keeps, in every subject
(the reference included), only the part of the bone within ``length_mm`` of its **joint end**, so
every shape shows the same anatomy.

The joint end and the axis are named by one world direction, ``from`` (ITK/LPS world: +x left,
+y posterior, +z superior): ``from: inferior`` (a knee's femur) measures from the bone's most
inferior voxel upwards, ``from: superior`` (a knee's tibia, a hip's femur) from its most superior
voxel downwards. A world axis rather than one found from the bone: a bone axis estimated from the
voxels (their principal axis) depends on how much of the shaft the field of view kept, the very
thing that varies, and turns across the condyles when little shaft is left; a knee or hip scan
holds the limb along the scanner's axis to within a few degrees (a 10 degree tilt changes a 60 mm
length by under 1 mm). The trim is applied in the shape model's frame (after a left member is
mirrored); mirroring only reflects ``x``, so ``from: left``/``right`` name the model's side.

Definitions (exact, tested against a voxel-by-voxel computation): the *depth* of a voxel is the
distance (mm) of its centre from the joint end's voxel centre along the axis ``u`` (pointing from
the joint end into the bone); a voxel is kept when its depth is below ``length_mm`` (less
:data:`EPS_MM`). The bone's *extent* is its depth range with each voxel counted as a box (the
deepest centre's depth plus the voxel's thickness along ``u``). A bone whose extent is below
``length_mm`` is **short**: the field of view cut it before the trim would, so it lacks anatomy the
others have.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mskseg.registration.masks import structure_mask
from mskseg.volume import Volume

#: the unit world vector (LPS) from the named end into the bone
ENDS: dict[str, tuple[float, float, float]] = {
    "inferior": (0.0, 0.0, 1.0), "superior": (0.0, 0.0, -1.0),
    "anterior": (0.0, 1.0, 0.0), "posterior": (0.0, -1.0, 0.0),
    "right": (1.0, 0.0, 0.0), "left": (-1.0, 0.0, 0.0),
}
#: a voxel at depth ``length_mm - EPS_MM`` or more is trimmed (rounding of voxels exactly at the length)
EPS_MM = 1e-6


@dataclass(frozen=True)
class TrimSpec:
    """Keep ``length_mm`` of a bone from its ``end`` (config: ``{length_mm: 60, from: inferior}``)."""

    length_mm: float
    end: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.length_mm) and self.length_mm > 0):
            raise ValueError(f"trim length_mm must be a finite value > 0, got {self.length_mm!r}")
        if self.end not in ENDS:
            raise ValueError(f"trim 'from' must be one of {', '.join(ENDS)}, got {self.end!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> TrimSpec | None:
        """The spec of a ``trim`` entry; None (trimming off) for None or an empty mapping."""
        if not d:
            return None
        unknown = sorted(set(d) - {"length_mm", "from"})
        if unknown:
            raise ValueError(f"unknown trim setting(s): {', '.join(unknown)}")
        return cls(length_mm=float(d["length_mm"]), end=str(d["from"]))

    def to_dict(self) -> dict[str, Any]:
        return {"length_mm": self.length_mm, "from": self.end}

    @property
    def axis(self) -> np.ndarray:
        """Unit world vector from the joint end into the bone."""
        return np.asarray(ENDS[self.end], dtype=float)


def index_steps_mm(volume: Volume, spec: TrimSpec) -> np.ndarray:
    """Depth change (mm) per index step along each array axis, ``(3,)``."""
    return (np.asarray(volume.direction, dtype=float).T @ spec.axis) * np.asarray(volume.spacing, dtype=float)


def cut_margin_mm(volume: Volume, spec: TrimSpec) -> float:
    """How far (mm) short of ``length_mm`` the surface of a trimmed mask's cut may reach: its cut faces
    lie deeper than ``length_mm - cut_margin_mm`` (three quarters of the largest voxel step along the axis;
    the cut surface lies at least half a step short of the length)."""
    return 0.75 * float(np.abs(index_steps_mm(volume, spec)).max())


def _depths(volume: Volume, spec: TrimSpec) -> tuple[tuple[np.ndarray, ...], np.ndarray, float]:
    """(nonzero indices, their depths from the joint end, the joint end's axis coordinate) in mm."""
    nz = np.nonzero(np.asarray(volume.array))
    if not nz[0].size:
        raise ValueError("cannot trim an empty structure")
    steps = index_steps_mm(volume, spec)
    coord = float(np.asarray(volume.origin, dtype=float) @ spec.axis)
    along = coord + sum(steps[k] * nz[k] for k in range(3))
    start = float(along.min())
    return nz, along - start, start


def joint_end_mm(volume: Volume, spec: TrimSpec) -> float:
    """The joint end's coordinate (mm) along the axis: that of the bone's extreme voxel centre."""
    return _depths(volume, spec)[2]


def point_depths(points: np.ndarray, volume: Volume, spec: TrimSpec) -> np.ndarray:
    """Depth (mm) of world points ``(N, 3)`` below the joint end of the bone in ``volume``."""
    return np.asarray(points, dtype=float) @ spec.axis - joint_end_mm(volume, spec)


@dataclass(frozen=True)
class Trimmed:
    """A structure mask ready for registration, and what trimming did to it (empty when off)."""

    mask: Volume
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def short(self) -> bool:
        return bool(self.record.get("trim_short", False))


def trim_structure(binary: Volume, spec: TrimSpec) -> Trimmed:
    """Keep the voxels of a binary structure whose depth below its joint end is under ``spec.length_mm``.

    Same grid and world; ``uint8``. The record: ``trim_length_mm``, ``trim_from``, ``trim_extent_mm`` (the
    bone's extent along the axis before trimming), ``trim_short`` (extent < length) and ``trim_kept`` (the
    share of the structure's voxels kept).
    """
    nz, depth, _ = _depths(binary, spec)
    keep = depth < spec.length_mm - EPS_MM
    out = np.zeros(binary.shape, dtype=np.uint8)
    out[tuple(n[keep] for n in nz)] = 1
    extent = float(depth.max() + np.abs(index_steps_mm(binary, spec)).sum())
    record = {"trim_length_mm": spec.length_mm, "trim_from": spec.end, "trim_extent_mm": extent,
              "trim_short": bool(extent < spec.length_mm), "trim_kept": float(keep.mean())}
    return Trimmed(binary.with_array(out), record)


def trimmed_structure(mask: Volume, label: int, *, mirror: bool = False, trim: TrimSpec | None = None,
                      name: str | None = None) -> Trimmed:
    """One structure of a label mask as registration sees it: binary, mirrored if asked, then trimmed if
    ``trim`` is given (without, exactly :func:`~mskseg.registration.masks.structure_mask` and no record)."""
    binary = structure_mask(mask, label, mirror=mirror, name=name)
    return Trimmed(binary) if trim is None else trim_structure(binary, trim)


def short_message(record: Mapping[str, Any]) -> str:
    """Why a short structure is left out of the model, in words."""
    return (f"shorter than the trim: {float(record['trim_extent_mm']):.1f} mm from its {record['trim_from']} end "
            f"< {float(record['trim_length_mm']):g} mm (the field of view cuts it)")


__all__ = ["ENDS", "EPS_MM", "TrimSpec", "Trimmed", "cut_margin_mm", "index_steps_mm", "joint_end_mm",
           "point_depths", "short_message", "trim_structure", "trimmed_structure"]

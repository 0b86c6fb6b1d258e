"""A 3D volume with its physical geometry.

Conventions (used everywhere in :mod:`mskseg`):

* ``array`` axes follow the ITK index order ``(i, j, k)``, so ``spacing[a]`` is the
  spacing of ``array`` axis ``a``. (SimpleITK's ``GetArrayFromImage`` gives ``(k, j, i)``;
  :mod:`mskseg.io` transposes.)
* ``spacing`` in millimetres, ``origin`` the world position (mm, ITK/LPS frame) of voxel
  ``(0, 0, 0)``'s centre, ``direction`` a 3x3 matrix whose column ``a`` is the world
  direction of index axis ``a``.
* world = origin + direction @ (index * spacing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: default tolerances of :meth:`Volume.geometry_mismatches`
SPACING_TOL_MM = 1e-3
ORIGIN_TOL_MM = 1e-2
DIRECTION_TOL = 1e-3


@dataclass(frozen=True)
class Volume:
    """A 3D array with spacing, origin and direction (see module docstring)."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a Volume is 3D, got an array of shape {self.array.shape}")
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        object.__setattr__(self, "direction", d)
        if len(self.spacing) != 3 or len(self.origin) != 3:
            raise ValueError("spacing and origin need three values each")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    def with_array(self, array: np.ndarray) -> Volume:
        """The same geometry around another array of the same shape."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} differs from {self.array.shape}")
        return Volume(array, self.spacing, self.origin, self.direction)

    def with_geometry_of(self, other: Volume) -> Volume:
        """This array with ``other``'s spacing, origin and direction (re-headering)."""
        if other.shape != self.shape:
            raise ValueError(f"cannot re-header: shape {self.shape} differs from {other.shape}")
        return Volume(self.array, other.spacing, other.origin, other.direction)

    def index_to_world(self, index: np.ndarray) -> np.ndarray:
        """World coordinates (mm) of continuous indices, shape ``(N, 3)`` -> ``(N, 3)``."""
        idx = np.asarray(index, dtype=float).reshape(-1, 3)
        return np.asarray(self.origin) + (idx * np.asarray(self.spacing)) @ self.direction.T

    def world_to_index(self, points: np.ndarray) -> np.ndarray:
        """Continuous indices of world points (mm), shape ``(N, 3)`` -> ``(N, 3)``."""
        p = np.asarray(points, dtype=float).reshape(-1, 3) - np.asarray(self.origin)
        return (p @ np.linalg.inv(self.direction).T) / np.asarray(self.spacing)

    def geometry_mismatches(
        self,
        other: Volume,
        spacing_tol: float = SPACING_TOL_MM,
        origin_tol: float = ORIGIN_TOL_MM,
        direction_tol: float = DIRECTION_TOL,
    ) -> list[str]:
        """Human-readable differences in size, spacing, origin and direction; empty if none."""
        out: list[str] = []
        if self.shape != other.shape:
            out.append(f"size {self.shape} != {other.shape}")
        ds = np.max(np.abs(np.subtract(self.spacing, other.spacing)))
        if ds > spacing_tol:
            out.append(f"spacing {_fmt(self.spacing)} != {_fmt(other.spacing)} mm")
        do = np.max(np.abs(np.subtract(self.origin, other.origin)))
        if do > origin_tol:
            out.append(f"origin {_fmt(self.origin)} != {_fmt(other.origin)} mm (off by {do:.3g} mm)")
        dd = np.max(np.abs(self.direction - other.direction))
        if dd > direction_tol:
            out.append(f"direction differs by up to {dd:.3g}")
        return out


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"

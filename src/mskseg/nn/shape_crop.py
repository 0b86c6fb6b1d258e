"""Crops around a bone resampled to a cube, with the exact maps between the cube and the world (mm).

A crop is a box on a volume's grid (:class:`mskseg.volume.Volume` conventions: ``world = origin +
direction @ (index * spacing)``, LPS mm): the voxels ``lo..hi`` (inclusive) of a bounding box, their
full extent (voxel edges) widened by ``margin_mm`` on every side, with the volume's axes. The box is
resampled to ``cube_size`` voxels per axis whose edges tile it (``isotropic=True``: the box widened
to a cube in mm first). ``bbox=None`` takes the whole volume (the paper's multi-shape network).

Three frames:

* cube voxel indices ``i`` (``0..n-1`` per axis, voxel centres);
* the *normalised* frame ``u``: ``u = -1`` and ``u = +1`` at the box's faces, ``u = (2 i + 1) / n - 1``
  at cube voxel centres, ``u = 0`` at the box's centre. The shape regression network predicts here;
* the world, mm: ``world = centre + direction @ (half_extent_mm * u)``.

:class:`CropGeometry` holds these maps as 4x4 affines (homogeneous column vectors) and applies them
to points; :func:`resample_crop` samples an array (numpy or torch, any device) at the cube's voxel
centres by trilinear (or nearest) interpolation, zero outside the volume. A box covering a whole
volume with no margin and ``cube_size`` equal to its shape reproduces the volume exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mskseg.volume import Volume

__all__ = ["CropGeometry", "crop_geometry", "crop_volume", "mask_bbox", "resample_crop"]

#: interpolation of :func:`resample_crop` -> grid_sample's mode
_MODES = {"linear": "bilinear", "nearest": "nearest"}


def _homogeneous(matrix: np.ndarray, offset: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = matrix, offset
    return out


def _apply(affine: np.ndarray, points: Any) -> np.ndarray:
    p = np.asarray(points, dtype=float)
    if p.shape[-1:] != (3,):
        raise ValueError(f"points must have shape (..., 3), got {p.shape}")
    return p @ affine[:3, :3].T + affine[:3, 3]


@dataclass(frozen=True, eq=False)
class CropGeometry:
    """Where a cube crop lies (module docstring): its frames and the volume it was cut from.

    Attributes
    ----------
    cube_shape : (int, int, int)
        Voxels of the cube along each axis.
    centre_mm : array (3,)
        World position of the box's centre (``u = 0``), mm.
    direction : array (3, 3)
        Column ``a``: world direction of the cube's axis ``a`` (the volume's direction).
    half_extent_mm : array (3,)
        Half the box's size along each cube axis, mm (world mm per normalised unit).
    source_shape : (int, int, int)
        The volume's shape.
    world_to_source : array (4, 4)
        World mm -> the volume's continuous voxel indices.
    """

    cube_shape: tuple[int, int, int]
    centre_mm: np.ndarray
    direction: np.ndarray
    half_extent_mm: np.ndarray
    source_shape: tuple[int, int, int]
    world_to_source: np.ndarray

    @property
    def normalised_to_world(self) -> np.ndarray:
        """4x4: ``u`` -> world mm."""
        return _homogeneous(self.direction * self.half_extent_mm, self.centre_mm)

    @property
    def world_to_normalised(self) -> np.ndarray:
        """4x4: world mm -> ``u`` (the inverse of :attr:`normalised_to_world`)."""
        inverse = np.linalg.inv(self.direction) / self.half_extent_mm[:, None]
        return _homogeneous(inverse, -inverse @ self.centre_mm)

    @property
    def index_to_normalised(self) -> np.ndarray:
        """4x4: cube voxel index -> ``u`` (``(2 i + 1) / n - 1``)."""
        n = np.asarray(self.cube_shape, dtype=float)
        return _homogeneous(np.diag(2.0 / n), 1.0 / n - 1.0)

    @property
    def index_to_world(self) -> np.ndarray:
        """4x4: cube voxel index -> world mm."""
        return self.normalised_to_world @ self.index_to_normalised

    @property
    def index_to_source(self) -> np.ndarray:
        """4x4: cube voxel index -> the volume's continuous voxel index."""
        return self.world_to_source @ self.index_to_world

    def to_world(self, points: Any) -> np.ndarray:
        """Points ``(..., 3)`` in the normalised frame -> world mm."""
        return _apply(self.normalised_to_world, points)

    def to_normalised(self, points: Any) -> np.ndarray:
        """World points ``(..., 3)``, mm -> the normalised frame (targets of the network)."""
        return _apply(self.world_to_normalised, points)


def _triple(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    values = (value,) * 3 if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != 3 or any(isinstance(v, bool) or int(v) != v or v < 1 for v in values):
        raise ValueError(f"{name} must be a positive whole number or three of them, got {value!r}")
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def crop_geometry(shape: Sequence[int], spacing: Sequence[float], origin: Sequence[float], direction: Any,
                  bbox: tuple[Sequence[int], Sequence[int]] | None, *, margin_mm: float,
                  cube_size: int | Sequence[int], isotropic: bool = False) -> CropGeometry:
    """The crop of a box of a volume's grid (module docstring).

    Parameters
    ----------
    shape, spacing, origin, direction
        The volume's grid (:class:`mskseg.volume.Volume` conventions; spacing and origin in mm).
    bbox
        ``(lo, hi)``: the first and last voxel index of the box along each axis (inclusive, e.g.
        :func:`mask_bbox`; it may reach outside the volume); None for the whole volume.
    margin_mm
        Added to the box's extent on every side, mm (>= 0).
    cube_size
        Cube voxels per axis (one number, or three).
    isotropic
        Widen the box to its largest side first, so that the cube's voxels are cubes in mm.
    """
    shape_t = _triple(tuple(shape), "shape")
    spacing_a = np.asarray(spacing, dtype=float).reshape(3)
    if not np.all(np.isfinite(spacing_a)) or np.any(spacing_a <= 0):
        raise ValueError(f"spacing must be three positive numbers, got {spacing!r}")
    if not np.isfinite(margin_mm) or margin_mm < 0:
        raise ValueError(f"margin_mm must be finite and >= 0, got {margin_mm!r}")
    lo, hi = (np.zeros(3), np.asarray(shape_t, dtype=float) - 1) if bbox is None else (
        np.asarray(bbox[0], dtype=float).reshape(3), np.asarray(bbox[1], dtype=float).reshape(3))
    if np.any(hi < lo):
        raise ValueError(f"bbox must have lo <= hi on every axis, got lo {lo.tolist()}, hi {hi.tolist()}")
    dir_a = np.asarray(direction, dtype=float).reshape(3, 3)
    origin_a = np.asarray(origin, dtype=float).reshape(3)
    half = (hi - lo + 1) * spacing_a / 2 + float(margin_mm)
    if isotropic:
        half = np.full(3, half.max())
    to_index = np.linalg.inv(dir_a) / spacing_a[:, None]
    return CropGeometry(cube_shape=_triple(cube_size, "cube_size"),
                        centre_mm=origin_a + dir_a @ ((lo + hi) / 2 * spacing_a), direction=dir_a,
                        half_extent_mm=half, source_shape=shape_t,
                        world_to_source=_homogeneous(to_index, -to_index @ origin_a))


def mask_bbox(mask: Any) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """``(lo, hi)``: the first and last index of a non-zero voxel along each axis (ValueError if none)."""
    array = np.asarray(mask)
    if array.ndim != 3:
        raise ValueError(f"mask must be 3D, got shape {array.shape}")
    hits = [np.flatnonzero(array.any(axis=tuple(b for b in range(3) if b != a))) for a in range(3)]
    if any(h.size == 0 for h in hits):
        raise ValueError("mask has no foreground voxel: no bounding box")
    return tuple(int(h[0]) for h in hits), tuple(int(h[-1]) for h in hits)  # type: ignore[return-value]


def resample_crop(image: np.ndarray | torch.Tensor, geometry: CropGeometry, *,
                  interpolation: str = "linear") -> np.ndarray | torch.Tensor:
    """The cube: ``image`` ``(*S)`` or ``(C, *S)`` sampled at the cube's voxel centres.

    Trilinear (``interpolation="linear"``) or nearest-neighbour, zero outside the volume; a torch tensor
    stays on its device and comes back as a tensor, a numpy array as an array. Integer arrays are
    sampled as float32; float64 stays float64.
    """
    if interpolation not in _MODES:
        raise ValueError(f"interpolation must be one of {', '.join(_MODES)}; got {interpolation!r}")
    as_numpy = not isinstance(image, torch.Tensor)
    tensor = torch.from_numpy(np.ascontiguousarray(image)) if as_numpy else image
    if tensor.dim() not in (3, 4) or tuple(tensor.shape[-3:]) != geometry.source_shape:
        raise ValueError(f"image must be (*S) or (C, *S) with S = {geometry.source_shape}, "
                         f"got {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        tensor = tensor.float()
    channels = tensor if tensor.dim() == 4 else tensor[None]
    affine = torch.tensor(geometry.index_to_source, dtype=torch.float64, device=tensor.device)
    axes = [torch.arange(n, dtype=torch.float64, device=tensor.device) for n in geometry.cube_shape]
    index = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    source = index @ affine[:3, :3].T + affine[:3, 3]
    size = torch.tensor(geometry.source_shape, dtype=torch.float64, device=tensor.device)
    grid = ((2 * source + 1) / size - 1).flip(-1)  # grid_sample: (x, y, z) = (last, middle, first) axis
    cube = F.grid_sample(channels[None], grid[None].to(channels.dtype), mode=_MODES[interpolation],
                         padding_mode="zeros", align_corners=False)[0]
    cube = cube if tensor.dim() == 4 else cube[0]
    return cube.cpu().numpy() if as_numpy else cube


def crop_volume(volume: Volume, bbox: tuple[Sequence[int], Sequence[int]] | None, *, margin_mm: float,
                cube_size: int | Sequence[int], isotropic: bool = False,
                interpolation: str = "linear") -> tuple[np.ndarray, CropGeometry]:
    """A volume's crop (:func:`crop_geometry`) and its cube (:func:`resample_crop`)."""
    geometry = crop_geometry(volume.shape, volume.spacing, volume.origin, volume.direction, bbox,
                             margin_mm=margin_mm, cube_size=cube_size, isotropic=isotropic)
    return resample_crop(volume.array, geometry, interpolation=interpolation), geometry

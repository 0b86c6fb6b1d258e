"""Geometry of MPUNet's multi-planar views (Perslev et al.): view normals, their frames, the square
sampling grids and the planes' voxel coordinates.

Array axes are ITK ``(i, j, k)``; a voxel ``idx`` lies at the world position
``direction @ ((idx - c) * spacing)`` relative to the box centre ``c = (shape - 1) / 2``. The origin
never matters: every plane goes through (or parallel to a plane through) the box centre. A view's
frame is :func:`view_basis` (rows ``u, v, n``); pixel ``(a, b)`` of a plane at offset ``t`` (mm along
``n``) sits at ``t n + ((a - (dim-1)/2) u + (b - (dim-1)/2) v) * pixel_mm``, so the first image axis
(H) runs along ``u`` and the second (W) along ``v``. Sizes are in millimetres unless said otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: voxels whose view-frame position lies this many grid steps beyond the outer sample still count
#: as covered (half a pixel: the grid's pixels tile [-span/2, span/2])
COVER_MARGIN = 0.5
_EDGE_TOL = 1e-6  # voxels: sample points this close outside the array are put on its edge


# ---------------------------------------------------------------------------------------- views
def draw_views(n_views: int, seed: int, *, min_angle_deg: float = 30.0) -> np.ndarray:
    """``n_views`` random unit vectors (world frame), pairwise at least ``min_angle_deg`` apart.

    A view and its opposite give the same plane, so the angle between two views is the angle
    between their lines (0..90 degrees). Vectors are drawn uniformly on the sphere with
    ``np.random.default_rng(seed)`` and rejected until the constraint holds; the whole set is
    redrawn when a greedy draw gets stuck.

    Returns
    -------
    np.ndarray
        ``(n_views, 3)`` float64 unit vectors.

    Raises
    ------
    ValueError
        ``n_views < 1``, an angle outside [0, 90], or no set found after many tries (the request is
        impossible or nearly so, e.g. 10 views 80 degrees apart).
    """
    if int(n_views) < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views}")
    if not 0.0 <= float(min_angle_deg) <= 90.0:
        raise ValueError(f"min_angle_deg must lie in [0, 90] (angles between lines), got {min_angle_deg}")
    rng = np.random.default_rng(seed)
    max_cos = math.cos(math.radians(float(min_angle_deg))) + 1e-12
    for _restart in range(50):
        views = np.empty((0, 3))
        for _draw in range(20 * int(n_views)):
            cand = rng.standard_normal((256, 3))
            cand /= np.linalg.norm(cand, axis=1, keepdims=True)
            ok = np.flatnonzero(np.all(np.abs(cand @ views.T) <= max_cos, axis=1))
            if ok.size:  # the first acceptable draw: uniform on the allowed part of the sphere
                views = np.vstack([views, cand[ok[0]]])
                if len(views) == n_views:
                    return views
    raise ValueError(f"could not draw {n_views} views at least {min_angle_deg} degrees apart; "
                     "ask for fewer views or a smaller min_angle_deg")


def view_basis(normal: np.ndarray) -> np.ndarray:
    """The view frame: rows ``u, v, n``, orthonormal and right-handed (``u x v = n``).

    ``n`` is ``normal`` normalised; ``u`` is the world axis least aligned with ``n`` (the first on
    ties) made orthogonal to ``n``; ``v = n x u``. For ``n = +z`` this gives ``u = +x, v = +y``;
    for ``n = +x``: ``u = +y, v = +z``; for ``n = +y``: ``u = +x, v = -z``.
    """
    n = np.asarray(normal, dtype=float).reshape(3)
    norm = float(np.linalg.norm(n))
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"a view normal must be a finite non-zero vector, got {normal}")
    n = n / norm
    helper = np.zeros(3)
    helper[int(np.argmin(np.abs(n)))] = 1.0
    u = helper - (helper @ n) * n
    u /= np.linalg.norm(u)
    v = np.cross(n, u)
    return np.stack([u, v, n])


# ------------------------------------------------------------------------------------ the grid
def physical_extents(shapes_spacings: Iterable[tuple[tuple[int, int, int], tuple[float, float, float]]]
                     ) -> np.ndarray:
    """Every axis extent ``shape * spacing`` (mm) of every image, flattened to ``(3 * n_images,)``."""
    out = [np.asarray(shape, float) * np.asarray(spacing, float) for shape, spacing in shapes_spacings]
    if not out:
        raise ValueError("physical_extents needs at least one (shape, spacing) pair")
    return np.concatenate(out)


def sphere_span(extents_mm: np.ndarray, *, at: str = "train") -> float:
    """The sphere diameter (mm): the 75th percentile of the extents for ``"train"``, the maximum for ``"inference"``."""
    ext = np.asarray(extents_mm, dtype=float).ravel()
    if ext.size == 0 or not np.all(np.isfinite(ext)) or np.any(ext <= 0):
        raise ValueError("sphere_span needs positive finite extents")
    if at == "train":
        return float(np.percentile(ext, 75))
    if at == "inference":
        return float(ext.max())
    raise ValueError(f"at must be 'train' or 'inference', got {at!r}")


@dataclass(frozen=True)
class PlaneGrid:
    """A square isotropic sampling grid: ``dim`` pixels of ``pixel_mm`` a side."""

    dim: int
    pixel_mm: float

    def __post_init__(self) -> None:
        if int(self.dim) != self.dim or self.dim < 1:
            raise ValueError(f"grid dim must be a positive integer, got {self.dim}")
        if not (math.isfinite(self.pixel_mm) and self.pixel_mm > 0):
            raise ValueError(f"pixel_mm must be positive, got {self.pixel_mm}")
        object.__setattr__(self, "dim", int(self.dim))
        object.__setattr__(self, "pixel_mm", float(self.pixel_mm))

    @property
    def span_mm(self) -> float:
        """Side of the grid (mm), ``dim * pixel_mm``."""
        return self.dim * self.pixel_mm


def training_grid(span_mm: float, dim: int) -> PlaneGrid:
    """The training grid: ``dim`` pixels over ``span_mm`` (``pixel_mm = span / dim``)."""
    if not span_mm > 0:
        raise ValueError(f"span_mm must be positive, got {span_mm}")
    return PlaneGrid(int(dim), float(span_mm) / int(dim))


def inference_grid(span_mm: float, pixel_mm: float, multiple: int = 16) -> PlaneGrid:
    """The inference grid: the training pixel size, ``dim = ceil(span / pixel)`` rounded up to ``multiple``."""
    if not span_mm > 0 or not pixel_mm > 0 or int(multiple) < 1:
        raise ValueError(f"need span_mm > 0, pixel_mm > 0 and multiple >= 1, got {span_mm}, {pixel_mm}, {multiple}")
    dim = math.ceil(float(span_mm) / float(pixel_mm) - 1e-9)
    dim = max(int(multiple), -(-dim // int(multiple)) * int(multiple))
    return PlaneGrid(dim, float(pixel_mm))


#: what each view's prediction slices span in-plane (:func:`prediction_grid`)
INFERENCE_SPANS = ("diagonal", "train")


def prediction_grid(extent_mm: Sequence[float], pixel_mm: float, *, inference_span: str = "diagonal",
                    train_dim: int | None = None, multiple: int = 16, max_offset_fraction: float | None = None
                    ) -> tuple[PlaneGrid, float]:
    """The in-plane grid a view is predicted on and the extent (mm) its slices cover along the normal.

    ``extent_mm``: the volume's axis extents ``shape * spacing``; its diagonal ``D`` bounds every
    voxel's distance from the box centre times two. ``"diagonal"``: :func:`inference_grid` over ``D``
    (every voxel is covered by every view), slices over that grid's span. ``"train"``: the slices a view
    was trained on -- in-plane the training grid (``train_dim`` pixels of ``pixel_mm``, centred on the box
    centre as every training slice is), along the normal the training offsets, ``max_offset_fraction``
    times the training span (``train_dim * pixel_mm``; None: ``D``, every offset). A voxel outside that
    slab or square gets nothing from that view (:func:`~mskseg.nn.multiplanar.predict_multiplanar`): each
    view votes only where it saw training slices.
    """
    ext = np.asarray(extent_mm, dtype=float).reshape(-1)
    if ext.size != 3 or not np.all(np.isfinite(ext)) or np.any(ext <= 0):
        raise ValueError(f"extent_mm must be three positive extents, got {tuple(ext)}")
    diagonal = float(np.linalg.norm(ext))
    if inference_span == "diagonal":
        grid = inference_grid(diagonal, pixel_mm, multiple)
        return grid, grid.span_mm
    if inference_span == "train":
        if train_dim is None:
            raise ValueError("inference_span 'train' needs the training slice size (train_dim)")
        grid = PlaneGrid(int(train_dim), float(pixel_mm))
        if max_offset_fraction is None:
            return grid, diagonal
        if not 0.0 <= float(max_offset_fraction) <= 1.0:
            raise ValueError(f"max_offset_fraction must lie in [0, 1], got {max_offset_fraction}")
        return grid, min(diagonal, max(float(max_offset_fraction) * grid.span_mm, grid.pixel_mm))
    raise ValueError(f"inference_span must be one of {INFERENCE_SPANS}, got {inference_span!r}")


# ---------------------------------------------------------------------------------- sampling
def index_frame(shape: Sequence[int], spacing: Sequence[float], direction: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Box centre (index units) and the 3x3 matrix taking world offsets (mm) to index offsets."""
    if len(shape) != 3 or len(spacing) != 3:
        raise ValueError(f"need a 3D shape and three spacings, got {tuple(shape)} and {tuple(spacing)}")
    s = np.asarray(spacing, dtype=float)
    if np.any(s <= 0):
        raise ValueError(f"spacing must be positive, got {tuple(spacing)}")
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    centre = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    return centre, np.linalg.inv(d) / s[:, None]


def plane_coordinates(shape, spacing, direction, basis: np.ndarray, grid: PlaneGrid, offset_mm: float,
                      rotation_rad: float = 0.0) -> np.ndarray:
    """Fractional voxel indices ``(3, dim, dim)`` of a plane's pixels.

    The plane is normal to ``n = basis[2]``, ``offset_mm`` from the volume's box centre along
    ``n``; pixel ``(a, b)`` lies at ``((a - (dim-1)/2) u' + (b - (dim-1)/2) v') * pixel_mm`` in it,
    with ``u', v'`` the basis' ``u, v`` rotated by ``rotation_rad`` about ``n``
    (``u' = cos u + sin v``, ``v' = -sin u + cos v``). Rotating by pi/2 turns the plane ``P`` into
    ``np.rot90(P, -1)``.
    """
    b = np.asarray(basis, dtype=float).reshape(3, 3)
    centre, to_index = index_frame(shape, spacing, direction)
    c, s = math.cos(rotation_rad), math.sin(rotation_rad)
    u, v = c * b[0] + s * b[1], -s * b[0] + c * b[1]
    steps = (np.arange(grid.dim) - (grid.dim - 1) / 2.0) * grid.pixel_mm
    world = (float(offset_mm) * b[2][:, None, None] + u[:, None, None] * steps[None, :, None]
             + v[:, None, None] * steps[None, None, :])
    return centre[:, None, None] + np.einsum("ij,jab->iab", to_index, world)


def sample_plane(array: np.ndarray, coords: np.ndarray, *, order: int, cval: float) -> np.ndarray:
    """``array`` at fractional indices ``coords`` ``(3, ...)``: float32 of shape ``coords.shape[1:]``.

    ``order`` 1 for images and weight maps, 0 (nearest) for labels; the caller casts labels back.
    Points outside ``[0, n - 1]`` get ``cval``; points within 1e-6 voxel outside (rounding) are put
    on the edge.
    """
    coords = np.array(coords, dtype=float)
    if coords.shape[0] != array.ndim:
        raise ValueError(f"coords need {array.ndim} rows for an array of shape {array.shape}, got {coords.shape}")
    for axis, n in enumerate(array.shape):
        row = coords[axis]
        row[(row < 0.0) & (row > -_EDGE_TOL)] = 0.0
        row[(row > n - 1) & (row < n - 1 + _EDGE_TOL)] = n - 1
    return ndimage.map_coordinates(array, coords, order=order, mode="constant", cval=float(cval), output=np.float32)


def view_bases(views: np.ndarray) -> np.ndarray:
    v = np.asarray(views, dtype=float)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"views must be an (n_views, 3) array, got shape {v.shape}")
    return np.stack([view_basis(n) for n in v])


__all__ = [
    "COVER_MARGIN",
    "INFERENCE_SPANS",
    "PlaneGrid",
    "draw_views",
    "index_frame",
    "inference_grid",
    "physical_extents",
    "plane_coordinates",
    "prediction_grid",
    "sample_plane",
    "sphere_span",
    "training_grid",
    "view_bases",
    "view_basis",
]

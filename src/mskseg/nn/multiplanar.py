"""Multi-planar view sampling of MPUNet (Perslev et al.), as used by Xu et al. for hip CT.

One 2D network is trained on slices sampled along a fixed set of view orientations (unit
vectors drawn once, stored with the model) on an isotropic grid inside a sphere centred on the
volume. At inference every view is predicted slice by slice over the whole sphere, each view's
probability stack is interpolated back onto the volume's voxels, the views are summed (averaged
over the views covering a voxel) and the argmax is the label (the hip paper: no fusion model).

Geometry (see :mod:`mskseg.volume`): array axes are ITK ``(i, j, k)``; a voxel ``idx`` lies at the
world position ``direction @ ((idx - c) * spacing)`` relative to the box centre
``c = (shape - 1) / 2``. The origin never matters: every plane goes through (or parallel to a
plane through) the box centre. A view's frame is :func:`view_basis` (rows ``u, v, n``); pixel
``(a, b)`` of a plane at offset ``t`` (mm along ``n``) sits at
``t n + ((a - (dim-1)/2) u + (b - (dim-1)/2) v) * pixel_mm``, so the first image axis (H) runs
along ``u`` and the second (W) along ``v``. Sizes are in millimetres unless said otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from mskseg.nn.device import autocast, resolve_precision

__all__ = ["MultiPlanarCase", "MultiPlanarDataset", "PlaneGrid", "draw_views", "inference_grid",
           "physical_extents", "plane_coordinates", "predict_multiplanar", "sample_plane", "sphere_span",
           "training_grid", "view_basis"]

#: voxels whose view-frame position lies this many grid steps beyond the outer sample still count
#: as covered (half a pixel: the grid's pixels tile [-span/2, span/2])
_COVER_MARGIN = 0.5
_MAP_BACK_VOXELS = 1 << 20  # voxels mapped back per chunk
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


# ---------------------------------------------------------------------------------- sampling
def _index_frame(shape: Sequence[int], spacing: Sequence[float], direction: np.ndarray
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
    centre, to_index = _index_frame(shape, spacing, direction)
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


# ---------------------------------------------------------------------------------- training
@dataclass
class MultiPlanarCase:
    """The arrays of one training case (``mskseg.nn.data.Case`` has the same attributes).

    ``image`` float32 ``(X, Y, Z)``; ``target`` int64 class indices or None; ``weight`` float32
    loss weights or None (ones); ``spacing`` (mm) and ``direction`` as in :mod:`mskseg.volume`.
    """

    name: str
    image: np.ndarray
    target: np.ndarray | None = None
    weight: np.ndarray | None = None
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))


def _check_views(views: np.ndarray) -> np.ndarray:
    v = np.asarray(views, dtype=float)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"views must be an (n_views, 3) array, got shape {v.shape}")
    return np.stack([view_basis(n) for n in v])


class MultiPlanarDataset(torch.utils.data.Dataset):
    """Random oblique 2D training slices of the cases, ``samples_per_epoch`` per epoch.

    Item ``index`` of epoch ``e`` draws, with ``np.random.default_rng([seed, e, index])`` and in
    this order: a case, a view of ``views``, an in-plane rotation in [0, 2 pi), an offset uniform in
    ``[-f, f] * span / 2`` (``f = max_offset_fraction``, span = ``grid.span_mm``); then ``augment``
    (if given) gets the same generator. Outside the volume the image is the case's minimum, the
    target 0 and the weight 1.

    Returns the spec's sample dict: ``image`` float32 ``(1, dim, dim)``, ``target`` int64
    ``(dim, dim)``, ``weight`` float32 ``(dim, dim)``, ``sample_weight`` float32 ``()``.
    """

    def __init__(self, cases, views: np.ndarray, grid: PlaneGrid, *, samples_per_epoch: int,
                 augment: Callable[..., Any] | None = None, seed: int = 0, max_offset_fraction: float = 0.5) -> None:
        self.cases = list(cases)
        if not self.cases:
            raise ValueError("MultiPlanarDataset needs at least one case")
        if int(samples_per_epoch) < 1:
            raise ValueError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}")
        if not 0.0 <= float(max_offset_fraction) <= 1.0:
            raise ValueError(f"max_offset_fraction must lie in [0, 1], got {max_offset_fraction}")
        self.bases = _check_views(views)
        self.grid = grid
        self.samples_per_epoch = int(samples_per_epoch)
        self.augment = augment
        self.seed = int(seed)
        self.max_offset_fraction = float(max_offset_fraction)
        self.epoch = 0
        self._image_min = [self._check_case(case) for case in self.cases]

    @staticmethod
    def _check_case(case) -> float:
        name = getattr(case, "name", "?")
        image = np.asarray(case.image)
        if image.ndim != 3:
            raise ValueError(f"case {name}: image must be 3D (X, Y, Z), got shape {image.shape}")
        if case.target is None:
            raise ValueError(f"case {name} has no target; training needs one")
        for what in ("target", "weight"):
            arr = getattr(case, what)
            if arr is not None and np.shape(arr) != image.shape:
                raise ValueError(f"case {name}: {what} shape {np.shape(arr)} differs from image {image.shape}")
        return float(image.min())

    def __len__(self) -> int:
        return self.samples_per_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        n_case = int(rng.integers(len(self.cases)))
        basis = self.bases[int(rng.integers(len(self.bases)))]
        rotation = float(rng.uniform(0.0, 2.0 * math.pi))
        half = self.max_offset_fraction * self.grid.span_mm / 2.0
        offset = float(rng.uniform(-half, half))
        case = self.cases[n_case]
        image = np.asarray(case.image)
        coords = plane_coordinates(image.shape, case.spacing, case.direction, basis, self.grid, offset, rotation)
        img = sample_plane(image, coords, order=1, cval=self._image_min[n_case])[None]
        target = sample_plane(np.asarray(case.target), coords, order=0, cval=0).astype(np.int64)
        if case.weight is None:
            weight = np.ones(target.shape, np.float32)
        else:
            weight = sample_plane(np.asarray(case.weight), coords, order=1, cval=1.0)
        sample_weight = 1.0
        if self.augment is not None:
            img, target, weight, sample_weight = self.augment(img, target, weight, rng)
        return {"image": torch.as_tensor(np.ascontiguousarray(img, dtype=np.float32)),
                "target": torch.as_tensor(np.ascontiguousarray(target, dtype=np.int64)),
                "weight": torch.as_tensor(np.ascontiguousarray(weight, dtype=np.float32)),
                "sample_weight": torch.tensor(float(sample_weight), dtype=torch.float32)}


# --------------------------------------------------------------------------------- inference
def _n_half_offsets(grid: PlaneGrid) -> int:
    """``K`` of the offsets ``k * pixel_mm``, ``|k| <= K``, whose slices cover [-span/2, span/2]."""
    return max(0, math.ceil(grid.span_mm / (2.0 * grid.pixel_mm) - _COVER_MARGIN - 1e-9))


def _predict_view(model: nn.Module, image: np.ndarray, spacing, direction, basis: np.ndarray, grid: PlaneGrid,
                  cval: float, batch_size: int, device: torch.device, precision: str,
                  channels_last: bool) -> torch.Tensor:
    """Softmax stack ``(1, K, n_offsets, dim, dim)`` float32 on ``device`` of one view."""
    k_half = _n_half_offsets(grid)
    offsets = np.arange(-k_half, k_half + 1) * grid.pixel_mm
    stack: torch.Tensor | None = None
    for start in range(0, len(offsets), batch_size):
        chunk = offsets[start:start + batch_size]
        coords = np.stack([plane_coordinates(image.shape, spacing, direction, basis, grid, t) for t in chunk], axis=1)
        x = torch.from_numpy(sample_plane(image, coords, order=1, cval=cval)[:, None]).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            logits = model(x)
        prob = logits.float().softmax(dim=1)  # (B, K, dim, dim)
        if stack is None:
            stack = torch.empty((1, prob.shape[1], len(offsets), grid.dim, grid.dim), dtype=torch.float32,
                                device=device)
        stack[0, :, start:start + len(chunk)] = prob.transpose(0, 1)
    assert stack is not None
    return stack


def _map_back(stack: torch.Tensor, shape: tuple[int, int, int], spacing, direction, basis: np.ndarray,
              grid: PlaneGrid) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Trilinear interpolation of a view's stack at the voxels, in slabs along array axis 0.

    Yields ``(x0, x1, probs (K, x1-x0, Y, Z) float32, covered (x1-x0, Y, Z) bool)``. A voxel is
    covered when its stack indices lie within half a step of the stack (edge values are used
    in that margin).
    """
    centre, _ = _index_frame(shape, spacing, direction)
    # index offsets -> (u, v, n) in grid steps: basis @ direction @ diag(spacing) / pixel
    to_view = np.asarray(basis, float) @ np.asarray(direction, float).reshape(3, 3) @ np.diag(
        np.asarray(spacing, float)) / grid.pixel_mm
    sizes = torch.tensor([grid.dim, grid.dim, stack.shape[2]], dtype=torch.float32)  # along u, v, n
    shift = (sizes - 1) / 2.0
    dev = stack.device
    mat = torch.tensor(to_view, dtype=torch.float32, device=dev)
    ys = torch.arange(shape[1], dtype=torch.float32, device=dev) - float(centre[1])
    zs = torch.arange(shape[2], dtype=torch.float32, device=dev) - float(centre[2])
    yz = ys[:, None, None] * mat[:, 1] + zs[None, :, None] * mat[:, 2]  # (Y, Z, 3)
    step = max(1, _MAP_BACK_VOXELS // max(1, shape[1] * shape[2]))
    lo, hi = (-_COVER_MARGIN - 1e-4), (sizes - 1 + _COVER_MARGIN + 1e-4).to(dev)
    for x0 in range(0, shape[0], step):
        x1 = min(shape[0], x0 + step)
        xs = torch.arange(x0, x1, dtype=torch.float32, device=dev) - float(centre[0])
        frac = xs[:, None, None, None] * mat[:, 0] + yz[None] + shift.to(dev)  # (nx, Y, Z, 3): a, b, o
        covered = ((frac >= lo) & (frac <= hi)).all(dim=-1)
        denom = (sizes - 1).clamp_min(1).to(dev)
        norm = (2.0 * frac / denom - 1.0).clamp(-1.0, 1.0)
        grid_xyz = norm[..., [1, 0, 2]].reshape(1, 1, 1, -1, 3)  # grid_sample wants (W, H, D) = (b, a, o)
        vals = F.grid_sample(stack, grid_xyz, mode="bilinear", padding_mode="border", align_corners=True)
        vals = vals.reshape(stack.shape[1], x1 - x0, shape[1], shape[2])
        yield x0, x1, vals.cpu().numpy(), covered.cpu().numpy()


def predict_multiplanar(model: nn.Module, image: np.ndarray, spacing, direction, views: np.ndarray,
                        grid: PlaneGrid, *, batch_size: int = 16, device: torch.device | None = None,
                        precision: str = "fp32", channels_last: bool = False,
                        return_views: bool = False) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Class probabilities ``(K, X, Y, Z)`` float32 of ``image`` from all views, averaged.

    Each view is predicted on slices at offsets ``k * pixel_mm`` covering [-span/2, span/2]
    (span = ``grid.span_mm``, no in-plane rotation), the image sampled as in training (linear,
    outside = the image minimum). Each view's softmax stack is interpolated trilinearly at every
    voxel; a voxel outside a view's grid (beyond half a pixel of its outer samples) gets nothing
    from that view. The views covering a voxel are summed and divided by their number, so the
    argmax equals the argmax of the hip paper's sum. Every voxel is covered when the span is at
    least the volume's diagonal; a voxel no view covers gets background probability 1 (class 0).

    Parameters
    ----------
    model : nn.Module
        A 2D network ``(B, 1, dim, dim) -> (B, K, dim, dim)`` logits; put in eval mode.
    image : np.ndarray
        ``(X, Y, Z)`` intensities, ITK index order.
    spacing, direction
        The image geometry (mm, 3x3) as in :mod:`mskseg.volume`.
    views : np.ndarray
        ``(n_views, 3)`` view normals (world frame), as stored with the model.
    grid : PlaneGrid
        The inference grid (:func:`inference_grid`).
    batch_size : int
        Slices per forward pass.
    device : torch.device or None
        Where the network runs (None: where its parameters are, else the CPU).
    precision : str
        ``fp32``, ``bf16``, ``fp16`` or ``auto`` (:func:`mskseg.nn.device.resolve_precision`).
    channels_last : bool
        Feed the network channels-last input.
    return_views : bool
        Also return each view's mapped-back probabilities (``(K, X, Y, Z)`` each; voxels the view
        does not cover are background 1).
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be 3D (X, Y, Z), got shape {image.shape}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    bases = _check_views(views)
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    precision = resolve_precision(device, precision)
    model = model.to(device).eval()
    shape = tuple(int(n) for n in image.shape)
    cval = float(image.min())
    total: np.ndarray | None = None
    count = np.zeros(shape, np.float32)
    per_view: list[np.ndarray] = []
    with torch.inference_mode():
        for basis in bases:
            stack = _predict_view(model, image, spacing, direction, basis, grid, cval, int(batch_size), device,
                                  precision, channels_last)
            if total is None:
                total = np.zeros((stack.shape[1], *shape), np.float32)
            view_out = np.zeros_like(total) if return_views else None
            for x0, x1, vals, covered in _map_back(stack, shape, spacing, direction, basis, grid):
                vals *= covered[None]
                total[:, x0:x1] += vals
                count[x0:x1] += covered
                if view_out is not None:
                    vals[0] += ~covered
                    view_out[:, x0:x1] = vals
            if view_out is not None:
                per_view.append(view_out)
            del stack
    assert total is not None
    none = count == 0
    total /= np.maximum(count, 1.0)[None]
    total[0][none] = 1.0
    return (total, per_view) if return_views else total

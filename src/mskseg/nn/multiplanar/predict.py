"""MPUNet's inference: every view predicted slice by slice over the whole sphere, its probability stack
interpolated back onto the voxels, the views averaged (the hip paper: no fusion model)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mskseg.nn.device import autocast, resolve_precision
from mskseg.nn.multiplanar.geometry import (
    COVER_MARGIN,
    PlaneGrid,
    index_frame,
    plane_coordinates,
    sample_plane,
    view_bases,
)

_MAP_BACK_VOXELS = 1 << 20  # voxels mapped back per chunk


def _n_half_offsets(grid: PlaneGrid, span_mm: float | None = None) -> int:
    """``K`` of the offsets ``k * pixel_mm``, ``|k| <= K``, whose slices cover [-span/2, span/2] (span: the
    grid's own when None)."""
    span = grid.span_mm if span_mm is None else float(span_mm)
    return max(0, math.ceil(span / (2.0 * grid.pixel_mm) - COVER_MARGIN - 1e-9))


def _predict_view(model: nn.Module, image: np.ndarray, spacing, direction, basis: np.ndarray, grid: PlaneGrid,
                  cval: float, batch_size: int, device: torch.device, precision: str,
                  channels_last: bool, normal_span_mm: float | None = None) -> torch.Tensor:
    """Softmax stack ``(1, K, n_offsets, dim, dim)`` float32 on ``device`` of one view."""
    k_half = _n_half_offsets(grid, normal_span_mm)
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
    centre, _ = index_frame(shape, spacing, direction)
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
    lo, hi = (-COVER_MARGIN - 1e-4), (sizes - 1 + COVER_MARGIN + 1e-4).to(dev)
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
                        precision: str = "fp32", channels_last: bool = False, normal_span_mm: float | None = None,
                        return_views: bool = False) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Class probabilities ``(K, X, Y, Z)`` float32 of ``image`` from all views, averaged.

    Each view is predicted on slices at offsets ``k * pixel_mm`` covering [-span/2, span/2] along its
    normal (span = ``normal_span_mm``, default ``grid.span_mm``); in-plane every slice is ``grid``
    centred on the box centre (no in-plane rotation), the image sampled as in training (linear,
    outside = the image minimum). Each view's softmax stack is interpolated trilinearly at every
    voxel; a voxel outside a view's grid (beyond half a pixel of its outer samples) gets nothing
    from that view. The views covering a voxel are summed and divided by their number, so the
    argmax equals the argmax of the hip paper's sum. Every voxel is covered when both spans are at
    least the volume's diagonal; a voxel no view covers gets background probability 1 (class 0). A grid
    smaller than the diagonal (:func:`~mskseg.nn.multiplanar.geometry.prediction_grid` with
    ``inference_span="train"``) covers, per view, the voxels whose projection on the view's plane lies
    within the grid's square; the voxels near the box's corners may lie outside every view's square and
    are then background.

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
        The in-plane grid of every slice (:func:`~mskseg.nn.multiplanar.geometry.prediction_grid`).
    batch_size : int
        Slices per forward pass.
    device : torch.device or None
        Where the network runs (None: where its parameters are, else the CPU).
    precision : str
        ``fp32``, ``bf16``, ``fp16`` or ``auto`` (:func:`mskseg.nn.device.resolve_precision`).
    channels_last : bool
        Feed the network channels-last input.
    normal_span_mm : float or None
        The extent (mm) the slices cover along each normal (None: ``grid.span_mm``).
    return_views : bool
        Also return each view's mapped-back probabilities (``(K, X, Y, Z)`` each; voxels the view
        does not cover are background 1).
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be 3D (X, Y, Z), got shape {image.shape}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if normal_span_mm is not None and not (math.isfinite(normal_span_mm) and normal_span_mm > 0):
        raise ValueError(f"normal_span_mm must be positive, got {normal_span_mm}")
    bases = view_bases(views)
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
                                  precision, channels_last, normal_span_mm)
            if total is None:
                total = np.zeros((stack.shape[1], *shape), np.float32)
            view_out = np.zeros_like(total) if return_views else None
            for x0, x1, vals, covered in _map_back(stack, shape, spacing, direction, basis, grid):
                np.multiply(vals, covered[None], out=vals)
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


__all__ = ["predict_multiplanar"]

"""Steps of a volume's inference on tensors that stay on their device (no copy of a volume to the host).

The shape fitting (:mod:`mskseg.nn.shape_fitting`) chains these so that one volume goes from the image
to the label map on the GPU (or the CPU) without round trips; only a few numbers (box corners, patch
positions) reach the host.

* :func:`channel_argmax` -- the class of each voxel of ``(K, X, Y, Z)`` scores, as ``argmax(dim=0)`` (first
  maximum on ties) but 10 times faster on a CPU (a reduction over the outer axis is slow there);
* :func:`slice_probabilities` -- a 2D (or 2.5D) network on every slice along an axis, as
  :func:`mskseg.nn.inference.predict_slices` (same padding and cropping) but tensor in, tensor out;
* :func:`largest_component_box` -- the bounding box of a mask's largest connected component (26-connected
  at a coarser grid, found by max-pooling label propagation), refined to the voxels of the mask in it;
* :func:`extract_patches_t` / :func:`merge_patches_t` -- :func:`mskseg.preprocess.patches.extract_patches`
  and :func:`~mskseg.preprocess.patches.merge_patches` (plain mean) on tensors.

Empty inputs: :func:`largest_component_box` of an empty mask is None; :func:`merge_patches_t` leaves
uncovered voxels 0 with coverage 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mskseg.nn.device import autocast
from mskseg.preprocess.patches import Patch

__all__ = ["channel_argmax", "extract_patches_t", "largest_component_box", "merge_patches_t", "slice_probabilities"]


def slice_probabilities(model: nn.Module, image: torch.Tensor, axis: int, *, n_slices: int = 1, multiple: int = 16,
                        batch_size: int = 32, precision: str = "fp32") -> torch.Tensor:
    """Softmax probabilities ``(K, X, Y, Z)`` float32 of every slice of ``image`` ``(X, Y, Z)`` along ``axis``,
    on the image's device (the model must be there). Slices are centre-padded with the image minimum to a
    multiple of ``multiple`` and cropped back; 2.5D neighbours are clamped at the ends."""
    if image.dim() != 3:
        raise ValueError(f"image must be (X, Y, Z), got {tuple(image.shape)}")
    axis %= 3
    stack = image.float().movedim(axis, 0)  # (n, H, W)
    n, h, w = stack.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    h0, w0 = ph // 2, pw // 2
    padded = F.pad(stack, (w0, pw - w0, h0, ph - h0), value=float(stack.min()))
    offsets = torch.arange(n_slices, device=image.device) - n_slices // 2
    out = None
    model.eval()
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n), device=image.device)
            x = padded[(idx[:, None] + offsets).clamp(0, n - 1)]  # (b, n_slices, H', W')
            with autocast(image.device, precision):
                logits = model(x)
            prob = logits.float().softmax(dim=1)[:, :, h0:h0 + h, w0:w0 + w]  # (b, K, H, W)
            if out is None:
                out = torch.empty((prob.shape[1], n, h, w), dtype=torch.float32, device=image.device)
            out[:, start:start + len(idx)] = prob.transpose(0, 1)
    assert out is not None
    return out.movedim(1, axis + 1)


def channel_argmax(scores: torch.Tensor) -> torch.Tensor:
    """``scores.argmax(dim=0)`` of ``(K, *S)`` scores as uint8 (K <= 256), the first maximum on ties."""
    if not 1 <= scores.shape[0] <= 256:
        raise ValueError(f"channel_argmax needs 1 to 256 channels, got {scores.shape[0]}")
    best = scores[0].clone()
    classes = torch.zeros(scores.shape[1:], dtype=torch.uint8, device=scores.device)
    for k in range(1, scores.shape[0]):
        better = scores[k] > best
        classes.masked_fill_(better, k)
        torch.maximum(best, scores[k], out=best)
    return classes


def _propagate(labels: torch.Tensor, inside: torch.Tensor, check_every: int = 8) -> torch.Tensor:
    """Each foreground voxel's component label: the largest start label reachable through 26-neighbours."""
    while True:
        before = labels
        for _ in range(check_every):
            labels = F.max_pool3d(labels[None, None], 3, stride=1, padding=1)[0, 0] * inside
        if torch.equal(labels, before):
            return labels


def largest_component_box(mask: torch.Tensor, *, factor: int = 4) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(lo, hi)`` (inclusive voxel indices) of the largest 26-connected component of ``mask`` ``(X, Y, Z)``.

    Components are found on the grid ``factor`` times coarser (a coarse voxel is in when any of its
    voxels is: parts closer than ``factor`` voxels join), then the box is that of the mask's voxels in
    the largest coarse component's cells. None for an empty mask.
    """
    if mask.dim() != 3:
        raise ValueError(f"mask must be (X, Y, Z), got {tuple(mask.shape)}")
    if not bool(mask.any()):
        return None
    coarse = F.max_pool3d(mask[None, None].float(), factor, stride=factor, ceil_mode=True)[0, 0] > 0
    inside = coarse.float()  # labels up to 2**24 are exact in float32: coarse grids of 16 M cells
    if coarse.numel() >= 2**24:
        inside = inside.double()
    start = torch.arange(1, coarse.numel() + 1, dtype=inside.dtype, device=mask.device).reshape(coarse.shape)
    labels = _propagate(start * inside, inside)
    values, counts = labels[coarse].unique(return_counts=True)
    keep = labels == values[counts.argmax()]
    cells = keep.repeat_interleave(factor, 0).repeat_interleave(factor, 1).repeat_interleave(factor, 2)
    hits = mask & cells[:mask.shape[0], :mask.shape[1], :mask.shape[2]]
    lo, hi = [], []
    for a in range(3):
        line = hits.any(dim=tuple(b for b in range(3) if b != a)).nonzero()[:, 0]
        lo.append(int(line[0]))
        hi.append(int(line[-1]))
    return tuple(lo), tuple(hi)


def extract_patches_t(volume: torch.Tensor, layout: Sequence[Patch], *, fill: float = 0.0) -> torch.Tensor:
    """The patches ``(k, *size)`` of ``volume`` ``(X, Y, Z)`` at ``layout``, ``fill`` outside the volume."""
    if not layout:
        return volume.new_zeros((0, 1, 1, 1))
    out = volume.new_full((len(layout), *layout[0].size), fill)
    for i, patch in enumerate(layout):
        if not patch.empty:
            out[(i, *patch.in_patch)] = volume[patch.in_volume]
    return out


def merge_patches_t(patches: torch.Tensor, layout: Sequence[Patch], shape: Sequence[int], *,
                    region: tuple[slice, slice, slice] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Patch outputs ``(k, C, *size)`` averaged into ``(C, *shape)`` (0 where no patch lies) and the coverage
    ``(*shape)`` (patches per voxel), on the patches' device. With ``region`` (a box of the volume holding every
    patch, e.g. :func:`mskseg.preprocess.patches.union_region`) only that box is returned: ``(C, *box)``."""
    if len(layout) != len(patches):
        raise ValueError(f"{len(patches)} patches for a layout of {len(layout)}")
    box = region or tuple(slice(0, n) for n in shape)
    offset = [b.start for b in box]
    total = patches.new_zeros((patches.shape[1], *(b.stop - b.start for b in box)))
    coverage = patches.new_zeros(total.shape[1:])
    for i, patch in enumerate(layout):
        if not patch.empty:
            where = tuple(slice(v.start - o, v.stop - o) for v, o in zip(patch.in_volume, offset, strict=True))
            if any(w.start < 0 or w.stop > n for w, n in zip(where, total.shape[1:], strict=True)):
                raise ValueError(f"patch at {patch.in_volume} lies outside the region {box}")
            total[(slice(None), *where)] += patches[(i, slice(None), *patch.in_patch)]
            coverage[where] += 1
    return total / coverage.clamp_min(1), coverage

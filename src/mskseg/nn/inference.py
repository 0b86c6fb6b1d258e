"""Whole-volume inference: 2D/2.5D slice by slice, 3D by Gaussian-weighted sliding windows.

* :func:`predict_slices` -- every slice of a volume along one array axis through a 2D (or 2.5D)
  network, with the padding convention of the training slices (centre-padded with the image
  minimum to a multiple of the network's size step, cropped back afterwards).
* :func:`sliding_window_3d` -- overlapping 3D patches, each patch's softmax weighted with a
  Gaussian centred on the patch (:func:`gaussian_importance`, as in nnU-Net) and normalised by
  the summed weight.
* :func:`to_labels` -- the argmax label map of a probability volume.

All predictions are float32 ``(K, X, Y, Z)`` softmax probabilities on the image's grid (axis 0 =
class). The functions run under :func:`torch.inference_mode` with the model in eval mode (its
training mode is restored afterwards), in batches, in the precision asked for
(:func:`mskseg.nn.device.autocast`); the softmax is always taken in float32.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from mskseg.nn.device import autocast, resolve_precision

__all__ = ["gaussian_importance", "predict_slices", "sliding_window_3d", "to_labels", "window_starts"]

#: smallest value of the Gaussian importance map (keeps every voxel of a window weighted)
_MIN_IMPORTANCE = 1e-6
#: voxels per chunk of :func:`to_labels` (bounds its int64 argmax temporary)
_LABEL_CHUNK = 1 << 22


# ------------------------------------------------------------------------------------ helpers
def _model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model without either."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise ValueError(f"image must be 3D (X, Y, Z), got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    return image


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class _EvalMode:
    """Context manager: ``model.eval()`` inside, the previous training mode restored on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.was_training = model.training

    def __enter__(self) -> nn.Module:
        self.model.eval()
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


# ------------------------------------------------------------------------------- 2D / 2.5D
def predict_slices(model: nn.Module, image: np.ndarray, axis: int, *, n_slices: int = 1, multiple: int = 16,
                   batch_size: int = 32, device: torch.device | None = None, precision: str = "fp32",
                   channels_last: bool = False, indices: np.ndarray | None = None,
                   pad_value: float | None = None) -> np.ndarray:
    """Softmax probabilities ``(K, X, Y, Z)`` float32 of every slice of ``image`` along ``axis`` (or of some).

    Slice ``i`` is ``np.take(image, i, axis)`` (the two other axes in increasing order are the
    network's (H, W)). For 2.5D (``n_slices > 1``) the network gets the slices
    ``i - n_slices // 2 ... i + n_slices // 2`` (indices clamped to the volume) as channels in
    increasing index order and predicts slice ``i``. Each slice is centre-padded (``(size - n) // 2``
    before) with the image minimum to its in-plane shape rounded up to ``multiple``; the
    prediction is cropped back.

    Parameters
    ----------
    model : nn.Module
        ``(B, n_slices, H, W) -> (B, K, H, W)`` logits.
    image : np.ndarray
        ``(X, Y, Z)`` intensities (converted to float32; not copied when already float32).
    axis : int
        The array axis slices are taken across (0, 1, 2 or negative).
    n_slices : int
        Odd number of neighbouring slices the network takes (1: plain 2D).
    multiple : int
        In-plane sizes are padded up to a multiple of this (a U-Net of depth ``d`` needs ``2**d``).
    batch_size : int
        Slices per forward pass.
    device : torch.device or None
        Where the network runs; None: the model's device.
    precision : str
        ``fp32``, ``bf16``, ``fp16`` or ``auto`` (:func:`mskseg.nn.device.resolve_precision`).
    channels_last : bool
        Feed the network channels-last input (faster with bf16/fp16 on tensor cores).
    indices : np.ndarray, optional
        Only these slices (0 .. n - 1), in this order; None: every slice. Only they (and their 2.5D
        neighbours) are read from ``image``: a memory map stays mostly unread.
    pad_value : float, optional
        The padding value; None: ``image.min()`` (give it with ``indices`` to leave the rest unread).

    Returns
    -------
    np.ndarray
        float32 ``(K, X, Y, Z)`` (with ``indices``: ``len(indices)`` slices along ``axis + 1``); the
        probabilities of each voxel sum to 1.

    Raises
    ------
    ValueError
        A non-3D or empty image, an invalid axis, an even or non-positive ``n_slices``, a
        non-positive ``multiple``/``batch_size``, or ``indices`` outside the volume.
    """
    image = _check_image(image)
    if not -3 <= axis <= 2:
        raise ValueError(f"axis must be 0, 1 or 2 (or negative), got {axis}")
    axis %= 3
    if n_slices < 1 or n_slices % 2 == 0:
        raise ValueError(f"n_slices must be odd and positive, got {n_slices}")
    if multiple < 1 or batch_size < 1:
        raise ValueError(f"multiple and batch_size must be positive, got {multiple} and {batch_size}")
    device = _model_device(model) if device is None else torch.device(device)
    precision = resolve_precision(device, precision)

    n = image.shape[axis]
    wanted = np.arange(n) if indices is None else np.asarray(indices, dtype=np.intp).reshape(-1)
    if len(wanted) == 0 or wanted.min() < 0 or wanted.max() >= n:
        raise ValueError(f"indices must be a non-empty selection of slices 0..{n - 1}")
    plane = tuple(s for a, s in enumerate(image.shape) if a != axis)  # (H, W)
    padded = tuple(_round_up(s, multiple) for s in plane)
    (h0, w0), (h, w) = ((p - s) // 2 for p, s in zip(padded, plane, strict=True)), plane
    batch = min(int(batch_size), len(wanted))
    # the reused input buffer; its border keeps the padding value, only the centre is rewritten
    buf = torch.empty((batch, n_slices, *padded), dtype=torch.float32, pin_memory=device.type == "cuda")
    buf_np = buf.numpy()
    buf_np.fill(float(image.min()) if pad_value is None else float(pad_value))
    # buffer centre in np.take's output layout: the volume's axes with `axis` replaced by (B, N)
    order = {0: (0, 1, 2, 3), 1: (2, 0, 1, 3), 2: (2, 3, 0, 1)}[axis]
    offsets = np.arange(n_slices) - n_slices // 2
    out: np.ndarray | None = None
    out_view: np.ndarray | None = None  # `out` as (K, n, H, W)

    with _EvalMode(model), torch.inference_mode():
        for start in range(0, len(wanted), batch):
            b = min(batch, len(wanted) - start)
            idx = wanted[start:start + b, None] + offsets  # (b, N); clamped by mode="clip"
            centre = buf_np[:b, :, h0:h0 + h, w0:w0 + w].transpose(order)
            np.take(image, idx, axis=axis, out=centre, mode="clip")
            x = buf[:b].to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                logits = model(x)
            prob = logits.float().softmax(dim=1)[:, :, h0:h0 + h, w0:w0 + w]
            # blocking copy back: the H2D copy of `buf` has finished before it is refilled
            prob = prob.transpose(0, 1).cpu().numpy()  # (K, b, H, W)
            if out is None:
                shape = list(image.shape)
                shape[axis] = len(wanted)
                out = np.empty((prob.shape[0], *shape), dtype=np.float32)
                out_view = np.moveaxis(out, axis + 1, 1)
            out_view[:, start:start + b] = prob
    assert out is not None
    return out


# ------------------------------------------------------------------------------------- 3D
def gaussian_importance(patch_size: tuple[int, int, int], sigma_scale: float = 0.125) -> np.ndarray:
    """Gaussian weight map of a patch (nnU-Net): 1 at the centre, falling off towards the faces.

    ``exp(-d**2 / (2 sigma**2))`` per axis (multiplied), with ``d`` the distance in voxels from the
    patch centre ``(n - 1) / 2`` (so the map is mirror-symmetric) and ``sigma = sigma_scale * n``;
    scaled to a maximum of exactly 1 and clipped below at 1e-6 so that every voxel of a window
    keeps some weight.

    Returns
    -------
    np.ndarray
        float32 array of shape ``patch_size`` with values in [1e-6, 1].

    Raises
    ------
    ValueError
        Non-positive patch sizes or ``sigma_scale``.
    """
    size = tuple(int(s) for s in patch_size)
    if not size or any(s < 1 for s in size):
        raise ValueError(f"patch_size must be positive integers, got {patch_size}")
    if not sigma_scale > 0:
        raise ValueError(f"sigma_scale must be positive, got {sigma_scale}")
    weight = np.ones((), dtype=np.float64)
    for n in size:
        d = np.arange(n) - (n - 1) / 2
        g = np.exp(-(d**2) / (2 * (sigma_scale * n) ** 2))
        weight = np.multiply.outer(weight, g / g.max())
    return np.maximum(weight / weight.max(), _MIN_IMPORTANCE).astype(np.float32)


def window_starts(size: int, patch: int, overlap: float = 0.5) -> list[int]:
    """Start indices of the windows along one axis of ``size`` voxels (``size >= patch``).

    The step is ``floor(patch * (1 - overlap))`` (at least 1); the last window is moved flush
    with the end when the steps do not land there, so the windows cover ``0 .. size - 1``.
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if patch < 1 or size < patch:
        raise ValueError(f"need 1 <= patch <= size, got patch {patch} and size {size}")
    step = max(1, math.floor(patch * (1 - overlap)))
    starts = list(range(0, size - patch + 1, step))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def _windows(shape: tuple[int, ...], patch: tuple[int, ...], overlap: float) -> Iterator[tuple[slice, ...]]:
    starts = [window_starts(s, p, overlap) for s, p in zip(shape, patch, strict=True)]
    for x in starts[0]:
        for y in starts[1]:
            for z in starts[2]:
                yield tuple(slice(a, a + p) for a, p in zip((x, y, z), patch, strict=True))


def sliding_window_3d(model: nn.Module, image: np.ndarray, patch_size: tuple[int, int, int], *,
                      overlap: float = 0.5, sigma_scale: float = 0.125, batch_size: int = 2,
                      device: torch.device | None = None, precision: str = "fp32",
                      channels_last: bool = False) -> np.ndarray:
    """Softmax probabilities ``(K, X, Y, Z)`` float32 of ``image`` from overlapping 3D patches.

    Windows of ``patch_size`` start every ``patch * (1 - overlap)`` voxels along each axis, the
    last one flush with the end (:func:`window_starts`). An axis shorter than the patch is
    centre-padded (``(patch - n) // 2`` before) with the image minimum and cropped back at the
    end. Each window's softmax (float32) is multiplied by :func:`gaussian_importance` and summed
    into an accumulator on ``device``; the sum is divided by the summed weights.

    Parameters
    ----------
    model : nn.Module
        ``(B, 1, *patch_size) -> (B, K, *patch_size)`` logits.
    image : np.ndarray
        ``(X, Y, Z)`` intensities.
    patch_size : tuple of 3 int
        Window size in voxels (must suit the network, e.g. multiples of ``2**depth``).
    overlap : float
        Fraction of a window shared with the next one, in [0, 1).
    sigma_scale : float
        Gaussian sigma as a fraction of the patch size.
    batch_size : int
        Windows per forward pass.
    device, precision, channels_last
        As for :func:`predict_slices` (channels-last here is ``torch.channels_last_3d``).

    Notes
    -----
    The accumulators (``K + 1`` float32 volumes of the padded size) live on ``device``.
    """
    image = _check_image(image)
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != 3 or any(p < 1 for p in patch):
        raise ValueError(f"patch_size must be 3 positive integers, got {patch_size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    device = _model_device(model) if device is None else torch.device(device)
    precision = resolve_precision(device, precision)

    shape = image.shape
    before = [max(p - n, 0) // 2 for p, n in zip(patch, shape, strict=True)]
    if any(p > n for p, n in zip(patch, shape, strict=True)):
        pad = [(b, max(p - n, 0) - b) for b, p, n in zip(before, patch, shape, strict=True)]
        image = np.pad(image, pad, mode="constant", constant_values=float(image.min()))
    with warnings.catch_warnings():  # a read-only image (memory map) is never written to
        warnings.filterwarnings("ignore", message=".*not writable.*")
        volume = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    importance = torch.from_numpy(gaussian_importance(patch, sigma_scale)).to(device)
    weight_sum = torch.zeros(image.shape, dtype=torch.float32, device=device)
    acc: torch.Tensor | None = None
    windows = list(_windows(image.shape, patch, overlap))
    memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format

    with _EvalMode(model), torch.inference_mode():
        for first in range(0, len(windows), batch_size):
            chunk = windows[first:first + batch_size]
            x = torch.stack([volume[w] for w in chunk])[:, None].contiguous(memory_format=memory_format)
            with autocast(device, precision):
                logits = model(x)
            prob = logits.float().softmax(dim=1) * importance
            if acc is None:
                acc = torch.zeros((prob.shape[1], *image.shape), dtype=torch.float32, device=device)
            for w, p in zip(chunk, prob, strict=True):
                acc[(slice(None), *w)] += p
                weight_sum[w] += importance
        assert acc is not None
        acc /= weight_sum
        region = (slice(None), *(slice(b, b + n) for b, n in zip(before, shape, strict=True)))
        out = acc[region].cpu().numpy()
    return out if out.flags.c_contiguous else np.ascontiguousarray(out)


def to_labels(probs: np.ndarray) -> np.ndarray:
    """Label map (class index of the largest probability, the first on ties) of ``(K, ...)`` ``probs``.

    Returns
    -------
    np.ndarray
        ``probs.shape[1:]``; uint8 for up to 256 classes, uint16 for more.

    Raises
    ------
    ValueError
        ``probs`` with no class axis or no classes, or more than 65536 classes.
    """
    probs = np.asarray(probs)
    if probs.ndim < 1 or probs.shape[0] < 1:
        raise ValueError(f"probs must be (K, ...) with K >= 1, got shape {probs.shape}")
    k = probs.shape[0]
    if k > 65536:
        raise ValueError(f"at most 65536 classes fit a uint16 label map, got {k}")
    out = np.empty(probs.shape[1:], dtype=np.uint8 if k <= 256 else np.uint16)
    if probs.ndim == 1:
        out[...] = np.argmax(probs)
        return out
    step = max(1, _LABEL_CHUNK // max(1, math.prod(probs.shape[2:])))
    for i in range(0, probs.shape[1], step):
        out[i:i + step] = np.argmax(probs[:, i:i + step], axis=0)
    return out

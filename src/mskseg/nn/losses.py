"""Segmentation losses of the papers, for logits ``(B, C, *spatial)`` and integer targets ``(B, *spatial)``.

* ``ce`` - cross-entropy; ``wce`` - cross-entropy with inverse class-frequency weights (Desai et al.);
* ``dice`` - soft Dice (1 - mean over foreground classes of the batch soft Dice; Desai et al.);
* ``dice_ce`` - their sum;
* ``bce`` - binary cross-entropy of each class's sigmoid against its one-hot target (Desai et al.);
* ``weighted_ce`` - cross-entropy times a per-voxel weight map (the U-Net distance weight map of
  the hip paper, :mod:`mskseg.nn.weightmap`), averaged over voxels;
* ``ce_distance`` - cross-entropy plus the weight-map term (the knee paper's 2D U-Net loss).

Every loss accepts ``sample_weight`` ``(B,)`` multiplying each sample's contribution (the hip
paper weighs elastically deformed samples 1/3), and returns a scalar. Targets outside
``0..C-1`` raise ValueError.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSSES = ("ce", "wce", "dice", "dice_ce", "bce", "weighted_ce", "ce_distance")


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.dim() != target.dim() + 1 or logits.shape[0] != target.shape[0] or logits.shape[2:] != target.shape[1:]:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} do not match "
                         "(expected (B, C, *spatial) and (B, *spatial))")
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= logits.shape[1]):
        raise ValueError(f"target values must lie in 0..{logits.shape[1] - 1}, found "
                         f"{int(target.min())}..{int(target.max())}")


def _per_sample(voxel_loss: torch.Tensor, sample_weight: torch.Tensor | None) -> torch.Tensor:
    """Mean over voxels per sample, then the (weighted) mean over samples."""
    per = voxel_loss.flatten(1).mean(dim=1)
    if sample_weight is None:
        return per.mean()
    w = sample_weight.to(per)
    return (per * w).sum() / w.sum().clamp_min(1e-12)


def cross_entropy(logits, target, *, sample_weight=None, class_weight=None) -> torch.Tensor:
    _check(logits, target)
    voxel = F.cross_entropy(logits, target.long(), weight=class_weight, reduction="none")
    if class_weight is not None:  # normalise as torch's "mean" does: by the summed weights
        w = class_weight.to(logits)[target.long()]
        per = voxel.flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1e-12)
        if sample_weight is None:
            return per.mean()
        sw = sample_weight.to(per)
        return (per * sw).sum() / sw.sum().clamp_min(1e-12)
    return _per_sample(voxel, sample_weight)


def inverse_frequency_weights(target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Class weights proportional to 1 / frequency in ``target``, normalised to mean 1 over present classes."""
    counts = torch.bincount(target.long().flatten(), minlength=n_classes).double()
    w = torch.where(counts > 0, counts.sum() / counts.clamp_min(1), torch.zeros_like(counts))
    present = counts > 0
    return (w / w[present].mean()).float()


def weighted_cross_entropy(logits, target, *, sample_weight=None) -> torch.Tensor:
    """Cross-entropy with inverse class-frequency weights of this batch."""
    return cross_entropy(logits, target, sample_weight=sample_weight,
                         class_weight=inverse_frequency_weights(target, logits.shape[1]).to(logits.device))


def soft_dice(logits, target, *, sample_weight=None, eps: float = 1e-6) -> torch.Tensor:
    """1 - mean soft Dice of the foreground classes (class 0 is background) over the batch: the voxels of
    every sample pooled, each sample's weighted by its ``sample_weight``. Pooled, a slice without a structure
    adds to that structure's denominator instead of being a Dice of its own, which any predicted voxel would
    make 0 (per-slice Dice pulls a network towards predicting nothing on 2D slices of a thin structure);
    a class absent from the whole batch and predicted nowhere counts as Dice 1."""
    _check(logits, target)
    prob = logits.softmax(dim=1)
    onehot = F.one_hot(target.long(), logits.shape[1]).movedim(-1, 1).to(prob)
    if sample_weight is not None:
        w = sample_weight.to(prob).reshape(-1, *([1] * (logits.dim() - 1)))
        prob, onehot = prob * w, onehot * w
    dims = (0, *range(2, logits.dim()))
    inter = (prob * onehot).sum(dims)
    denom = prob.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + eps) / (denom + eps)  # (C,)
    fg = dice[1:] if logits.shape[1] > 1 else dice
    return 1 - fg.mean()


def dice_ce(logits, target, *, sample_weight=None) -> torch.Tensor:
    return soft_dice(logits, target, sample_weight=sample_weight) + cross_entropy(
        logits, target, sample_weight=sample_weight)


def binary_cross_entropy(logits, target, *, sample_weight=None) -> torch.Tensor:
    """Sigmoid BCE of every class channel against its one-hot target."""
    _check(logits, target)
    onehot = F.one_hot(target.long(), logits.shape[1]).movedim(-1, 1).to(logits)
    voxel = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none").mean(dim=1)
    return _per_sample(voxel, sample_weight)


def weight_map_cross_entropy(logits, target, weight_map, *, sample_weight=None) -> torch.Tensor:
    """Mean over voxels of ``weight_map * CE`` (``weight_map`` shaped like ``target``)."""
    _check(logits, target)
    if weight_map.shape != target.shape:
        raise ValueError(f"weight map {tuple(weight_map.shape)} does not match target {tuple(target.shape)}")
    voxel = F.cross_entropy(logits, target.long(), reduction="none") * weight_map.to(logits)
    return _per_sample(voxel, sample_weight)


def ce_plus_distance(logits, target, weight_map, *, sample_weight=None) -> torch.Tensor:
    return cross_entropy(logits, target, sample_weight=sample_weight) + weight_map_cross_entropy(
        logits, target, weight_map, sample_weight=sample_weight)


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    """The loss called ``name`` (one of :data:`LOSSES`); those needing a weight map take it third."""
    table = {"ce": cross_entropy, "wce": weighted_cross_entropy, "dice": soft_dice, "dice_ce": dice_ce,
             "bce": binary_cross_entropy, "weighted_ce": weight_map_cross_entropy, "ce_distance": ce_plus_distance}
    if name not in table:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return table[name]


def needs_weight_map(name: str) -> bool:
    return name in ("weighted_ce", "ce_distance")

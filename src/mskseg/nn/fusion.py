"""Three-plane fusion of Luan et al.: a weighted sum of the per-plane probability volumes.

``F = alpha * C + beta * A + gamma * S`` for the coronal, axial and sagittal predictions, with
weights on the simplex fitted on validation cases to maximise the mean foreground Dice of
``argmax F`` (:func:`fit_fusion_weights`, an exhaustive grid search), stored as JSON beside the
models (:func:`write_fusion_weights` / :func:`read_fusion_weights`).

Any number of views works; probabilities are float32 ``(K, X, Y, Z)`` arrays (axis 0 = class),
targets integer class indices ``(X, Y, Z)``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mskseg.io.atomic import atomic_path

__all__ = ["FusionFit", "fit_fusion_streamed", "fit_fusion_weights", "fuse", "read_fusion_weights", "simplex_grid",
           "write_fusion_weights"]

#: weights read from a file may miss 1 by this much (decimal rounding)
_SUM_TOLERANCE = 1e-6
#: dice values closer than this count as a tie
_TIE_TOLERANCE = 1e-12
#: (weight vectors x voxels) evaluated at once: float32 work arrays of 256 KiB stay in the cache
_BLOCK_ELEMENTS = 1 << 16


def _normalised(weights: Sequence[float], n_views: int) -> np.ndarray:
    """``weights / sum(weights)`` as float64; ValueError for a wrong count, negative or all-zero weights."""
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.size != n_views:
        raise ValueError(f"need one weight per view: {n_views} views, {w.size} weights")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
    return w / w.sum()


def fuse(probs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted mean ``sum_v w_v * probs[v] / sum_v w_v`` of the views' probabilities (float32).

    Parameters
    ----------
    probs : sequence of np.ndarray
        One ``(K, X, Y, Z)`` probability array per view, all of the same shape.
    weights : sequence of float
        One non-negative weight per view, not all zero (need not sum to 1).

    Raises
    ------
    ValueError
        No views, views of different shapes, or invalid weights.
    """
    if len(probs) == 0:
        raise ValueError("fuse needs at least one view")
    shapes = {np.shape(p) for p in probs}
    if len(shapes) != 1:
        raise ValueError(f"the views' probability arrays differ in shape: {sorted(shapes)}")
    w = _normalised(weights, len(probs)).astype(np.float32)
    out = np.zeros(np.shape(probs[0]), dtype=np.float32)
    for p, wv in zip(probs, w, strict=True):
        if wv:
            out += np.asarray(p, dtype=np.float32) * wv
    return out


@dataclass(frozen=True)
class FusionFit:
    """Result of :func:`fit_fusion_weights`.

    Attributes
    ----------
    weights : tuple of float
        The best weights, one per view, summing to 1.
    dice : float
        Mean foreground Dice over the validation cases at these weights.
    grid : pd.DataFrame
        Every weight combination tried: columns ``w0 .. w{V-1}`` and ``dice``.
    step : float or None
        The grid step the weights were searched with (None when unknown).
    """

    weights: tuple[float, ...]
    dice: float
    grid: pd.DataFrame = field(compare=False, repr=False)
    step: float | None = None


def simplex_grid(n_views: int, step: float) -> np.ndarray:
    """All weight vectors of ``n_views`` non-negative multiples of ``step`` summing to 1.

    Returns a float64 ``(G, n_views)`` array, ``G = C(1/step + n_views - 1, n_views - 1)``, in
    lexicographic order of the integer numerators. ValueError unless ``1/step`` is a positive
    integer and ``n_views >= 1``.
    """
    if n_views < 1:
        raise ValueError(f"need at least one view, got {n_views}")
    if not (isinstance(step, int | float) and 0 < step <= 1):
        raise ValueError(f"step must be in (0, 1], got {step!r}")
    n = round(1 / step)
    if abs(n * step - 1) > 1e-9:
        raise ValueError(f"1/step must be an integer (e.g. step 0.05 or 0.1), got step {step}")
    combos = [c for c in itertools.product(range(n + 1), repeat=n_views - 1) if sum(c) <= n]
    numerators = np.array([(*c, n - sum(c)) for c in combos], dtype=np.float64)
    return numerators / n


def _case_counts(case_probs: Sequence[np.ndarray], target: np.ndarray, grid: np.ndarray,
                 case: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per grid row and class: predicted voxels ``(G, K)``, true positives ``(G, K)``; target voxels ``(K,)``.

    Where every view has the same argmax label ``c``, every weighting also gives ``c`` (the
    weighted sum of probability vectors whose first largest entry is ``c`` has its first largest
    entry at ``c``; float32 rounding could only matter for entries within an ulp of each other),
    so those voxels are counted once; the fused label is evaluated for every
    weight vector only on the voxels where the views disagree.
    """
    shapes = {np.shape(p) for p in case_probs}
    if len(shapes) != 1:
        raise ValueError(f"case {case}: the views' probability arrays differ in shape: {sorted(shapes)}")
    shape = shapes.pop()
    target = np.asarray(target)
    if len(shape) < 2 or target.shape != shape[1:]:
        raise ValueError(f"case {case}: target shape {target.shape} does not match probabilities {shape}")
    if not np.issubdtype(target.dtype, np.integer):
        raise ValueError(f"case {case}: target must hold integer class indices, got {target.dtype}")
    k = shape[0]
    if target.size and (target.min() < 0 or target.max() >= k):
        raise ValueError(f"case {case}: target values must be class indices 0..{k - 1}, "
                         f"got {target.min()}..{target.max()}")
    case_probs = [np.asarray(p, dtype=np.float32) for p in case_probs]  # as fuse() computes
    labels = [np.argmax(p, axis=0) for p in case_probs]
    disagree = np.zeros(shape[1:], dtype=bool)
    for lab in labels[1:]:
        disagree |= lab != labels[0]
    target = target.astype(np.int64, copy=False)
    n_true = np.bincount(target.ravel(), minlength=k)
    agree_label = labels[0][~disagree].astype(np.int64)
    agree_target = target[~disagree]
    base_pred = np.bincount(agree_label, minlength=k)
    base_tp = np.bincount(agree_label[agree_label == agree_target], minlength=k)

    # per-view probabilities (V, K, M) and targets (M,) of the M disagreeing voxels
    sub = np.stack([p[:, disagree] for p in case_probs])
    sub_target = target[disagree]
    g = grid.shape[0]
    pred = np.tile(base_pred, (g, 1))
    tp = np.tile(base_tp, (g, 1))
    if sub.shape[2]:
        # the same normalisation and float32 arithmetic as fuse(), so the labels agree exactly
        w = np.stack([_normalised(row, grid.shape[1]) for row in grid]).astype(np.float32)
        rows = min(g, _BLOCK_ELEMENTS)
        cols = max(1, _BLOCK_ELEMENTS // rows)
        for g0 in range(0, g, rows):
            for m0 in range(0, sub.shape[2], cols):
                label = _fused_labels(sub[:, :, m0:m0 + cols], w[g0:g0 + rows])
                chunk_target = sub_target[m0:m0 + cols]
                for c in range(k):
                    is_c = label == c
                    pred[g0:g0 + rows, c] += np.count_nonzero(is_c, axis=1)
                    tp[g0:g0 + rows, c] += np.count_nonzero(is_c[:, chunk_target == c], axis=1)
    return pred, tp, n_true


def _fused_labels(sub: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(G, M)`` argmax labels (first maximum) of ``sum_v weights[g, v] * sub[v]`` for ``sub`` ``(V, K, M)``.

    Each class's fused value is built as in :func:`fuse` (float32 products added view by view),
    keeping the running maximum, so no ``(G, K, M)`` array is needed.
    """
    n_views, k, m = sub.shape
    best = np.empty((weights.shape[0], m), dtype=np.float32)
    value = np.empty_like(best)
    term = np.empty_like(best)
    label = np.zeros(best.shape, dtype=np.uint8 if k <= 256 else np.uint16)
    for c in range(k):
        target = best if c == 0 else value
        np.multiply(sub[0, c][None], weights[:, :1], out=target)
        for v in range(1, n_views):
            np.multiply(sub[v, c][None], weights[:, v:v + 1], out=term)
            target += term
        if c:
            larger = value > best  # strict: ties keep the lower class, as np.argmax
            label[larger] = c
            np.maximum(best, value, out=best)
    return label


def _mean_dice(pred: np.ndarray, tp: np.ndarray, n_true: np.ndarray) -> np.ndarray:
    """Mean Dice over the foreground classes (1..K-1) present in target or prediction, per row.

    A row where no foreground class is present anywhere scores 1 (nothing to find, nothing found).
    """
    denom = (pred + n_true[None])[:, 1:].astype(np.float64)
    present = denom > 0
    dice = np.divide(2.0 * tp[:, 1:], denom, out=np.zeros_like(denom), where=present)
    n_present = present.sum(axis=1)
    return np.where(n_present > 0, dice.sum(axis=1) / np.maximum(n_present, 1), 1.0)


def fit_fusion_weights(probs: Sequence[Sequence[np.ndarray]], targets: Sequence[np.ndarray], *,
                       step: float = 0.05) -> FusionFit:
    """Fusion weights maximising the mean foreground Dice on validation cases (grid search).

    Every weight vector of :func:`simplex_grid` is tried. For one case and weights ``w`` the
    prediction is ``argmax(fuse(probs[case], w))``; its Dice is averaged over the foreground
    classes present in the target or the prediction (1 when there are none), then over the cases.
    Among weight vectors whose Dice ties with the best (within 1e-12), the one closest to equal
    weights wins (then the first in grid order).

    Parameters
    ----------
    probs : sequence of sequences of np.ndarray
        ``probs[case][view]``: ``(K, X, Y, Z)`` probabilities; every case has the same views.
    targets : sequence of np.ndarray
        ``targets[case]``: ``(X, Y, Z)`` integer class indices.
    step : float
        Grid step; ``1/step`` must be an integer.

    Raises
    ------
    ValueError
        No cases, a count mismatch between ``probs`` and ``targets``, cases with different
        numbers of views, shape mismatches, target values outside 0..K-1, or an invalid step.
    """
    if len(probs) == 0:
        raise ValueError("fit_fusion_weights needs at least one validation case")
    if len(probs) != len(targets):
        raise ValueError(f"{len(probs)} cases of probabilities but {len(targets)} targets")
    n_views = {len(case) for case in probs}
    if len(n_views) != 1:
        raise ValueError(f"every case must have the same views, got view counts {sorted(n_views)}")
    return fit_fusion_streamed(zip(probs, targets, strict=True), n_views.pop(), step=step)


def fit_fusion_streamed(cases: Iterable[tuple[Sequence[np.ndarray], np.ndarray]], n_views: int, *,
                        step: float = 0.05) -> FusionFit:
    """:func:`fit_fusion_weights` on ``(probs[view], target)`` pairs taken one at a time from an iterable
    (e.g. a generator that predicts one case after the other): only one case's arrays are needed at once.

    Raises
    ------
    ValueError
        As :func:`fit_fusion_weights`; a case with another number of views than ``n_views``.
    """
    grid = simplex_grid(n_views, step)
    total = np.zeros(grid.shape[0], dtype=np.float64)
    n_cases = 0
    for case_probs, target in cases:  # not enumerate(): it would hold the last case while the next one is made
        if len(case_probs) != n_views:
            raise ValueError(f"every case must have the same views: case {n_cases} has {len(case_probs)}, "
                             f"not {n_views}")
        total += _mean_dice(*_case_counts(case_probs, target, grid, n_cases))
        n_cases += 1
        del case_probs, target
    if n_cases == 0:
        raise ValueError("fit_fusion_weights needs at least one validation case")
    mean = total / n_cases
    candidates = np.flatnonzero(mean >= mean.max() - _TIE_TOLERANCE)
    spread = np.linalg.norm(grid[candidates] - 1.0 / n_views, axis=1)
    best = int(candidates[np.argmin(spread)])
    table = pd.DataFrame(grid, columns=[f"w{j}" for j in range(n_views)]).assign(dice=mean)
    return FusionFit(weights=tuple(float(x) for x in grid[best]), dice=float(mean[best]), grid=table,
                     step=float(step))


def write_fusion_weights(path: str | os.PathLike[str], views: Sequence[str], fit: FusionFit) -> None:
    """Write ``{"views": {view: weight}, "dice": ..., "step": ...}`` as JSON, atomically.

    ValueError if ``views`` does not name each weight once.
    """
    views = [str(view) for view in views]
    if len(views) != len(fit.weights) or len(set(views)) != len(views):
        raise ValueError(f"need {len(fit.weights)} distinct view names for the weights, got {views}")
    doc = {"views": dict(zip(views, (float(w) for w in fit.weights), strict=True)), "dice": float(fit.dice),
           "step": fit.step}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def read_fusion_weights(path: str | os.PathLike[str]) -> dict[str, float]:
    """The ``{view: weight}`` of a file written by :func:`write_fusion_weights`.

    Raises
    ------
    ValueError
        Naming the file, if it is not JSON, has no ``views`` mapping of view names to finite
        non-negative numbers, or the weights do not sum to 1 (within 1e-6).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a fusion-weights JSON file ({err})") from None
    views = doc.get("views") if isinstance(doc, dict) else None
    if not isinstance(views, dict) or not views:
        raise ValueError(f"{path}: expected an object with a non-empty 'views' mapping of view name to weight")
    weights: dict[str, float] = {}
    for name, value in views.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{path}: weight of view {name!r} must be a non-negative number, got {value!r}")
        weights[name] = float(value)
    total = sum(weights.values())
    if abs(total - 1.0) > _SUM_TOLERANCE:
        raise ValueError(f"{path}: the view weights must sum to 1, got {total:.6g}")
    return weights

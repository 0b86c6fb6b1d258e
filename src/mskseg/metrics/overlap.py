"""Overlap metrics from voxel counts: Dice, IoU, volumetric overlap error, relative volume difference.

Counts of one structure: ``tp`` (in both), ``fp`` (prediction only), ``fn`` (reference only).
Empty masks give defined values, never a division error:

=================  =====  =====  =====  =====
case               Dice   IoU    VOE    RAVD
=================  =====  =====  =====  =====
both empty         1      1      0      0
empty prediction   0      0      1      1
empty reference    0      0      1      NaN (no reference volume to relate to)
=================  =====  =====  =====  =====
"""

from __future__ import annotations

import numpy as np


def overlap_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Dice, IoU, VOE (= 1 - IoU) and RAVD (= |V_pred - V_ref| / V_ref) from voxel counts.

    All are fractions (multiply by 100 for percent). See the module docstring for empty masks.
    """
    tp, fp, fn = int(tp), int(fp), int(fn)
    if min(tp, fp, fn) < 0:
        raise ValueError(f"voxel counts must be >= 0, got tp={tp}, fp={fp}, fn={fn}")
    ref, pred = tp + fn, tp + fp
    if ref == 0 and pred == 0:
        return {"dice": 1.0, "iou": 1.0, "voe": 0.0, "ravd": 0.0}
    iou = tp / (tp + fp + fn)
    dice = 2 * tp / (ref + pred)
    ravd = abs(pred - ref) / ref if ref > 0 else float("nan")
    return {"dice": dice, "iou": iou, "voe": 1.0 - iou, "ravd": ravd}


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over all classes including background (Luan et al.: 1/(k+1) sum over i=0..k).

    ``confusion[a, b]`` counts voxels of reference class ``a`` predicted as ``b``. Classes absent
    from both prediction and reference count as IoU 1.
    """
    c = np.asarray(confusion, dtype=float)
    tp = np.diag(c)
    union = c.sum(axis=0) + c.sum(axis=1) - tp
    iou = np.where(union > 0, tp / np.where(union > 0, union, 1), 1.0)
    return float(iou.mean())

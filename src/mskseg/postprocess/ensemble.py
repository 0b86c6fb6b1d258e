"""Ensembling (knee paper 3.5): class probabilities of several networks added, then the arg max.

"Result ensembling is performed by adding the class probabilities computed by the 2D and 3D
segmentations and subsequently computing the arg max for each voxel." Each member is a class
probability volume ``(C, X, Y, Z)`` with the same classes in the same order (class index 0 the
background); a member covers only part of the volume by holding NaN elsewhere (what
:func:`mskseg.preprocess.patches.merge_patches` gives the local 3D U-Net's patches by default), and
adds nothing there. Optional weights scale the members (the paper: all 1).

Ties (equal summed scores) go to the **lower class index** (``numpy.argmax`` keeps the first
maximum), so a voxel that no member covers, or where every score is 0, becomes class 0.

==================================  ===============================================
case                                result
==================================  ===============================================
a member NaN at a voxel             that member adds nothing there
no member covers a voxel            class 0 (all scores 0: the lowest index wins)
equal scores                        the lower class index
==================================  ===============================================

The work goes slab by slab along the first spatial axis (``slab`` planes), so memory beyond the
inputs and the output is one slab of summed scores, whatever the members' dtype (float16 members
are converted a slab at a time). Cost at the OAI-ZIB size (160 x 384 x 384), two members of 5
float32 classes: 1.5 s on 2 cores (``benchmarks/bench_postprocess.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: planes of the first spatial axis summed at a time
SLAB = 8


def _check_members(members: Sequence[np.ndarray], weights: Sequence[float] | None) -> tuple[list[np.ndarray],
                                                                                           np.ndarray]:
    arrays = [np.asarray(m) for m in members]
    if not arrays:
        raise ValueError("ensembling needs at least one member")
    shape = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.ndim != 4:
            raise ValueError(f"member {i} must be class probabilities (C, X, Y, Z), got shape {a.shape}")
        if a.shape != shape:
            raise ValueError(f"member {i} has shape {a.shape}, member 0 {shape}")
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"member {i} must be floating point (dequantise first), got {a.dtype}")
    w = np.ones(len(arrays)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(arrays),) or not (np.isfinite(w).all() and (w >= 0).all()):
        raise ValueError(f"weights must be {len(arrays)} finite values >= 0, got {weights!r}")
    return arrays, w


def _slab_scores(arrays: Sequence[np.ndarray], w: np.ndarray, planes: slice) -> np.ndarray:
    acc: np.ndarray | None = None
    for a, wi in zip(arrays, w, strict=True):
        part = np.array(a[:, planes], dtype=np.float32)  # a copy: NaN replaced in place below
        np.nan_to_num(part, copy=False, nan=0.0)
        if wi != 1.0:
            part *= np.float32(wi)
        if acc is None:
            acc = part
        else:
            acc += part
    assert acc is not None
    return acc


def summed_scores(members: Sequence[np.ndarray], *, weights: Sequence[float] | None = None) -> np.ndarray:
    """``sum_m w_m p_m`` as float32 ``(C, X, Y, Z)``, NaN counted as 0 (module docstring)."""
    arrays, w = _check_members(members, weights)
    out = np.empty(arrays[0].shape, dtype=np.float32)
    for start in range(0, out.shape[1], SLAB):
        planes = slice(start, start + SLAB)
        out[:, planes] = _slab_scores(arrays, w, planes)
    return out


def argmax_labels(scores: np.ndarray, label_values: Sequence[int] | None = None) -> np.ndarray:
    """Class of the highest score per voxel of ``scores`` ``(C, X, Y, Z)``, ties to the lower index.

    With ``label_values`` (``C - 1`` values, for classes 1..C-1; class 0 is background 0) the
    result holds label values (the smallest unsigned dtype that fits), otherwise class indices
    (uint8 up to 256 classes)."""
    s = np.asarray(scores)
    if s.ndim != 4:
        raise ValueError(f"scores must have shape (C, X, Y, Z), got {s.shape}")
    index = np.argmax(s, axis=0)
    lut = _lookup(s.shape[0], label_values)
    return lut[index]


def _lookup(n_classes: int, label_values: Sequence[int] | None) -> np.ndarray:
    if label_values is None:
        values = np.arange(n_classes)
    else:
        values = np.array([0, *(int(v) for v in label_values)])
        if len(values) != n_classes:
            raise ValueError(f"{n_classes} classes need {n_classes - 1} label values, got {list(label_values)}")
        if (values[1:] <= 0).any():
            raise ValueError(f"label values must be positive, got {list(label_values)}")
    dtype = np.min_scalar_type(int(values.max()))
    return values.astype(dtype)


def ensemble_labels(members: Sequence[np.ndarray], *, weights: Sequence[float] | None = None,
                    label_values: Sequence[int] | None = None) -> np.ndarray:
    """The ensemble's label map: :func:`argmax_labels` of :func:`summed_scores`, a slab at a time.

    Parameters
    ----------
    members
        Class probabilities ``(C, X, Y, Z)`` (floating; NaN where a member does not cover), e.g.
        the 2D U-Net's and the merged local 3D U-Net patches.
    weights
        One weight >= 0 per member; None: all 1 (the paper's sum).
    label_values
        The label value of classes 1..C-1; None: class indices.

    Returns
    -------
    np.ndarray
        ``(X, Y, Z)`` label values (or class indices), the smallest unsigned dtype that fits.
    """
    arrays, w = _check_members(members, weights)
    lut = _lookup(arrays[0].shape[0], label_values)
    out = np.empty(arrays[0].shape[1:], dtype=lut.dtype)
    for start in range(0, out.shape[0], SLAB):
        planes = slice(start, start + SLAB)
        out[planes] = lut[np.argmax(_slab_scores(arrays, w, planes), axis=0)]
    return out

"""Dice per slice against the normalised field of view (Desai et al., Fig. 4).

The field of view of a structure is the run of slices between the first and the last slice
that hold it in the reference; a slice's position is 0 % at one end and 100 % at the other.
Slices in that run where neither mask holds the structure have NaN Dice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def slice_dice(pred: np.ndarray, ref: np.ndarray, axis: int, *, start: int = 0, flip: bool = False,
               n_slices: int | None = None) -> pd.DataFrame:
    """Per-slice Dice of two binary masks along ``axis`` over the reference's extent.

    ``start`` is the index of the masks' first slice in the whole volume (``slice`` column);
    ``flip`` counts positions from the high-index end (``n_slices`` is then the volume's
    slice count, only used for the ``slice`` numbering check). Empty reference: no rows.
    """
    others = tuple(a for a in range(3) if a != axis)
    p = np.count_nonzero(pred, axis=others)
    r = np.count_nonzero(ref, axis=others)
    tp = np.count_nonzero(pred & ref, axis=others)
    held = np.flatnonzero(r)
    if held.size == 0:
        return pd.DataFrame(columns=["slice", "position_pct", "dice"])
    lo, hi = int(held[0]), int(held[-1])
    k = np.arange(lo, hi + 1)
    denom = p[k] + r[k]
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(denom > 0, 2.0 * tp[k] / np.where(denom > 0, denom, 1), np.nan)
    span = hi - lo
    pos = np.full(k.size, 50.0) if span == 0 else (k - lo) / span * 100.0
    if flip:
        pos = 100.0 - pos
    if n_slices is not None and start + hi >= n_slices:
        raise ValueError(f"slice {start + hi} outside a volume of {n_slices} slices")
    return pd.DataFrame({"slice": k + start, "position_pct": pos, "dice": dice})

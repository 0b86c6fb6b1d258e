"""Intensity normalisation: clipped z-score for MRI, quartile scaling for CT.

All functions compute in float64 and return float32. Each has a ``*_stats`` twin
returning the statistics used, so a pipeline can record them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mskseg.volume import Volume

MODALITIES = ("mri", "ct")


def _check_finite(array: np.ndarray) -> np.ndarray:
    a = np.asarray(array)
    if a.size == 0:
        raise ValueError("cannot normalise an empty array")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"cannot normalise an array of dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        n_nan = int(np.count_nonzero(np.isnan(a)))
        n_inf = int(np.count_nonzero(np.isinf(a)))
        raise ValueError(f"image holds non-finite values ({n_nan} NaN, {n_inf} infinite); "
                         "fill or mask them before normalising")
    return a


def zscore_clip_stats(array: np.ndarray, lower_percentile: float = 0.5,
                      upper_percentile: float = 99.5,
                      mask: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`zscore_clip` that also returns the statistics it used.

    Returns
    -------
    (array, stats)
        ``stats`` holds ``lower_percentile``, ``upper_percentile``, ``lower_value``,
        ``upper_value`` (the clip bounds in input units), ``mean``, ``sd`` and
        ``n_voxels`` (voxels the statistics were computed over), all plain Python numbers.
    """
    a = _check_finite(array)
    lo_p, hi_p = float(lower_percentile), float(upper_percentile)
    if not (np.isfinite(lo_p) and np.isfinite(hi_p) and 0.0 <= lo_p < hi_p <= 100.0):
        raise ValueError(f"percentiles must satisfy 0 <= lower < upper <= 100, "
                         f"got lower={lower_percentile!r}, upper={upper_percentile!r}")
    if mask is None:
        sel = a.ravel()
    else:
        m = np.asarray(mask.array if isinstance(mask, Volume) else mask)
        if m.shape != a.shape:
            raise ValueError(f"mask shape {m.shape} differs from image shape {a.shape}")
        sel = a[m.astype(bool)]
        if sel.size == 0:
            raise ValueError("mask selects no voxels; cannot compute intensity statistics")
    lo, hi = np.percentile(sel, [lo_p, hi_p])
    sel_clipped = np.clip(sel, lo, hi)
    if float(sel_clipped.max()) == float(sel_clipped.min()):
        where = "inside the mask" if mask is not None else "in the image"
        raise ValueError(f"intensities {where} are constant ({float(sel_clipped.min()):g}) after "
                         f"clipping to percentiles [{lo_p:g}, {hi_p:g}]: standard deviation is 0, "
                         "cannot z-score")
    mean = float(np.mean(sel_clipped))
    sd = float(np.std(sel_clipped))
    out = ((np.clip(a, lo, hi) - mean) / sd).astype(np.float32)
    stats = {"method": "zscore_clip", "lower_percentile": lo_p, "upper_percentile": hi_p,
             "lower_value": float(lo), "upper_value": float(hi), "mean": mean, "sd": sd,
             "n_voxels": int(sel.size)}
    return out, stats


def zscore_clip(array: np.ndarray, lower_percentile: float = 0.5, upper_percentile: float = 99.5,
                mask: np.ndarray | None = None) -> np.ndarray:
    """Clip to percentiles, then z-score (MRI normalisation).

    Parameters
    ----------
    array
        Image intensities (any numeric dtype, any shape).
    lower_percentile, upper_percentile
        Percentiles in ``[0, 100]`` (``lower < upper``) of the voxels used for statistics;
        the whole array is clipped to the corresponding values.
    mask
        Optional array (or :class:`Volume`) of the same shape; non-zero voxels are the
        ones the percentiles, mean and SD are computed over. Default: all voxels.

    Returns
    -------
    numpy.ndarray
        float32, ``(clip(x) - mean) / sd`` with the mean and the population SD
        (``ddof=0``) of the clipped selected voxels.

    Raises
    ------
    ValueError
        On NaN or infinite input, bad percentiles, an empty mask or a mask of another
        shape, or constant selected intensities (SD 0).
    """
    return zscore_clip_stats(array, lower_percentile, upper_percentile, mask)[0]


def ct_quartile_stats(array: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`ct_quartile` that also returns ``median``, ``q25``, ``q75`` and ``iqr``."""
    a = np.maximum(_check_finite(array), 0.0)
    q25, median, q75 = (float(v) for v in np.percentile(a, [25.0, 50.0, 75.0]))
    iqr = q75 - q25
    if iqr == 0.0:
        raise ValueError(f"interquartile range is 0 (q25 = q75 = {q25:g}) after setting negative "
                         "values to 0 (a constant image, or at least half the voxels share one "
                         "value, e.g. more than 75% of the voxels <= 0); cannot scale")
    out = ((a - median) / iqr).astype(np.float32)
    stats = {"method": "ct_quartile", "negatives_set_to": 0.0, "median": median,
             "q25": q25, "q75": q75, "iqr": iqr, "n_voxels": int(a.size)}
    return out, stats


def ct_quartile(array: np.ndarray) -> np.ndarray:
    """Quartile scaling of CT intensities (as in the hip CT paper).

    Negative values (HU) are set to 0 first; then ``(x - median) / (q75 - q25)`` with the
    median and quartiles (linear-interpolated percentiles) of that clipped volume.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    ValueError
        On NaN or infinite input, or an interquartile range of 0.
    """
    return ct_quartile_stats(array)[0]


def normalise_with_stats(volume: Volume, modality: str,
                         **params: Any) -> tuple[Volume, dict[str, Any]]:
    """:func:`normalise` that also returns the statistics used (see the ``*_stats`` functions)."""
    if modality == "mri":
        allowed = {"lower_percentile", "upper_percentile", "mask"}
        func = zscore_clip_stats
    elif modality == "ct":
        allowed = set()
        func = ct_quartile_stats  # type: ignore[assignment]
    else:
        raise ValueError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    extra = set(params) - allowed
    if extra:
        raise ValueError(f"unexpected parameters for modality {modality!r}: {', '.join(sorted(extra))}"
                         f" (allowed: {', '.join(sorted(allowed)) or 'none'})")
    array, stats = func(volume.array, **params)
    stats = {"modality": modality, **stats}
    return volume.with_array(array), stats


def normalise(volume: Volume, modality: str, **params: Any) -> Volume:
    """Normalise a volume's intensities for ``modality``; geometry unchanged, float32.

    Parameters
    ----------
    volume
        The image.
    modality
        ``"mri"``: :func:`zscore_clip` (params ``lower_percentile``, ``upper_percentile``,
        ``mask``). ``"ct"``: :func:`ct_quartile` (no params).

    Raises
    ------
    ValueError
        On an unknown modality or parameter, and as the underlying function.
    """
    return normalise_with_stats(volume, modality, **params)[0]


__all__ = ["MODALITIES", "ct_quartile", "ct_quartile_stats", "normalise", "normalise_with_stats",
           "zscore_clip", "zscore_clip_stats"]

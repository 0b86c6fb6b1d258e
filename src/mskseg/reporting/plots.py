"""Figures of metrics: box plots per structure, Dice along the field of view, power-law fits.

Every function writes ``<stem>.png`` (150 dpi) and ``<stem>.svg`` atomically (a temporary
file in the same folder moved into place with :func:`os.replace`, parent folders created)
and returns the two paths. Figures are built with :class:`matplotlib.figure.Figure`, never
registered with pyplot, so no backend is needed and nothing stays open; SVGs carry no date
and fixed ids, so reruns give identical files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from mskseg.io.atomic import atomic_path
from mskseg.stats import PowerLawFit

DPI = 150
_PANEL_W, _PANEL_H = 3.6, 3.4


def metric_label(metric: str) -> str:
    """Axis label with unit: ``"hd95_mm"`` -> ``"hd95 (mm)"``, ``"ref_volume_mm3"`` -> ``"ref_volume (mm$^3$)"``."""
    if metric.endswith("_mm3"):
        return f"{metric[:-4]} (mm$^3$)"
    if metric.endswith("_mm"):
        return f"{metric[:-3]} (mm)"
    return metric


def _save(fig: Figure, stem: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` atomically; return their paths."""
    png, svg = Path(f"{os.fspath(stem)}.png"), Path(f"{os.fspath(stem)}.svg")
    try:
        with atomic_path(png) as tmp:
            fig.savefig(tmp, dpi=DPI)
        with atomic_path(svg) as tmp, matplotlib.rc_context({"svg.hashsalt": "mskseg"}):
            fig.savefig(tmp, metadata={"Date": None})
    finally:
        fig.clear()
    return png, svg


def _panels(n: int, title: str) -> tuple[Figure, list]:
    """A figure with ``n`` panels (at most 4 per row) and the axes in reading order; extras hidden."""
    n = max(n, 1)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(_PANEL_W * cols, _PANEL_H * rows + (0.4 if title else 0.0)), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig, axes[:n]


def _order(values: pd.Series, chosen: Sequence[str] | None) -> list:
    return list(pd.unique(values)) if chosen is None else list(chosen)


def box_plot(frame: pd.DataFrame, metric: str, stem: str | os.PathLike[str], *,
             methods: Sequence[str] | None = None, structures: Sequence[str] | None = None,
             title: str = "") -> tuple[Path, Path]:
    """One panel per structure, one box per method, with the values overlaid.

    Parameters
    ----------
    frame
        Metrics frame (columns ``method``, ``structure`` and ``metric``).
    metric
        Column to plot; the y label carries its unit (mm for ``*_mm``).
    stem
        Output path without ending.
    methods, structures
        Boxes and panels in this order; default all, in order of first appearance.
    title
        Figure title.

    Notes
    -----
    NaNs are dropped; a method without values leaves an empty slot marked ``n/a``. Points are
    jittered horizontally with a fixed-seed generator, so reruns give the same figure.
    """
    missing = [c for c in ("method", "structure", metric) if c not in frame.columns]
    if missing:
        raise ValueError(f"metrics frame lacks columns {missing}")
    methods = _order(frame["method"], methods)
    structures = _order(frame["structure"], structures)
    rng = np.random.default_rng(0)
    fig, axes = _panels(len(structures), title)
    for ax, structure in zip(axes, structures, strict=True):
        sub = frame[frame["structure"] == structure]
        for i, method in enumerate(methods):
            values = sub.loc[sub["method"] == method, metric].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if values.size == 0:
                ax.text(i + 1, 0.5, "n/a", ha="center", va="center", transform=ax.get_xaxis_transform(),
                        color="0.5", fontsize=8)
                continue
            ax.boxplot(values, positions=[i + 1], widths=0.6, showfliers=False,
                       medianprops={"color": f"C{i % 10}"})
            jitter = rng.uniform(-0.15, 0.15, values.size)
            ax.scatter(i + 1 + jitter, values, s=8, alpha=0.6, color=f"C{i % 10}", zorder=3)
        ax.set_xticks(range(1, len(methods) + 1), [str(m) for m in methods], rotation=30, ha="right")
        ax.set_xlim(0.4, len(methods) + 0.6)
        ax.set_title(str(structure))
        ax.set_ylabel(metric_label(metric))
        ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, stem)


def fov_plot(curve: pd.DataFrame, stem: str | os.PathLike[str], *, title: str = "") -> tuple[Path, Path]:
    """Dice along the field of view: one panel per structure, a line per method with a ±SD band.

    Parameters
    ----------
    curve
        Output of :func:`mskseg.reporting.tables.fov_curve`. NaN means leave gaps; NaN SDs
        (fewer than two subjects) draw no band there.
    stem
        Output path without ending.
    title
        Figure title.
    """
    missing = [c for c in ("method", "structure", "bin_centre", "mean", "sd") if c not in curve.columns]
    if missing:
        raise ValueError(f"FOV curve lacks columns {missing}")
    methods = list(pd.unique(curve["method"]))
    structures = list(pd.unique(curve["structure"]))
    fig, axes = _panels(len(structures), title)
    for ax, structure in zip(axes, structures, strict=True):
        for i, method in enumerate(methods):
            sub = curve[(curve["structure"] == structure) & (curve["method"] == method)].sort_values("bin_centre")
            if sub.empty:
                continue
            x = sub["bin_centre"].to_numpy(dtype=float)
            mean = sub["mean"].to_numpy(dtype=float)
            sd = sub["sd"].to_numpy(dtype=float)
            colour = f"C{i % 10}"
            ax.plot(x, mean, marker="o", markersize=2.5, color=colour, label=str(method))
            band = np.isfinite(mean) & np.isfinite(sd)
            ax.fill_between(x, mean - sd, mean + sd, where=band, color=colour, alpha=0.2, linewidth=0)
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 1.05)
        ax.set_title(str(structure))
        ax.set_xlabel("normalised field of view (%)")
        ax.set_ylabel("Dice")
        ax.grid(True, alpha=0.3)
    if methods and axes:
        axes[0].legend(fontsize=7, loc="lower center")
    return _save(fig, stem)


def power_law_plot(points: pd.DataFrame, fits: Mapping[str, PowerLawFit], stem: str | os.PathLike[str], *,
                   metric: str = "dice", title: str = "") -> tuple[Path, Path]:
    """Accuracy against training-set size: mean ± SD per size and the fitted ``a n^b`` curves.

    Parameters
    ----------
    points
        Columns ``series``, ``n_train`` (positive) and ``metric``: per-subject or per-run
        values; NaN values are dropped.
    fits
        Series name -> fit (:func:`mskseg.stats.power_law_fit`); series without a fit get
        points only, fits without points are drawn over the range of all sizes.
    stem
        Output path without ending.
    metric
        Value column; also the y label (with unit).
    title
        Figure title.

    Raises
    ------
    ValueError
        For missing columns or a non-positive ``n_train`` (the x axis is logarithmic).
    """
    fig = Figure(figsize=(5.5, 4.2), layout="constrained")
    _draw_power_law(fig.subplots(), points, fits, metric, "training-set size (scans)", title)
    return _save(fig, stem)


def power_law_panels(points: Mapping[str, pd.DataFrame], fits: Mapping[str, Mapping[str, PowerLawFit]],
                     stem: str | os.PathLike[str], *, x_label: str = "training-set size (scans)", title: str = ""
                     ) -> tuple[Path, Path]:
    """:func:`power_law_plot` of several metrics side by side: metric -> points and metric -> fits."""
    fig, axes = _panels(len(points), title)
    for ax, (metric, frame) in zip(axes, points.items(), strict=True):
        _draw_power_law(ax, frame, fits.get(metric, {}), metric, x_label, "")
    return _save(fig, stem)


def _draw_power_law(ax, points: pd.DataFrame, fits: Mapping[str, PowerLawFit], metric: str, x_label: str,
                    title: str) -> None:
    missing = [c for c in ("series", "n_train", metric) if c not in points.columns]
    if missing:
        raise ValueError(f"points lack columns {missing}")
    n_all = points["n_train"].to_numpy(dtype=float)
    if np.any(~np.isfinite(n_all) | (n_all <= 0)):
        raise ValueError("n_train must be positive and finite (log axis)")
    series = list(pd.unique(points["series"])) + [s for s in fits if s not in set(points["series"])]
    grid_all = np.geomspace(n_all.min(), n_all.max(), 100) if n_all.size else None
    for i, name in enumerate(series):
        colour = f"C{i % 10}"
        sub = points[points["series"] == name].dropna(subset=[metric])
        grid = grid_all
        if not sub.empty:
            stats = sub.groupby("n_train")[metric].agg(["mean", "std"]).sort_index()
            ax.errorbar(stats.index.to_numpy(dtype=float), stats["mean"], yerr=stats["std"].fillna(0.0),
                        fmt="o", color=colour, capsize=3, markersize=4,
                        label=str(name) if name not in fits else None)
            grid = np.geomspace(stats.index.min(), stats.index.max(), 100)
        fit = fits.get(name)
        if fit is not None and grid is not None:
            label = f"{name}: ${fit.a:.3g}\\,n^{{{fit.b:.3g}}}$, $R^2$={fit.r2:.3f}"
            ax.plot(grid, fit.predict(grid), color=colour, label=label)
    ax.set_xscale("log")
    sizes = np.unique(n_all)
    if 0 < sizes.size <= 12:  # label the sizes used, not powers of ten
        ax.set_xticks(sizes, [f"{v:g}" for v in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(x_label)
    ax.set_ylabel(metric_label(metric))
    ax.grid(True, which="both", alpha=0.3)
    if series:
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title)

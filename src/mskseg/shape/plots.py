"""Figures of shape models: quality curves and modes of variation.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot, no global state) and
written atomically; the format follows each path's ending (``.png``, ``.svg``, ...).
"""

from __future__ import annotations

import os
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mskseg.io.atomic import atomic_path
from mskseg.shape.model import ShapeModel

_QUALITY_PANELS = (
    ("compactness", None, "compactness", "cumulative variance ratio"),
    ("generalisation_mm", "generalisation_sd_mm", "generalisation", "mean point error (mm)"),
    ("specificity_mm", "specificity_sd_mm", "specificity", "mean point distance (mm)"),
)


def _save(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Write the figure atomically; SVGs carry no date and fixed ids, so reruns give identical files."""
    svg = str(path).lower().endswith(".svg")
    with atomic_path(path) as tmp, matplotlib.rc_context({"svg.hashsalt": "mskseg" if svg else None}):
        fig.savefig(tmp, dpi=dpi, metadata={"Date": None} if svg else None)


def plot_quality(table: pd.DataFrame, path_png: str | os.PathLike[str],
                 path_svg: str | os.PathLike[str] | None = None, title: str = "") -> None:
    """Compactness, generalisation (mm) and specificity (mm) against the number of modes.

    Parameters
    ----------
    table
        As from :func:`mskseg.shape.quality.quality_table`; columns ``n_modes`` and
        ``compactness`` are required, missing error columns leave their panel empty.
        Error bars are the SD columns; NaN values are not drawn.
    path_png, path_svg
        Where to write the figure (the SVG only if given).
    title
        Figure title.
    """
    missing = [c for c in ("n_modes", "compactness") if c not in table.columns]
    if missing:
        raise ValueError(f"quality table lacks columns {missing}")
    fig = Figure(figsize=(12, 3.8))
    axes = fig.subplots(1, 3)
    modes = table["n_modes"].to_numpy(dtype=float)
    for ax, (column, sd_column, name, ylabel) in zip(axes, _QUALITY_PANELS, strict=True):
        if column in table.columns:
            values = table[column].to_numpy(dtype=float)
            errors = table[sd_column].to_numpy(dtype=float) if sd_column in table.columns else None
            ok = np.isfinite(values)
            if ok.any():
                ax.errorbar(modes[ok], values[ok], yerr=None if errors is None else errors[ok],
                            marker="o", markersize=3, capsize=2)
        if column == "compactness":
            ax.set_ylim(0, 1.05)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        ax.set_xlabel("number of modes")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.14, top=0.84 if title else 0.9, wspace=0.3)
    if title:
        fig.suptitle(title)
    _save(fig, path_png)
    if path_svg is not None:
        _save(fig, path_svg)


def _view_axes(mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid of the mean and its two principal axes (rows), for a side-on view."""
    centre = mean.mean(axis=0)
    _, _, vt = np.linalg.svd(mean - centre, full_matrices=False)
    return centre, vt[:2]


def plot_modes(model: ShapeModel, path_png: str | os.PathLike[str], n_modes: int = 3,
               sd: float = 3.0, title: str = "", path_svg: str | os.PathLike[str] | None = None) -> None:
    """Grid of shapes along the first modes: rows are modes, columns ``-sd``, mean, ``+sd``.

    Each panel is a scatter of the points projected onto the mean's two principal axes (its
    largest extents, so a long bone is seen side on), in mm, coloured by the distance of
    each point from its place on the mean (mm). Panels in a row share axis limits and the
    colour scale.

    Parameters
    ----------
    model
        The shape model.
    path_png
        Where to write the figure; ``path_svg`` optionally too.
    n_modes
        Rows to draw; fewer if the model has fewer modes. A model without modes gives a
        single panel of the mean.
    sd
        How far along each mode, in standard deviations.
    title
        Figure title.
    """
    if n_modes < 1:
        raise ValueError(f"n_modes must be >= 1, got {n_modes}")
    rows = min(int(n_modes), model.n_modes)
    centre, view = _view_axes(model.mean)
    xy = (model.mean - centre) @ view.T
    extent = xy.max(axis=0) - xy.min(axis=0)
    aspect = float(np.clip(extent[1] / max(extent[0], 1e-12), 0.25, 1.5))
    panel_w = 3.0  # inches
    panel_h = panel_w * aspect
    row_h = panel_h + 1.0  # room for a title and the x label
    head = 0.7 if title else 0.3
    columns = 3 if rows else 1
    width = 11.0 if rows else 4.5
    height = head + max(rows, 1) * row_h
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.8 / width, right=1.0 - (0.2 if rows == 0 else 0.3) / width,
                        bottom=0.6 / height, top=1.0 - head / height,
                        wspace=0.3, hspace=1.0 / panel_h)
    axes = fig.subplots(max(rows, 1), columns, squeeze=False)
    if rows == 0:
        ax = axes[0, 0]
        ax.scatter(xy[:, 0], xy[:, 1], s=2, c="0.4")
        ax.set_aspect("equal")
        ax.set_title("mean (model has no modes)")
        ax.set_xlabel("principal axis 1 (mm)")
        ax.set_ylabel("principal axis 2 (mm)")
    for k in range(rows):
        _mode_row(fig, axes[k], model, k, sd, centre, view)
    if title:
        fig.suptitle(title)
    _save(fig, path_png)
    if path_svg is not None:
        _save(fig, path_svg)


def _mode_row(fig: Figure, axes: Any, model: ShapeModel, k: int, sd: float,
              centre: np.ndarray, view: np.ndarray) -> None:
    """One row of :func:`plot_modes`: mode ``k`` at ``-sd``, 0 and ``+sd`` standard deviations."""
    steps = (-sd, 0.0, sd)
    shapes = []
    for step in steps:
        b = np.zeros(k + 1)
        b[k] = step * model.sd[k]
        shapes.append(model.instance(b))
    displacement = [np.linalg.norm(s - model.mean, axis=1) for s in shapes]
    vmax = max(float(max(d.max() for d in displacement)), 1e-12)
    projected = [(s - centre) @ view.T for s in shapes]
    every = np.concatenate(projected)
    lo, hi = every.min(axis=0), every.max(axis=0)
    pad = 0.05 * float(max(hi - lo)) + 1e-9
    scatter = None
    for ax, step, xy, dist in zip(axes, steps, projected, displacement, strict=True):
        scatter = ax.scatter(xy[:, 0], xy[:, 1], c=dist, s=2, cmap="viridis", vmin=0.0, vmax=vmax)
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(lo[1] - pad, hi[1] + pad)
        ax.set_aspect("equal")
        label = "mean" if step == 0 else f"{step:+g} SD"
        ax.set_title(f"mode {k + 1}: {label}")
        ax.set_xlabel("principal axis 1 (mm)")
        ax.set_ylabel("principal axis 2 (mm)")
    fig.colorbar(scatter, ax=list(axes), label="displacement (mm)", shrink=0.9, fraction=0.04, pad=0.02)

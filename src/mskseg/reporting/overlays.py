"""Three-plane overlays: a scan's sagittal, coronal and axial slices with the outlines of its segmentation.

:func:`overlay_figure` writes one PNG of three panels, each the image slice in grey (window: 1st-99th
percentile of the whole image) with one outline per structure in a fixed colour per label value (matplotlib's
``tab10`` cycle: label 1 blue, 2 orange, 3 green, 4 red, ...), and optionally a reference segmentation's
outlines dashed in the same colours. The figure is built with :class:`matplotlib.figure.Figure` (no pyplot,
no backend) and written atomically.

Planes and orientation
----------------------
Planes are anatomical, in world (LPS) terms: the sagittal plane is normal to world x (left-right), the coronal
to y (posterior-anterior), the axial to z (inferior-superior). :func:`plane_axes` gives, for each plane, the
array axis closest to that world axis (the permutation of array axes maximising the summed absolute direction
cosines), so a permuted or oblique acquisition still shows anatomical planes; an oblique volume is shown on
its own grid (no resampling), so its panels are tilted by the obliquity. Panels follow the radiological
convention, as 3D Slicer's default views:

=========  =======================  ==================  =====================
panel      screen left -> right     screen bottom->top  seen from
=========  =======================  ==================  =====================
sagittal   anterior -> posterior    inferior->superior  the patient's left
coronal    patient right -> left    inferior->superior  the front
axial      patient right -> left    posterior->anterior the feet
=========  =======================  ==================  =====================

The letters at the panel edges (R/L, A/P, S/I) say so. Pixels are drawn at their physical size (extent in
millimetres, equal aspect), so anisotropic voxels do not distort the anatomy.

Edge cases
----------
================================  =========================================================================
case                              behaviour
================================  =========================================================================
empty segmentation                slices through the volume centre; no outlines; legend marks all absent
structure absent                  no outline; the legend says ``(absent)`` (or which of the two lacks it)
structure absent from a slice     no outline in that panel
labels/reference on another grid  ``ValueError`` naming both grids (size, spacing, origin, direction)
constant or all-NaN image         window ``[v, v + 1]`` (or ``[0, 1]``)
``slices`` out of range           ``ValueError``
================================  =========================================================================
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mskseg.io.atomic import atomic_path
from mskseg.volume import Volume

PLANES = ("sagittal", "coronal", "axial")
DPI = 100
#: figure size in inches; the PNG is ``FIGSIZE_IN * DPI`` pixels (1200 x 480)
FIGSIZE_IN = (12.0, 4.8)
#: world (LPS) axis normal to each plane
_NORMAL = {"sagittal": 0, "coronal": 1, "axial": 2}
#: per plane: (world axis, sign) shown to the screen's right, and to the screen's top (radiological)
_SCREEN = {"sagittal": ((1, 1), (2, 1)), "coronal": ((0, 1), (2, 1)), "axial": ((0, 1), (1, -1))}
#: letters at the (left, right, bottom, top) edges of each panel
_EDGES = {"sagittal": "APIS", "coronal": "RLIS", "axial": "RLPA"}
#: at most this many voxels are sampled for the grey window
_WINDOW_SAMPLE = 2_000_000


@dataclass(frozen=True)
class PlaneView:
    """How one plane is cut from the array and laid on the screen.

    ``normal`` is the array axis the slice index runs along; ``right`` and ``up`` the array axes shown to the
    screen's right and top, reversed where ``flip_right`` / ``flip_up``.
    """

    plane: str
    normal: int
    right: int
    up: int
    flip_right: bool
    flip_up: bool

    def cut(self, array: np.ndarray, index: int) -> np.ndarray:
        """The slice as a 2D array, rows bottom-to-top (``origin="lower"``), columns left-to-right."""
        sl = np.take(array, index, axis=self.normal)
        rest = [a for a in range(3) if a != self.normal]
        sl = sl.T if rest.index(self.up) == 1 else sl  # rows: up axis, columns: right axis
        if self.flip_up:
            sl = sl[::-1]
        if self.flip_right:
            sl = sl[:, ::-1]
        return sl


def plane_axes(direction: np.ndarray) -> dict[str, int]:
    """For each plane (sagittal, coronal, axial), the array axis closest to its normal world axis (x, y, z).

    The three axes form a permutation: the one maximising the summed ``|direction[world, array]|`` (column
    ``a`` of ``direction`` is array axis ``a``'s world direction). Ties (exact 45-degree obliques) go to the
    first permutation in lexicographic order.
    """
    d = np.abs(np.asarray(direction, dtype=float).reshape(3, 3))
    best = max(itertools.permutations(range(3)), key=lambda p: sum(d[w, p[w]] for w in range(3)))
    return {plane: int(best[w]) for plane, w in _NORMAL.items()}


def plane_views(direction: np.ndarray) -> dict[str, PlaneView]:
    """The :class:`PlaneView` of each plane for a volume of this direction matrix (radiological layout)."""
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    normals = plane_axes(d)
    axis_of_world = {w: normals[plane] for plane, w in _NORMAL.items()}
    views = {}
    for plane, w in _NORMAL.items():
        (w_right, s_right), (w_up, s_up) = _SCREEN[plane]
        right, up = axis_of_world[w_right], axis_of_world[w_up]
        flip_right, flip_up = bool(d[w_right, right] * s_right < 0), bool(d[w_up, up] * s_up < 0)
        views[plane] = PlaneView(plane, axis_of_world[w], right, up, flip_right, flip_up)
    return views


def label_colour(value: int) -> tuple[float, float, float]:
    """The fixed outline colour of a label value (``tab10``, label 1 first, cycling every ten)."""
    colours = matplotlib.colormaps["tab10"].colors
    return tuple(colours[(int(value) - 1) % len(colours)])  # type: ignore[return-value]


def overlay_figure(image: Volume, labels: Volume, path: str | os.PathLike[str], *, label_names: Mapping[str, int],
                   reference: Volume | None = None, title: str = "", slices: Mapping[str, int] | None = None) -> Path:
    """Write a PNG of three planes of ``image`` with the outlines of ``labels`` (and ``reference``, dashed).

    Parameters
    ----------
    image
        The scan, drawn in grey with the 1st-99th percentile window.
    labels
        Label map on the image's grid (solid outlines).
    path
        The PNG to write (atomically; parent folders created).
    label_names
        Structure name -> label value; legend order. Values not listed are not drawn.
    reference
        Optional reference label map on the same grid, outlined dashed in the same colours.
    title
        Figure title.
    slices
        Plane name -> array index along that plane's normal axis (see :func:`plane_axes`); a plane not
        given goes through the centroid of all labelled voxels of ``labels`` (the volume centre if none).

    Returns
    -------
    Path
        ``path``; the PNG is ``FIGSIZE_IN * DPI`` pixels.

    Raises
    ------
    ValueError
        Labels or reference on another grid than the image; an unknown plane or an out-of-range slice.
    """
    fig = build_overlay(image, labels, label_names=label_names, reference=reference, title=title, slices=slices)
    return save_png(fig, path, DPI)


def save_png(fig: Figure, path: str | os.PathLike[str], dpi: int) -> Path:
    """Write ``fig`` as a PNG at ``dpi`` (atomically; parent folders created), then clear it."""
    final = Path(path)
    try:
        with atomic_path(final) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        fig.clear()
    return final


def build_overlay(image: Volume, labels: Volume, *, label_names: Mapping[str, int], reference: Volume | None = None,
                  title: str = "", slices: Mapping[str, int] | None = None) -> Figure:
    """The figure of :func:`overlay_figure`, not written (three axes, titled by plane)."""
    check_grid(image, labels, "labels")
    if reference is not None:
        check_grid(image, reference, "reference")
    views = plane_views(image.direction)
    index = _slice_indices(labels, views, slices)
    vmin, vmax = grey_window(image.array)
    present = {name: bool(np.any(labels.array == v)) for name, v in label_names.items()}
    in_ref = {name: bool(np.any(reference.array == v)) for name, v in label_names.items()} if reference else None
    fig = Figure(figsize=FIGSIZE_IN, layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, plane in zip(axes, PLANES, strict=True):
        view, k = views[plane], index[plane]
        spacing = (image.spacing[view.right], image.spacing[view.up])
        grey = view.cut(image.array, k).astype(np.float32)
        ax.imshow(grey, cmap="gray", vmin=vmin, vmax=vmax, origin="lower", interpolation="nearest",
                  extent=(0.0, grey.shape[1] * spacing[0], 0.0, grey.shape[0] * spacing[1]))
        for source, style, shown in ((labels, "solid", present), (reference, "dashed", in_ref)):
            if source is None or shown is None:
                continue
            cut = view.cut(source.array, k)
            for name, value in label_names.items():
                if shown[name]:
                    outline(ax, cut == value, spacing, label_colour(value), style)
        decorate(ax, view, k)
    fig.legend(handles=_legend(label_names, present, in_ref), loc="outside lower center",
               ncols=min(6, len(label_names) + (2 if reference is not None else 0)) or 1, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def grey_window(array: np.ndarray) -> tuple[float, float]:
    """1st and 99th percentile of the finite values (sampled on a regular sub-grid of at most ~2M voxels)."""
    a = np.asarray(array)
    step = max(1, math.ceil((a.size / _WINDOW_SAMPLE) ** (1 / 3)))
    sample = a[::step, ::step, ::step].astype(np.float64, copy=False).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, [1.0, 99.0]))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def labelled_centroid(labels: np.ndarray) -> np.ndarray | None:
    """Centroid (continuous array indices) of the non-zero voxels; None when there is none."""
    mask = np.asarray(labels) != 0
    total = int(np.count_nonzero(mask))
    if total == 0:
        return None
    out = np.empty(3)
    for a in range(3):
        profile = mask.sum(axis=tuple(b for b in range(3) if b != a))
        out[a] = float(np.dot(profile, np.arange(mask.shape[a]))) / total
    return out


def _slice_indices(labels: Volume, views: Mapping[str, PlaneView], slices: Mapping[str, int] | None) -> dict[str, int]:
    """Array index along each plane's normal axis: given, else through the centroid (or the centre)."""
    chosen = dict(slices or {})
    unknown = sorted(set(chosen) - set(PLANES))
    if unknown:
        raise ValueError(f"unknown plane(s) {unknown}; planes are {', '.join(PLANES)}")
    centre = labelled_centroid(labels.array)
    if centre is None:
        centre = (np.asarray(labels.shape) - 1) / 2.0
    out = {}
    for plane, view in views.items():
        n = labels.shape[view.normal]
        k = int(chosen[plane]) if plane in chosen else int(np.clip(np.rint(centre[view.normal]), 0, n - 1))
        if not 0 <= k < n:
            raise ValueError(f"{plane} slice {k} is outside 0..{n - 1} (array axis {view.normal})")
        out[plane] = k
    return out


def check_grid(image: Volume, other: Volume, what: str) -> None:
    problems = image.geometry_mismatches(other)
    if problems:
        raise ValueError(f"{what} are on another grid than the image ({'; '.join(problems)}): image {_grid(image)}, "
                         f"{what} {_grid(other)}")


def _grid(v: Volume) -> str:
    direction = np.array2string(v.direction, precision=3, separator=",").replace("\n", "")
    return (f"size {v.shape}, spacing {tuple(round(s, 4) for s in v.spacing)} mm, "
            f"origin {tuple(round(o, 3) for o in v.origin)} mm, direction {direction}")


def outline(ax: Axes, mask: np.ndarray, spacing: tuple[float, float], colour: tuple[float, float, float],
             style: str) -> None:
    """Outline a 2D mask (rows bottom-to-top) at level 0.5, contouring only its bounding box."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return
    r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, mask.shape[0])
    c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, mask.shape[1])
    crop = np.pad(mask[r0:r1, c0:c1].astype(np.float32), 1)  # closed outlines at the image border too
    x = (np.arange(c0 - 1, c1 + 1) + 0.5) * spacing[0]
    y = (np.arange(r0 - 1, r1 + 1) + 0.5) * spacing[1]
    ax.contour(x, y, crop, levels=[0.5], colors=[colour], linewidths=1.0, linestyles=style)


def decorate(ax: Axes, view: PlaneView, k: int) -> None:
    left, right, bottom, top = _EDGES[view.plane]
    for text, xy, align in ((left, (0.01, 0.5), ("left", "center")), (right, (0.99, 0.5), ("right", "center")),
                            (bottom, (0.5, 0.01), ("center", "bottom")), (top, (0.5, 0.99), ("center", "top"))):
        ax.text(*xy, text, transform=ax.transAxes, ha=align[0], va=align[1], color="yellow", fontsize=9,
                fontweight="bold")
    ax.set_title(f"{view.plane} (array axis {view.normal}, slice {k})", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(label_names: Mapping[str, int], present: Mapping[str, bool],
            in_ref: Mapping[str, bool] | None) -> list[Line2D]:
    handles = []
    for name, value in label_names.items():
        if in_ref is None:
            note = "" if present[name] else " (absent)"
        else:
            note = {(True, True): "", (False, False): " (absent)", (True, False): " (not in reference)",
                    (False, True): " (not predicted)"}[(present[name], in_ref[name])]
        handles.append(Line2D([], [], color=label_colour(value), linewidth=2.0, label=f"{name}{note}"))
    if in_ref is not None:
        handles.append(Line2D([], [], color="0.3", linestyle="solid", label="prediction"))
        handles.append(Line2D([], [], color="0.3", linestyle="dashed", label="reference"))
    return handles

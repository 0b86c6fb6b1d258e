"""The report's gallery: a few slices per test subject in each plane, prediction against reference.

One PNG per subject (:func:`gallery_figure`): rows are the sagittal, coronal and axial planes, columns
``slices_per_plane`` slices spread evenly over the extent (along that plane's normal) of everything labelled in
the prediction or the reference; each panel is the image in grey with the prediction filled in its structure's
colour (translucent) and the reference outlined in the same colour, so a miss shows as an outline with no fill
and a false positive as fill outside any outline. Colours and plane layout are those of
:mod:`mskseg.reporting.overlays`.

:func:`gallery_order` puts the worst and the best cases first: worst, best, second worst, second best, ...,
by the subject's mean score over structures (:func:`subject_scores`); :func:`gallery_name` makes file names
that sort in that order (``01-worst_sub-<id>.png``).

=====================================  ================================================================
case                                   behaviour
=====================================  ================================================================
nothing labelled in either volume      slices spread over the whole volume
a subject with no score (NaN)          ranked worst (a failed prediction is what a reader must see)
more subjects than ``max_subjects``    the worst and best halves of ``max_subjects`` (worst gets the odd one)
prediction or reference on another     ``ValueError`` naming both grids
grid
=====================================  ================================================================
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from mskseg.io.volumes import read_volume
from mskseg.reporting.overlays import (
    PLANES,
    check_grid,
    decorate,
    grey_window,
    label_colour,
    outline,
    plane_views,
    save_png,
)
from mskseg.volume import Volume

PANEL_IN = 2.6
DPI = 80
FILL_ALPHA = 0.4


@dataclass(frozen=True)
class GallerySettings:
    """``slices_per_plane`` slices in each plane per subject; at most ``max_subjects`` subjects (None: all),
    ranked by the mean ``metric`` over structures (higher is better)."""

    slices_per_plane: int = 3
    max_subjects: int | None = 24
    metric: str = "dice"

    def __post_init__(self) -> None:
        if isinstance(self.slices_per_plane, bool) or not isinstance(self.slices_per_plane, int) \
                or not 1 <= self.slices_per_plane <= 8:
            raise ValueError(f"report gallery: slices_per_plane must be a whole number in 1..8, "
                             f"got {self.slices_per_plane!r}")
        m = self.max_subjects
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ValueError(f"report gallery: max_subjects must be a whole number >= 1 or null, got {m!r}")

    @classmethod
    def from_config(cls, block: Mapping[str, object] | None) -> GallerySettings:
        """From the config's ``report.gallery`` block (unknown keys are an error naming them)."""
        block = dict(block or {})
        unknown = sorted(set(block) - {"slices_per_plane", "max_subjects", "metric"})
        if unknown:
            raise ValueError(f"report gallery: unknown setting(s) {', '.join(unknown)}")
        return cls(**block)  # type: ignore[arg-type]


def subject_scores(metrics: pd.DataFrame, metric: str = "dice") -> dict[str, float]:
    """Subject -> mean ``metric`` over its structures (the ``all`` rows left out; NaN when it has none)."""
    missing = {"subject", "structure", metric} - set(metrics.columns)
    if missing:
        raise ValueError(f"metrics table has no column(s) {', '.join(sorted(missing))}")
    rows = metrics[metrics["structure"].astype(str) != "all"]
    values = pd.to_numeric(rows[metric], errors="coerce")
    means = values.groupby(rows["subject"].astype(str)).mean()
    subjects = pd.unique(metrics["subject"].astype(str))
    return {s: float(means.get(s, math.nan)) for s in subjects}


def gallery_order(scores: Mapping[str, float], max_subjects: int | None = None) -> list[tuple[str, str]]:
    """``(subject, "worst" | "best")`` worst, best, second worst, ... (ties by subject id; NaN counts as worst)."""
    ranked = sorted(scores, key=lambda s: (-math.inf if math.isnan(scores[s]) else scores[s], s))
    n = len(ranked) if max_subjects is None else min(len(ranked), int(max_subjects))
    n_best = n // 2
    worst, best = ranked[:n - n_best], ranked[len(ranked) - n_best:][::-1]
    out: list[tuple[str, str]] = []
    for i in range(max(len(worst), len(best))):
        if i < len(worst):
            out.append((worst[i], "worst"))
        if i < len(best):
            out.append((best[i], "best"))
    return out


def gallery_name(position: int, tag: str, subject: str) -> str:
    """File name of the ``position``-th picture (1-based): sorts in gallery order."""
    return f"{position:02d}-{tag}_sub-{subject}.png"


def slice_positions(extent: tuple[int, int] | None, n_axis: int, count: int) -> list[int]:
    """``count`` indices spread evenly inside ``extent`` (first, last labelled index) or the whole axis."""
    lo, hi = extent if extent is not None else (0, n_axis - 1)
    picks = [lo + (hi - lo) * (k + 1) / (count + 1) for k in range(count)]
    return [int(np.clip(round(p), 0, n_axis - 1)) for p in picks]


def _extent(mask: np.ndarray, axis: int) -> tuple[int, int] | None:
    profile = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    return (int(profile[0]), int(profile[-1])) if profile.size else None


def build_gallery(image: Volume, prediction: Volume, reference: Volume, *, label_names: Mapping[str, int],
                  slices_per_plane: int = 3, title: str = "") -> Figure:
    """The figure of :func:`gallery_figure`, not written."""
    check_grid(image, prediction, "prediction")
    check_grid(image, reference, "reference")
    views = plane_views(image.direction)
    vmin, vmax = grey_window(image.array)
    labelled = (np.asarray(prediction.array) != 0) | (np.asarray(reference.array) != 0)
    fig = Figure(figsize=(PANEL_IN * slices_per_plane, PANEL_IN * 3 + 0.7), layout="constrained")
    axes = np.asarray(fig.subplots(3, slices_per_plane, squeeze=False))
    for row, plane in enumerate(PLANES):
        view = views[plane]
        spacing = (image.spacing[view.right], image.spacing[view.up])
        for col, k in enumerate(slice_positions(_extent(labelled, view.normal), image.shape[view.normal],
                                                slices_per_plane)):
            ax = axes[row, col]
            grey = view.cut(image.array, k).astype(np.float32)
            extent = (0.0, grey.shape[1] * spacing[0], 0.0, grey.shape[0] * spacing[1])
            ax.imshow(grey, cmap="gray", vmin=vmin, vmax=vmax, origin="lower", interpolation="nearest", extent=extent)
            pred, ref = view.cut(prediction.array, k), view.cut(reference.array, k)
            fill = np.zeros((*pred.shape, 4), np.float32)
            for value in label_names.values():
                fill[pred == value] = (*label_colour(value), FILL_ALPHA)
            ax.imshow(fill, origin="lower", interpolation="nearest", extent=extent)
            for value in label_names.values():
                outline(ax, ref == value, spacing, label_colour(value), "solid")
            decorate(ax, view, k)
    handles = [Patch(color=label_colour(v), label=name) for name, v in label_names.items()]
    handles += [Patch(facecolor="0.5", alpha=FILL_ALPHA, label="fill: prediction"),
                Line2D([], [], color="0.3", label="line: reference")]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def gallery_figure(image: Volume, prediction: Volume, reference: Volume, path: str | os.PathLike[str], *,
                   label_names: Mapping[str, int], slices_per_plane: int = 3, title: str = "") -> Path:
    """Write one subject's gallery PNG (atomically): 3 planes x ``slices_per_plane`` panels."""
    fig = build_gallery(image, prediction, reference, label_names=label_names, slices_per_plane=slices_per_plane,
                        title=title)
    return save_png(fig, path, DPI)


def write_gallery(folder: str | os.PathLike[str], *, method: str, metrics: pd.DataFrame, subjects: Sequence[str],
                  images: Sequence[str | os.PathLike[str]], predictions: Sequence[str | os.PathLike[str]],
                  references: Sequence[str | os.PathLike[str]], label_names: Mapping[str, int],
                  settings: GallerySettings) -> list[Path]:
    """Write a method's gallery into ``folder`` (replaced as a whole: written beside it, then renamed), one
    PNG per subject of :func:`gallery_order`, named by :func:`gallery_name`; returns the PNGs in order.

    ``images``, ``predictions`` and ``references`` are per subject, in the order of ``subjects``; subjects are
    read one at a time.
    """
    if not len(subjects) == len(images) == len(predictions) == len(references):
        raise ValueError(f"{len(subjects)} subjects but {len(images)} images, {len(predictions)} predictions and "
                         f"{len(references)} references")
    files = {s: (images[i], predictions[i], references[i]) for i, s in enumerate(subjects)}
    scores = subject_scores(metrics, settings.metric) if len(metrics) else {}
    ranked = gallery_order({s: scores.get(s, math.nan) for s in subjects}, settings.max_subjects)
    final = Path(folder)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    written = []
    try:
        for position, (subject, tag) in enumerate(ranked, start=1):
            image, prediction, reference = (read_volume(p) for p in files[subject])
            score = scores.get(subject, math.nan)
            title = f"{method}: sub-{subject} ({tag} case {(position + 1) // 2}), mean {settings.metric} {score:.3f}"
            name = gallery_name(position, tag, subject)
            try:
                gallery_figure(image, prediction, reference, partial / name, label_names=label_names,
                               slices_per_plane=settings.slices_per_plane, title=title)
            except ValueError as err:
                raise ValueError(f"gallery of {method}, subject {subject}: {err}") from err
            written.append(final / name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # nothing half-written is left behind
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    return written


__all__ = ["GallerySettings", "build_gallery", "gallery_figure", "gallery_name", "gallery_order", "slice_positions",
           "subject_scores", "write_gallery"]

"""The convergence of predicted shape codes towards the reference ones (the SPAR paper's Figure 3).

A latents file (``.npz``, written by :mod:`mskseg.nn.spar_regulariser`) holds, for some epochs of a
regularised training, the frozen shape encoder's codes of fixed slices: ``epoch`` ``(N,)``, ``kind``
``(N,)`` (``pred`` for the segmenter's probability maps, ``ref`` for the reference masks), ``subject``
``(N,)``, ``slice`` ``(N,)`` and ``codes`` ``(N, C)`` (each code map averaged over its positions;
dimensionless). :func:`plot_latents` projects all codes of all epochs onto one 2D principal-component
plane (PCA by SVD; the paper used t-SNE, whose embedding changes with every added point) and draws one
panel per chosen epoch, so that the predicted codes can be seen to approach the reference ones.
Numpy and matplotlib only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mskseg.io.atomic import atomic_path

__all__ = ["KEYS", "chosen_epochs", "pca_2d", "plot_latents", "read_latents"]

#: the arrays of a latents file
KEYS = ("epoch", "kind", "subject", "slice", "codes")
#: colour and marker of each kind of code
_STYLE = {"ref": ("tab:red", "o", "reference"), "pred": ("tab:blue", "^", "prediction")}


def read_latents(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a latents file (no pickled objects are read).

    Raises
    ------
    ValueError
        If the file lacks one of :data:`KEYS`, its arrays are not parallel, or it holds no codes;
        the message names the file.
    """
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in KEYS if key not in data.files]
        if missing:
            raise ValueError(f"{path}: not a latents file, it lacks {', '.join(missing)}")
        arrays = {key: data[key] for key in KEYS}
    codes = arrays["codes"]
    n = len(arrays["epoch"])
    if codes.ndim != 2 or any(len(arrays[key]) != n for key in KEYS):
        raise ValueError(f"{path}: epoch, kind, subject, slice and codes (N, C) must be parallel")
    if n == 0 or codes.shape[1] == 0:
        raise ValueError(f"{path}: holds no latent codes (no epoch was recorded)")
    return arrays


def chosen_epochs(epochs: Sequence[int], max_panels: int) -> list[int]:
    """At most ``max_panels`` of the distinct ``epochs``: the first, the last and evenly spaced ones between."""
    if max_panels < 1:
        raise ValueError(f"max_panels must be >= 1, got {max_panels}")
    distinct = sorted({int(e) for e in epochs})
    if len(distinct) <= max_panels:
        return distinct
    picks = np.unique(np.round(np.linspace(0, len(distinct) - 1, max_panels)).astype(int))
    return [distinct[i] for i in picks]


def pca_2d(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The codes' coordinates ``(N, 2)`` on their first two principal components and the fractions of the total
    variance those explain ``(2,)`` (a missing component: zeros)."""
    centred = np.asarray(codes, dtype=np.float64) - np.mean(codes, axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    coords = np.zeros((len(centred), 2))
    k = min(2, vt.shape[0])
    coords[:, :k] = centred @ vt[:k].T
    variance = singular**2
    fractions = np.zeros(2)
    if variance.sum() > 0:
        fractions[:k] = variance[:k] / variance.sum()
    return coords, fractions


def plot_latents(npz_path: str | os.PathLike, png_path: str | os.PathLike, *, title: str = "",
                 max_panels: int = 6) -> Path:
    """Draw the codes of a latents file: one PCA plane (fitted on every epoch's codes), one panel per epoch.

    Parameters
    ----------
    npz_path : path
        The latents file (see the module notes).
    png_path : path
        The PNG to write (atomically, 120 dpi).
    title : str
        The figure's title.
    max_panels : int
        At most this many epochs are drawn: the first, the last and evenly spaced ones between
        (:func:`chosen_epochs`).

    Returns
    -------
    Path
        ``png_path``.

    Raises
    ------
    ValueError
        For a file that is not a latents file or holds no codes, or ``max_panels`` < 1.
    """
    arrays = read_latents(npz_path)
    epochs = chosen_epochs(arrays["epoch"], max_panels)
    coords, fractions = pca_2d(arrays["codes"])
    cols = min(len(epochs), 3)
    rows = math.ceil(len(epochs) / cols)
    fig = Figure(figsize=(3.6 * cols, 3.4 * rows + (0.4 if title else 0.0)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)).ravel()
    for ax, epoch in zip(axes, epochs, strict=False):
        for kind, (colour, marker, label) in _STYLE.items():
            rows_of = (arrays["epoch"] == epoch) & (arrays["kind"] == kind)
            ax.scatter(coords[rows_of, 0], coords[rows_of, 1], s=14, c=colour, marker=marker, alpha=0.7,
                       label=f"{label} ({int(rows_of.sum())})", linewidths=0)
        ax.set_title(f"epoch {epoch}")
        ax.legend(loc="best", fontsize="small")
    for ax in axes[len(epochs):]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel(f"PC2 ({100 * fractions[1]:.0f}% of variance)")
    for ax in axes[(rows - 1) * cols:]:
        ax.set_xlabel(f"PC1 ({100 * fractions[0]:.0f}% of variance)")
    if title:
        fig.suptitle(title)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return Path(png_path)

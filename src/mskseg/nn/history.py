"""The per-epoch training history: a table, its CSV file and a learning-curve figure.

One row per epoch with the columns of :data:`COLUMNS` (losses are the loss function's units,
``lr`` the learning rate used during the epoch, ``seconds`` the wall time of the epoch including
validation, split into ``train_seconds`` and ``val_seconds``, ``samples_per_s`` the training
throughput), followed by any other metrics the validation function returned, in the order they
first appear. Missing values are NaN (e.g. the validation columns, ``val_seconds`` included, of an
epoch without validation).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mskseg.io.atomic import atomic_path

COLUMNS = ("epoch", "train_loss", "val_loss", "val_dice", "lr", "seconds", "train_seconds", "val_seconds",
           "samples_per_s")
#: the columns measured by the clock: the only ones in which two runs with the same weights differ
TIMING = ("seconds", "train_seconds", "val_seconds", "samples_per_s")


def history_frame(rows: Sequence[Mapping[str, float]] | pd.DataFrame) -> pd.DataFrame:
    """The rows as a table: :data:`COLUMNS` first (NaN where absent), then the other keys.

    An empty list gives an empty table with the :data:`COLUMNS`; ``epoch`` is an integer column.
    """
    if isinstance(rows, pd.DataFrame):
        rows = rows.to_dict("records")
    extra: list[str] = []
    for row in rows:
        extra.extend(key for key in row if key not in COLUMNS and key not in extra)
    columns = [*COLUMNS, *extra]
    frame = pd.DataFrame([{key: row.get(key, math.nan) for key in columns} for row in rows], columns=columns)
    frame["epoch"] = frame["epoch"].astype("int64")
    for column in columns[1:]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def write_history(rows: Sequence[Mapping[str, float]] | pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the history as CSV (one line per epoch, header :data:`COLUMNS` + extras) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        history_frame(rows).to_csv(tmp, index=False)
    return path


def _finite(values: pd.Series) -> bool:
    return bool(np.isfinite(values.to_numpy(dtype=float)).any())


def _points(history: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """The epochs with a finite value of ``column`` and those values (validation every k epochs: a line
    through the validated epochs)."""
    values = history[column].to_numpy(dtype=float)
    finite = np.isfinite(values)
    return history["epoch"].to_numpy()[finite], values[finite]


def _marker(history: pd.DataFrame, column: str) -> str | None:
    """Points where the curve has fewer than two values or where epochs without a value lie between."""
    finite = np.isfinite(history[column].to_numpy(dtype=float))
    return "o" if finite.sum() < 2 or not finite.all() else None


def _guess_best(history: pd.DataFrame) -> int | None:
    """The best epoch by validation Dice (highest), else validation loss, else training loss (lowest)."""
    for column, pick in (("val_dice", "idxmax"), ("val_loss", "idxmin"), ("train_loss", "idxmin")):
        if column in history and _finite(history[column]):
            return int(history.loc[getattr(history[column], pick)(), "epoch"])
    return None


def plot_history(history: pd.DataFrame, path: str | os.PathLike, *, title: str = "",
                 best_epoch: int | None = None) -> Path:
    """Save the learning curves as a PNG (atomically): losses (left) and validation Dice (right) per epoch.

    Parameters
    ----------
    history : DataFrame
        As :func:`history_frame` returns (at least ``epoch``; other columns may be absent or NaN).
    path : path
        The PNG file to write.
    title : str
        Figure title.
    best_epoch : int, optional
        The epoch to mark with a vertical line; by default the epoch with the highest validation
        Dice, else the lowest validation loss, else the lowest training loss.

    A single epoch is drawn as points, and so are the validated epochs of a run that validates every
    k epochs (joined by a line); a panel without any finite value says so instead of a curve.
    Uses matplotlib's Agg canvas directly (no pyplot state, no display needed).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    history = history_frame(history)
    path = Path(path)
    if best_epoch is None and len(history):
        best_epoch = _guess_best(history)
    fig = Figure(figsize=(9.0, 3.6))
    FigureCanvasAgg(fig)
    loss_ax, dice_ax = fig.subplots(1, 2)
    drawn = False
    for column, label in (("train_loss", "training"), ("val_loss", "validation")):
        if _finite(history[column]):
            loss_ax.plot(*_points(history, column), marker=_marker(history, column), label=label)
            drawn = True
    if drawn:
        loss_ax.legend(loc="best")
    else:
        loss_ax.text(0.5, 0.5, "no loss values", ha="center", va="center", transform=loss_ax.transAxes)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    if _finite(history["val_dice"]):
        dice_ax.plot(*_points(history, "val_dice"), marker=_marker(history, "val_dice"), color="tab:green")
    else:
        dice_ax.text(0.5, 0.5, "no validation Dice", ha="center", va="center", transform=dice_ax.transAxes)
    dice_ax.set(xlabel="epoch", ylabel="Dice", title="validation Dice")
    if best_epoch is not None:
        for ax in (loss_ax, dice_ax):
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best_epoch}")
        dice_ax.legend(loc="best")
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.82 if title else 0.9, wspace=0.25)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def epoch_line(row: Mapping[str, float], epochs: int, better: bool) -> str:
    """The log line of an epoch's history row (of ``epochs``), e.g. ``epoch 3/40: train_loss 0.41, val_dice 0.9,
    lr 1e-05, 12.3 s (training 10.1 s, validation 2.2 s), 45.6 samples/s (best)``; times in seconds."""
    skip = ("epoch", "lr", "seconds", "train_seconds", "val_seconds", "samples_per_s")
    values = [f"{key} {value:.4g}" for key, value in row.items() if key not in skip and math.isfinite(value)]
    split = f"training {row['train_seconds']:.1f} s, " + (
        f"validation {row['val_seconds']:.1f} s" if math.isfinite(row["val_seconds"]) else "no validation")
    values += [f"lr {row['lr']:.3g}", f"{row['seconds']:.1f} s ({split})", f"{row['samples_per_s']:.1f} samples/s"]
    return f"epoch {row['epoch']}/{epochs}: " + ", ".join(values) + (" (best)" if better else "")

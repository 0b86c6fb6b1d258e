"""Training-state files that survive a kill at any moment, and the files of each finished epoch.

:func:`save_state` writes with ``torch.save`` to a temporary file in the destination folder,
flushes it to disk and renames it over the destination (:func:`os.replace`), so the destination
always holds either the previous complete state or the new one. :func:`load_state` reads with
``torch.load(weights_only=True)`` - tensors, dicts, lists, tuples, strings and numbers only, no
code runs - and turns every failure into a :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mskseg.io.atomic import abandoned, atomic_path
from mskseg.nn.history import history_frame, plot_history, write_history
from mskseg.nn.weights import save_weights

#: the files :func:`mskseg.nn.engine.train` keeps in its work folder
STATE, BEST, LAST, HISTORY, CURVE, TENSORBOARD = ("last.pt", "best_weights.pt", "last_weights.pt", "history.csv",
                                                  "curve.png", "tensorboard")
#: what a training state (``last.pt``) must hold
STATE_KEYS = ("fingerprint", "epoch", "model", "optimizer", "scheduler", "history", "best_value", "best_epoch",
              "bad_epochs", "finished", "stopped_early")


class CheckpointError(Exception):
    """A checkpoint file exists but cannot be used (corrupt, truncated, not a training state)."""


def save_state(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (tensors, dicts, lists, tuples, str, int, float, bool, None) atomically.

    The file is written to a temporary name in the same folder (created if needed), flushed and
    fsync-ed, then moved into place; if anything fails, ``path`` is unchanged and the temporary
    file removed. Returns ``path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a state written by :func:`save_state`, tensors mapped to the CPU.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CheckpointError
        If the file cannot be read with ``weights_only=True`` or does not hold a dict; the message
        names the file and says to delete it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt input raises many types (UnpicklingError, RuntimeError, EOFError ...)
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"cannot read checkpoint {path}: it is corrupt or not a training state; delete it to "
                              f"start the training afresh ({type(exc).__name__}: {detail})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a training state dict; "
                              "delete it to start the training afresh")
    return state


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed writer left in ``folder`` (:func:`mskseg.io.atomic.abandoned`:
    names starting ``.tmp-`` whose writing process no longer runs; another live writer's are kept).

    Returns the removed paths; a missing folder is no error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for item in folder.iterdir():
        if item.is_file() and abandoned(item.name):
            item.unlink(missing_ok=True)
            removed.append(item)
    return removed


def clear_outputs(workdir: str | os.PathLike) -> None:
    """Delete the training files of :data:`STATE` ... :data:`TENSORBOARD` in ``workdir`` (nothing else)."""
    workdir = Path(workdir)
    for name in (STATE, BEST, LAST, HISTORY, CURVE):
        (workdir / name).unlink(missing_ok=True)
    if (workdir / TENSORBOARD).is_dir():
        shutil.rmtree(workdir / TENSORBOARD)


def previous_state(workdir: str | os.PathLike, fingerprint: str, logger: logging.Logger) -> dict | None:
    """The training state in ``workdir/last.pt`` if it belongs to the run ``fingerprint``.

    Returns None, after deleting the old training files (:func:`clear_outputs`), when there is no
    ``last.pt`` or it holds another run (a warning is logged then).

    Raises
    ------
    CheckpointError
        If ``last.pt`` is unreadable or lacks parts of a training state (the message names it).
    """
    workdir = Path(workdir)
    path = workdir / STATE
    if not path.exists():
        clear_outputs(workdir)
        return None
    state = load_state(path)
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; delete it to start the training afresh")
    if state["fingerprint"] != fingerprint:
        logger.warning("%s belongs to a run with other settings, model or training set; starting afresh "
                       "(the old training files in %s are deleted)", path, workdir)
        clear_outputs(workdir)
        return None
    return state


def write_epoch(workdir: Path, model: nn.Module, state: dict, better: bool, writer: Any, *, plot: bool) -> None:
    """Write the epoch's files, ``last.pt`` last (a kill before it repeats the epoch on resume)."""
    if better:
        save_weights(model, workdir / BEST)
    save_weights(model, workdir / LAST)
    frame = history_frame(state["history"])
    write_history(frame, workdir / HISTORY)
    if plot:
        plot_history(frame, workdir / CURVE, title=f"{workdir.name}: best epoch {state['best_epoch']}",
                     best_epoch=state["best_epoch"])
    if writer is not None:
        last = state["history"][-1]
        for key, value in last.items():
            if key != "epoch" and math.isfinite(value):
                writer.add_scalar(key, value, global_step=int(last["epoch"]))
        writer.flush()
    save_state(state, workdir / STATE)

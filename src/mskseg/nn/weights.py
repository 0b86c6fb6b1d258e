"""Saving and loading model weights as local state-dict files (never downloaded).

* :func:`save_weights` -- write a model's state dict atomically (temporary file in the same folder,
  then :func:`os.replace`), so a crash never leaves a half-written weights file behind;
* :func:`read_state_dict` -- read such a file with ``torch.load(..., weights_only=True)`` (no
  arbitrary code runs), with errors that name the path;
* :func:`load_weights` -- load a file into a model, checking keys and shapes first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from mskseg.io.atomic import atomic_path

#: how many offending keys an error message lists
_SHOWN = 5


class WeightsFileError(ValueError):
    """A weights file exists but cannot be read as a state dict (corrupt, truncated, wrong content)."""


class LoadResult(NamedTuple):
    """Keys of the model absent from the file, and keys of the file absent from the model."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]


def _few(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" (and {len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


def save_weights(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model.state_dict()`` (moved to the CPU) to ``path`` atomically; return the path.

    The parent folder is created if needed. The file is first written to a temporary file in the
    same folder and then renamed over ``path``, so ``path`` holds either the old or the new weights.
    Saved through an open file, so the archive inside is named ``archive`` whatever the file's name:
    equal weights give byte-identical files.
    """
    path = Path(path)
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(state, handle)
    return path


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict (tensors on the CPU) from a local file.

    A checkpoint ``{"state_dict": {...}, ...}`` is unwrapped, and a ``module.`` prefix that every
    key carries (``nn.DataParallel``) is removed.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an existing file.
    WeightsFileError
        If the file cannot be unpickled with ``weights_only=True`` or does not hold a mapping of
        names to tensors; the message names the path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt input (UnpicklingError, RuntimeError, ...)
        raise WeightsFileError(f"cannot read weights file {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                               for k, v in obj.items()):
        raise WeightsFileError(f"weights file {path} does not hold a state dict (a mapping of names to tensors); "
                               f"found {type(obj).__name__}")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def load_weights(model: nn.Module, path: str | os.PathLike, *, strict: bool = True) -> LoadResult:
    """Load the state dict in ``path`` into ``model`` in place.

    Parameters
    ----------
    model : nn.Module
        The network, built with the same architecture options as the saved one.
    path : path
        A local file written by :func:`save_weights` (or any ``torch.save``-d state dict).
    strict : bool
        If true, the file's keys must be exactly the model's; if false, missing and unexpected
        keys are skipped (and returned). Shapes of shared keys must always agree.

    Returns
    -------
    LoadResult
        The model keys the file lacked and the file keys the model lacks.

    Raises
    ------
    FileNotFoundError, WeightsFileError
        See :func:`read_state_dict`.
    ValueError
        On shape mismatches, or (``strict``) missing/unexpected keys, naming the first few; the
        model is unchanged then.
    """
    state = read_state_dict(path)
    own = model.state_dict()
    mismatched = [f"{k} (file {tuple(v.shape)}, model {tuple(own[k].shape)})"
                  for k, v in state.items() if k in own and v.shape != own[k].shape]
    if mismatched:
        raise ValueError(f"weights in {path} do not fit {type(model).__name__}: shape mismatch for "
                         f"{_few(mismatched)}")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if strict and (missing or unexpected):
        parts = ([f"missing {_few(missing)}"] if missing else []) + (
            [f"unexpected {_few(unexpected)}"] if unexpected else [])
        raise ValueError(f"weights in {path} do not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return LoadResult(tuple(missing), tuple(unexpected))

"""The steps the training and prediction rules run: load a fold's subjects, train (resumably),
export the model with its description and learning curve, predict a subject.

Each training job keeps its checkpoints in a working folder named after a fingerprint of its
inputs (names, sizes, modification times) and settings: a job killed and re-run on the same
inputs resumes from its last checkpoint; changed inputs or settings start a fresh run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mskseg.io.atomic import atomic_path
from mskseg.nn.data import Case, decode_labels, load_case
from mskseg.nn.engine import TrainResult
from mskseg.nn.history import plot_history, write_history
from mskseg.nn.method import MethodSpec
from mskseg.nn.recipe import ModelInfo, train_view
from mskseg.nn.transfer import ROUND_COLUMNS, finetune_rounds
from mskseg.volume import Volume


def load_cases(names: Sequence[str], images: Sequence[str], masks: Sequence[str] | None = None,
               weights: Sequence[str] | None = None, *, label_values: Sequence[int]) -> list[Case]:
    """Cases of subjects ``names`` from parallel lists of files (masks/weights optional)."""
    if len(images) != len(names) or (masks and len(masks) != len(names)) or (weights and len(weights) != len(names)):
        raise ValueError(f"{len(names)} subjects but {len(images)} images, {len(masks or [])} masks, "
                         f"{len(weights or [])} weight maps")
    cases = []
    for i, name in enumerate(names):
        case, _ = load_case(name, Path(images[i]), mask=Path(masks[i]) if masks else None,
                            weight=Path(weights[i]) if weights else None, label_values=label_values)
        cases.append(case)
    return cases


def input_fingerprint(paths: Sequence[str | os.PathLike], settings: Mapping[str, Any]) -> str:
    """A short hash of the files' names, sizes and modification times and of ``settings``."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in paths:
        st = os.stat(path)
        h.update(f"{Path(path).name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def run_training(spec: MethodSpec, view: str, train_cases: Sequence[Case], val_cases: Sequence[Case],
                 label_map: Mapping[str, int], workdir: str | os.PathLike, *,
                 init_weights: str | os.PathLike | None = None, logger: logging.Logger | None = None
                 ) -> tuple[TrainResult, ModelInfo, pd.DataFrame]:
    """Train one view (in interactive rounds when the method has them); the rounds table has one
    row per round (a single row without collision counts for a plain training)."""
    label_values = list(label_map.values())
    if spec.interactive is not None:
        return finetune_rounds(spec, view, train_cases, val_cases, label_values, label_map, workdir,
                               init_weights=init_weights, logger=logger)
    result, info = train_view(spec, view, train_cases, val_cases, label_values, workdir, init_weights=init_weights,
                              logger=logger)
    row = {"round": 1, "n_train": len(train_cases), "train_subjects": " ".join(c.name for c in train_cases),
           "predicted": "", "collisions": np.nan, "collisions_per_subject": np.nan, "dice": result.best_value
           if spec.train.get("monitor", "val_dice") == "val_dice" and val_cases else np.nan,
           "best_epoch": result.best_epoch, "epochs_run": result.epochs_run}
    return result, info, pd.DataFrame([row], columns=list(ROUND_COLUMNS))


def export_model(result: TrainResult, info: ModelInfo, *, model: str | os.PathLike, info_path: str | os.PathLike,
                 history: str | os.PathLike, curve: str | os.PathLike | None = None,
                 rounds: pd.DataFrame | None = None, rounds_path: str | os.PathLike | None = None,
                 title: str = "") -> None:
    """Copy the best weights and write the model description, history, learning curve and rounds table."""
    with atomic_path(model) as tmp:
        shutil.copyfile(result.best_weights, tmp)
    info.write(info_path)
    write_history(result.history.to_dict("records"), history)
    if curve is not None:
        plot_history(result.history, curve, title=title)
    if rounds_path is not None and rounds is not None:
        with atomic_path(rounds_path) as tmp:
            rounds.to_csv(tmp, index=False)


def prediction_volume(probs: np.ndarray, image: Volume, label_values: Sequence[int]) -> Volume:
    """The label map of probabilities ``(K, X, Y, Z)`` on the image's geometry (label values restored)."""
    classes = probs.argmax(axis=0)
    return image.with_array(decode_labels(classes, label_values))

"""The training runs the rules start: one function per rule, from a fold's files to the exported model.

* :func:`train_fold` -- ``train_model``: one view's model of a method on a fold, plainly or in the
  hip paper's interactive rounds, from scratch or from pre-trained weights;
* :func:`pretrain_fold` -- ``pretrain_model``: the same on the poor labels (hip paper);
* :func:`fit_fold_fusion` -- ``fit_fusion``: the three-plane fusion weights on the validation subjects.

Each training job keeps its checkpoints in a working folder named after a fingerprint of its
inputs' names and contents (SHA-256, :class:`mskseg.io.checksums.Digests`) and of its settings: a job
killed and re-run on the same inputs resumes from its last checkpoint, also after the inputs were
copied or touched; changed inputs or settings start a fresh run. Its subjects' arrays are written
once into the folder's ``cache/`` and read from there a slice or patch at a time
(:mod:`mskseg.nn.cache`): the job's memory does not grow with the number of subjects. The cache is
reused by a resumed job and deleted once the model is exported. A job holds an exclusive lock on its
work folder while it trains (:func:`mskseg.io.locks.folder_lock`): a second job for the same model, such
as one started by a new run while an orphan of a killed run still trains, waits for it and then resumes
from (or returns) what it finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mskseg.io.atomic import atomic_path
from mskseg.io.checksums import Digests, file_sha256
from mskseg.io.locks import folder_lock
from mskseg.io.tables import write_table
from mskseg.nn import device as dev
from mskseg.nn.cache import cache_cases, remove_cache
from mskseg.nn.data import Case, load_case
from mskseg.nn.engine import TrainResult
from mskseg.nn.fit import train_view
from mskseg.nn.fusion import FusionFit, fit_fusion_streamed, write_fusion_weights
from mskseg.nn.history import plot_history, write_history
from mskseg.nn.method import PLANE_VIEWS, MethodSpec
from mskseg.nn.model_info import ModelInfo, load_trained
from mskseg.nn.predict import predict_view
from mskseg.nn.transfer import ROUND_COLUMNS, finetune_rounds, write_round_weights

PathLike = str | os.PathLike


@dataclass(frozen=True)
class ModelFiles:
    """Where an exported model goes: weights, description, per-epoch history (and learning curve, rounds table,
    the weights of every round before the last)."""

    model: PathLike
    info: PathLike
    history: PathLike
    curve: PathLike | None = None
    rounds: PathLike | None = None
    round_weights: PathLike | None = None


def load_cases(names: Sequence[str], images: Sequence[PathLike], masks: Sequence[PathLike] | None = None,
               weights: Sequence[PathLike] | None = None, *, label_values: Sequence[int]) -> list[Case]:
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


def input_fingerprint(paths: Sequence[PathLike], settings: Mapping[str, Any], digests: Digests | None = None) -> str:
    """A short hash of the files' names and contents (SHA-256) and of ``settings``.

    ``digests``: a cache of the files' digests (read again only for a file whose size or modification
    time changed); without one every file is read.
    """
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    values = digests.of(paths) if digests is not None else [file_sha256(p) for p in paths]
    for path, value in zip(paths, values, strict=True):
        h.update(f"{Path(path).name}:{value};".encode())
    return h.hexdigest()[:16]


def run_training(spec: MethodSpec, view: str, train_cases: Sequence[Case], val_cases: Sequence[Case],
                 label_map: Mapping[str, int], workdir: PathLike, *, init_weights: PathLike | None = None,
                 logger: logging.Logger | None = None) -> tuple[TrainResult, ModelInfo, pd.DataFrame, list[Path]]:
    """Train one view (in interactive rounds when the method has them); the rounds table has one
    row per round (a single row without collision counts for a plain training); the last item lists
    each round's best weights."""
    label_values = list(label_map.values())
    if spec.interactive is not None:
        return finetune_rounds(spec, view, train_cases, val_cases, label_values, label_map, workdir,
                               init_weights=init_weights, logger=logger)
    result, info = train_view(spec, view, train_cases, val_cases, label_values, workdir, init_weights=init_weights,
                              logger=logger)
    dice = result.best_value if spec.train.monitor == "val_dice" and val_cases else np.nan
    row = {"round": 1, "n_train": len(train_cases), "train_subjects": " ".join(c.name for c in train_cases),
           "predicted": "", "collisions": np.nan, "collisions_per_subject": np.nan, "dice": dice,
           "best_epoch": result.best_epoch, "epochs_run": result.epochs_run}
    return result, info, pd.DataFrame([row], columns=list(ROUND_COLUMNS)), [Path(result.best_weights)]


def export_model(result: TrainResult, info: ModelInfo, files: ModelFiles, *, rounds: pd.DataFrame | None = None,
                 round_weights: Sequence[PathLike] = (), title: str = "") -> None:
    """Copy the best weights and write the model description, history, learning curve, rounds table and the
    weights of the rounds before the last (:func:`mskseg.nn.transfer.write_round_weights`)."""
    with atomic_path(files.model) as tmp:
        shutil.copyfile(result.best_weights, tmp)
    info.write(files.info)
    write_history(result.history.to_dict("records"), files.history)
    if files.curve is not None:
        plot_history(result.history, files.curve, title=title)
    if files.rounds is not None and rounds is not None:
        write_table(rounds, files.rounds)
    if files.round_weights is not None:
        write_round_weights(round_weights or [result.best_weights], files.round_weights)


#: the digest cache of a job's work folder
DIGESTS = "digests.json"
#: the case cache in a run's folder (mskseg.nn.cache)
CACHE = "cache"


def cached_cases(run_dir: Path, view: str, names: Sequence[str], images: Sequence[PathLike],
                 masks: Sequence[PathLike] | None, weights: Sequence[PathLike] | None, label_values: Sequence[int],
                 logger: logging.Logger) -> list[Case]:
    """Cases whose arrays are read from the run's cache ``run_dir/cache`` (slices of ``view`` contiguous)."""
    return cache_cases(run_dir / CACHE, names, images, masks, weights, label_values=label_values,
                       plane=view if view in PLANE_VIEWS else None, foreground=view == "3d", logger=logger)


def run_folder(workdir: PathLike, prefix: str, inputs: Sequence[PathLike], key: Mapping[str, Any]) -> Path:
    """The run's folder in ``workdir``: ``prefix`` + the fingerprint of the input files and ``key``."""
    return Path(workdir) / (prefix + input_fingerprint(inputs, key, Digests(Path(workdir) / DIGESTS)))


def train_fold(spec: MethodSpec, view: str, labels: Mapping[str, int], subjects: Mapping[str, Sequence[str]],
               files: Mapping[str, Sequence[PathLike]], workdir: PathLike, outputs: ModelFiles, *,
               pretrained: PathLike | None = None, title: str = "", logger: logging.Logger | None = None
               ) -> TrainResult:
    """Train one view's model of ``spec`` on a fold and export it.

    ``subjects``: ``train`` and ``val`` subject names; ``files``: ``<role>_image``, ``<role>_mask`` and, for a
    weight-map loss, ``<role>_weight`` lists in the same order; ``pretrained``: weights to start from.
    """
    logger = logger or logging.getLogger(__name__)
    values = list(labels.values())
    inputs = [p for key in sorted(files) for p in files[key]] + ([pretrained] if pretrained else [])
    with folder_lock(workdir, logger=logger):
        run_dir = run_folder(workdir, "", inputs, {"spec": repr(spec), "labels": dict(labels), "view": view,
                                                  "subjects": {k: list(v) for k, v in subjects.items()}})
        cases = {role: cached_cases(run_dir, view, subjects[role], files[f"{role}_image"], files[f"{role}_mask"],
                               files.get(f"{role}_weight") or None, values, logger) for role in ("train", "val")}
        logger.info("method %s, view %s: %d training and %d validation subjects; checkpoints in %s", spec.name,
                    view, len(cases["train"]), len(cases["val"]), run_dir)
        result, info, rounds, weights = run_training(spec, view, cases["train"], cases["val"], labels, run_dir,
                                                     init_weights=pretrained, logger=logger)
        export_model(result, info, outputs, rounds=rounds, round_weights=weights, title=title)
        remove_cache(run_dir / CACHE)
    logger.info("best epoch %d (%s %.4f) of %d; model %s", result.best_epoch, spec.train.monitor, result.best_value,
                result.epochs_run, outputs.model)
    return result


def pretrain_fold(spec: MethodSpec, view: str, labels: Mapping[str, int], subjects: Sequence[str],
                  images: Sequence[PathLike], poor_masks: Sequence[PathLike], workdir: PathLike,
                  outputs: ModelFiles, *, logger: logging.Logger | None = None) -> TrainResult:
    """Pre-train one view's model of ``spec`` on the poor labels of ``subjects`` (hip paper) and export it."""
    logger = logger or logging.getLogger(__name__)
    pre = spec.pretraining()
    values = list(labels.values())
    with folder_lock(workdir, logger=logger):
        run_dir = run_folder(workdir, "pretrain-", [*images, *poor_masks],
                           {"spec": repr(pre), "labels": dict(labels), "view": view})
        cases = cached_cases(run_dir, view, subjects, images, poor_masks, None, values, logger)
        logger.info("method %s, view %s: pre-training on the poor labels of %d subjects; checkpoints in %s",
                    spec.name, view, len(cases), run_dir)
        result, info = train_view(pre, view, cases, [], values, run_dir, logger=logger)
        export_model(result, info, outputs)
        remove_cache(run_dir / CACHE)
    logger.info("pre-trained for %d epochs; best train_loss %.4f at epoch %d", result.epochs_run, result.best_value,
                result.best_epoch)
    return result


def fit_fold_fusion(spec: MethodSpec, labels: Mapping[str, int], images: Sequence[PathLike],
                    masks: Sequence[PathLike], models: Sequence[PathLike], infos: Sequence[PathLike], *,
                    weights: PathLike, grid: PathLike) -> tuple[list[str], FusionFit]:
    """The three-plane fusion weights of a fold (Luan et al.), fitted on its validation subjects; writes the
    weights and the grid of every tried weight vector. Returns the views and the fit.

    One subject at a time is read and predicted (the memory holds one subject's views, not the fold's)."""
    if not images:
        raise ValueError(f"method {spec.name}: the fold has no validation subjects to fit the fusion weights on")
    if len(masks) != len(images):
        raise ValueError(f"{len(images)} validation images but {len(masks)} masks")
    device = dev.resolve_device(spec.inference.device)
    precision = dev.resolve_precision(device, spec.inference.precision)
    trained = [load_trained(m, i, device) for m, i in zip(models, infos, strict=True)]

    def subjects() -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        for image, mask in zip(images, masks, strict=True):
            case, _ = load_case(Path(image).name, Path(image), mask=Path(mask), label_values=list(labels.values()))
            probs = [predict_view(model, info, case, device=device, precision=precision,
                                  channels_last=dev.use_channels_last(device), batch_size=spec.inference.batch_size)
                     for model, info in trained]
            yield probs, case.target
            del case, probs

    fit = fit_fusion_streamed(subjects(), len(trained), step=spec.fusion_step)
    views = [info.view for _, info in trained]
    write_fusion_weights(weights, views, fit)
    write_table(fit.grid, grid)
    return views, fit


__all__ = ["CACHE", "ModelFiles", "cached_cases", "export_model", "fit_fold_fusion", "input_fingerprint", "load_cases",
           "pretrain_fold", "run_folder", "run_training", "train_fold"]

"""Transfer learning and interactive fine-tuning rounds (Xu et al., hip CT).

The model is pre-trained on poor labels, then fine-tuned with every layer trainable (the final
classifier included, since the classes are the same) on a few accurately labelled subjects. In
each interactive round the model so far predicts the next unseen subjects; an expert corrects
them (here: their accurate labels are taken) and they join the fine-tuning set. The label-free
collision count |E| of those predictions (hip paper eq. 2) is logged after every round: it
tells when further rounds stop paying off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mskseg.io.atomic import atomic_path
from mskseg.metrics.evaluate import EvaluationSettings, evaluate_arrays
from mskseg.nn import device as dev
from mskseg.nn.data import Case
from mskseg.nn.engine import TrainResult
from mskseg.nn.fit import train_view
from mskseg.nn.method import MethodSpec, interactive_split
from mskseg.nn.model_info import ModelInfo
from mskseg.nn.predict import predict_view
from mskseg.nn.weights import load_weights, read_state_dict

ROUND_COLUMNS = ("round", "n_train", "train_subjects", "predicted", "collisions", "collisions_per_subject",
                 "dice", "best_epoch", "epochs_run")


def collisions(labels: np.ndarray, spacing: Sequence[float], label_map: Mapping[str, int], eps_mm: float) -> int:
    """|E|: predicted voxels within ``eps_mm`` of a voxel of another predicted class (summed over classes)."""
    settings = EvaluationSettings(gap_eps_mm=None, collision_eps_mm=eps_mm, fov_axis=None)
    table = evaluate_arrays(labels, labels, spacing, label_map, settings).table
    return int(table.loc[table["structure"] != "all", "collisions"].sum())


def _structure_dice(pred: np.ndarray, target: np.ndarray, n_classes: int) -> float:
    scores = []
    for c in range(1, n_classes):
        p, t = pred == c, target == c
        denom = int(p.sum()) + int(t.sum())
        if denom:
            scores.append(2.0 * np.logical_and(p, t).sum() / denom)
    return float(np.mean(scores)) if scores else float("nan")


def finetune_rounds(spec: MethodSpec, view: str, train_cases: Sequence[Case], val_cases: Sequence[Case],
                    label_values: Sequence[int], label_map: Mapping[str, int], workdir: str | os.PathLike, *,
                    init_weights: str | os.PathLike | None, logger: logging.Logger | None = None
                    ) -> tuple[TrainResult, ModelInfo, pd.DataFrame, list[Path]]:
    """Fine-tune in the method's interactive rounds; returns the last round's result, the rounds table and
    every round's best weights (files in ``workdir``, in round order).

    Round r trains on the first ``rounds[r]`` training cases (in the given order), starting from the
    previous round's best weights (round 1: ``init_weights``). It then predicts the cases the next
    round adds, or after the last round the validation cases, and records their collision count
    and (the labels being known here) their Dice.
    """
    logger = logger or logging.getLogger(__name__)
    if spec.interactive is None:
        raise ValueError(f"method {spec.name!r} has no interactive block")
    counts = interactive_split(spec.interactive.rounds, len(train_cases))
    if counts != list(spec.interactive.rounds):
        logger.warning("rounds %s capped to the %d training subjects: %s", list(spec.interactive.rounds),
                       len(train_cases), counts)
    eps = spec.interactive.collision_eps_mm
    rows, weights = [], []
    start = init_weights
    result = info = None
    for r, n in enumerate(counts, start=1):
        subset = list(train_cases[:n])
        result, info = train_view(spec, view, subset, val_cases, label_values, Path(workdir) / f"round-{r}",
                                  init_weights=start, logger=logger)
        start = result.best_weights
        weights.append(Path(result.best_weights))
        unseen = list(train_cases[n:counts[r]]) if r < len(counts) else list(val_cases)
        n_coll, dices = [], []
        if unseen:
            model = info.build()
            load_weights(model, result.best_weights)
            device = dev.resolve_device(spec.inference.device)
            model.to(device).eval()
            for subject in unseen:
                case = replace(subject, weight=None, foreground=None).load()  # in memory, one at a time
                probs = predict_view(model, info, case, device=device,
                                     precision=dev.resolve_precision(device, spec.inference.precision),
                                     channels_last=dev.use_channels_last(device),
                                     batch_size=spec.inference.batch_size)
                pred = probs.argmax(axis=0)
                labels = np.asarray(label_values)[np.maximum(pred - 1, 0)] * (pred > 0)
                n_coll.append(collisions(labels.astype(np.int32), case.spacing, label_map, eps))
                if case.target is not None:
                    dices.append(_structure_dice(pred, case.target, len(label_values) + 1))
            del model
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        row = {"round": r, "n_train": n, "train_subjects": " ".join(c.name for c in subset),
               "predicted": " ".join(c.name for c in unseen), "collisions": int(np.sum(n_coll)) if n_coll else 0,
               "collisions_per_subject": float(np.mean(n_coll)) if n_coll else float("nan"),
               "dice": float(np.mean(dices)) if dices else float("nan"), "best_epoch": result.best_epoch,
               "epochs_run": result.epochs_run}
        logger.info("round %d: fine-tuned on %d subjects; |E| = %s on %s (Dice %.4f)", r, n, row["collisions"],
                    row["predicted"] or "-", row["dice"])
        rows.append(row)
    return result, info, pd.DataFrame(rows, columns=list(ROUND_COLUMNS)), weights


#: the prefix of round ``r``'s keys in a rounds weights file (:func:`write_round_weights`)
ROUND_PREFIX = "round-{}."


def write_round_weights(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> None:
    """Write the best weights of every round but the last (that one is the exported model) into one
    state-dict file, round ``r``'s keys prefixed ``round-r.``; empty for a training of one round.
    Written atomically through an open file: equal weights give byte-identical files."""
    state = {}
    for r, path in enumerate(list(paths)[:-1], start=1):
        state.update({ROUND_PREFIX.format(r) + k: v for k, v in read_state_dict(path).items()})
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        torch.save(state, handle)


def read_round_weights(path: str | os.PathLike) -> dict[int, dict[str, torch.Tensor]]:
    """The state dicts of :func:`write_round_weights`'s file by round number (1, 2, ...)."""
    rounds: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in read_state_dict(path).items():
        head, _, rest = key.partition(".")
        if not head.startswith("round-") or not head[6:].isdigit() or not rest:
            raise ValueError(f"rounds weights file {path}: key {key!r} is not 'round-<r>.<name>'")
        rounds.setdefault(int(head[6:]), {})[rest] = value
    return dict(sorted(rounds.items()))

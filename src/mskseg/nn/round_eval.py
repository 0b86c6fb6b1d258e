"""The test subjects of a fold scored after every interactive round (the hip paper's Table 1).

A method fine-tuned in rounds (:mod:`mskseg.nn.transfer`) exports the last round's model and the
weights of the rounds before it (:func:`~mskseg.nn.transfer.write_round_weights`). The last round's
model is the method's: the evaluation stage scores it. Here each earlier round's weights predict the
fold's test subjects on their preprocessed grids as ``predict_subject`` does (same inference, same
post-processing), and every metric of the evaluation stage
(:func:`mskseg.metrics.evaluate.evaluate_arrays`, same settings) is computed against the reference.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mskseg.io.volumes import read_volume
from mskseg.metrics.evaluate import EvaluationSettings, evaluate_arrays
from mskseg.nn import device as dev
from mskseg.nn.data import load_case
from mskseg.nn.model_info import load_trained
from mskseg.nn.predict import predict_case, prediction_volume
from mskseg.nn.settings import InferenceSettings
from mskseg.nn.transfer import read_round_weights
from mskseg.postprocess import PostprocessSettings
from mskseg.postprocess.pipeline import postprocess_labels

PathLike = str | os.PathLike

#: the columns put before the evaluation table's own
KEY_COLUMNS = ("round", "n_train", "subject")


def round_states(rounds: pd.DataFrame, round_weights: PathLike) -> list[tuple[int, int, dict]]:
    """``(round, n_train, state dict)`` of every round of the rounds table before the last, from
    ``round_weights`` (the last round is the exported model, scored by the evaluation stage). A round
    missing from the file is an error naming it."""
    numbers = [int(r) for r in rounds["round"]]
    if not numbers:
        raise ValueError("the rounds table has no rows")
    earlier = read_round_weights(round_weights)
    states = []
    for r, n in zip(numbers, rounds["n_train"], strict=True):
        if r == max(numbers):
            continue
        if r not in earlier:
            raise ValueError(f"round {r} has no weights in {round_weights} (it holds rounds {sorted(earlier)})")
        states.append((r, int(n), earlier[r]))
    return states


def evaluate_rounds(rounds: pd.DataFrame, round_weights: PathLike, model: PathLike, info: PathLike,
                    subjects: Sequence[str], images: Sequence[PathLike], masks: Sequence[PathLike], *,
                    inference: InferenceSettings, labels: Mapping[str, int], evaluation: EvaluationSettings,
                    postprocess: PostprocessSettings | None = None,
                    logger: logging.Logger | None = None) -> pd.DataFrame:
    """Every metric of every test subject after every round before the last: one row per round, subject and
    structure (``all`` included), the columns of :data:`mskseg.metrics.evaluate.COLUMNS` after
    :data:`KEY_COLUMNS` (no rows for a training of one round).

    ``rounds``: the model's rounds table (``round``, ``n_train``); ``round_weights``, ``model``, ``info``: its
    exported files (``model`` and ``info`` build the network); ``subjects``, ``images``, ``masks``: the fold's
    test subjects (preprocessed grid). One subject's volumes are in memory at a time.
    """
    logger = logger or logging.getLogger(__name__)
    if not (len(subjects) == len(images) == len(masks)):
        raise ValueError(f"{len(subjects)} subjects but {len(images)} images and {len(masks)} masks")
    device = dev.resolve_device(inference.device)
    precision = dev.resolve_precision(device, inference.precision)
    net, description = load_trained(model, info, device)
    values = list(labels.values())
    frames = []
    for r, n_train, state in round_states(rounds, round_weights):
        net.load_state_dict(state)
        net.eval()
        for subject, image, mask in zip(subjects, images, masks, strict=True):
            case, volume = load_case(subject, Path(image), label_values=values)
            reference = read_volume(mask)
            probs = predict_case([(net, description)], case, weights=None, device=device, precision=precision,
                                 batch_size=inference.batch_size)
            labelled = prediction_volume(probs, volume, values)
            array = labelled.array
            if postprocess is not None:
                array, _ = postprocess_labels(array, values, spacing=volume.spacing, settings=postprocess)
            if reference.array.shape != array.shape:
                raise ValueError(f"{mask}: shape {reference.array.shape} differs from its image's {array.shape}")
            table = evaluate_arrays(np.asarray(array, dtype=np.int32), np.asarray(reference.array, dtype=np.int32),
                                    volume.spacing,
                                    labels, evaluation, names=(f"round {r} prediction of {subject}", str(mask))).table
            table.insert(0, "subject", subject)
            table.insert(0, "n_train", n_train)
            table.insert(0, "round", r)
            frames.append(table)
            whole = table.loc[table["structure"] == "all"].iloc[0]
            logger.info("round %d (%d accurate scans): %s Dice %.4f", r, n_train, subject, whole["dice"])
            del case, probs
    del net
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if not frames:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "structure"])
    return pd.concat(frames, ignore_index=True)


__all__ = ["KEY_COLUMNS", "evaluate_rounds", "round_states"]

"""A three-plane method's test subjects scored per plane and fused (the three-plane fusion paper's table).

A ``three_plane`` method trains one 2D model per plane (axial, coronal, sagittal) and blends their
probabilities with the weights fitted on the validation subjects (:mod:`mskseg.nn.fusion`). Here each
plane's model predicts the fold's test subjects alone, then the blend predicts them (what
``predict_subject`` writes), all with the same inference and post-processing as ``predict_subject``, and
every metric of the evaluation stage (:func:`mskseg.metrics.evaluate.evaluate_arrays`) is computed against the
reference with its confusion matrix. A subject's planes are predicted once and blended from the same
probabilities, so ``fused`` equals what the evaluation stage scores for the method.
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
from mskseg.nn.predict import predict_view, prediction_volume
from mskseg.nn.settings import InferenceSettings
from mskseg.postprocess import PostprocessSettings
from mskseg.postprocess.pipeline import postprocess_labels

PathLike = str | os.PathLike

#: the row of the blended prediction
FUSED = "fused"


def evaluate_planes(models: Sequence[tuple[PathLike, PathLike]], weights: Mapping[str, float],
                    subjects: Sequence[str], images: Sequence[PathLike], masks: Sequence[PathLike], *,
                    inference: InferenceSettings, labels: Mapping[str, int], evaluation: EvaluationSettings,
                    postprocess: PostprocessSettings | None = None,
                    logger: logging.Logger | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, confusions) of every test subject per plane and fused.

    ``models``: (weights file, description) per plane; ``weights``: the fitted blending weight per plane (by
    view name, summing to 1). ``scores``: one row per plane, subject and structure (``all`` included, with
    the mean IoU), ``plane`` and ``subject`` first; ``confusions``: voxel counts, one row per plane, subject
    and reference class, a column per predicted class. One subject's volumes are in memory at a time.
    """
    logger = logger or logging.getLogger(__name__)
    if not (len(subjects) == len(images) == len(masks)):
        raise ValueError(f"{len(subjects)} subjects but {len(images)} images and {len(masks)} masks")
    device = dev.resolve_device(inference.device)
    precision = dev.resolve_precision(device, inference.precision)
    nets = [load_trained(model, info, device) for model, info in models]
    views = [info.view for _, info in nets]
    missing = sorted(set(views) - set(weights))
    if missing or abs(sum(weights[v] for v in views) - 1.0) > 1e-6:
        raise ValueError(f"fusion weights {dict(weights)} do not cover the planes {views} with a sum of 1")
    values = list(labels.values())
    scores, confusions = [], []
    for subject, image, mask in zip(subjects, images, masks, strict=True):
        case, volume = load_case(subject, Path(image), label_values=values)
        reference = read_volume(mask)
        probs = {info.view: predict_view(net, info, case, device=device, precision=precision,
                                         channels_last=dev.use_channels_last(device),
                                         batch_size=inference.batch_size) for net, info in nets}
        probs[FUSED] = sum(probs[v] * float(weights[v]) for v in views)
        for plane, p in probs.items():
            array = prediction_volume(p, volume, values).array
            if postprocess is not None:
                array, _ = postprocess_labels(array, values, spacing=volume.spacing, settings=postprocess)
            if reference.array.shape != array.shape:
                raise ValueError(f"{mask}: shape {reference.array.shape} differs from its image's {array.shape}")
            result = evaluate_arrays(np.asarray(array, dtype=np.int32), np.asarray(reference.array, dtype=np.int32),
                                     volume.spacing, labels, evaluation,
                                     names=(f"{plane} prediction of {subject}", str(mask)))
            scores.append(result.table.assign(plane=plane, subject=subject))
            confusions.append(result.confusion.reset_index().assign(plane=plane, subject=subject))
            whole = result.table.loc[result.table["structure"] == "all"].iloc[0]
            logger.info("%s %s: Dice %.4f, mean IoU %.4f", subject, plane, whole["dice"], whole["mean_iou"])
        del case, probs
    del nets
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    first = ["plane", "subject"]
    score = pd.concat(scores, ignore_index=True)
    confusion = pd.concat(confusions, ignore_index=True)
    return (score[first + [c for c in score if c not in first]],
            confusion[first + [c for c in confusion if c not in first]])


__all__ = ["FUSED", "evaluate_planes"]

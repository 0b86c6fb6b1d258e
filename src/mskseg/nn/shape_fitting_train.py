"""Training the knee paper's shape fitting (:mod:`mskseg.nn.shape_method`) on one fold, from files.

* :func:`train_regression` -- the deep shape regression of one bone (or the whole volume): each
  training subject gives ``crops_per_subject`` crops of its bone's bounding box in its reference mask
  (the first exact, the others with every box face moved by up to ``crop_jitter_mm``, as a
  pre-segmentation's box would be), each with the subject's landmarks warped by the shape stage as the
  target (world mm); validation on the validation subjects' exact crops (``val_distance_mm``).
* :func:`select_landmarks` -- per bone, the refinement landmarks: those within ``within_mm`` of the
  region (cartilage) in at least ``min_fraction`` of the training subjects, ``k`` of them spread
  evenly over the shape model's mean by distance-based NMS.
* :func:`train_refinement` -- the local 3D U-Net on patches centred on the selected landmarks of each
  training subject (shifted by up to ``jitter_mm``, the fitted shapes' error), validated on the
  validation subjects' patches at their landmarks (mean Dice of the patches).

Both trainings run through the engine in a resumable work folder keyed by their inputs' contents.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mskseg.io.atomic import atomic_path, write_text
from mskseg.io.landmarks import read_landmarks_csv
from mskseg.io.locks import folder_lock
from mskseg.io.tables import write_table
from mskseg.io.volumes import read_volume
from mskseg.landmarks.selection import Selection, near_structure, region_vote, select_spread
from mskseg.nn import device as dev
from mskseg.nn.cache import remove_cache
from mskseg.nn.data import Case
from mskseg.nn.engine import TrainResult, ValidateFn
from mskseg.nn.fit import train_view
from mskseg.nn.model_info import ModelInfo
from mskseg.nn.shape_crop import crop_geometry, mask_bbox, resample_crop
from mskseg.nn.shape_method import ShapeFittingSpec
from mskseg.nn.shape_regression import LandmarkDataset, build_shape_regression, fit_shape_regression, landmark_sample
from mskseg.nn.validation import dice_and_nll
from mskseg.preprocess.patches import centre_voxels, extract_patches, patch_layout
from mskseg.shape.model import ShapeModel
from mskseg.volume import Volume

__all__ = ["RegressionInfo", "landmark_centres", "landmark_region", "patch_validator", "read_points",
           "refinement_export", "refinement_fold", "regression_crops", "regression_fold", "select_landmarks",
           "train_refinement", "train_regression"]

PathLike = str | os.PathLike


def read_points(path: PathLike) -> np.ndarray:
    """A landmark CSV (index, x, y, z; mm) as ``(N, 3)`` in index order."""
    frame = read_landmarks_csv(path).sort_values("index")
    return frame[["x", "y", "z"]].to_numpy(dtype=float)


@dataclass(frozen=True)
class RegressionInfo:
    """What rebuilding a trained shape regression network needs besides its weights and shape models."""

    part: str                       # a bone, or "all" for the whole-volume network
    bones: list[str]                # its PCA layers, in order
    label_values: list[int]         # each bone's label (its bounding box)
    rotation: list[list[float]]     # R0: model frame -> crop axes
    half_extent_mm: list[float]     # the PCA layers' base scale is its inverse
    settings: dict[str, Any]        # ShapeRegressionSettings.to_dict()
    train_subjects: list[str]
    val_subjects: list[str]
    best_epoch: int = 0
    val_distance_mm: float | None = None

    def write(self, path: PathLike) -> None:
        write_text(path, json.dumps(asdict(self), indent=2))

    @classmethod
    def read(cls, path: PathLike) -> RegressionInfo:
        try:
            return cls(**json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"{path}: not a shape regression description written by mskseg ({err})") from None


def _box(mask: np.ndarray, values: Sequence[int] | None, what: str) -> tuple[Any, Any] | None:
    if values is None:
        return None
    try:
        return mask_bbox(np.isin(mask, list(values)))
    except ValueError:
        raise ValueError(f"{what}: no voxel of label(s) {list(values)}: no bounding box") from None


def regression_crops(image: Volume, mask: Volume, values: Sequence[int] | None, targets: Sequence[np.ndarray],
                     spec: ShapeFittingSpec, *, n_crops: int, rng: np.random.Generator | None, name: str = ""
                     ) -> list[dict[str, torch.Tensor]]:
    """``n_crops`` samples (:func:`~mskseg.nn.shape_regression.landmark_sample`) of one subject.

    ``values``: the bone's label(s) whose box is cropped (None: the whole volume); ``targets``: the
    landmarks of each PCA layer (world mm). Crop 0 is the exact box; with ``rng`` the others move each
    box face by a uniform shift of up to ``spec.crop_jitter_mm`` (rounded to voxels).
    """
    settings = spec.regression
    box = _box(mask.array, values, name)
    array = np.asarray(image.array, dtype=np.float32)
    spacing = np.asarray(image.spacing, dtype=float)
    points = np.concatenate([np.asarray(t, dtype=float) for t in targets])
    samples = []
    for i in range(n_crops):
        crop = box
        if box is not None and i > 0 and rng is not None and spec.crop_jitter_mm > 0:
            shift = np.rint(rng.uniform(-spec.crop_jitter_mm, spec.crop_jitter_mm, (2, 3)) / spacing).astype(int)
            lo, hi = np.asarray(box[0]) + shift[0], np.asarray(box[1]) + shift[1]
            crop = (np.minimum(lo, hi), np.maximum(lo, hi))
        geometry = crop_geometry(image.shape, image.spacing, image.origin, image.direction, crop,
                                 margin_mm=settings.margin_mm, cube_size=settings.cube_size,
                                 isotropic=settings.isotropic)
        samples.append(landmark_sample(resample_crop(array, geometry), points, geometry))
    return samples


def _subject_samples(subjects: Sequence[str], files: Mapping[str, Sequence[PathLike]], values: Sequence[int] | None,
                     spec: ShapeFittingSpec, n_crops: int, rng: np.random.Generator | None
                     ) -> tuple[list[dict], Volume | None]:
    """The crops of every subject (``files``: ``image``, ``mask``, ``landmarks_<k>``) and the first image."""
    samples: list[dict] = []
    first = None
    layers = sorted(key for key in files if key.startswith("landmarks"))
    for i, name in enumerate(subjects):
        image, mask = read_volume(files["image"][i]), read_volume(files["mask"][i])
        first = first or image
        targets = [read_points(files[key][i]) for key in layers]
        samples += regression_crops(image, mask, values, targets, spec, n_crops=n_crops, rng=rng, name=name)
    return samples, first


def train_regression(spec: ShapeFittingSpec, part: str, bones: Sequence[str], models: Sequence[ShapeModel],
                     values: Sequence[int] | None,
                     subjects: Mapping[str, Sequence[str]], files: Mapping[str, Mapping[str, Sequence[PathLike]]],
                     workdir: PathLike, *, logger: logging.Logger | None = None
                     ) -> tuple[nn.Module, TrainResult, RegressionInfo]:
    """Train the shape regression ``part`` (a bone, or ``all``) of a fold.

    ``bones``, ``models``: the fold's shape model of each PCA layer; ``values``: the label value(s) of the box
    (None: the whole volume); ``subjects``: ``train`` and ``val`` names; ``files[role]``: ``image``,
    ``mask`` and ``landmarks_<k>`` (the k-th layer's landmark CSV) lists in subject order. Returns the
    network with its best weights, the engine's result and the description to store beside it.
    """
    logger = logger or logging.getLogger(__name__)
    rng = np.random.default_rng(spec.regression.seed)
    train, first = _subject_samples(subjects["train"], files["train"], values, spec, spec.crops_per_subject, rng)
    val, _ = _subject_samples(subjects["val"], files["val"], values, spec, 1, None)
    if not train or first is None:
        raise ValueError(f"shape regression {part}: no training subjects")
    rotation = np.asarray(first.direction, dtype=float).T  # model frame (world axes) -> crop (volume) axes
    half = np.mean([s["half_extent_mm"].numpy() for s in train], axis=0)
    net = build_shape_regression(list(models), spec.regression, rotation=rotation, half_extent_mm=half)
    logger.info("shape regression %s: %d crops of %d training subjects, %d validation crops, cube %d^3, %s modes",
                part, len(train), len(subjects["train"]), len(val), spec.regression.cube_size,
                spec.regression.n_modes or "all")
    result = fit_shape_regression(net, LandmarkDataset(train), spec.regression, workdir,
                                  validation_set=LandmarkDataset(val) if val else None, logger=logger)
    net.load_state_dict(torch.load(result.best_weights, map_location="cpu", weights_only=True))
    best = result.history[result.history["epoch"] == result.best_epoch]
    distance = float(best["val_distance_mm"].iloc[0]) if val and "val_distance_mm" in best else None
    info = RegressionInfo(part=part, bones=list(bones),
                          label_values=[int(v) for v in values or []], rotation=rotation.tolist(),
                          half_extent_mm=[float(h) for h in half], settings=spec.regression.to_dict(),
                          train_subjects=list(subjects["train"]), val_subjects=list(subjects["val"]),
                          best_epoch=int(result.best_epoch), val_distance_mm=distance)
    return net, result, info


def landmark_region(votes: np.ndarray, *, min_fraction: float) -> np.ndarray:
    """Boolean ``(n,)``: the landmarks near the refinement region in at least ``min_fraction`` of the training
    subjects (``votes``: boolean ``(subjects, n)``, :func:`~mskseg.landmarks.selection.near_structure` each);
    ValueError when there is none."""
    region = region_vote(np.asarray(votes, dtype=bool), min_fraction=min_fraction)
    if not region.any():
        raise ValueError(f"no landmark lies near the refinement region in {min_fraction:.0%} of the training "
                         "subjects: raise landmarks.within_mm or check landmarks.region")
    return region


def select_landmarks(mean_mm: np.ndarray, votes: np.ndarray, k: int, *, min_fraction: float) -> Selection:
    """The ``k`` refinement landmarks of one bone (module docstring): indices into the model's points, spread
    over the model mean within :func:`landmark_region`."""
    return select_spread(mean_mm, k, region=landmark_region(votes, min_fraction=min_fraction))


def patch_validator(info: ModelInfo, cases: Sequence[Case], centres: Sequence[np.ndarray], *,
                    batch_size: int) -> ValidateFn:
    """The engine's validate function of a local refinement model: mean Dice and cross-entropy of its patches
    at ``centres`` (per case, voxel indices) against the cases' targets."""
    size = tuple(info.patch_size or ())
    layouts = [patch_layout(c, size, case.image.shape, border="shift") for case, c in zip(cases, centres, strict=True)]

    def validate(model: nn.Module, device: torch.device, precision: str) -> dict[str, float]:
        scores = []
        model.eval()
        for case, layout in zip(cases, layouts, strict=True):
            image = extract_patches(np.asarray(case.image, dtype=np.float32), layout)
            target = extract_patches(np.asarray(case.target), layout)
            probs = []
            with torch.no_grad(), dev.autocast(device, precision):
                for start in range(0, len(image), batch_size):
                    x = torch.from_numpy(image[start:start + batch_size, None]).to(device)
                    probs.append(model(x).float().softmax(dim=1).cpu().numpy())
            stacked = np.concatenate(probs)  # (n, K, *size) -> (K, n * size0, size1, size2)
            flat = stacked.transpose(1, 0, 2, 3, 4).reshape(stacked.shape[1], -1, *size[1:])
            scores.append(dice_and_nll(flat, target.reshape(-1, *size[1:])))
        model.train()
        return {"val_dice": float(np.mean([s[0] for s in scores])), "val_loss": float(np.mean([s[1] for s in scores]))}
    return validate


def landmark_centres(points_mm: Sequence[np.ndarray], volume: Volume) -> np.ndarray:
    """Nearest voxel indices ``(n, 3)`` of the points of every bone (concatenated), in ``volume``."""
    return centre_voxels(np.concatenate([np.asarray(p, dtype=float) for p in points_mm]), volume)


def train_refinement(spec: ShapeFittingSpec, label_values: Sequence[int], cases: Mapping[str, Sequence[Case]],
                     centres: Mapping[str, Sequence[np.ndarray]], spacing_mm: Sequence[float], workdir: PathLike, *,
                     logger: logging.Logger | None = None) -> tuple[TrainResult, ModelInfo]:
    """Train the local 3D U-Net on patches at ``centres[role]`` (per case, voxel indices of the selected
    landmarks) of ``cases[role]`` (``train``, ``val``); returns the engine's result and the model description."""
    if spec.refinement is None:
        raise ValueError(f"method {spec.name}: no refinement block")
    logger = logger or logging.getLogger(__name__)
    jitter = spec.landmarks.jitter_mm / np.asarray(spacing_mm, dtype=float)
    validate = None
    if cases["val"]:
        probe = ModelInfo(method=spec.name, view="3d", network={}, n_classes=len(label_values) + 1,
                          label_values=list(label_values), patch_size=list(spec.refinement.patch.size))
        validate = patch_validator(probe, cases["val"], centres["val"],
                                   batch_size=max(1, spec.refinement.inference.batch_size // 8))
    return train_view(spec.refinement, "3d", cases["train"], cases["val"], label_values, workdir,
                      centres=centres["train"], jitter_voxels=jitter, validate=validate, logger=logger)


def refinement_fold(spec: ShapeFittingSpec, labels: Mapping[str, int], subjects: Mapping[str, Sequence[str]],
                    files: Mapping[str, Sequence[PathLike]], centres: Mapping[str, Sequence[np.ndarray]],
                    spacing_mm: Sequence[float], workdir: PathLike, *, logger: logging.Logger | None = None
                    ) -> tuple[TrainResult, ModelInfo]:
    """:func:`train_refinement` on a fold's cached cases (``files``: ``<role>_image``, ``<role>_mask``), resumable
    in ``workdir`` (a run folder keyed by the inputs' contents, the settings and the centres)."""
    from mskseg.nn.training import CACHE, cached_cases, run_folder

    logger = logger or logging.getLogger(__name__)
    values = list(labels.values())
    inputs = [p for key in sorted(files) for p in files[key]]
    key = {"spec": repr(spec.refinement), "landmarks": spec.landmarks.to_dict(), "labels": dict(labels),
           "centres": {role: [np.asarray(c).tolist() for c in cs] for role, cs in centres.items()}}
    with folder_lock(workdir, logger=logger):
        run_dir = run_folder(workdir, "refine-", inputs, key)
        cases = {role: cached_cases(run_dir, "3d", subjects[role], files[f"{role}_image"], files[f"{role}_mask"],
                                    None, values, logger) for role in ("train", "val")}
        result, info = train_refinement(spec, values, cases, centres, spacing_mm, run_dir, logger=logger)
        remove_cache(run_dir / CACHE)
    return result, info


def regression_fold(spec: ShapeFittingSpec, part: str, bones: Sequence[str], values: Sequence[int] | None,
                    shape_models: Sequence[PathLike], subjects: Mapping[str, Sequence[str]],
                    files: Mapping[str, Sequence[PathLike]], workdir: PathLike, *, model: PathLike, info: PathLike,
                    history: PathLike, logger: logging.Logger | None = None) -> RegressionInfo:
    """:func:`train_regression` of a fold from files (``files``: ``<role>_image``, ``<role>_mask``,
    ``<role>_landmarks_<k>``), resumable in ``workdir``; writes the best weights, the description and the
    history."""
    from mskseg.nn.history import write_history
    from mskseg.nn.training import run_folder
    from mskseg.shape.storage import load_shape_model

    logger = logger or logging.getLogger(__name__)
    models = [load_shape_model(p) for p in shape_models]
    by_role = {role: {key[len(role) + 1:]: list(paths) for key, paths in files.items() if key.startswith(role + "_")}
               for role in ("train", "val")}
    inputs = [*shape_models, *(p for key in sorted(files) for p in files[key])]
    with folder_lock(workdir, logger=logger):
        run_dir = run_folder(workdir, f"{part}-", inputs, {"regression": spec.regression.to_dict(), "part": part,
                                                          "crops": spec.crops_per_subject,
                                                          "jitter": spec.crop_jitter_mm, "subjects": dict(subjects)})
        net, result, description = train_regression(spec, part, bones, models, values, subjects, by_role, run_dir,
                                                    logger=logger)
        with atomic_path(model) as tmp:
            torch.save(net.state_dict(), tmp)
    description.write(info)
    write_history(result.history.to_dict("records"), history)
    logger.info("shape regression %s: best epoch %d of %d, validation landmark distance %s mm", part,
                result.best_epoch, result.epochs_run, f"{description.val_distance_mm:.2f}"
                if description.val_distance_mm is not None else "(no validation subjects)")
    return description


def refinement_export(spec: ShapeFittingSpec, labels: Mapping[str, int], bones: Mapping[str, int],
                      shape_models: Sequence[PathLike], subjects: Mapping[str, Sequence[str]],
                      files: Mapping[str, Sequence[PathLike]], workdir: PathLike, *, model: PathLike, info: PathLike,
                      history: PathLike, selection: PathLike, logger: logging.Logger | None = None) -> pd.DataFrame:
    """A fold's refinement: the landmarks of each bone (:func:`select_landmarks` on the training subjects'
    warped landmarks and masks, the model mean), then the local U-Net on patches at each subject's selected
    landmarks (:func:`refinement_fold`); writes the model, its description, history and the selection table
    (``bone``, ``index``, ``x``, ``y``, ``z`` of the model mean, ``radius_mm``, ``covering_mm``)."""
    from mskseg.nn.training import ModelFiles, export_model
    from mskseg.shape.storage import load_shape_model

    logger = logger or logging.getLogger(__name__)
    names = list(bones)
    models = [load_shape_model(p) for p in shape_models]
    region = [int(labels[s]) for s in spec.landmarks.region]
    votes: list[list[np.ndarray]] = [[] for _ in names]
    points: dict[str, list[list[np.ndarray]]] = {"train": [], "val": []}
    geometry: dict[str, list[Volume]] = {"train": [], "val": []}
    for role in ("train", "val"):
        for i in range(len(subjects[role])):
            mask = read_volume(files[f"{role}_mask"][i])
            subject_points = [read_points(files[f"{role}_landmarks_{k}"][i]) for k in range(len(names))]
            if role == "train":
                for k, p in enumerate(subject_points):
                    votes[k].append(near_structure(p, mask, region, within_mm=spec.landmarks.within_mm))
            points[role].append(subject_points)
            # the grid only (the voxel centres of the landmarks), not the mask: a fold's masks need not fit in memory
            geometry[role].append(Volume(np.zeros((1, 1, 1), np.uint8), mask.spacing, mask.origin, mask.direction))
    rows, chosen = [], []
    for k, bone in enumerate(names):
        region = landmark_region(np.stack(votes[k]), min_fraction=spec.landmarks.min_fraction)
        picked = select_spread(models[k].mean, spec.landmarks.counts[bone], region=region)
        chosen.append(picked.indices)
        mean = models[k].mean[picked.indices]
        rows.append(pd.DataFrame({"bone": bone, "index": picked.indices, "x": mean[:, 0], "y": mean[:, 1],
                                  "z": mean[:, 2], "radius_mm": picked.radius_mm, "covering_mm": picked.covering_mm}))
        logger.info("%s: %d refinement landmarks (of %d in the region), NMS radius %.1f mm, covering %.1f mm", bone,
                    len(picked.indices), int(region.sum()), picked.radius_mm, picked.covering_mm)
    centres = {role: [landmark_centres([p[idx] for p, idx in zip(subject, chosen, strict=True)], volume)
                      for subject, volume in zip(points[role], geometry[role], strict=True)] for role in points}
    spacing = geometry["train"][0].spacing
    del geometry
    files_im = {k: v for k, v in files.items() if k.endswith(("_image", "_mask"))}
    result, description = refinement_fold(spec, labels, subjects, files_im, centres, spacing, workdir, logger=logger)
    export_model(result, description, ModelFiles(model=model, info=info, history=history))
    table = pd.concat(rows, ignore_index=True)
    write_table(table, selection)
    return table

"""Training SPAR and its baselines on a fold, from files: the shape auto-encoder, then the regularised segmenter.

* :func:`train_autoencoder_fold` -- stage 1 (paper 2.2): a :class:`~mskseg.nn.models.spar.ShapeAutoEncoder`
  learns the 2D slices (of one view) of the fold's training masks, categorical cross-entropy of the
  reconstruction, Adam; exported as weights, a JSON description (:class:`AutoencoderInfo`) and a
  per-epoch history (loss, reconstruction Dice). Methods with equal auto-encoder settings
  (:meth:`mskseg.nn.spar_settings.SparSettings.autoencoder_key`) can share one.
* :func:`load_autoencoder` -- the trained auto-encoder, frozen.
* :func:`train_regularised_fold` -- stage 2 (paper 2.3): the method's segmenter trained with its loss plus
  ``lam`` times the regulariser's term (:class:`mskseg.nn.spar_regulariser.ShapeRegulariser`), exported as
  :func:`mskseg.nn.training.train_fold` exports a model (loadable by :func:`mskseg.nn.model_info.load_trained`),
  and the latent codes of the paper's Figure 3 (:func:`mskseg.nn.spar_regulariser.write_latents`).

Both run through the engine (:func:`mskseg.nn.engine.train`) in a work folder named after a fingerprint of
their inputs and settings, locked while they train, with the cases' arrays cached there
(:mod:`mskseg.nn.training`): a killed job resumes from its last epoch; on the CPU it ends bit-identical.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mskseg.io.atomic import atomic_path
from mskseg.io.locks import folder_lock
from mskseg.io.tables import read_json, write_json
from mskseg.nn import device as dev
from mskseg.nn.cache import remove_cache
from mskseg.nn.checkpoint import STATE, load_state
from mskseg.nn.data import Case, SliceDataset, in_plane_size
from mskseg.nn.engine import TrainResult, train
from mskseg.nn.fit import loss_function, make_dataset, make_validator, model_info
from mskseg.nn.method import PLANE_VIEWS, MethodSpec
from mskseg.nn.model_info import ModelInfo
from mskseg.nn.models.spar import ShapeAutoEncoder
from mskseg.nn.settings import TrainSettings, ValidationSettings
from mskseg.nn.spar import freeze, one_hot
from mskseg.nn.spar_regulariser import (
    LATENT_SLICES,
    LatentRecorder,
    ShapeRegulariser,
    checkpoint_latents,
    fixed_slices,
    slice_multiple,
    write_latents,
)
from mskseg.nn.spar_settings import SparSettings
from mskseg.nn.training import CACHE, ModelFiles, cached_cases, export_model, run_folder
from mskseg.nn.weights import load_weights

__all__ = ["AE_HISTORY", "AutoencoderInfo", "load_autoencoder", "reconstruction_dice", "train_autoencoder_fold",
           "train_regularised_fold"]

PathLike = str | os.PathLike
#: the history columns of the auto-encoder: epoch, mean training loss (nats per pixel), reconstruction Dice
AE_HISTORY = ("epoch", "loss", "recon_dice", "seconds")


@dataclass(frozen=True)
class AutoencoderInfo:
    """What rebuilding a trained shape auto-encoder needs besides its weights, and how it was trained.

    ``slice_size``: the training slices' size (pixels); ``key``: :meth:`SparSettings.autoencoder_key` of its
    settings with ``seed``; ``recon_dice``: the reconstruction Dice of its exported epoch.
    """

    n_classes: int
    label_values: list[int]
    view: str
    base: int
    depth: int
    latent_channels: int
    slice_size: list[int]
    key: str
    seed: int
    settings: dict[str, Any]
    train_subjects: list[str]
    best_epoch: int = 0
    recon_dice: float = math.nan

    def write(self, path: PathLike) -> None:
        write_json(path, asdict(self))

    @classmethod
    def read(cls, path: PathLike) -> AutoencoderInfo:
        try:
            return cls(**read_json(path))
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"{path}: not a shape auto-encoder description written by mskseg ({err})") from None

    def build(self) -> ShapeAutoEncoder:
        """The network, freshly initialised (2D)."""
        return ShapeAutoEncoder(self.n_classes, dims=2, base=self.base, depth=self.depth,
                                latent_channels=self.latent_channels)


def load_autoencoder(weights: PathLike, info: PathLike, device: torch.device | str = "cpu") -> ShapeAutoEncoder:
    """The trained shape auto-encoder of ``weights`` and its description ``info``, frozen on ``device``."""
    model = AutoencoderInfo.read(info).build()
    load_weights(model, weights)
    return freeze(model.to(torch.device(device)))


class _MaskSlices(Dataset):
    """The items of a :class:`SliceDataset` of masks with the one-hot target ``(K, H, W)`` as the image."""

    def __init__(self, slices: SliceDataset, n_classes: int) -> None:
        self.slices, self.n_classes = slices, n_classes

    def set_epoch(self, epoch: int) -> None:
        self.slices.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.slices[index]
        return {**item, "image": one_hot(item["target"][None], self.n_classes)[0]}


def _reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                         sample_weight: torch.Tensor) -> torch.Tensor:
    """Categorical cross-entropy of the reconstruction (nats per pixel; = :func:`mskseg.nn.spar.autoencoder_loss`
    of one-hot maps)."""
    return F.cross_entropy(logits.float(), target)


def reconstruction_dice(masks: torch.Tensor, reconstruction: torch.Tensor, n_classes: int) -> float:
    """Mean over the foreground classes present in either of the Dice of label maps ``(N, H, W)``, pooled over
    the slices (1.0 when no class is present)."""
    dices = []
    for c in range(1, n_classes):
        a, b = masks == c, reconstruction == c
        total = int(a.sum()) + int(b.sum())
        if total:
            dices.append(2.0 * int((a & b).sum()) / total)
    return float(np.mean(dices)) if dices else 1.0


def _recon_validator(dataset: _MaskSlices, seed: int, batch_size: int):
    """The engine's validate function: ``recon_dice`` of the reconstructions of fixed training slices."""
    picked = fixed_slices(dataset.slices, LATENT_SLICES, seed)
    masks = torch.stack([dataset.slices[i]["target"] for i in picked])

    def validate(model: ShapeAutoEncoder, device: torch.device, precision: str) -> dict[str, float]:
        out = []
        for start in range(0, len(masks), batch_size):
            batch = one_hot(masks[start:start + batch_size].to(device), dataset.n_classes)
            with dev.autocast(device, precision):
                out.append(model(batch).argmax(dim=1).cpu())
        return {"recon_dice": reconstruction_dice(masks, torch.cat(out), dataset.n_classes)}
    return validate


def _autoencoder_settings(settings: SparSettings, seed: int, base: TrainSettings | None) -> TrainSettings:
    """The engine's settings of stage 1: Adam at ``autoencoder_lr``, constant, all epochs, the training loss
    monitored; device, precision, workers and progress bar from ``base``."""
    base = base or TrainSettings()
    return TrainSettings(epochs=settings.autoencoder_epochs, batch_size=settings.autoencoder_batch_size,
                         lr=settings.autoencoder_lr, schedule="constant", early_stopping=None, monitor="train_loss",
                         seed=seed, validation=ValidationSettings(), device=base.device, precision=base.precision,
                         channels_last=base.channels_last, num_workers=base.num_workers, progress=base.progress)


def train_autoencoder_fold(view: str, labels: Mapping[str, int], subjects: Sequence[str], masks: Sequence[PathLike],
                           settings: SparSettings, *, seed: int, slice_size: Sequence[int] | None, workdir: PathLike,
                           weights_out: PathLike, info_out: PathLike, history_out: PathLike,
                           train_settings: TrainSettings | None = None, logger: logging.Logger | None = None
                           ) -> AutoencoderInfo:
    """Train the shape auto-encoder on the 2D slices of ``view`` of the training masks, and export it.

    Parameters
    ----------
    view : str
        A plane (sagittal, coronal, axial): the slices' orientation.
    labels : mapping
        Structure name -> mask value (classes 1, 2, ... in this order; 0 is background).
    subjects, masks : sequence
        The fold's training subjects and their mask files, in the same order.
    settings, seed : SparSettings, int
        The auto-encoder's settings (:data:`mskseg.nn.spar_settings.AUTOENCODER_FIELDS`); the seed of its
        weights and sample order.
    slice_size : sequence of two int, optional
        The slices' size (pixels), rounded up to a multiple of ``2**autoencoder_depth``; None: the largest
        in-plane size of the masks, rounded up. Slices are centre-padded (background) or centre-cropped.
    workdir : path
        Where the job's fingerprinted, locked work folder goes (``autoencoder-<hash>``; resumable).
    weights_out, info_out, history_out : path
        The exported weights (state dict of the best epoch by training loss), the :class:`AutoencoderInfo`
        JSON and the per-epoch history CSV (:data:`AE_HISTORY`).
    train_settings : TrainSettings, optional
        Whose device, precision, channels_last, num_workers and progress the training uses.
    """
    logger = logger or logging.getLogger(__name__)
    if view not in PLANE_VIEWS:
        raise ValueError(f"the shape auto-encoder learns 2D slices of a plane ({', '.join(PLANE_VIEWS)}), not {view!r}")
    values, multiple = list(labels.values()), 2**settings.autoencoder_depth
    ae_fields = {name: value for name, value in settings.to_dict().items() if name.startswith("autoencoder_")}
    key = {"settings": ae_fields | {"latent_channels": settings.codes}, "seed": int(seed), "labels": dict(labels),
           "view": view, "subjects": list(subjects), "slice_size": list(slice_size) if slice_size else None}
    with folder_lock(workdir, logger=logger):
        run_dir = run_folder(workdir, "autoencoder-", masks, key)
        cases = cached_cases(run_dir, view, subjects, masks, masks, None, values, logger)
        size = [math.ceil(int(s) / multiple) * multiple for s in slice_size] if slice_size else \
            list(in_plane_size(cases, view, multiple))
        info = AutoencoderInfo(n_classes=len(values) + 1, label_values=[int(v) for v in values], view=view,
                               base=settings.autoencoder_base, depth=settings.autoencoder_depth,
                               latent_channels=settings.codes, slice_size=size, key=settings.autoencoder_key(seed),
                               seed=int(seed), settings=ae_fields, train_subjects=list(subjects))
        dataset = _MaskSlices(SliceDataset(cases, view, size=tuple(size), seed=seed), info.n_classes)
        engine_settings = _autoencoder_settings(settings, seed, train_settings)
        torch.manual_seed(seed)
        model = info.build()
        logger.info("shape auto-encoder (%s view): %d mask slices of %s pixels from %d subjects; checkpoints in %s",
                    view, len(dataset), size, len(cases), run_dir)
        result = train(model, dataset, _reconstruction_loss, engine_settings, run_dir, logger=logger,
                       validate=_recon_validator(dataset, seed, settings.autoencoder_batch_size))
        info = _export_autoencoder(result, info, weights_out, info_out, history_out)
        remove_cache(run_dir / CACHE)
    logger.info("shape auto-encoder: best epoch %d of %d, reconstruction Dice %.4f; weights %s", info.best_epoch,
                result.epochs_run, info.recon_dice, weights_out)
    return info


def _export_autoencoder(result: TrainResult, info: AutoencoderInfo, weights_out: PathLike, info_out: PathLike,
                        history_out: PathLike) -> AutoencoderInfo:
    """Copy the best weights, write the description (with best epoch and its Dice) and the history."""
    history = result.history.rename(columns={"train_loss": "loss"})
    history = history.reindex(columns=list(AE_HISTORY))
    best = history.loc[history["epoch"] == result.best_epoch, "recon_dice"]
    info = replace(info, best_epoch=int(result.best_epoch), recon_dice=float(best.iloc[0]) if len(best) else math.nan)
    with atomic_path(weights_out) as tmp:
        shutil.copyfile(result.best_weights, tmp)
    info.write(info_out)
    with atomic_path(history_out) as tmp:
        history.to_csv(tmp, index=False)
    return info


def _regularisation(spec: MethodSpec, view: str) -> SparSettings:
    if spec.regularisation is None:
        raise ValueError(f"method {spec.name!r} has no regularisation block")
    if view not in PLANE_VIEWS or spec.view != view:
        raise ValueError(f"method {spec.name!r}: a regularised model is trained on its plane view {spec.view!r}, "
                         f"not {view!r}")
    return spec.regularisation


def _checked_autoencoder(settings: SparSettings, label_values: Sequence[int], info: PathLike,
                         logger: logging.Logger) -> AutoencoderInfo:
    """The auto-encoder's description, checked against the method's settings and labels."""
    described = AutoencoderInfo.read(info)
    if described.label_values != [int(v) for v in label_values]:
        raise ValueError(f"{info}: the auto-encoder learnt labels {described.label_values}, the method segments "
                         f"{list(label_values)}")
    if described.key != settings.autoencoder_key(described.seed):
        raise ValueError(f"{info}: the auto-encoder was trained with other settings ({described.settings}) than the "
                         f"method's regularisation block")
    if described.recon_dice < 0.5:
        logger.warning("%s: the shape auto-encoder reconstructs its training masks poorly (Dice %.3f)", info,
                       described.recon_dice)
    return described


def _regulariser(spec: MethodSpec, info: ModelInfo, autoencoder: ShapeAutoEncoder, recorded: Sequence[Case]
                 ) -> ShapeRegulariser:
    """The loss and companion of ``spec``'s segmenter, recording the codes of up to :data:`LATENT_SLICES` fixed
    slices of ``recorded`` (at the training size)."""
    slices = SliceDataset(recorded, info.view, n_slices=info.n_slices, size=tuple(info.slice_size))
    recorder = LatentRecorder.from_dataset(slices, count=LATENT_SLICES, seed=spec.train.seed,
                                           batch_size=spec.inference.batch_size)
    return ShapeRegulariser(spec.regularisation, loss_function(spec.loss), autoencoder, n_classes=info.n_classes,
                            recorder=recorder, seed=spec.train.seed)


def _train_regularised(spec: MethodSpec, view: str, train_cases: Sequence[Case], val_cases: Sequence[Case],
                       label_values: Sequence[int], run_dir: Path, autoencoder: tuple[PathLike, PathLike],
                       logger: logging.Logger) -> tuple[TrainResult, ModelInfo]:
    """Train one regularised view, as :func:`mskseg.nn.fit.train_view` trains a plain one."""
    settings = _regularisation(spec, view)
    if not train_cases:
        raise ValueError(f"method {spec.name!r}: no training subjects")
    if dev.resolve_precision(dev.resolve_device(spec.train.device), spec.train.precision) == "fp16":
        raise ValueError(f"method {spec.name!r}: the discriminator's steps need fp32 or bf16, not fp16 "
                         "(set train.precision)")
    described = _checked_autoencoder(settings, label_values, autoencoder[1], logger)
    info = model_info(spec, view, label_values, train_cases, val_cases)
    multiple = math.lcm(spec.multiple, slice_multiple(settings, described.depth))  # the network's and the codes'
    info = info.with_(slice_size=list(in_plane_size(train_cases, view, multiple)))
    torch.manual_seed(spec.train.seed)
    model = info.build()
    if spec.network.get("weights"):
        logger.info("started from %s (%s)", spec.network["weights"], load_weights(model, spec.network["weights"]))
    dataset = make_dataset(spec, info, train_cases)
    validate = make_validator(info, val_cases, spec.inference.batch_size, spec.train.validation) if val_cases else None
    settings_run = spec.train
    if validate is None and settings_run.monitor.startswith("val_"):
        settings_run = replace(settings_run, monitor="train_loss")
        logger.warning("no validation subjects: monitoring the training loss")
    regulariser = _regulariser(spec, info, load_autoencoder(*autoencoder), val_cases or train_cases)
    logger.info("method %s view %s, regulariser %s (lam %g): %d training samples of %s pixels from %d subjects, "
                "%d validation subjects", spec.name, view, settings.regulariser, settings.lam, len(dataset),
                info.slice_size, len(train_cases), len(val_cases))
    result = train(model, dataset, regulariser, settings_run, run_dir, validate=validate, logger=logger,
                   companion=regulariser)
    return result, info


def train_regularised_fold(spec: MethodSpec, view: str, labels: Mapping[str, int],
                           subjects: Mapping[str, Sequence[str]], files: Mapping[str, Sequence[PathLike]],
                           workdir: PathLike, outputs: ModelFiles, *, autoencoder_weights: PathLike,
                           autoencoder_info: PathLike, latents_out: PathLike, title: str = "",
                           logger: logging.Logger | None = None) -> TrainResult:
    """Train one view's regularised model of ``spec`` on a fold and export it with its latent codes.

    ``subjects``, ``files``, ``workdir``, ``outputs``: as for :func:`mskseg.nn.training.train_fold`;
    ``autoencoder_weights``/``autoencoder_info``: what :func:`train_autoencoder_fold` exported (same labels and
    auto-encoder settings; its encoder enters the loss for ``shape_prior`` and ``spar`` and records the codes
    for every regulariser); ``latents_out``: the ``.npz`` of the codes (``epoch``, ``kind`` pred/ref,
    ``subject``, ``slice``, ``codes`` ``(N, C)``; :mod:`mskseg.reporting.latents` draws them).
    """
    logger = logger or logging.getLogger(__name__)
    values = list(labels.values())
    _checked_autoencoder(_regularisation(spec, view), values, autoencoder_info, logger)  # before any caching
    inputs = [p for key in sorted(files) for p in files[key]] + [autoencoder_weights, autoencoder_info]
    with folder_lock(workdir, logger=logger):
        run_dir = run_folder(workdir, "regularised-", inputs, {
            "spec": repr(spec), "labels": dict(labels), "view": view,
            "subjects": {k: list(v) for k, v in subjects.items()}})
        cases = {role: cached_cases(run_dir, view, subjects[role], files[f"{role}_image"], files[f"{role}_mask"],
                                    files.get(f"{role}_weight") or None, values, logger) for role in ("train", "val")}
        logger.info("method %s, view %s: %d training and %d validation subjects; checkpoints in %s", spec.name,
                    view, len(cases["train"]), len(cases["val"]), run_dir)
        result, info = _train_regularised(spec, view, cases["train"], cases["val"], values, run_dir,
                                          (autoencoder_weights, autoencoder_info), logger)
        export_model(result, info, outputs, title=title)
        write_latents(checkpoint_latents(load_state(run_dir / STATE)), latents_out)
        remove_cache(run_dir / CACHE)
    logger.info("best epoch %d (%s %.4f) of %d; model %s, latent codes %s", result.best_epoch, spec.train.monitor,
                result.best_value, result.epochs_run, outputs.model, latents_out)
    return result


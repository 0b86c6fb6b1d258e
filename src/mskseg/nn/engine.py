"""The training loop: Adam, a learning-rate schedule, early stopping, checkpoints and exact resume.

:func:`train` fits a model to a Dataset of sample dicts (``image``, ``target``, ``weight``,
``sample_weight``; see the :mod:`mskseg.nn` conventions) and keeps everything in one work folder:

=====================  ================================================================
``last.pt``            full training state after the last finished epoch (resume point)
``best_weights.pt``    the model's state dict at the best epoch (by ``monitor``)
``last_weights.pt``    the model's state dict after the last finished epoch
``history.csv``        one row per epoch (:mod:`mskseg.nn.history`)
``curve.png``          the learning curves
``tensorboard/``       scalars per epoch, when ``tensorboard`` is on
=====================  ================================================================

Every file is replaced atomically and ``last.pt`` is written last, so a run killed at any moment
and started again with the same settings continues after the last finished epoch. Each epoch's
randomness derives from ``(seed, epoch)`` alone (sample order, the dataset's ``set_epoch``, torch's
global RNG for dropout), and on the CPU the loop runs with deterministic algorithms: a resumed
CPU run ends with weights bit-identical to an uninterrupted one. What the loss function trains
beside the model (a :class:`Companion`, e.g. SPAR's discriminator) is checkpointed and resumed with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mskseg.nn.checkpoint import (
    BEST,
    LAST,
    STATE,
    TENSORBOARD,
    CheckpointError,
    previous_state,
    remove_temporaries,
    write_epoch,
)
from mskseg.nn.device import autocast, describe, deterministic, resolve_device, resolve_precision, use_channels_last
from mskseg.nn.history import COLUMNS, epoch_line, history_frame
from mskseg.nn.settings import MONITORS, TrainSettings

__all__ = ["Companion", "LossFn", "TrainResult", "ValidateFn", "train"]

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ValidateFn = Callable[[nn.Module, torch.device, str], dict[str, float]]


class Companion(Protocol):
    """What trains beside the model inside its loss function (e.g. a discriminator, :mod:`mskseg.nn.spar_train`).

    ``fingerprint()`` joins the run's; ``prepare(device)`` runs when :func:`train` starts (move there, clear
    running sums); ``end_epoch`` after each epoch's training and validation returns extra history columns;
    ``state_dict()`` (plain types) is saved in ``last.pt`` under ``companion``, ``load_state_dict`` resumes it.
    """

    def fingerprint(self) -> str: ...
    def prepare(self, device: torch.device) -> None: ...
    def end_epoch(self, model: nn.Module, epoch: int, device: torch.device, precision: str) -> dict[str, float]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


_KEYS = ("image", "target", "weight", "sample_weight")
_FORMAT_VERSION = 1
#: curve.png is redrawn after an epoch when this many seconds passed since the last drawing (and at the end)
PLOT_INTERVAL_S = 30.0


@dataclass
class TrainResult:
    """What :func:`train` produced.

    ``best_weights``/``last_weights``: state-dict files (:func:`mskseg.nn.weights.load_weights`);
    ``history``: one row per epoch (:func:`mskseg.nn.history.history_frame`); ``best_epoch``
    (1-based) and ``best_value`` of the monitored value (NaN if it never was finite);
    ``epochs_run``: all epochs in the work folder, those before a resume included;
    ``resumed_from``: the epoch a resume continued after (for a finished run returned without
    training: its last epoch), None for a fresh start.
    """

    best_weights: Path
    last_weights: Path
    history: pd.DataFrame
    best_epoch: int
    best_value: float
    epochs_run: int
    stopped_early: bool
    resumed_from: int | None


def _derived_seed(seed: int, epoch: int, stream: str) -> int:
    """A 63-bit seed from ``(seed, epoch, stream)``, the same in every process and run."""
    digest = hashlib.sha256(f"mskseg-train:{seed}:{epoch}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a DataLoader worker from its torch seed (base seed + worker id)."""
    seed = torch.initial_seed()
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _epoch_batches(n: int, settings: TrainSettings, epoch: int) -> list[list[int]]:
    """The sample indices of each batch of ``epoch``, from seeded permutations of ``range(n)``."""
    generator = torch.Generator().manual_seed(_derived_seed(settings.seed, epoch, "order"))
    size = settings.batch_size
    if settings.steps_per_epoch is None:
        order = torch.randperm(n, generator=generator).tolist()
        if n > size:  # drop the incomplete last batch (a batch of one breaks BatchNorm)
            order = order[: n - n % size]
        return [order[i:i + size] for i in range(0, len(order), size)]
    needed = settings.steps_per_epoch * size
    order = []
    while len(order) < needed:
        order.extend(torch.randperm(n, generator=generator).tolist())
    return [order[i * size:(i + 1) * size] for i in range(settings.steps_per_epoch)]


def _memory_format(ndim: int) -> torch.memory_format:
    return torch.channels_last_3d if ndim == 5 else torch.channels_last


def _to_device(batch: Any, device: torch.device, channels_last: bool) -> tuple[torch.Tensor, ...]:
    if not isinstance(batch, Mapping) or any(key not in batch for key in _KEYS):
        found = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
        raise ValueError(f"training samples must be dicts with keys {', '.join(_KEYS)}; found {found}")
    moved = [batch[key].to(device, non_blocking=True) for key in _KEYS]
    if channels_last and moved[0].dim() in (4, 5):
        moved[0] = moved[0].contiguous(memory_format=_memory_format(moved[0].dim()))
    return tuple(moved)


def _run_fingerprint(settings: TrainSettings, model: nn.Module, n_samples: int, companion: Companion | None) -> str:
    """The settings' fingerprint plus the model's parameter names/shapes/dtypes, the training-set size and the
    companion's fingerprint."""
    shapes = [[key, list(value.shape), str(value.dtype)] for key, value in model.state_dict().items()]
    extra = {} if companion is None else {"companion": companion.fingerprint()}
    text = json.dumps({"v": _FORMAT_VERSION, "settings": settings.fingerprint(), "model": shapes, "n": n_samples,
                       **extra})
    return hashlib.sha256(text.encode()).hexdigest()


def _summary_writer_class() -> type:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ValueError("training setting 'tensorboard: true' needs the 'tensorboard' package "
                         f"(pip install tensorboard), or set it to false ({exc})") from None
    return SummaryWriter


def _improved(value: float, best: float, have_best: bool, higher: bool, delta: float) -> bool:
    """Whether ``value`` beats ``best`` by more than ``delta`` (the first epoch always counts; NaN never beats)."""
    if not have_best:
        return True
    if not math.isfinite(value):
        return False
    if not math.isfinite(best):
        return True
    return value > best + delta if higher else value < best - delta


def _make_scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings):
    if settings.schedule == "plateau":  # torch reduces when bad epochs exceed patience: pass patience - 1
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max" if MONITORS[settings.monitor] else "min", factor=settings.plateau_factor,
            patience=settings.plateau_patience - 1, threshold=settings.min_delta, threshold_mode="abs",
            min_lr=settings.min_lr, eps=0.0)
    if settings.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs, eta_min=settings.min_lr)
    return None


def _validate(validate: ValidateFn | None, model: nn.Module, device: torch.device, precision: str,
              seed: int) -> dict[str, float]:
    if validate is None:
        return {}
    model.eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        metrics = validate(model, device, precision)
    model.train()
    if not isinstance(metrics, Mapping):
        raise ValueError(f"the validate function must return a dict of metric -> float, got {type(metrics).__name__}")
    reserved = [key for key in metrics if key in COLUMNS and key not in ("val_loss", "val_dice")]
    if reserved:
        raise ValueError(f"the validate function returned reserved history column(s) {', '.join(reserved)}")
    return {str(key): float(value) for key, value in metrics.items()}


def _result(workdir: Path, state: Mapping, resumed_from: int | None) -> TrainResult:
    return TrainResult(best_weights=workdir / BEST, last_weights=workdir / LAST,
                       history=history_frame(state["history"]), best_epoch=int(state["best_epoch"]),
                       best_value=float(state["best_value"]), epochs_run=int(state["epoch"]),
                       stopped_early=bool(state["stopped_early"]), resumed_from=resumed_from)


class _Run:
    """The mutable state of one training run: optimizer, schedule, best epoch, history rows."""

    def __init__(self, model: nn.Module, settings: TrainSettings, device: torch.device, precision: str,
                 channels_last: bool, fingerprint: str, companion: Companion | None = None) -> None:
        self.model, self.settings, self.device, self.precision = model, settings, device, precision
        self.companion = companion
        self.channels_last, self.fingerprint = channels_last, fingerprint
        self.show_progress = settings.progress if settings.progress is not None else sys.stderr.isatty()
        self.optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=settings.betas,
                                          eps=settings.eps, weight_decay=settings.weight_decay)
        self.scheduler = _make_scheduler(self.optimizer, settings)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.rows: list[dict] = []
        self.best_value, self.best_epoch, self.bad_epochs, self.epoch, self.stopped = math.nan, 0, 0, 0, False

    def restore(self, state: Mapping, path: Path) -> None:
        """Continue from a state of :meth:`state` (read from ``path``)."""
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            if self.companion is not None:
                self.companion.load_state_dict(state["companion"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {path} does not fit this run ({exc}); delete it to start the "
                                  "training afresh") from exc
        self.rows = [dict(row) for row in state["history"]]
        self.best_value, self.best_epoch = float(state["best_value"]), int(state["best_epoch"])
        self.bad_epochs, self.epoch = int(state["bad_epochs"]), int(state["epoch"])

    def state(self) -> dict[str, Any]:
        """Everything needed to continue after :attr:`epoch` (plain types: loads with ``weights_only``)."""
        finished = self.stopped or self.epoch == self.settings.epochs
        return {"format": _FORMAT_VERSION, "fingerprint": self.fingerprint, "epoch": self.epoch,
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "scaler": self.scaler.state_dict(), "best_value": self.best_value, "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs, "history": self.rows, "finished": finished,
                "stopped_early": self.stopped, "settings": json.dumps(dataclasses.asdict(self.settings)),
                "companion": None if self.companion is None else self.companion.state_dict()}

    def train_epoch(self, train_set: Dataset, loss_fn: LossFn, epoch: int) -> tuple[float, int]:
        """The optimizer steps of ``epoch``; returns (mean batch loss, samples seen)."""
        from tqdm import tqdm

        settings, model, optimizer, scaler = self.settings, self.model, self.optimizer, self.scaler
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        torch.manual_seed(_derived_seed(settings.seed, epoch, "torch"))
        batches = _epoch_batches(len(train_set), settings, epoch)
        loader = DataLoader(train_set, batch_sampler=batches, num_workers=settings.num_workers,
                            pin_memory=self.device.type == "cuda",
                            worker_init_fn=_seed_worker if settings.num_workers else None,
                            generator=torch.Generator().manual_seed(_derived_seed(settings.seed, epoch, "workers")))
        model.train()
        total, samples = 0.0, 0
        with tqdm(total=len(batches), desc=f"epoch {epoch}/{settings.epochs}", leave=False, file=sys.stderr,
                  disable=not self.show_progress, dynamic_ncols=True) as bar:
            for step, batch in enumerate(loader, start=1):
                image, target, weight, sample_weight = _to_device(batch, self.device, self.channels_last)
                optimizer.zero_grad(set_to_none=True)
                with autocast(self.device, self.precision):
                    loss = loss_fn(model(image), target, weight, sample_weight)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise RuntimeError(f"training loss is {value} in epoch {epoch}, step {step} of {len(batches)}; "
                                       "stopped without writing a checkpoint (lower lr, set grad_clip, check inputs)")
                scaler.scale(loss).backward()
                if settings.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                total, samples = total + value, samples + int(image.shape[0])
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4g}", refresh=False)
        return total / len(batches), samples

    def validates(self, epoch: int) -> bool:
        """Whether ``epoch`` ends with a validation: every ``validation.every_epochs``-th and the last one."""
        return epoch % self.settings.validation.every_epochs == 0 or epoch == self.settings.epochs

    def run_epoch(self, train_set: Dataset, loss_fn: LossFn, validate: ValidateFn | None) -> bool:
        """Train, validate (when due) and step the schedule for the next epoch; return whether it is the best
        so far. Without a validation the monitored ``val_*`` value is unknown: best epoch, patience and
        plateau schedule stay as they were."""
        settings, epoch = self.settings, self.epoch + 1
        began, lr = time.perf_counter(), float(self.optimizer.param_groups[0]["lr"])
        train_loss, samples = self.train_epoch(train_set, loss_fn, epoch)
        train_seconds = time.perf_counter() - began
        validated = validate is not None and self.validates(epoch)
        metrics = _validate(validate if validated else None, self.model, self.device, self.precision,
                            _derived_seed(settings.seed, epoch, "validate"))
        val_seconds = time.perf_counter() - began - train_seconds if validated else math.nan
        extra = {} if self.companion is None else self.companion.end_epoch(self.model, epoch, self.device,
                                                                           self.precision)
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": math.nan, "val_dice": math.nan, "lr": lr,
               **metrics, **extra}
        if validated and settings.monitor != "train_loss" and settings.monitor not in metrics:
            raise ValueError(f"monitor {settings.monitor!r} is not among the validate function's results "
                             f"({', '.join(metrics) or 'none'})")
        better = False
        if settings.monitor == "train_loss" or validated:
            value = float(row[settings.monitor])
            better = _improved(value, self.best_value, self.best_epoch > 0, MONITORS[settings.monitor],
                               settings.min_delta)
            if better:
                self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            else:
                self.bad_epochs += 1
            if settings.schedule == "plateau":
                self.scheduler.step(value)
        if settings.schedule != "plateau" and self.scheduler is not None:
            self.scheduler.step()
        self.stopped = settings.early_stopping is not None and self.bad_epochs >= settings.early_stopping
        self.rows.append({**row, "seconds": time.perf_counter() - began, "train_seconds": train_seconds,
                          "val_seconds": val_seconds, "samples_per_s": samples / max(train_seconds, 1e-9)})
        self.epoch = epoch
        return better


def train(model: nn.Module, train_set: Dataset, loss_fn: LossFn, settings: TrainSettings, workdir: str | Path, *,
          validate: ValidateFn | None = None, logger: logging.Logger | None = None,
          companion: Companion | None = None) -> TrainResult:
    """Train ``model`` in place on ``train_set`` and keep its files in ``workdir``; resume if possible.

    Parameters
    ----------
    model : nn.Module
        The network with its initial weights; moved to the device (and channels-last when on).
        On return it holds the weights of the last epoch (those of ``last_weights.pt``).
    train_set : Dataset
        Items are dicts of ``image`` (C, *S) float32, ``target`` (*S) int64, ``weight`` (*S)
        float32, ``sample_weight`` () float32; ``set_epoch(epoch)`` is called when it exists.
    loss_fn : callable
        ``(logits, target, weight, sample_weight) -> scalar`` on the collated batch.
    settings : TrainSettings
    workdir : path
        The work folder (created). A ``last.pt`` from a run with the same settings, model
        architecture and training-set size is resumed; one from another run is deleted with the
        other outputs (a warning is logged); a finished one is returned without training.
    validate : callable, optional
        ``(model in eval mode, device, precision) -> {"val_dice": ..., "val_loss": ..., ...}``,
        called under ``torch.no_grad()`` after every ``settings.validation.every_epochs``-th epoch and
        the last; needed when ``monitor`` is ``val_*``.
    logger : logging.Logger, optional
        Where the device line and one line per epoch go (default ``mskseg.nn.engine``).
    companion : Companion, optional
        What ``loss_fn`` trains beside the model; its state is checkpointed and resumed with the model's.

    Raises
    ------
    ValueError
        Bad settings for this machine (fp16 on the CPU, no CUDA, tensorboard missing), a ``val_*``
        monitor without ``validate``, an empty training set, samples without the four keys.
    CheckpointError
        ``last.pt`` is unreadable (the message names it and says to delete it).
    RuntimeError
        A non-finite training loss (names epoch and step; no checkpoint of that epoch is written).
    """
    log = logger or logging.getLogger(__name__)
    if settings.monitor.startswith("val_") and validate is None:
        raise ValueError(f"monitor {settings.monitor!r} needs a validate function; pass validate= or use "
                         "monitor: train_loss")
    device = resolve_device(settings.device)
    precision = resolve_precision(device, settings.precision)
    writer_class = _summary_writer_class() if settings.tensorboard else None
    n_samples = len(train_set)
    if n_samples == 0:
        raise ValueError("the training set is empty")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    remove_temporaries(workdir)
    channels_last = use_channels_last(device, settings.channels_last)
    model.to(device)
    if channels_last:
        model.to(memory_format=_memory_format(max(p.dim() for p in model.parameters())))
    if companion is not None:
        companion.prepare(device)
    run = _Run(model, settings, device, precision, channels_last,
               _run_fingerprint(settings, model, n_samples, companion), companion)
    state = previous_state(workdir, run.fingerprint, log)
    if state is not None and state["finished"]:
        missing = [name for name in (BEST, LAST) if not (workdir / name).is_file()]
        if missing:
            raise CheckpointError(f"{workdir / STATE} holds a finished run but {', '.join(missing)} is missing; "
                                  "delete it to train again")
        model.load_state_dict(state["model"])
        log.info("%s holds a finished run (%d epochs, best epoch %d); nothing to train", workdir / STATE,
                 state["epoch"], state["best_epoch"])
        return _result(workdir, state, resumed_from=int(state["epoch"]))
    if state is not None:
        run.restore(state, workdir / STATE)
        log.info("resuming after epoch %d of %d (best epoch %d) from %s", run.epoch, settings.epochs,
                 run.best_epoch, workdir / STATE)
    resumed_from = run.epoch if state is not None else None
    steps = settings.steps_per_epoch or max(1, n_samples // settings.batch_size)
    log.info("training on %s, precision %s, channels_last %s: %d samples, %d batches of %d per epoch, up to %d "
             "epochs, monitor %s", describe(device), precision, channels_last, n_samples, steps, settings.batch_size,
             settings.epochs, settings.monitor)
    writer = writer_class(log_dir=str(workdir / TENSORBOARD), purge_step=run.epoch + 1) if writer_class else None
    plotted = time.monotonic()  # curve.png: after PLOT_INTERVAL_S and at the end
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
                deterministic(device.type == "cpu"):
            while run.epoch < settings.epochs and not run.stopped:
                better = run.run_epoch(train_set, loss_fn, validate)
                state = run.state()
                plot = state["finished"] or time.monotonic() - plotted >= PLOT_INTERVAL_S
                write_epoch(workdir, model, state, better, writer, plot=plot)
                plotted = time.monotonic() if plot else plotted
                log.info("%s", epoch_line(run.rows[-1], settings.epochs, better))
        if run.stopped:
            log.info("stopped early after epoch %d: %s did not improve for %d epochs; best epoch %d (%s %.4g)",
                     run.epoch, settings.monitor, run.bad_epochs, run.best_epoch, settings.monitor, run.best_value)
    finally:
        if writer is not None:
            writer.close()
    return _result(workdir, state, resumed_from=resumed_from)


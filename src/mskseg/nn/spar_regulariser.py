"""SPAR's second stage inside the training engine: the regularised loss, the discriminator, the latent codes.

:class:`ShapeRegulariser` is both the engine's loss function and its companion
(:class:`mskseg.nn.engine.Companion`). Per batch, for the adversarial regularisers (``adversarial_mask``,
``spar``) it first takes one discriminator step -- reference one-hot maps (or their codes) real, the
detached softmax of the segmenter's logits (or its codes) fake, binary cross-entropy, Adam -- and then
returns the segmenter's loss: the method's loss (:func:`mskseg.nn.fit.loss_function`, weight maps
included) plus ``lam`` times :func:`mskseg.nn.spar.regularisation_term`, with the discriminator held in
eval mode without gradients. The discriminator's weights, its optimiser's state and the recorded codes
go into the engine's checkpoint, so a killed run resumes exactly.

:class:`LatentRecorder` keeps the paper's Figure 3 data: after every epoch the frozen encoder's codes of the
segmenter's predicted probability maps and of the reference one-hot maps of a fixed, seeded set of slices,
each code map averaged over its positions to one vector.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mskseg.io.atomic import atomic_path
from mskseg.nn.data import SliceDataset
from mskseg.nn.device import autocast
from mskseg.nn.engine import LossFn
from mskseg.nn.models.spar import HalvingDiscriminator, LatentDiscriminator, MaskDiscriminator, ShapeAutoEncoder
from mskseg.nn.spar import _held, adam, one_hot, regularisation_term
from mskseg.nn.spar_settings import SparSettings

__all__ = ["LATENT_SLICES", "LatentRecorder", "ShapeRegulariser", "checkpoint_latents", "fixed_slices", "latent_arrays",
           "slice_multiple", "write_latents"]

#: at most this many slices have their codes recorded (paper Fig. 3)
LATENT_SLICES = 64
#: a seed offset for the discriminator's initial weights (its own stream, the segmenter's is unchanged)
_DISCRIMINATOR_SEED = 0x5BA2


def slice_multiple(settings: SparSettings, depth: int) -> int:
    """What the segmenter's slice sizes (pixels) must be multiples of: ``2**depth`` for the encoder of depth
    ``depth`` (the latent codes), times ``2**discriminator_layers`` for the code discriminator (``spar``), and
    ``2**discriminator_layers`` for the mask discriminator (``adversarial_mask``)."""
    powers = [depth]
    if settings.regulariser == "spar":
        powers.append(depth + settings.discriminator_layers)
    elif settings.regulariser == "adversarial_mask":
        powers.append(settings.discriminator_layers)
    return 2 ** max(powers)


def fixed_slices(dataset: SliceDataset, count: int, seed: int) -> list[int]:
    """Up to ``count`` item indices of ``dataset`` in a seeded order, slices with foreground first.

    Reads at most ``8 * count`` target slices; ascending. Background-only slices fill up when there are
    too few with foreground.
    """
    order = np.random.default_rng(seed).permutation(len(dataset))[: 8 * count]
    chosen, spare = [], []
    for index in order.tolist():
        c, k = dataset.locate(index)
        case = dataset.cases[c]
        (chosen if np.any(case.target.take(k, axis=dataset.axes[c])) else spare).append(index)
        if len(chosen) == count:
            break
    return sorted(chosen + spare[: count - len(chosen)])


def _pooled_codes(encoder: ShapeAutoEncoder, maps: torch.Tensor) -> torch.Tensor:
    """Codes ``(B, C)`` of maps ``(B, K, H, W)``: the encoder's code maps averaged over their positions."""
    return encoder.encode(maps).float().mean(dim=(2, 3))


class LatentRecorder:
    """Shape codes of fixed slices after every epoch: predicted and reference, one vector per slice.

    Parameters
    ----------
    images, targets : Tensor
        The slices' inputs ``(N, C_in, H, W)`` and integer labels ``(N, H, W)``, kept on the CPU.
    subjects, slices : sequence
        The subject and slice index (along the view's axis) of each slice.
    batch_size : int
        Slices per forward pass.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, subjects: Sequence[str], slices: Sequence[int],
                 *, batch_size: int = 16) -> None:
        if not len(images) == len(targets) == len(subjects) == len(slices):
            raise ValueError("images, targets, subjects and slices must be parallel")
        self.images, self.targets = images, targets.long()
        self.subjects, self.slices = [str(s) for s in subjects], [int(k) for k in slices]
        self.batch_size = int(batch_size)
        self.records: list[dict[str, Any]] = []

    @classmethod
    def from_dataset(cls, dataset: SliceDataset, *, count: int = LATENT_SLICES, seed: int = 0,
                     batch_size: int = 16) -> LatentRecorder:
        """The recorder of :func:`fixed_slices` of ``dataset`` (unaugmented items at the training size)."""
        indices = fixed_slices(dataset, count, seed)
        items = [dataset[i] for i in indices]
        places = [dataset.locate(i) for i in indices]
        return cls(torch.stack([item["image"] for item in items]), torch.stack([item["target"] for item in items]),
                   [dataset.cases[c].name for c, _ in places], [k for _, k in places], batch_size=batch_size)

    def fingerprint(self) -> str:
        """A hash of the recorded slices' places."""
        return hashlib.sha256(json.dumps([self.subjects, self.slices]).encode()).hexdigest()[:16]

    @torch.no_grad()
    def record(self, model: nn.Module, encoder: ShapeAutoEncoder, epoch: int, device: torch.device,
               precision: str) -> None:
        """Add the codes of ``epoch`` (replacing codes of this or later epochs); ``model``'s mode is restored."""
        mode = model.training
        model.eval()
        pred, ref = [], []
        try:
            for start in range(0, len(self.images), self.batch_size):
                image = self.images[start:start + self.batch_size].to(device)
                target = self.targets[start:start + self.batch_size].to(device)
                with autocast(device, precision):
                    probs = model(image).float().softmax(dim=1)
                    pred.append(_pooled_codes(encoder, probs).cpu())
                    ref.append(_pooled_codes(encoder, one_hot(target, probs.shape[1])).cpu())
        finally:
            model.train(mode)
        self.records = [r for r in self.records if r["epoch"] < epoch]
        self.records.append({"epoch": int(epoch), "pred": torch.cat(pred), "ref": torch.cat(ref)})

    def arrays(self) -> dict[str, np.ndarray]:
        """The records as parallel arrays: ``epoch``, ``kind`` (pred/ref), ``subject``, ``slice`` ``(N,)`` and
        ``codes`` ``(N, C)`` float32."""
        return latent_arrays(self.records, self.subjects, self.slices)

    def state(self) -> dict[str, Any]:
        return {"subjects": list(self.subjects), "slices": list(self.slices), "records": list(self.records)}

    def load(self, state: Mapping[str, Any]) -> None:
        if list(state["subjects"]) != self.subjects or [int(k) for k in state["slices"]] != self.slices:
            raise ValueError("the checkpoint's latent codes are of other slices")
        self.records = [dict(r) for r in state["records"]]


def latent_arrays(records: Sequence[Mapping[str, Any]], subjects: Sequence[str], slices: Sequence[int]
                  ) -> dict[str, np.ndarray]:
    """Parallel arrays of recorded codes (see :meth:`LatentRecorder.arrays`); epochs in order, pred before ref."""
    parts: dict[str, list] = {"epoch": [], "kind": [], "subject": [], "slice": [], "codes": []}
    for record in sorted(records, key=lambda r: int(r["epoch"])):
        for kind in ("pred", "ref"):
            codes = np.asarray(record[kind], dtype=np.float32)
            parts["epoch"].append(np.full(len(codes), int(record["epoch"]), np.int64))
            parts["kind"].append(np.full(len(codes), kind))
            parts["subject"].append(np.asarray(subjects, dtype=str))
            parts["slice"].append(np.asarray(slices, dtype=np.int64))
            parts["codes"].append(codes)
    if not parts["codes"]:
        return {"epoch": np.zeros(0, np.int64), "kind": np.zeros(0, "<U4"), "subject": np.zeros(0, "<U1"),
                "slice": np.zeros(0, np.int64), "codes": np.zeros((0, 0), np.float32)}
    return {key: np.concatenate(value) for key, value in parts.items()}


def checkpoint_latents(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The codes a :class:`ShapeRegulariser` with a recorder saved in an engine checkpoint (``last.pt``), as
    :func:`latent_arrays`."""
    latents = (state.get("companion") or {}).get("latents")
    if latents is None:
        raise ValueError("the checkpoint holds no latent codes (no regulariser with a recorder trained)")
    return latent_arrays(latents["records"], latents["subjects"], latents["slices"])


def write_latents(arrays: Mapping[str, np.ndarray], path: str | os.PathLike) -> None:
    """Write recorded codes (:func:`latent_arrays`) as an ``.npz`` atomically (no pickled objects)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **{key: np.asarray(value) for key, value in arrays.items()})


def _discriminator(settings: SparSettings, n_classes: int, latent_channels: int, seed: int
                   ) -> HalvingDiscriminator | None:
    """The regulariser's discriminator, its weights from ``seed`` (the global RNG untouched), or None."""
    if not settings.adversarial:
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + _DISCRIMINATOR_SEED)
        if settings.regulariser == "spar":
            return LatentDiscriminator(latent_channels, n_layers=settings.discriminator_layers)
        return MaskDiscriminator(n_classes, n_layers=settings.discriminator_layers,
                                 width=settings.mask_discriminator_width)


class ShapeRegulariser:
    """The engine's loss function and companion for a segmenter regularised as ``settings`` say.

    Parameters
    ----------
    settings : SparSettings
        The regulariser, ``lam``, the discriminator's layers and learning rate.
    base_loss : callable
        The method's loss ``(logits, target, weight, sample_weight) -> scalar``.
    autoencoder : ShapeAutoEncoder
        The trained shape auto-encoder, frozen (:func:`mskseg.nn.spar.freeze`); its encoder enters the loss
        for ``shape_prior`` and ``spar`` and records the latent codes for every regulariser.
    n_classes : int
        Classes of the segmenter's output (background included).
    recorder : LatentRecorder, optional
        Where the codes go after every epoch.
    seed : int
        Of the discriminator's initial weights.
    """

    def __init__(self, settings: SparSettings, base_loss: LossFn, autoencoder: ShapeAutoEncoder, *, n_classes: int,
                 recorder: LatentRecorder | None = None, seed: int = 0) -> None:
        if autoencoder.n_classes != n_classes:
            raise ValueError(f"the shape auto-encoder has {autoencoder.n_classes} classes, the segmenter {n_classes}")
        if autoencoder.training or any(p.requires_grad for p in autoencoder.parameters()):
            raise ValueError("the shape auto-encoder must be frozen (mskseg.nn.spar.freeze)")
        self.settings, self.base_loss, self.autoencoder, self.recorder = settings, base_loss, autoencoder, recorder
        self.discriminator = _discriminator(settings, n_classes, autoencoder.latent_channels, seed)
        self.optimiser = None if self.discriminator is None else adam(self.discriminator, settings.discriminator_lr)
        self._sums: dict[str, float] = {}
        self._batches = 0

    # --- the loss ------------------------------------------------------------------------------------------------
    def __call__(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                 sample_weight: torch.Tensor) -> torch.Tensor:
        """The discriminator's step on this batch (adversarial regularisers), then the segmenter's loss (scalar)."""
        probs = logits.float().softmax(dim=1)
        reference = one_hot(target, logits.shape[1])
        if self.discriminator is not None:
            self._discriminator_step(reference, probs.detach())
        base = self.base_loss(logits, target, weight, sample_weight)
        encoder = self.autoencoder if self.settings.needs_autoencoder else None
        with _held(self.discriminator):
            term = regularisation_term(self.settings.regulariser, probs, reference, encoder=encoder,
                                       discriminator=self.discriminator)
        self._add(reg=term)
        self._batches += 1
        return base + self.settings.lam * term

    def _discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> None:
        """One Adam step of the discriminator on binary cross-entropy: ``real`` maps 1, ``fake`` maps 0."""
        if self.settings.regulariser == "spar":
            with torch.no_grad():
                real, fake = self.autoencoder.encode(real), self.autoencoder.encode(fake)
        self.discriminator.train()
        self.optimiser.zero_grad(set_to_none=True)
        scores = self.discriminator.logits(torch.cat([real, fake])).float()
        real_score, fake_score = scores.split(real.shape[0])
        loss = (F.binary_cross_entropy_with_logits(real_score, torch.ones_like(real_score))
                + F.binary_cross_entropy_with_logits(fake_score, torch.zeros_like(fake_score)))
        loss.backward()
        self.optimiser.step()
        self._add(d_loss=loss, d_real=torch.sigmoid(real_score).mean(), d_fake=torch.sigmoid(fake_score).mean())

    def _add(self, **values: torch.Tensor) -> None:
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + float(value.detach())

    # --- the engine's companion ----------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """The settings and the recorded slices (what changes the weights or the checkpoint's content)."""
        parts = {"settings": self.settings.to_dict(), "latents": self.recorder.fingerprint() if self.recorder else ""}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def prepare(self, device: torch.device) -> None:
        """Move the auto-encoder and the discriminator to ``device``; clear the running means."""
        self.autoencoder.to(device)
        if self.discriminator is not None:
            self.discriminator.to(device)
        self._sums, self._batches = {}, 0

    def end_epoch(self, model: nn.Module, epoch: int, device: torch.device, precision: str) -> dict[str, float]:
        """Record the epoch's codes; return the means over its batches of ``reg`` (the unweighted term) and, with
        a discriminator, ``d_loss`` (nats), ``d_real``, ``d_fake`` (its mean outputs)."""
        if self.recorder is not None:
            self.recorder.record(model, self.autoencoder, epoch, device, precision)
        means = {key: value / max(self._batches, 1) for key, value in self._sums.items()}
        self._sums, self._batches = {}, 0
        return means

    def state_dict(self) -> dict[str, Any]:
        """The discriminator's weights, its optimiser's state and the recorded codes (plain types)."""
        disc = self.discriminator
        return {"discriminator": None if disc is None else {k: v.detach().cpu() for k, v in disc.state_dict().items()},
                "optimiser": None if self.optimiser is None else self.optimiser.state_dict(),
                "latents": None if self.recorder is None else self.recorder.state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict` (the running means start afresh)."""
        if (state["discriminator"] is None) != (self.discriminator is None):
            raise ValueError("the checkpoint's discriminator does not fit this regulariser")
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.optimiser.load_state_dict(state["optimiser"])
        if self.recorder is not None and state.get("latents") is not None:
            self.recorder.load(state["latents"])
        self._sums, self._batches = {}, 0

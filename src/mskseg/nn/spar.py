"""Training pieces of SPAR, shape-prior adversarial regularisation, and of the baselines it is compared with.

Two stages (paper 2.2-2.3, 3.2): (1) a :class:`~mskseg.nn.models.spar.ShapeAutoEncoder` learns the
reference label maps (:func:`train_autoencoder_step`, Adam 1e-2), then its encoder ``F`` is frozen
(:func:`freeze`); (2) at every batch (:func:`spar_step`, Adam 1e-4 each) a discriminator ``D`` learns
to tell reference from prediction (:func:`discriminator_step`), then the segmenter ``S`` minimises
cross-entropy plus ``lam`` times a regularisation term (:func:`segmenter_step`).

The regularisers of the paper's comparison (:data:`REGULARISERS`; ``y_hat`` = softmax of ``S(x)``):
``none`` (the baseline U-Net, term 0); ``adversarial_mask`` (``-log D(y_hat)``, ``D`` on label maps);
``shape_prior`` (``mean((F(y_hat) - F(y))**2)``, no ``D``); ``spar`` (``-log D(F(y_hat))``, ``D`` on codes).

Batches are mappings with ``image`` ``(B, C_in, *S)``, ``target`` ``(B, *S)`` (integer labels) and
optional ``sample_weight`` ``(B,)`` (weights the cross-entropy), moved to the segmenter's device.
Losses are means over voxels and samples (nats); steps return floats. ``precision``: ``fp32`` or
``bf16`` autocast (``fp16`` would need loss scaling and is refused).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mskseg.nn.device import autocast
from mskseg.nn.losses import get_loss
from mskseg.nn.models.spar import HalvingDiscriminator, ShapeAutoEncoder
from mskseg.nn.spar_settings import REGULARISERS, SparSettings

__all__ = ["ADVERSARIAL", "REGULARISERS", "STEP_PRECISIONS", "SparSettings", "adam", "autoencoder_loss",
           "discriminator_step", "freeze", "one_hot", "regularisation_term", "segmenter_step", "spar_step",
           "train_autoencoder_step"]

ADVERSARIAL = ("adversarial_mask", "spar")  #: the regularisers with a discriminator
STEP_PRECISIONS = ("fp32", "bf16")  #: a step's arithmetic (fp16 would need a gradient scaler)
_NEEDS_ENCODER = ("shape_prior", "spar")


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` in place and return it: no parameter requires grad, eval mode (batch-norm statistics
    used, not updated). A later ``.train()`` undoes the mode part; the steps refuse such an encoder."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def adam(module: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam (torch defaults: betas 0.9/0.999, eps 1e-8) over the trainable parameters of ``module``."""
    return torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)


def one_hot(target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Float one-hot maps ``(B, K, *S)`` of integer labels ``(B, *S)`` in ``0..K-1``."""
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, found {int(target.min())}..{int(target.max())}")
    return F.one_hot(target.long(), n_classes).movedim(-1, 1).float()


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _check_precision(precision: str) -> None:
    if precision not in STEP_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(STEP_PRECISIONS)} (fp16 would need loss scaling); "
                         f"got {precision!r}")


def _check_regulariser(regulariser: str, encoder: nn.Module | None, discriminator: nn.Module | None, *,
                       adversarial: bool = False) -> None:
    if adversarial and regulariser not in ADVERSARIAL:
        raise ValueError(f"a discriminator step needs an adversarial regulariser ({', '.join(ADVERSARIAL)}); "
                         f"got {regulariser!r}")
    if regulariser not in REGULARISERS:
        raise ValueError(f"regulariser must be one of {', '.join(REGULARISERS)}; got {regulariser!r}")
    if regulariser in _NEEDS_ENCODER:
        if encoder is None:
            raise ValueError(f"regulariser {regulariser!r} needs the frozen shape encoder (encoder=...)")
        if encoder.training or any(p.requires_grad for p in encoder.parameters()):
            raise ValueError("the shape encoder must be frozen (mskseg.nn.spar.freeze): eval mode, no trainable "
                             "parameters")
    if regulariser in ADVERSARIAL and discriminator is None:
        raise ValueError(f"regulariser {regulariser!r} needs a discriminator (discriminator=...)")


def _encode(encoder: nn.Module, maps: torch.Tensor) -> torch.Tensor:
    """Shape codes of maps ``(B, K, *S)``: ``encoder.encode`` of an auto-encoder, else ``encoder(maps)``."""
    return encoder.encode(maps) if isinstance(encoder, ShapeAutoEncoder) else encoder(maps)


def _batch(batch: Mapping[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, ...]:
    if not isinstance(batch, Mapping) or "image" not in batch or "target" not in batch:
        found = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
        raise ValueError(f"a SPAR batch is a mapping with 'image' and 'target' (optional 'sample_weight'): {found}")
    weight = batch.get("sample_weight")
    return (batch["image"].to(device), batch["target"].to(device).long(),
            None if weight is None else weight.to(device))


@contextlib.contextmanager
def _held(module: nn.Module | None) -> Iterator[None]:
    """``module`` in eval mode with no parameter requiring grad inside the block; both restored after."""
    if module is None:
        yield
        return
    modes = [(m, m.training) for m in module.modules()]
    flags = [(p, p.requires_grad) for p in module.parameters()]
    freeze(module)
    try:
        yield
    finally:
        for m, mode in modes:
            m.train(mode)
        for p, flag in flags:
            p.requires_grad_(flag)


def autoencoder_loss(ae: ShapeAutoEncoder, masks_onehot: torch.Tensor) -> torch.Tensor:
    """Categorical cross-entropy of the reconstruction: ``-mean over voxels of sum_k y_k log softmax(G(F(y)))_k``.

    ``masks_onehot`` ``(B, K, *S)``: one-hot (or soft) label maps ``y``, the input and the target; ``ae``
    runs in the mode the caller chose. Returns a scalar tensor (nats per voxel).
    """
    return F.cross_entropy(ae(masks_onehot).float(), masks_onehot.float())


def train_autoencoder_step(ae: ShapeAutoEncoder, optimiser: torch.optim.Optimizer,
                           batch: torch.Tensor | Mapping[str, torch.Tensor], *, precision: str = "fp32") -> float:
    """One optimisation step of the auto-encoder on reference label maps (stage 1; Adam 1e-2 in the paper).

    Parameters
    ----------
    ae, optimiser
        The auto-encoder, put in train mode and updated (parameters, batch-norm statistics), and
        an optimiser over its parameters.
    batch, precision
        Integer label maps ``(B, *S)`` in ``0..K-1`` (or a mapping whose ``target`` they are);
        autocast of the forward pass: ``fp32`` or ``bf16``.

    Returns
    -------
    float
        :func:`autoencoder_loss` before the step (nats per voxel).
    """
    _check_precision(precision)
    device = _device(ae)
    masks = one_hot((batch["target"] if isinstance(batch, Mapping) else batch).to(device), ae.n_classes)
    ae.train()
    optimiser.zero_grad(set_to_none=True)
    with autocast(device, precision):
        loss = autoencoder_loss(ae, masks)
    loss.backward()
    optimiser.step()
    return float(loss.detach())


def regularisation_term(regulariser: str, probs: torch.Tensor, reference: torch.Tensor, *,
                        encoder: nn.Module | None = None,
                        discriminator: HalvingDiscriminator | None = None) -> torch.Tensor:
    """The segmenter's regularisation term (scalar, mean over the batch) for ``regulariser``.

    Parameters
    ----------
    regulariser : str
        One of :data:`REGULARISERS`.
    probs, reference : Tensor
        ``y_hat``, the segmenter's softmax ``(B, K, *S)`` (gradients flow back through it), and ``y``,
        the one-hot reference ``(B, K, *S)`` (used by ``shape_prior`` only).
    encoder, discriminator : nn.Module or None
        ``F``, frozen (``shape_prior``, ``spar``), and ``D`` (``adversarial_mask``: on maps; ``spar``:
        on codes), run in the mode it is in (the caller holds it).

    Returns
    -------
    Tensor
        ``none``: 0; ``adversarial_mask``: ``-log D(y_hat)``; ``shape_prior``: mean over code elements and
        samples of ``(F(y_hat) - F(y))**2``; ``spar``: ``-log D(F(y_hat))`` (as ``softplus(-logit)``, nats).
    """
    _check_regulariser(regulariser, encoder, discriminator)
    if regulariser == "none":
        return probs.new_zeros(())
    if regulariser == "shape_prior":
        with torch.no_grad():
            real = _encode(encoder, reference)
        return F.mse_loss(_encode(encoder, probs).float(), real.float())
    fake = _encode(encoder, probs) if regulariser == "spar" else probs
    return F.softplus(-discriminator.logits(fake).float()).mean()


def segmenter_step(segmenter: nn.Module, optimiser: torch.optim.Optimizer, batch: Mapping[str, torch.Tensor], *,
                   regulariser: str, encoder: nn.Module | None = None,
                   discriminator: HalvingDiscriminator | None = None, lam: float = 1e-2,
                   precision: str = "fp32") -> dict[str, float]:
    """One step of the segmenter on ``CE(S(x), y) + lam * term`` (see :func:`regularisation_term`).

    Parameters
    ----------
    segmenter, optimiser
        ``S`` (images ``(B, C_in, *S)`` to logits ``(B, K, *S)``), put in train mode and updated, and
        an optimiser over its parameters only.
    batch, regulariser
        ``image``, ``target``, optional ``sample_weight`` (module notes); one of :data:`REGULARISERS`.
    encoder, discriminator : nn.Module or None
        ``F``, frozen (checked; ``shape_prior``, ``spar``), and ``D`` (``adversarial_mask``, ``spar``).
        Neither is updated: ``D`` runs in eval mode (batch-norm statistics untouched) with no
        parameter requiring grad, and its gradients are cleared.
    lam, precision
        ``lambda``, the weight of the term (1e-2 in the paper); autocast: ``fp32`` or ``bf16``.

    Returns
    -------
    dict
        ``loss`` (the total), ``ce`` and ``reg`` (the unweighted term), before the step.
    """
    _check_precision(precision)
    _check_regulariser(regulariser, encoder, discriminator)
    device = _device(segmenter)
    image, target, sample_weight = _batch(batch, device)
    segmenter.train()
    optimiser.zero_grad(set_to_none=True)
    with _held(discriminator), autocast(device, precision):
        logits = segmenter(image).float()
        ce = get_loss("ce")(logits, target, sample_weight=sample_weight)
        reference = one_hot(target, logits.shape[1])
        term = regularisation_term(regulariser, logits.softmax(dim=1), reference, encoder=encoder,
                                   discriminator=discriminator)
        loss = ce + lam * term
    loss.backward()
    optimiser.step()
    if discriminator is not None:
        discriminator.zero_grad(set_to_none=True)
    return {"loss": float(loss.detach()), "ce": float(ce.detach()), "reg": float(term.detach())}


def discriminator_step(discriminator: HalvingDiscriminator, optimiser: torch.optim.Optimizer,
                       batch: Mapping[str, torch.Tensor], *, segmenter: nn.Module, encoder: nn.Module | None = None,
                       regulariser: str, precision: str = "fp32") -> dict[str, float]:
    """One step of ``D`` on binary cross-entropy: reference codes (or maps) real, predicted ones fake.

    ``l_D = -log D(z) - log(1 - D(z_hat))`` (each a mean over the batch) with ``z = F(y)``,
    ``z_hat = F(y_hat)`` for ``spar`` and ``z = y``, ``z_hat = y_hat`` for ``adversarial_mask``;
    ``y`` is the one-hot reference, ``y_hat`` the segmenter's softmax. Real and fake pass through
    ``D`` as one batch of ``2B`` (batch norm sees both).

    Parameters
    ----------
    discriminator, optimiser
        ``D``, put in train mode and updated (parameters and batch-norm statistics), and an optimiser
        over its parameters only.
    batch : mapping
        ``image`` and ``target`` (see the module notes).
    segmenter, encoder : nn.Module
        ``S``, not updated: it predicts without gradients in eval mode (running batch-norm statistics,
        as Keras' ``predict``), its mode restored afterwards; ``F``, frozen (``spar``; else None).
    regulariser, precision : str
        Which discriminator this is (``adversarial_mask`` or ``spar``); autocast: ``fp32`` or ``bf16``.

    Returns
    -------
    dict
        ``d_loss`` (nats), ``d_real`` and ``d_fake`` (mean ``D`` of the real and fake inputs), before the step.
    """
    _check_precision(precision)
    _check_regulariser(regulariser, encoder, discriminator, adversarial=True)
    device = _device(segmenter)
    image, target, _ = _batch(batch, device)
    with torch.no_grad(), _held(segmenter), autocast(device, precision):
        probs = segmenter(image).float().softmax(dim=1)
        reference = one_hot(target, probs.shape[1])
        if regulariser == "spar":
            reference, probs = _encode(encoder, reference), _encode(encoder, probs)
    discriminator.train()
    optimiser.zero_grad(set_to_none=True)
    with autocast(device, precision):
        logits = discriminator.logits(torch.cat([reference, probs])).float()
    real, fake = logits.split(reference.shape[0])
    loss = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    loss.backward()
    optimiser.step()
    return {"d_loss": float(loss.detach()), "d_real": float(torch.sigmoid(real.detach()).mean()),
            "d_fake": float(torch.sigmoid(fake.detach()).mean())}


def spar_step(segmenter: nn.Module, optimiser: torch.optim.Optimizer, batch: Mapping[str, torch.Tensor], *,
              regulariser: str = "spar", encoder: nn.Module | None = None,
              discriminator: HalvingDiscriminator | None = None,
              discriminator_optimiser: torch.optim.Optimizer | None = None, lam: float = 1e-2,
              precision: str = "fp32") -> dict[str, float]:
    """One batch of stage 2: the discriminator step, then the segmenter step.

    The paper optimises ``D`` and ``S`` "alternatively at each batch" and describes ``D``'s step
    first; ``D`` goes first here so that it has learnt the current predictions before ``S`` tries to
    fool it (the usual GAN order, and what a Keras loop of ``D.train_on_batch`` then the combined
    model's ``train_on_batch`` does). Without a discriminator (``none``, ``shape_prior``) only the
    segmenter step runs.

    Parameters
    ----------
    segmenter, optimiser
        ``S`` and its optimiser (Adam 1e-4); updated by the segmenter step only.
    batch, regulariser, encoder, lam, precision
        As for :func:`segmenter_step` (``encoder``: the frozen ``F``, never updated).
    discriminator, discriminator_optimiser
        ``D`` and its optimiser (Adam 1e-4), for ``adversarial_mask`` and ``spar``; updated by
        the discriminator step only.

    Returns
    -------
    dict
        ``loss``, ``ce``, ``reg`` (:func:`segmenter_step`) and, with a discriminator, ``d_loss``,
        ``d_real``, ``d_fake`` (:func:`discriminator_step`).
    """
    _check_regulariser(regulariser, encoder, discriminator)
    losses: dict[str, float] = {}
    if regulariser in ADVERSARIAL:
        if discriminator_optimiser is None:
            raise ValueError(f"regulariser {regulariser!r} needs discriminator_optimiser (the discriminator's)")
        losses.update(discriminator_step(discriminator, discriminator_optimiser, batch, segmenter=segmenter,
                                         encoder=encoder, regulariser=regulariser, precision=precision))
    losses.update(segmenter_step(segmenter, optimiser, batch, regulariser=regulariser, encoder=encoder,
                                 discriminator=discriminator, lam=lam, precision=precision))
    return losses

"""Typed settings of SPAR and its baselines (:mod:`mskseg.nn.spar`), importable without torch.

A method's ``regularisation:`` block (:class:`SparSettings`); the segmenter's own learning rate,
epochs, batch size and seed come from the method's ``train:`` block.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import ClassVar

from mskseg.nn.settings import _bounded_real, _positive_int, _Settings

__all__ = ["AUTOENCODER_FIELDS", "REGULARISERS", "SparSettings"]

#: the paper's comparison: plain segmenter, adversarial on masks, shape prior (L2 of codes), SPAR
REGULARISERS = ("none", "adversarial_mask", "shape_prior", "spar")
#: the settings that decide the trained shape auto-encoder (:meth:`SparSettings.autoencoder_key`)
AUTOENCODER_FIELDS = ("autoencoder_lr", "autoencoder_epochs", "autoencoder_batch_size", "autoencoder_base",
                      "autoencoder_depth", "latent_channels")


@dataclass(frozen=True)
class SparSettings(_Settings):
    """SPAR and its baselines (paper 3.2): the regulariser, its weight, the discriminator, the auto-encoder.

    ``regulariser``: one of :data:`REGULARISERS`; ``lam``: weight of the term (1e-2, dimensionless);
    ``discriminator_lr``: Adam learning rate of the discriminator (1e-4); ``discriminator_layers``:
    its halving layers (3); ``mask_discriminator_width``: the features the adversarial baseline's
    discriminator lifts the label maps to (64; divisible by ``2**discriminator_layers``);
    ``autoencoder_lr``: Adam learning rate of the shape auto-encoder (1e-2);
    ``autoencoder_epochs``: its epochs (the paper gives none; 10 like the segmenter);
    ``autoencoder_batch_size``: its 2D slices per batch (32);
    ``autoencoder_base``/``autoencoder_depth``/``latent_channels``: its width, poolings and code
    channels (64, 3, None: 512 codes at 1/8 size, the paper's 512 features). Errors name the setting;
    :meth:`from_dict` rejects unknown keys.
    """

    WHAT: ClassVar[str] = "SPAR"

    regulariser: str = "spar"
    lam: float = 1e-2
    discriminator_lr: float = 1e-4
    discriminator_layers: int = 3
    mask_discriminator_width: int = 64
    autoencoder_lr: float = 1e-2
    autoencoder_epochs: int = 10
    autoencoder_batch_size: int = 32
    autoencoder_base: int = 64
    autoencoder_depth: int = 3
    latent_channels: int | None = None

    def __post_init__(self) -> None:
        where = "SPAR setting {!r}".format
        if self.regulariser not in REGULARISERS:
            raise ValueError(f"{where('regulariser')} must be one of {', '.join(REGULARISERS)}; "
                             f"got {self.regulariser!r}")
        object.__setattr__(self, "lam", _bounded_real(where("lam"), self.lam, low=0.0, inclusive=True))
        for name in ("discriminator_lr", "autoencoder_lr"):
            object.__setattr__(self, name, _bounded_real(where(name), getattr(self, name), low=0.0, inclusive=False))
        for name in ("autoencoder_epochs", "autoencoder_batch_size", "autoencoder_base", "autoencoder_depth",
                     "discriminator_layers", "mask_discriminator_width"):
            object.__setattr__(self, name, _positive_int(where(name), getattr(self, name)))
        if self.latent_channels is not None:
            object.__setattr__(self, "latent_channels",
                               _positive_int(where("latent_channels") + " (or null)", self.latent_channels))
        if self.codes % 2**self.discriminator_layers:
            raise ValueError(f"{where('discriminator_layers')}: {self.discriminator_layers} layer(s) halve the "
                             f"{self.codes} code features; they must be divisible by {2**self.discriminator_layers}")
        if self.mask_discriminator_width % 2**self.discriminator_layers:
            raise ValueError(f"{where('mask_discriminator_width')}: {self.mask_discriminator_width} is not divisible "
                             f"by {2**self.discriminator_layers} ({self.discriminator_layers} halving layers)")

    @property
    def codes(self) -> int:
        """Channels of the auto-encoder's code: ``latent_channels`` or ``autoencoder_base * 2**autoencoder_depth``."""
        return self.latent_channels or self.autoencoder_base * 2**self.autoencoder_depth

    @property
    def needs_autoencoder(self) -> bool:
        """Whether the regularisation term uses the frozen shape encoder (``shape_prior``, ``spar``).

        The latent codes of the paper's Figure 3 are recorded with it for every regulariser.
        """
        return self.regulariser in ("shape_prior", "spar")

    @property
    def adversarial(self) -> bool:
        """Whether a discriminator trains beside the segmenter (``adversarial_mask``, ``spar``)."""
        return self.regulariser in ("adversarial_mask", "spar")

    def autoencoder_key(self, seed: int | None = None) -> str:
        """A short stable hash (10 hex digits of SHA-256) of the auto-encoder's settings (:data:`AUTOENCODER_FIELDS`;
        ``latent_channels`` as its effective value) and of ``seed`` when given: methods with the same key can
        share one trained auto-encoder."""
        values = {name: getattr(self, name) for name in AUTOENCODER_FIELDS} | {"latent_channels": self.codes}
        if seed is not None:
            values["seed"] = int(seed)
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]

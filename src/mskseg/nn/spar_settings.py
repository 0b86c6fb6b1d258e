"""Typed settings of SPAR and its baselines (:mod:`mskseg.nn.spar`), importable without torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mskseg.nn.settings import _bounded_real, _positive_int, _Settings, _whole

__all__ = ["REGULARISERS", "SparSettings"]

#: the paper's comparison: plain segmenter, adversarial on masks, shape prior (L2 of codes), SPAR
REGULARISERS = ("none", "adversarial_mask", "shape_prior", "spar")


@dataclass(frozen=True)
class SparSettings(_Settings):
    """SPAR and its baselines (paper 3.2): the regulariser, its weight, the optimisers, the schedule.

    ``regulariser``: one of :data:`REGULARISERS`; ``lam``: weight of the term (1e-2); ``lr``: Adam
    learning rate of the segmenter (1e-4); ``discriminator_lr``: of the discriminator (1e-4);
    ``autoencoder_lr``: of the shape auto-encoder (1e-2); ``epochs``: segmenter epochs (10);
    ``autoencoder_epochs``: auto-encoder epochs (the paper gives none; 10 like the segmenter);
    ``batch_size``: 2D slices per batch (32); ``seed``: of weights and sample order;
    ``autoencoder_base``/``autoencoder_depth``/``latent_channels``: the auto-encoder (64, 3, None:
    512 codes at 1/8 size, the paper's 512 features); ``discriminator_layers``: halving layers of
    the discriminator (3). Errors name the setting; :meth:`from_dict` rejects unknown keys.
    """

    WHAT: ClassVar[str] = "SPAR"

    regulariser: str = "spar"
    lam: float = 1e-2
    lr: float = 1e-4
    discriminator_lr: float = 1e-4
    autoencoder_lr: float = 1e-2
    epochs: int = 10
    autoencoder_epochs: int = 10
    batch_size: int = 32
    seed: int = 0
    autoencoder_base: int = 64
    autoencoder_depth: int = 3
    latent_channels: int | None = None
    discriminator_layers: int = 3

    def __post_init__(self) -> None:
        where = "SPAR setting {!r}".format
        if self.regulariser not in REGULARISERS:
            raise ValueError(f"{where('regulariser')} must be one of {', '.join(REGULARISERS)}; "
                             f"got {self.regulariser!r}")
        object.__setattr__(self, "lam", _bounded_real(where("lam"), self.lam, low=0.0, inclusive=True))
        for name in ("lr", "discriminator_lr", "autoencoder_lr"):
            object.__setattr__(self, name, _bounded_real(where(name), getattr(self, name), low=0.0, inclusive=False))
        for name in ("epochs", "autoencoder_epochs", "batch_size", "autoencoder_base", "autoencoder_depth",
                     "discriminator_layers"):
            object.__setattr__(self, name, _positive_int(where(name), getattr(self, name)))
        if self.latent_channels is not None:
            object.__setattr__(self, "latent_channels",
                               _positive_int(where("latent_channels") + " (or null)", self.latent_channels))
        object.__setattr__(self, "seed", _whole(where("seed"), self.seed))
        codes = self.latent_channels or self.autoencoder_base * 2**self.autoencoder_depth
        if codes % 2**self.discriminator_layers:
            raise ValueError(f"{where('discriminator_layers')}: {self.discriminator_layers} layer(s) halve the "
                             f"{codes} code features; they must be divisible by {2**self.discriminator_layers}")

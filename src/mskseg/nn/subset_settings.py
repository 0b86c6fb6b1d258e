"""Training on a nested subset of a fold's training patients (the cartilage paper's training-set-size study),
typed as :mod:`mskseg.nn.settings`' blocks are; imported without torch."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import ClassVar

from mskseg.nn.settings import _Settings, _whole


@dataclass(frozen=True)
class SubsetSettings(_Settings):
    """Training on a subset of a fold's training patients (the cartilage paper's training-set-size study).

    Attributes
    ----------
    size
        Patients: a whole number >= 1, or a fraction of the fold's training patients in (0, 1].
    seed
        Seed of the patients' order; the subsets of one seed are nested (each size's patients are the first of
        one order, :func:`mskseg.splits.training_subset`).
    balance_by
        A manifest column (e.g. ``kl_grade``) every subset keeps balanced; None: a random order.
    equal_steps
        Scale the epochs by (the fold's training patients / the subset's) so that every size takes as many
        optimiser steps as the full set (the paper's 240/80/40/20 epochs); with ``steps_per_epoch`` set, an
        epoch is a fixed number of steps already and the epochs stay.
    """

    WHAT: ClassVar[str] = "train_subjects"

    size: int | float
    seed: int = 0
    balance_by: str | None = None
    equal_steps: bool = True

    def __post_init__(self) -> None:
        size = self.size
        if isinstance(size, bool) or not isinstance(size, numbers.Real) or not math.isfinite(size) or size <= 0:
            raise ValueError(f"train_subjects setting size must be a patient count >= 1 or a fraction in (0, 1], "
                             f"got {size!r}")
        if size > 1 and size != int(size):
            raise ValueError(f"train_subjects setting size above 1 must be a whole number of patients, got {size}")
        whole = size > 1 or isinstance(size, numbers.Integral)
        object.__setattr__(self, "size", int(size) if whole else float(size))
        object.__setattr__(self, "seed", _whole("train_subjects setting seed", self.seed))
        if self.balance_by is not None and (not isinstance(self.balance_by, str) or not self.balance_by):
            raise ValueError(f"train_subjects setting balance_by must be a column name or null, "
                             f"got {self.balance_by!r}")
        object.__setattr__(self, "equal_steps", bool(self.equal_steps))

    def epochs(self, epochs: int, *, steps_per_epoch: int | None, n_full: int, n_subset: int) -> int:
        """The epochs of a training on ``n_subset`` of ``n_full`` patients that should take as many steps as
        ``epochs`` on all of them (unchanged when ``steps_per_epoch`` fixes an epoch's steps or equal_steps is
        off)."""
        if not self.equal_steps or steps_per_epoch is not None or n_subset >= n_full:
            return epochs
        return math.ceil(epochs * n_full / n_subset)


__all__ = ["SubsetSettings"]

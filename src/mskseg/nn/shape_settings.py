"""Typed settings of the knee paper's deep shape regression, imported without torch.

:class:`ShapeRegressionSettings` in the style of :mod:`mskseg.nn.settings` (``from_dict`` with unknown
keys as errors, ``to_dict``, errors naming the setting); kept beside that module, which is at the
house's length limit. :meth:`ShapeRegressionSettings.train_settings` gives the engine's
:class:`~mskseg.nn.settings.TrainSettings`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from mskseg.nn.settings import (
    PRECISIONS,
    SCHEDULES,
    TrainSettings,
    _bounded_real,
    _positive_int,
    _Settings,
    _whole,
)

__all__ = ["SEPARABLE_FORMS", "ShapeRegressionSettings"]

#: the forms of the shape regression network's separable convolutions (:mod:`mskseg.nn.models.shape_regression`)
SEPARABLE_FORMS = ("spatial", "depthwise")
#: smallest cube: three stride-2 convolutions must leave more than one voxel for the instance norm
_MIN_CUBE = 9


@dataclass(frozen=True)
class ShapeRegressionSettings(_Settings):
    """The knee paper's deep shape regression (:mod:`mskseg.nn.shape_regression`): network, crop, training.

    ``cube_size``: voxels per side of the cube a crop is resampled to (88 in the paper, >= 9);
    ``n_modes``: shape-model modes predicted (None: all the model keeps); ``base_features``: channels of
    the first block (then 2x, 4x); ``separable``: ``spatial`` (k x 1 x 1, 1 x k x 1, 1 x 1 x k) or
    ``depthwise`` (depthwise k^3 + pointwise); ``in_channels``: image channels (e.g. 1 + the
    pre-segmentation's class probabilities); ``margin_mm``: added to the bone's bounding box on every
    side; ``isotropic``: widen the box to a cube in mm; ``scaled_coefficients``: coefficients in standard
    deviations (else mm); ``fine_tune_modes``: train the mean and modes too; ``lr``, ``epochs``,
    ``steps_per_epoch`` (None: one pass), ``batch_size``, ``schedule`` (plateau, cosine, constant),
    ``early_stopping`` (None: never), ``seed``, ``device``, ``precision``: the training
    (:class:`TrainSettings`, Adam).
    """

    WHAT: ClassVar[str] = "shape regression"

    cube_size: int = 88
    n_modes: int | None = None
    base_features: int = 16
    separable: str = "spatial"
    in_channels: int = 1
    margin_mm: float = 10.0
    isotropic: bool = False
    scaled_coefficients: bool = True
    fine_tune_modes: bool = False
    lr: float = 1e-4
    epochs: int = 100
    steps_per_epoch: int | None = None
    batch_size: int = 2
    schedule: str = "constant"
    early_stopping: int | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        where = "shape regression setting {!r}".format
        for name in ("cube_size", "base_features", "in_channels", "epochs", "batch_size"):
            object.__setattr__(self, name, _positive_int(where(name), getattr(self, name)))
        for name in ("n_modes", "steps_per_epoch", "early_stopping"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _positive_int(where(name) + " (or null)", getattr(self, name)))
        if self.cube_size < _MIN_CUBE:
            raise ValueError(f"{where('cube_size')} must be at least {_MIN_CUBE}, got {self.cube_size}")
        for name, low, inclusive in (("margin_mm", 0.0, True), ("lr", 0.0, False)):
            object.__setattr__(self, name, _bounded_real(where(name), getattr(self, name), low=low,
                                                         inclusive=inclusive))
        for name in ("isotropic", "scaled_coefficients", "fine_tune_modes"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{where(name)} must be true or false, got {getattr(self, name)!r}")
        object.__setattr__(self, "seed", _whole(where("seed"), self.seed))
        for name, allowed in (("separable", SEPARABLE_FORMS), ("schedule", SCHEDULES), ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{where(name)} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"{where('device')} must be auto, cpu, cuda or cuda:N; got {self.device!r}")

    def train_settings(self, *, validation: bool = False) -> TrainSettings:
        """The engine's settings: Adam at ``lr``, monitoring ``val_loss`` with a validation set, else ``train_loss``."""
        return TrainSettings(epochs=self.epochs, steps_per_epoch=self.steps_per_epoch, batch_size=self.batch_size,
                             lr=self.lr, schedule=self.schedule, early_stopping=self.early_stopping,
                             monitor="val_loss" if validation else "train_loss", seed=self.seed, device=self.device,
                             precision=self.precision, channels_last=False, progress=False)

"""Typed settings of a trained method, parsed once from its config entry and imported without torch.

:class:`TrainSettings` (the training loop, with its :class:`ValidationSettings`),
:class:`AugmentSettings` (data augmentation), :class:`MultiplanarSettings` (MPUNet's views),
:class:`PatchSettings` (3D patches), :class:`InferenceSettings` (where and how predictions run),
:class:`PretrainSettings` and :class:`InteractiveSettings` (the hip paper's transfer learning). Each
checks its values when it is made (errors name the setting) and has ``from_dict`` (unknown keys are
errors) and ``to_dict``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

#: arithmetic the networks may run in (``auto``: bf16 on a GPU that supports it, else fp32)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _from_dict(cls: type, values: Mapping, what: str) -> Any:
    """``cls(**values)`` after checking the keys (the error names the unknown ones and the allowed)."""
    allowed = [f.name for f in fields(cls) if f.init]
    unknown = sorted(str(key) for key in values if key not in allowed)
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
    return cls(**dict(values))


def _plain(settings: Any) -> dict[str, Any]:
    """A settings object as plain values (tuples as lists, nested settings as dicts)."""
    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return _plain(value)
        return value
    return {f.name: plain(getattr(settings, f.name)) for f in fields(settings) if f.init}


class _Settings:
    """``from_dict`` (unknown keys raise ValueError naming them and the allowed ones; bad values raise in
    ``__post_init__``) and ``to_dict`` (plain values) of a frozen settings dataclass; ``WHAT`` names it in errors."""

    WHAT: ClassVar[str] = "method"

    @classmethod
    def from_dict(cls, values: Mapping) -> Self:
        """Settings from a mapping (e.g. a config section); missing keys keep their defaults."""
        return _from_dict(cls, values, cls.WHAT)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (tuples as lists), what :meth:`from_dict` reads back."""
        return _plain(self)


def _positive_int(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or int(value) != value or value < 1:
        raise ValueError(f"{where} must be a positive whole number, got {value!r}")
    return int(value)


def _bounded_real(where: str, value: Any, *, low: float, inclusive: bool) -> float:
    """``value`` as a finite float ``>= low`` (``> low`` unless ``inclusive``); numeric strings too (YAML reads
    ``1e-4`` as text). The ValueError names ``where``."""
    number = value
    if isinstance(number, str):
        with contextlib.suppress(ValueError):
            number = float(number.strip())
    if isinstance(number, bool) or not isinstance(number, numbers.Real) or not math.isfinite(number) or (
            number < low if inclusive else number <= low):
        raise ValueError(f"{where} must be a finite number {'>=' if inclusive else '>'} {low:g}, got {value!r}")
    return float(number)


def _whole(where: str, value: Any) -> int:
    """``value`` as a whole number (e.g. a seed; any sign); the ValueError names ``where``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or int(value) != value:
        raise ValueError(f"{where} must be a whole number, got {value!r}")
    return int(value)


def _fraction(where: str, value: Any, *, closed: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            0 <= value <= 1 if closed else 0 <= value < 1):
        raise ValueError(f"{where} must lie in [0, 1{']' if closed else ')'}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ValidationSettings(_Settings):
    """When, and on which slices, a training scores its validation subjects.

    ``every_epochs``: validate after every k-th epoch (k, 2k, ...) and always after the last one;
    ``slices_per_volume``: None scores whole volumes, a number n scores n slices of each validation
    volume (plane views, 2D and 2.5D only): one drawn at random from each of n equal runs of the
    volume's slices, with ``seed`` and the subject's name, the same slices at every validation
    (a volume with fewer slices is scored whole).
    """

    WHAT: ClassVar[str] = "validation"

    every_epochs: int = 1
    slices_per_volume: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "every_epochs", _positive_int("validation setting 'every_epochs'",
                                                               self.every_epochs))
        if self.slices_per_volume is not None:
            object.__setattr__(self, "slices_per_volume", _positive_int(
                "validation setting 'slices_per_volume' (or null)", self.slices_per_volume))
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, numbers.Real) or int(seed) != seed:
            raise ValueError(f"validation setting 'seed' must be a whole number, got {seed!r}")
        object.__setattr__(self, "seed", int(seed))


SCHEDULES = ("plateau", "cosine", "constant")
#: monitored value -> whether higher is better
MONITORS = {"val_dice": True, "val_loss": False, "train_loss": False}
#: settings that do not change the trained weights (left out of the fingerprint)
_UNFINGERPRINTED = ("progress", "tensorboard", "num_workers")
#: numeric settings: name -> (whole number, bound, bound allowed, None allowed)
_NUMERIC = {
    "epochs": (True, 1, True, False), "steps_per_epoch": (True, 1, True, True), "batch_size": (True, 1, True, False),
    "lr": (False, 0, False, False), "eps": (False, 0, False, False), "weight_decay": (False, 0, True, False),
    "plateau_factor": (False, 0, False, False), "plateau_patience": (True, 1, True, False),
    "min_lr": (False, 0, True, False), "early_stopping": (True, 1, True, True), "min_delta": (False, 0, True, False),
    "seed": (True, -math.inf, True, False), "num_workers": (True, 0, True, False), "grad_clip": (False, 0, False, True),
}


def _number(name: str, value: Any, *, integer: bool = False) -> float | int:
    """``value`` as a number (numeric strings too: YAML reads ``1e-5`` as text); ValueError naming ``name``."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"training setting {name!r} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"training setting {name!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"training setting {name!r} must be finite, got {value!r}")
    if integer:
        if float(value) != int(value):
            raise ValueError(f"training setting {name!r} must be a whole number, got {value!r}")
        return int(value)
    return float(value)


@dataclass(frozen=True)
class TrainSettings(_Settings):
    """How :func:`train` trains; the defaults follow the hip paper (Adam 1e-5, lr x0.9 after 2 flat epochs).

    ``epochs``: maximum epochs; ``steps_per_epoch``: batches per epoch (None: one pass over the
    training set, the last incomplete batch dropped when there is more than one batch);
    ``lr``/``betas``/``eps``/``weight_decay``: Adam; ``schedule``: ``plateau`` (multiply the lr by
    ``plateau_factor`` once the monitored value has not improved for ``plateau_patience`` epochs
    in a row - Keras' counting; torch's ReduceLROnPlateau gets ``patience - 1``),
    ``cosine`` (cosine annealing to ``min_lr`` over ``epochs``) or ``constant``;
    ``early_stopping``: stop once the monitored value has not improved (by more than
    ``min_delta``) for this many epochs (None: never); ``monitor``: ``val_dice`` (higher is
    better), ``val_loss`` or ``train_loss`` (lower is better); ``device``/``precision``/
    ``channels_last``: see :mod:`mskseg.nn.device`; ``grad_clip``: max gradient 2-norm;
    ``progress``: a progress bar (None: when stderr is a terminal); ``tensorboard``: also log
    scalars for TensorBoard (needs the ``tensorboard`` package); ``validation``: how often and on
    which slices the validation subjects are scored (:class:`ValidationSettings`; a mapping is
    parsed). When a ``val_*`` value is monitored, the best epoch, ``early_stopping`` and the
    plateau schedule's ``plateau_patience`` count validations: an epoch without validation
    changes none of them.
    """

    WHAT: ClassVar[str] = "training"

    epochs: int = 40
    steps_per_epoch: int | None = None
    batch_size: int = 10
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "plateau"
    plateau_factor: float = 0.9
    plateau_patience: int = 2
    min_lr: float = 0.0
    early_stopping: int | None = 5
    monitor: str = "val_dice"
    min_delta: float = 0.0
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | str = "auto"
    grad_clip: float | None = None
    progress: bool | None = None
    tensorboard: bool = False
    validation: ValidationSettings = ValidationSettings()

    def __post_init__(self) -> None:
        if isinstance(self.validation, Mapping):
            object.__setattr__(self, "validation", ValidationSettings.from_dict(self.validation))
        elif not isinstance(self.validation, ValidationSettings):
            raise ValueError(f"training setting 'validation' must be a mapping, got {self.validation!r}")
        for name, (integer, low, inclusive, optional) in _NUMERIC.items():
            value = getattr(self, name)
            if value is None and optional:
                continue
            value = _number(name, value, integer=integer)
            if value < low or (value == low and not inclusive):
                raise ValueError(f"training setting {name!r} must be {'>=' if inclusive else '>'} {low}"
                                 f"{' or null' if optional else ''}, got {value}")
            object.__setattr__(self, name, value)
        if self.min_lr > self.lr:
            raise ValueError(f"training setting 'min_lr' ({self.min_lr}) must not exceed 'lr' ({self.lr})")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"training setting 'plateau_factor' must lie in (0, 1), got {self.plateau_factor}")
        betas = self.betas
        if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2 or not all(
                0 <= _number("betas", b) < 1 for b in betas):
            raise ValueError(f"training setting 'betas' must be two numbers in [0, 1), got {betas!r}")
        object.__setattr__(self, "betas", tuple(_number("betas", b) for b in betas))
        for name, allowed in (("schedule", SCHEDULES), ("monitor", tuple(MONITORS)), ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"training setting {name!r} must be one of {', '.join(allowed)}; "
                                 f"got {getattr(self, name)!r}")
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"training setting 'device' must be auto, cpu, cuda or cuda:N; got {self.device!r}")
        if not (isinstance(self.channels_last, bool) or self.channels_last == "auto"):
            raise ValueError(f"training setting 'channels_last' must be true, false or 'auto'; "
                             f"got {self.channels_last!r}")
        if not (isinstance(self.progress, bool) or self.progress is None):
            raise ValueError(f"training setting 'progress' must be true, false or null, got {self.progress!r}")
        if not isinstance(self.tensorboard, bool):
            raise ValueError(f"training setting 'tensorboard' must be true or false, got {self.tensorboard!r}")

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the settings that change the weights: all but progress, tensorboard, num_workers."""
        kept = {k: v for k, v in dataclasses.asdict(self).items() if k not in _UNFINGERPRINTED}
        return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()



#: motion-blur kernel lengths in voxels (inclusive)
BLUR_LENGTHS = (3, 7)


@dataclass(frozen=True)
class AugmentSettings(_Settings):
    """What to augment and how strongly (all zero: no augmentation).

    Attributes
    ----------
    p : float
        Probability in [0, 1] that each enabled zoom, rotation, shear, gamma and contrast transform
        is applied to a sample.
    scale : float
        Relative zoom range: 0.1 gives an isotropic zoom factor in [0.9, 1.1]; below 1.
    rotation_deg : float
        Rotation range in degrees, uniform in [-r, r]: in-plane (2D), about each array axis (3D).
    shear_deg : float
        Shear angle range in degrees, below 90 (2D: one shear; 3D: three, of the axis pairs 01, 02, 12).
    gamma : float
        Log-gamma range: gamma = exp(U(-g, g)) on intensities rescaled to [0, 1] and back.
    contrast : float
        Intensity scaling about the mean by a factor in [1 - c, 1 + c]; at most 1.
    motion_blur : float
        Probability in [0, 1] of a linear motion-blur kernel (random direction, length 3..7 voxels).
    elastic : float
        Probability in [0, 1] of an elastic deformation.
    elastic_max_displacement : float
        Maximum displacement of a control point along each deformed axis, in voxels.
    elastic_control_points : int
        Control points along each axis of the coarse grid (>= 5: the two outer rings are locked).
    deformed_weight : float
        ``sample_weight`` of an elastically deformed sample (1.0 otherwise).
    """

    WHAT: ClassVar[str] = "augmentation"

    p: float = 0.5
    scale: float = 0.0
    rotation_deg: float = 0.0
    shear_deg: float = 0.0
    gamma: float = 0.0
    contrast: float = 0.0
    motion_blur: float = 0.0
    elastic: float = 0.0
    elastic_max_displacement: float = 6.0
    elastic_control_points: int = 7
    deformed_weight: float = 1 / 3

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"augmentation setting {f.name} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"augmentation setting {f.name} must not be negative, got {value}")
        for name in ("p", "motion_blur", "elastic"):
            if getattr(self, name) > 1:
                raise ValueError(f"augmentation setting {name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.scale >= 1:
            raise ValueError(f"augmentation setting scale must be below 1 (zoom factor 1 +- scale), got {self.scale}")
        if self.shear_deg >= 90:
            raise ValueError(f"augmentation setting shear_deg must be below 90, got {self.shear_deg}")
        if self.contrast > 1:
            raise ValueError(f"augmentation setting contrast must be at most 1, got {self.contrast}")
        if int(self.elastic_control_points) != self.elastic_control_points or self.elastic_control_points < 5:
            raise ValueError("augmentation setting elastic_control_points must be an integer >= 5, "
                             f"got {self.elastic_control_points}")
        object.__setattr__(self, "elastic_control_points", int(self.elastic_control_points))

    @property
    def affine(self) -> bool:
        """Whether any affine component (zoom, rotation, shear) can be applied."""
        return self.p > 0 and (self.scale > 0 or self.rotation_deg > 0 or self.shear_deg > 0)

    @property
    def enabled(self) -> bool:
        """Whether any transform can change a sample."""
        intensity = self.p > 0 and (self.gamma > 0 or self.contrast > 0)
        elastic = self.elastic > 0 and self.elastic_max_displacement > 0
        return self.affine or intensity or elastic or self.motion_blur > 0


@dataclass(frozen=True)
class MultiplanarSettings(_Settings):
    """MPUNet's sampling (Perslev et al.): ``n_views`` random view normals at least ``min_angle_deg`` apart
    (drawn with ``seed``), slices of ``dim`` x ``dim`` pixels, ``samples_per_epoch`` training slices, each
    rotated in its plane by an angle uniform in ``[-max_rotation_deg, max_rotation_deg]`` (180: any angle).
    ``max_offset_fraction``: training slices lie at offsets uniform in ``[-f, f]`` times half the training
    span along the view's normal (0.5: as before). ``inference_span``: what each view's prediction slices
    span, ``diagonal`` (the volume's diagonal at the training pixel size: every voxel seen by every view) or
    ``train`` (the training slices' span and size, centred as in training, along the normal the training
    offsets; a voxel outside gets no vote from that view, one no view reaches is background) - recorded with
    the model."""

    WHAT: ClassVar[str] = "multiplanar"

    n_views: int = 6
    dim: int = 256
    min_angle_deg: float = 30.0
    samples_per_epoch: int = 1000
    seed: int = 0
    max_rotation_deg: float = 180.0
    inference_span: str = "diagonal"
    max_offset_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("n_views", "dim", "samples_per_epoch"):
            object.__setattr__(self, name, _positive_int(f"multiplanar setting {name!r}", getattr(self, name)))
        for name, high in (("min_angle_deg", 90), ("max_rotation_deg", 180), ("max_offset_fraction", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= high:
                raise ValueError(f"multiplanar setting {name!r} must be a number in [0, {high}], got {value!r}")
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "seed", int(self.seed))
        if self.inference_span not in ("diagonal", "train"):
            raise ValueError(f"multiplanar setting 'inference_span' must be 'diagonal' or 'train', "
                             f"got {self.inference_span!r}")


@dataclass(frozen=True)
class PatchSettings(_Settings):
    """3D patches: ``size`` (voxels, index order), ``samples_per_case`` per epoch, the share of patches
    centred on foreground, and the sliding window's ``overlap`` at inference."""

    WHAT: ClassVar[str] = "patch"

    size: tuple[int, int, int] = (64, 128, 128)
    samples_per_case: int = 8
    foreground_fraction: float = 0.5
    overlap: float = 0.5

    def __post_init__(self) -> None:
        size = self.size
        if isinstance(size, (str, bytes)) or not isinstance(size, Sequence) or len(size) != 3:
            raise ValueError(f"patch setting 'size' must be three whole numbers, got {size!r}")
        object.__setattr__(self, "size", tuple(_positive_int("patch setting 'size'", n) for n in size))
        object.__setattr__(self, "samples_per_case", _positive_int("patch setting 'samples_per_case'",
                                                                   self.samples_per_case))
        object.__setattr__(self, "foreground_fraction", _fraction("patch setting 'foreground_fraction'",
                                                                  self.foreground_fraction))
        object.__setattr__(self, "overlap", _fraction("patch setting 'overlap'", self.overlap, closed=False))


@dataclass(frozen=True)
class InferenceSettings(_Settings):
    """Predictions: slices (or patches x 8) per forward pass, ``device`` (auto, cpu, cuda, cuda:N) and
    ``precision`` (auto, fp32, bf16, fp16)."""

    WHAT: ClassVar[str] = "inference"

    batch_size: int = 32
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_size", _positive_int("inference setting 'batch_size'", self.batch_size))
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"inference setting 'device' must be auto, cpu, cuda or cuda:N; got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"inference setting 'precision' must be one of {', '.join(PRECISIONS)}; "
                             f"got {self.precision!r}")


@dataclass(frozen=True)
class PretrainSettings:
    """Pre-training on poor labels (hip paper): its own loss and training settings."""

    loss: str = "ce"
    train: TrainSettings = TrainSettings()

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "train": self.train.to_dict()}


@dataclass(frozen=True)
class InteractiveSettings(_Settings):
    """Fine-tuning in rounds (hip paper): the cumulative training-subject count of each round, and the
    distance (mm) within which two predicted classes collide in the |E| count logged after each round."""

    WHAT: ClassVar[str] = "interactive"

    rounds: tuple[int, ...]
    collision_eps_mm: float = 2.0

    def __post_init__(self) -> None:
        rounds = tuple(int(n) for n in self.rounds)
        if not rounds or rounds[0] < 1 or any(b <= a for a, b in itertools.pairwise(rounds)):
            raise ValueError(f"interactive rounds must be increasing positive subject counts, got {list(rounds)}")
        object.__setattr__(self, "rounds", rounds)
        object.__setattr__(self, "collision_eps_mm", float(self.collision_eps_mm))


__all__ = ["BLUR_LENGTHS", "MONITORS", "PRECISIONS", "SCHEDULES", "AugmentSettings", "InferenceSettings",
           "InteractiveSettings", "MultiplanarSettings", "PatchSettings", "PretrainSettings", "TrainSettings",
           "ValidationSettings"]

"""A trained segmentation method as config.yaml describes it (``kind: trained``).

:class:`MethodSpec` reads one ``methods.<name>`` entry, fills the defaults and checks that its
parts fit together (a 2.5D input needs ``unet25d``, ``volume`` needs ``unet3d``, a weight-map
loss needs a weight map ...), naming the method and the field in every error. It imports no
torch, so the workflow can use it while it builds the DAG.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mskseg.config import ConfigError

#: view modes and the models each trains (one per plane for three_plane)
PLANE_VIEWS = ("sagittal", "coronal", "axial")
VIEW_MODES = (*PLANE_VIEWS, "three_plane", "multiplanar", "volume")
NETWORKS = ("unet2d", "unet25d", "unet3d", "segnet", "deeplabv3plus", "vgg16unet")
LOSSES = ("ce", "wce", "dice", "dice_ce", "bce", "weighted_ce", "ce_distance")
WEIGHT_MAP_LOSSES = ("weighted_ce", "ce_distance")

_MULTIPLANAR = {"n_views": 6, "dim": 256, "min_angle_deg": 30.0, "samples_per_epoch": 1000, "seed": 0}
_PATCH = {"size": [64, 128, 128], "samples_per_case": 8, "foreground_fraction": 0.5, "overlap": 0.5}
_INFERENCE = {"batch_size": 32, "device": "auto", "precision": "auto"}


def views_of(view: str) -> list[str]:
    """The model views a view mode trains: a plane, the three planes, ``mpr`` or ``3d``."""
    if view in PLANE_VIEWS:
        return [view]
    if view == "three_plane":
        return ["axial", "coronal", "sagittal"]
    if view == "multiplanar":
        return ["mpr"]
    if view == "volume":
        return ["3d"]
    raise ValueError(f"unknown view {view!r}; allowed: {', '.join(VIEW_MODES)}")


def input_multiple(network: Mapping[str, Any]) -> int:
    """What every spatial input size of ``network`` must be divisible by."""
    name = network["name"]
    if name in ("unet2d", "unet25d", "unet3d", "segnet"):
        return 2 ** int(network.get("depth", 5 if name == "segnet" else 4))
    if name == "deeplabv3plus":
        return int(network.get("output_stride", 16))
    return 32  # vgg16unet


@dataclass(frozen=True)
class MethodSpec:
    """One trained method. ``train``/``augment`` are plain dicts here, checked by
    :meth:`mskseg.nn.engine.TrainSettings.from_dict` and :meth:`mskseg.nn.augment.AugmentSettings.from_dict`."""

    name: str
    network: dict[str, Any]
    view: str = "sagittal"
    n_slices: int = 1
    loss: str = "dice_ce"
    weight_map: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    augment: dict[str, Any] = field(default_factory=dict)
    multiplanar: dict[str, Any] = field(default_factory=lambda: dict(_MULTIPLANAR))
    patch: dict[str, Any] = field(default_factory=lambda: dict(_PATCH))
    fusion_step: float = 0.05
    inference: dict[str, Any] = field(default_factory=lambda: dict(_INFERENCE))
    threads: int = 2
    runtime_min: int = 120
    pretrain: dict[str, Any] | None = None
    interactive: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, name: str, spec: Mapping[str, Any], weight_maps: Mapping[str, Any] | None = None
                    ) -> "MethodSpec":
        """Read ``methods.<name>`` (a ``kind: trained`` entry); ``weight_maps``: the dataset's named maps."""
        where = f"methods.{name}"
        unknown = set(spec) - {"kind", "network", "view", "n_slices", "loss", "weight_map", "train", "augment",
                               "multiplanar", "patch", "fusion", "inference", "threads", "runtime_min", "pretrain",
                               "interactive"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
        network = dict(spec.get("network") or {"name": "unet2d"})
        if network.get("name") not in NETWORKS:
            raise ConfigError(f"{where}.network.name: {network.get('name')!r} is not one of {', '.join(NETWORKS)}")
        view = spec.get("view", "sagittal")
        if view not in VIEW_MODES:
            raise ConfigError(f"{where}.view: {view!r} is not one of {', '.join(VIEW_MODES)}")
        n_slices = int(spec.get("n_slices", 1))
        if n_slices < 1 or n_slices % 2 == 0:
            raise ConfigError(f"{where}.n_slices: must be odd and >= 1, got {n_slices}")
        if (network["name"] == "unet25d") != (n_slices > 1):
            raise ConfigError(f"{where}: n_slices > 1 (2.5D) goes with network unet25d and unet25d needs n_slices > 1 "
                              f"(got {network['name']} with n_slices {n_slices})")
        if n_slices > 1 and view not in PLANE_VIEWS + ("three_plane",):
            raise ConfigError(f"{where}: 2.5D input needs a plane view, not {view!r}")
        if (network["name"] == "unet3d") != (view == "volume"):
            raise ConfigError(f"{where}: view 'volume' goes with network unet3d and unet3d with view 'volume' "
                              f"(got {network['name']} with view {view!r})")
        loss = spec.get("loss", "dice_ce")
        if loss not in LOSSES:
            raise ConfigError(f"{where}.loss: {loss!r} is not one of {', '.join(LOSSES)}")
        weight_map = spec.get("weight_map")
        if loss in WEIGHT_MAP_LOSSES and not weight_map:
            raise ConfigError(f"{where}: loss {loss!r} needs `weight_map` (a name from the dataset's weight_maps)")
        if weight_map and weight_maps is not None and weight_map not in weight_maps:
            raise ConfigError(f"{where}.weight_map: {weight_map!r} is not among the dataset's weight_maps "
                              f"{sorted(weight_maps)}")
        pretrain = spec.get("pretrain")
        if pretrain is not None:
            pretrain = {"loss": pretrain.get("loss", "ce"), "train": dict(pretrain.get("train") or {})}
            if pretrain["loss"] in WEIGHT_MAP_LOSSES:
                raise ConfigError(f"{where}.pretrain.loss: the poor labels have no weight map; use ce, dice ...")
        interactive = spec.get("interactive")
        if interactive is not None:
            rounds = [int(n) for n in interactive.get("rounds") or []]
            if not rounds or any(b <= a for a, b in zip(rounds, rounds[1:])) or rounds[0] < 1:
                raise ConfigError(f"{where}.interactive.rounds: increasing positive subject counts, got {rounds}")
            interactive = {"rounds": rounds, "collision_eps_mm": float(interactive.get("collision_eps_mm", 2.0))}
        fusion_step = float((spec.get("fusion") or {}).get("step", 0.05))
        if not 0 < fusion_step <= 1 or abs(1 / fusion_step - round(1 / fusion_step)) > 1e-9:
            raise ConfigError(f"{where}.fusion.step: 1/step must be a whole number, got {fusion_step}")
        multiplanar = {**_MULTIPLANAR, **(spec.get("multiplanar") or {})}
        if multiplanar["dim"] % input_multiple(network):
            raise ConfigError(f"{where}.multiplanar.dim: {multiplanar['dim']} is not a multiple of "
                              f"{input_multiple(network)} ({network['name']})")
        patch = {**_PATCH, **(spec.get("patch") or {})}
        if view == "volume" and any(s % input_multiple(network) for s in patch["size"]):
            raise ConfigError(f"{where}.patch.size: {patch['size']} must be multiples of {input_multiple(network)}")
        return cls(name=name, network=network, view=view, n_slices=n_slices, loss=loss, weight_map=weight_map,
                   train=dict(spec.get("train") or {}), augment=dict(spec.get("augment") or {}),
                   multiplanar=multiplanar, patch=patch, fusion_step=fusion_step,
                   inference={**_INFERENCE, **(spec.get("inference") or {})}, threads=int(spec.get("threads", 2)),
                   runtime_min=int(spec.get("runtime_min", 120)),
                   pretrain=pretrain, interactive=interactive)

    @property
    def views(self) -> list[str]:
        return views_of(self.view)

    @property
    def multiple(self) -> int:
        return input_multiple(self.network)

    @property
    def network_options(self) -> dict[str, Any]:
        """Keyword options of :func:`mskseg.nn.models.build_model` (name and weights file excluded)."""
        options = {k: v for k, v in self.network.items() if k not in ("name", "weights")}
        if self.network["name"] == "unet25d":
            options["n_slices"] = self.n_slices
        return options

    def pretraining(self) -> "MethodSpec":
        """The same method set up for pre-training on poor labels (its own loss and training settings)."""
        if self.pretrain is None:
            raise ValueError(f"method {self.name!r} has no pretrain block")
        return replace(self, loss=self.pretrain["loss"], weight_map=None, train=self.pretrain["train"],
                       pretrain=None, interactive=None)

    def uses_weight_map(self) -> bool:
        return self.loss in WEIGHT_MAP_LOSSES


def interactive_split(rounds: list[int], n_train: int) -> list[int]:
    """The rounds' cumulative subject counts, capped at the training set (a warning case, not an error)."""
    capped = [min(n, n_train) for n in rounds]
    return [n for i, n in enumerate(capped) if i == 0 or n > capped[i - 1]]


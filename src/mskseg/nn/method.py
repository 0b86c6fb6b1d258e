"""A trained segmentation method as config.yaml describes it (``kind: trained``).

:meth:`MethodSpec.from_config` reads one ``methods.<name>`` entry once, when the workflow loads:
it fills the defaults, parses every block into its typed settings (:mod:`mskseg.nn.settings`) and
checks that the parts fit together (a 2.5D input needs ``unet25d``, ``volume`` needs ``unet3d``,
a weight-map loss needs a weight map ...), naming the method and the field in every error. The
library then uses the typed object only. It imports no torch, so the workflow can use it while it
builds the DAG.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from mskseg.errors import ConfigError
from mskseg.nn.settings import (
    AugmentSettings,
    InferenceSettings,
    InteractiveSettings,
    MultiplanarSettings,
    PatchSettings,
    PretrainSettings,
    TrainSettings,
)
from mskseg.nn.spar_settings import SparSettings
from mskseg.nn.subset_settings import SubsetSettings

#: view modes and the models each trains (one per plane for three_plane)
PLANE_VIEWS = ("sagittal", "coronal", "axial")
VIEW_MODES = (*PLANE_VIEWS, "three_plane", "multiplanar", "volume")
#: the views a model is trained on (file names and the ``view`` wildcard)
VIEW_NAMES = (*PLANE_VIEWS, "mpr", "3d")
NETWORKS = ("unet2d", "unet25d", "unet3d", "segnet", "deeplabv3plus", "vgg16unet")
LOSSES = ("ce", "wce", "dice", "dice_ce", "bce", "weighted_ce", "ce_distance")
WEIGHT_MAP_LOSSES = ("weighted_ce", "ce_distance")
KEYS = ("kind", "network", "view", "n_slices", "loss", "weight_map", "train", "augment", "multiplanar", "patch",
        "fusion", "inference", "threads", "runtime_min", "pretrain", "interactive", "postprocess",
        "regularisation", "train_subjects")

T = TypeVar("T")


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


def _parse(where: str, parse: Callable[[Mapping], T], values: Mapping | None) -> T:
    """A block parsed by ``parse``; its ValueError becomes a ConfigError naming ``where``."""
    try:
        return parse(dict(values or {}))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where}: {err}") from None


@dataclass(frozen=True)
class MethodSpec:
    """One trained method, every block typed."""

    name: str
    network: dict[str, Any]
    view: str = "sagittal"
    n_slices: int = 1
    loss: str = "dice_ce"
    weight_map: str | None = None
    train: TrainSettings = field(default_factory=TrainSettings)
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    multiplanar: MultiplanarSettings = field(default_factory=MultiplanarSettings)
    patch: PatchSettings = field(default_factory=PatchSettings)
    fusion_step: float = 0.05
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    threads: int = 2
    runtime_min: int = 120
    pretrain: PretrainSettings | None = None
    interactive: InteractiveSettings | None = None
    postprocess: bool = False
    regularisation: SparSettings | None = None
    train_subjects: SubsetSettings | None = None

    @classmethod
    def from_config(cls, name: str, spec: Mapping[str, Any], weight_maps: Mapping[str, Any] | None = None
                    ) -> MethodSpec:
        """Read ``methods.<name>`` (a ``kind: trained`` entry); ``weight_maps``: the dataset's named maps."""
        where = f"methods.{name}"
        unknown = set(spec) - set(KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
        network = dict(spec.get("network") or {"name": "unet2d"})
        if network.get("name") not in NETWORKS:
            raise ConfigError(f"{where}.network.name: {network.get('name')!r} is not one of {', '.join(NETWORKS)}")
        view = spec.get("view", "sagittal")
        if view not in VIEW_MODES:
            raise ConfigError(f"{where}.view: {view!r} is not one of {', '.join(VIEW_MODES)}")
        n_slices = int(spec.get("n_slices", 1))
        _check_network_view(where, network["name"], view, n_slices)
        loss = spec.get("loss", "dice_ce")
        if loss not in LOSSES:
            raise ConfigError(f"{where}.loss: {loss!r} is not one of {', '.join(LOSSES)}")
        weight_map = spec.get("weight_map")
        if loss in WEIGHT_MAP_LOSSES and not weight_map:
            raise ConfigError(f"{where}: loss {loss!r} needs `weight_map` (a name from the dataset's weight_maps)")
        if weight_map and weight_maps is not None and weight_map not in weight_maps:
            raise ConfigError(f"{where}.weight_map: {weight_map!r} is not among the dataset's weight_maps "
                              f"{sorted(weight_maps)}")
        fusion_step = float((spec.get("fusion") or {}).get("step", 0.05))
        if not 0 < fusion_step <= 1 or abs(1 / fusion_step - round(1 / fusion_step)) > 1e-9:
            raise ConfigError(f"{where}.fusion.step: 1/step must be a whole number, got {fusion_step}")
        multiple = input_multiple(network)
        multiplanar = _parse(f"{where}.multiplanar", MultiplanarSettings.from_dict, spec.get("multiplanar"))
        if multiplanar.dim % multiple:
            raise ConfigError(f"{where}.multiplanar.dim: {multiplanar.dim} is not a multiple of {multiple} "
                              f"({network['name']})")
        patch = _parse(f"{where}.patch", PatchSettings.from_dict, spec.get("patch"))
        if view == "volume" and any(s % multiple for s in patch.size):
            raise ConfigError(f"{where}.patch.size: {list(patch.size)} must be multiples of {multiple}")
        train = _parse(f"{where}.train", TrainSettings.from_dict, spec.get("train"))
        if train.validation.slices_per_volume is not None and view not in (*PLANE_VIEWS, "three_plane"):
            raise ConfigError(f"{where}.train.validation.slices_per_volume: a sample of slices needs a plane view; "
                              f"view {view!r} validates on whole volumes (use every_epochs to validate less often)")
        return cls(name=name, network=network, view=view, n_slices=n_slices, loss=loss, weight_map=weight_map,
                   train=train,
                   augment=_parse(f"{where}.augment", AugmentSettings.from_dict, spec.get("augment")),
                   multiplanar=multiplanar, patch=patch, fusion_step=fusion_step,
                   inference=_parse(f"{where}.inference", InferenceSettings.from_dict, spec.get("inference")),
                   threads=int(spec.get("threads", 2)), runtime_min=int(spec.get("runtime_min", 120)),
                   pretrain=_pretrain(where, spec.get("pretrain")),
                   interactive=_interactive(where, spec.get("interactive")),
                   postprocess=bool(spec.get("postprocess", False)),
                   regularisation=_regularisation(where, view, spec),
                   train_subjects=_train_subjects(where, spec))

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

    def pretraining(self) -> MethodSpec:
        """The same method set up for pre-training on poor labels (its own loss and training settings)."""
        if self.pretrain is None:
            raise ValueError(f"method {self.name!r} has no pretrain block")
        return replace(self, loss=self.pretrain.loss, weight_map=None, train=self.pretrain.train, pretrain=None,
                       interactive=None)

    def uses_weight_map(self) -> bool:
        return self.loss in WEIGHT_MAP_LOSSES

    def view_training_key(self, view: str) -> str:
        """What training the model of ``view`` depends on, without the method's name: two methods with equal
        keys train the same model (a three-plane method's sagittal model and a sagittal method's, trained alike),
        so the workflow trains it once. Settings that act after training (fusion, post-processing) and the job's
        threads and time limit are left out; the inference block stays (validation and the interactive rounds'
        scores use it)."""
        if view not in self.views:
            raise ValueError(f"method {self.name!r} trains no {view!r} model (its views: {self.views})")
        single = view if view in PLANE_VIEWS else self.view
        return repr(replace(self, name="", view=single, fusion_step=0.05, postprocess=False, threads=0,
                            runtime_min=0))


def _check_network_view(where: str, network: str, view: str, n_slices: int) -> None:
    if n_slices < 1 or n_slices % 2 == 0:
        raise ConfigError(f"{where}.n_slices: must be odd and >= 1, got {n_slices}")
    if (network == "unet25d") != (n_slices > 1):
        raise ConfigError(f"{where}: n_slices > 1 (2.5D) goes with network unet25d and unet25d needs n_slices > 1 "
                          f"(got {network} with n_slices {n_slices})")
    if n_slices > 1 and view not in (*PLANE_VIEWS, "three_plane"):
        raise ConfigError(f"{where}: 2.5D input needs a plane view, not {view!r}")
    if (network == "unet3d") != (view == "volume"):
        raise ConfigError(f"{where}: view 'volume' goes with network unet3d and unet3d with view 'volume' "
                          f"(got {network} with view {view!r})")


def _train_subjects(where: str, spec: Mapping[str, Any]) -> SubsetSettings | None:
    block = spec.get("train_subjects")
    if block is None:
        return None
    if spec.get("interactive") is not None or spec.get("pretrain") is not None:
        raise ConfigError(f"{where}.train_subjects: a subset of the training patients does not go with `pretrain` "
                          f"or `interactive` (their rounds pick their own scans)")
    return _parse(f"{where}.train_subjects", SubsetSettings.from_dict, block)


def _pretrain(where: str, block: Mapping[str, Any] | None) -> PretrainSettings | None:
    if block is None:
        return None
    loss = block.get("loss", "ce")
    if loss not in LOSSES:
        raise ConfigError(f"{where}.pretrain.loss: {loss!r} is not one of {', '.join(LOSSES)}")
    if loss in WEIGHT_MAP_LOSSES:
        raise ConfigError(f"{where}.pretrain.loss: the poor labels have no weight map; use ce, dice ...")
    return PretrainSettings(loss=loss, train=_parse(f"{where}.pretrain.train", TrainSettings.from_dict,
                                                    block.get("train")))


def _interactive(where: str, block: Mapping[str, Any] | None) -> InteractiveSettings | None:
    if block is None:
        return None
    return _parse(f"{where}.interactive", lambda b: InteractiveSettings(
        rounds=tuple(b.get("rounds") or ()), collision_eps_mm=b.get("collision_eps_mm", 2.0)), block)


def _regularisation(where: str, view: str, spec: Mapping[str, Any]) -> SparSettings | None:
    """The ``regularisation`` block (SPAR and its baselines): 2D slices of one plane, trained plainly."""
    block = spec.get("regularisation")
    if block is None:
        return None
    if view not in PLANE_VIEWS:
        raise ConfigError(f"{where}.regularisation: SPAR regularises 2D slices of one plane view "
                          f"({', '.join(PLANE_VIEWS)}), not view {view!r}")
    for other in ("pretrain", "interactive"):
        if spec.get(other) is not None:
            raise ConfigError(f"{where}.regularisation: a regularised method cannot have `{other}`")
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where}.regularisation: must be a mapping of SPAR settings, got {block!r}")
    return _parse(f"{where}.regularisation", SparSettings.from_dict, block)


def interactive_split(rounds: tuple[int, ...] | list[int], n_train: int) -> list[int]:
    """The rounds' cumulative subject counts, capped at the training set (a warning case, not an error)."""
    capped = [min(n, n_train) for n in rounds]
    return [n for i, n in enumerate(capped) if i == 0 or n > capped[i - 1]]

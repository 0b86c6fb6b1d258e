"""The knee paper's full method as config.yaml describes it (``kind: shape_fitting``), parsed once.

:meth:`ShapeFittingSpec.from_config` reads one ``methods.<name>`` entry of a dataset when the workflow
loads and checks it against the dataset (the pre-segmentation names a trained plane-view method, the
shape models are single bones, the landmark counts name them), naming the field in every error.
It imports no torch. The method (knee paper, 3.3-3.6):

1. *pre-segmentation*: the dataset's trained 2D method ``presegmentation`` (its fold's model);
2. *bounding box* of each bone: its largest component in the pre-segmentation, plus ``regression.margin_mm``;
3. *deep shape regression*: one network per bone (:class:`~mskseg.nn.shape_settings.ShapeRegressionSettings`),
   or one over the whole volume with a PCA layer per bone (``whole_volume: true``, the paper's 4.2);
4. *local refinement*: a 3D U-Net (``refinement``, a trained method with ``view: volume``) on patches
   centred on ``landmarks.counts`` landmarks per bone, chosen near ``landmarks.region`` by distance-based
   NMS (:mod:`mskseg.landmarks.selection`), merged with overlaps averaged;
5. *ensembling*: 2D and 3D probabilities added (``ensemble: false``: the 3D where the patches cover, the
   2D elsewhere), argmax, then the dataset's post-processing when ``postprocess: true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mskseg.errors import ConfigError
from mskseg.nn.method import PLANE_VIEWS, MethodSpec
from mskseg.nn.settings import InferenceSettings
from mskseg.nn.shape_settings import ShapeRegressionSettings

__all__ = ["KEYS", "WHOLE_VOLUME", "LandmarkSettings", "ShapeFittingSpec"]

KEYS = ("kind", "presegmentation", "regression", "whole_volume", "crops_per_subject", "crop_jitter_mm",
        "landmarks", "refinement", "ensemble", "postprocess", "inference", "threads", "runtime_min")
#: the value of the regression rule's ``part`` wildcard for the whole-volume (multi-shape) network
WHOLE_VOLUME = "all"


@dataclass(frozen=True)
class LandmarkSettings:
    """Which landmarks centre the refinement patches: ``counts`` per bone (knee paper: femur 100, tibia 30),
    those within ``within_mm`` of a ``region`` structure in at least ``min_fraction`` of the training subjects,
    spread by distance-based NMS; ``jitter_mm``: the patch centres' random shift in training (the fitted
    shapes' error at inference)."""

    counts: dict[str, int]
    region: tuple[str, ...]
    within_mm: float = 2.0
    min_fraction: float = 0.5
    jitter_mm: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "region": list(self.region), "within_mm": self.within_mm,
                "min_fraction": self.min_fraction, "jitter_mm": self.jitter_mm}


@dataclass(frozen=True)
class ShapeFittingSpec:
    """One ``kind: shape_fitting`` method, every block typed (module docstring)."""

    name: str
    presegmentation: str
    bones: tuple[str, ...]
    regression: ShapeRegressionSettings
    landmarks: LandmarkSettings
    refinement: MethodSpec | None
    whole_volume: bool = False
    crops_per_subject: int = 8
    crop_jitter_mm: float = 4.0
    ensemble: bool = True
    postprocess: bool = False
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    threads: int = 2
    runtime_min: int = 120

    @property
    def parts(self) -> list[str]:
        """The regression networks: one per bone, or the whole-volume one (:data:`WHOLE_VOLUME`)."""
        return [WHOLE_VOLUME] if self.whole_volume else list(self.bones)

    @classmethod
    def from_config(cls, name: str, spec: Mapping[str, Any], dataset: Mapping[str, Any],
                    shape_models: Mapping[str, list[tuple[str, bool]]]) -> ShapeFittingSpec:
        """Read ``methods.<name>`` of ``dataset`` (its resolved config), whose shape models are ``shape_models``."""
        where = f"methods.{name}"
        unknown = set(spec) - set(KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(KEYS)}")
        methods = dataset.get("methods") or {}
        pre = spec.get("presegmentation")
        if pre not in methods or methods[pre].get("kind") != "trained":
            raise ConfigError(f"{where}.presegmentation: {pre!r} is not a trained method of the dataset "
                              f"({[m for m, s in methods.items() if s.get('kind') == 'trained']})")
        if methods[pre].get("view", "sagittal") not in PLANE_VIEWS:
            raise ConfigError(f"{where}.presegmentation: {pre!r} must be a one-plane 2D method "
                              f"(view {'/'.join(PLANE_VIEWS)}), not view {methods[pre].get('view')!r}")
        if not shape_models:
            raise ConfigError(f"{where}: the method fits shape models, and the dataset has none (bones and "
                              "shape.enabled)")
        for bone, members in shape_models.items():
            if len(members) != 1 or members[0][1]:
                raise ConfigError(f"{where}: shape model {bone!r} has members {members}; the shape fitting "
                                  "needs one unmirrored bone per model (symmetric pairs are not supported yet)")
        bones = tuple(shape_models)
        regression = _parse(f"{where}.regression", ShapeRegressionSettings.from_dict, spec.get("regression"))
        landmarks = _landmarks(f"{where}.landmarks", spec.get("landmarks") or {}, dataset, bones)
        refinement = None
        if spec.get("refinement") is not None:
            block = {"network": {"name": "unet3d", "depth": 3}, **dict(spec["refinement"]), "kind": "trained",
                     "view": "volume"}
            refinement = MethodSpec.from_config(f"{name}.refinement", {k: v for k, v in block.items()
                                                                        if k != "kind"})
        if not spec.get("ensemble", True) and refinement is None:
            raise ConfigError(f"{where}.ensemble: false needs a refinement (without it the 2D probabilities are "
                              "the result)")
        return cls(name=name, presegmentation=str(pre), bones=bones, regression=regression, landmarks=landmarks,
                   refinement=refinement, whole_volume=bool(spec.get("whole_volume", False)),
                   crops_per_subject=_int(f"{where}.crops_per_subject", spec.get("crops_per_subject", 8)),
                   crop_jitter_mm=_number(f"{where}.crop_jitter_mm", spec.get("crop_jitter_mm", 4.0)),
                   ensemble=bool(spec.get("ensemble", True)), postprocess=bool(spec.get("postprocess", False)),
                   inference=_parse(f"{where}.inference", InferenceSettings.from_dict, spec.get("inference")),
                   threads=_int(f"{where}.threads", spec.get("threads", 2)),
                   runtime_min=_int(f"{where}.runtime_min", spec.get("runtime_min", 120)))


def _parse(where: str, parse: Any, values: Mapping | None) -> Any:
    try:
        return parse(dict(values or {}))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where}: {err}") from None


def _int(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: must be a positive whole number, got {value!r}")
    return value


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"{where}: must be a number >= 0, got {value!r}")
    return float(value)


def _landmarks(where: str, block: Mapping[str, Any], dataset: Mapping[str, Any], bones: tuple[str, ...]
               ) -> LandmarkSettings:
    from mskseg.landmarks.selection import DEFAULT_COUNTS

    unknown = set(block) - {"counts", "region", "within_mm", "min_fraction", "jitter_mm"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    counts = dict(block.get("counts") or {b: DEFAULT_COUNTS.get(b, 50) for b in bones})
    if set(counts) != set(bones):
        raise ConfigError(f"{where}.counts: give a count for each shape model {list(bones)}, got {list(counts)}")
    for bone, n in counts.items():
        _int(f"{where}.counts.{bone}", n)
    region = tuple(block.get("region") or dataset.get("cartilage") or ())
    labels = dataset["labels"]
    if not region or any(s not in labels for s in region):
        raise ConfigError(f"{where}.region: {list(region)} must name labels of the dataset {list(labels)} (default: "
                          "the dataset's cartilage)")
    fraction = _number(f"{where}.min_fraction", block.get("min_fraction", 0.5))
    if not 0 < fraction <= 1:
        raise ConfigError(f"{where}.min_fraction: must lie in (0, 1], got {fraction}")
    return LandmarkSettings(counts={b: int(counts[b]) for b in bones}, region=region,
                            within_mm=_number(f"{where}.within_mm", block.get("within_mm", 2.0)),
                            min_fraction=fraction, jitter_mm=_number(f"{where}.jitter_mm", block.get("jitter_mm", 2.0)))

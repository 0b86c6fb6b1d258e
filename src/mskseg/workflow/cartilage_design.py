"""The cartilage design study (Desai et al.): its config block, parsed once, and the training-size methods it adds.

``studies.cartilage_design`` names a dataset, the structure scored (femoral cartilage), its ``experiments``
(architecture, volumetric, loss, augmentation ...: each a list of ``{label, method}`` rows among the dataset's
trained methods; one method may stand in several experiments and is trained once) and ``training_size``:
architectures retrained on nested subsets of the training patients, ``sizes`` x ``seeds``.

:func:`expand_training_sizes` writes those trainings into the dataset's methods before the workflow plans
(a copy of the architecture with ``train_subjects: {size, seed, balance_by}``, its training seed the subset's,
named ``<method>N<size>S<seed>``, or ``<method>P<percent>S<seed>`` for a fraction) and adds them to the scored
methods, so that the evaluation stage scores them as any method. The full training set is the method itself
(seed: its own training seed); another seed retrains it on every patient (``size: 1.0``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mskseg.errors import ConfigError
from mskseg.workflow.settings import TABLE_METRICS

if TYPE_CHECKING:  # the config stage expands the study before any plan exists
    from mskseg.workflow.plan import Plan

#: the study's name in ``studies:`` and its target
CARTILAGE_DESIGN = "cartilage_design"


def size_method_name(method: str, size: int | float, seed: int) -> str:
    """The name of ``method`` retrained on ``size`` patients (or a fraction of them) with ``seed``.

    >>> size_method_name("unet", 5, 1), size_method_name("unet", 0.25, 2)
    ('unetN5S1', 'unetP25S2')
    """
    if isinstance(size, float) and size <= 1:
        return f"{method}P{round(size * 100):d}S{seed}"
    return f"{method}N{int(size)}S{seed}"


def size_runs(method: str, sizes: Mapping[str, Any], own_seed: int) -> list[tuple[int | float, int, str]]:
    """(size, seed, method name) of every training-size run of ``method``: each of ``sizes["sizes"]`` and the
    full set (1.0) per seed (default: the method's own); the full set with the method's own seed is the
    method itself.

    >>> size_runs("unet", {"sizes": [5]}, 1)
    [(5, 1, 'unetN5S1'), (1.0, 1, 'unet')]
    """
    runs = []
    for seed in [int(s) for s in sizes.get("seeds") or [own_seed]]:
        for size in [*sizes["sizes"], 1.0]:
            full = isinstance(size, float) and size == 1.0 and seed == own_seed
            runs.append((size, seed, method if full else size_method_name(method, size, seed)))
    return runs


def _size_block(block: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return block.get("training_size") or None


def expand_training_sizes(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the study's training-size methods added to its dataset (a new dict; idempotent)."""
    block = (config.get("studies") or {}).get(CARTILAGE_DESIGN)
    sizes = _size_block(block) if isinstance(block, Mapping) else None
    if not isinstance(sizes, Mapping) or "dataset" not in block or not {"methods", "sizes"} <= set(sizes):
        return dict(config)  # nothing to add, or a malformed block the schema names next
    key = f"studies.{CARTILAGE_DESIGN}.training_size"
    out = copy.deepcopy(dict(config))
    name = block["dataset"]
    dataset = out["datasets"].get(name)
    if dataset is None:
        raise ConfigError(f"studies.{CARTILAGE_DESIGN}.dataset: {name!r} is not a dataset of this run "
                          f"({list(out['datasets'])})")
    methods = dataset.setdefault("methods", {})
    evaluation = dataset.setdefault("evaluation", {})
    scored = list(evaluation.get("methods") or methods)
    for method in sizes["methods"]:
        base = methods.get(method)
        if base is None or base.get("kind") != "trained":
            raise ConfigError(f"{key}.methods: {method!r} is not a trained method of {name!r}")
        for size, seed, new in size_runs(method, sizes, int((base.get("train") or {}).get("seed", 0))):
            if new == method:
                continue  # the full set with the method's own seed: the method itself
            derived = copy.deepcopy(dict(base))
            derived["train_subjects"] = {"size": size, "seed": seed, "balance_by": sizes.get("balance_by"),
                                         "equal_steps": True}
            derived["train"] = {**dict(derived.get("train") or {}), "seed": seed}
            if new in methods and methods[new] != derived:
                raise ConfigError(f"{key}: the derived method name {new!r} is already a method of {name!r}")
            methods[new] = derived
            if new not in scored:
                scored.append(new)
    evaluation["methods"] = scored
    return out


@dataclass(frozen=True)
class DesignStudy:
    """The parsed ``studies.cartilage_design`` block.

    ``experiments``: name -> rows (label, method) in order; ``sizes``: architecture -> ((n or fraction, seed,
    method), ...) of its training-size runs, the full set included; ``structure``: the structure scored;
    ``metrics``: the table's metrics; ``alpha``: the significance level of Kruskal-Wallis and Dunn."""

    dataset: str
    structure: str
    experiments: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    sizes: tuple[tuple[str, tuple[tuple[float, int, str], ...]], ...]
    metrics: tuple[str, ...]
    alpha: float
    in_all: bool

    @classmethod
    def from_config(cls, block: Mapping[str, Any], plan: Plan) -> DesignStudy:
        """Parse and check the block against the plan (errors name the key)."""
        key = f"studies.{CARTILAGE_DESIGN}"
        dataset = block["dataset"]
        if dataset not in plan.training:
            raise ConfigError(f"{key}.dataset: {dataset!r} is not a dataset this run trains on ({list(plan.training)})")
        ds = plan[dataset]
        structure = str(block.get("structure", "femoral_cartilage"))
        if structure not in ds.labels:
            raise ConfigError(f"{key}.structure: {structure!r} is not a label of {dataset!r} ({list(ds.labels)})")
        experiments = []
        for name, rows in (block.get("experiments") or {}).items():
            parsed = tuple((str(r["label"]), str(r["method"])) for r in rows)
            labels = [label for label, _ in parsed]
            if len(set(labels)) != len(labels):
                raise ConfigError(f"{key}.experiments.{name}: labels must differ, got {labels}")
            for label, method in parsed:
                if method not in ds.evaluated:
                    raise ConfigError(f"{key}.experiments.{name}: {label}: {method!r} is not a scored method of "
                                      f"{dataset!r} (evaluation.methods: {ds.evaluated})")
            experiments.append((str(name), parsed))
        sizes = []
        block_sizes = _size_block(block)
        for method in (block_sizes or {}).get("methods", []):
            runs = size_runs(method, block_sizes, ds.trained[method].train.seed)
            sizes.append((str(method), tuple((float(size), seed, name) for size, seed, name in runs)))
        fov = (ds.config.get("evaluation") or {}).get("fov") or {}
        if experiments and structure not in (fov.get("structures") or ds.labels):
            raise ConfigError(f"{key}.structure: {structure!r} is not among datasets.{dataset}.evaluation.fov."
                              f"structures ({fov.get('structures')}): its Dice along the field of view is needed")
        if not experiments and not sizes:
            raise ConfigError(f"{key}: needs `experiments` or `training_size`")
        metrics = tuple(block.get("metrics") or ("dice", "voe"))
        unknown = [m for m in metrics if m not in TABLE_METRICS]
        if unknown:
            raise ConfigError(f"{key}.metrics: unknown {unknown}; known: {list(TABLE_METRICS)}")
        return cls(dataset, structure, tuple(experiments), tuple(sizes), metrics, float(block.get("alpha", 0.05)),
                   bool(block.get("in_all", False)))

    @property
    def methods(self) -> list[str]:
        """Every method the study reads, each once, in order of first appearance."""
        seen: dict[str, None] = {}
        for _, rows in self.experiments:
            seen.update((m, None) for _, m in rows)
        for _, runs in self.sizes:
            seen.update((m, None) for _, _, m in runs)
        return list(seen)


__all__ = ["CARTILAGE_DESIGN", "DesignStudy", "expand_training_sizes", "size_method_name", "size_runs"]

"""Assembling the configuration the workflow runs with: the scale overlay, and the user's own datasets.

**Scales.** ``scales.<scale>`` is deep-merged onto the config (:func:`apply_scale`); a scale never
replaces a dataset's real data (an overlay's ``source`` of another kind than the dataset's is dropped).

**The user's datasets.** A config file given with ``--configfile`` that declares ``datasets`` replaces the
shipped ``config.yaml``'s datasets instead of being merged into them. Snakemake deep-merges every
``--configfile`` (and ``--config``) into the workflow's ``config.yaml``, so a user's dataset would run
*beside* the demo's knee and hip phantoms, and a replaced ``source`` would hold two kinds at once.
:func:`compose_config` undoes that for ``datasets``:

* only the datasets the user's files declare are planned;
* a user dataset starts from a shipped one: the one it names in ``template`` (``template: knee``), or the
  shipped dataset of the same name; it inherits its labels, preprocessing, shape, methods and tables; the
  user's values go on top (a ``source`` the user gives replaces the template's), then the template's scale
  overlay (``scales.<scale>.datasets.<template>``), exactly as the scale overrides ``config.yaml``'s demo
  values (it never replaces a manifest or a layout by phantoms);
* a dataset with neither starts empty and must declare everything the schema requires.

Everything besides ``datasets`` (``scale``, ``qc``, ``scales``...) is merged as Snakemake merges it.

=====================================  ============================================================
the user's files declare               planned datasets
=====================================  ============================================================
no ``datasets``                        the shipped ones (the demo), with the scale overlay
``oaizib: {template: knee, source:}``  ``oaizib`` only: the shipped ``knee`` + the user's values
                                       (source replaced) + ``knee``'s scale overlay
``knee: {split: ...}``                 ``knee`` only: the shipped ``knee`` with the user's split
``datasets: {}``                       an error: nothing to run
=====================================  ============================================================
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mskseg.errors import ConfigError


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay`` merged in, mappings recursively, everything else replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _overlay(config: Mapping[str, Any]) -> dict[str, Any]:
    scale = config.get("scale", "demo")
    scales = config.get("scales", {}) or {}
    if scale not in scales and scale != "demo":
        raise ConfigError(f"scale: {scale!r} is not defined under 'scales' (defined: {', '.join(scales) or 'none'})")
    return copy.deepcopy(scales.get(scale, {}) or {})


def scale_dataset(config: Mapping[str, Any], name: str, dataset: Mapping[str, Any]) -> dict[str, Any]:
    """``dataset`` with the overlay ``scales.<scale>.datasets.<name>`` of ``config`` merged in.

    The overlay's ``source`` is ignored when it is another kind of source than the dataset's (a scale
    never replaces a manifest or a layout by phantoms).
    """
    ds_overlay = (_overlay(config).get("datasets") or {}).get(name) or {}
    new_src, old_src = ds_overlay.get("source"), dataset.get("source")
    if isinstance(new_src, Mapping) and isinstance(old_src, Mapping) and set(new_src) != set(old_src):
        del ds_overlay["source"]
    return deep_merge(dataset, ds_overlay)


def apply_scale(config: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``scales[scale]`` onto the config (each dataset by :func:`scale_dataset`)."""
    overlay = _overlay(config)
    overlay.pop("datasets", None)
    out = deep_merge({k: v for k, v in config.items() if k != "datasets"}, overlay)
    out["datasets"] = {name: scale_dataset(config, name, dataset)
                       for name, dataset in (config.get("datasets") or {}).items()}
    return out


def read_shipped(*candidates: str | Path) -> dict[str, Any]:
    """The shipped config file as written: the first of ``candidates`` that exists (``config.yaml`` in the
    working directory, as Snakemake's ``configfile:`` reads it, then the one beside the Snakefile);
    ``{}`` when none does."""
    for candidate in candidates:
        p = Path(candidate)
        if p.is_file():
            with open(p, encoding="utf-8") as handle:
                return yaml.safe_load(handle) or {}
    return {}


def user_datasets(overrides: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``datasets`` block of the user's config files and ``--config`` (None when they declare none)."""
    if not overrides or "datasets" not in overrides:
        return None
    declared = overrides["datasets"]
    if not isinstance(declared, Mapping):
        raise ConfigError(f"datasets: your config declares {type(declared).__name__}, not a mapping of "
                          "dataset name -> settings")
    if not declared:
        raise ConfigError("datasets: your config file declares an empty 'datasets' block: nothing to run")
    return dict(declared)


def compose_dataset(config: Mapping[str, Any], name: str, spec: Mapping[str, Any],
                    shipped: Mapping[str, Any]) -> dict[str, Any]:
    """One user dataset: its template (a shipped dataset), the user's values on top (a user's ``source``
    replaces the template's), then the template's scale overlay as ``config``'s ``scale`` says."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"datasets.{name}: expected a mapping of settings, got {type(spec).__name__}")
    shipped_datasets = shipped.get("datasets") or {}
    template = spec.get("template", name if name in shipped_datasets else None)
    if template is None:
        base: dict[str, Any] = {}
    elif template not in shipped_datasets:
        known = ", ".join(shipped_datasets) or "none"
        raise ConfigError(f"datasets.{name}.template: {template!r} is not a dataset of the shipped config.yaml "
                          f"(its datasets: {known})")
    else:
        base = copy.deepcopy(dict(shipped_datasets[template]))
    own = {k: v for k, v in spec.items() if k != "source"}
    merged = deep_merge(base, own)
    if "source" in spec:
        merged["source"] = copy.deepcopy(spec["source"])
    if template is None:
        return merged
    merged["template"] = template
    return scale_dataset(config, template, merged)


def compose_config(config: Mapping[str, Any], overrides: Mapping[str, Any] | None,
                   shipped: Mapping[str, Any] | None) -> dict[str, Any]:
    """``config`` (Snakemake's merged config) with the user's datasets replacing the shipped ones, scaled.

    ``overrides``: what the user's ``--configfile`` files and ``--config`` declare (Snakemake's
    ``workflow.config_settings.overwrite_config``); ``shipped``: the shipped ``config.yaml`` as written
    (:func:`read_shipped`), where the templates come from.
    """
    declared = user_datasets(overrides)
    if declared is None:
        scaled = apply_scale(config)
    else:
        base = {k: v for k, v in config.items() if k != "datasets"}
        scaled = apply_scale({**base, "datasets": {}})
        scaled["datasets"] = {name: compose_dataset(config, name, spec, shipped or {})
                              for name, spec in declared.items()}
    own = (overrides or {}).get("studies") or {}
    for name, study in own.items():
        if isinstance(study, Mapping) and study.get("dataset") not in scaled["datasets"]:
            raise ConfigError(f"studies.{name}.dataset: {study.get('dataset')!r} is not a dataset of this run "
                              f"({list(scaled['datasets'])})")
    if declared is not None:  # your own datasets: only the studies you declare, as you declare them (the shipped
        # blocks are the demo's: merged in, their experiments or rows would name the demo's methods), scaled
        overlay = _overlay(config).get("studies") or {}
        scaled["studies"] = {name: deep_merge(study, overlay.get(name) or {}) for name, study in own.items()}
    return scaled


__all__ = ["apply_scale", "compose_config", "compose_dataset", "deep_merge", "read_shipped", "scale_dataset",
           "user_datasets"]

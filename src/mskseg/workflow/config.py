"""Loading the workflow configuration: the scale overlay, schema validation with defaults, and the
cross-field checks a schema cannot state.

:func:`resolve_config` is the one entry point: it returns a new, complete configuration and leaves
Snakemake's ``config`` as the user wrote it. Errors name the config key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mskseg.errors import ConfigError
from mskseg.io.visits import VisitPatternError, compile_visit_pattern
from mskseg.workflow.cartilage_design import expand_training_sizes
from mskseg.workflow.compose import compose_config
from mskseg.workflow.settings import check_evaluation, check_trim, shape_models, source_kind

#: the schema every configuration is validated against (defaults are filled from it)
SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "config.schema.yaml"


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted (recursively), as plain dicts and lists.

    Snakemake re-runs a job when its params change, comparing them as written; params in a
    canonical order make reordering keys in ``config.yaml`` change nothing.
    """
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def validate_schema(config: dict[str, Any], schema: str | Path = SCHEMA) -> None:
    """Validate ``config`` in place against the JSON schema, filling its defaults (Snakemake's validator)."""
    from snakemake.utils import validate  # imported here: the library's other users need no Snakemake

    validate(config, schema=str(Path(schema).resolve()))


def resolve_config(config: Mapping[str, Any], schema: str | Path = SCHEMA, *,
                   overrides: Mapping[str, Any] | None = None, shipped: Mapping[str, Any] | None = None
                   ) -> dict[str, Any]:
    """The configuration the workflow runs with: the user's datasets in place of the shipped ones, the
    scale applied (:mod:`mskseg.workflow.compose`), the cartilage design study's training-size methods added
    (:mod:`mskseg.workflow.cartilage_design`), validated, defaults filled, checked.

    ``overrides``: what the user's ``--configfile`` files and ``--config`` declare; ``shipped``: the
    shipped ``config.yaml`` as written (the datasets a user dataset may name as its ``template``).
    Returns a new dict; ``config`` is not changed.
    """
    resolved = expand_training_sizes(compose_config(config, overrides, shipped))
    validate_schema(resolved, schema)
    for name, dataset in resolved["datasets"].items():
        check_dataset(name, dataset)
    return resolved


def check_dataset(name: str, dataset: Mapping[str, Any]) -> None:
    """Cross-field checks the schema cannot express; raises :class:`ConfigError` naming the key."""
    key = f"datasets.{name}"
    labels = dataset["labels"]
    values = list(labels.values())
    dup = sorted({v for v in values if values.count(v) > 1})
    if dup:
        raise ConfigError(f"{key}.labels: label value(s) {dup} used by more than one structure")

    def known(field: str, names: list[str]) -> None:
        unknown = [n for n in names if n not in labels]
        if unknown:
            raise ConfigError(f"{key}.{field}: {unknown} not among the declared labels {list(labels)}")

    known("bones", list(dataset.get("bones", [])))
    known("cartilage", list(dataset.get("cartilage", [])))
    known("expected_structures", list(dataset.get("expected_structures", [])))
    known("preprocess.crop.structures", list(dataset.get("preprocess", {}).get("crop", {}).get("structures", [])))
    known("postprocess.keep_components", list((dataset.get("postprocess") or {}).get("keep_components") or {}))
    for pair in dataset.get("symmetric_pairs", []):
        known("symmetric_pairs", list(pair))
    if source_kind(dataset) == "synthetic":
        from mskseg.synthetic import LABELS  # imported here: only synthetic datasets need it

        kind = dataset["source"]["synthetic"]["kind"]
        subset = dataset.get("undeclared_labels") == "background" and all(
            LABELS[kind].get(n) == v for n, v in labels.items())  # some of the phantom's structures, the rest 0
        if dict(labels) != LABELS[kind] and not subset:
            raise ConfigError(f"{key}.labels: the synthetic {kind} phantom writes {LABELS[kind]}, "
                              f"the config declares {dict(labels)}")
    _check_shape(key, dataset, known)
    check_evaluation(name, dataset)
    split = dataset.get("split", {})
    if split.get("method") == "fixed" and not split.get("file"):
        raise ConfigError(f"{key}.split.file: method 'fixed' needs a split file")
    fractions = split.get("fractions")
    if (split.get("method") == "holdout" and fractions is not None and len(fractions) == 3
            and not (fractions[0] > 0 and fractions[2] > 0)):
        raise ConfigError(f"{key}.split.fractions: the train and test fractions of method 'holdout' must be "
                          f"> 0 (val may be 0), got {list(fractions)}")
    pattern = (dataset["source"].get(source_kind(dataset)) or {}).get("visit_pattern")
    if pattern is not None:
        try:
            compile_visit_pattern(pattern, f"{key}.source.{source_kind(dataset)}.visit_pattern")
        except VisitPatternError as err:
            raise ConfigError(str(err)) from err
    if split.get("stratify") and source_kind(dataset) == "synthetic":
        raise ConfigError(f"{key}.split.stratify: synthetic datasets have no column to stratify by")


def _check_shape(key: str, dataset: Mapping[str, Any], known: Any) -> None:
    shape = dataset.get("shape", {})
    for model, members in (shape.get("models") or {}).items():
        known(f"shape.models.{model}", list(members))
    known("shape.mirror", list(shape.get("mirror", [])))
    if not (shape.get("enabled", True) and dataset.get("bones")):
        return
    owners: dict[str, str] = {}
    for model, members in shape_models(dataset).items():
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", model):
            raise ConfigError(f"{key}.shape.models: model name {model!r} must be letters and digits "
                              "(it names files and a wildcard)")
        for structure, _ in members:
            if structure in owners:
                raise ConfigError(f"{key}.shape.models: {structure!r} is in both {owners[structure]!r} and {model!r}")
            owners[structure] = model
    check_trim(key, dataset)


__all__ = ["SCHEMA", "ConfigError", "canonical", "check_dataset", "resolve_config",
           "validate_schema"]

"""A dataset's manifest from the source the config names: a manifest file or a named folder layout.

In order: the files (:func:`~mskseg.io.manifest.read_manifest` or :func:`~mskseg.io.layouts.scan_layout`);
patients and visits from the subject ids (``visit_pattern``, :mod:`mskseg.io.visits`; on by default); the
covariates table (its ``patient`` column overrides the patient); the ``subset`` (a list of subjects, a file
of them, or the first N in sorted order).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mskseg.io.layouts import scan_layout
from mskseg.io.manifest import ManifestError, add_covariates, read_manifest
from mskseg.io.visits import DEFAULT_VISIT_PATTERN, assign_visits

#: source kinds read from files (the third, ``synthetic``, is written by the workflow itself)
FILE_SOURCES = ("manifest", "layout")


def read_source(kind: str, source: Mapping[str, Any], where: str = "source") -> pd.DataFrame:
    """The manifest of a ``manifest`` (``{path}``) or ``layout`` (``{name, path}``) source, with patients from
    ``visit_pattern`` (default :data:`~mskseg.io.visits.DEFAULT_VISIT_PATTERN`; None: off), its covariates
    and its ``subset``. ``where``: the config key, for messages."""
    if kind not in FILE_SOURCES:
        raise ValueError(f"a source read from files is one of {', '.join(FILE_SOURCES)}, not {kind!r}")
    frame = read_manifest(source["path"]) if kind == "manifest" else scan_layout(source["name"], source["path"])
    frame = assign_visits(frame, source.get("visit_pattern", DEFAULT_VISIT_PATTERN), f"{where}.visit_pattern")
    if source.get("covariates"):
        frame = add_covariates(frame, source["covariates"])
    if source.get("subset"):
        frame = select_subset(frame, source["subset"], f"{where}.subset")
    return frame


def subset_ids(subset: Mapping[str, Any], available: list[str], where: str = "subset") -> list[str]:
    """The subject ids a ``subset`` selects from ``available``, in ``available``'s order.

    ``{subjects: [...]}`` or ``{file: path}`` (one id per line; blank lines and ``#`` comments skipped):
    exactly those, each of which must exist; ``{first: N}``: the first N in sorted order (all when fewer).

    Raises
    ------
    ManifestError
        Naming ``where`` and the ids that are not in the source, an unreadable file, an empty selection,
        or a subset that is not exactly one of the three.
    """
    if len(subset) != 1 or next(iter(subset)) not in ("subjects", "file", "first"):
        raise ManifestError(f"{where}: give exactly one of subjects, file, first (got {', '.join(subset) or 'none'})")
    if "first" in subset:
        chosen = set(sorted(available)[: int(subset["first"])])
    else:
        if "subjects" in subset:
            wanted = [str(s).strip() for s in subset["subjects"]]
        else:
            path = Path(subset["file"])
            if not path.is_file():
                raise ManifestError(f"{where}.file: {path} does not exist")
            lines = path.read_text(encoding="utf-8").splitlines()
            wanted = [ln.split("#", 1)[0].strip() for ln in lines]
            wanted = [w for w in wanted if w]
        missing = [w for w in wanted if w not in set(available)]
        if missing:
            shown = ", ".join(missing[:10]) + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
            raise ManifestError(f"{where}: subject(s) {shown} not in the source ({len(available)} subjects there)")
        chosen = set(wanted)
    if not chosen:
        raise ManifestError(f"{where}: selects no subject")
    return [s for s in available if s in chosen]


def select_subset(frame: pd.DataFrame, subset: Mapping[str, Any], where: str = "subset") -> pd.DataFrame:
    """The rows of ``frame`` whose subject :func:`subset_ids` selects (a new frame, index reset)."""
    keep = set(subset_ids(subset, frame["subject"].astype(str).tolist(), where))
    return frame[frame["subject"].astype(str).isin(keep)].reset_index(drop=True)


__all__ = ["FILE_SOURCES", "read_source", "select_subset", "subset_ids"]

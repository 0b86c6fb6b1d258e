"""A dataset's manifest from the source the config names: a manifest file or a named folder layout,
optionally joined with a covariates table (``patient`` there overrides the source's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from mskseg.io.layouts import scan_layout
from mskseg.io.manifest import add_covariates, read_manifest

#: source kinds read from files (the third, ``synthetic``, is written by the workflow itself)
FILE_SOURCES = ("manifest", "layout")


def read_source(kind: str, source: Mapping[str, Any]) -> pd.DataFrame:
    """The manifest of a ``manifest`` (``{path}``) or ``layout`` (``{name, path}``) source, with its covariates."""
    if kind not in FILE_SOURCES:
        raise ValueError(f"a source read from files is one of {', '.join(FILE_SOURCES)}, not {kind!r}")
    frame = read_manifest(source["path"]) if kind == "manifest" else scan_layout(source["name"], source["path"])
    if source.get("covariates"):
        frame = add_covariates(frame, source["covariates"])
    return frame


__all__ = ["FILE_SOURCES", "read_source"]

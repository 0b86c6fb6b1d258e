"""What the ``export_bundle`` rule runs: a method's card and per-fold role files (as
:meth:`mskseg.workflow.segment.SegmentInputs.export_settings` gives them) exported as one bundle archive."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mskseg.nn.bundle import FoldFiles, export_bundle

__all__ = ["export_method"]


def export_method(method: str, settings: Mapping[str, Any], dest: str | os.PathLike) -> Path:
    """Export ``method`` (``settings``: ``kind``, ``method_config``, ``labels``, ``preprocess`` and ``folds``: fold
    -> ``roles`` (role -> path), ``n_train``, ``n_val``) as the archive ``dest`` (replaced if present)."""
    folds = {fold: FoldFiles({role: Path(p) for role, p in f["roles"].items()}, int(f["n_train"]), int(f["n_val"]))
             for fold, f in settings["folds"].items()}
    return export_bundle(Path(dest), method=method, kind=settings["kind"], method_config=settings["method_config"],
                         labels=settings["labels"], preprocess=settings["preprocess"], folds=folds, archive=True,
                         overwrite=True)

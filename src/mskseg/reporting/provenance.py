"""What a run was made with: the configuration, the package versions, the code's commit and the machine.

:func:`provenance` gathers it (no torch import: versions are read from the installed distributions);
:func:`provenance_html` lays it out as the report's "About this run" page. A package that is not installed is
listed as ``not installed``; a folder that is not a git checkout has commit ``unknown``.
"""

from __future__ import annotations

import html
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mskseg.reporting.html import frame_html, html_document

#: the distributions whose versions a result depends on
PACKAGES = ("mskseg", "snakemake", "torch", "torchio", "numpy", "scipy", "pandas", "SimpleITK", "antspyx",
            "scikit-image", "matplotlib", "PyYAML", "jsonschema", "snakemake-executor-plugin-slurm")


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Distribution name -> installed version (``not installed`` when absent)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, encoding="utf-8", errors="replace",
                                timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def code_version(folder: str | os.PathLike[str]) -> str:
    """The git commit of ``folder`` (``+ local changes`` when the tracked files differ); ``unknown`` outside git."""
    where = Path(folder)
    commit = _run(["git", "rev-parse", "--short=12", "HEAD"], cwd=where) if where.is_dir() else None
    if not commit:
        return "unknown"
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where)
    return commit + (" + local changes" if dirty else "")


def machine() -> dict[str, str]:
    """Python, operating system, CPU cores and the GPUs ``nvidia-smi -L`` lists (``none`` without it)."""
    gpus = _run(["nvidia-smi", "-L"])
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpu cores": str(os.cpu_count()),
            "gpus": "; ".join(gpus.splitlines()) if gpus else "none"}


def provenance(config: Mapping[str, Any], code_folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Everything :func:`provenance_html` shows, as plain data."""
    return {"code": code_version(code_folder), "machine": machine(), "packages": package_versions(),
            "config": dict(config)}


def provenance_html(record: Mapping[str, Any]) -> str:
    """The "About this run" page of :func:`provenance`'s record."""
    facts = pd.DataFrame([("code (git commit)", record["code"]), *record["machine"].items()],
                         columns=["what", "value"])
    packages = pd.DataFrame(sorted(record["packages"].items(), key=lambda kv: kv[0].lower()),
                            columns=["package", "version"])
    config = yaml.safe_dump(record["config"], sort_keys=False, allow_unicode=True)
    body = ("<h3>Code and machine</h3>" + frame_html(facts) + "<h3>Packages</h3>" + frame_html(packages)
            + "<h3>Configuration (resolved: the shipped defaults, your file, the scale)</h3>"
            + f"<pre>{html.escape(config)}</pre>")
    return html_document("About this run", body)


__all__ = ["PACKAGES", "code_version", "machine", "package_versions", "provenance", "provenance_html"]

"""Running the workflow from tests: snakemake from this interpreter's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 900,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``snakemake`` with the repo's Snakefile in ``cwd`` (in ``env``, default this process's
    environment); output captured as text."""
    env = dict(os.environ if env is None else env, PYTHONPATH=str(REPO / "src"),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, text=True, encoding="utf-8", errors="replace",
                          capture_output=True, timeout=timeout, check=False)


def write_config(folder: Path, config: dict) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path

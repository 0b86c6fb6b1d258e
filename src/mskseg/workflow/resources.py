"""Resources of rules that need no plan: memory from the size of a job's inputs.

Snakemake calls these with the job's ``input`` (``input.size_mb``: the inputs' size on disk) and
``attempt`` (1, then 2, ... on a retry with ``--retries``), so a job that ran out of memory asks
for more the next time.
"""

from __future__ import annotations

from typing import Any


def mem_from_input(wildcards: Any, input: Any, attempt: int) -> int:
    """MB for a job that holds a few copies of its (possibly compressed) input volumes: 40 x input, >= 1 GB."""
    return int(max(1000, 40 * input.size_mb) * attempt)


def registration_mem_mb(wildcards: Any, input: Any, attempt: int) -> int:
    """MB for a registration: the subject's mask a few times plus working-grid images (60 x input, >= 1.5 GB)."""
    return int(max(1500, 60 * input.size_mb) * attempt)


def selection_mem_mb(wildcards: Any, input: Any, attempt: int) -> int:
    """MB for the reference selection: one mask at a time plus a coarse boolean row per subject."""
    return int((2000 + 2 * len(input.masks)) * attempt)


def training_mem_mb(wildcards: Any, input: Any, attempt: int) -> int:
    """MB for training and prediction: the fold's volumes in memory (30 x input) plus 3 GB for the network."""
    return int((3000 + 30 * input.size_mb) * attempt)


__all__ = ["mem_from_input", "registration_mem_mb", "selection_mem_mb", "training_mem_mb"]

"""Resources of rules that need no plan: memory from the size of a job's inputs.

Snakemake calls these with the job's ``input`` (``input.size_mb``: the inputs' size on disk) and
``attempt`` (1, then 2, ... on a retry with ``--retries``), so a job that ran out of memory asks
for more the next time. A function that reads an input that does not exist yet raises
FileNotFoundError naming it: Snakemake then evaluates it again when the job is about to run.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from collections.abc import Iterator
from typing import Any

#: MB a training, fusion or prediction job needs besides what grows with its volumes: Python, torch, the
#: network, a training batch (measured: torch and mskseg take about 0.6 GB, docs/segmentation.md "Memory")
TRAINING_BASE_MB = 1500
#: MB per million voxels of the job's largest input volume: one volume and its targets in memory, its
#: class probabilities (three views' for the fusion fit) and the temporaries of scoring them, the
#: inference batches of its slices (measured: 3.1 GB training, 3.5 GB fusion fit at 23.6 M voxels)
TRAINING_MB_PER_MVOXEL = 150


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
    """MB for training, the fusion fit and prediction: 1.5 GB + 150 MB per million voxels of the largest input
    image (about 5 GB at the OAI-ZIB size of 160 x 384 x 384), times the attempt.

    It does not grow with the number of subjects: a training reads its subjects from a cache a slice or
    patch at a time and validates them one after the other, the fusion fit and a prediction take one
    subject at a time (:mod:`mskseg.nn.cache`, :mod:`mskseg.nn.validation`).
    """
    voxels = max((_voxels(path) for path in _images(input)), default=0)
    return int((TRAINING_BASE_MB + TRAINING_MB_PER_MVOXEL * voxels / 1e6) * attempt)


def one_volume_mem_mb(wildcards: Any, input: Any, attempt: int) -> int:
    """MB for a job that takes its subjects one at a time (the report's gallery): 1 GB + 40 MB per million
    voxels of the largest input image (an image, its prediction and reference, and the figure), times the attempt."""
    voxels = max((_voxels(path) for path in _images(input)), default=0)
    return int((1000 + 40 * voxels / 1e6) * attempt)


def _images(input: Any) -> Iterator[str]:
    """The job's input images (the inputs named ``*image*``; every input when none is named so)."""
    named = [value for name, value in input.items() if "image" in name] if hasattr(input, "items") else []
    for value in named or list(input):
        if isinstance(value, (str, os.PathLike)):
            yield value
        else:
            yield from value


def _voxels(path: str | os.PathLike) -> int:
    """The voxel count in a NIfTI-1/2 header (``.nii``, ``.nii.gz``); of another file: its size in bytes.

    Raises FileNotFoundError (naming ``path``) for a missing file; a damaged one counts by its size.
    """
    name = os.fspath(path)
    if name.endswith((".nii", ".nii.gz")):
        try:
            with (gzip.open if name.endswith(".gz") else open)(path, "rb") as stream:
                count = _nifti_voxels(stream.read(80))
        except FileNotFoundError:
            raise
        except (OSError, EOFError):
            count = None
        if count is not None:
            return count
    return os.path.getsize(path)


def _nifti_voxels(header: bytes) -> int | None:
    """The product of the first ``dim[0]`` dimensions of a NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header."""
    for order in "<>":
        if len(header) < 80:
            return None
        size = struct.unpack(f"{order}i", header[:4])[0]
        if size == 348:
            dims = struct.unpack(f"{order}8h", header[40:56])
        elif size == 540:
            dims = struct.unpack(f"{order}8q", header[16:80])
        else:
            continue
        n = min(max(int(dims[0]), 1), 7)
        return math.prod(max(int(d), 1) for d in dims[1:n + 1])
    return None


__all__ = ["TRAINING_BASE_MB", "TRAINING_MB_PER_MVOXEL", "mem_from_input", "one_volume_mem_mb", "registration_mem_mb",
           "selection_mem_mb", "training_mem_mb"]

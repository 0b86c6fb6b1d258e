"""Where and in which precision the networks run: chosen at run time, overridable.

``device: auto`` takes the first CUDA device when there is one and the CPU otherwise, so one
rule serves a workstation, a GPU node and a laptop. ``precision: auto`` is bf16 autocast on a
GPU that supports it and fp32 everywhere else.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import torch

from mskseg.nn.settings import PRECISIONS

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto``: CUDA if present, else CPU; ``cpu``; ``cuda`` or ``cuda:N`` (error if there is none)."""
    spec = str(spec).strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} requested but this machine has no CUDA device; use 'auto' or 'cpu'")
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return device
    raise ValueError(f"unknown device {spec!r}; allowed: auto, cpu, cuda, cuda:N")


def resolve_precision(device: torch.device, precision: str = "auto") -> str:
    """The arithmetic the networks run in: ``fp32``, ``bf16`` or ``fp16`` (autocast).

    ``auto`` is bf16 on a CUDA device that supports it (fp16 on one that does not) and fp32 on
    the CPU. fp16 needs CUDA; bf16 on the CPU is allowed (slow on most CPUs).
    """
    precision = str(precision).strip().lower()
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA device; use 'fp32' or 'bf16' on the CPU")
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Autocast for ``bf16``/``fp16``; nothing for ``fp32``."""
    if precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def use_channels_last(device: torch.device, setting: bool | str = "auto") -> bool:
    """Channels-last memory layout: on by default on CUDA (tensor cores), off on the CPU."""
    if setting == "auto":
        return device.type == "cuda"
    return bool(setting)


def set_threads(threads: int | None) -> None:
    """Limit torch's intra-op threads to what the job was given (``None``: leave torch's default)."""
    if threads:
        torch.set_num_threads(max(1, int(threads)))


def describe(device: torch.device) -> str:
    """A log line naming the device, e.g. ``cpu (2 threads)`` or ``cuda:0 NVIDIA H100 80GB HBM3``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    return f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms inside the block (restoring the caller's setting afterwards).

    ``warn_only``: torch flags max-unpooling (SegNet) as nondeterministic, but its indices come from
    a max-pool with stride = kernel and are unique, so on the CPU it is deterministic; that warning is
    silenced, any other op without a deterministic implementation warns.
    """
    if not enabled:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"max_unpooling\dd_forward_out does not have a deterministic")
            yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)

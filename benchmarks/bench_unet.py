"""Training throughput and whole-volume inference time of the U-Nets at the OAI-ZIB size.

Usage::

    python benchmarks/bench_unet.py                        # CPU (and CUDA when present), defaults
    python benchmarks/bench_unet.py --device cuda --base 64
    python benchmarks/bench_unet.py --sliding-window       # 3D U-Net, Gaussian sliding window

2D mode (default): the 2D U-Net (``build_model("unet2d", in_channels=1, n_classes=5, base, depth)``)
on a 160 x 384 x 384 volume (sagittal: 160 slices of 384 x 384). For each device and precision it
prints

* training throughput in slices/s: forward + cross-entropy + backward + Adam step on a batch of
  ``--batch-size`` random 384 x 384 slices, after one warm-up step (three on CUDA);
* inference time per volume: :func:`mskseg.nn.inference.predict_slices` over every slice along
  axis 0, in batches of ``--batch-size``, after a warm-up batch; the median of ``--repeats``.

On the CPU the defaults infer only ``--slices 8`` slices and extrapolate linearly to 160 (the
output says so; ``--slices 160`` times the whole volume), so that a run takes about a minute
on 2 cores; fp32 is timed in both memory layouts (contiguous and channels-last). On CUDA every
slice is inferred, in fp32 (contiguous) and in bf16 autocast with channels-last input. The
forward pass's GFLOP per slice (torch's FLOP counter) is printed to put the times in context.
For comparison, the issue quotes 68 s per volume for MONAI's BasicUNet on 2 CPU cores.

``--sliding-window``: :func:`mskseg.nn.inference.sliding_window_3d` of a 3D U-Net (base 16 unless
``--base`` says otherwise) over the 160 x 384 x 384 volume with 64 x 128 x 128 patches and 50 %
overlap (4 x 5 x 5 = 100 windows). On the CPU only ``--windows 2`` windows are run and the time is
extrapolated to 100.

Inputs are random (the speed does not depend on the values). GPU timings synchronise the device.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mskseg.nn.device import describe, resolve_device, set_threads
from mskseg.nn.inference import predict_slices, sliding_window_3d, window_starts
from mskseg.nn.models import build_model, count_parameters

SHAPE = (160, 384, 384)  # OAI-ZIB: 160 sagittal slices of 384 x 384
PATCH = (64, 128, 128)
N_CLASSES = 5
MONAI_CPU_S = 68.0  # issue: MONAI BasicUNet, seconds per volume on 2 CPU cores


@dataclass
class Config:
    device: torch.device
    precision: str
    channels_last: bool

    @property
    def label(self) -> str:
        layout = "channels_last" if self.channels_last else "contiguous"
        return f"{self.device.type:<5} {self.precision:<5} {layout:<13}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall time (s) of ``repeats`` calls, the device synchronised around each."""
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def configs(device_spec: str, precision: str, layout: str) -> list[Config]:
    """The (device, precision, layout) rows to time.

    ``layout`` auto: fp32 in both layouts on the CPU (oneDNN is often faster channels-last), on
    CUDA fp32 contiguous and bf16 channels-last (tensor cores).
    """
    devices = [torch.device("cpu")]
    if device_spec == "cuda" or (device_spec == "auto" and torch.cuda.is_available()):
        devices = [resolve_device("cuda")] if device_spec == "cuda" else [*devices, resolve_device("cuda")]
    out = []
    for device in devices:
        precisions = [precision] if precision != "all" else ["fp32"] + (["bf16"] if device.type == "cuda" else [])
        for prec in precisions:
            if layout == "auto":
                layouts = [False, True] if device.type == "cpu" and prec == "fp32" else [prec == "bf16"]
            else:
                layouts = {"contiguous": [False], "channels_last": [True], "both": [False, True]}[layout]
            out.extend(Config(device, prec, cl) for cl in layouts)
    return out


def forward_gflop(model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    """GFLOP of one forward pass on a ``shape`` input (torch's FLOP counter: 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.to("meta").eval()  # shapes only, nothing is computed
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(shape, device="meta"))
    return counter.get_total_flops() / 1e9


def train_throughput(model: torch.nn.Module, cfg: Config, batch: int, steps: int) -> float:
    """Slices per second of forward + loss + backward + Adam step."""
    dev = cfg.device
    x = torch.randn((batch, 1, *SHAPE[1:]), device=dev)
    y = torch.randint(0, N_CLASSES, (batch, *SHAPE[1:]), device=dev)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimiser.step()

    for _ in range(3 if dev.type == "cuda" else 1):  # warm-up (cuDNN autotuning, allocator)
        step()
    sync(dev)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(dev)
    return batch * steps / (time.perf_counter() - start)


def bench_2d(args: argparse.Namespace) -> None:
    base = args.base or 32
    print(f"2D U-Net: unet2d base {base}, depth {args.depth}, 1 -> {N_CLASSES} classes; volume "
          f"{' x '.join(map(str, SHAPE))} (sagittal: {SHAPE[0]} slices of {SHAPE[1]} x {SHAPE[2]})")
    gflop = forward_gflop(build_model("unet2d", in_channels=1, n_classes=N_CLASSES, base=base, depth=args.depth),
                          (1, 1, *SHAPE[1:]))
    print(f"forward: {gflop:.1f} GFLOP per slice, {gflop * SHAPE[0] / 1e3:.2f} TFLOP per volume")
    image = np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)
    rows = []
    for cfg in configs(args.device, args.precision, args.layout):
        on_gpu = cfg.device.type == "cuda"
        batch = args.batch_size or (32 if on_gpu else 2)
        n_slices = min(args.slices or (SHAPE[0] if on_gpu else 8), SHAPE[0])
        repeats = args.repeats or (3 if on_gpu else 2)
        steps = args.train_steps or (10 if on_gpu else 2)
        torch.manual_seed(0)
        model = build_model("unet2d", in_channels=1, n_classes=N_CLASSES, base=base, depth=args.depth).to(cfg.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        print(f"  {cfg.label}: {describe(cfg.device)}, {count_parameters(model):,} parameters, batch {batch}, "
              f"{steps} timed training steps, inference median of {repeats}", flush=True)
        train = train_throughput(model, cfg, batch, steps)
        sub = image[:n_slices]

        def infer(volume: np.ndarray = sub, cfg: Config = cfg, model: torch.nn.Module = model,
                  batch: int = batch) -> np.ndarray:
            return predict_slices(model, volume, 0, batch_size=batch, device=cfg.device, precision=cfg.precision,
                                  channels_last=cfg.channels_last)

        infer(image[:min(batch, n_slices)])  # warm-up
        seconds = timed(infer, cfg.device, repeats)
        per_volume = seconds * SHAPE[0] / n_slices
        note = "" if n_slices == SHAPE[0] else f"extrapolated from {n_slices} of {SHAPE[0]} slices"
        rows.append((cfg.label, batch, train, per_volume, SHAPE[0] / per_volume, note))
        del model
        if on_gpu:
            torch.cuda.empty_cache()
    print()
    print(f"{'device precision layout':<33} {'batch':>5} {'train slices/s':>15} {'infer s/volume':>15} "
          f"{'infer slices/s':>15}  note")
    for label, batch, train, per_volume, rate, note in rows:
        print(f"{label:<33} {batch:>5} {train:>15.2f} {per_volume:>15.1f} {rate:>15.2f}  {note}")
    print(f"\nreference (issue): MONAI BasicUNet {MONAI_CPU_S:.0f} s per volume on 2 CPU cores")


def bench_sliding_window(args: argparse.Namespace) -> None:
    base = args.base or 16
    starts = [window_starts(s, p, 0.5) for s, p in zip(SHAPE, PATCH, strict=True)]
    total = math.prod(len(s) for s in starts)
    print(f"3D U-Net sliding window: unet3d base {base}, depth {args.depth}, 1 -> {N_CLASSES} classes; volume "
          f"{' x '.join(map(str, SHAPE))}, patch {' x '.join(map(str, PATCH))}, overlap 0.5: "
          f"{' x '.join(str(len(s)) for s in starts)} = {total} windows")
    gflop = forward_gflop(build_model("unet3d", in_channels=1, n_classes=N_CLASSES, base=base, depth=args.depth),
                          (1, 1, *PATCH))
    print(f"forward: {gflop:.1f} GFLOP per window, {gflop * total / 1e3:.2f} TFLOP per volume")
    rows = []
    for cfg in configs(args.device, args.precision, args.layout):
        on_gpu = cfg.device.type == "cuda"
        batch = args.batch_size or 2
        n_windows = min(args.windows or (total if on_gpu else 2), total)
        repeats = args.repeats or (3 if on_gpu else 1)
        torch.manual_seed(0)
        model = build_model("unet3d", in_channels=1, n_classes=N_CLASSES, base=base, depth=args.depth).to(cfg.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        print(f"  {cfg.label}: {describe(cfg.device)}, {count_parameters(model):,} parameters, batch {batch}, "
              f"median of {repeats}", flush=True)
        # the whole volume, or n windows in a row along the last axis (step = half a patch)
        shape = SHAPE if n_windows == total else (PATCH[0], PATCH[1], PATCH[2] + (n_windows - 1) * PATCH[2] // 2)
        image = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)

        def infer(volume: np.ndarray = image, cfg: Config = cfg, model: torch.nn.Module = model,
                  batch: int = batch) -> np.ndarray:
            return sliding_window_3d(model, volume, PATCH, batch_size=batch, device=cfg.device,
                                     precision=cfg.precision, channels_last=cfg.channels_last)

        infer(image[:, :, :PATCH[2]])  # warm-up: one window
        seconds = timed(infer, cfg.device, repeats) * total / n_windows
        note = "" if n_windows == total else f"extrapolated from {n_windows} of {total} windows"
        rows.append((cfg.label, batch, seconds, total / seconds, note))
        del model
        if on_gpu:
            torch.cuda.empty_cache()
    print()
    print(f"{'device precision layout':<33} {'batch':>5} {'infer s/volume':>15} {'windows/s':>10}  note")
    for label, batch, seconds, rate, note in rows:
        print(f"{label:<33} {batch:>5} {seconds:>15.1f} {rate:>10.2f}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: the CPU, and CUDA too when present")
    parser.add_argument("--precision", choices=["all", "fp32", "bf16"], default="all",
                        help="all: fp32, plus bf16 autocast with channels-last input on CUDA")
    parser.add_argument("--layout", choices=["auto", "contiguous", "channels_last", "both"], default="auto",
                        help="memory layout; auto: CPU fp32 both, CUDA fp32 contiguous and bf16 channels-last")
    parser.add_argument("--base", type=int, help="first-stage width (default 32; 16 with --sliding-window)")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch-size", type=int, help="slices (windows) per batch (default: CPU 2, CUDA 32 / 2)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, help="timed inference runs, median (default: CPU 2 / 1, CUDA 3)")
    parser.add_argument("--slices", type=int, help="infer only this many slices and extrapolate (default: CPU 8, "
                                                   "CUDA all 160)")
    parser.add_argument("--train-steps", type=int, help="timed training steps (default: CPU 2, CUDA 10)")
    parser.add_argument("--sliding-window", action="store_true", help="time the 3D U-Net sliding window instead")
    parser.add_argument("--windows", type=int, help="--sliding-window: run only this many windows and extrapolate "
                                                    "(default: CPU 2, CUDA all 100)")
    args = parser.parse_args()
    for name in ("base", "depth", "batch_size", "threads", "repeats", "slices", "train_steps", "windows"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    set_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}"
          + (f", CUDA {torch.version.cuda}" if torch.cuda.is_available() else ", no CUDA device"))
    if args.sliding_window:
        bench_sliding_window(args)
    else:
        bench_2d(args)


if __name__ == "__main__":
    main()

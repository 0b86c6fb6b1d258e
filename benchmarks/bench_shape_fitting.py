"""Per-volume inference time of the knee paper's method at the OAI-ZIB size, step by step, and peak memory.

Usage::

    python benchmarks/bench_shape_fitting.py                      # CPU (and CUDA when present)
    python benchmarks/bench_shape_fitting.py --unet-base 32 --local-base 16 --patch 32 64 64

On a 160 x 384 x 384 knee phantom (0.7 x 0.36 x 0.36 mm) it runs the workflow's own inference,
:func:`mskseg.nn.shape_fitting.fit_volume` (the ``predict_shape_fitting`` rule's), with networks of the
given widths (untrained weights: the time does not depend on them; the boxes come from the phantom's
labels, as a trained pre-segmentation gives them, through a stand-in 2D network timed as the real one):

1. ``presegmentation``: the 2D U-Net on all 160 sagittal slices;
2. ``boxes``: each bone's largest component, on the device;
3. ``crops``: each box resampled to a ``--cube``^3 cube;
4. ``shape_fit``: a shape regression network per bone with its PCA layer (``--points`` landmarks, ``--modes``);
5. ``refinement``: ``--patches`` patches (100 femur + 30 tibia in the paper) through the local 3D U-Net, merged;
6. ``ensemble``: 2D + 3D probabilities, argmax, label values; then post-processing on the host.

It prints each step's seconds, the total, and the peak memory (host: the process's peak resident set; GPU: the
CUDA allocator's peak). The issue's targets: <= 60 s per volume on 2 CPU cores, <= 1 s on a GPU with the shape
fit <= 10 ms.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from torch import nn

from mskseg.nn.device import describe, resolve_device, set_threads
from mskseg.nn.model_info import ModelInfo
from mskseg.nn.models import build_model
from mskseg.nn.shape_fitting import FittingModels, fit_volume
from mskseg.nn.shape_fitting_train import RegressionInfo
from mskseg.nn.shape_method import ShapeFittingSpec
from mskseg.nn.shape_regression import build_shape_regression
from mskseg.postprocess import PostprocessSettings, postprocess_labels
from mskseg.shape.pca import fit_shape_model
from mskseg.synthetic import generate_subject

SHAPE = (160, 384, 384)
SPACING = (0.7, 0.3646, 0.3646)
LABELS = [1, 2, 3, 4]  # femur, femoral cartilage, tibia, tibial cartilage
DATASET = {"labels": {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4},
           "cartilage": ["femoral_cartilage", "tibial_cartilage"],
           "methods": {"unet2d": {"kind": "trained", "view": "sagittal"}}}


class TimedStandIn(nn.Module):
    """The 2D U-Net's cost with the phantom's labels as its answer: runs the real network on each batch, then
    returns one-hot logits of the true labels of the slices it was given (in order)."""

    def __init__(self, unet: nn.Module, truth: torch.Tensor) -> None:
        super().__init__()
        self.unet, self.truth, self.next = unet, truth, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.unet(x)
        b, _, h, w = out.shape
        labels = self.truth[self.next:self.next + b]
        self.next = (self.next + b) % len(self.truth)
        logits = torch.zeros_like(out)
        pad_h, pad_w = (h - labels.shape[1]) // 2, (w - labels.shape[2]) // 2
        one_hot = nn.functional.one_hot(labels, out.shape[1]).permute(0, 3, 1, 2).to(out.dtype) * 20
        logits[:, :, pad_h:pad_h + labels.shape[1], pad_w:pad_w + labels.shape[2]] = one_hot
        return logits


def shape_model(points: int, modes: int, rng: np.random.Generator):
    """A shape model of the right size (random shapes: the timing does not depend on them)."""
    base = rng.normal(size=(points, 3)) * 20
    shapes = base + rng.normal(size=(modes + 1, points, 3))
    return fit_shape_model(shapes, [str(i) for i in range(modes + 1)])


def build(device: torch.device, args: argparse.Namespace, truth: np.ndarray, direction: np.ndarray
          ) -> tuple[FittingModels, ShapeFittingSpec]:
    rng = np.random.default_rng(0)
    spec = ShapeFittingSpec.from_config("bench", {
        "kind": "shape_fitting", "presegmentation": "unet2d",
        "regression": {"cube_size": args.cube, "base_features": args.shape_base, "n_modes": args.modes},
        "landmarks": {"counts": {"femur": 100, "tibia": 30}},
        "refinement": {"network": {"name": "unet3d", "base": args.local_base, "depth": 3},
                       "patch": {"size": args.patch}},
        "inference": {"batch_size": args.batch, "precision": args.precision}},
        DATASET, {"femur": [("femur", False)], "tibia": [("tibia", False)]})
    unet = build_model("unet2d", in_channels=1, n_classes=5, base=args.unet_base, depth=4).to(device).eval()
    pre = TimedStandIn(unet, torch.from_numpy(truth.astype(np.int64)).to(device))  # sagittal = array axis 0
    pre_info = ModelInfo(method="unet2d", view="sagittal", network={"name": "unet2d"}, n_classes=5,
                         label_values=LABELS)
    regressions = []
    for bone, value in (("femur", 1), ("tibia", 3)):
        net = build_shape_regression(shape_model(args.points, args.modes, rng), spec.regression,
                                     rotation=direction.T, half_extent_mm=40.0).to(device).eval()
        regressions.append((net, RegressionInfo(part=bone, bones=[bone], label_values=[value],
                                                rotation=direction.T.tolist(), half_extent_mm=[40.0] * 3,
                                                settings=spec.regression.to_dict(), train_subjects=[],
                                                val_subjects=[])))
    local = build_model("unet3d", in_channels=1, n_classes=5, base=args.local_base, depth=3).to(device).eval()
    local_info = ModelInfo(method="bench", view="3d", network={"name": "unet3d"}, n_classes=5, label_values=LABELS,
                           patch_size=list(args.patch))
    selection = {"femur": rng.choice(args.points, 100, replace=False), "tibia": rng.choice(args.points, 30,
                                                                                          replace=False)}
    return FittingModels(presegmentation=(pre, pre_info), regressions=regressions, refinement=(local, local_info),
                         selection=selection, device=device), spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--unet-base", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--cube", type=int, default=88)
    parser.add_argument("--shape-base", type=int, default=16)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--modes", type=int, default=20)
    parser.add_argument("--patch", type=int, nargs=3, default=[32, 48, 48])
    parser.add_argument("--local-base", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="runs per device; the last is reported")
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"knee phantom {SHAPE} at {SPACING} mm; generating ...", flush=True)
    subject = generate_subject("knee", 0, seed=1, shape=SHAPE, spacing=SPACING, n_landmarks=10)
    image = np.asarray(subject.image.array, dtype=np.float32)
    subject_image = subject.image.with_array((image - image.mean()) / image.std())
    truth = np.asarray(subject.mask.array)
    devices = [resolve_device(args.device)]
    if args.device == "auto" and devices[0].type == "cpu" and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    for device in devices:
        models, spec = build(device, args, truth, np.asarray(subject.image.direction))
        precision = "fp32" if device.type == "cpu" else ("bf16" if args.precision == "auto" else args.precision)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(args.repeats):
            result = fit_volume(models, subject_image, spec, LABELS, precision=precision)
        start = time.perf_counter()
        post, _ = postprocess_labels(result.labels.astype(np.uint8), LABELS, spacing=SPACING,
                                     settings=PostprocessSettings(keep_components={4: 2}))
        steps = {**result.seconds, "postprocess (host)": time.perf_counter() - start}
        dice = {v: 2 * np.sum((post == v) & (truth == v)) / max(1, np.sum(post == v) + np.sum(truth == v))
                for v in LABELS}
        print(f"\n{describe(device)}, precision {precision}: U-Net base {args.unet_base}, cube {args.cube}^3, shape "
              f"net base {args.shape_base} ({args.points} points, {args.modes} modes), 130 patches of "
              f"{'x'.join(map(str, args.patch))} (local U-Net base {args.local_base}); untrained weights")
        for name, seconds in steps.items():
            print(f"  {name:<22s} {seconds:8.3f} s")
        print(f"  {'total':<22s} {sum(steps.values()):8.3f} s")
        print("  (sanity: Dice of the label map with the phantom's labels as the pre-segmentation: "
              + ", ".join(f"{v}: {d:.3f}" for v, d in dice.items()) + ")")
        if device.type == "cuda":
            print(f"  peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()

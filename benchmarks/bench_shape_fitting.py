"""Per-volume inference time of the knee paper's method, step by step, at the OAI-ZIB size -- with the steps
built so far (issue 18 is in progress: the steps run with untrained weights, so this times them, it does not
score them).

Usage::

    python benchmarks/bench_shape_fitting.py                     # CPU (and CUDA when present)
    python benchmarks/bench_shape_fitting.py --unet-base 16 --slices 160 --patches 130

On a 160 x 384 x 384 knee phantom (0.7 x 0.36 x 0.36 mm), for each device:

1. pre-segmentation: the 2D U-Net on the sagittal slices (:func:`mskseg.nn.inference.predict_slices`; on
   the CPU ``--slices`` slices, extrapolated to all 160, unless ``--slices 160``);
2. bounding boxes: each bone's box in the (here: the reference's) label map (:func:`mskseg.nn.shape_crop.mask_bbox`);
3. crops: each bone's box resampled to a ``--cube``^3 cube on the device (:func:`resample_crop`);
4. shape fit: the shape regression network with its PCA layer per bone (:func:`predict_landmarks`);
5. local patches: ``--patches`` patches of ``--patch``^3 voxels at landmarks (100 femur + 30 tibia in the
   paper), extracted, through a 3D U-Net (on the CPU a few, extrapolated), merged with overlaps averaged;
6. ensembling of the 2D and 3D probabilities and post-processing (largest components, holes filled).

It prints each step's seconds, the total and the process's peak resident memory. The issue's targets:
<= 60 s per volume on 2 CPU cores, <= 1 s on a GPU with the shape fit <= 10 ms.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import numpy as np
import torch

from mskseg.nn.device import describe, resolve_device, set_threads
from mskseg.nn.inference import predict_slices
from mskseg.nn.models import build_model
from mskseg.nn.models.pca_layer import PCALayer
from mskseg.nn.models.shape_regression import ShapeRegressionNet
from mskseg.nn.shape_crop import crop_geometry, mask_bbox, resample_crop
from mskseg.nn.shape_regression import predict_landmarks
from mskseg.postprocess import PostprocessSettings, ensemble_labels, postprocess_labels
from mskseg.preprocess.patches import extract_patches, merge_patches, patch_layout
from mskseg.synthetic import generate_subject

SHAPE = (160, 384, 384)
SPACING = (0.7, 0.3646, 0.3646)
LABELS = [1, 2, 3, 4]  # femur, femoral cartilage, tibia, tibial cartilage
BONES = {"femur": 1, "tibia": 3}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def shape_layer(n_points: int, n_modes: int, rng: np.random.Generator) -> PCALayer:
    """A PCA layer of the right size (random mean and orthonormal modes: the timing does not depend on them)."""
    mean = rng.normal(size=(n_points, 3)) * 20
    modes = np.linalg.qr(rng.normal(size=(n_points * 3, n_modes)))[0].T
    return PCALayer(mean, modes, np.linspace(5, 1, n_modes))


def run(device: torch.device, args: argparse.Namespace, image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    rng = np.random.default_rng(0)
    steps: dict[str, float] = {}
    unet = build_model("unet2d", in_channels=1, n_classes=5, base=args.unet_base, depth=4).to(device).eval()
    n = SHAPE[0] if device.type == "cuda" else min(args.slices, SHAPE[0])
    predict_slices(unet, image, 0, indices=np.arange(2), device=device, batch_size=args.batch)  # warm-up
    seconds, probs2d = timed(lambda: predict_slices(unet, image, 0, indices=np.arange(n), device=device,
                                                    batch_size=args.batch), device)
    steps["1 pre-segmentation (2D U-Net)"] = seconds * SHAPE[0] / n
    seconds, boxes = timed(lambda: {b: mask_bbox(mask == v) for b, v in BONES.items()}, device)
    steps["2 bounding boxes"] = seconds
    image_t = torch.from_numpy(image).to(device)
    geometries = {b: crop_geometry(SHAPE, SPACING, (0.0, 0.0, 0.0), np.eye(3), box, margin_mm=10,
                                   cube_size=args.cube) for b, box in boxes.items()}
    seconds, cubes = timed(lambda: {b: resample_crop(image_t, g) for b, g in geometries.items()}, device)
    steps["3 crops to cubes"] = seconds
    nets = {b: ShapeRegressionNet([shape_layer(args.points, args.modes, rng)], base=args.shape_base).to(device).eval()
            for b in BONES}
    for b in BONES:  # warm-up
        predict_landmarks(nets[b], cubes[b], geometries[b])
    seconds, _ = timed(lambda: [predict_landmarks(nets[b], cubes[b], geometries[b]) for b in BONES], device)
    steps["4 shape fit (both bones)"] = seconds
    centres = np.column_stack([rng.integers(20, s - 20, args.patches) for s in SHAPE])
    layout = patch_layout(centres, (args.patch,) * 3, SHAPE)
    seconds, patches = timed(lambda: extract_patches(image, layout), device)
    steps["5a patch extraction"] = seconds
    local = build_model("unet3d", in_channels=1, n_classes=5, base=args.local_base, depth=3).to(device).eval()
    k = args.patches if device.type == "cuda" else min(args.cpu_patches, args.patches)

    def forward() -> np.ndarray:
        outs = []
        with torch.no_grad():
            for i in range(0, k, args.patch_batch):
                x = torch.from_numpy(patches[i:i + args.patch_batch, None]).to(device)
                outs.append(torch.softmax(local(x), dim=1).cpu().numpy())
        return np.concatenate(outs)

    forward()  # warm-up
    seconds, probs3d = timed(forward, device)
    steps["5b local 3D U-Net"] = seconds * args.patches / k
    probs3d = np.concatenate([probs3d] * int(np.ceil(args.patches / k)))[:args.patches]
    seconds, merged = timed(lambda: merge_patches(probs3d, layout), device)
    steps["5c patch merging"] = seconds
    reps = int(np.ceil(SHAPE[0] / probs2d.shape[1]))  # the CPU inferred n slices: repeat them to the volume
    full2d = np.concatenate([probs2d] * reps, axis=1)[:, :SHAPE[0]]
    seconds, _ = timed(lambda: ensemble_labels([full2d, merged.values], label_values=LABELS), device)
    steps["6a ensembling"] = seconds
    settings = PostprocessSettings(keep_components={4: 2})
    seconds, _ = timed(lambda: postprocess_labels(mask, LABELS, spacing=SPACING, settings=settings), device)
    steps["6b post-processing"] = seconds
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--unet-base", type=int, default=16)
    parser.add_argument("--slices", type=int, default=16, help="CPU: slices inferred and extrapolated to 160")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--cube", type=int, default=88)
    parser.add_argument("--shape-base", type=int, default=16)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--modes", type=int, default=20)
    parser.add_argument("--patches", type=int, default=130)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--local-base", type=int, default=8)
    parser.add_argument("--patch-batch", type=int, default=8)
    parser.add_argument("--cpu-patches", type=int, default=16, help="CPU: patches run and extrapolated")
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"knee phantom {SHAPE} at {SPACING} mm; generating ...", flush=True)
    subject = generate_subject("knee", 0, seed=1, shape=SHAPE, spacing=SPACING, n_landmarks=10)
    image = np.asarray(subject.image.array, dtype=np.float32)
    image = (image - image.mean()) / image.std()
    mask = np.asarray(subject.mask.array)
    devices = [resolve_device(args.device)]
    if args.device == "auto" and devices[0].type == "cpu" and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    for device in devices:
        steps = run(device, args, image, mask)
        print(f"\n{describe(device)}, U-Net base {args.unet_base}, cube {args.cube}^3, "
              f"shape net base {args.shape_base}, {args.patches} patches of {args.patch}^3 (local U-Net base "
              f"{args.local_base}); untrained weights")
        for name, seconds in steps.items():
            print(f"  {name:<32s} {seconds:8.3f} s")
        print(f"  {'total':<32s} {sum(steps.values()):8.3f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()

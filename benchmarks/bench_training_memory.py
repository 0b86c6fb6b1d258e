"""Peak memory of one training epoch of the knee's 2D U-Net against the number of subjects (issue 17).

Usage::

    python benchmarks/bench_training_memory.py                  # OAI-ZIB size: 16 and 64 training subjects
    python benchmarks/bench_training_memory.py --eager 16       # ... and 16 with every volume in memory
    python benchmarks/bench_training_memory.py --shape 40 96 96 --subjects 4 16 --eager 4 16   # a quick check
    python benchmarks/bench_training_memory.py --subjects 16 --validation-slices 32   # sampled validation

Each run is a fresh process that trains the knee method of ``config.yaml`` (2D U-Net on sagittal slices,
distance-weighted cross-entropy with a weight map, its demo network: base 8, depth 3) for one epoch of
``--steps`` batches through :func:`mskseg.nn.training.train_fold`, as the ``train_model`` rule does:
the subjects' arrays go into the run's case cache and are read a slice at a time; the ``--val``
validation subjects (2) are predicted whole (the default validation), one after the other. It prints
the process's peak resident memory (``VmHWM`` of ``/proc/self/status``: unlike ``ru_maxrss`` it does not
count the parent's pages the child had before its ``exec``), the part of it the imports take, and the
times. ``--eager N`` also runs the loading before issue 17 (every volume in memory:
:func:`mskseg.nn.training.load_cases` + ``train_view``) with N training subjects, for comparison.

The subjects are cheap synthetic volumes (four ellipsoid classes, no noise: they compress to almost
nothing) written as ``.nii.gz`` into a temporary folder (``--workdir``), at most four different ones
repeated under other names; memory does not depend on the values. The case cache takes the volumes'
uncompressed size on disk while a training runs (at the OAI-ZIB size 212 MB per subject with its weight
map); everything is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OAI_SHAPE = (160, 384, 384)
OAI_SPACING = (0.7, 0.3646, 0.3646)
LABELS = {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4}
VARIANTS = 4
#: the largest growth of the peak from the fewest to the most subjects the issue accepts
MAX_GROWTH = 0.20


def write_subjects(folder: Path, shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> dict:
    """``VARIANTS`` knee-like subjects (image, mask, weight map as .nii.gz): paths by kind."""
    from mskseg.io.volumes import write_volume
    from mskseg.volume import Volume

    x, y, z = (np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape)
    x, y, z = x[:, None, None], y[None, :, None], z[None, None, :]
    files: dict[str, list[str]] = {"image": [], "mask": [], "weight": []}
    for v in range(VARIANTS):
        shift = 0.05 * v
        femur = (x / 0.8) ** 2 + ((y - 0.35 - shift) / 0.45) ** 2 + (z / 0.6) ** 2
        tibia = (x / 0.8) ** 2 + ((y + 0.45 - shift) / 0.45) ** 2 + (z / 0.55) ** 2
        mask = np.zeros(shape, np.uint8)
        mask[femur < 1.15] = 2
        mask[femur < 1.0] = 1
        mask[tibia < 1.15] = 4
        mask[tibia < 1.0] = 3
        del femur, tibia
        image = np.asarray([0.0, 300.0, 120.0, 280.0, 110.0], np.float32)[mask]
        weight = np.where((mask == 2) | (mask == 4), np.float32(5.0), np.float32(1.0))
        for kind, array in (("image", image), ("mask", mask), ("weight", weight)):
            path = folder / f"v{v}_{kind}.nii.gz"
            write_volume(Volume(array, spacing), path)
            files[kind].append(str(path))
    return files


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def run_child(cfg: dict) -> dict:
    """One training epoch in this process; its peak memory and time."""
    import yaml

    from mskseg.nn.device import set_threads
    from mskseg.nn.fit import train_view
    from mskseg.nn.method import MethodSpec
    from mskseg.nn.training import ModelFiles, load_cases, train_fold

    set_threads(cfg["threads"])
    after_imports = peak_mib()
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    entry = dict(config["datasets"]["knee"]["methods"]["unet2d"])
    entry["train"] = {**entry["train"], "epochs": 1, "steps_per_epoch": cfg["steps"], "progress": False,
                      "validation": {"slices_per_volume": cfg["validation_slices"]}}
    if cfg["network"]:
        entry["network"] = {**entry["network"], "base": cfg["network"][0], "depth": cfg["network"][1]}
    spec = MethodSpec.from_config("unet2d", entry, config["datasets"]["knee"]["weight_maps"])
    subjects = {"train": [f"t{i:03d}" for i in range(cfg["train"])], "val": [f"v{i:03d}" for i in range(cfg["val"])]}
    files = {f"{role}_{kind}": [cfg["files"][kind][i % VARIANTS] for i in range(len(names))]
             for role, names in subjects.items() for kind in ("image", "mask", "weight")}
    work = Path(cfg["work"])
    start = time.perf_counter()
    if cfg["mode"] == "cached":
        outputs = ModelFiles(model=work / "model.pt", info=work / "model.json", history=work / "history.csv")
        result = train_fold(spec, "sagittal", LABELS, subjects, files, work / "run", outputs)
    else:
        values = list(LABELS.values())
        cases = {role: load_cases(subjects[role], files[f"{role}_image"], files[f"{role}_mask"],
                                  files[f"{role}_weight"], label_values=values) for role in ("train", "val")}
        result, _ = train_view(spec, "sagittal", cases["train"], cases["val"], values, work / "run")
    row = result.history.iloc[-1]
    return {"peak_MiB": peak_mib(), "imports_MiB": after_imports, "seconds": time.perf_counter() - start,
            "train_s": float(row["train_seconds"]), "val_s": float(row["val_seconds"])}


def measure(mode: str, n_train: int, n_val: int, files: dict, args: argparse.Namespace, root: Path) -> dict:
    work = root / f"{mode}-{n_train}"
    cfg = {"mode": mode, "train": n_train, "val": n_val, "files": files, "work": str(work), "steps": args.steps,
           "threads": args.threads, "validation_slices": args.validation_slices, "network": args.network}
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True, text=True,
                         encoding="utf-8", errors="replace", check=False)
    shutil.rmtree(work, ignore_errors=True)
    if out.returncode != 0:
        raise SystemExit(f"the {mode} run with {n_train} subjects failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        print(json.dumps(run_child(json.loads(argv[1]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=list(OAI_SHAPE), help="volume shape (voxels)")
    parser.add_argument("--subjects", type=int, nargs="+", default=[16, 64], help="training subject counts")
    parser.add_argument("--val", type=int, default=2, help="validation subjects (each predicted whole, one at a time)")
    parser.add_argument("--eager", type=int, nargs="*", default=[],
                        help="training subject counts also run with every volume in memory (before issue 17)")
    parser.add_argument("--steps", type=int, default=4, help="batches of the epoch (8 slices each)")
    parser.add_argument("--validation-slices", type=int, default=None,
                        help="validate on this many slices per volume (train.validation.slices_per_volume)")
    parser.add_argument("--network", type=int, nargs=2, metavar=("BASE", "DEPTH"), default=None,
                        help="another U-Net width and depth than the demo's 8 and 3 (the paper's: 64 4)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="where the volumes and caches go (a temp folder)")
    args = parser.parse_args(argv)
    shape = tuple(args.shape)
    spacing = OAI_SPACING if shape == OAI_SHAPE else (1.0, 1.0, 1.0)
    root = Path(tempfile.mkdtemp(prefix="bench-memory-", dir=args.workdir))
    try:
        files = write_subjects(root, shape, spacing)
        mb = np.prod(shape) * (4 + 1 + 4) / 1e6
        network = "base {}, depth {}".format(*(args.network or (8, 3)))
        validation = (f"{args.validation_slices} slices per volume" if args.validation_slices else "whole volumes")
        print(f"volumes {'x'.join(map(str, shape))} ({np.prod(shape) / 1e6:.1f} M voxels; image + mask + weight map "
              f"{mb:.0f} MB uncompressed per subject), U-Net {network}, {args.steps} steps of 8 slices, validation "
              f"on {validation}, {args.threads} threads")
        print(f"{'loading':<8} {'train':>5} {'val':>4} {'peak RSS MiB':>13} {'imports MiB':>12} {'train s':>8} "
              f"{'val s':>6} {'total s':>8}")
        peaks = {}
        runs = [("cached", n) for n in args.subjects] + [("eager", n) for n in args.eager]
        for mode, n in runs:
            n_val = args.val
            r = measure(mode, n, n_val, files, args, root)
            peaks[(mode, n)] = r["peak_MiB"]
            print(f"{mode:<8} {n:>5} {n_val:>4} {r['peak_MiB']:>13.0f} {r['imports_MiB']:>12.0f} {r['train_s']:>8.1f} "
                  f"{r['val_s']:>6.1f} {r['seconds']:>8.1f}", flush=True)
        cached = sorted((n, p) for (mode, n), p in peaks.items() if mode == "cached")
        if len(cached) > 1:
            (n0, p0), (n1, p1) = cached[0], cached[-1]
            growth = p1 / p0 - 1.0
            print(f"peak at {n1} / peak at {n0} subjects: {p1 / p0:.3f} ({growth:+.1%}; the issue allows "
                  f"{MAX_GROWTH:+.0%}: {'ok' if growth <= MAX_GROWTH else 'TOO MUCH'})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])

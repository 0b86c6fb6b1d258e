"""One subject's registration at the OAI-ZIB image size, SimpleITK demons against ANTs SyN.

Usage::

    python benchmarks/bench_registration.py                       # femur and tibia, both backends
    python benchmarks/bench_registration.py --spacing 1.5 --threads 1 --bones femur
    python benchmarks/bench_registration.py --subjects 0 3        # reference phantom, moving phantom

Two synthetic knees are generated at 160 x 384 x 384 voxels of 0.7 x 0.3646 x 0.3646 mm
(the OAI-ZIB DESS grid) and cached in ``--cache``. For each bone and backend a fresh
process reads the two masks, prepares the reference working image and registers the
moving bone to it at the working spacing (1 mm by default) with ``--threads`` threads; it
reports the registration's seconds (mask preparation included, file reading not), the
process's peak resident memory, Dice after warping on the working grid, and the mean error
of the phantom's true corresponding landmarks carried by the registration. The faster
backend on each pair is named with the speed ratio.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

OAI_SHAPE = (160, 384, 384)
OAI_SPACING = (0.7, 0.3646, 0.3646)
LABELS = {"femur": 1, "tibia": 3}


def make_subjects(cache: Path, indices: list[int]) -> None:
    from mskseg.io import write_volume
    from mskseg.synthetic import generate_subject

    cache.mkdir(parents=True, exist_ok=True)
    for i in indices:
        mask, truth = cache / f"knee{i}_mask.nii.gz", cache / f"knee{i}_landmarks.csv"
        if mask.exists() and truth.exists():
            continue
        s = generate_subject("knee", i, seed=1, shape=OAI_SHAPE, spacing=OAI_SPACING, n_landmarks=200)
        write_volume(s.mask, mask)
        s.landmarks.to_csv(truth, index=False)


def run_case(cache: Path, fixed_id: int, moving_id: int, bone: str, backend: str, spacing: float,
             threads: int) -> dict:
    from mskseg.io import read_volume
    from mskseg.io.tables import read_table
    from mskseg.landmarks.correspondence import carry_frame, true_points, truth_errors
    from mskseg.registration import set_threads
    from mskseg.registration.masks import structure_mask, working_image
    from mskseg.registration.pipeline import RegistrationSettings, register_to_reference

    set_threads(threads)
    fixed_mask = read_volume(cache / f"knee{fixed_id}_mask.nii.gz")
    moving_mask = read_volume(cache / f"knee{moving_id}_mask.nii.gz")
    settings = RegistrationSettings.from_dict({"backend": backend, "working_spacing_mm": spacing,
                                               "ants": {"threads": threads} if backend == "ants" else {}})
    start = time.perf_counter()
    fixed = working_image(structure_mask(fixed_mask, LABELS[bone]), spacing, settings.margin_mm)
    result = register_to_reference(fixed, structure_mask(moving_mask, LABELS[bone]), settings)
    seconds = time.perf_counter() - start
    ref_truth = true_points(read_table(cache / f"knee{fixed_id}_landmarks.csv"), bone)
    errors = truth_errors(carry_frame(ref_truth, result.affine, result.field, False),
                          true_points(read_table(cache / f"knee{moving_id}_landmarks.csv"), bone))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"bone": bone, "backend": backend, "working_spacing_mm": spacing, "threads": threads,
            "grid": list(fixed.GetSize()), "seconds": round(seconds, 2), "peak_rss_MiB": round(peak),
            "dice_affine": round(result.record["dice_affine"], 4), "dice": round(result.record["dice"], 4),
            "truth_mean_mm": round(float(errors.mean()), 3), "converged": result.converged}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spacing", type=float, default=1.0, help="working spacing in mm (default 1.0)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bones", nargs="+", default=["femur", "tibia"], choices=sorted(LABELS))
    parser.add_argument("--backends", nargs="+", default=["simpleitk", "ants"], choices=["simpleitk", "ants"])
    parser.add_argument("--subjects", nargs=2, type=int, default=[0, 3], metavar=("FIXED", "MOVING"))
    parser.add_argument("--cache", type=Path, default=Path("results/benchmarks/registration_phantoms"))
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = parser.parse_args()
    if args.case:
        bone, backend = args.case.split(":")
        print(json.dumps(run_case(args.cache, *args.subjects, bone, backend, args.spacing, args.threads)))
        return
    make_subjects(args.cache, list(args.subjects))
    rows = []
    for bone in args.bones:
        for backend in args.backends:
            cmd = [sys.executable, __file__, "--case", f"{bone}:{backend}", "--spacing", str(args.spacing),
                   "--threads", str(args.threads), "--cache", str(args.cache),
                   "--subjects", *map(str, args.subjects)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, encoding="utf-8")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nOAI-ZIB size {OAI_SHAPE} at {OAI_SPACING} mm; working spacing {args.spacing} mm, "
          f"{args.threads} threads")
    print(f"{'bone':7s} {'backend':10s} {'seconds':>8s} {'peak MiB':>9s} {'Dice aff':>9s} {'Dice':>7s} "
          f"{'truth mm':>9s}")
    for r in rows:
        print(f"{r['bone']:7s} {r['backend']:10s} {r['seconds']:8.2f} {r['peak_rss_MiB']:9d} "
              f"{r['dice_affine']:9.4f} {r['dice']:7.4f} {r['truth_mean_mm']:9.3f}")
    for bone in args.bones:
        pair = {r["backend"]: r for r in rows if r["bone"] == bone}
        if len(pair) == 2:
            fast, slow = sorted(pair.values(), key=lambda r: r["seconds"])
            print(f"{bone}: {fast['backend']} is faster, {slow['seconds'] / fast['seconds']:.1f}x "
                  f"({fast['seconds']:.2f} s vs {slow['seconds']:.2f} s)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    main()

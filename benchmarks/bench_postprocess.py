"""Time of the local-refinement building blocks at the OAI-ZIB size (160 x 384 x 384, 0.7 x 0.36 x 0.36 mm).

Usage::

    python benchmarks/bench_postprocess.py            # median of 3 runs per step
    python benchmarks/bench_postprocess.py --runs 1

On the knee phantom at that size (mskseg.synthetic, 8 s to make) it times, one call each:

* landmark selection: the femur's and tibia's landmarks within 2 mm of their cartilage
  (:func:`mskseg.landmarks.selection.near_structure`), then 100 / 30 spread by NMS (``select_spread``);
* patches: 130 patches of 64^3 centred on those landmarks, extracted from the image, and 3-class
  probabilities of that size merged back (overlaps averaged, NaN elsewhere);
* ensembling: two 5-class float32 probability volumes (one NaN outside the patches) summed, arg max;
* post-processing of the phantom's labels with speckle (0.1 % of the voxels set to a random label,
  and 0.1 % of the bones' voxels to background): largest component per label (the tibial
  cartilage's two plates kept), hole filling and closing with a 1.5 mm ball after it (and hole
  filling before it, on whole-volume boxes), the three chained, and the first on the clean labels.

Figures are wall-clock seconds on this machine's cores (numpy/scipy, no torch).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from mskseg.landmarks.selection import near_structure, select_spread
from mskseg.postprocess.components import largest_components
from mskseg.postprocess.ensemble import ensemble_labels
from mskseg.postprocess.morphology import close_labels, fill_holes
from mskseg.postprocess.pipeline import PostprocessSettings, postprocess_labels
from mskseg.preprocess.patches import centre_voxels, extract_patches, merge_patches, patch_layout
from mskseg.synthetic import LABELS, generate_subject

SHAPE = (160, 384, 384)
SPACING = (0.7, 0.3646, 0.3646)


def timed(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    seconds, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds), out


def bench_selection(subject, runs: int) -> tuple[list, np.ndarray]:
    labels, mask = LABELS["knee"], subject.mask
    rows, centres = [], []
    for bone, cartilage, k in (("femur", "femoral_cartilage", 100), ("tibia", "tibial_cartilage", 30)):
        points = subject.landmarks.query("structure == @bone")[["x", "y", "z"]].to_numpy()
        t_near, region = timed(lambda p=points, c=cartilage: near_structure(p, mask, [labels[c]], within_mm=2.0),
                               runs)
        t_sel, sel = timed(lambda p=points, r=region, k=k: select_spread(p, k, region=r), runs)
        rows.append((f"near_structure ({bone}, {len(points)} points)", t_near, f"{int(region.sum())} in region"))
        rows.append((f"select_spread ({bone}, k={k})", t_sel, f"radius {sel.radius_mm:.1f} mm"))
        centres.append(centre_voxels(points[sel.indices], mask))
    return rows, np.concatenate(centres)


def bench_patches(subject, centres: np.ndarray, runs: int) -> tuple[list, np.ndarray]:
    layout = patch_layout(centres, (64, 64, 64), SHAPE)
    t_extract, _ = timed(lambda: extract_patches(subject.image.array, layout), runs)
    probs = np.random.default_rng(0).random((len(layout), 3, 64, 64, 64), dtype=np.float32)
    t_merge, merged = timed(lambda: merge_patches(probs, layout), runs)
    return [(f"extract_patches ({len(layout)} x 64^3)", t_extract, ""),
            (f"merge_patches ({len(layout)} x 3 x 64^3)", t_merge, f"{(merged.coverage > 0).mean():.1%} covered")], \
        merged.coverage > 0


def bench_ensemble(covered: np.ndarray, runs: int) -> list:
    rng = np.random.default_rng(1)
    p2d = rng.random((5, *SHAPE), dtype=np.float32)
    p3d = rng.random((5, *SHAPE), dtype=np.float32)
    p3d[:, ~covered] = np.nan
    t, _ = timed(lambda: ensemble_labels([p2d, p3d], label_values=[1, 2, 3, 4]), runs)
    return [("ensemble_labels (2 x 5 classes)", t, "")]


def bench_cleanup(clean: np.ndarray, runs: int) -> list:
    values = list(LABELS["knee"].values())
    rng = np.random.default_rng(2)
    noisy = clean.copy()
    speckle = rng.random(SHAPE) < 0.001
    noisy[speckle] = rng.integers(0, 5, int(speckle.sum()))
    noisy[(rng.random(SHAPE) < 0.001) & np.isin(noisy, [1, 3])] = 0
    keep = {LABELS["knee"]["tibial_cartilage"]: 2}  # the medial and lateral plates
    cleaned, _ = largest_components(noisy, values, keep=keep)
    settings = PostprocessSettings(keep_components=keep, closing_radius_mm=1.5)
    rows = []
    for name, fn in (
        ("largest_components (clean, keep tibial 2)", lambda: largest_components(clean, values, keep=keep)),
        ("largest_components (speckle, keep tibial 2)", lambda: largest_components(noisy, values, keep=keep)),
        ("fill_holes (speckle, after components)", lambda: fill_holes(cleaned, values)),
        ("fill_holes (speckle: whole-volume boxes)", lambda: fill_holes(noisy, values)),
        ("close_labels (1.5 mm ball, after components)", lambda: close_labels(cleaned, values, radius_mm=1.5,
                                                                              spacing=SPACING)),
        ("postprocess_labels (speckle, all 3 steps)", lambda: postprocess_labels(noisy, values, spacing=SPACING,
                                                                                 settings=settings)),
    ):
        t, (_, changes) = timed(fn, runs)
        moved = changes.changed if not isinstance(changes, list) else sum(c.changed for c in changes)
        rows.append((name, t, f"{moved} voxels changed"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    subject = generate_subject("knee", 0, shape=SHAPE, spacing=SPACING)
    rows, centres = bench_selection(subject, runs)
    patch_rows, covered = bench_patches(subject, centres, runs)
    rows += patch_rows + bench_ensemble(covered, runs) + bench_cleanup(subject.mask.array, runs)
    print(f"OAI-ZIB size {SHAPE}, spacing {SPACING} mm, median of {runs}")
    for name, seconds, note in rows:
        print(f"{name:<46} {seconds:8.3f} s  {note}")


if __name__ == "__main__":
    main()

"""Speed and agreement of mskseg.metrics against independent implementations, at full size.

Usage::

    python benchmarks/bench_metrics.py                 # knee (OAI-ZIB size) and hip cases
    python benchmarks/bench_metrics.py knee-mild --check-gap

Each case is a synthetic phantom's label map (the reference) and a perturbed copy of it
(mskseg.synthetic.perturb: smooth displacement plus two blobs) as the prediction. For each case it prints:

* mskseg: all metrics (overlap, confusion, HD/HD95/ASSD, GapDice eps 10 mm, collision count
  eps 2 mm, per-slice Dice), median of 3 runs on 2 threads, and the same without GapDice and
  collisions;
* SimpleITK: LabelOverlapMeasuresImageFilter (Dice, Jaccard) and HausdorffDistanceImageFilter
  on each structure's border voxels (BinaryContour, face connectivity, image padded by one
  background voxel so that a cut structure has a border on the cut, as in mskseg);
* MONAI (if installed): compute_hausdorff_distance (max and 95th percentile) and
  compute_average_surface_distance (symmetric); MONAI returns float32, so its values differ
  from the exact ones by float32 rounding (relative ~1e-7);
* surface-distance (DeepMind, if installed): its distances are between surface elements
  weighted by area, another definition, so only its speed and the size of the difference
  are shown;
* --check-gap: GapDice against a brute-force computation with whole-volume scipy distance
  transforms (slow).

"max |diff|" is over structures and metrics; "x faster" is reference time / mskseg time.
Install the optional references with ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from mskseg.metrics.evaluate import EvaluationSettings, evaluate_arrays
from mskseg.synthetic import LABELS, generate_subject
from mskseg.synthetic.perturb import PerturbSettings, perturb_labels

CASES = {
    "knee-mild": ("knee", (160, 384, 384), (0.7, 0.3646, 0.3646), 0.3),
    "knee-strong": ("knee", (160, 384, 384), (0.7, 0.3646, 0.3646), 1.0),
    "hip-mild": ("hip", (415, 244, 266), (0.78, 0.77, 0.96), 0.3),
}


def timed(fn, repeat: int = 1):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def sitk_reference(pred: np.ndarray, ref: np.ndarray, spacing, labels: dict[str, int]) -> dict:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)

    def image(a: np.ndarray) -> sitk.Image:
        img = sitk.GetImageFromArray(np.ascontiguousarray(np.pad(a, 1).transpose(2, 1, 0)))
        img.SetSpacing(tuple(float(s) for s in spacing))
        return img

    out: dict[str, dict[str, float]] = {}
    pi, ri = image(pred.astype(np.uint8)), image(ref.astype(np.uint8))
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(ri, pi)
    for name, v in labels.items():
        pc = sitk.BinaryContour(pi == v, fullyConnected=False)
        rc = sitk.BinaryContour(ri == v, fullyConnected=False)
        hd = sitk.HausdorffDistanceImageFilter()
        hd.Execute(pc, rc)
        out[name] = {"dice": overlap.GetDiceCoefficient(v), "iou": overlap.GetJaccardCoefficient(v),
                     "hd_mm": hd.GetHausdorffDistance(), "mean_directed_mm": hd.GetAverageHausdorffDistance()}
    return out


def monai_reference(pred: np.ndarray, ref: np.ndarray, spacing, labels: dict[str, int]) -> dict:
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    torch.set_num_threads(2)
    values = list(labels.values())
    p = torch.stack([torch.from_numpy(pred == v) for v in [0, *values]])[None]
    r = torch.stack([torch.from_numpy(ref == v) for v in [0, *values]])[None]
    sp = [float(s) for s in spacing]
    hd = compute_hausdorff_distance(p, r, include_background=False, spacing=sp)[0]
    hd95 = compute_hausdorff_distance(p, r, include_background=False, percentile=95, spacing=sp)[0]
    assd = compute_average_surface_distance(p, r, include_background=False, symmetric=True, spacing=sp)[0]
    return {name: {"hd_mm": float(hd[i]), "hd95_mm": float(hd95[i]), "assd_mm": float(assd[i])}
            for i, name in enumerate(labels)}


def deepmind_reference(pred: np.ndarray, ref: np.ndarray, spacing, labels: dict[str, int]) -> dict:
    import surface_distance as sd

    out = {}
    for name, v in labels.items():
        d = sd.compute_surface_distances(ref == v, pred == v, tuple(float(s) for s in spacing))
        out[name] = {"hd_mm": sd.compute_robust_hausdorff(d, 100), "hd95_mm": sd.compute_robust_hausdorff(d, 95)}
    return out


def brute_gap_dice(pred: np.ndarray, ref: np.ndarray, spacing, labels: dict[str, int], eps: float) -> dict:
    from scipy import ndimage

    values = list(labels.values())
    d = np.stack([ndimage.distance_transform_edt(ref != v, sampling=spacing) for v in values])
    d.sort(axis=0)
    g = d[0] + d[1] < eps - 1e-9
    out = {}
    for name, v in labels.items():
        p, r = (pred == v) & g, (ref == v) & g
        n = p.sum() + r.sum()
        out[name] = {"gap_dice": 2 * (p & r).sum() / n if n else float("nan")}
    return out


def compare(ours, theirs: dict, keys: list[str]) -> tuple[float, float]:
    """Largest absolute and largest relative difference over structures and metrics."""
    worst, worst_rel = 0.0, 0.0
    table = ours.set_index("structure")
    for name, vals in theirs.items():
        for k in keys:
            mine = float(table.loc[name, k])
            if np.isfinite(mine) or np.isfinite(vals[k]):
                diff = abs(mine - vals[k])
                worst = max(worst, diff)
                worst_rel = max(worst_rel, diff / max(abs(mine), 1e-12))
    return worst, worst_rel


def run(name: str, check_gap: bool) -> None:
    kind, shape, spacing, disp = CASES[name]
    subject = generate_subject(kind, 0, shape=shape, spacing=spacing)
    ref = subject.mask.array
    pred = perturb_labels(subject.mask, PerturbSettings(displacement_mm=disp, n_blobs=2, seed=1), "bench").array
    labels = dict(LABELS[kind])
    labels = {k: v for k, v in labels.items() if v != 0}
    print(f"\n== {name}: {kind} {shape} spacing {spacing}, {len(labels)} structures, displacement {disp} mm")
    t_all, ev = timed(lambda: evaluate_arrays(pred, ref, spacing, labels, EvaluationSettings(threads=2, fov_axis=0)), 3)
    t_core, _ = timed(lambda: evaluate_arrays(pred, ref, spacing, labels, EvaluationSettings(
        threads=2, gap_eps_mm=None, collision_eps_mm=None, fov_axis=0)), 3)
    tab = ev.table
    print(tab[["structure", "dice", "hd_mm", "hd95_mm", "assd_mm", "gap_dice", "collisions"]].round(4).to_string())
    print(f"mskseg all metrics: {t_all:.3f} s   without GapDice/collisions: {t_core:.3f} s")
    tab = tab.assign(mean_directed_mm=(tab["pred_to_ref_mm"] + tab["ref_to_pred_mm"]) / 2)
    refs = [("SimpleITK overlap + Hausdorff", sitk_reference, ["dice", "iou", "hd_mm", "mean_directed_mm"]),
            ("MONAI HD + HD95 + ASSD", monai_reference, ["hd_mm", "hd95_mm", "assd_mm"]),
            ("surface-distance (other definition)", deepmind_reference, ["hd_mm", "hd95_mm"])]
    if check_gap:
        refs.append(("brute-force GapDice (scipy EDT)",
                     lambda p, r, s, lab: brute_gap_dice(p, r, s, lab, 10.0), ["gap_dice"]))
    for title, fn, keys in refs:
        try:
            t_ref, vals = timed(lambda fn=fn: fn(pred, ref, spacing, labels))
        except ImportError as err:
            print(f"{title}: not installed ({err.name})")
            continue
        diff, rel = compare(tab, vals, keys)
        speed = t_ref / t_core if "GapDice" not in title else t_ref / t_all
        print(f"{title}: {t_ref:.2f} s, max |diff| {diff:.3g} (relative {rel:.2g}; {', '.join(keys)}), "
              f"mskseg {speed:.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"any of {', '.join(CASES)} (default: all)")
    parser.add_argument("--check-gap", action="store_true", help="also brute-force GapDice (slow)")
    args = parser.parse_args()
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    for name in args.cases or list(CASES):
        run(name, args.check_gap)


if __name__ == "__main__":
    main()

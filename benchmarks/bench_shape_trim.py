"""Shape models of knee phantoms whose field of view cuts the shafts at varying heights, with and without trimming.

Usage::

    python benchmarks/bench_shape_trim.py                                  # 16 phantoms, FOV jitter 12 mm
    python benchmarks/bench_shape_trim.py --subjects 16 --jitter 15 --femur 50 --tibia 50

A cohort of synthetic knees is generated on the demo grid (64 x 112 x 112 voxels of 1.6 x 1.25 x 1.25 mm,
140 mm along SI) with ``fov_jitter_mm``: each phantom's field of view is shifted along SI by a seeded draw,
so its femur and tibia shafts are cut at heights that vary by up to twice the jitter. For each bone, once
as the masks are and once trimmed (``--femur`` mm of the femur from its inferior end, ``--tibia`` mm of the
tibia from its superior end), the library runs the shape stage as the workflow does: reference selection,
registration of every subject to the reference (affine + demons at ``--spacing`` mm), landmarks sampled on
the reference surface (not on field-of-view caps, nor on the trim's cut) and carried to every subject, then
Procrustes (with scale) + PCA of all usable subjects. It prints per bone and variant: the subjects used (a
bone the field of view cuts shorter than the trim is left out, as in the workflow), the total variance
(mm^2), the share of variance of mode 1 and of modes 1-3, the largest displacement of a landmark along mode
1 at +3 SD (mm), the correlation of the subjects' mode-1 scores with the bone's extent in the field of view
(the scanner's cut) and with the phantom's size (anatomy), the mean and largest distance of the landmarks
to their subject's own surface and the mean error against the phantoms' true corresponding points (mm;
both without the reference, which is registered to itself). The figures are in docs/shape.md.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from mskseg.io.volumes import to_sitk
from mskseg.landmarks.correspondence import carry_frame, carry_to_subject, sample_reference, true_points, truth_errors
from mskseg.landmarks.surface import surface_distance
from mskseg.registration import set_threads
from mskseg.registration.pipeline import RegistrationSettings, register_to_reference
from mskseg.registration.reference import choose_reference
from mskseg.registration.trim import TrimSpec, trimmed_structure
from mskseg.shape import fit_shape_model
from mskseg.synthetic import LABELS, generate_subject

ENDS = {"femur": "inferior", "tibia": "superior"}


@dataclass
class Outcome:
    bone: str
    trim: TrimSpec | None
    n_used: int
    n_short: int
    n_failed: int
    total_mm2: float
    mode1: float
    modes3: float
    mode1_max_mm: float
    r_fov: float
    r_size: float
    surface_mean_mm: float
    surface_max_mm: float
    truth_mean_mm: float
    seconds: float


def extent_mm(subject, bone: str) -> float:
    """The bone's extent (mm) in the field of view from its joint end."""
    return trimmed_structure(subject.mask, LABELS["knee"][bone], trim=TrimSpec(1e6, ENDS[bone])).record[
        "trim_extent_mm"]


def shape_model_of(subjects: dict, bone: str, trim: TrimSpec | None, settings: RegistrationSettings,
                   n_landmarks: int) -> Outcome:
    start = time.perf_counter()
    masks = {s: sub.mask for s, sub in subjects.items()}
    labels = {bone: LABELS["knee"][bone]}
    choice = choose_reference(masks, [(bone, False)], labels, selection_spacing_mm=3.0,
                              working_spacing_mm=settings.working_spacing_mm, margin_mm=settings.margin_mm,
                              trim=trim, read=lambda v: v)
    points = sample_reference(choice.mask, n_landmarks, seed=0, trim=trim)
    ref_truth = true_points(subjects[choice.instance.subject].landmarks, bone)
    fixed = sitk.Cast(to_sitk(choice.working), sitk.sitkFloat32)
    keys, shapes, surface, truth = [], [], [], []
    n_short = n_failed = 0
    for s, sub in subjects.items():
        prepared = trimmed_structure(sub.mask, labels[bone], trim=trim)
        if prepared.short:
            n_short += 1
            continue
        result = register_to_reference(fixed, prepared.mask, settings)
        if not result.converged:
            n_failed += 1
            continue
        carried = carry_to_subject(points, result.affine, result.field, False)
        keys.append(s)
        shapes.append(carried)
        if s != choice.instance.subject:  # the reference is registered to itself: 0 mm, not counted
            surface.append(surface_distance(carried, sub.mask, label=labels[bone]))
            truth.append(truth_errors(carry_frame(ref_truth, result.affine, result.field, False),
                                      true_points(sub.landmarks, bone)))
    model = fit_shape_model(np.stack(shapes), keys, scale=True)
    along = 3.0 * model.sd[0] * np.linalg.norm(model.modes[0], axis=1)
    score = model.coefficients[:, 0]
    r_fov = np.corrcoef(score, [extent_mm(subjects[k], bone) for k in keys])[0, 1]
    r_size = np.corrcoef(score, [subjects[k].params["anatomy"]["scale"] for k in keys])[0, 1]
    dist = np.concatenate(surface)
    return Outcome(bone, trim, len(keys), n_short, n_failed, model.total_variance, float(model.explained_ratio[0]),
                   float(model.cumulative_ratio[min(2, model.n_modes - 1)]), float(along.max()), float(r_fov),
                   float(r_size), float(dist.mean()), float(dist.max()), float(np.concatenate(truth).mean()),
                   time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=16, help="phantoms in the cohort")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jitter", type=float, default=12.0, help="fov_jitter_mm of the phantoms")
    parser.add_argument("--femur", type=float, default=50.0, help="femur length kept from its inferior end, mm")
    parser.add_argument("--tibia", type=float, default=50.0, help="tibia length kept from its superior end, mm")
    parser.add_argument("--spacing", type=float, default=2.0, help="working spacing of the registrations, mm")
    parser.add_argument("--landmarks", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    set_threads(args.threads)
    start = time.perf_counter()
    subjects = {f"knee{i:03d}": generate_subject("knee", i, seed=args.seed, n_landmarks=200,
                                                 fov_jitter_mm=args.jitter) for i in range(args.subjects)}
    shifts = [sub.params["fov_shift_mm"] for sub in subjects.values()]
    print(f"{args.subjects} knee phantoms (seed {args.seed}, demo grid), field of view shifted along SI by "
          f"{min(shifts):+.1f} .. {max(shifts):+.1f} mm; {time.perf_counter() - start:.1f} s")
    settings = RegistrationSettings.from_dict({"working_spacing_mm": args.spacing, "margin_mm": 5.0,
                                               "demons": {"shrink_factors": [2, 1], "iterations": [40, 20]}})
    lengths = {"femur": args.femur, "tibia": args.tibia}
    for bone in ("femur", "tibia"):
        extents = [extent_mm(sub, bone) for sub in subjects.values()]
        print(f"{bone}: extent in the field of view from its {ENDS[bone]} end {min(extents):.1f} .. "
              f"{max(extents):.1f} mm")
    print(f"\n{'bone':6} {'trim':20} {'used':>4} {'short':>5} {'var mm2':>7} {'mode 1':>6} {'1-3':>6} "
          f"{'+3SD mm':>7} {'r FOV':>6} {'r size':>6} {'surface mm':>11} {'truth mm':>8} {'s':>5}")
    for bone in ("femur", "tibia"):
        for trim in (None, TrimSpec(lengths[bone], ENDS[bone])):
            o = shape_model_of(subjects, bone, trim, settings, args.landmarks)
            label = "none" if trim is None else f"{trim.length_mm:g} mm from {trim.end}"
            print(f"{bone:6} {label:20} {o.n_used:4d} {o.n_short:5d} {o.total_mm2:7.0f} {o.mode1:6.1%} "
                  f"{o.modes3:6.1%} {o.mode1_max_mm:7.2f} {o.r_fov:6.2f} {o.r_size:6.2f} "
                  f"{o.surface_mean_mm:5.2f}/{o.surface_max_mm:5.2f} {o.truth_mean_mm:8.2f} {o.seconds:5.1f}"
                  + (f"  ({o.n_failed} not converged)" if o.n_failed else ""), flush=True)
    print(f"\ntotal {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()

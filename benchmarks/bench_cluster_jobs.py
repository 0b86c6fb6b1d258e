"""How many cluster jobs a 507-subject knee run submits through profiles/slurm, with and without grouping.

    python benchmarks/bench_cluster_jobs.py [--subjects 507] [--folds 10] [--batch-subjects 20]

Builds the 507-subject manifest of bench_dryrun.py (empty stand-in files) with the knee methods of
the paper-scale config (the 2D U-Net trained per fold, two perturbed stand-ins), pretends QC has
passed and runs the real `make_splits` rule, so that a dry run plans the whole DAG: preprocessing,
registration and landmarks, the per-fold shape models, training, prediction, evaluation, tables.
Then counts the jobs of two dry runs through the profile: one with the rules' groups (a batch of
subjects' preprocessing + weight maps, registrations + landmark warps, and a method's perturbations +
scoring, each with the rule that gathers the batch's records, one cluster job) and one with every job
alone. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml
from bench_dryrun import REPO, pretend_qc_done, write_inputs

METHODS = {
    "unet2d": {"kind": "trained", "view": "sagittal", "loss": "ce_distance", "weight_map": "unet",
               "network": {"name": "unet2d", "base": 64, "depth": 4}, "threads": 8, "runtime_min": 1440,
               "train": {"epochs": 40, "batch_size": 10, "lr": 1.0e-5, "early_stopping": 5}},
    "perturbedMild": {"kind": "perturbed", "displacement_mm": 0.4, "n_blobs": 1, "seed": 1},
    "perturbedStrong": {"kind": "perturbed", "displacement_mm": 1.0, "n_blobs": 3, "seed": 2},
}


def prepare(folder: Path, n_subjects: int, folds: int, batch_subjects: int = 20) -> Path:
    """The manifest and config, QC pretended done, the splits made by the workflow itself."""
    write_inputs(folder, n_subjects, folds)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["batch_subjects"] = batch_subjects
    config["datasets"]["oai"].update(methods=METHODS, weight_maps={"unet": {"w0": 10, "sigma_mm": 2.0}},
                                     evaluation={"collision_eps_mm": None})
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    pretend_qc_done(folder, n_subjects)
    _snakemake(folder, "--cores", "1", "results/splits/oai/splits.tsv")
    return folder


def _snakemake(folder: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args],
                            cwd=folder, text=True, encoding="utf-8", errors="replace", capture_output=True, check=False)
    text = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed:\n{text[-5000:]}")
    return text


def cluster_jobs(folder: Path, grouped: bool) -> tuple[int, Counter, float]:
    """Jobs a dry run through the SLURM profile would submit: (count, per rule or group, seconds)."""
    args = ["-n", "--workflow-profile", str(REPO / "profiles" / "slurm"), "--slurm-no-account"]
    if not grouped:
        args += ["--groups", *[f"{rule}=solo_{rule}" for rule in GROUPED_RULES]]
    start = time.perf_counter()
    text = _snakemake(folder, *args)
    seconds = time.perf_counter() - start
    return *_count(text), seconds


def _count(text: str) -> tuple[int, Counter]:
    """Submissions in a dry run's plan: one per group job (keyed by its rules), one per job outside
    any group (keyed by its rule); the target rule ``all`` runs nothing and is not counted."""
    per: Counter = Counter()
    members: list[str] | None = None

    def close() -> None:
        if members is not None:  # a group of one job is submitted like a lone job
            per[members[0] if len(members) == 1 else "group: " + " + ".join(sorted(set(members)))] += 1

    for line in text.splitlines():
        if re.search(r"Group job \S+ \(jobs in lexicogr\. order\):", line):
            close()
            members = []
            continue
        match = re.match(r"^( {4})?(?:local)?(?:rule|checkpoint) (\w+):", line)
        if not match:
            continue
        if match.group(1) and members is not None:
            members.append(match.group(2))
        else:
            close()
            members = None
            if match.group(2) != "all":
                per[match.group(2)] += 1
    close()
    return sum(per.values()), per


#: the rules that carry `group:` (a batch of subjects' chains of small jobs goes to the cluster as one job)
GROUPED_RULES = ("preprocess_subject", "weight_map", "preprocess_poor_mask", "preprocess_batch", "register_structure",
                 "warp_landmarks", "landmarks_batch", "perturb_prediction", "evaluate_subject", "batch_metrics")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=507)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--batch-subjects", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = prepare(Path(tmp), args.subjects, args.folds, args.batch_subjects)
        for grouped in (False, True):
            total, per, seconds = cluster_jobs(folder, grouped)
            print(f"{args.subjects} subjects, {args.folds}-fold CV, batches of {args.batch_subjects}, "
                  f"{'with' if grouped else 'without'} grouping: {total} cluster jobs (dry run {seconds:.1f} s)")
            for name, n in sorted(per.items()):
                print(f"  {name:<72}{n:>6}")


if __name__ == "__main__":
    main()

"""Time a dry run (DAG construction) of the workflow on a generated manifest of N knee subjects.

    python benchmarks/bench_dryrun.py [--subjects 507] [--folds 10]

Writes a manifest (with empty stand-in files: a dry run reads none) and a config with k-fold
cross-validation into a temporary folder, runs ``snakemake -n`` there and prints the wall time
and the planned jobs. Printed, never asserted: the issue's target is under 30 s for 507 subjects.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def write_inputs(folder: Path, n_subjects: int, folds: int) -> Path:
    """A manifest of ``n_subjects`` (two time points per patient, KL grades) and its config."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    lines = ["subject\tpatient\ttimepoint\tkl_grade\timage\tlabel"]
    for i in range(n_subjects):
        sid = f"9{i:06d}"
        for kind in ("image", "label"):
            (data / f"{sid}_{kind}.nii.gz").touch()
        lines.append(f"{sid}\tP{i // 2:05d}\t{i % 2}\t{i % 5}\tdata/{sid}_image.nii.gz\tdata/{sid}_label.nii.gz")
    (folder / "manifest.tsv").write_text("\n".join(lines) + "\n")
    config = {
        "datasets": {"oai": {
            "modality": "mri",
            "source": {"manifest": {"path": "manifest.tsv"}},
            "labels": {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4},
            "bones": ["femur", "tibia"], "cartilage": ["femoral_cartilage", "tibial_cartilage"],
            "split": {"method": "kfold", "k": folds, "n_val_folds": 1, "stratify": "kl_grade"},
            "preprocess": {"crop": {"structures": ["femur", "tibia"], "margin_mm": 10}},
        }},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def pretend_qc_done(folder: Path, n_subjects: int) -> None:
    """Write the QC outputs as if every subject had passed, so the dry run plans past the QC
    checkpoint (preprocessing of every subject) as it does in a real run's second half."""
    qc = folder / "results" / "qc" / "oai"
    qc.mkdir(parents=True, exist_ok=True)
    (folder / "results" / "data" / "oai").mkdir(parents=True, exist_ok=True)
    (folder / "results" / "data" / "oai" / "manifest.tsv").write_text((folder / "manifest.tsv").read_text())
    manifest = (folder / "manifest.tsv").read_text().splitlines()
    rows = [manifest[0] + "\tqc_passed\tqc_failures\tqc_fixes\thas_label"]  # manifest columns + QC's
    for i, line in zip(range(n_subjects), manifest[1:], strict=True):
        (qc / f"sub-9{i:06d}_qc.tsv").write_text("subject\tcheck\tstatus\tdetail\n")
        rows.append(f"{line}\tTrue\t\t\tTrue")
    (qc / "subjects.tsv").write_text("\n".join(rows) + "\n")
    (qc / "qc_table.tsv").write_text("subject\tcheck\tstatus\tdetail\n")


def dry_run(folder: Path) -> tuple[float, dict[str, int], str]:
    """Run ``snakemake -n`` in ``folder``; return seconds, jobs per rule and the output."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--snakefile",
                             str(REPO / "Snakefile")], cwd=folder,
                             text=True, encoding="utf-8", errors="replace", capture_output=True, check=False)
    seconds = time.perf_counter() - start
    text = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"dry run failed:\n{text}")
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", text, re.M)}
    return seconds, counts, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=507)
    parser.add_argument("--folds", type=int, default=10)
    args = parser.parse_args()
    for after_qc in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_inputs(Path(tmp), args.subjects, args.folds)
            if after_qc:
                pretend_qc_done(folder, args.subjects)
            seconds, counts, _ = dry_run(folder)
        when = "after QC (preprocessing planned)" if after_qc else "fresh (up to the QC checkpoint)"
        print(f"dry run, {args.subjects} subjects, {args.folds}-fold CV, {when}: {seconds:.1f} s wall "
              "(target < 30 s)")
        for rule, n in sorted(counts.items()):
            print(f"  {rule:<24}{n:>6}")


if __name__ == "__main__":
    main()

"""The workflow through profiles/slurm on a real SLURM cluster started on this machine (one node, two
CPUs, one fake GPU; tools/slurm_loopback.py): jobs go through sbatch, small per-subject rules in group
jobs, GPU jobs get --gpus=1 and run one at a time, the outputs equal a local run's, and a training job
cancelled with scancel resumes from its last checkpoint when the workflow is run again."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mskseg.io import read_volume
from mskseg.nn.history import TIMING
from tests.workflow.wf import REPO, snakemake, write_config

sys.path.insert(0, str(REPO / "tools"))
import itertools

import slurm_loopback

pytestmark = [pytest.mark.slow, pytest.mark.slurm]
GPU_RULES = {"train_model", "predict_subject", "pretrain_model", "fit_fusion"}
SUBJECTS = ("knee000", "knee001", "knee002")


def _config() -> dict:
    # epochs of about 3 s, so that a training job can be cancelled between two checkpoints
    train = {"epochs": 4, "batch_size": 4, "lr": 0.01, "steps_per_epoch": 50, "seed": 1}
    return {"batch_subjects": 2, "datasets": {"knee": {  # batches of 2 and 1 subjects
        "modality": "mri",
        "labels": {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4},
        "bones": ["femur", "tibia"],
        "source": {"synthetic": {"kind": "knee", "n_subjects": 3, "seed": 5, "patients": 1}},
        "split": {"method": "kfold", "k": 3, "n_val_folds": 1},
        "preprocess": {"crop": {"structures": ["femur", "tibia"], "margin_mm": 5}},
        "shape": {"enabled": False},
        "methods": {"unet": {"kind": "trained", "view": "sagittal", "threads": 1,
                             "network": {"name": "unet2d", "base": 4, "depth": 2}, "train": train},
                    "exact": {"kind": "perturbed", "displacement_mm": 0.0, "n_blobs": 0}},
        "evaluation": {"collision_eps_mm": None, "tables": {"metrics": ["dice", "hd95_mm"]}},
    }}}


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("starting SLURM daemons needs root (CI runs as root)")
    started = slurm_loopback.up()
    try:
        yield started
    finally:
        stopped = slurm_loopback.down(started.folder)
        left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _names(p, started.folder)]
        shutil.rmtree(started.folder, ignore_errors=True)
        assert set(stopped) == set(slurm_loopback.DAEMONS) and not left, (stopped, left)


def _names(proc: Path, folder: Path) -> bool:
    try:
        return str(folder) in (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _slurm(cluster, cwd: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """snakemake through the SLURM profile, against the loopback cluster (no accounting: squeue)."""
    return snakemake(*_slurm_args(*args), cwd=cwd, timeout=timeout, env=cluster.env())


def _slurm_args(*args: str) -> list[str]:
    return ["--workflow-profile", str(REPO / "profiles" / "slurm"), "--cores", "2", "--resources", "mem_mb=8000",
            "--slurm-status-command", "squeue", "--slurm-no-account", "--slurm-init-seconds-before-status-checks",
            "2", *args]


def _jobs(cluster) -> list[dict[str, str]]:
    """Every job the controller still remembers (MinJobAge=300 s), as key=value fields."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], env=cluster.env(),
                         text=True, encoding="utf-8", errors="replace", capture_output=True,
                         check=False)
    jobs = []
    for line in out.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            jobs.append(fields)
    return jobs


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory: pytest.TempPathFactory) -> dict:
    local, remote = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("slurm")
    for root in (local, remote):
        write_config(root, _config())
    result = snakemake("--cores", "2", "--resources", "gpu=1", cwd=local)
    assert result.returncode == 0, result.stderr[-4000:]
    before = {j["JobId"] for j in _jobs(cluster)}
    result = _slurm(cluster, remote)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    jobs = [j for j in _jobs(cluster) if j["JobId"] not in before]
    return {"local": local, "slurm": remote, "jobs": jobs, "text": result.stdout + result.stderr}


def test_every_job_went_through_sbatch_and_completed(runs) -> None:
    jobs = runs["jobs"]
    assert jobs, runs["text"][-3000:]
    assert {j["JobState"] for j in jobs} == {"COMPLETED"}, [(j["JobId"], j["Comment"], j["JobState"]) for j in jobs]
    rules = {re.sub(r"_wildcards_.*", "", j.get("Comment", "")).removeprefix("rule_") for j in jobs}
    assert {"train_model", "predict_subject", "make_splits", "qc_summary"} <= rules, rules


def test_a_batch_of_subjects_chains_ran_as_one_group_job(runs) -> None:
    comments = [j.get("Comment", "") for j in runs["jobs"]]
    # a group job's comment is rule_<group>_<its rules> (a lone job's: rule_<rule>_wildcards_<values>): per
    # batch (2 + 1 subjects) the preprocessing and its gathering; the perturbations and scoring of the "exact"
    # predictions and their gathering; the scoring of the "unet" predictions (each a GPU job of its own) and
    # their gathering
    groups = {c for c in comments if c.startswith(("rule_preprocess_", "rule_evaluation_")) and "_wildcards_" not in c}
    exact = [c for c in comments if c in groups and c.startswith("rule_evaluation_") and "perturb_prediction" in c]
    unet = [c for c in comments if c in groups and c.startswith("rule_evaluation_") and "perturb_prediction" not in c]
    preprocess = [c for c in comments if c in groups and c.startswith("rule_preprocess_")]
    assert len(exact) == len(unet) == len(preprocess) == 2, comments
    assert all("batch_metrics" in c and "evaluate_subject" in c for c in exact + unet), groups
    assert all("preprocess_batch" in c and "preprocess_subject" in c for c in preprocess), groups
    lone = {re.sub(r"_wildcards_.*", "", c).removeprefix("rule_") for c in comments if c not in groups}
    assert not lone & {"perturb_prediction", "evaluate_subject", "preprocess_subject", "batch_metrics"}, lone


def _gpu_jobs(jobs: list[dict[str, str]]) -> list[dict[str, str]]:
    return [j for j in jobs if "gpu" in (j.get("TresPerJob", "") + j.get("TresPerNode", "")
                                         + j.get("TRES", "")).lower()]


def test_gpu_jobs_asked_for_one_gpu_and_ran_one_at_a_time(runs) -> None:
    jobs = runs["jobs"]
    gpu = _gpu_jobs(jobs)
    gpu_rules = {j["Comment"].removeprefix("rule_").split("_wildcards_")[0] for j in gpu}
    assert gpu_rules == {"train_model", "predict_subject"}, [j["Comment"] for j in gpu]
    assert len(gpu) == 3 + 3  # a model per fold, a prediction per test subject
    assert all(re.search(r"gpu[:=/]1\b", j.get("TresPerJob", "") + j.get("TresPerNode", "")) for j in gpu)
    spans = sorted((datetime.fromisoformat(j["StartTime"]), datetime.fromisoformat(j["EndTime"])) for j in gpu)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, spans  # never two at once on the one GPU
    cpu_only = [j for j in jobs if j not in gpu]
    assert cpu_only and all("gpu" not in j.get("TresPerJob", "") + j.get("TresPerNode", "") for j in cpu_only)


def test_jobs_chose_their_device_at_run_time_and_logged_it(runs) -> None:
    log = (runs["slurm"] / "logs" / "models" / "knee" / "unet" / "fold-0_view-sagittal.log").read_text()
    assert re.search(r"training on (cpu|cuda)", log), log[-2000:]


def test_outputs_equal_a_local_run(runs) -> None:
    local, remote = runs["local"], runs["slurm"]
    for table in ("evaluation/knee/method-unet_metrics.csv", "evaluation/knee/method-exact_metrics.csv",
                  "splits/knee/splits.tsv", "qc/knee/subjects.tsv"):
        a = pd.read_csv(local / "results" / table, sep=None, engine="python")
        b = pd.read_csv(remote / "results" / table, sep=None, engine="python")
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)
    for sub in SUBJECTS:
        name = f"predictions/knee/sub-{sub}_method-unet_pred.nii.gz"
        np.testing.assert_array_equal(read_volume(local / "results" / name).array,
                                      read_volume(remote / "results" / name).array)
    for fold in range(3):
        name = f"models/knee/method-unet_fold-{fold}_view-sagittal_model.pt"
        _assert_same_weights(local / "results" / name, remote / "results" / name)


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    wa, wb = wa.get("model", wa), wb.get("model", wb)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_a_cancelled_training_job_resumes_from_its_checkpoint_on_rerun(cluster, runs) -> None:
    """Last in this file: it retrains fold 0 of the SLURM run (its model and checkpoints removed)."""
    local, remote = runs["local"], runs["slurm"]
    target = "results/models/knee/method-unet_fold-0_view-sagittal_model.pt"
    for path in (remote / "results" / "models" / "knee").glob("method-unet_fold-0_view-sagittal_*"):
        path.unlink()
    work = remote / "results" / "models" / ".work" / "knee"
    shutil.rmtree(work / "method-unet_fold-0_view-sagittal")

    # the first run: its training job is cancelled after an epoch's checkpoint is on disk
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *_slurm_args("--retries", "0"),
           target]
    env = dict(cluster.env(), PYTHONPATH=str(REPO / "src"),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    first = subprocess.Popen(cmd, cwd=remote, env=env, text=True, encoding="utf-8", errors="replace",
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        job = _wait_for_checkpoint_then_cancel(cluster, work / "method-unet_fold-0_view-sagittal")
        out, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode != 0, out[-3000:]
    assert not (remote / target).exists()
    assert _job_state(cluster, job) == "CANCELLED"

    # the re-run resubmits it; it resumes and ends with the uninterrupted (local) run's weights
    result = _slurm(cluster, remote, target)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    log = (remote / "logs" / "models" / "knee" / "unet" / "fold-0_view-sagittal.log").read_text()
    assert re.search(r"resuming after epoch [1-3] of 4", log), log[-3000:]
    _assert_same_weights(local / target, remote / target)
    timing = list(TIMING)  # the clock's columns
    history = target.replace("_model.pt", "_history.csv")
    pd.testing.assert_frame_equal(pd.read_csv(local / history).drop(columns=timing),
                                  pd.read_csv(remote / history).drop(columns=timing))


def _wait_for_checkpoint_then_cancel(cluster, work: Path, timeout: float = 600) -> str:
    """Wait until a training job has written the checkpoint of at least one epoch; scancel it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(work.glob("**/last.pt")):
            queue = subprocess.run(["squeue", "-h", "-o", "%i %k"], env=cluster.env(),
                                   text=True, encoding="utf-8", errors="replace",
                                   capture_output=True, check=False).stdout
            jobs = [line.split()[0] for line in queue.splitlines() if "rule_train_model" in line]
            if jobs:
                subprocess.run(["scancel", jobs[0]], env=cluster.env(), check=True)
                return jobs[0]
        time.sleep(0.2)
    raise AssertionError(f"no training checkpoint appeared under {work} within {timeout:.0f} s")


def _job_state(cluster, job: str) -> str:
    for _ in range(50):
        fields = next((j for j in _jobs(cluster) if j["JobId"] == job), {})
        if fields.get("JobState") not in (None, "RUNNING", "COMPLETING", "PENDING"):
            return fields["JobState"]
        time.sleep(0.2)
    return fields.get("JobState", "")

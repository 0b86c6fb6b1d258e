"""A crash and its recovery through Snakemake itself: kill -9 the whole process group while a model trains,
run the README's recovery command, and compare every output with an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mskseg.nn.history import TIMING
from mskseg.workflow.logs import ATTEMPT, attempts_path
from mskseg.workflow.resume import locked
from tests.workflow.wf import REPO, snakemake, write_config

pytestmark = pytest.mark.slow
LABELS4 = {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4}
#: files whose content holds run times (compared without them, or not at all)
TIMED = ("_pred.json", ".svg", "speed_accuracy.csv", "speed_accuracy.html")  # hold run times


def _config() -> dict:
    return {"datasets": {"knee": {
        "modality": "mri", "labels": LABELS4, "bones": ["femur", "tibia"],
        "source": {"synthetic": {"kind": "knee", "n_subjects": 3, "seed": 5}},
        "split": {"method": "kfold", "k": 3, "n_val_folds": 1},
        "preprocess": {"crop": {"structures": ["femur", "tibia"], "margin_mm": 5}},
        "shape": {"enabled": False},
        "methods": {"unet": {"kind": "trained", "view": "sagittal", "threads": 1,
                             "network": {"name": "unet2d", "base": 4, "depth": 2},
                             "train": {"epochs": 6, "batch_size": 4, "lr": 0.01, "steps_per_epoch": 12, "seed": 1,
                                       "early_stopping": None}}},
        "evaluation": {"collision_eps_mm": None, "tables": {"metrics": ["dice", "hd95_mm"]}},
    }}}


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO / "src"), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def _outputs(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in (folder / "results").rglob("*")
            if p.is_file() and ".work" not in p.parts and "benchmarks" not in p.parts}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ref, crashed = tmp_path_factory.mktemp("uninterrupted"), tmp_path_factory.mktemp("crashed")
    for folder in (ref, crashed):
        write_config(folder, _config())
    result = snakemake("--cores", "2", cwd=ref)
    assert result.returncode == 0, result.stderr[-4000:]
    # the crash: the whole process group killed while a model trains, after its first finished epoch
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]
    run = subprocess.Popen(cmd, cwd=crashed, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    deadline = time.monotonic() + 600
    while not list((crashed / "results" / "models" / ".work").rglob("last.pt")):
        assert run.poll() is None and time.monotonic() < deadline, "the run ended before a training checkpoint"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    return {"ref": ref, "crashed": crashed}


def test_a_plain_rerun_meets_the_stale_lock(runs: dict[str, Path]) -> None:
    assert locked(runs["crashed"])
    result = snakemake("--cores", "2", cwd=runs["crashed"])
    assert result.returncode != 0 and "cannot be locked" in result.stdout + result.stderr


def test_the_recovery_command_finishes_the_run_with_the_uninterrupted_outputs(runs: dict[str, Path]) -> None:
    crashed = runs["crashed"]
    cmd = [sys.executable, "-m", "mskseg.workflow.resume", "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]
    result = subprocess.run(cmd, cwd=crashed, env=_env(), text=True, encoding="utf-8", errors="replace",
                            capture_output=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "removing the lock" in result.stderr
    ref, new = _outputs(runs["ref"]), _outputs(crashed)
    assert sorted(new) == sorted(ref)
    for name, path in ref.items():
        if name.endswith("history.csv"):  # per-epoch losses equal; seconds differ
            a, b = pd.read_csv(path), pd.read_csv(new[name])
            timing = list(TIMING)  # the clock's columns
            pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))
        elif name.endswith("speed_accuracy.csv"):  # Dice equal; seconds and memory are the clock's
            a, b = pd.read_csv(path), pd.read_csv(new[name])
            dice = [c for c in a if c.startswith("dice_")]
            pd.testing.assert_frame_equal(a[["dataset", "method", *dice]], b[["dataset", "method", *dice]])
        elif not name.endswith(TIMED):
            assert path.read_bytes() == new[name].read_bytes(), name  # weights, predictions, tables
    # the killed training resumed from its checkpoint; Snakemake deleted its log before the rerun, the
    # attempts log beside it kept the killed attempt
    folder = crashed / "logs" / "models" / "knee" / "unet"
    resumed = [p for p in folder.glob("*.log") if not p.name.endswith(".attempts.log")
               and "resuming after epoch" in p.read_text(encoding="utf-8")]
    assert resumed
    for log in resumed:
        assert log.read_text(encoding="utf-8").count(ATTEMPT) == 1
        history = attempts_path(log).read_text(encoding="utf-8")
        assert history.count(ATTEMPT) == 2 and history.index("resuming after epoch") > history.rindex(ATTEMPT)

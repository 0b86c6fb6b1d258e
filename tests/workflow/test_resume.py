"""Recovery after a crash (mskseg.workflow.resume) against a fake /proc: unlock only a stale lock."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from mskseg.workflow.resume import LOCKS, locked, resume, survey


def _process(proc: Path, pid: int, cwd: Path, *argv: str) -> None:
    folder = proc / str(pid)
    folder.mkdir(parents=True)
    (folder / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    os.symlink(cwd, folder / "cwd")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "run"
    (work / LOCKS).mkdir(parents=True)
    (work / LOCKS / "0.input.lock").write_text("results/x\n")
    return work


def _recorder(calls: list):
    def run(cmd, cwd, check):
        calls.append(cmd[3:])
        return SimpleNamespace(returncode=0)
    return run


def test_a_live_snakemake_keeps_its_lock(workdir: Path, tmp_path: Path, capsys) -> None:
    proc = tmp_path / "proc"
    _process(proc, 101, workdir, "/venv/bin/python", "/venv/bin/snakemake", "--cores", "2")
    _process(proc, 102, tmp_path, "python", "-m", "snakemake", "--cores", "2")  # another folder's
    calls: list = []
    assert resume(["--cores", "2"], workdir, proc=proc, run=_recorder(calls)) == 1
    assert calls == [] and locked(workdir)
    assert "Snakemake still runs" in capsys.readouterr().err


def test_a_stale_lock_is_removed_and_the_run_goes_on(workdir: Path, tmp_path: Path, capsys) -> None:
    proc = tmp_path / "proc"
    _process(proc, 201, workdir, "python", f"{workdir}/.snakemake/scripts/tmp1.train_model.py")  # an orphan job
    _process(proc, 202, workdir, "python", "-m", "snakemake", "--target-jobs", "train_model:x")  # a spawned job
    assert [p.pid for p in survey(workdir, proc)[1]] == [201, 202] and survey(workdir, proc)[0] == []
    calls: list = []
    assert resume(["--cores", "2", "all"], workdir, proc=proc, run=_recorder(calls)) == 0
    assert calls == [["--cores", "2", "all", "--unlock"], ["--cores", "2", "all", "--rerun-incomplete"]]
    err = capsys.readouterr().err
    assert "2 job(s) of the stopped run still run" in err and "removing the lock" in err


def test_without_a_lock_it_just_runs_and_without_proc_it_does_not_guess(workdir: Path, tmp_path: Path) -> None:
    calls: list = []
    assert resume(["-n"], workdir, proc=tmp_path / "no-proc", run=_recorder(calls)) == 1  # locked, cannot tell
    assert calls == []
    for lock in (workdir / LOCKS).iterdir():
        lock.unlink()
    assert resume(["-n"], workdir, proc=tmp_path / "no-proc", run=_recorder(calls)) == 0
    assert calls == [["-n", "--rerun-incomplete"]]


def test_the_real_proc_lists_this_test_process_folder(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "5"], cwd=tmp_path)
    try:
        assert survey(tmp_path) == ([], [])  # `sleep` is neither a Snakemake nor one of its jobs
    finally:
        child.kill()
        child.wait()

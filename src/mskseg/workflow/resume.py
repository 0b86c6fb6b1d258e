"""Run the workflow again after a crash: ``python -m mskseg.workflow.resume <your snakemake arguments>``.

A Snakemake killed hard (``kill -9``, a power cut, a closed terminal) leaves its lock in
``.snakemake/locks``, and the next run refuses to start until ``--unlock``; the jobs it was running
may live on as orphans. This command, run in the same folder with the same arguments:

1. stops if a Snakemake still works in this folder (then the lock is real; nothing is touched);
2. says which jobs of the stopped run still run (a training job of the new run waits for an
   orphan training the same model: it holds that model's work-folder lock);
3. removes a stale lock (``snakemake <arguments> --unlock``);
4. runs ``snakemake <arguments> --rerun-incomplete``: finished outputs are kept, the jobs that were cut
   off run again, and trainings resume after their last finished epoch.

``make demo`` runs through it, so after a crash the same ``make demo`` goes on where it stopped.
Finding processes needs Linux's ``/proc``; elsewhere the lock is left alone and the command says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: where Snakemake keeps its lock files, relative to the working directory
LOCKS = Path(".snakemake") / "locks"


@dataclass(frozen=True)
class Process:
    pid: int
    command: str


def _processes(proc: Path = Path("/proc")) -> list[tuple[int, Path | None, list[str]]] | None:
    """(pid, working directory, argv) of every process we may inspect; None without ``/proc``."""
    if not proc.is_dir():
        return None
    found = []
    for entry in sorted((e for e in proc.iterdir() if e.name.isdigit()), key=lambda e: int(e.name)):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:  # gone, or another user's
            continue
        found.append((int(entry.name), cwd, [a.decode("utf-8", "replace") for a in argv if a]))
    return found


def _is_snakemake(argv: Sequence[str]) -> bool:
    """A Snakemake main process: ``snakemake ...`` or ``python -m snakemake ...``, not a job it spawned."""
    words = [Path(a).name for a in argv[:3]]
    started = "snakemake" in words or ("-m" in argv[:3] and "snakemake" in argv[:4])
    return started and "--target-jobs" not in argv


def _is_job(argv: Sequence[str]) -> bool:
    """A job script Snakemake started (``.snakemake/scripts/...``) or a job it spawned (``--target-jobs``)."""
    return any(".snakemake/scripts/" in a for a in argv) or "--target-jobs" in argv


def survey(workdir: str | os.PathLike, proc: Path = Path("/proc")) -> tuple[list[Process], list[Process]] | None:
    """(Snakemake main processes, job processes) working in ``workdir``; None where processes cannot be listed."""
    listed = _processes(proc)
    if listed is None:
        return None
    here = Path(workdir).resolve()
    me = os.getpid()
    main, jobs = [], []
    for pid, cwd, argv in listed:
        if pid == me or cwd is None or cwd.resolve() != here or not argv:
            continue
        if _is_job(argv):
            jobs.append(Process(pid, " ".join(argv)))
        elif _is_snakemake(argv):
            main.append(Process(pid, " ".join(argv)))
    return main, jobs


def locked(workdir: str | os.PathLike) -> bool:
    """Whether Snakemake's lock files are in ``workdir``."""
    locks = Path(workdir) / LOCKS
    return locks.is_dir() and any(locks.iterdir())


def resume(args: Sequence[str], workdir: str | os.PathLike = ".", *, proc: Path = Path("/proc"),
           run: Callable[..., Any] = subprocess.run) -> int:
    """Unlock a stale lock and run ``snakemake <args> --rerun-incomplete`` in ``workdir``; its exit status."""
    snakemake = [sys.executable, "-m", "snakemake", *args]
    found = survey(workdir, proc)
    if found is not None and found[0]:
        running = "; ".join(f"pid {p.pid}: {p.command[:120]}" for p in found[0])
        print(f"Snakemake still runs in {Path(workdir).resolve()} ({running}): wait for it or stop it "
              "(Ctrl-C, or kill its process group), then run this again. Nothing was changed.", file=sys.stderr)
        return 1
    if found is not None and found[1]:
        print(f"{len(found[1])} job(s) of the stopped run still run (pids "
              f"{', '.join(str(p.pid) for p in found[1])}); a training job of this run waits for one training "
              "the same model, then resumes from it.", file=sys.stderr)
    if locked(workdir):
        if found is None:
            print("This system does not list processes (/proc): cannot tell whether a Snakemake still runs here. "
                  "If none does, run `snakemake --unlock` with your arguments, then this again.", file=sys.stderr)
            return 1
        print("removing the lock a stopped Snakemake left (snakemake --unlock)", file=sys.stderr)
        unlocked = run([*snakemake, "--unlock"], cwd=workdir, check=False)
        if unlocked.returncode != 0:
            return unlocked.returncode
    return run([*snakemake, "--rerun-incomplete"], cwd=workdir, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    return resume(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())

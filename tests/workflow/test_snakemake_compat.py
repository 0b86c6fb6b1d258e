"""The work-around for Snakemake checking every group once per member (see mskseg.snakemake_compat)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mskseg.workflow.snakemake_compat import check_each_group_once, one_pending_reevaluation


def _dag_class():
    class FakeDAG:
        def __init__(self, groups: dict) -> None:
            self._group = groups
            self.checked: list = []

        def _check_groups(self):
            for group in self._group.values():
                if group == "bad":
                    raise RuntimeError("group depends on itself")
                self.checked.append(group)

    return FakeDAG


def test_each_group_is_checked_once_and_the_mapping_is_restored() -> None:
    cls = _dag_class()
    a, b = ["a1", "a2", "a3"], ["b1"]
    groups = {"a1": a, "a2": a, "a3": a, "b1": b}
    dag = cls(dict(groups))
    dag._check_groups()
    assert len(dag.checked) == 4  # unpatched: once per member
    assert check_each_group_once(cls) is True
    dag = cls(groups)
    dag._check_groups()
    assert dag.checked == [a, b]
    assert dag._group is groups and type(dag._group) is dict
    assert check_each_group_once(cls) is False  # already patched


def test_the_check_still_raises_and_restores_the_mapping() -> None:
    cls = _dag_class()
    check_each_group_once(cls)
    groups = {"x": "bad", "y": "bad"}
    dag = cls(groups)
    with pytest.raises(RuntimeError, match="depends on itself"):
        dag._check_groups()
    assert dag._group is groups


def test_a_fixed_snakemake_is_left_alone() -> None:
    class FixedDAG:
        def _check_groups(self):
            for _group in set(self._group.values()):
                pass

    original = FixedDAG._check_groups
    assert check_each_group_once(FixedDAG) is False and FixedDAG._check_groups is original
    assert check_each_group_once(type("NoChecks", (), {})) is False


def test_the_pinned_snakemake_has_the_loop_and_the_workflow_patches_it() -> None:
    import snakemake.api  # noqa: F401  (snakemake.dag alone is a circular import)
    from snakemake.dag import DAG

    check_each_group_once(DAG)  # as rules/common.smk does; a no-op if it already ran in this process
    assert getattr(DAG._check_groups, "_mskseg_once", False), "Snakemake changed _check_groups: recheck the patch"


def _scheduler_class():
    import threading

    class FakeScheduler:
        def __init__(self) -> None:
            self._open_jobs = threading.Semaphore(0)

        def _schedule_reevalutation(self, delay: int) -> None:
            threading.Timer(
                delay,
                lambda: self._open_jobs.release(),  # noqa: PLW0108 (Snakemake's own code, as it is)
            ).start()

    return FakeScheduler


def test_at_most_one_daemon_timer_is_pending_and_it_still_releases_the_loop() -> None:
    cls = _scheduler_class()
    assert one_pending_reevaluation(cls) is True
    assert one_pending_reevaluation(cls) is False  # once
    scheduler = cls()
    for _ in range(5):
        scheduler._schedule_reevalutation(0.2)
    timer = scheduler._mskseg_timer
    assert timer.daemon and timer.is_alive()
    assert scheduler._open_jobs.acquire(timeout=5)  # the pass it was asked for comes
    assert not scheduler._open_jobs.acquire(timeout=0.5)  # and only one
    scheduler._schedule_reevalutation(0.05)
    assert scheduler._mskseg_timer is not timer and scheduler._open_jobs.acquire(timeout=5)


def test_a_scheduler_without_the_plain_timer_is_left_alone() -> None:
    class Fixed:
        def _schedule_reevalutation(self, delay):
            t = threading_timer(delay)
            t.daemon = True

    def threading_timer(delay):
        return delay

    assert one_pending_reevaluation(Fixed) is False
    assert one_pending_reevaluation(type("Empty", (), {})) is False


@pytest.mark.slow
def test_snakemake_exits_when_the_work_is_done_not_a_timespan_later(tmp_path) -> None:
    """A real run with --max-jobs-per-timespan 1000/1m: without the patch the process lingers up to a minute
    after its last job (measured: 33 s with 1000/30s against 3 s patched)."""
    import subprocess
    import sys
    import time

    (tmp_path / "Snakefile").write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).resolve().parents[2] / 'src')!r})\n"
        + "from snakemake.scheduling.job_scheduler import JobScheduler\n"
        "from mskseg.workflow.snakemake_compat import one_pending_reevaluation\n"
        "one_pending_reevaluation(JobScheduler)\n\n"
        "rule all:\n    input: expand('out/{i}.txt', i=range(4))\n\n"
        "rule one:\n    output: 'out/{i}.txt'\n    shell: 'sleep 0.3; echo {wildcards.i} > {output}'\n")
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--max-jobs-per-timespan", "1000/1m",
                             "-q"], cwd=tmp_path, capture_output=True, text=True, encoding="utf-8", errors="replace",
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert time.monotonic() - start < 40 and len(list((tmp_path / "out").iterdir())) == 4

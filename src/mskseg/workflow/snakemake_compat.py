"""Work-arounds for two Snakemake performance bugs: batch groups, and the rate limiter's timers.

``DAG._check_groups`` (Snakemake 9.27; the same code since 7.x) looks for paths that leave a group
and enter it again. It loops over ``self._group.values()``, a mapping *job -> group*, so it checks
every group once per member, and each check walks the whole upstream DAG from every member: the
cost grows with the square of a group's size times the DAG's size. With a batch of 20 subjects per
group (about 40 jobs) a 507-subject dry run did not finish in 12 minutes. :func:`check_each_group_once`
makes the loop see every group once; the check itself (and its error) is Snakemake's own. It
patches only a ``_check_groups`` whose source still has the loop, so a fixed Snakemake is left alone.

``JobScheduler._schedule_reevalutation`` (Snakemake 9.27) starts a ``threading.Timer`` of the rate limit's
timespan on every pass of the scheduling loop, so that jobs held back by ``--max-jobs-per-timespan`` are
looked at again. Each timer's pass starts another timer, and every finished job starts a new chain: the
re-planning passes pile up (about half a core by the end of the demo with the default ``100/1s``), and as
the timers are not daemon threads, Python waits for the last one before Snakemake's process exits (up to a
whole timespan after the last job: about a minute with the demo's ``1000/1m``). :func:`one_pending_reevaluation`
keeps at most one timer pending at a time, as a daemon thread: a held-back job is still looked at again
within the timespan, and the process exits when the work is done. It patches only a method whose source
still starts its timer this way.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import Any

_LOOP = "for group in self._group.values():"


class _UniqueValues(dict):
    """A dict whose ``values()`` lists each distinct value once (by identity), in first-seen order."""

    def values(self) -> list[Any]:  # type: ignore[override]
        return list({id(v): v for v in dict.values(self)}.values())


def check_each_group_once(dag_class: type) -> bool:
    """Patch ``dag_class._check_groups`` to visit every group once; True if it patched."""
    method = getattr(dag_class, "_check_groups", None)
    if method is None or getattr(method, "_mskseg_once", False):
        return False
    try:
        source = inspect.getsource(method)
    except (OSError, TypeError):
        return False
    if _LOOP not in source:
        return False

    @functools.wraps(method)
    def once(self: Any) -> None:
        groups = self._group
        self._group = _UniqueValues(groups)
        try:
            method(self)
        finally:
            self._group = groups

    once._mskseg_once = True  # type: ignore[attr-defined]
    dag_class._check_groups = once
    return True


_TIMER = "threading.Timer("


def one_pending_reevaluation(scheduler_class: type) -> bool:
    """Patch ``scheduler_class._schedule_reevalutation`` to keep one daemon timer pending; True if it patched."""
    method = getattr(scheduler_class, "_schedule_reevalutation", None)
    if method is None or getattr(method, "_mskseg_one_timer", False):
        return False
    try:
        source = inspect.getsource(method)
    except (OSError, TypeError):
        return False
    if _TIMER not in source or "daemon" in source:
        return False

    @functools.wraps(method)
    def schedule(self: Any, delay: float) -> None:
        pending = getattr(self, "_mskseg_timer", None)
        if pending is not None and pending.is_alive():
            return
        timer = threading.Timer(delay, self._open_jobs.release)
        timer.daemon = True
        self._mskseg_timer = timer
        timer.start()

    schedule._mskseg_one_timer = True  # type: ignore[attr-defined]
    scheduler_class._schedule_reevalutation = schedule
    return True


__all__ = ["check_each_group_once", "one_pending_reevaluation"]

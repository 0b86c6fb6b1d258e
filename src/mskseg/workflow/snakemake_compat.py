"""A work-around for a Snakemake performance bug that batch groups run into.

``DAG._check_groups`` (Snakemake 9.27; the same code since 7.x) looks for paths that leave a group
and enter it again. It loops over ``self._group.values()``, a mapping *job -> group*, so it checks
every group once per member, and each check walks the whole upstream DAG from every member: the
cost grows with the square of a group's size times the DAG's size. With a batch of 20 subjects per
group (about 40 jobs) a 507-subject dry run did not finish in 12 minutes. :func:`check_each_group_once`
makes the loop see every group once; the check itself (and its error) is Snakemake's own. It
patches only a ``_check_groups`` whose source still has the loop, so a fixed Snakemake is left alone.
"""

from __future__ import annotations

import functools
import inspect
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


__all__ = ["check_each_group_once"]

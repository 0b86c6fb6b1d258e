"""The work-around for Snakemake checking every group once per member (see mskseg.snakemake_compat)."""

from __future__ import annotations

import pytest

from mskseg.workflow.snakemake_compat import check_each_group_once


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

"""Subjects in batches and records flattened into batch tables, then gathered."""

from __future__ import annotations

import pandas as pd
import pytest

from mskseg.io.tables import flatten, gather, records_table
from mskseg.workflow.batches import batches


def test_batches_are_consecutive_runs_of_the_given_size_with_stable_names():
    subjects = [f"s{i:02d}" for i in range(7)]
    out = batches(subjects, 3)
    assert list(out) == ["000", "001", "002"]
    assert out["000"] == ["s00", "s01", "s02"] and out["002"] == ["s06"]
    assert [s for group in out.values() for s in group] == subjects
    assert batches(subjects, 100) == {"000": subjects}
    assert batches(subjects, 1)["006"] == ["s06"]
    assert batches([], 5) == {}
    assert list(batches([str(i) for i in range(2500)], 1))[-1] == "2499"


@pytest.mark.parametrize("size", [0, -1, 2.5, True, "3"])
def test_batches_reject_a_bad_size(size):
    with pytest.raises(ValueError, match="batch_subjects"):
        batches(["a"], size)


def test_batches_reject_repeated_subjects():
    with pytest.raises(ValueError, match="more than once"):
        batches(["a", "a"], 2)


def test_flatten_nested_records():
    record = {"subject": "s1", "output": {"image": {"shape": [4, 5, 6], "spacing": (1.0, 2.0, 3.0)}},
              "crop": None, "intensity": {"p99": 12.5}}
    assert flatten(record) == {"subject": "s1", "output.image.shape": "[4, 5, 6]",
                               "output.image.spacing": "[1.0, 2.0, 3.0]", "crop": None, "intensity.p99": 12.5}


def test_records_table_sets_subjects_and_checks_them():
    table = records_table([{"subject": "s1", "dice": 0.9}, {"dice": 0.8, "extra": {"a": 1}}], ["s1", "s2"])
    assert list(table.columns) == ["subject", "dice", "extra.a"]
    assert table["subject"].tolist() == ["s1", "s2"]
    assert pd.isna(table.loc[0, "extra.a"]) and table.loc[1, "extra.a"] == 1
    with pytest.raises(ValueError, match="listed as"):
        records_table([{"subject": "s1"}], ["s2"])
    with pytest.raises(ValueError, match="1 records for 2 subjects"):
        records_table([{"subject": "s1"}], ["s1", "s2"])


def test_gather_stacks_batches_in_order_and_keeps_uneven_columns():
    a = pd.DataFrame({"subject": ["s1", "s2"], "x": [1, 2]})
    b = pd.DataFrame({"subject": ["s3"], "x": [3], "y": ["z"]})
    out = gather([a, pd.DataFrame(), b])
    assert out["subject"].tolist() == ["s1", "s2", "s3"]
    assert out["y"].isna().tolist() == [True, True, False]
    assert gather([]).empty

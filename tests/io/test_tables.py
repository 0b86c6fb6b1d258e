"""The one table reader and its dtype rule; JSON records; records flattened into tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mskseg.io.tables import read_json, read_table, read_tables, write_json, write_table


def test_one_dtype_rule(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("subject\tfold\tdice\tcount\tdetail\tok\tnote\n"
                    "007\t0\t0.9\t3\t\tTrue\tNA\n"
                    "9001104\t10\t\t4\tbad\tFalse\tnull\n", encoding="utf-8")
    frame = read_table(path)
    assert frame["subject"].tolist() == ["007", "9001104"] and frame["fold"].tolist() == ["0", "10"]  # ids: text
    assert frame["dice"].dtype == float and math.isnan(frame.loc[1, "dice"])  # numbers: empty is NaN
    assert frame["count"].tolist() == [3, 4]
    assert frame["detail"].tolist() == ["", "bad"]  # text: empty is ""
    assert frame["ok"].tolist() == [True, False]
    assert frame["note"].tolist() == ["NA", "null"]  # only an empty cell is missing


def test_csv_by_ending_round_trip_and_stacking(tmp_path: Path) -> None:
    frame = pd.DataFrame({"method": ["a", "b"], "structure": ["femur", "all"], "hd_mm": [1.5, np.nan],
                          "surface_flag": ["ok", ""]})
    write_table(frame, tmp_path / "m.csv")
    assert (tmp_path / "m.csv").read_text(encoding="utf-8").splitlines()[0] == "method,structure,hd_mm,surface_flag"
    back = read_table(tmp_path / "m.csv")
    pd.testing.assert_frame_equal(back, frame)
    write_table(frame.iloc[:1], tmp_path / "n.csv")
    assert read_tables([tmp_path / "m.csv", tmp_path / "n.csv"])["method"].tolist() == ["a", "b", "a"]


def test_json_records(tmp_path: Path) -> None:
    write_json(tmp_path / "r.json", {"b": np.float32(0.5), "a": [1, 2]}, sort_keys=True)
    text = (tmp_path / "r.json").read_text(encoding="utf-8")
    assert text.index('"a"') < text.index('"b"')
    assert read_json(tmp_path / "r.json") == {"a": [1, 2], "b": 0.5}
    assert not list(tmp_path.glob(".tmp-*"))  # written atomically

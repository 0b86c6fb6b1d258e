"""Patients from visit suffixes (the table of mskseg.io.visits), covariates overriding them, and subsets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mskseg.io.manifest import ManifestError, normalise_manifest
from mskseg.io.sources import read_source, subset_ids
from mskseg.io.visits import DEFAULT_VISIT_PATTERN, VisitPatternError, assign_visits


def _frame(rows: list[dict]) -> pd.DataFrame:
    return normalise_manifest(pd.DataFrame(rows), None, "test")


def test_visit_suffixes_give_patients_and_timepoints() -> None:
    frame = _frame([{"subject": "9001104_00m", "image": "a"}, {"subject": "9001104_36m", "image": "b"},
                    {"subject": "9001104", "image": "c"}, {"subject": "9001104_00m-x", "image": "d"},
                    {"subject": "77_V03", "image": "e"}, {"subject": "p7scan_12m", "image": "f", "patient": "p7"}])
    out = assign_visits(frame, DEFAULT_VISIT_PATTERN).set_index("subject")
    assert out["patient"].to_dict() == {"9001104_00m": "9001104", "9001104_36m": "9001104", "9001104": "9001104",
                                        "9001104_00m-x": "9001104_00m-x", "77_V03": "77", "p7scan_12m": "p7"}
    assert out["timepoint"].to_dict() == {"9001104_00m": "00m", "9001104_36m": "36m", "9001104": "",
                                          "9001104_00m-x": "", "77_V03": "V03", "p7scan_12m": "12m"}
    assert frame["patient"].tolist()[:2] == ["9001104_00m", "9001104_36m"]  # the input is not changed
    off = assign_visits(frame, None)
    assert (off["patient"] == frame["patient"]).all() and "timepoint" not in off.columns


def test_a_given_timepoint_is_kept() -> None:
    frame = _frame([{"subject": "1_00m", "image": "a", "timepoint": "baseline"}, {"subject": "1_12m", "image": "b"}])
    assert assign_visits(frame, DEFAULT_VISIT_PATTERN)["timepoint"].tolist() == ["baseline", "12m"]


def test_a_pattern_needs_a_patient_group() -> None:
    frame = _frame([{"subject": "1_00m", "image": "a"}])
    with pytest.raises(VisitPatternError, match="needs a named group"):
        assign_visits(frame, r"(\d+)_(\d+m)")
    with pytest.raises(VisitPatternError, match="is not a regular expression"):
        assign_visits(frame, r"(?P<patient>")


def test_layout_visits_covariates_override_and_subset(tmp_path: Path) -> None:
    manifest = tmp_path / "m.tsv"
    pd.DataFrame({"subject": ["A_00m", "A_12m", "B_00m", "C_00m"], "image": ["a", "b", "c", "d"]}).to_csv(
        manifest, sep="\t", index=False)
    covariates = tmp_path / "cov.csv"
    pd.DataFrame({"subject": ["B_00m", "C_00m"], "patient": ["A", ""], "kl_grade": ["2", "3"]}).to_csv(
        covariates, index=False)
    frame = read_source("manifest", {"path": str(manifest), "covariates": str(covariates)})
    assert frame.set_index("subject")["patient"].to_dict() == {"A_00m": "A", "A_12m": "A", "B_00m": "A",
                                                                "C_00m": "C"}
    assert frame.set_index("subject")["kl_grade"].to_dict()["C_00m"] == "3"
    plain = read_source("manifest", {"path": str(manifest), "visit_pattern": None})
    assert plain["patient"].tolist() == plain["subject"].tolist()
    first = read_source("manifest", {"path": str(manifest), "subset": {"first": 2}})
    assert first["subject"].tolist() == ["A_00m", "A_12m"]


def test_subsets(tmp_path: Path) -> None:
    available = ["c", "a", "b", "d"]
    assert subset_ids({"first": 2}, available) == ["a", "b"]  # sorted order, kept in the source's order
    assert subset_ids({"first": 9}, available) == available
    assert subset_ids({"subjects": ["d", "c"]}, available) == ["c", "d"]
    listing = tmp_path / "ids.txt"
    listing.write_text("# my cohort\nb\n\n d  # second\n", encoding="utf-8")
    assert subset_ids({"file": str(listing)}, available) == ["b", "d"]
    with pytest.raises(ManifestError, match=r"src.subset: subject\(s\) x, y not in the source \(4 subjects"):
        subset_ids({"subjects": ["a", "x", "y"]}, available, "src.subset")
    with pytest.raises(ManifestError, match=r"file: .* does not exist"):
        subset_ids({"file": str(tmp_path / "none.txt")}, available)
    listing.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="selects no subject"):
        subset_ids({"file": str(listing)}, available)
    with pytest.raises(ManifestError, match="exactly one of"):
        subset_ids({"first": 1, "subjects": ["a"]}, available)

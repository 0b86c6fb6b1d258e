"""A dataset's quality-check page: who passed, who was excluded and why, what was fixed."""

from __future__ import annotations

import pandas as pd
import pytest

from mskseg.reporting.qc_page import qc_html


def test_the_page_names_excluded_subjects_fixes_and_failed_checks() -> None:
    checks = pd.DataFrame({"subject": ["a", "a", "b", "c"], "check": ["image_read", "label_values", "image_read",
                                                                      "label_grid"],
                           "status": ["pass", "fail", "pass", "fixed"],
                           "detail": ["ok", "label 9 not in the label map", "ok", "re-headered"]})
    subjects = pd.DataFrame({"subject": ["a", "b", "c"], "qc_passed": ["False", "True", "True"],
                             "qc_failures": ["label_values: label 9 not in the label map", "", ""],
                             "qc_fixes": ["", "", "label_grid: re-headered"]})
    page = qc_html("knee", checks, subjects)
    assert "3 subjects: 2 passed, 1 excluded." in page
    excluded = page.split("<h3>Excluded subjects</h3>")[1].split("<h3>")[0]
    assert "<td>a</td>" in excluded and "label 9 not in the label map" in excluded and "<td>b</td>" not in excluded
    fixed = page.split("<h3>Fixed on the way")[1].split("<h3>")[0]
    assert "<td>c</td>" in fixed and "re-headered" in fixed
    unusual = page.split("<h3>Every check that did not pass")[1]
    assert '<tr class="flag"><td>a</td><td>label_values</td>' in unusual and "<td>fixed</td>" in unusual
    assert "image_read" not in unusual


def test_tables_without_their_columns_are_named() -> None:
    with pytest.raises(ValueError, match="the subjects table has no column"):
        qc_html("x", pd.DataFrame(columns=["subject", "check", "status", "detail"]), pd.DataFrame({"subject": []}))

"""The report's quality-check page of a dataset: how many subjects passed, who was excluded and why, what was
fixed on the way (re-headered masks, ...), and every check that did not simply pass.

Reads the QC stage's two tables (``qc_table.tsv``: one row per subject and check; ``subjects.tsv``: one row
per subject with ``qc_passed``, ``qc_failures``, ``qc_fixes``). A table without the expected columns is an
error naming the missing ones.
"""

from __future__ import annotations

import pandas as pd

from mskseg.reporting.html import frame_html, html_document
from mskseg.workflow.checkpoints import flag


def _require(frame: pd.DataFrame, columns: set[str], what: str) -> None:
    missing = columns - set(frame.columns)
    if missing:
        raise ValueError(f"{what} has no column(s) {', '.join(sorted(missing))}")


def qc_html(dataset: str, checks: pd.DataFrame, subjects: pd.DataFrame) -> str:
    """The page: counts, the excluded subjects with their failures, fixes, and the checks that did not pass."""
    _require(checks, {"subject", "check", "status", "detail"}, "the QC table")
    _require(subjects, {"subject", "qc_passed", "qc_failures", "qc_fixes"}, "the subjects table")
    passed = flag(subjects["qc_passed"])
    excluded = subjects[~passed][["subject", "qc_failures"]].fillna("")
    fixed = subjects[subjects["qc_fixes"].fillna("").astype(str).str.len() > 0][["subject", "qc_fixes"]]
    unusual = checks[checks["status"].astype(str) != "pass"].fillna("")
    counts = checks["status"].astype(str).value_counts().rename_axis("status").reset_index(name="checks")
    body = (f"<p>{len(subjects)} subjects: {int(passed.sum())} passed, {len(excluded)} excluded.</p>"
            "<h3>Excluded subjects</h3>" + frame_html(excluded)
            + "<h3>Fixed on the way (the raw files are never changed)</h3>" + frame_html(fixed)
            + "<h3>Checks by status</h3>" + frame_html(counts)
            + "<h3>Every check that did not pass (failed rows shaded)</h3>"
            + frame_html(unusual, flag=list(unusual["status"].astype(str) == "fail")))
    return html_document(f"{dataset}: quality checks", body)


__all__ = ["qc_html"]

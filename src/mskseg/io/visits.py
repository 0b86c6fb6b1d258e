"""Patients and visits from subject ids: longitudinal cohorts name scans ``<patient>_<visit>``
(OAI: ``9001104_00m``, ``9001104_36m``), and two visits of one person must never be split between
training and test.

:func:`assign_visits` gives every scan whose patient was not given (no ``patient`` value, or the
subject id itself) the patient the pattern's ``patient`` group matches, and an empty ``timepoint`` the
``visit`` group. A covariates file's ``patient`` column still overrides both (:mod:`mskseg.io.sources`).

=========================  ==================  ===========  ===========
subject                    patient given       patient      timepoint
=========================  ==================  ===========  ===========
``9001104_00m``            no                  ``9001104``  ``00m``
``9001104_36m``            no                  ``9001104``  ``36m``
``9001104``                no                  ``9001104``  (empty)
``9001104_00m``            ``p7``              ``p7``       ``00m``
=========================  ==================  ===========  ===========
"""

from __future__ import annotations

import re

import pandas as pd

#: OAI's visit suffixes: months (00m ... 96m) or visit numbers (V00 ... V10), after '_' or '-'
DEFAULT_VISIT_PATTERN = r"(?P<patient>.+?)[_-](?P<visit>\d{2,3}m|V\d{2})"


class VisitPatternError(ValueError):
    """A visit pattern that is not a regular expression with a ``patient`` group."""


def compile_visit_pattern(pattern: str, where: str = "visit_pattern") -> re.Pattern[str]:
    """The compiled pattern; raises :class:`VisitPatternError` naming ``where`` when it is not usable."""
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise VisitPatternError(f"{where}: {pattern!r} is not a regular expression: {err}") from err
    if "patient" not in compiled.groupindex:
        raise VisitPatternError(f"{where}: {pattern!r} needs a named group (?P<patient>...) for the patient id")
    return compiled


def assign_visits(frame: pd.DataFrame, pattern: str | None, where: str = "visit_pattern") -> pd.DataFrame:
    """``frame`` (a normalised manifest) with patients and timepoints derived from the subject ids.

    ``pattern`` None leaves the frame as it is. Returns a new frame.
    """
    if pattern is None:
        return frame.copy()
    compiled = compile_visit_pattern(pattern, where)
    out = frame.copy()
    subjects = out["subject"].astype(str)
    matches = [compiled.fullmatch(s) for s in subjects]
    derive = (out["patient"].astype(str) == subjects).to_numpy()
    out["patient"] = [m.group("patient") if m and d and m.group("patient") else p
                      for m, d, p in zip(matches, derive, out["patient"], strict=True)]
    if "visit" in compiled.groupindex and any(matches):
        timepoints = out["timepoint"].fillna("").astype(str) if "timepoint" in out.columns else [""] * len(out)
        out["timepoint"] = [t or ((m.group("visit") or "") if m else "")
                            for m, t in zip(matches, timepoints, strict=True)]
    return out


__all__ = ["DEFAULT_VISIT_PATTERN", "VisitPatternError", "assign_visits", "compile_visit_pattern"]

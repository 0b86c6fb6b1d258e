"""Who the subjects of a synthetic dataset are: ids, patients and time points from its config block
(``kind``, ``n_subjects``, ``patients`` = scans per patient)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def subject_ids(spec: Mapping[str, Any]) -> list[str]:
    """``<kind>000``, ``<kind>001``, ... for ``n_subjects`` (default 8).

    >>> subject_ids({"kind": "hip", "n_subjects": 2})
    ['hip000', 'hip001']
    """
    return [f"{spec['kind']}{i:03d}" for i in range(int(spec.get("n_subjects", 8)))]


def patient_of(spec: Mapping[str, Any], index: int) -> str:
    """The patient of subject ``index``: ``patients`` consecutive subjects share one.

    >>> patient_of({"kind": "knee", "patients": 2}, 3)
    'kneep001'
    """
    return f"{spec['kind']}p{index // int(spec.get('patients', 1)):03d}"


def timepoint_of(spec: Mapping[str, Any], index: int) -> int:
    """The subject's time point within its patient (0, 1, ...)."""
    return index % int(spec.get("patients", 1))


__all__ = ["patient_of", "subject_ids", "timepoint_of"]

"""Quality control of one subject's image and mask.

Each check gives a :class:`QCRecord` (subject, check, status, detail). Status is ``pass``,
``fail``, ``fixed`` (a known defect repaired in memory, e.g. an OAI-ZIB mask re-headered
from its image; the subject passes) or ``skipped`` (a check that could not run because an
earlier one failed). A subject passes when no record is ``fail``.
Checks, in order: ``image_read``, ``image_spacing``, ``image_intensity``, ``label_read``,
``geometry``, ``label_values``, ``structures_present``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mskseg.io.pairs import GeometryError, apply_mask_geometry
from mskseg.io.volumes import VolumeReadError, read_volume
from mskseg.volume import DIRECTION_TOL, ORIGIN_TOL_MM, SPACING_TOL_MM, Volume

CHECKS = ("image_read", "image_spacing", "image_intensity", "label_read", "geometry",
          "label_values", "structures_present")
STATUSES = ("pass", "fail", "fixed", "skipped")
COLUMNS = ("subject", "check", "status", "detail")


@dataclass(frozen=True)
class QCRecord:
    subject: str
    check: str
    status: str
    detail: str = ""


@dataclass(frozen=True)
class QCSettings:
    """What a dataset declares: its labels (name -> value), the structures every mask must hold."""

    labels: Mapping[str, int]
    expected: Sequence[str] = ()
    mask_geometry: str = "check"
    spacing_range_mm: tuple[float, float] = (0.05, 10.0)
    spacing_tol_mm: float = SPACING_TOL_MM
    origin_tol_mm: float = ORIGIN_TOL_MM
    direction_tol: float = DIRECTION_TOL
    undeclared: str = "error"
    expected_values: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.undeclared not in ("error", "background"):
            raise ValueError(f"undeclared labels: 'error' or 'background', got {self.undeclared!r}")
        unknown = [name for name in self.expected if name not in self.labels]
        if unknown:
            raise ValueError(f"expected structures {unknown} are not declared labels {list(self.labels)}")
        names = self.expected or tuple(self.labels)
        object.__setattr__(self, "expected_values", tuple(int(self.labels[n]) for n in names))

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (a rule's params; :meth:`from_dict` reads them back)."""
        return {"labels": {k: int(v) for k, v in self.labels.items()}, "expected": list(self.expected),
                "mask_geometry": self.mask_geometry, "spacing_range_mm": list(self.spacing_range_mm),
                "spacing_tol_mm": self.spacing_tol_mm, "origin_tol_mm": self.origin_tol_mm,
                "direction_tol": self.direction_tol, "undeclared": self.undeclared}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> QCSettings:
        """Settings from :meth:`to_dict`'s form."""
        v = dict(values)
        return cls(labels=dict(v.pop("labels")), expected=tuple(v.pop("expected", ())),
                   spacing_range_mm=tuple(v.pop("spacing_range_mm", (0.05, 10.0))), **v)  # type: ignore[arg-type]


def check_subject(subject: str, image_path: str | Path, label_path: str | Path | None,
                  settings: QCSettings) -> tuple[list[QCRecord], Volume | None, Volume | None]:
    """Run every check; returns the records and the image and (re-headered) mask if they read.

    Never raises for a bad subject: an error a check does not expect (an exception of any kind, memory
    included) fails that check with the error's type and message, and the checks after it are skipped.
    """
    run = _Checks(subject)
    try:
        image, mask = _run_checks(run, image_path, label_path, settings)
    except Exception as err:  # whatever goes wrong with one subject is recorded, and the run goes on
        run.add(run.current, "fail", f"unexpected error: {type(err).__name__}: {err}")
        run.skip_rest(run.current, f"{run.current} failed")
        return run.records, None, None
    return run.records, image, mask


class _Checks:
    """The records of one subject, and the check running now."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.records: list[QCRecord] = []
        self.current = CHECKS[0]

    def start(self, check: str) -> None:
        self.current = check

    def add(self, check: str, status: str, detail: str = "") -> None:
        self.records.append(QCRecord(self.subject, check, status, detail))

    def skip_rest(self, after: str, why: str) -> None:
        for check in CHECKS[CHECKS.index(after) + 1:]:
            if not any(r.check == check for r in self.records):
                self.add(check, "skipped", why)


def _orientation(image: Volume) -> str:
    """The image's orientation code, and whether its direction cosines are oblique (recorded, not judged)."""
    from mskseg.preprocess.orient import orientation_code

    oblique = bool(np.any(np.abs(np.asarray(image.direction)).max(axis=0) < 1 - 1e-6))
    return f"orientation {orientation_code(image)}{' (oblique)' if oblique else ''}"


def _run_checks(run: _Checks, image_path: str | Path, label_path: str | Path | None,
                settings: QCSettings) -> tuple[Volume | None, Volume | None]:
    try:
        image = read_volume(image_path)
    except VolumeReadError as err:
        run.add("image_read", "fail", str(err))
        run.skip_rest("image_read", "image unreadable")
        return None, None
    run.add("image_read", "pass", f"{image.shape} {image.array.dtype}, {_orientation(image)}")
    run.start("image_spacing")
    run.add("image_spacing", *_check_spacing(image, settings.spacing_range_mm))
    run.start("image_intensity")
    run.add("image_intensity", *_check_intensity(image))

    if not label_path:
        for check in CHECKS[CHECKS.index("label_read"):]:
            run.add(check, "skipped", "no label given")
        return image, None
    run.start("label_read")
    try:
        mask = read_volume(label_path)
    except VolumeReadError as err:
        run.add("label_read", "fail", str(err))
        run.skip_rest("label_read", "label unreadable")
        return image, None
    run.add("label_read", "pass", f"{mask.shape} {mask.array.dtype}")

    run.start("geometry")
    try:
        fixed, fix = apply_mask_geometry(image, mask, settings.mask_geometry)
    except GeometryError as err:
        run.add("geometry", "fail", f"{label_path}: {err}")
        run.skip_rest("geometry", "mask not on the image grid")
        return image, None
    mismatches = fixed.geometry_mismatches(image, settings.spacing_tol_mm, settings.origin_tol_mm,
                                           settings.direction_tol)
    if mismatches:
        run.add("geometry", "fail", f"{label_path} vs image: " + "; ".join(mismatches))
        run.skip_rest("geometry", "mask not on the image grid")
        return image, None
    if fix.changed:
        run.add("geometry", "fixed", "mask re-headered from its image (was: " + "; ".join(fix.changes) + ")")
    else:
        run.add("geometry", "pass")
    run.start("label_values")
    counts = _label_counts(fixed.array)
    run.add("label_values", *_check_label_values(counts, settings.labels, settings.undeclared))
    run.start("structures_present")
    run.add("structures_present", *_check_structures(counts, settings))
    return image, fixed


def _check_spacing(image: Volume, limits: tuple[float, float]) -> tuple[str, str]:
    s = np.asarray(image.spacing)
    text = "(" + ", ".join(f"{v:.4g}" for v in s) + ") mm"
    if not np.all(np.isfinite(s)) or np.any(s < limits[0]) or np.any(s > limits[1]):
        return "fail", f"spacing {text} outside [{limits[0]}, {limits[1]}] mm"
    return "pass", text


def _check_intensity(image: Volume) -> tuple[str, str]:
    a = image.array
    if np.issubdtype(a.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(a)))
        if bad:
            return "fail", f"{bad} voxels are NaN or infinite"
    lo, hi = a.min(), a.max()
    if lo == hi:
        return "fail", f"image is constant ({lo})"
    return "pass", f"range [{lo:.6g}, {hi:.6g}]"


def _label_counts(array: np.ndarray) -> dict[int, int] | str:
    """Voxel count per label value, or a string saying why the array is no label map."""
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            return "mask holds NaN or infinite values"
        if not np.array_equal(array, np.round(array)):
            return "mask holds non-integer values"
    ints = array.astype(np.int64, copy=False).ravel()
    lo, hi = int(ints.min()), int(ints.max())
    if lo < 0:
        return f"mask holds negative values (min {lo})"
    if hi < max(1 << 16, ints.size):  # a count per value up to the largest: at most as many as there are voxels
        counts = np.bincount(ints)
        return {int(v): int(c) for v, c in enumerate(counts) if c}
    values, counts = np.unique(ints, return_counts=True)  # a sort: memory in proportion to the voxels
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def _check_label_values(counts: dict[int, int] | str, labels: Mapping[str, int], undeclared: str = "error"
                        ) -> tuple[str, str]:
    if isinstance(counts, str):
        return "fail", counts
    declared = {0, *map(int, labels.values())}
    unknown = {v: c for v, c in counts.items() if v not in declared}
    if unknown:
        listed = ", ".join(f"{v} ({c} voxels)" for v, c in sorted(unknown.items())[:10])
        if undeclared == "background":
            kept = ", ".join(f"{v}:{c}" for v, c in sorted(counts.items()) if v in declared)
            return "pass", f"{kept}; undeclared {listed} become background (undeclared_labels: background)"
        return "fail", f"undeclared label value(s) {listed}; declared: {sorted(declared)}"
    return "pass", ", ".join(f"{v}:{c}" for v, c in sorted(counts.items()))


def _check_structures(counts: dict[int, int] | str, settings: QCSettings) -> tuple[str, str]:
    if isinstance(counts, str):
        return "skipped", counts
    by_value = {int(v): n for n, v in settings.labels.items()}
    empty = [f"{by_value[v]} ({v})" for v in settings.expected_values if counts.get(v, 0) == 0]
    if empty:
        return "fail", "empty structure(s): " + ", ".join(empty)
    return "pass", f"{len(settings.expected_values)} structures present"


def records_frame(records: Sequence[QCRecord]) -> pd.DataFrame:
    return pd.DataFrame([(r.subject, r.check, r.status, r.detail) for r in records], columns=list(COLUMNS))


def summarise(table: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per manifest subject: the manifest columns plus ``qc_passed``, ``qc_failures``,
    ``qc_fixes`` and ``has_label`` (a label path is given). A subject with no QC record at all fails
    (never vanishes)."""
    rows = []
    for subject in manifest["subject"]:
        rec = table[table["subject"] == subject]
        fails = rec[rec["status"] == "fail"]
        fixes = rec[rec["status"] == "fixed"]
        rows.append({
            "subject": subject,
            "qc_passed": bool(len(rec)) and fails.empty,
            "qc_failures": "; ".join(f"{c}: {d}" for c, d in zip(fails["check"], fails["detail"], strict=True))
            if len(rec) else "no QC record",
            "qc_fixes": "; ".join(fixes["check"]),
        })
    out = manifest.merge(pd.DataFrame(rows), on="subject", how="left")
    out["has_label"] = out["label"].fillna("").astype(str) != ""
    return out

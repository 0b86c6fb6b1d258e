"""Label-free quality control: find the failed segmentations of many scans without reference labels.

Per scan, three families of measures, each compared with a threshold (:class:`LabelFreeThresholds`):

* **collisions** ``|E|`` (hip paper eq. 2, :func:`mskseg.metrics.gap.collision_count`) between pairs
  of classes that must not touch: the voxels of either class within ``eps_mm`` (<=) of the other,
  a voxel count (:func:`pair_collisions`);
* **volume z-scores**: each structure's volume (mm^3) against the training set's volumes of that
  structure, ``z = (V - mean) / max(sd, floor)`` (:class:`VolumeReference`, :func:`volume_zscores`);
* **shape plausibility** of a bone (:mod:`mskseg.metrics.shape_plausibility`): Mahalanobis distance of
  its shape model coefficients and the model's reconstruction residual (mm).

:func:`scan_metrics` gathers one scan's measures into a flat row, :func:`flag_segmentation` gives the
reasons a row is flagged and :func:`qc_table` makes the table, one row per scan. Row columns:
``subject``; ``<structure>.volume_mm3``, ``<structure>.volume_z``; ``collisions.<a>.<b>``;
``<structure>.<key>`` for each :data:`~mskseg.metrics.shape_plausibility.SHAPE_KEYS` key of an assessed
bone (``<structure>.reason`` the shape's). Structure names must not contain ``.``.

Edge cases (none raises):

=========================================  ======================================================
case                                       result
=========================================  ======================================================
structure absent from the scan             volume 0 (its z-score then flags it, unless training
                                           masks lacked it too); shape NaN with a reason
structure not in the volume reference      z-score NaN (not flagged)
training volumes all equal (sd = 0)        the floor: ``max(0.02 * |mean|, 1 mm^3)``
one training volume                        sd 0, so the floor
class of a pair absent from the scan       0 collisions
voxels coarser than ``eps_mm``             no two voxel centres are that close: 0 collisions
                                           (pass ``eps_mm`` >= the spacing to count face contact)
NaN metric in a row                        not compared (an unassessed shape has its reason)
=========================================  ======================================================
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from mskseg.metrics.boxes import box_offset, label_boxes
from mskseg.metrics.distances import border, make_tree, points_mm
from mskseg.metrics.gap import collision_count
from mskseg.metrics.shape_plausibility import SHAPE_KEYS, shape_plausibility
from mskseg.volume import Volume

#: the SD of a structure's training volumes is floored at this share of their mean: repeated
#: segmentations of one bone differ by a few percent in volume (a one-voxel shell is several percent
#: of a bone), so a smaller spread is no population spread; |z| > 3 then needs a change of >= 6 %
SD_FLOOR_FRACTION = 0.02
#: ... and at this many mm^3, for a structure whose mean training volume is (about) 0
SD_FLOOR_MM3 = 1.0


def structure_volumes(labels: Volume, label_values: Mapping[str, int]) -> dict[str, float]:
    """Volume (mm^3) of each structure: its voxel count times the voxel volume (0 when absent)."""
    arr = np.asarray(labels.array)
    return {name: float(np.count_nonzero(arr == int(v))) * labels.voxel_volume_mm3
            for name, v in label_values.items()}


@dataclass(frozen=True)
class VolumeReference:
    """Training-set volumes per structure: ``mean`` and ``sd`` (mm^3, sample SD, divisor ``n - 1``; 0 for
    ``n = 1``) over ``n`` masks. z-scores divide by :meth:`scale`, the SD floored (see :data:`SD_FLOOR_FRACTION`)."""

    mean: Mapping[str, float]
    sd: Mapping[str, float]
    n: Mapping[str, int]
    sd_floor_fraction: float = SD_FLOOR_FRACTION
    sd_floor_mm3: float = SD_FLOOR_MM3

    def __post_init__(self) -> None:
        if not set(self.mean) == set(self.sd) == set(self.n):
            raise ValueError("volume reference: mean, sd and n must name the same structures")
        if any(int(c) < 1 for c in self.n.values()) or any(float(s) < 0 for s in self.sd.values()):
            raise ValueError("volume reference: every n must be >= 1 and every sd >= 0")
        if self.sd_floor_fraction < 0 or not self.sd_floor_mm3 > 0:
            raise ValueError("volume reference: sd_floor_fraction must be >= 0 and sd_floor_mm3 > 0")
        for name in ("mean", "sd", "n"):
            cast = int if name == "n" else float
            object.__setattr__(self, name, {str(k): cast(v) for k, v in getattr(self, name).items()})

    @classmethod
    def from_volumes(cls, rows: Iterable[Mapping[str, float]] | pd.DataFrame, *,
                     sd_floor_fraction: float = SD_FLOOR_FRACTION,
                     sd_floor_mm3: float = SD_FLOOR_MM3) -> VolumeReference:
        """Statistics of training volumes: ``rows`` one mapping per mask (structure -> mm^3, e.g. from
        :func:`structure_volumes`) or a table with one column per structure. Missing and NaN values are
        skipped; a structure without any value is left out."""
        records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
        values: dict[str, list[float]] = {}
        for row in records:
            for name, v in row.items():
                if v is not None and math.isfinite(float(v)):
                    values.setdefault(str(name), []).append(float(v))
        stats = {k: np.asarray(v) for k, v in values.items()}
        return cls(mean={k: float(v.mean()) for k, v in stats.items()},
                   sd={k: float(v.std(ddof=1)) if v.size > 1 else 0.0 for k, v in stats.items()},
                   n={k: int(v.size) for k, v in stats.items()},
                   sd_floor_fraction=sd_floor_fraction, sd_floor_mm3=sd_floor_mm3)

    def scale(self, structure: str) -> float:
        """The divisor of the z-score (mm^3): ``max(sd, sd_floor_fraction * |mean|, sd_floor_mm3)``."""
        return max(self.sd[structure], self.sd_floor_fraction * abs(self.mean[structure]), self.sd_floor_mm3)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: ``units``, the two floors and ``structures`` (name -> ``mean_mm3``, ``sd_mm3``, ``n``)."""
        return {"units": "mm3", "sd_floor_fraction": self.sd_floor_fraction, "sd_floor_mm3": self.sd_floor_mm3,
                "structures": {k: {"mean_mm3": self.mean[k], "sd_mm3": self.sd[k], "n": self.n[k]}
                               for k in self.mean}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VolumeReference:
        """Read back :meth:`to_dict`'s output (ValueError for other units or a missing key)."""
        if d.get("units", "mm3") != "mm3":
            raise ValueError(f"volume reference units are {d.get('units')!r}, expected 'mm3'")
        try:
            s = d["structures"]
            return cls(mean={k: v["mean_mm3"] for k, v in s.items()}, sd={k: v["sd_mm3"] for k, v in s.items()},
                       n={k: v["n"] for k, v in s.items()},
                       sd_floor_fraction=float(d.get("sd_floor_fraction", SD_FLOOR_FRACTION)),
                       sd_floor_mm3=float(d.get("sd_floor_mm3", SD_FLOOR_MM3)))
        except (KeyError, AttributeError, TypeError) as err:
            raise ValueError(f"not a volume reference: {err!r}") from err


def volume_zscores(volumes: Mapping[str, float], reference: VolumeReference) -> dict[str, float]:
    """``(V - mean) / reference.scale(structure)`` per structure of ``volumes`` (NaN where the
    reference lacks the structure or the volume is NaN)."""
    out = {}
    for name, v in volumes.items():
        out[name] = ((float(v) - reference.mean[name]) / reference.scale(name)
                     if name in reference.mean else float("nan"))
    return out


def pair_collisions(labels: Volume, label_values: Mapping[str, int],
                    pairs: Sequence[tuple[str, str]] | None = None, eps_mm: float = 2.0) -> dict[tuple[str, str], int]:
    """``|E|`` restricted to each pair ``(a, b)``: voxels of ``a`` within ``eps_mm`` (<=, mm, between voxel
    centres) of ``b`` plus voxels of ``b`` within ``eps_mm`` of ``a``.

    ``pairs``: classes that must not touch; None takes every pair of ``label_values`` (the hip paper's
    ``|E|``: all bones apart). Where classes touch by design (knee cartilage on its bone) name the pairs.
    A pair with a class absent from the scan has 0 collisions.
    """
    unknown = sorted({s for p in (pairs or []) for s in p} - set(label_values))
    if unknown:
        raise ValueError(f"collision pairs name unknown structures {unknown} (labels: {list(label_values)})")
    chosen = list(itertools.combinations(label_values, 2)) if pairs is None else [tuple(p) for p in pairs]
    arr = np.asarray(labels.array)
    boxes = label_boxes(arr)
    sp = labels.spacing
    parts: dict[str, tuple[np.ndarray, np.ndarray, Any]] = {}

    def part(name: str) -> tuple[np.ndarray, np.ndarray, Any] | None:
        v = int(label_values[name])
        if v <= 0 or v >= len(boxes) or boxes[v] is None:
            return None
        if name not in parts:
            mask = arr[boxes[v]] == v
            off = box_offset(boxes[v])
            parts[name] = (mask, off, make_tree(points_mm(border(mask), sp, off)))
        return parts[name]

    out: dict[tuple[str, str], int] = {}
    for a, b in chosen:
        pa, pb = part(a), part(b)
        if pa is None or pb is None:
            out[(a, b)] = 0
            continue
        out[(a, b)] = (collision_count(pa[0], int(label_values[a]), {int(label_values[b]): pb[2]}, eps_mm, sp, pa[1])
                       + collision_count(pb[0], int(label_values[b]), {int(label_values[a]): pa[2]}, eps_mm, sp,
                                         pb[1]))
    return out


def scan_metrics(
    subject: str, labels: Volume, label_values: Mapping[str, int], *, volume_reference: VolumeReference,
    collision_pairs: Sequence[tuple[str, str]] | None = None, collision_eps_mm: float = 2.0,
    shapes: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """One scan's flat QC row (columns: see the module docstring).

    ``shapes``: structure -> its :func:`~mskseg.metrics.shape_plausibility.shape_plausibility` result, for
    the bones with a shape model. Raises ValueError for a structure name containing ``.``.
    """
    dotted = [s for s in label_values if "." in s]
    if dotted:
        raise ValueError(f"structure names must not contain '.': {dotted}")
    volumes = structure_volumes(labels, label_values)
    z = volume_zscores(volumes, volume_reference)
    row: dict[str, Any] = {"subject": str(subject)}
    for name in label_values:
        row[f"{name}.volume_mm3"] = volumes[name]
        row[f"{name}.volume_z"] = z[name]
    for (a, b), n in pair_collisions(labels, label_values, collision_pairs, collision_eps_mm).items():
        row[f"collisions.{a}.{b}"] = n
    for name, result in (shapes or {}).items():
        row.update({f"{name}.{k}": result.get(k) for k in SHAPE_KEYS})
    return row


@dataclass(frozen=True)
class LabelFreeThresholds:
    """When a scan is flagged; None turns a test off. The defaults:

    * ``volume_z = 3``: |z| > 3 flags 0.27 % of scans of normally distributed volumes (14 of 5,000);
    * ``mahalanobis = None``: ``sqrt(chi2.ppf(mahalanobis_quantile, K))`` for a model of ``K`` modes
      (:meth:`mahalanobis_limit`): with Gaussian coefficients of the model's SDs the squared distance is
      chi-square with ``K`` degrees of freedom, so 0.1 % of plausible shapes exceed it (K = 4: 4.30,
      10: 5.44, 20: 6.73); a number fixes the limit for every model;
    * ``residual_mean_mm = 2``: a plausible bone lies within about 1 mm of the model's span (the model's
      leave-one-out generalisation error, ``generalisation_mm`` of :mod:`mskseg.shape.quality`, plus the
      registration's error), a missing or extra piece moves many landmarks by several mm; set it from the
      model's generalisation when that is known;
    * ``residual_max_mm = None``: off (one landmark in a thin process is noisy);
    * ``collisions = 0``: any voxel of two classes that must not touch within eps is flagged;
    * ``flag_unassessed = True``: a bone whose shape could not be assessed (empty, registration failed
      or not converged) is flagged with the reason.
    """

    volume_z: float | None = 3.0
    mahalanobis: float | None = None
    mahalanobis_quantile: float = 0.999
    residual_mean_mm: float | None = 2.0
    residual_max_mm: float | None = None
    collisions: int | None = 0
    flag_unassessed: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.mahalanobis_quantile < 1:
            raise ValueError(f"mahalanobis_quantile must lie in (0, 1), got {self.mahalanobis_quantile}")

    def mahalanobis_limit(self, n_modes: int) -> float:
        """The Mahalanobis limit of a model with ``n_modes`` modes (0 for none: its distance is always 0)."""
        if self.mahalanobis is not None:
            return float(self.mahalanobis)
        return float(np.sqrt(chi2.ppf(self.mahalanobis_quantile, n_modes))) if n_modes > 0 else 0.0


def _finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _shape_reasons(name: str, row: Mapping[str, Any], t: LabelFreeThresholds) -> list[str]:
    reason = row.get(f"{name}.reason")
    if isinstance(reason, str) and reason:
        return [f"{name} shape: not assessed ({reason})"] if t.flag_unassessed else []
    out = []
    m, k = _finite(row.get(f"{name}.mahalanobis")), _finite(row.get(f"{name}.n_modes"))
    if m is not None and (t.mahalanobis is not None or k is not None):
        limit = t.mahalanobis_limit(int(k or 0))
        if m > limit:
            out.append(f"{name} shape: Mahalanobis {m:.1f} > {limit:.1f}")
    for key, label in (("residual_mean_mm", "residual mean"), ("residual_max_mm", "residual max")):
        v, limit = _finite(row.get(f"{name}.{key}")), getattr(t, key)
        if v is not None and limit is not None and v > limit:
            out.append(f"{name} shape: {label} {v:.1f} mm > {limit:g} mm")
    if out and str(row.get(f"{name}.trim_short")).lower() == "true":
        out[-1] += " (the bone is shorter than the trim: the field of view or the segmentation cuts it)"
    return out


def flag_segmentation(row: Mapping[str, Any], thresholds: LabelFreeThresholds = LabelFreeThresholds()) -> list[str]:
    """Human-readable reasons to look at a scan (empty: it passes), in column order, e.g.
    ``femur volume z = -6.2 (|z| > 3)``, ``tibia shape: Mahalanobis 9.1 > 4.3``,
    ``collisions |E| = 120 between femur_left and hip_left``. NaN metrics are not compared."""
    t = thresholds
    reasons: list[str] = []
    shaped: list[str] = []
    for key, value in row.items():
        parts = str(key).split(".")
        if len(parts) == 3 and parts[0] == "collisions":
            n = _finite(value)
            if t.collisions is not None and n is not None and n > t.collisions:
                reasons.append(f"collisions |E| = {int(n)} between {parts[1]} and {parts[2]}")
        elif len(parts) == 2 and parts[1] == "volume_z":
            z = _finite(value)
            if t.volume_z is not None and z is not None and abs(z) > t.volume_z:
                reasons.append(f"{parts[0]} volume z = {z:.1f} (|z| > {t.volume_z:g})")
        elif len(parts) == 2 and parts[1] in SHAPE_KEYS and parts[0] not in shaped:
            shaped.append(parts[0])
            reasons.extend(_shape_reasons(parts[0], row, t))
    return reasons


def qc_table(rows: Iterable[Mapping[str, Any]],
             thresholds: LabelFreeThresholds = LabelFreeThresholds()) -> pd.DataFrame:
    """One row per scan: ``subject``, the metrics (columns in first-seen order), ``flagged`` (bool) and
    ``reasons`` (``"; "``-joined, ``""`` when it passes)."""
    records = [dict(r) for r in rows]
    reasons = [flag_segmentation(r, thresholds) for r in records]
    table = pd.DataFrame(records)
    if "subject" not in table.columns:
        table.insert(0, "subject", pd.Series([None] * len(table), index=table.index, dtype=object))
    table["flagged"] = pd.Series([bool(r) for r in reasons], index=table.index, dtype=bool)
    table["reasons"] = pd.Series(["; ".join(r) for r in reasons], index=table.index, dtype=object)
    return table


__all__ = ["SD_FLOOR_FRACTION", "SD_FLOOR_MM3", "LabelFreeThresholds", "VolumeReference", "flag_segmentation",
           "pair_collisions", "qc_table", "scan_metrics", "shape_plausibility", "structure_volumes",
           "volume_zscores"]


def records_table(records: Iterable[str | os.PathLike[str]], path: str | os.PathLike[str]) -> pd.DataFrame:
    """The QC rows of several scans (JSON files, each with ``flagged`` and ``reasons``) as one table, written to
    ``path`` (TSV) and returned; flagged scans first, then by subject."""
    from mskseg.io.tables import read_json, write_table

    rows = [read_json(r) for r in records]
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(k for row in rows for k in row)) or ["subject",
                                                                                             "flagged", "reasons"])
    if len(frame):
        frame = frame.sort_values(["flagged", "subject"], ascending=[False, True], kind="stable")
    write_table(frame, path)
    return frame

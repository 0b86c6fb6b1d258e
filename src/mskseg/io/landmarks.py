"""Landmark files: a CSV table and 3D Slicer Markups JSON (``.mrk.json``).

Landmarks are a :class:`pandas.DataFrame` with columns

* ``index`` (int >= 0, unique): the correspondence id of the point (``0..N-1`` when written
  from an array; gaps are allowed, e.g. after leaving out a point);
* ``x``, ``y``, ``z`` (float, finite): physical coordinates in millimetres in the ITK/LPS
  frame of :class:`mskseg.volume.Volume`;
* optionally ``label`` (str).

Rows keep the order of the file; nothing is sorted. All files are UTF-8 and written
atomically (:func:`mskseg.io.atomic.atomic_path`). Problems in a file being read raise
:class:`LandmarkFileError`, whose message names the file; bad points given to a writer
raise a plain ValueError.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mskseg.io.atomic import atomic_path

SLICER_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
    "Resources/Schema/markups-schema-v1.0.3.json#"
)
#: the columns of a landmark table, ``label`` being optional
COLUMNS = ("index", "x", "y", "z", "label")
#: control point orientation written to LPS files: identity in Slicer's internal RAS
#: frame, expressed in LPS (what Slicer itself writes for an unrotated point)
_LPS_IDENTITY_ORIENTATION = [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0]
#: millimetres per coordinate unit allowed by the schema
_UNITS_MM = {"mm": 1.0, "um": 1e-3}


class LandmarkFileError(ValueError):
    """A landmark file that cannot be read; ``path`` and ``problem`` are kept as attributes."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"landmark file {self.path}: {problem}")


def landmark_frame(
    points: np.ndarray | pd.DataFrame, labels: Sequence[str] | None = None
) -> pd.DataFrame:
    """Validated landmark table (columns ``index, x, y, z`` and ``label`` if any).

    ``points`` is an ``(N, 3)`` array of LPS mm (index ``0..N-1``) or a DataFrame with at
    least ``index, x, y, z`` (other columns than ``label`` are dropped). ``labels``, if
    given, replaces the labels (one per point). ``N == 0`` is allowed.

    Raises ValueError for a wrong shape, missing columns, non-finite coordinates, indices
    that are not unique non-negative integers, or a wrong number of labels.
    """
    if isinstance(points, pd.DataFrame):
        missing = [c for c in COLUMNS[:4] if c not in points.columns]
        if missing:
            raise ValueError(f"missing column(s) {', '.join(missing)}; need index, x, y, z")
        index = _as_indices(points["index"])
        xyz = points[["x", "y", "z"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        old_labels = points["label"].astype(str).tolist() if "label" in points.columns else None
    else:
        xyz = np.asarray(points, dtype=float)
        if xyz.size == 0:
            xyz = xyz.reshape(0, 3)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {np.shape(points)}")
        index = np.arange(len(xyz), dtype=np.int64)
        old_labels = None
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        raise ValueError(f"non-finite coordinates for index {', '.join(map(str, index[bad][:5]))}")
    frame = pd.DataFrame({"index": index, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
    if labels is not None:
        labels = [str(s) for s in labels]
        if len(labels) != len(frame):
            raise ValueError(f"{len(labels)} labels for {len(frame)} points")
        frame["label"] = labels
    elif old_labels is not None:
        frame["label"] = old_labels
    return frame


def _as_indices(values: pd.Series) -> np.ndarray:
    """Unique non-negative integer indices, or ValueError."""
    num = pd.to_numeric(values, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(num) | (num < 0) | (num != np.round(num))
    if bad.any():
        shown = ", ".join(repr(v) for v in values[bad].tolist()[:5])
        raise ValueError(f"index must hold non-negative integers, got {shown}")
    index = num.astype(np.int64)
    uniq, counts = np.unique(index, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"duplicate index {', '.join(map(str, uniq[counts > 1][:5]))}")
    return index


# --- CSV ------------------------------------------------------------------------------------


def write_landmarks_csv(points: np.ndarray | pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write landmarks (array ``(N, 3)`` or DataFrame, LPS mm) as a UTF-8 CSV, atomically.

    Columns ``index,x,y,z`` and ``label`` when the frame has labels; coordinates are
    written with full precision (round trip exact). Raises ValueError for invalid points.
    """
    frame = landmark_frame(points)
    with atomic_path(path) as tmp:
        # floats are written as repr, the shortest text that reads back to the same value
        frame.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")


def read_landmarks_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a landmark CSV (columns ``index, x, y, z`` and optional ``label``; others ignored).

    Labels stay text exactly as written (an empty cell gives ``""``). A file with only the
    header gives an empty table. Raises :class:`LandmarkFileError` naming the file for a
    missing column, a non-numeric or non-finite coordinate, a bad or duplicate index, an
    empty or undecodable file; FileNotFoundError when there is no file.
    """
    p = Path(path)
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LandmarkFileError(p, f"not a readable CSV table ({exc})") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    for col in ("x", "y", "z"):
        if col in raw.columns:
            text = raw[col].str.strip()
            num = pd.to_numeric(text, errors="coerce")
            bad = num.isna() | ~np.isfinite(num.to_numpy(float))
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise LandmarkFileError(p, f"column {col} row {row + 1}: {raw[col].iloc[row]!r} is not a finite number")
            raw[col] = num.astype(float)
    try:
        return landmark_frame(raw)
    except ValueError as exc:
        raise LandmarkFileError(p, str(exc)) from exc


# --- 3D Slicer Markups JSON -------------------------------------------------------------------


def write_slicer_markups(
    points: np.ndarray | pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    name: str = "landmarks",
    labels: Sequence[str] | None = None,
) -> None:
    """Write landmarks (LPS mm) as a 3D Slicer Markups JSON file (``.mrk.json``), atomically.

    One markup of type ``Fiducial`` named ``name`` with ``coordinateSystem: "LPS"`` and
    ``coordinateUnits: "mm"`` (schema v1.0.3). Each landmark becomes a control point with
    ``id`` ``str(index + 1)``, ``label`` from ``labels``, else the frame's ``label`` column,
    else ``f"{name}-{index + 1}"`` (Slicer's ``%N-%d``), ``position`` ``[x, y, z]``,
    ``positionStatus: "defined"``, and selected, locked and visible. The orientation is
    the identity in Slicer's internal RAS frame, which in LPS reads
    ``[-1, 0, 0, 0, -1, 0, 0, 0, 1]`` (as Slicer writes it). Raises ValueError for invalid
    points or a wrong number of labels.
    """
    frame = landmark_frame(points, labels)
    if "label" not in frame.columns:
        frame["label"] = [f"{name}-{i + 1}" for i in frame["index"]]
    control_points = [
        {
            "id": str(int(row.index) + 1),
            "label": str(row.label),
            "description": "",
            "associatedNodeID": "",
            "position": [float(row.x), float(row.y), float(row.z)],
            "orientation": list(_LPS_IDENTITY_ORIENTATION),
            "selected": True,
            "locked": True,
            "visibility": True,
            "positionStatus": "defined",
        }
        for row in frame.itertuples(index=False)
    ]
    document = {
        "@schema": SLICER_SCHEMA,
        "markups": [
            {
                "type": "Fiducial",
                "name": name,
                "coordinateSystem": "LPS",
                "coordinateUnits": "mm",
                "locked": True,
                "fixedNumberOfControlPoints": False,
                "labelFormat": "%N-%d",
                "lastUsedControlPointNumber": int(frame["index"].max()) + 1 if len(frame) else 0,
                "controlPoints": control_points,
                "measurements": [],
                "display": {"visibility": True, "opacity": 1.0, "color": [0.4, 1.0, 1.0]},
            }
        ],
    }
    text = json.dumps(document, indent=4, ensure_ascii=False, allow_nan=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_slicer_markups(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read the control points of a 3D Slicer Markups JSON file as landmarks in LPS mm.

    The file must hold exactly one markup (of any type; its control points are read).
    Positions in ``RAS`` are converted to LPS (x and y negated); a missing
    ``coordinateSystem`` means LPS, as in the schema. Units ``mm`` (default) and ``um``
    are accepted. ``index`` is ``int(id) - 1`` when every id is a positive integer (the
    ids written by :func:`write_slicer_markups` and by Slicer), otherwise the position in
    the list; ``label`` is the control point's label (``""`` when absent). Control points
    whose ``positionStatus`` is not ``defined`` (placeholders not yet placed) are left out.

    Raises :class:`LandmarkFileError` naming the file when it is not UTF-8 JSON, does not
    hold exactly one markup, has an unknown coordinate system or unit, a position that is
    not three finite numbers, or duplicate ids; FileNotFoundError when there is no file.
    """
    p = Path(path)
    try:
        document = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LandmarkFileError(p, f"not a JSON file ({exc})") from exc
    markups = document.get("markups") if isinstance(document, dict) else None
    if not isinstance(markups, list) or len(markups) != 1 or not isinstance(markups[0], dict):
        count = len(markups) if isinstance(markups, list) else "no"
        raise LandmarkFileError(p, f"expected a 'markups' list with exactly one markup, found {count}")
    markup: dict[str, Any] = markups[0]
    system = markup.get("coordinateSystem", "LPS")
    if system not in ("LPS", "RAS"):
        raise LandmarkFileError(p, f"unknown coordinateSystem {system!r} (LPS or RAS)")
    units = markup.get("coordinateUnits", "mm")
    unit = units[0] if isinstance(units, list) and units else units
    if unit not in _UNITS_MM:
        raise LandmarkFileError(p, f"unknown coordinateUnits {units!r} (mm or um)")
    points = markup.get("controlPoints", [])
    if not isinstance(points, list):
        raise LandmarkFileError(p, "'controlPoints' is not a list")

    ids, labels, xyz = [], [], []
    for n, point in enumerate(points):
        if not isinstance(point, dict):
            raise LandmarkFileError(p, f"control point {n + 1} is not an object")
        if point.get("positionStatus", "defined") != "defined":
            ids.append(None)
            continue
        pos = point.get("position")
        ok = isinstance(pos, list) and len(pos) == 3
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pos)
        if not ok or not np.isfinite(np.asarray(pos, dtype=float)).all():
            raise LandmarkFileError(p, f"control point {n + 1}: position {pos!r} is not three finite numbers")
        ids.append(str(point.get("id", "")))
        labels.append(str(point.get("label", "")))
        xyz.append(pos)

    placed = [i for i in ids if i is not None]
    all_ids = [str(pt.get("id", "")) if isinstance(pt, dict) else "" for pt in points]
    if all(s.isascii() and s.isdigit() and int(s) >= 1 for s in all_ids):
        index = [int(s) - 1 for s in placed]
    else:
        index = [n for n, i in enumerate(ids) if i is not None]
    coords = np.asarray(xyz, dtype=float).reshape(-1, 3) * _UNITS_MM[unit]
    if system == "RAS":
        coords[:, :2] *= -1.0
    frame = pd.DataFrame({"index": index, "x": coords[:, 0], "y": coords[:, 1], "z": coords[:, 2],
                          "label": labels})
    try:
        return landmark_frame(frame)
    except ValueError as exc:
        raise LandmarkFileError(p, str(exc)) from exc

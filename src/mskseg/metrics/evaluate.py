"""All metrics of one predicted label map against its reference (per structure and per subject).

:func:`evaluate_arrays` does the work on two label arrays and a spacing; :func:`evaluate_pair`
checks two :class:`~mskseg.volume.Volume` first (same grid, known label values) and finds the
field-of-view axis from the direction matrix. Work is confined to the box of the foreground
and, per structure, to the box of that structure in either map; structures run in parallel
threads (numpy and scipy's k-d tree release the GIL).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mskseg.metrics.boxes import Box, box_offset, label_boxes, nonzero_box, relative, union_box
from mskseg.metrics.distances import border, make_tree, points_mm, surface_distances
from mskseg.metrics.fov import slice_dice
from mskseg.metrics.gap import collision_count, gap_counts, gap_region, padded_window
from mskseg.metrics.overlap import mean_iou, overlap_scores
from mskseg.volume import Volume

#: per-structure columns of the metrics table, in order
COLUMNS = ["structure", "label", "ref_voxels", "pred_voxels", "tp", "fp", "fn", "ref_volume_mm3",
           "pred_volume_mm3", "dice", "iou", "voe", "ravd", "hd_mm", "hd95_mm", "assd_mm", "pred_to_ref_mm",
           "ref_to_pred_mm", "pred_border_voxels", "ref_border_voxels", "surface_flag", "gap_dice",
           "gap_ref_voxels", "gap_pred_voxels", "gap_tp_voxels", "gap_flag", "collisions", "collisions_mm3",
           "mean_iou"]
#: columns of the "all" row that are means over the structures
MEAN_COLUMNS = ["dice", "iou", "voe", "ravd", "hd_mm", "hd95_mm", "assd_mm", "gap_dice"]
#: columns of the "all" row that are sums over the structures
SUM_COLUMNS = ["ref_voxels", "pred_voxels", "tp", "fp", "fn", "ref_volume_mm3", "pred_volume_mm3",
               "collisions", "collisions_mm3"]


class EvaluationInputError(ValueError):
    """A prediction/reference pair that cannot be compared; the message names the file and the problem."""


@dataclass(frozen=True)
class EvaluationSettings:
    """What to compute. ``None`` turns a metric off.

    percentile: the HDxx percentile (95). gap_eps_mm: GapDice eps (10 mm). collision_eps_mm:
    collision count eps (2 mm). fov_axis: array axis for per-slice Dice (None: none); fov_flip:
    positions run from the high-index end. threads: structures evaluated at once.
    """

    percentile: float = 95.0
    gap_eps_mm: float | None = 10.0
    collision_eps_mm: float | None = 2.0
    fov_axis: int | None = None
    fov_flip: bool = False
    threads: int = 1


@dataclass(frozen=True)
class Evaluation:
    """``table``: one row per structure plus ``all`` (see :data:`COLUMNS`); ``confusion``: voxel
    counts, rows reference class, columns predicted class (``background`` first); ``fov``:
    per-slice Dice (structure, slice, position_pct, dice)."""

    table: pd.DataFrame
    confusion: pd.DataFrame
    fov: pd.DataFrame


def _as_labels(array: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(array)
    if a.dtype == bool:
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        if a.size and a.min() < 0:
            raise EvaluationInputError(f"{name}: negative label value {int(a.min())}")
        return a
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)) or (a.size and a.min() < 0):
            raise EvaluationInputError(f"{name}: a label map needs whole non-negative numbers, "
                                       f"found non-integral or non-finite values ({a.dtype})")
        top = a.max() if a.size else 0
        return a.astype(np.uint8 if top <= 255 else np.uint16 if top <= 65535 else np.int64)
    raise EvaluationInputError(f"{name}: cannot read labels from a {a.dtype} array")


def check_labels(present: Sequence[int], labels: Mapping[str, int], name: str) -> None:
    """Raise naming the file when values ``present`` are not background or a known label."""
    unknown = sorted(set(present) - {int(v) for v in labels.values()})
    if unknown:
        known = ", ".join(f"{k}={v}" for k, v in labels.items())
        raise EvaluationInputError(f"{name}: label values {unknown} are not among the dataset's labels ({known})")


def _structure(
    c: int, pb: Box | None, rb: Box | None, pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], top: int,
) -> dict:
    """Phase 1 of one structure: masks on its box, counts, borders, trees, confusion row."""
    box = union_box(pb, rb)
    if box is None:
        return {"box": None, "tp": 0, "np": 0, "nr": 0, "row": None, "pred_tree": None, "ref_tree": None}
    P = pred[box] == c
    Y = ref[box] == c
    off = box_offset(box)
    bp, br = border(P), border(Y)
    row = None
    if rb is not None:
        rsub = relative(rb, box)
        row = np.bincount(pred[rb][Y[rsub]].ravel(), minlength=top + 1)
    return {"box": box, "off": off, "P": P, "Y": Y, "bp": bp, "br": br, "row": row,
            "tp": int(np.count_nonzero(P & Y)), "np": int(np.count_nonzero(P)), "nr": int(np.count_nonzero(Y)),
            "pred_tree": make_tree(points_mm(bp, spacing, off)), "ref_tree": make_tree(points_mm(br, spacing, off))}


def evaluate_arrays(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], labels: Mapping[str, int],
    settings: EvaluationSettings = EvaluationSettings(), *, names: tuple[str, str] = ("prediction", "reference"),
) -> Evaluation:
    """Every metric of ``pred`` against ``ref`` (non-negative integer label arrays of one shape,
    ``spacing`` in mm).

    ``labels`` maps structure names to label values (background is 0); a value outside them
    raises :class:`EvaluationInputError` naming ``names[0]`` or ``names[1]``.
    """
    sp = tuple(float(s) for s in spacing)
    voxel_mm3 = float(np.prod(sp))
    items = list(labels.items())
    frame = nonzero_box(pred, ref)
    if frame is None:
        frame = (slice(0, 1),) * 3
    P, Y = pred[frame], ref[frame]
    pboxes, rboxes = label_boxes(P), label_boxes(Y)
    check_labels([v for v, b in enumerate(pboxes) if b is not None], labels, names[0])
    check_labels([v for v, b in enumerate(rboxes) if b is not None], labels, names[1])
    top = max([v for _, v in items] + [1])
    pboxes += [None] * (top + 1 - len(pboxes))
    rboxes += [None] * (top + 1 - len(rboxes))

    def phase1(item: tuple[str, int]) -> dict:
        return _structure(item[1], pboxes[item[1]], rboxes[item[1]], P, Y, sp, top)

    with ThreadPoolExecutor(max(1, settings.threads)) as pool:
        parts = dict(zip([v for _, v in items], pool.map(phase1, items), strict=True))
        ref_trees = {c: parts[c]["ref_tree"] for c in parts}
        pred_trees = {c: parts[c]["pred_tree"] for c in parts}
        regions: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if settings.gap_eps_mm is not None:
            present = [c for c in parts if parts[c]["box"] is not None]

            def region(c: int) -> np.ndarray:
                return gap_region(parts[c]["Y"], c, ref_trees, settings.gap_eps_mm, sp, parts[c]["off"])

            regions = {c: (g, parts[c]["off"]) for c, g in zip(present, pool.map(region, present), strict=True)}

        def phase2(item: tuple[str, int]) -> tuple[dict, pd.DataFrame | None]:
            name, c = item
            s = parts[c]
            row: dict = {"structure": name, "label": c, "ref_voxels": s["nr"], "pred_voxels": s["np"],
                         "tp": s["tp"], "fp": s["np"] - s["tp"], "fn": s["nr"] - s["tp"]}
            row["ref_volume_mm3"] = s["nr"] * voxel_mm3
            row["pred_volume_mm3"] = s["np"] * voxel_mm3
            row.update(overlap_scores(s["tp"], row["fp"], row["fn"]))
            if s["box"] is None:
                row.update(surface_distances(np.zeros((1, 1, 1), bool), np.zeros((1, 1, 1), bool), sp).as_dict())
            else:
                row.update(surface_distances(s["P"], s["Y"], sp, percentile=settings.percentile,
                                             pred_border=s["bp"], ref_border=s["br"], pred_tree=s["pred_tree"],
                                             ref_tree=s["ref_tree"], offset=s["off"]).as_dict())
            if settings.gap_eps_mm is not None:
                if s["box"] is None:
                    row.update({"gap_dice": float("nan"), "gap_ref_voxels": 0, "gap_pred_voxels": 0,
                                "gap_tp_voxels": 0, "gap_flag": "no_gap"})
                else:
                    row.update(gap_counts(s["P"], s["Y"], Y[s["box"]], c, regions, ref_trees,
                                          settings.gap_eps_mm, sp, s["off"]))
            if settings.collision_eps_mm is not None:
                n = 0
                if s["box"] is not None and s["np"] > 0:
                    pad = np.floor(settings.collision_eps_mm / np.asarray(sp) + 1e-9).astype(int)
                    n = collision_count(s["P"], c, pred_trees, settings.collision_eps_mm, sp, s["off"],
                                        window=padded_window(P, s["box"], pad))
                row["collisions"] = n
                row["collisions_mm3"] = n * voxel_mm3
            fov = None
            if settings.fov_axis is not None and s["box"] is not None and s["nr"] > 0:
                fov = slice_dice(s["P"], s["Y"], settings.fov_axis, start=frame[settings.fov_axis].start
                                 + s["box"][settings.fov_axis].start, flip=settings.fov_flip,
                                 n_slices=pred.shape[settings.fov_axis])
                fov.insert(0, "structure", name)
            return row, fov

        results = list(pool.map(phase2, items))
    rows = [r for r, _ in results]
    confusion = _confusion(parts, items, P, Y, frame, pred.size)
    table = pd.DataFrame(rows)
    table = pd.concat([table, pd.DataFrame([_all_row(table, confusion)])], ignore_index=True)
    table = table.reindex(columns=[c for c in COLUMNS if c in table.columns])
    fovs = [f for _, f in results if f is not None]
    fov = pd.concat(fovs, ignore_index=True) if fovs else pd.DataFrame(
        columns=["structure", "slice", "position_pct", "dice"])
    return Evaluation(table=table, confusion=confusion, fov=fov)


def _confusion(parts: dict, items: list[tuple[str, int]], P: np.ndarray, Y: np.ndarray, frame: Box,
               total: int) -> pd.DataFrame:
    """Voxel counts over background + the structures (rows reference, columns prediction)."""
    values = [0] + [v for _, v in items]
    names = ["background"] + [n for n, _ in items]
    k = len(values)
    m = np.zeros((k, k), dtype=np.int64)
    for i, c in enumerate(values[1:], start=1):
        row = parts[c]["row"]
        if row is not None:
            for j, v in enumerate(values):
                m[i, j] = row[v] if v < len(row) else 0
    for j, c in enumerate(values[1:], start=1):
        m[0, j] = parts[c]["np"] - m[1:, j].sum()
    m[0, 0] = total - m[:, 1:].sum() - m[1:, 0].sum()
    return pd.DataFrame(m, index=pd.Index(names, name="reference"), columns=pd.Index(names, name="prediction"))


def _all_row(table: pd.DataFrame, confusion: pd.DataFrame) -> dict:
    row: dict = {"structure": "all", "label": 0}
    for col in MEAN_COLUMNS:
        if col in table:
            vals = pd.to_numeric(table[col], errors="coerce")
            row[col] = float(vals.mean()) if vals.notna().any() else float("nan")
    for col in SUM_COLUMNS:
        if col in table:
            row[col] = table[col].sum()
    row["mean_iou"] = mean_iou(confusion.to_numpy())
    return row


def fov_axis_of(volume: Volume, axis: str) -> tuple[int, bool]:
    """Array axis along the world axis ``axis`` (``LR``, ``AP`` or ``SI``) and whether its index runs
    towards lower world coordinates (then positions are flipped so 0 % is the right/anterior/inferior
    end in LPS: the lowest world coordinate)."""
    world = {"LR": 0, "AP": 1, "SI": 2}
    if axis not in world:
        raise ValueError(f"fov axis must be one of {sorted(world)}, got {axis!r}")
    column = np.abs(volume.direction[world[axis], :])
    a = int(np.argmax(column))
    return a, bool(volume.direction[world[axis], a] < 0)


def evaluate_pair(
    pred: Volume, ref: Volume, labels: Mapping[str, int], settings: EvaluationSettings = EvaluationSettings(),
    *, pred_name: str = "prediction", ref_name: str = "reference", fov_axis: str | None = None,
) -> Evaluation:
    """:func:`evaluate_arrays` on two volumes after checking that they can be compared.

    Raises :class:`EvaluationInputError` naming the file when the grids differ (size, spacing,
    origin or direction), when an array holds non-integral values, or when either holds a
    label value not in ``labels``. ``fov_axis`` (``LR``/``AP``/``SI``) overrides ``settings.fov_axis``.
    """
    problems = pred.geometry_mismatches(ref)
    if problems:
        raise EvaluationInputError(f"{pred_name}: its grid differs from the reference {ref_name}: "
                                   + "; ".join(problems))
    p = _as_labels(pred.array, pred_name)
    r = _as_labels(ref.array, ref_name)
    if fov_axis is not None:
        axis, flip = fov_axis_of(ref, fov_axis)
        settings = EvaluationSettings(settings.percentile, settings.gap_eps_mm, settings.collision_eps_mm,
                                      axis, flip, settings.threads)
    return evaluate_arrays(p, r, ref.spacing, labels, settings, names=(pred_name, ref_name))

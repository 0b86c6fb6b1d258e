"""Choose the registration reference: the structure that overlaps all others best after affine.

The knee paper aligns all masks affinely and picks the one with the highest overlap with
all others. Registering every pair is ``n^2`` registrations; this does ``n``:

1. every instance (a subject's structure, mirrored where asked) becomes an inside-fraction
   image at a coarse ``spacing_mm``;
2. a *provisional* reference, the instance of median volume, receives every other instance
   by a multiscale affine registration, onto its grid;
3. the aligned masks form the rows of a boolean matrix ``X``; one product ``X X^T`` gives
   every pairwise intersection and so every pairwise Dice at once;
4. the chosen reference has the highest mean Dice to all others (ties: the first by id); with
   trimming (:mod:`mskseg.registration.trim`), a bone the field of view cuts shorter than the trim
   is scored but chosen only when every instance is that short.

Pairwise overlaps measured through the provisional frame approximate pairwise affine
registrations; the provisional frame is only used to compare, never kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mskseg.io.volumes import from_sitk, read_volume
from mskseg.registration.affine import AffineSettings, register_affine
from mskseg.registration.fields import warp_image
from mskseg.registration.masks import crop_to_structure, dice, working_image
from mskseg.registration.trim import TrimSpec, trimmed_structure
from mskseg.volume import Volume

log = logging.getLogger(__name__)

#: a coarse, quick affine for the selection pass
SELECTION_AFFINE = AffineSettings(shrink_factors=(2, 1), smoothing_mm=(3.0, 0.0), iterations=60, sampling=1.0)


@dataclass(frozen=True)
class Instance:
    """One structure of one subject as a sample of a shape model."""

    subject: str
    structure: str
    mirrored: bool = False

    @property
    def key(self) -> str:
        return f"{self.subject}:{self.structure}"


def dice_matrix(rows: np.ndarray) -> np.ndarray:
    """Pairwise Dice of boolean rows ``(n, v)`` in one matrix product (1 where both are empty)."""
    x = np.asarray(rows, dtype=np.float32)
    inter = x @ x.T
    sizes = np.diag(inter).copy()
    total = sizes[:, None] + sizes[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, 2.0 * inter / total, 1.0)
    return out.astype(np.float64)


def select_reference(instances: Sequence[Instance], load: Callable[[Instance], object], *,
                     spacing_mm: float = 3.0, margin_mm: float = 10.0,
                     affine: AffineSettings = SELECTION_AFFINE, forced: str | None = None,
                     eligible: Callable[[Instance], bool] | None = None) -> pd.DataFrame:
    """Score every instance as a reference; return the table (one row per instance).

    ``load(instance)`` returns the instance's binary structure mask (a
    :class:`~mskseg.volume.Volume`, mirrored if asked). ``forced`` (a subject id or an
    ``subject:structure`` key) picks the reference instead of the best score; the scores are
    still computed and written. ``eligible`` (asked after every instance is loaded) narrows the
    automatic choice to the best-scored eligible instance (all, when none is). Columns: ``subject,
    structure, mirrored, volume_ml, dice_to_provisional, mean_dice, min_dice, rank, provisional,
    selected``.
    """
    if len(instances) < 2:
        raise ValueError(f"reference selection needs at least 2 instances, got {len(instances)}")
    keys = [inst.key for inst in instances]
    if len(set(keys)) != len(keys):
        raise ValueError("reference selection: duplicate instances")
    start = time.perf_counter()
    images: list[sitk.Image] = []
    volumes = []
    for inst in instances:
        mask = load(inst)
        volumes.append(float(np.count_nonzero(mask.array)) * mask.voxel_volume_mm3 / 1000.0)
        images.append(working_image(mask, spacing_mm, margin_mm))
    order = np.argsort(volumes, kind="stable")
    provisional = int(order[len(order) // 2])
    fixed = images[provisional]
    fixed_rows = sitk.GetArrayViewFromImage(fixed) > 0.5
    rows = np.zeros((len(instances), fixed_rows.size), dtype=bool)
    to_provisional = np.ones(len(instances))
    for i, moving in enumerate(images):
        if i == provisional:
            rows[i] = fixed_rows.ravel()
            continue
        result = register_affine(fixed, moving, affine)
        warped = warp_image(moving, fixed, result.transform, None)  # keep it alive: a view does not
        aligned = sitk.GetArrayViewFromImage(warped) > 0.5
        rows[i] = aligned.ravel()
        to_provisional[i] = dice(fixed_rows, aligned)
    matrix = dice_matrix(rows)
    n = len(instances)
    off = ~np.eye(n, dtype=bool)
    mean = np.array([matrix[i, off[i]].mean() for i in range(n)])
    low = np.array([matrix[i, off[i]].min() for i in range(n)])
    table = pd.DataFrame({
        "subject": [i.subject for i in instances], "structure": [i.structure for i in instances],
        "mirrored": [i.mirrored for i in instances], "volume_ml": volumes,
        "dice_to_provisional": to_provisional, "mean_dice": mean, "min_dice": low,
    })
    ranking = sorted(range(n), key=lambda i: (-mean[i], keys[i]))
    table["rank"] = 0
    table.loc[ranking, "rank"] = np.arange(1, n + 1)
    table["provisional"] = np.arange(n) == provisional
    candidates = [i for i in ranking if eligible is None or eligible(instances[i])]
    chosen = (candidates or ranking)[0]
    if forced:
        hits = [i for i, inst in enumerate(instances) if forced in (inst.key, inst.subject)]
        if not hits:
            raise ValueError(f"reference {forced!r} is not among the instances ({', '.join(keys[:5])}, ...)")
        chosen = sorted(hits, key=lambda i: table.loc[i, "rank"])[0]
    table["selected"] = np.arange(n) == chosen
    log.info("reference: %s (mean Dice %.4f over %d instances, %.1f s)", keys[chosen], mean[chosen], n,
             time.perf_counter() - start)
    return table.sort_values("rank", kind="stable").reset_index(drop=True)


def chosen_instance(table: pd.DataFrame) -> Instance:
    """The selected row of a reference table as an :class:`Instance`."""
    rows = table[table["selected"].astype(str).str.lower() == "true"]
    if len(rows) != 1:
        raise ValueError(f"reference table must have exactly one selected row, found {len(rows)}")
    row = rows.iloc[0]
    return Instance(str(row["subject"]), str(row["structure"]), str(row["mirrored"]).lower() == "true")


@dataclass(frozen=True)
class ReferenceChoice:
    """The scored instances, the chosen one, its mask cropped with background around it, and its
    inside-fraction image on the working grid (what every registration of the model aligns to)."""

    scores: pd.DataFrame
    instance: Instance
    mask: Volume
    working: Volume


def choose_reference(masks: Mapping[str, object], members: Sequence[tuple[str, bool]], labels: Mapping[str, int], *,
                     selection_spacing_mm: float, working_spacing_mm: float, margin_mm: float,
                     forced: str | None = None, trim: TrimSpec | None = None,
                     read: Callable[[object], Volume] = read_volume) -> ReferenceChoice:
    """Score every member structure of every subject as the reference of a shape model and prepare the chosen one.

    ``masks``: subject -> its label mask (a path, read with ``read`` one subject at a time, so memory holds
    one mask); ``members``: the model's ``(structure, mirrored)``; ``forced``: a ``subject:structure`` key
    that wins regardless of score; ``trim``: every instance trimmed so (:mod:`mskseg.registration.trim`),
    the table then has the columns ``trim_extent_mm`` and ``trim_short`` and a short instance is chosen only
    when all are. The written mask keeps at least two voxels of background around the (trimmed) structure,
    so that only a real cut by the field of view touches its border (landmarks are not sampled on such
    cuts, nor on the trim's cut).
    """
    cache: dict[str, Volume] = {}
    records: dict[str, dict] = {}

    def load(inst: Instance) -> Volume:
        if inst.subject not in cache:
            cache.clear()
            cache[inst.subject] = read(masks[inst.subject])
        prepared = trimmed_structure(cache[inst.subject], labels[inst.structure], mirror=inst.mirrored, trim=trim,
                                     name=f"{inst.structure} of {masks[inst.subject]}")
        records[inst.key] = prepared.record
        return prepared.mask

    def eligible(inst: Instance) -> bool:
        return not records[inst.key].get("trim_short", False)

    instances = [Instance(s, str(st), bool(m)) for s in masks for st, m in members]
    scores = select_reference(instances, load, spacing_mm=selection_spacing_mm, margin_mm=margin_mm, forced=forced,
                              eligible=eligible)
    if trim is not None:
        keys = scores["subject"].astype(str) + ":" + scores["structure"].astype(str)
        scores["trim_extent_mm"] = [records[k]["trim_extent_mm"] for k in keys]
        scores["trim_short"] = [records[k]["trim_short"] for k in keys]
    chosen = chosen_instance(scores)
    binary = load(chosen)
    cropped = crop_to_structure(binary, max(margin_mm, 2 * max(binary.spacing)), pad=False)
    working = from_sitk(working_image(binary, working_spacing_mm, margin_mm))
    return ReferenceChoice(scores=scores, instance=chosen, mask=cropped, working=working)

"""Choosing the registration reference: the Dice matrix, the scores, forcing, the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from mskseg.io.tables import read_table, write_table
from mskseg.registration.masks import dice
from mskseg.registration.reference import Instance, chosen_instance, dice_matrix, select_reference
from mskseg.volume import Volume
from tests.conftest import ROTATED
from tests.registration.phantoms import ORIGIN, SPACING, bone, grid_points

COLUMNS = ["subject", "structure", "mirrored", "volume_ml", "dice_to_provisional", "mean_dice", "min_dice", "rank",
           "provisional", "selected"]

# --- dice_matrix ------------------------------------------------------------------------------


def test_dice_matrix_equals_pairwise_dice() -> None:
    rng = np.random.default_rng(4)
    rows = rng.random((7, 500)) < rng.uniform(0.05, 0.6, size=(7, 1))
    rows[3] = False  # one empty row
    matrix = dice_matrix(rows)
    assert matrix.shape == (7, 7) and matrix.dtype == np.float64
    expected = np.array([[dice(a, b) for b in rows] for a in rows])
    assert np.allclose(matrix, expected, atol=1e-6)
    assert np.allclose(np.diag(matrix), 1.0)
    assert np.array_equal(matrix, matrix.T)
    assert np.allclose(matrix[3, [0, 1, 2, 4, 5, 6]], 0.0)  # empty against non-empty


def test_dice_matrix_of_two_empty_rows_is_one() -> None:
    matrix = dice_matrix(np.zeros((2, 10), dtype=bool))
    assert np.array_equal(matrix, np.ones((2, 2)))


def test_dice_matrix_known_values() -> None:
    rows = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1]], dtype=bool)
    expected = np.array([[1.0, 2 / 3, 0.0], [2 / 3, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert np.allclose(dice_matrix(rows), expected)


# --- select_reference -------------------------------------------------------------------------

GRID = (40, 44, 34)
AXES = np.array([14.0, 10.0, 8.0])  # semi-axes of the phantom bone (mm)
#: four knobs on the ellipsoid, one per instance, each in a different place
KNOB_AT = [(1.0, 1.0, 1.0), (-1.0, 1.0, -1.0), (1.0, -1.0, -1.0), (-1.0, -1.0, 1.0)]


def _on_ellipsoid(direction) -> np.ndarray:
    u = np.asarray(direction, dtype=float)
    u = u / np.linalg.norm(u)
    return u / np.sqrt(((u / AXES) ** 2).sum())


@pytest.fixture(scope="module")
def population() -> tuple[list[Instance], dict[str, Volume], str]:
    """Five poses of one knobbly ellipsoid: four with a 5 mm knob each in a different place, one without.

    The plain one differs from each other by one knob, the others differ from each other by
    two: the plain one overlaps the others best. Its volume is the smallest, so it is not the
    provisional reference (the median volume): the choice is made by the scores.
    """
    pts = grid_points(GRID)
    centre = pts.reshape(-1, 3).mean(axis=0)
    shifts = [(1.5, -1.0, 0.5), (-2.0, 1.0, 1.0), (0.0, 2.0, -1.5), (2.0, 0.0, -1.0), (-1.0, -2.0, 1.5)]
    volumes = {}
    names = ["knee07", "knee02", "knee11", "knee05", "knee09"]  # the plain one is knee11, in the middle
    plain = "knee11"
    knobs = iter(KNOB_AT)
    for name, shift in zip(names, shifts, strict=True):
        c = centre + np.asarray(shift)
        shape = bone(pts, c, 0.0)
        if name != plain:
            shape |= np.linalg.norm(pts - c - _on_ellipsoid(next(knobs)), axis=-1) < 5.0
        volumes[name] = Volume(shape.astype(np.uint8), SPACING, ORIGIN, ROTATED)
    instances = [Instance(n, "femur") for n in names]
    return instances, volumes, plain


@pytest.fixture(scope="module")
def scored(population) -> pd.DataFrame:
    instances, volumes, _ = population
    return select_reference(instances, lambda inst: volumes[inst.subject], spacing_mm=2.0, margin_mm=6.0)


def test_the_consensus_shape_is_selected(population, scored) -> None:
    _, volumes, plain = population
    table = scored
    assert list(table.columns) == COLUMNS
    assert table["selected"].sum() == 1
    best = table.loc[table["mean_dice"].idxmax()]
    assert best["subject"] == plain and bool(best["selected"])
    assert table.loc[table["selected"], "subject"].item() == plain
    others = table.loc[table["subject"] != plain, "mean_dice"]
    assert best["mean_dice"] > others.max() + 0.005  # a clear margin, not a coin toss
    # the provisional frame is the instance of median volume, not the plain (smallest) one
    assert table["provisional"].sum() == 1
    provisional = table.loc[table["provisional"]]
    assert provisional["subject"].item() != plain
    assert provisional["dice_to_provisional"].item() == 1.0
    order = sorted(volumes, key=lambda s: volumes[s].array.sum())
    assert provisional["subject"].item() == order[len(order) // 2]
    assert table.loc[table["subject"] == plain, "volume_ml"].item() == table["volume_ml"].min()


def test_table_ranks_and_values(population, scored) -> None:
    instances, volumes, _ = population
    table = scored
    assert table["rank"].tolist() == [1, 2, 3, 4, 5]  # sorted by rank
    assert (np.diff(table["mean_dice"].to_numpy()) <= 0).all()
    assert sorted(table["subject"]) == sorted(i.subject for i in instances)
    assert (table["structure"] == "femur").all() and not table["mirrored"].any()
    assert ((table["min_dice"] <= table["mean_dice"] + 1e-12) & (table["mean_dice"] <= 1.0)).all()
    assert (table["dice_to_provisional"] > 0.85).all()  # same bone, poses found by the affine
    for row in table.itertuples():
        vol = volumes[row.subject]
        assert row.volume_ml == pytest.approx(vol.array.sum() * np.prod(SPACING) / 1000.0)


def test_forced_reference_keeps_the_scores(population, scored) -> None:
    instances, volumes, plain = population
    forced = select_reference(instances, lambda inst: volumes[inst.subject], spacing_mm=2.0, margin_mm=6.0,
                              forced="knee05")
    assert forced.loc[forced["selected"], "subject"].item() == "knee05"
    assert forced["selected"].sum() == 1
    assert list(forced.columns) == COLUMNS
    # the scores are those of the unforced run (up to the run-to-run noise of the bug shown
    # by test_aligned_masks_are_read_while_their_image_lives) and still rank the plain one first
    a = forced.set_index("subject").sort_index()
    b = scored.set_index("subject").sort_index()
    assert a["volume_ml"].tolist() == b["volume_ml"].tolist()
    assert a["provisional"].tolist() == b["provisional"].tolist()
    for column in ("dice_to_provisional", "mean_dice", "min_dice"):
        assert np.allclose(a[column], b[column], atol=0.01), column
    assert forced["rank"].tolist() == [1, 2, 3, 4, 5]
    assert forced.iloc[0]["subject"] == plain and not forced.iloc[0]["selected"]
    assert chosen_instance(forced) == Instance("knee05", "femur", False)
    by_key = select_reference(instances, lambda inst: volumes[inst.subject], spacing_mm=2.0, margin_mm=6.0,
                              forced="knee07:femur")
    assert by_key.loc[by_key["selected"], "subject"].item() == "knee07"


def test_forced_unknown_reference_raises(population) -> None:
    instances, volumes, _ = population
    with pytest.raises(ValueError, match="'nobody' is not among the instances"):
        select_reference(instances[:2], lambda inst: volumes[inst.subject], spacing_mm=3.0, margin_mm=6.0,
                         forced="nobody")


def test_fewer_than_two_instances_or_duplicates_raise(population) -> None:
    instances, volumes, _ = population
    load = lambda inst: volumes[inst.subject]  # noqa: E731
    with pytest.raises(ValueError, match="at least 2 instances, got 1"):
        select_reference(instances[:1], load)
    with pytest.raises(ValueError, match="at least 2 instances, got 0"):
        select_reference([], load)
    with pytest.raises(ValueError, match="duplicate"):
        select_reference([instances[0], instances[0]], load)


def test_chosen_instance(scored, population) -> None:
    _, _, plain = population
    assert chosen_instance(scored) == Instance(plain, "femur", False)
    none = scored.assign(selected=False)
    with pytest.raises(ValueError, match="exactly one selected row, found 0"):
        chosen_instance(none)
    two = scored.assign(selected=[True, True, False, False, False])
    with pytest.raises(ValueError, match="exactly one selected row, found 2"):
        chosen_instance(two)


def test_chosen_instance_round_trips_through_a_tsv(scored, tmp_path: Path) -> None:
    table = scored.copy()
    table["mirrored"] = table["selected"]  # the selected instance is a mirrored one
    write_table(table, tmp_path / "reference.tsv")
    back = read_table(tmp_path / "reference.tsv")
    assert list(back.columns) == COLUMNS
    ref = chosen_instance(back)
    assert ref == Instance(table.loc[table["selected"], "subject"].item(), "femur", True)
    assert ref.mirrored is True and ref.key == f"{ref.subject}:femur"
    # text cells as a spreadsheet might leave them
    as_text = back.astype({"selected": str, "mirrored": str})
    as_text["selected"] = as_text["selected"].str.upper()
    assert chosen_instance(as_text) == ref
    table["mirrored"] = False
    write_table(table, tmp_path / "plain.tsv")
    assert chosen_instance(read_table(tmp_path / "plain.tsv")).mirrored is False


def test_mirrored_instances_are_loaded_mirrored(population) -> None:
    """load() receives the Instance with its mirrored flag; the table reports it."""
    instances, volumes, _ = population
    from mskseg.registration.masks import mirror_volume

    seen = []

    def load(inst: Instance) -> Volume:
        seen.append(inst)
        vol = volumes[inst.subject]
        return mirror_volume(vol) if inst.mirrored else vol

    mirrored = [Instance(i.subject, "femur", True) for i in instances[:3]]
    table = select_reference(mirrored, load, spacing_mm=3.0, margin_mm=6.0)
    assert table["mirrored"].all()
    assert all(i.mirrored for i in seen) and len(seen) == 3
    assert chosen_instance(table).mirrored is True
    assert (table["dice_to_provisional"] > 0.85).all()  # mirrored alike: still aligned


def test_aligned_masks_are_read_while_their_image_lives(population, monkeypatch) -> None:
    """A numpy view of a SimpleITK image does not keep the image alive.

    Every image ``warp_image`` returns here zeroes its buffer when it is deleted (and stays
    allocated, so reading it afterwards gives zeros instead of a crash). Code that reads the
    aligned mask while the image lives sees the mask; code that lets the image go first
    sees an empty mask and scores a Dice of 0.
    """
    import ctypes

    import mskseg.registration.reference as reference

    graveyard = []

    class Poisoned(sitk.Image):
        def __del__(self) -> None:
            view = sitk.GetArrayViewFromImage(self)
            ctypes.memset(view.__array_interface__["data"][0], 0, view.nbytes)
            graveyard.append(self)  # keep the buffer allocated

    real = reference.warp_image
    monkeypatch.setattr(reference, "warp_image", lambda *a, **k: Poisoned(real(*a, **k)))
    instances, volumes, _ = population
    table = select_reference(instances[:3], lambda inst: volumes[inst.subject], spacing_mm=3.0, margin_mm=6.0)
    assert graveyard  # the poisoned images were used and are gone
    assert (table["dice_to_provisional"] > 0.85).all(), table["dice_to_provisional"].tolist()


# --- trimming: a bone the field of view cuts shorter than the trim is not chosen ------------------


def test_eligible_narrows_the_automatic_choice(population, scored) -> None:
    instances, volumes, plain = population
    table = select_reference(instances, lambda inst: volumes[inst.subject], spacing_mm=2.0, margin_mm=6.0,
                             eligible=lambda inst: inst.subject != plain)
    assert table.iloc[0]["subject"] == plain and not table.iloc[0]["selected"]  # still ranked first
    assert table.loc[table["selected"], "subject"].item() == table.iloc[1]["subject"]
    none = select_reference(instances, lambda inst: volumes[inst.subject], spacing_mm=2.0, margin_mm=6.0,
                            eligible=lambda inst: False)
    assert none.loc[none["selected"], "subject"].item() == plain  # none eligible: the best after all


def test_choose_reference_with_trim_skips_a_short_bone(population) -> None:
    from mskseg.registration.reference import choose_reference
    from mskseg.registration.trim import TrimSpec, trim_structure

    _, volumes, plain = population
    spec = TrimSpec(16.0, "inferior")
    cut = dict(volumes)
    arr = volumes[plain].array.copy()
    arr[:, :18, :] = 0  # the field of view cuts the plain one from above (index axis 1 is -z)
    cut[plain] = volumes[plain].with_array(arr)
    assert trim_structure(cut[plain], spec).short
    choice = choose_reference(cut, [("femur", False)], {"femur": 1}, selection_spacing_mm=2.0,
                              working_spacing_mm=2.0, margin_mm=6.0, trim=spec, read=lambda v: v)
    table = choice.scores
    assert {"trim_extent_mm", "trim_short"} <= set(table.columns)
    assert table.set_index("subject")["trim_short"].to_dict() == {s: s == plain for s in volumes}
    assert choice.instance.subject != plain and not table.loc[table["selected"], "trim_short"].item()
    # the written mask is the trimmed bone (cropped, same world), its joint end in place
    expected = trim_structure(volumes[choice.instance.subject], spec).mask
    assert int(choice.mask.array.sum()) == int(expected.array.sum()) < int(volumes[choice.instance.subject].array.sum())
    # without trimming: no trim columns, and the mask is the whole bone
    plain_choice = choose_reference(volumes, [("femur", False)], {"femur": 1}, selection_spacing_mm=2.0,
                                    working_spacing_mm=2.0, margin_mm=6.0, read=lambda v: v)
    assert list(plain_choice.scores.columns) == COLUMNS
    assert int(plain_choice.mask.array.sum()) == int(volumes[plain_choice.instance.subject].array.sum())

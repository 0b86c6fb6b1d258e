"""Trimming a bone to a fixed length from its joint end: exact against a voxel-by-voxel computation, the same
for every subject whatever the field of view cuts, short bones flagged, trimming off changes nothing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mskseg.registration.masks import structure_mask
from mskseg.registration.trim import (
    ENDS,
    EPS_MM,
    TrimSpec,
    cut_margin_mm,
    joint_end_mm,
    short_message,
    trim_structure,
    trimmed_structure,
)
from mskseg.synthetic import knee
from mskseg.synthetic.generate import render_subject, subject_params
from mskseg.volume import Volume
from tests.conftest import ROTATED

SPACING = (1.2, 1.0, 1.4)
ORIGIN = (-7.0, 20.0, 33.0)


def _oblique() -> np.ndarray:
    """ROTATED turned by 30 degrees about x and 20 about z: no index axis along a world axis."""
    a, b = np.deg2rad(30.0), np.deg2rad(20.0)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    return rz @ rx @ ROTATED


DIRECTIONS = {"rotated": ROTATED, "oblique": _oblique()}


def _blob(direction: np.ndarray, seed: int = 3, shape=(14, 16, 12)) -> Volume:
    """A lumpy random blob (union of balls) with a label 2 and some label 1 beside it."""
    rng = np.random.default_rng(seed)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    arr = np.zeros(shape, np.uint8)
    for _ in range(6):
        c = rng.uniform(3, np.asarray(shape) - 3)
        arr[np.linalg.norm((idx - c) * SPACING, axis=-1) < rng.uniform(3.0, 6.0)] = 2
    arr[0, 0, :3] = 1
    return Volume(arr, SPACING, ORIGIN, direction)


def _brute_force(volume: Volume, length_mm: float, axis: np.ndarray) -> tuple[np.ndarray, float]:
    """Kept voxels and the extent (mm, from the voxel boxes' corners), one voxel at a time."""
    inside = [i for i in itertools.product(*map(range, volume.shape)) if volume.array[i]]
    centre = {i: float(volume.index_to_world(np.array([i], float))[0] @ axis) for i in inside}
    start = min(centre.values())
    kept = np.zeros(volume.shape, np.uint8)
    for i, along in centre.items():
        if along - start < length_mm - EPS_MM:
            kept[i] = 1
    offsets = np.array(list(itertools.product((-0.5, 0.5), repeat=3)))
    corners = np.concatenate([volume.index_to_world(np.array(i, float) + offsets) @ axis for i in inside])
    return kept, float(corners.max() - corners.min())


@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
@pytest.mark.parametrize("end", ENDS)
def test_trim_keeps_exactly_the_length_from_the_joint_end(direction, end: str) -> None:
    binary = structure_mask(_blob(direction), 2)
    spec = TrimSpec(1.0, end)
    _, extent = _brute_force(binary, 1.0, spec.axis)
    spec = TrimSpec(round(0.55 * extent, 3), end)
    expected, extent = _brute_force(binary, spec.length_mm, spec.axis)
    trimmed = trim_structure(binary, spec)
    assert np.array_equal(trimmed.mask.array, expected)
    assert 0 < expected.sum() < binary.array.sum()  # the trim cuts the blob
    assert trimmed.mask.array.dtype == np.uint8
    assert trimmed.mask.spacing == binary.spacing and trimmed.mask.origin == binary.origin
    assert np.array_equal(trimmed.mask.direction, binary.direction)
    record = trimmed.record
    assert record["trim_extent_mm"] == pytest.approx(extent, abs=1e-9)
    assert record["trim_short"] is False and record["trim_from"] == end and record["trim_length_mm"] == spec.length_mm
    assert record["trim_kept"] == pytest.approx(expected.sum() / binary.array.sum())
    # the joint end stays: trimming again changes nothing, and the joint end is where it was
    assert joint_end_mm(trimmed.mask, spec) == pytest.approx(joint_end_mm(binary, spec))
    assert np.array_equal(trim_structure(trimmed.mask, spec).mask.array, trimmed.mask.array)


@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_a_bone_shorter_than_the_trim_is_flagged(direction) -> None:
    binary = structure_mask(_blob(direction), 2)
    extent = trim_structure(binary, TrimSpec(1e6, "inferior")).record["trim_extent_mm"]
    short = trim_structure(binary, TrimSpec(extent + 0.5, "inferior"))
    assert short.short and short.record["trim_short"] is True
    assert np.array_equal(short.mask.array, binary.array)  # nothing to trim
    assert short.record["trim_kept"] == 1.0
    assert not trim_structure(binary, TrimSpec(extent - 0.5, "inferior")).short
    message = short_message(short.record)
    assert "shorter than the trim" in message and f"{extent:.1f} mm from its inferior end" in message


def test_trimming_off_is_the_structure_mask_itself() -> None:
    mask = _blob(ROTATED)
    for mirror in (False, True):
        plain = structure_mask(mask, 2, mirror=mirror)
        prepared = trimmed_structure(mask, 2, mirror=mirror, trim=None)
        assert prepared.record == {} and not prepared.short
        assert np.array_equal(prepared.mask.array, plain.array) and prepared.mask.origin == plain.origin
        assert np.array_equal(prepared.mask.direction, plain.direction)


def test_trim_is_applied_in_the_mirrored_frame() -> None:
    """The left/right ends name the model's side: a mirrored structure is trimmed after mirroring."""
    mask = _blob(ROTATED)
    spec = TrimSpec(6.0, "right")
    mirrored = trimmed_structure(mask, 2, mirror=True, trim=spec)
    expected = trim_structure(structure_mask(mask, 2, mirror=True), spec).mask
    assert np.array_equal(mirrored.mask.array, expected.array)
    # in the subject's own world that is the trim from the left
    own_world = trim_structure(structure_mask(mask, 2), TrimSpec(6.0, "left")).mask
    assert np.array_equal(mirrored.mask.array, own_world.array)


def test_spec_from_config() -> None:
    assert TrimSpec.from_dict(None) is None and TrimSpec.from_dict({}) is None
    spec = TrimSpec.from_dict({"length_mm": 60, "from": "inferior"})
    assert spec == TrimSpec(60.0, "inferior") and spec.to_dict() == {"length_mm": 60.0, "from": "inferior"}
    assert np.array_equal(spec.axis, [0.0, 0.0, 1.0]) and np.array_equal(TrimSpec(5, "superior").axis, [0, 0, -1])
    with pytest.raises(ValueError, match="'from' must be one of"):
        TrimSpec(60, "distal")
    with pytest.raises(ValueError, match="length_mm"):
        TrimSpec(0, "inferior")
    with pytest.raises(ValueError, match="unknown trim setting"):
        TrimSpec.from_dict({"length_mm": 60, "from": "inferior", "axis": "SI"})
    with pytest.raises(ValueError, match="empty"):
        trim_structure(Volume(np.zeros((3, 3, 3), np.uint8), SPACING), spec)


def test_cut_margin_is_three_quarters_of_the_largest_step() -> None:
    vol = Volume(np.zeros((2, 2, 2), np.uint8), SPACING, ORIGIN, ROTATED)  # SI along index axis 1 (1.0 mm)
    assert cut_margin_mm(vol, TrimSpec(10, "inferior")) == pytest.approx(0.75)
    assert cut_margin_mm(vol, TrimSpec(10, "left")) == pytest.approx(0.75 * 1.4)  # x along index axis 2


# --- phantoms: the same anatomy cut at two heights by the field of view ---------------------------


@pytest.fixture(scope="module")
def two_cuts() -> tuple[Volume, Volume]:
    """One knee's labels on two fields of view 20 mm apart along SI (16 voxels of 1.25 mm: the grids align)."""
    params = subject_params("knee", 4, seed=1)
    centre = np.asarray(params["anatomy"]["pose"]["translation_mm"], float)
    up = np.array([0.0, 0.0, 10.0])
    grid = ((24, 112, 96), (3.0, 1.25, 1.25))
    low = render_subject(params, *grid, centre=tuple(centre - up))[1]
    high = render_subject(params, *grid, centre=tuple(centre + up))[1]
    return low, high


def _world_set(binary: Volume) -> set[tuple[int, int, int]]:
    points = binary.index_to_world(np.argwhere(binary.array).astype(float))
    return set(map(tuple, np.round(points * 8).astype(int)))


def _dice(a: set, b: set) -> float:
    return 2 * len(a & b) / (len(a) + len(b))


@pytest.mark.parametrize("bone,end", [("femur", "inferior"), ("tibia", "superior")])
def test_two_cuts_of_one_bone_agree_once_trimmed(two_cuts, bone: str, end: str) -> None:
    """The bench's idea (benchmarks/bench_shape_trim.py) in small: the field of view cuts one bone at two heights;
    the untrimmed masks differ by 20 mm of shaft, the trimmed ones are the same voxels of the world."""
    label = knee.LABELS[bone]
    spec = TrimSpec(45.0, end)
    masks = [trimmed_structure(m, label) for m in two_cuts]
    trimmed = [trimmed_structure(m, label, trim=spec) for m in two_cuts]
    untrimmed_dice = _dice(*(_world_set(m.mask) for m in masks))
    assert untrimmed_dice < 0.95
    assert _dice(*(_world_set(t.mask) for t in trimmed)) == 1.0
    extents = [t.record["trim_extent_mm"] for t in trimmed]
    assert abs(extents[0] - extents[1]) == pytest.approx(20.0)  # the cut moved, the trim did not
    assert not any(t.short for t in trimmed)
    assert trimmed_structure(two_cuts[0], label, trim=TrimSpec(min(extents) + 5, end)).short != (
        trimmed_structure(two_cuts[1], label, trim=TrimSpec(min(extents) + 5, end)).short)

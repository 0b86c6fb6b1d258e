"""Hole filling and closing per label, against exact arrays and brute-force shifts (anisotropic spacing)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mskseg.postprocess.morphology import ball, close_labels, fill_holes
from tests.postprocess import brute

SPACING = (0.7, 0.4, 0.55)


def hollow_box() -> tuple[np.ndarray, np.ndarray]:
    """Label 2: a box with a 2 x 2 x 1 cavity; returns the map and the cavity."""
    a = np.zeros((8, 9, 7), np.uint8)
    a[1:6, 1:7, 1:6] = 2
    cavity = np.zeros_like(a, dtype=bool)
    cavity[2:4, 3:5, 3] = True
    a[cavity] = 0
    return a, cavity


def test_a_hole_is_filled_exactly() -> None:
    a, cavity = hollow_box()
    out, changes = fill_holes(a, [1, 2])
    expected = a.copy()
    expected[cavity] = 2
    assert np.array_equal(out, expected)
    assert changes.added == {0: 0, 1: 0, 2: 4} and changes.removed == {0: 4, 1: 0, 2: 0}
    assert changes.step == "fill_holes"


def test_a_cavity_open_to_the_outside_is_no_hole() -> None:
    a, _ = hollow_box()
    a[2:4, 3:5, 3:6] = 0  # a channel to the box's face
    out, changes = fill_holes(a, [2])
    assert np.array_equal(out, a) and changes.changed == 0


def test_a_cavity_at_the_volume_border_is_no_hole() -> None:
    a = np.zeros((5, 5, 5), np.uint8)
    a[:, :, :3] = 1
    a[2, 2, 0] = 0  # a pit in the face lying on the volume's border
    out, _ = fill_holes(a, [1])
    assert out[2, 2, 0] == 0


def test_only_background_is_filled_other_labels_stay() -> None:
    a, cavity = hollow_box()
    a[2, 3, 3] = 5  # another label inside the cavity (unlisted)
    a[3, 4, 3] = 1  # and a listed one
    out, changes = fill_holes(a, [1, 2])
    assert out[2, 3, 3] == 5 and out[3, 4, 3] == 1
    assert (out[cavity] != 0).all() and changes.added[2] == 2


def test_hole_connectivity_is_the_complement() -> None:
    a = np.zeros((7, 7, 7), np.uint8)
    a[1:6, 1:6, 1:6] = 1
    a[3, 3, 3] = 0
    a[2, 2, 2] = 0  # diagonal to the cavity: one 26-background component, two 6-background ones
    out26, _ = fill_holes(a, [1], connectivity=26)  # background 6-connected: two holes
    assert out26[3, 3, 3] == 1 and out26[2, 2, 2] == 1
    out6, _ = fill_holes(a, [1], connectivity=6)  # background 26-connected: still enclosed
    assert out6[3, 3, 3] == 1


@pytest.mark.parametrize("connectivity,rank", [(26, 1), (6, 3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_fill_holes_against_flood_fill(seed: int, connectivity: int, rank: int) -> None:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((20, 18, 16)), 1.2)
    a = np.digitize(field, [-0.05, 0.05]).astype(np.uint8)  # 0, 1, 2: shells with pockets
    out, _ = fill_holes(a, [2, 1], connectivity=connectivity)
    expected = a.copy()
    for v in (2, 1):
        expected[brute.holes(expected == v, rank) & (expected == 0)] = v
    assert np.array_equal(out, expected)


def test_ball_matches_its_definition() -> None:
    for r in (0.0, 0.3, 0.7, 1.1, 1.6, 2.5):
        element = ball(r, SPACING)
        offsets = {tuple(o) for o in np.argwhere(element) - np.array(element.shape) // 2}
        assert offsets == set(brute.ball_offsets(r, SPACING))
        assert all(n % 2 == 1 for n in element.shape)
    assert ball(0.7, SPACING)[:, 1, 1].tolist() == [True, True, True]  # the rim is in (0.7 mm)


@pytest.mark.parametrize("radius", [0.75, 1.3, 2.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_closing_against_brute_force(seed: int, radius: float) -> None:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((16, 22, 18)), 1.0)
    a = np.digitize(field, [0.0, 0.12]).astype(np.uint8)  # 0, 1, 2, touching the borders
    a[rng.random(a.shape) < 0.05] = 0  # pits to close
    out, changes = close_labels(a, [1, 2], radius_mm=radius, spacing=SPACING)
    expected = a.copy()
    for v in (1, 2):
        expected[brute.closing(expected == v, radius, SPACING) & (expected == 0)] = v
    assert np.array_equal(out, expected)
    assert changes.step == "closing" and changes.removed[0] == changes.changed == np.count_nonzero(out != a)


def test_closing_does_not_erode_at_the_border_and_fills_a_groove() -> None:
    a = np.zeros((6, 10, 10), np.uint8)
    a[:, :, :5] = 3  # touches five faces of the volume
    a[:, 4, 4] = 0  # a groove one voxel wide along axis 0, open at both ends of the volume
    out, changes = close_labels(a, [3], radius_mm=0.8, spacing=SPACING)
    expected = a.copy()
    expected[1:5, 4, 4] = 3  # the outside is background: a ball beyond the face reaches the groove's ends
    assert np.array_equal(out, expected) and changes.added[3] == 4


def slabs(axis: int) -> np.ndarray:
    """Two 3-voxel slabs of label 1 with a one-voxel gap (index 4) along ``axis``; 9^3."""
    a = np.zeros((9, 9, 9), np.uint8)
    for part in (slice(1, 4), slice(5, 8)):
        box = [slice(1, 8)] * 3
        box[axis] = part
        a[tuple(box)] = 1
    return a


def test_closing_is_anisotropic() -> None:
    spacing = (0.7, 0.4, 0.4)
    # 0.5 mm reaches one voxel along axes 1 and 2 only (a cross in each plane of axis 0)
    out, changes = close_labels(slabs(0), [1], radius_mm=0.5, spacing=spacing)
    assert np.array_equal(out, slabs(0)) and changes.changed == 0  # the 0.7 mm gap stays
    out, changes = close_labels(slabs(1), [1], radius_mm=0.5, spacing=spacing)
    expected = slabs(1)
    expected[1:8, 4, 2:7] = 1  # the 0.4 mm gap is bridged, but for its rim along axis 2 (open to the side)
    assert np.array_equal(out, expected) and changes.added[1] == 7 * 5
    # 0.75 mm also reaches one voxel along axis 0, and one diagonal step in the plane of axes 1, 2
    out, changes = close_labels(slabs(0), [1], radius_mm=0.75, spacing=spacing)
    expected = slabs(0)
    expected[4, 2:7, 2:7] = 1
    assert np.array_equal(out, expected) and changes.added[1] == 25


def test_empty_and_trivial_cases() -> None:
    z = np.zeros((4, 5, 6), np.uint8)
    for fn in (fill_holes, lambda m, v: close_labels(m, v, radius_mm=1.5, spacing=SPACING)):
        out, changes = fn(z, [1, 2])
        assert np.array_equal(out, z) and changes.changed == 0 and changes.added[2] == 0
        out, changes = fn(z, [])
        assert np.array_equal(out, z) and changes.removed == {0: 0}
    a, _ = hollow_box()
    out, changes = close_labels(a, [2], radius_mm=0.3, spacing=SPACING)  # below the smallest spacing
    assert np.array_equal(out, a) and changes.changed == 0


def test_bad_inputs() -> None:
    a, _ = hollow_box()
    with pytest.raises(ValueError, match="radius_mm"):
        close_labels(a, [2], radius_mm=-1.0, spacing=SPACING)
    with pytest.raises(ValueError, match="spacing"):
        close_labels(a, [2], radius_mm=1.0, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="connectivity"):
        fill_holes(a, [2], connectivity=4)

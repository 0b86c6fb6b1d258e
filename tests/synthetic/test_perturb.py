"""Seeded perturbations of reference label maps (stand-in predictions)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mskseg.synthetic.perturb import PerturbSettings, perturb_labels, subject_rng
from mskseg.volume import Volume
from tests.conftest import ROTATED

SPACING = (0.8, 0.6, 1.2)
SHAPE = (30, 34, 20)


def reference() -> Volume:
    """Two ellipsoids a few voxels apart and a small third one, on a rotated, offset grid."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1) * np.asarray(SPACING)
    labels = np.zeros(SHAPE, np.uint8)
    for value, centre, radii in [(1, (7.0, 10.0, 12.0), (5.0, 7.0, 8.0)),
                                 (2, (17.0, 10.0, 12.0), (3.5, 6.0, 7.0)),
                                 (4, (12.0, 16.0, 5.0), (3.0, 2.5, 3.0))]:
        inside = (((idx - np.asarray(centre)) / np.asarray(radii)) ** 2).sum(-1) <= 1.0
        labels[inside & (labels == 0)] = value
    return Volume(labels, SPACING, (-20.0, 5.0, 40.0), ROTATED)


def dice(a, b, value):
    p, r = a == value, b == value
    return 2 * np.count_nonzero(p & r) / (np.count_nonzero(p) + np.count_nonzero(r))


def test_deterministic_for_seed_and_subject():
    ref = reference()
    s = PerturbSettings(displacement_mm=1.5, n_blobs=3, seed=7)
    a = perturb_labels(ref, s, "subject01").array
    b = perturb_labels(ref, s, "subject01").array
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, perturb_labels(ref, s, "subject02").array)
    other_seed = PerturbSettings(displacement_mm=1.5, n_blobs=3, seed=8)
    assert not np.array_equal(a, perturb_labels(ref, other_seed, "subject01").array)
    assert not np.array_equal(a, ref.array)


def test_subject_rng_is_stable():
    x = subject_rng(3, "abc").integers(0, 1 << 30, 5)
    np.testing.assert_array_equal(x, subject_rng(3, "abc").integers(0, 1 << 30, 5))
    assert not np.array_equal(x, subject_rng(3, "abd").integers(0, 1 << 30, 5))


def test_input_unchanged_and_geometry_and_values_kept():
    ref = reference()
    before = ref.array.copy()
    out = perturb_labels(ref, PerturbSettings(displacement_mm=2.0, n_blobs=4, offset_mm=0.7), "s1")
    np.testing.assert_array_equal(ref.array, before)
    assert out.array is not ref.array
    assert out.shape == ref.shape and out.array.dtype == ref.array.dtype
    assert out.spacing == ref.spacing and out.origin == ref.origin
    np.testing.assert_array_equal(out.direction, ref.direction)
    assert set(np.unique(out.array)) <= set(np.unique(ref.array))
    assert np.count_nonzero(out.array)


def test_no_perturbation_gives_an_identical_map():
    ref = reference()
    out = perturb_labels(ref, PerturbSettings(displacement_mm=0.0, n_blobs=0, offset_mm=0.0), "s1")
    np.testing.assert_array_equal(out.array, ref.array)
    assert out.array is not ref.array


def test_empty_map_stays_empty():
    ref = reference()
    empty = ref.with_array(np.zeros_like(ref.array))
    out = perturb_labels(empty, PerturbSettings(displacement_mm=2.0, n_blobs=2), "s1")
    assert not out.array.any()


def test_larger_displacement_lowers_dice_on_average():
    ref = reference()

    def mean_dice(displacement):
        s = PerturbSettings(displacement_mm=displacement, smoothness_mm=6.0, n_blobs=0, seed=1)
        values = [dice(perturb_labels(ref, s, f"sub{k}").array, ref.array, v) for k in range(4) for v in (1, 2)]
        return float(np.mean(values))

    small, large = mean_dice(0.4), mean_dice(2.5)
    assert large < small < 1.0


def test_blobs_change_the_map_only_near_the_boundary():
    ref = reference()
    radius = 2.0
    out = perturb_labels(ref, PerturbSettings(displacement_mm=0.0, n_blobs=3, blob_radius_mm=radius), "s1")
    changed = out.array != ref.array
    assert changed.any()
    # blobs are balls of the radius centred on boundary voxels (foreground with a background voxel among the 26)
    labels = ref.array
    edge = (labels != 0) & (ndimage.minimum_filter(labels, size=3) == 0)
    dist = ndimage.distance_transform_edt(~edge, sampling=SPACING)
    assert dist[changed].max() <= radius + 1e-9
    assert np.count_nonzero(changed) <= 3 * np.count_nonzero(
        np.linalg.norm(np.stack(np.meshgrid(*[np.arange(-5, 6) * sp for sp in SPACING], indexing="ij")), axis=0)
        <= radius)


@pytest.mark.parametrize("offset", [1.0, 2.0])
def test_positive_offset_grows_every_structure(offset):
    ref = reference()
    out = perturb_labels(ref, PerturbSettings(displacement_mm=0.0, n_blobs=0, offset_mm=offset), "s1").array
    for v in (1, 2, 4):
        assert np.count_nonzero(out == v) > np.count_nonzero(ref.array == v)
    # growth only: every reference foreground voxel keeps its label
    assert np.array_equal(out[ref.array != 0], ref.array[ref.array != 0])


@pytest.mark.parametrize("offset", [-1.0, -1.3])
def test_negative_offset_shrinks_every_structure(offset):
    ref = reference()
    out = perturb_labels(ref, PerturbSettings(displacement_mm=0.0, n_blobs=0, offset_mm=offset), "s1").array
    for v in (1, 2, 4):
        assert 0 < np.count_nonzero(out == v) < np.count_nonzero(ref.array == v)
    assert not (out[ref.array == 0]).any()  # nothing appears in the background


def test_offset_changes_volume_monotonically():
    ref = reference()

    def fg(offset):
        s = PerturbSettings(displacement_mm=0.0, n_blobs=0, offset_mm=offset)
        return np.count_nonzero(perturb_labels(ref, s, "s").array)

    volumes = [fg(o) for o in (-2.0, -1.0, 0.0, 1.0, 2.0)]
    assert volumes == sorted(volumes) and len(set(volumes)) == 5


def test_shrinking_away_every_structure_with_blobs_does_not_crash():
    # a structure smaller than the negative offset disappears; the blobs then have no boundary to sit on
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[8:11, 8:11, 8:11] = 1
    vol = Volume(labels, (1.0, 1.0, 1.0))
    out = perturb_labels(vol, PerturbSettings(displacement_mm=0.0, n_blobs=2, offset_mm=-3.0), "s1")
    assert set(np.unique(out.array)) <= {0, 1}
    assert out.shape == vol.shape


@pytest.mark.parametrize("kwargs", [{"displacement_mm": -0.1}, {"displacement_mm": float("nan")},
                                    {"displacement_mm": float("inf")}, {"smoothness_mm": 0.0},
                                    {"smoothness_mm": -2.0}, {"blob_radius_mm": -1.0}, {"n_blobs": -1}])
def test_settings_reject_bad_values(kwargs):
    with pytest.raises(ValueError):
        PerturbSettings(**kwargs)


def test_settings_accept_zero_displacement_and_blobs():
    s = PerturbSettings(displacement_mm=0.0, blob_radius_mm=0.0, n_blobs=0, offset_mm=-1.0)
    assert s.displacement_mm == 0.0 and s.n_blobs == 0

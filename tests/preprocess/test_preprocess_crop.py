import numpy as np
import pytest
from preprocess_phantoms import SPACING, empty_volume

from mskseg.preprocess import bounding_box, crop, margin_voxels


def test_margin_in_mm_per_axis_with_anisotropic_spacing():
    mask = empty_volume(shape=(40, 30, 20), dtype=np.uint8)
    mask.array[20, 15, 10] = 3
    mask.array[22, 16, 10] = 5  # another label, also enclosed
    box = bounding_box(mask, [3, 5], margin_mm=5.0)
    # ceil(5/0.7) = 8, ceil(5/1.3) = 4, ceil(5/2.1) = 3 voxels
    assert margin_voxels(SPACING, 5.0) == (8, 4, 3)
    assert box == ((12, 31), (11, 21), (7, 14))
    # at least the margin in mm on both sides of every axis, less than one voxel more
    for (start, stop), lo, hi, s in zip(box, (20, 15, 10), (22, 16, 10), SPACING, strict=True):
        for gap in ((lo - start) * s, (stop - 1 - hi) * s):
            assert 5.0 <= gap < 5.0 + s


def test_exact_multiple_margin_and_zero_margin():
    mask = empty_volume(shape=(40, 30, 20), dtype=np.uint8)
    mask.array[20, 15, 10] = 1
    assert margin_voxels((0.5, 2.0, 2.5), 10.0) == (20, 5, 4)
    assert bounding_box(mask, [1], 0.0) == ((20, 21), (15, 16), (10, 11))


def test_box_is_clipped_to_the_image():
    mask = empty_volume(shape=(10, 8, 6), dtype=np.uint8)
    mask.array[0, 7, 3] = 2
    assert bounding_box(mask, [2], 3.0) == ((0, 6), (4, 8), (1, 6))  # margins 5, 3, 2 voxels


def test_crop_keeps_world_positions_and_values():
    vol = empty_volume(shape=(12, 10, 8), dtype=np.int32)
    vol.array[...] = np.arange(vol.array.size).reshape(vol.shape)
    box = ((3, 9), (2, 10), (1, 4))
    out = crop(vol, box)
    assert out.shape == (6, 8, 3)
    assert out.spacing == vol.spacing
    np.testing.assert_array_equal(out.direction, vol.direction)
    np.testing.assert_allclose(out.origin, vol.index_to_world(np.array([3, 2, 1]))[0], atol=1e-12)
    idx_out = np.argwhere(np.ones(out.shape, bool))
    idx_in = idx_out + np.array([3, 2, 1])
    np.testing.assert_allclose(out.index_to_world(idx_out), vol.index_to_world(idx_in), atol=1e-9)
    np.testing.assert_array_equal(out.array[tuple(idx_out.T)], vol.array[tuple(idx_in.T)])
    # and back: world -> original index is the shifted index
    np.testing.assert_allclose(vol.world_to_index(out.index_to_world(idx_out)), idx_in, atol=1e-9)


def test_absent_label_raises_naming_labels():
    mask = empty_volume(shape=(5, 5, 5), dtype=np.uint8)
    mask.array[2, 2, 2] = 1
    with pytest.raises(ValueError, match=r"none of the labels \[4, 7\] is present.*\[0, 1\]"):
        bounding_box(mask, [4, 7], 5.0)
    with pytest.raises(ValueError, match="no labels"):
        bounding_box(mask, [], 5.0)
    with pytest.raises(ValueError, match="margin"):
        bounding_box(mask, [1], -1.0)


@pytest.mark.parametrize("box", [((0, 0), (0, 5), (0, 5)), ((0, 6), (0, 5), (0, 5)),
                                 ((-1, 3), (0, 5), (0, 5)), ((0, 5), (0, 5)), "abc"])
def test_bad_box_raises(box):
    with pytest.raises(ValueError, match="crop box"):
        crop(empty_volume(shape=(5, 5, 5)), box)

import numpy as np
import pytest
import SimpleITK as sitk
from preprocess_phantoms import DIRECTION, ORIGIN, SPACING

from mskseg.preprocess import orientation_code, reorient
from mskseg.volume import Volume

CODES = ["LPS", "RAS", "PIR", "SLA", "AIL", "IRP"]


@pytest.fixture
def numbered() -> Volume:
    """Each voxel holds its flat index, so values identify voxels."""
    shape = (5, 4, 3)
    return Volume(np.arange(np.prod(shape), dtype=np.int32).reshape(shape), SPACING, ORIGIN, DIRECTION)


def test_orientation_code_of_rotated_volume(numbered):
    assert orientation_code(numbered) == "PIR"


@pytest.mark.parametrize("code", CODES)
def test_reorient_keeps_world_position_and_value(numbered, code):
    out = reorient(numbered, code)
    assert out.array.dtype == numbered.array.dtype
    assert sorted(out.shape) == sorted(numbered.shape)
    # a few labelled voxels: find each value in the output, compare world positions
    for index in [(0, 0, 0), (4, 3, 2), (1, 2, 0), (3, 0, 1)]:
        value = numbered.array[index]
        (new_index,) = np.argwhere(out.array == value)
        before = numbered.index_to_world(np.array(index))
        after = out.index_to_world(new_index)
        np.testing.assert_allclose(after, before, atol=1e-9)
    # and all of them at once
    new_idx = np.argwhere(np.ones(out.shape, bool))
    values = out.array[tuple(new_idx.T)]
    old_idx = np.stack(np.unravel_index(values, numbered.shape), axis=1)
    np.testing.assert_allclose(out.index_to_world(new_idx), numbered.index_to_world(old_idx), atol=1e-9)


@pytest.mark.parametrize("code", CODES)
def test_reorient_direction_matches_code(numbered, code):
    out = reorient(numbered, code)
    assert orientation_code(out) == code
    expected = np.array(sitk.DICOMOrientImageFilter.GetDirectionCosinesFromOrientation(code)).reshape(3, 3)
    np.testing.assert_array_equal(out.direction, expected)
    # spacing is permuted with the axes, not changed
    assert sorted(out.spacing) == sorted(numbered.spacing)


@pytest.mark.parametrize("code", CODES)
def test_reorient_round_trip_is_exact(numbered, code):
    back = reorient(reorient(numbered, code), "PIR")
    np.testing.assert_array_equal(back.array, numbered.array)
    assert back.spacing == numbered.spacing
    assert back.origin == numbered.origin
    np.testing.assert_array_equal(back.direction, numbered.direction)


def test_reorient_keeps_bool_dtype_and_accepts_lower_case(numbered):
    mask = numbered.with_array(numbered.array % 3 == 0)
    out = reorient(mask, "ras")
    assert out.array.dtype == bool
    assert orientation_code(out) == "RAS"
    assert out.array.sum() == mask.array.sum()


@pytest.mark.parametrize("code", ["RRS", "LP", "LPSI", "XYZ", "", "L P", 5, None])
def test_reorient_rejects_invalid_code(numbered, code):
    with pytest.raises(ValueError, match=r"invalid orientation code .*L/R, P/A and S/I"):
        reorient(numbered, code)

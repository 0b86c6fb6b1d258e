import numpy as np
import pytest
from preprocess_phantoms import (
    empty_volume,
    grid_centre,
    label_centroid_mm,
    label_volume_mm3,
    world_coordinates,
)

from mskseg.preprocess import physical_extent, resample, resample_like, resampled_grid


@pytest.fixture
def sphere():
    """A 14 mm sphere (label 1) off the grid centre on the anisotropic, rotated grid."""
    ref = empty_volume()
    centre = grid_centre(ref) + np.array([0.3, -0.4, 0.7])
    inside = np.linalg.norm(world_coordinates(ref) - centre, axis=-1) <= 14.0
    return ref.with_array(inside.astype(np.uint8))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.4, 0.65, 0.7), (0.5, 2.0, 1.2), (2.5, 2.5, 2.5)])
@pytest.mark.parametrize("interpolator", ["nearest", "label_gaussian"])
def test_sphere_keeps_centroid_and_volume(sphere, spacing, interpolator):
    out = resample(sphere, spacing, interpolator)
    assert out.array.dtype == sphere.array.dtype
    np.testing.assert_array_equal(out.direction, sphere.direction)
    # centroid shift along each index axis, in voxels of the coarser of the two grids
    # (nearest downsampling by an even factor shifts by up to half a fine voxel)
    shift = sphere.direction.T @ (label_centroid_mm(out, 1) - label_centroid_mm(sphere, 1))
    assert np.all(np.abs(shift) / np.maximum(spacing, sphere.spacing) < 0.3)
    v0, v1 = label_volume_mm3(sphere, 1), label_volume_mm3(out, 1)
    assert abs(v1 - v0) / v0 < 0.04


def test_new_size_and_corner_aligned_origin():
    vol = empty_volume(shape=(10, 7, 5))  # spacing (0.7, 1.3, 2.1)
    out = resample(vol, (1.0, 0.5, 3.0), "linear")
    # round(10*0.7/1) = 7, round(7*1.3/0.5) = round(18.2) = 18, round(5*2.1/3) = round(3.5) = 4
    assert out.shape == (7, 18, 4)
    expected_origin = np.asarray(vol.origin) + vol.direction @ ((np.array([1.0, 0.5, 3.0]) - vol.spacing) / 2)
    np.testing.assert_allclose(out.origin, expected_origin, atol=1e-12)
    lo_in, _ = physical_extent(vol)
    lo_out, _ = physical_extent(out)
    np.testing.assert_allclose(lo_out, lo_in, atol=1e-9)


def test_tiny_volume_keeps_at_least_one_voxel():
    vol = empty_volume(shape=(1, 2, 1))
    assert resample(vol, (5.0, 5.0, 5.0), "nearest").shape == (1, 1, 1)


@pytest.mark.parametrize("spacing", [(1.4, 0.65, 0.7), (0.35, 2.6, 1.05)])
def test_physical_extent_preserved(spacing):
    vol = empty_volume()  # (64, 36, 22) x (0.7, 1.3, 2.1): these spacings divide exactly
    out = resample(vol, spacing, "linear")
    for a, b in zip(physical_extent(vol), physical_extent(out), strict=True):
        np.testing.assert_allclose(b, a, atol=1e-9)


def test_linear_ramp_is_reproduced_at_new_voxel_centres():
    vol = empty_volume()
    coeff, offset = np.array([0.5, -0.3, 0.2]), 10.0
    vol = vol.with_array((world_coordinates(vol) @ coeff + offset).astype(np.float32))
    out = resample(vol, (1.0, 0.9, 1.5), "linear")
    assert out.array.dtype == np.float32
    world = world_coordinates(out)
    # interior: new voxel centres inside the hull of the old voxel centres
    idx_old = vol.world_to_index(world.reshape(-1, 3)).reshape(*out.shape, 3)
    interior = np.all((idx_old >= 0) & (idx_old <= np.asarray(vol.shape) - 1), axis=-1)
    assert interior.mean() > 0.8
    np.testing.assert_allclose(out.array[interior], (world @ coeff + offset)[interior], atol=1e-4)


def test_bspline_gives_float32_and_follows_a_ramp():
    vol = empty_volume()
    coeff = np.array([0.5, -0.3, 0.2])
    vol = vol.with_array((world_coordinates(vol) @ coeff).astype(np.int16))
    out = resample(vol, (1.0, 1.0, 1.0), "bspline")
    assert out.array.dtype == np.float32
    centre = tuple(n // 2 for n in out.shape)
    expected = float(out.index_to_world(np.array(centre))[0] @ coeff)
    assert abs(out.array[centre] - expected) < 1.0  # the int16 ramp has steps of 1


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, bool])
def test_nearest_keeps_label_set_and_dtype(phantom, dtype):
    _, mask = phantom
    labels = mask.with_array((mask.array * 7).astype(dtype) if dtype is not bool else mask.array > 0)
    out = resample(labels, (1.1, 0.8, 1.7), "nearest")
    assert out.array.dtype == labels.array.dtype
    assert set(np.unique(out.array)) == set(np.unique(labels.array))


def test_resample_like_carries_reference_geometry_exactly(phantom):
    image, mask = phantom
    ref = resample(image, (1.0, 1.0, 1.0), "linear")
    out = resample_like(mask, ref, "nearest")
    assert out.shape == ref.shape
    assert out.spacing == ref.spacing and out.origin == ref.origin
    np.testing.assert_array_equal(out.direction, ref.direction)
    assert out.array.dtype == mask.array.dtype


def test_resample_like_default_value_outside():
    vol = empty_volume(shape=(4, 4, 4)).with_array(np.full((4, 4, 4), 5, np.int16))
    far = empty_volume(shape=(2, 2, 2))
    far = type(far)(far.array, far.spacing, (1000.0, 1000.0, 1000.0), far.direction)
    assert np.all(resample_like(vol, far, "nearest").array == 0)
    assert np.all(resample_like(vol, far, "linear", default_value=-1).array == -1)


@pytest.mark.parametrize("spacing", [(0, 1, 1), (-1.0, 1, 1), (np.nan, 1, 1), (np.inf, 1, 1),
                                     (1, 1), (1, 1, 1, 1), "abc", None, ("a", 1, 1)])
def test_bad_spacing_raises(spacing):
    with pytest.raises(ValueError, match="spacing must be three positive finite numbers"):
        resample(empty_volume(shape=(3, 3, 3)), spacing, "linear")
    with pytest.raises(ValueError, match="spacing must be three positive finite numbers"):
        resampled_grid(empty_volume(shape=(3, 3, 3)), spacing)


def test_unknown_interpolator_raises():
    with pytest.raises(ValueError, match=r"unknown interpolator 'cubic'.*'bspline'"):
        resample(empty_volume(shape=(3, 3, 3)), (1, 1, 1), "cubic")

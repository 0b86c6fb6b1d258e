import numpy as np
import pytest
from scipy import ndimage

from mskseg.nn.weightmap import (
    PAPER,
    PAPER_ERODED,
    WeightMapSettings,
    ball,
    distance_weight_map,
    erode_labels,
    weight_map_volume,
)
from mskseg.volume import Volume


def _brute(labels: np.ndarray, w0: float, sigma: float, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """d_c(x) by all-pairs distances to every voxel of class c."""
    idx = np.argwhere(np.ones_like(labels, dtype=bool)) * np.asarray(spacing)
    flat = labels.ravel()
    ds = []
    for v in [v for v in np.unique(flat) if v]:
        pts = idx[flat == v]
        d = np.sqrt(((idx[:, None, :] - pts[None, :, :]) ** 2).sum(-1)).min(axis=1)
        ds.append(d)
    ds = np.sort(np.stack(ds, 1), axis=1)
    s = ds[:, 0] + ds[:, 1]
    return (1 + w0 * np.exp(-s * s / (2 * sigma * sigma))).reshape(labels.shape)


def _two_blocks() -> np.ndarray:
    lab = np.zeros((6, 7, 12), np.uint8)
    lab[1:5, 1:6, 1:5] = 1
    lab[1:5, 1:6, 7:11] = 2  # a gap of two voxels between them
    return lab


def test_weight_map_matches_the_formula_by_brute_force_in_mm() -> None:
    lab = _two_blocks()
    lab[2, 2, 5] = 3  # a third class in the gap
    np.testing.assert_allclose(distance_weight_map(lab, PAPER), _brute(lab, 10.0, 5.0), rtol=1e-5)
    s = WeightMapSettings(w0=10.0, sigma_mm=2.0)
    sp = (0.5, 1.0, 2.0)
    np.testing.assert_allclose(distance_weight_map(lab, s, sp), _brute(lab, 10.0, 2.0, sp), rtol=1e-5)


def test_gap_voxels_weigh_most_and_far_voxels_one() -> None:
    lab = np.zeros((5, 5, 40), np.uint8)
    lab[1:4, 1:4, 2:8] = 1
    lab[1:4, 1:4, 10:16] = 2
    w = distance_weight_map(lab, WeightMapSettings(w0=10, sigma_mm=2))
    gap = w[2, 2, 8:10]
    assert gap.min() > 1 + 10 * np.exp(-(3 ** 2) / 8) - 1e-6  # d1 + d2 = 3 between the blocks
    assert w[2, 2, 39] == pytest.approx(1.0, abs=1e-6)
    assert w.max() == pytest.approx(w[2, 2, 8:10].max())


def test_fewer_than_two_classes_gives_ones_and_bad_settings_raise() -> None:
    lab = np.zeros((4, 4, 4), np.uint8)
    lab[1:3, 1:3, 1:3] = 1
    assert (distance_weight_map(lab) == 1).all()
    with pytest.raises(ValueError, match="sigma_mm"):
        WeightMapSettings(sigma_mm=0)
    with pytest.raises(ValueError, match="erode_radius_mm"):
        WeightMapSettings(erode_radius_mm=-1)


def test_erosion_by_a_ball_per_class_and_the_eroded_variant() -> None:
    lab = np.zeros((11, 11, 24), np.uint8)
    lab[:, :, :11] = 1
    lab[:, :, 13:] = 2
    eroded = erode_labels(lab, 3)
    expect1 = ndimage.binary_erosion(lab == 1, structure=ball(3), border_value=1)
    assert ((eroded == 1) == expect1).all() and not (eroded == 1)[:, :, 8:11].any()
    assert ball(1).sum() == 7 and ball(3).shape == (7, 7, 7)
    w_plain = distance_weight_map(lab, PAPER)
    w_eroded = distance_weight_map(lab, PAPER_ERODED)
    np.testing.assert_allclose(w_eroded, _brute(eroded, 20.0, 5.0), rtol=1e-5)
    # without erosion the gap outweighs the class voxels beside it; after erosion d1 + d2 is the
    # eroded gap's width all the way across, so the boundary voxels weigh as much as the gap
    assert w_plain[5, 5, 11] > w_plain[5, 5, 8] + 1
    assert w_eroded[5, 5, 11] == pytest.approx(w_eroded[5, 5, 8]) and w_eroded[5, 5, 8] > 2


def test_volume_wrapper_keeps_geometry_and_input() -> None:
    lab = _two_blocks()
    vol = Volume(lab.copy(), (0.7, 0.4, 0.4), (1.0, 2.0, 3.0))
    out = weight_map_volume(vol, WeightMapSettings(sigma_mm=3))
    assert out.geometry_mismatches(vol) == [] and out.array.dtype == np.float32
    assert (vol.array == lab).all()


def test_the_erosion_ball_is_in_mm_on_an_anisotropic_grid() -> None:
    b = ball(2.0, (1.0, 2.0, 0.5))
    assert b.shape == (5, 3, 9)  # 2 voxels, 1 voxel and 4 voxels either side
    brute = [(i, j, k) for i in range(-2, 3) for j in range(-1, 2) for k in range(-4, 5)
             if (i * 1.0) ** 2 + (j * 2.0) ** 2 + (k * 0.5) ** 2 <= 4.0]
    assert int(b.sum()) == len(brute) and b[2, 1, 4] and b[2, 1, 0] and not b[0, 0, 4]
    lab = np.ones((3, 3, 3), np.uint8)
    assert (erode_labels(lab, 0.4, (1.0, 1.0, 1.0)) == lab).all()  # a radius below one voxel erodes nothing

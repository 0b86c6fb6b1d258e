import numpy as np
import pytest
from preprocess_phantoms import empty_volume

from mskseg.preprocess import ct_quartile, ct_quartile_stats, normalise, normalise_with_stats, zscore_clip


@pytest.fixture
def data() -> np.ndarray:
    rng = np.random.default_rng(42)
    a = rng.gamma(2.0, 50.0, size=(9, 8, 7))
    a[0, 0, 0], a[1, 1, 1] = 5000.0, -300.0  # outliers to be clipped
    return a


def test_zscore_clip_matches_numpy(data):
    lo, hi = np.percentile(data, [0.5, 99.5])
    c = np.clip(data, lo, hi)
    expected = (c - c.mean()) / c.std()
    out = zscore_clip(data)
    assert out.dtype == np.float32 and out.shape == data.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert abs(float(out.mean())) < 1e-5 and abs(float(out.std()) - 1) < 1e-5


def test_zscore_clip_statistics_over_mask(data):
    mask = np.zeros(data.shape, bool)
    mask[2:7, 1:6, :] = True
    lo, hi = np.percentile(data[mask], [2.0, 98.0])
    inside = np.clip(data[mask], lo, hi)
    expected = (np.clip(data, lo, hi) - inside.mean()) / inside.std()
    np.testing.assert_allclose(zscore_clip(data, 2.0, 98.0, mask=mask), expected, rtol=1e-5, atol=1e-5)


def test_ct_quartile_matches_hand_computation():
    hu = np.array([-1000, -200, -5, 0, 10, 40, 60, 300, 700, 1200, 20, 35], float).reshape(3, 2, 2)
    clipped = np.where(hu < 0, 0.0, hu)
    q25, med, q75 = np.percentile(clipped, [25, 50, 75])
    expected = (clipped - med) / (q75 - q25)
    out, stats = ct_quartile_stats(hu)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_allclose(ct_quartile(hu), expected, rtol=1e-6)
    assert (stats["median"], stats["q25"], stats["q75"]) == (med, q25, q75)


@pytest.mark.parametrize("func", [zscore_clip, ct_quartile])
def test_constant_image_raises(func):
    with pytest.raises(ValueError, match=r"constant|interquartile range is 0"):
        func(np.full((4, 4, 4), 7.0))


def test_ct_mostly_air_raises_iqr_zero():
    hu = np.full((4, 4, 4), -1000.0)
    hu[0, 0, :] = 500.0
    with pytest.raises(ValueError, match="interquartile range is 0"):
        ct_quartile(hu)


@pytest.mark.parametrize("func", [zscore_clip, ct_quartile])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_raises(func, bad, data):
    data[3, 3, 3] = bad
    with pytest.raises(ValueError, match="non-finite"):
        func(data)


def test_zscore_bad_percentiles_and_empty_mask(data):
    with pytest.raises(ValueError, match="percentiles"):
        zscore_clip(data, 60, 40)
    with pytest.raises(ValueError, match="mask selects no voxels"):
        zscore_clip(data, mask=np.zeros(data.shape, bool))
    with pytest.raises(ValueError, match="mask shape"):
        zscore_clip(data, mask=np.ones((2, 2, 2), bool))


def test_normalise_volume_keeps_geometry(data):
    vol = empty_volume(shape=data.shape).with_array(data.astype(np.int16))
    for modality in ("mri", "ct"):
        out = normalise(vol, modality)
        assert out.array.dtype == np.float32
        assert out.spacing == vol.spacing and out.origin == vol.origin
        np.testing.assert_array_equal(out.direction, vol.direction)
    out, stats = normalise_with_stats(vol, "mri", lower_percentile=1.0, upper_percentile=99.0)
    assert stats["modality"] == "mri" and stats["lower_percentile"] == 1.0 and stats["sd"] > 0
    np.testing.assert_allclose(out.array, zscore_clip(vol.array, 1.0, 99.0))


def test_normalise_rejects_unknown_modality_and_params(data):
    vol = empty_volume(shape=data.shape).with_array(data)
    with pytest.raises(ValueError, match="unknown modality 'pet'"):
        normalise(vol, "pet")
    with pytest.raises(ValueError, match=r"unexpected parameters.*'ct'.*lower_percentile"):
        normalise(vol, "ct", lower_percentile=1.0)

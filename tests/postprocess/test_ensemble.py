"""Ensembling: summed class probabilities and their arg max, against known values and a voxel loop."""

from __future__ import annotations

import numpy as np
import pytest

from mskseg.postprocess import ensemble as ens
from mskseg.postprocess.ensemble import argmax_labels, ensemble_labels, summed_scores


def probs(values: list[list[float]]) -> np.ndarray:
    """Class probabilities (C, 1, 1, N) from a list of N voxels' class vectors."""
    return np.asarray(values, dtype=np.float32).T.reshape(len(values[0]), 1, 1, len(values))


def test_known_probabilities_give_the_known_argmax() -> None:
    p2d = probs([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.4, 0.35, 0.25]])
    p3d = probs([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4], [0.5, 0.2, 0.3]])
    # sums: [0.7 1.1 0.2] [0.4 0.7 0.9] [0.4 0.4 1.2] [0.9 0.55 0.55]
    assert ensemble_labels([p2d, p3d]).ravel().tolist() == [1, 2, 2, 0]
    assert ensemble_labels([p2d, p3d], label_values=[4, 9]).ravel().tolist() == [4, 9, 9, 0]
    assert ensemble_labels([p2d]).ravel().tolist() == [0, 1, 2, 0]
    # weights: the 3D network counts three times
    assert ensemble_labels([p2d, p3d], weights=[1, 3]).ravel().tolist() == [1, 2, 2, 0]
    assert ensemble_labels([p2d, p3d], weights=[1, 0]).ravel().tolist() == [0, 1, 2, 0]


def test_ties_go_to_the_lower_class_index() -> None:
    p = probs([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.25, 0.25, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    assert ensemble_labels([p, p]).ravel().tolist() == [0, 1, 2, 0]


def test_nan_means_not_covered() -> None:
    p2d = probs([[0.6, 0.4, 0.0], [0.6, 0.4, 0.0]])
    p3d = probs([[np.nan] * 3, [0.0, 0.1, 0.9]])  # the 3D network covers the second voxel only
    assert ensemble_labels([p2d, p3d]).ravel().tolist() == [0, 2]
    nothing = probs([[np.nan] * 3, [np.nan] * 3])
    assert ensemble_labels([nothing]).ravel().tolist() == [0, 0]  # no member covers: class 0
    scores = summed_scores([p2d, p3d])
    assert np.allclose(scores[:, 0, 0, 0], [0.6, 0.4, 0.0]) and not np.isnan(scores).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_random_volumes_against_a_voxel_loop(dtype: type) -> None:
    rng = np.random.default_rng(3)
    shape = (4, ens.SLAB * 2 + 3, 5, 6)  # slabs that do not divide the first axis
    a = rng.dirichlet(np.ones(4), size=shape[1:]).transpose(3, 0, 1, 2).astype(dtype)
    b = rng.dirichlet(np.ones(4), size=shape[1:]).transpose(3, 0, 1, 2).astype(dtype)
    b[:, :, :2] = np.nan
    w = (0.7, 1.3)
    got = ensemble_labels([a, b], weights=w, label_values=[10, 20, 300])
    assert got.dtype == np.uint16
    lut = [0, 10, 20, 300]
    for x, y, z in np.ndindex(*shape[1:]):
        s = [float(np.float32(w[0]) * np.float32(a[c, x, y, z])) + (0.0 if np.isnan(b[c, x, y, z])
             else float(np.float32(w[1]) * np.float32(b[c, x, y, z]))) for c in range(4)]
        assert got[x, y, z] == lut[int(np.argmax(s))]
    assert np.array_equal(argmax_labels(summed_scores([a, b], weights=w), [10, 20, 300]), got)


def test_bad_inputs() -> None:
    p = probs([[0.5, 0.5]])
    with pytest.raises(ValueError, match="at least one"):
        ensemble_labels([])
    with pytest.raises(ValueError, match="shape"):
        ensemble_labels([p, np.zeros((2, 1, 1, 2), np.float32)])
    with pytest.raises(ValueError, match="floating"):
        ensemble_labels([(p * 255).astype(np.uint8)])
    with pytest.raises(ValueError, match="weights"):
        ensemble_labels([p, p], weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="label values"):
        ensemble_labels([p], label_values=[1, 2])
    with pytest.raises(ValueError, match="C, X, Y, Z"):
        ensemble_labels([p[0]])

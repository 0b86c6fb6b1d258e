"""A phantom on an oblique, shifted grid: the same anatomy in the same world, moved by the shift."""

from __future__ import annotations

import numpy as np
import pytest

from mskseg.synthetic import generate_subject
from mskseg.synthetic.regrid import oblique_copy, rotation_about_diagonal
from mskseg.volume import Volume


@pytest.fixture(scope="module")
def subject():
    return generate_subject("knee", 0, seed=1, shape=(24, 40, 40), spacing=(4.0, 3.0, 3.0), n_landmarks=20)


def test_the_rotation_is_proper_and_turns_every_axis():
    r = rotation_about_diagonal(10.0)
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)
    assert np.allclose(r @ np.ones(3), np.ones(3))  # the axis stays
    assert np.all(np.abs(np.diag(r)) < 1.0)
    assert np.allclose(rotation_about_diagonal(0.0), np.eye(3))


def test_an_oblique_copy_keeps_the_anatomy_where_the_shift_puts_it(subject):
    shift = np.array([10.0, -5.0, 3.0])
    image, mask, landmarks = oblique_copy(subject.image, subject.mask, subject.landmarks, degrees=12.0, shift_mm=shift)
    assert image.shape == mask.shape == subject.image.shape and image.spacing == subject.image.spacing
    assert not np.allclose(image.direction, subject.image.direction)
    assert np.all(np.abs(image.direction) < 0.999)  # every direction cosine oblique
    # brute force: each labelled voxel of the copy, moved back by the shift, lands on that label in the original
    idx = np.argwhere(np.asarray(mask.array) > 0)
    world = mask.index_to_world(idx) - shift
    back = np.floor(subject.mask.world_to_index(world) + 0.5).astype(int)
    inside = np.all((back >= 0) & (back < np.asarray(subject.mask.shape)), axis=1)
    original = np.asarray(subject.mask.array)[tuple(back[inside].T)]
    copied = np.asarray(mask.array)[tuple(idx[inside].T)]
    assert np.mean(original == copied) > 0.97  # nearest neighbour on both sides: boundary voxels may differ
    assert np.allclose(landmarks[["x", "y", "z"]].to_numpy(), subject.landmarks[["x", "y", "z"]].to_numpy() + shift)


def test_no_rotation_and_no_shift_is_the_input(subject):
    image, mask, _ = oblique_copy(subject.image, subject.mask, degrees=0.0)
    assert np.array_equal(mask.array, subject.mask.array)
    assert np.allclose(image.array, subject.image.array, atol=1e-3) and image.geometry_mismatches(subject.image) == []


def test_bad_input_is_refused(subject):
    with pytest.raises(ValueError, match="one grid"):
        m = subject.mask
        oblique_copy(subject.image, Volume(np.asarray(m.array)[:-1], m.spacing, m.origin, m.direction), degrees=3.0)
    with pytest.raises(ValueError, match="three finite"):
        oblique_copy(subject.image, subject.mask, degrees=3.0, shift_mm=(1.0, 2.0))

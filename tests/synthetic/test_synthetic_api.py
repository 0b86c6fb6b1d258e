"""Public API, determinism, labels and geometry of synthetic subjects."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synth_testutils import subject

from mskseg.synthetic import (
    KINDS,
    LABELS,
    LANDMARK_STRUCTURES,
    SyntheticSubject,
    generate_subject,
)
from mskseg.synthetic.generate import build_model, subject_params
from mskseg.synthetic.render import centred_origin, render


def test_constants():
    assert KINDS == ("knee", "hip", "ankle")
    assert LABELS["knee"] == {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4}
    assert LABELS["hip"] == {"femur_left": 1, "femur_right": 2, "hip_left": 3, "hip_right": 4, "sacrum": 5}
    assert LABELS["ankle"] == {"tibia": 1, "talus": 2, "calcaneus": 3}
    assert tuple(LANDMARK_STRUCTURES["knee"]) == ("femur", "tibia")
    assert tuple(LANDMARK_STRUCTURES["hip"]) == ("femur_left", "femur_right", "hip_left", "hip_right", "sacrum")
    assert tuple(LANDMARK_STRUCTURES["ankle"]) == ("tibia", "talus", "calcaneus")


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic(kind):
    a = generate_subject(kind, 3, seed=7, n_landmarks=50)
    b = generate_subject(kind, 3, seed=7, n_landmarks=50)
    assert isinstance(a, SyntheticSubject)
    assert np.array_equal(a.image.array, b.image.array)
    assert np.array_equal(a.mask.array, b.mask.array)
    assert a.landmarks.equals(b.landmarks)
    assert a.params == b.params
    c = generate_subject(kind, 4, seed=7, n_landmarks=50)
    assert c.params["anatomy"] != a.params["anatomy"]
    assert not np.array_equal(c.mask.array, a.mask.array)
    d = generate_subject(kind, 3, seed=8, n_landmarks=50)
    assert d.params["anatomy"] != a.params["anatomy"]


@pytest.mark.parametrize("kind", KINDS)
def test_labels_geometry_and_types(kind):
    s = subject(kind, 0)
    shape = {"knee": (64, 112, 112), "hip": (96, 72, 96), "ankle": (56, 84, 84)}[kind]
    spacing = {"knee": (1.6, 1.25, 1.25), "hip": (3.0, 2.6, 2.6), "ankle": (1.8, 1.75, 1.75)}[kind]
    assert s.image.shape == shape and s.image.spacing == spacing
    assert s.image.array.dtype == np.float32 and s.mask.array.dtype == np.uint8
    assert s.mask.geometry_mismatches(s.image) == []
    assert s.poor_mask is None
    present = set(np.unique(s.mask.array).tolist())
    assert present == {0, *LABELS[kind].values()}
    for v in LABELS[kind].values():
        assert (s.mask.array == v).sum() > 20
    json.dumps(s.params)
    # the grid centre is the anatomy's centre (the joint / the midpoint of the hip centres / the talar dome's axis)
    centre = s.image.index_to_world((np.array(shape) - 1) / 2.0)[0]
    assert np.allclose(centre, s.params["anatomy"]["pose"]["translation_mm"], atol=1e-9)


def test_directions():
    knee = subject("knee", 0)
    expected = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)
    assert np.array_equal(knee.image.direction, expected)
    assert np.isclose(np.linalg.det(knee.image.direction), 1.0)
    assert np.array_equal(subject("hip", 0).image.direction, np.eye(3))
    # knee: i runs along +x (left), j along -z (down), k along +y (posterior)
    o = np.array(knee.image.origin)
    assert np.allclose(knee.image.index_to_world([0, 1, 0]) - o, [0, 0, -1.25])
    assert np.allclose(knee.image.index_to_world([0, 0, 1]) - o, [0, 1.25, 0])


def test_intensity_ranges():
    knee, hip = subject("knee", 1), subject("hip", 1)
    a = knee.image.array
    assert a.min() >= 0 and 600 < a.max() < 2000
    fluidish = np.percentile(a[knee.mask.array == 2], 50)
    bone = np.percentile(a[knee.mask.array == 1], 50)
    assert fluidish > 2 * bone  # cartilage bright, marrow dark
    h = hip.image.array
    assert -1100 < np.percentile(h, 1) < -800  # air
    assert np.median(h[hip.mask.array == 1]) > 150  # bone
    assert abs(np.median(h[(hip.mask.array == 0) & (h > -300)])) < 150  # soft tissue


def test_parameters_do_not_depend_on_grid():
    a = subject("hip", 2)
    b = generate_subject("hip", 2, shape=(40, 30, 40), spacing=(7.0, 6.0, 6.0), n_landmarks=10)
    assert a.params == b.params


def test_chunking_does_not_change_labels():
    params = subject_params("knee", 5)
    model = build_model(params)
    shape, spacing = (20, 40, 36), (2.0, 1.5, 1.5)
    direction = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)
    o = centred_origin(shape, spacing, direction)
    _, m1 = render(model, shape, spacing, o, direction, np.random.default_rng(0), max_voxels=1)
    _, m2 = render(model, shape, spacing, o, direction, np.random.default_rng(0))
    assert np.array_equal(m1.array, m2.array)


def test_bad_arguments():
    with pytest.raises(ValueError):
        generate_subject("elbow", 0)
    with pytest.raises(ValueError):
        generate_subject("knee", -1)


class _NoNoise:
    """A model wrapper without bias field and noise."""

    def __init__(self, model):
        self.model = model

    def evaluate(self, points, voxel_mm):
        return self.model.evaluate(points, voxel_mm)

    def bias(self, points):
        return None

    def add_noise(self, values, rng):
        return values


@pytest.mark.parametrize("kind,index", [("knee", 6), ("hip", 6), ("ankle", 6)])
def test_block_skipping_is_exact(kind, index):
    """Uniform blocks evaluated once give exactly the per-voxel labels and intensities."""
    model = _NoNoise(build_model(subject_params(kind, index)))
    shape, spacing = {"knee": ((40, 90, 90), (1.1, 0.9, 0.9)), "hip": ((70, 50, 70), (2.2, 2.0, 2.0)),
                      "ankle": ((36, 64, 64), (2.4, 2.1, 2.1))}[kind]
    direction = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float) if kind != "hip" else np.eye(3)
    o = centred_origin(shape, spacing, direction)
    i1, m1 = render(model, shape, spacing, o, direction, None, block=1)
    i3, m3 = render(model, shape, spacing, o, direction, None, block=3)
    assert np.array_equal(m1.array, m3.array)
    assert np.array_equal(i1.array, i3.array)

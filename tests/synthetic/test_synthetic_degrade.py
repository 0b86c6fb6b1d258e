"""Poor (degraded) labels: gaps closed, slices dropped, still close to the truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synth_testutils import contacts, dice, subject

from mskseg.synthetic import LABELS, generate_subject
from mskseg.synthetic.degrade import degrade_labels
from mskseg.synthetic.generate import DEGRADE, render_subject, subject_params

KNEE_FINE = ((120, 100, 120), (0.6, 0.5, 0.5))


@pytest.mark.parametrize("kind", ["knee", "hip", "ankle"])
def test_poor_labels_are_deterministic_and_close(kind):
    a = subject(kind, 0, poor_labels=True)
    b = generate_subject(kind, 0, poor_labels=True, n_landmarks=10)
    assert np.array_equal(a.poor_mask.array, b.poor_mask.array)
    assert a.poor_mask.geometry_mismatches(a.mask) == []
    assert a.poor_mask.array.dtype == np.uint8
    json.dumps(a.params)
    assert np.array_equal(a.mask.array, subject(kind, 0).mask.array)  # truth unchanged
    for index in (0, 1, 2):
        s = subject(kind, index, poor_labels=True)
        for name, v in LABELS[kind].items():
            assert dice(s.mask.array == v, s.poor_mask.array == v) > 0.7, (index, name)


@pytest.mark.parametrize("kind", ["knee", "hip", "ankle"])
def test_dropped_slices(kind):
    s = subject(kind, 1, poor_labels=True)
    dropped = s.params["degrade"]["dropped_slices"]
    assert 1 <= len(dropped) <= 4
    for k in dropped:
        assert s.mask.array[:, :, k].any() and not s.poor_mask.array[:, :, k].any()
    kept = [k for k in range(s.mask.shape[2]) if k not in dropped and s.mask.array[:, :, k].any()]
    assert all(s.poor_mask.array[:, :, k].any() for k in kept)


def test_poor_labels_close_the_hip_joint_gap():
    h = LABELS["hip"]
    for index in (0, 1):
        s = subject("hip", index, poor_labels=True)
        for f, b in (("femur_left", "hip_left"), ("femur_right", "hip_right")):
            assert contacts(s.mask.array, h[f], h[b]) == 0
            assert contacts(s.poor_mask.array, h[f], h[b]) > 20


def test_poor_labels_close_the_knee_joint_gap_on_a_fine_grid():
    params = subject_params("knee", 2)
    shape, spacing = KNEE_FINE
    _, mask = render_subject(params, shape, spacing)
    assert contacts(mask.array, 2, 4) == 0
    poor, info = degrade_labels(mask, np.random.default_rng(0), **DEGRADE["knee"])
    assert contacts(poor.array, 2, 4) > 100
    for v in (1, 2, 3, 4):
        assert dice(mask.array == v, poor.array == v) > 0.7
    assert info["gap_mm"] == DEGRADE["knee"]["gap_mm"]


def test_poor_labels_only_grow_into_background():
    s = subject("knee", 2, poor_labels=True)
    lab, poor = s.mask.array, s.poor_mask.array
    dropped = np.zeros(lab.shape, bool)
    dropped[:, :, s.params["degrade"]["dropped_slices"]] = True
    changed = (lab != poor) & ~dropped
    assert (lab[changed] == 0).all()  # labelled voxels keep their label
    assert ((poor > 0) & ~dropped).sum() > ((lab > 0) & ~dropped).sum()  # dilated

"""Ground-truth correspondences: landmarks on the surfaces, anatomical, grid-independent."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import ndimage
from synth_testutils import subject, surface

from mskseg.synthetic import LABELS, LANDMARK_STRUCTURES
from mskseg.synthetic.generate import build_model, subject_params
from mskseg.synthetic.landmarks import compute_landmarks, template

MODERATE = {"knee": ((96, 168, 168), (1.0, 0.8333, 0.8333)), "hip": ((144, 108, 144), (2.0, 1.7333, 1.7333)),
            "ankle": ((72, 108, 108), (1.4, 1.3611, 1.3611))}


def _points(df, structure):
    return df[df.structure == structure][["x", "y", "z"]].to_numpy()


@pytest.mark.parametrize("kind", ["knee", "hip", "ankle"])
def test_landmark_table(kind):
    for index in (0, 1):
        df = subject(kind, index).landmarks
        assert list(df.columns) == ["structure", "index", "x", "y", "z"]
        assert tuple(df.structure.unique()) == tuple(LANDMARK_STRUCTURES[kind])
        for st in LANDMARK_STRUCTURES[kind]:
            assert df[df.structure == st]["index"].tolist() == list(range(200))
        assert np.isfinite(df[["x", "y", "z"]].to_numpy()).all()


@pytest.mark.parametrize("kind", ["knee", "hip", "ankle"])
def test_landmarks_lie_on_mask_surface(kind):
    shape, spacing = MODERATE[kind]
    s = subject(kind, 2, shape=shape, spacing=spacing, n_landmarks=100)
    voxel = min(spacing)
    for st in LANDMARK_STRUCTURES[kind]:
        m = s.mask.array == LABELS[kind][st]
        d = ndimage.distance_transform_edt(~surface(m), sampling=spacing)
        idx = np.rint(s.mask.world_to_index(_points(s.landmarks, st))).astype(int)
        assert ((idx >= 0) & (idx < np.array(shape))).all(), st  # inside the field of view
        dist = d[tuple(idx.T)]
        assert dist.mean() < voxel, st
        assert np.percentile(dist, 95) < 2 * voxel, st


@pytest.mark.parametrize("kind", ["knee", "hip", "ankle"])
def test_landmarks_do_not_depend_on_grid(kind):
    a = subject(kind, 1)
    b = subject(kind, 1, shape=tuple(n // 2 for n in a.mask.shape),
                spacing=tuple(2 * x for x in a.mask.spacing), n_landmarks=200)
    xa, xb = a.landmarks[["x", "y", "z"]].to_numpy(), b.landmarks[["x", "y", "z"]].to_numpy()
    assert np.abs(xa - xb).max() < 1e-6


def test_fewer_landmarks_are_a_prefix():
    a = subject("knee", 0).landmarks
    b = compute_landmarks("knee", build_model(subject_params("knee", 0)), 50)
    for st in LANDMARK_STRUCTURES["knee"]:
        assert np.allclose(_points(a, st)[:50], _points(b, st), atol=1e-9)


def _blend(a, b, t):
    if isinstance(a, dict):
        return {k: _blend(a[k], b[k], t) for k in a}
    if isinstance(a, list):
        return [_blend(x, y, t) for x, y in zip(a, b, strict=True)]
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        return (1 - t) * a + t * b
    return a


@pytest.mark.parametrize("kind", ["knee", "hip", "ankle"])
def test_landmarks_move_smoothly_with_parameters(kind):
    pa, pb = subject_params(kind, 0), subject_params(kind, 1)
    n = 60

    def lm(t):
        p = copy.deepcopy(pa)
        p["anatomy"] = _blend(pa["anatomy"], pb["anatomy"], t)
        return compute_landmarks(kind, build_model(p), n)[["x", "y", "z"]].to_numpy()

    x0 = lm(0.0)
    ref = subject(kind, 0).landmarks.groupby("structure", sort=False).head(n)[["x", "y", "z"]].to_numpy()
    assert np.allclose(x0, ref, atol=1e-9)
    ts = np.linspace(0.0, 1.0, 11)
    xs = [lm(t) for t in ts]
    steps = np.array([np.linalg.norm(xs[i + 1] - xs[i], axis=1) for i in range(len(ts) - 1)])
    total = np.linalg.norm(xs[-1] - xs[0], axis=1)
    # no jumps: every step is small, and a tiny step moves points proportionally little
    assert steps.max() < 5.0
    small = np.linalg.norm(lm(0.5 + 1e-4) - xs[5], axis=1)
    assert small.max() < 0.02
    assert total.max() > 1.0  # the subjects do differ


@pytest.mark.parametrize("kind", ["knee", "hip", "ankle"])
def test_correspondence_is_anatomical(kind):
    """After removing each structure's centroid, a landmark stays nearest to its own index."""
    a, b = subject(kind, 0).landmarks, subject(kind, 3).landmarks
    for st in LANDMARK_STRUCTURES[kind]:
        pa, pb = _points(a, st), _points(b, st)
        pa, pb = pa - pa.mean(0), pb - pb.mean(0)
        d = np.linalg.norm(pa[:, None] - pb[None], axis=2)
        same = np.diag(d)
        rank = (d < same[:, None]).sum(axis=1)  # how many other landmarks are closer
        assert np.median(rank) <= 2, st


def test_template_is_spread_over_surface():
    for kind in ("knee", "hip", "ankle"):
        for names, u, orient in template(kind, 200).values():
            assert len(names) == 200 and u.shape == (200, 3) and orient.shape == (200,)
            assert len(set(names)) >= 2  # several primitives carry landmarks


def test_hip_left_and_right_landmarks_are_mirror_images():
    s = subject("hip", 4)
    model = build_model(s.params)
    for kind in ("femur", "hip"):
        left = model.pose.to_local(_points(s.landmarks, kind + "_left").T)
        right = model.pose.to_local(_points(s.landmarks, kind + "_right").T)
        right[0] *= -1
        d = np.linalg.norm(left - right, axis=0)
        assert np.median(d) < 3.0, kind

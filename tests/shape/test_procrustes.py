from __future__ import annotations

import json

import numpy as np
import pytest

from mskseg.shape.procrustes import SimilarityTransform, fit_similarity, generalized_procrustes
from tests.shape.shape_testutils import base_shape, random_pose, random_rotation


def centroid_size(points: np.ndarray) -> float:
    return float(np.sqrt(np.sum((points - points.mean(axis=0)) ** 2)))


# ----------------------------------------------------------------------------- transforms


def test_transform_apply_inverse_compose_and_dict_round_trip():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(50, 3)) * 20
    t1, t2 = random_pose(rng), random_pose(rng)
    rot = t1.rotation
    np.testing.assert_allclose(t1.apply(pts), t1.scale * (rot @ pts.T).T + t1.translation, atol=1e-12)
    np.testing.assert_allclose(t1.inverse().apply(t1.apply(pts)), pts, atol=1e-10)
    np.testing.assert_allclose(t2.compose(t1).apply(pts), t2.apply(t1.apply(pts)), atol=1e-10)
    back = SimilarityTransform.from_dict(json.loads(json.dumps(t1.as_dict())))
    assert back.scale == t1.scale
    np.testing.assert_array_equal(back.rotation, t1.rotation)
    np.testing.assert_array_equal(back.translation, t1.translation)
    np.testing.assert_array_equal(SimilarityTransform.identity().apply(pts), pts)


@pytest.mark.parametrize("kwargs", [
    {"scale": 0.0, "rotation": np.eye(3)},
    {"scale": -1.0, "rotation": np.eye(3)},
    {"scale": 1.0, "rotation": np.diag([1.0, 1.0, -1.0])},  # a reflection
    {"scale": 1.0, "rotation": 2 * np.eye(3)},
    {"scale": 1.0, "rotation": np.eye(3), "translation": np.zeros(2)},
])
def test_transform_rejects_invalid_parameters(kwargs):
    with pytest.raises(ValueError):
        SimilarityTransform(**kwargs)


def test_transform_is_read_only():
    t = SimilarityTransform.identity()
    with pytest.raises(ValueError):
        t.rotation[0, 0] = 2.0


# ----------------------------------------------------------------------------- pairwise fit


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_similarity_recovers_known_transform(seed):
    rng = np.random.default_rng(seed)
    source = base_shape(rng, 100) + rng.normal(0, 50, 3)
    truth = random_pose(rng)
    fitted = fit_similarity(source, truth.apply(source))
    assert fitted.scale == pytest.approx(truth.scale, abs=1e-9)
    np.testing.assert_allclose(fitted.rotation, truth.rotation, atol=1e-9)
    np.testing.assert_allclose(fitted.translation, truth.translation, atol=1e-9)


def test_fit_similarity_without_scale_is_rigid():
    rng = np.random.default_rng(3)
    source = base_shape(rng, 80)
    truth = random_pose(rng)
    assert truth.scale != pytest.approx(1.0)
    fitted = fit_similarity(source, truth.apply(source), scale=False)
    assert fitted.scale == 1.0
    np.testing.assert_allclose(fitted.rotation, truth.rotation, atol=1e-9)  # rotation does not depend on scale
    # a rigid target is matched exactly
    rigid = random_pose(rng, scale=False)
    np.testing.assert_allclose(fit_similarity(source, rigid.apply(source), scale=False).apply(source),
                               rigid.apply(source), atol=1e-9)


def test_fit_similarity_never_reflects():
    rng = np.random.default_rng(4)
    source = base_shape(rng, 60)
    mirrored = source * np.array([-1.0, 1.0, 1.0])
    fitted = fit_similarity(source, mirrored)
    assert np.linalg.det(fitted.rotation) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(fitted.rotation.T @ fitted.rotation, np.eye(3), atol=1e-12)
    # the unconstrained orthogonal fit would be the reflection itself, with zero residual
    assert np.linalg.norm(fitted.apply(source) - mirrored) > 1.0


def test_fit_similarity_errors():
    pts = np.random.default_rng(5).normal(size=(10, 3))
    with pytest.raises(ValueError, match="differ in shape"):
        fit_similarity(pts, pts[:9])
    with pytest.raises(ValueError, match="at least 3"):
        fit_similarity(pts[:2], pts[:2])
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        fit_similarity(pts[:, :2], pts[:, :2])
    bad = pts.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        fit_similarity(bad, pts)
    with pytest.raises(ValueError, match="degenerate"):
        fit_similarity(np.ones((10, 3)) * 7.0, pts)
    with pytest.raises(ValueError, match="degenerate"):
        fit_similarity(pts, np.zeros((10, 3)))


# ----------------------------------------------------------------------------- GPA


def test_gpa_of_transformed_copies_recovers_one_shape():
    rng = np.random.default_rng(6)
    shape = base_shape(rng, 120) + np.array([10.0, -4.0, 3.0])
    poses = [random_pose(rng) for _ in range(6)]
    shapes = np.stack([p.apply(shape) for p in poses])
    gpa = generalized_procrustes(shapes)
    assert gpa.converged
    for aligned in gpa.aligned:
        np.testing.assert_allclose(aligned, gpa.aligned[0], atol=1e-8)
    np.testing.assert_allclose(gpa.mean, gpa.aligned[0], atol=1e-8)
    for original, aligned, transform in zip(shapes, gpa.aligned, gpa.transforms, strict=True):
        np.testing.assert_allclose(transform.apply(aligned), original, atol=1e-8)
    # model frame: centred, orientation of the first shape, mean input size (mm)
    np.testing.assert_allclose(gpa.mean.mean(axis=0), 0.0, atol=1e-9)
    first = shapes[0] - shapes[0].mean(axis=0)
    target_size = np.mean([centroid_size(s) for s in shapes])
    assert centroid_size(gpa.mean) == pytest.approx(target_size, rel=1e-10)
    np.testing.assert_allclose(gpa.mean, first * target_size / centroid_size(first), atol=1e-8)


def test_gpa_model_frame_for_varied_shapes():
    rng = np.random.default_rng(7)
    base = base_shape(rng, 150)
    shapes = np.stack([random_pose(rng).apply(base + rng.normal(0, 2.0, base.shape)) for _ in range(8)])
    gpa = generalized_procrustes(shapes)
    assert gpa.converged and 1 <= gpa.n_iter < 100
    np.testing.assert_allclose(gpa.mean.mean(axis=0), 0.0, atol=1e-9)
    assert centroid_size(gpa.mean) == pytest.approx(np.mean([centroid_size(s) for s in shapes]), rel=1e-10)
    first = shapes[0] - shapes[0].mean(axis=0)
    np.testing.assert_allclose(fit_similarity(gpa.mean, first).rotation, np.eye(3), atol=1e-6)
    for original, aligned, transform in zip(shapes, gpa.aligned, gpa.transforms, strict=True):
        np.testing.assert_allclose(transform.apply(aligned), original, atol=1e-8)
        # each aligned shape is the best similarity fit onto the mean
        np.testing.assert_allclose(fit_similarity(aligned, gpa.mean).rotation, np.eye(3), atol=1e-9)
    # the mean of the aligned shapes agrees with the reported mean up to a size factor
    average = gpa.aligned.mean(axis=0)
    np.testing.assert_allclose(average / centroid_size(average), gpa.mean / centroid_size(gpa.mean), atol=1e-7)
    # the result depends on which shape is first, not on the order of the others
    order = [0, *rng.permutation(np.arange(1, 8))]
    again = generalized_procrustes(shapes[order])
    np.testing.assert_allclose(again.mean, gpa.mean, atol=1e-6)


def test_gpa_without_scale_keeps_sizes():
    rng = np.random.default_rng(8)
    base = base_shape(rng, 100)
    shapes = np.stack([random_pose(rng).apply(base + rng.normal(0, 1.0, base.shape)) for _ in range(5)])
    gpa = generalized_procrustes(shapes, scale=False)
    for original, aligned, transform in zip(shapes, gpa.aligned, gpa.transforms, strict=True):
        assert transform.scale == 1.0
        assert centroid_size(aligned) == pytest.approx(centroid_size(original), rel=1e-12)
        np.testing.assert_allclose(transform.apply(aligned), original, atol=1e-8)
    # with rigid alignment the mean is the plain average of the aligned shapes
    np.testing.assert_allclose(gpa.aligned.mean(axis=0), gpa.mean, atol=1e-6)


def test_gpa_single_shape_and_errors():
    rng = np.random.default_rng(9)
    shape = base_shape(rng, 30) + 5.0
    gpa = generalized_procrustes(shape[None])
    np.testing.assert_allclose(gpa.mean, shape - shape.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(gpa.transforms[0].apply(gpa.aligned[0]), shape, atol=1e-10)
    with pytest.raises(ValueError, match="degenerate"):
        generalized_procrustes(np.stack([shape, np.zeros_like(shape)]))
    with pytest.raises(ValueError, match="n_shapes"):
        generalized_procrustes(shape)
    with pytest.raises(ValueError):
        generalized_procrustes(np.stack([shape, shape]), tol=0.0)


def test_gpa_reports_non_convergence():
    rng = np.random.default_rng(10)
    base = base_shape(rng, 50)
    shapes = np.stack([random_pose(rng).apply(base + rng.normal(0, 5.0, base.shape)) for _ in range(5)])
    gpa = generalized_procrustes(shapes, max_iter=1, tol=1e-15)
    assert gpa.n_iter == 1 and not gpa.converged


def test_random_rotation_helper_is_proper():
    r = random_rotation(np.random.default_rng(11))
    assert np.linalg.det(r) == pytest.approx(1.0)

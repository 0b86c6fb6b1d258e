from __future__ import annotations

import numpy as np
import pytest

from mskseg.shape.pca import fit_shape_model
from mskseg.shape.procrustes import SimilarityTransform, fit_similarity
from tests.shape.shape_testutils import modal_shapes, random_pose, stretched_shapes

SDS = np.array([10.0, 5.0, 2.0])


def ids(n: int) -> list[str]:
    return [f"s{i:03d}" for i in range(n)]


@pytest.fixture(scope="module")
def unposed():
    shapes, mean, modes, b, _ = modal_shapes(np.random.default_rng(20), n=80, n_points=150, pose="none")
    return shapes, mean, modes, b


@pytest.fixture(scope="module")
def posed():
    shapes, _mean, _modes, _b, _poses = modal_shapes(np.random.default_rng(21), n=40, n_points=150, pose="similarity")
    return shapes, fit_shape_model(shapes, ids(len(shapes)))


@pytest.mark.parametrize("scale", [True, False])
def test_pca_recovers_known_modes_and_variances(unposed, scale):
    shapes, mean, modes, b = unposed
    model = fit_shape_model(shapes, ids(len(shapes)), scale=scale)
    assert model.n_points == mean.shape[0] and model.n_subjects == 80
    # the generator frame is the model frame up to the first shape's small change of pose
    np.testing.assert_allclose(model.mean, mean, atol=0.5)
    np.testing.assert_allclose(model.variances[:3], SDS**2, rtol=0.005)  # sample variances (n - 1)
    np.testing.assert_allclose(model.sd[:3], SDS, rtol=0.0025)
    cosines = np.abs(np.sum(model.modes[:3] * modes, axis=(1, 2)))
    assert np.all(cosines > 0.99), cosines
    assert model.explained_ratio[:3].sum() > 0.999
    assert np.all(np.diff(model.variances) <= 0)
    flat = model.modes.reshape(model.n_modes, -1)
    np.testing.assert_allclose(flat @ flat.T, np.eye(model.n_modes), atol=1e-10)
    # training coefficients: centred, with the model's variances, uncorrelated
    np.testing.assert_allclose(model.coefficients.mean(axis=0), 0.0, atol=1e-8)
    np.testing.assert_allclose(np.cov(model.coefficients.T).reshape(model.n_modes, model.n_modes),
                               np.diag(model.variances), atol=1e-8)
    # and match the generating coefficients up to sign
    corr = np.abs(np.corrcoef(model.coefficients[:, :3].T, b.T)[:3, 3:]).diagonal()
    assert np.all(corr > 0.99), corr


def test_rigid_model_variances_do_not_depend_on_pose():
    shapes, *_ = modal_shapes(np.random.default_rng(22), n=40, n_points=150, pose="none")
    posed = np.stack([random_pose(np.random.default_rng(i), scale=False).apply(s) for i, s in enumerate(shapes)])
    plain = fit_shape_model(shapes, ids(40), scale=False)
    moved = fit_shape_model(posed, ids(40), scale=False)
    assert moved.n_modes == plain.n_modes == 3
    np.testing.assert_allclose(moved.variances, plain.variances, rtol=1e-8)
    assert moved.total_variance == pytest.approx(plain.total_variance, rel=1e-8)


def test_training_shapes_are_reproduced_with_all_modes(posed):
    shapes, model = posed
    assert model.scale
    for i in range(0, len(shapes), 7):
        np.testing.assert_allclose(model.instance(model.coefficients[i], model.transforms[i]), shapes[i],
                                   atol=1e-8)
        error = np.linalg.norm(model.reconstruct(shapes[i]) - shapes[i], axis=1).max()
        assert error < 1e-6
    # fewer modes than needed cannot reproduce them
    assert np.linalg.norm(model.reconstruct(shapes[1], 2) - shapes[1], axis=1).mean() > 1e-3


def test_instance_of_zero_coefficients_is_the_mean(posed):
    _, model = posed
    np.testing.assert_array_equal(model.instance(np.zeros(model.n_modes)), model.mean)
    np.testing.assert_array_equal(model.instance([]), model.mean)
    transform = SimilarityTransform(2.0, np.eye(3), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(model.instance([0.0], transform), 2.0 * model.mean + [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="coefficients"):
        model.instance(np.zeros(model.n_modes + 1))


def test_project_and_reconstruct_round_trip(posed):
    _, model = posed
    pose = random_pose(np.random.default_rng(23))
    # the posed mean projects to zero coefficients and to its pose
    b, transform = model.project(pose.apply(model.mean))
    np.testing.assert_allclose(b, 0.0, atol=1e-9)
    assert transform.scale == pytest.approx(pose.scale, rel=1e-10)
    np.testing.assert_allclose(transform.rotation, pose.rotation, atol=1e-10)
    np.testing.assert_allclose(transform.translation, pose.translation, atol=1e-8)
    # a posed instance of the model is recovered, coefficients and pose
    coefficients = np.array([1.0, -0.5, 0.8]) * model.sd[:3]
    shape = model.instance(coefficients, pose)
    b, transform = model.project(shape, n_modes=3)
    assert b.shape == (3,)
    np.testing.assert_allclose(b, coefficients, rtol=0.02, atol=0.02)
    error_0, error_3, error_all = (np.linalg.norm(model.reconstruct(shape, m) - shape, axis=1).mean()
                                   for m in (0, 3, None))
    assert error_0 > 1.0
    assert error_3 < 0.05 * error_0
    # least-squares alignment onto the mean rescales the instance slightly; the small
    # fourth mode (from Procrustes size normalisation) captures that exactly
    assert model.n_modes == 4
    assert error_all < 1e-6
    with pytest.raises(ValueError, match="n_modes"):
        model.project(shape, n_modes=model.n_modes + 1)
    with pytest.raises(ValueError, match="points"):
        model.project(shape[:-1])


def test_held_out_shape_is_reconstructed_better_with_more_modes():
    shapes, *_ = modal_shapes(np.random.default_rng(24), n=41, n_points=150, pose="similarity")
    model = fit_shape_model(shapes[:40], ids(40))
    assert model.n_modes == 4  # the three modes and a small one from size normalisation
    errors = [np.linalg.norm(model.reconstruct(shapes[40], m) - shapes[40], axis=1).mean() for m in range(5)]
    assert errors[0] > 0.3
    assert np.all(np.diff(errors) < 0)
    assert errors[3] < 0.05 * errors[0]
    assert errors[4] < 1e-5  # the held-out shape lies in the span of the training shapes


def test_exact_linear_family_has_exact_modes():
    shapes = stretched_shapes(np.random.default_rng(25), n=10, scale=False)
    model = fit_shape_model(shapes, ids(10), scale=False)
    assert model.n_modes == 2
    assert model.explained_ratio.sum() == pytest.approx(1.0, abs=1e-12)
    scaled = fit_shape_model(stretched_shapes(np.random.default_rng(25), n=10, scale=True), ids(10))
    assert scaled.n_modes == 3  # scaling turns the two stretches into three independent ones


def test_mode_selection():
    shapes, *_ = modal_shapes(np.random.default_rng(26), n=30, n_points=100, pose="none")
    full = fit_shape_model(shapes, ids(30), scale=False)
    assert full.n_modes == 3
    ratio = full.explained_ratio  # about 100 : 25 : 4 of 129
    assert fit_shape_model(shapes, ids(30), scale=False, n_modes=2).n_modes == 2
    assert fit_shape_model(shapes, ids(30), scale=False, n_modes=10).n_modes == 3
    assert fit_shape_model(shapes, ids(30), scale=False, variance_kept=ratio[0] - 1e-6).n_modes == 1
    assert fit_shape_model(shapes, ids(30), scale=False, variance_kept=ratio[0] + 1e-6).n_modes == 2
    assert fit_shape_model(shapes, ids(30), scale=False, variance_kept=ratio[:2].sum()).n_modes == 2
    assert fit_shape_model(shapes, ids(30), scale=False, variance_kept=1.0).n_modes == 3
    assert fit_shape_model(shapes, ids(30), scale=False, variance_kept=0.99, n_modes=1).n_modes == 1
    reduced = fit_shape_model(shapes, ids(30), scale=False, n_modes=2)
    assert reduced.total_variance == pytest.approx(full.total_variance)
    np.testing.assert_allclose(reduced.modes, full.modes[:2])
    for bad in ({"n_modes": 0}, {"variance_kept": 0.0}, {"variance_kept": 1.5}):
        with pytest.raises(ValueError):
            fit_shape_model(shapes, ids(30), **bad)


def test_at_most_n_minus_1_modes():
    rng = np.random.default_rng(27)
    base, *_ = modal_shapes(rng, n=2, n_points=100, sds=(1.0,))
    shapes = np.stack([random_pose(rng).apply(base[0] + rng.normal(0.0, 1.0, base[0].shape)) for _ in range(3)])
    model = fit_shape_model(shapes, ["a", "b", "c"])
    assert model.n_modes == 2
    assert model.cumulative_ratio[-1] == pytest.approx(1.0)


def test_identical_shapes_give_a_model_without_modes():
    shapes, *_ = modal_shapes(np.random.default_rng(28), n=2, n_points=100, sds=(1.0,), pose="none")
    rng = np.random.default_rng(29)
    copies = np.stack([random_pose(rng).apply(shapes[0]) for _ in range(4)])
    model = fit_shape_model(copies, ids(4))
    assert model.n_modes == 0
    np.testing.assert_allclose(model.reconstruct(copies[2]), copies[2], atol=1e-8)


def test_fit_errors():
    shapes, *_ = modal_shapes(np.random.default_rng(30), n=4, pose="none")
    with pytest.raises(ValueError, match="at least 2 shapes"):
        fit_shape_model(shapes[:1], ["a"])
    with pytest.raises(ValueError, match="3 subject ids for 4 shapes"):
        fit_shape_model(shapes, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"duplicate subject ids: \['b'\]"):
        fit_shape_model(shapes, ["a", "b", "c", "b"])


def test_fit_is_deterministic_and_records_metadata():
    shapes, *_ = modal_shapes(np.random.default_rng(31), n=20, pose="similarity")
    a = fit_shape_model(shapes, ids(20), metadata={"bone": "femur", "fold": 1})
    b = fit_shape_model(shapes.copy(), ids(20), metadata={"bone": "femur", "fold": 1})
    np.testing.assert_array_equal(a.modes, b.modes)
    np.testing.assert_array_equal(a.coefficients, b.coefficients)
    assert a.metadata == {"bone": "femur", "fold": 1}
    assert a.subjects == ids(20)
    for k in range(a.n_modes):  # sign convention: the largest component of each mode is positive
        flat = a.modes[k].ravel()
        assert flat[np.argmax(np.abs(flat))] > 0
    assert np.allclose(fit_similarity(a.mean, a.mean).rotation, np.eye(3))

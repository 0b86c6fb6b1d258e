from __future__ import annotations

import numpy as np
import pytest

from mskseg.shape.pca import fit_shape_model
from mskseg.shape.procrustes import fit_similarity
from mskseg.shape.quality import (
    QUALITY_COLUMNS,
    compactness,
    generalisation,
    quality_table,
    specificity,
)
from tests.shape.shape_testutils import modal_shapes, random_pose, stretched_shapes


def ids(n: int) -> list[str]:
    return [f"s{i}" for i in range(n)]


@pytest.fixture(scope="module")
def family():
    """12 shapes of an exact two-mode family under rigid poses, and their rigid model."""
    shapes = stretched_shapes(np.random.default_rng(50), n=12, scale=False)
    return shapes, fit_shape_model(shapes, ids(12), scale=False)


@pytest.fixture(scope="module")
def modal():
    shapes, *_ = modal_shapes(np.random.default_rng(51), n=15, n_points=150, pose="similarity")
    return shapes, fit_shape_model(shapes, ids(15))


def test_compactness(modal):
    _, model = modal
    values = compactness(model)
    assert values.shape == (model.n_modes,)
    assert np.all(np.diff(values) >= 0)
    assert values[0] == pytest.approx(model.variances[0] / model.total_variance)
    assert values[-1] == pytest.approx(1.0, abs=1e-12)
    assert values[0] < 0.99


def test_generalisation_of_an_exact_two_mode_family(family):
    shapes, _ = family
    table = generalisation(shapes, scale=False)
    assert list(table.columns) == ["n_modes", "generalisation_mm", "generalisation_sd_mm"]
    assert table["n_modes"].tolist() == list(range(1, 11))  # n - 2 modes
    errors = table.set_index("n_modes")["generalisation_mm"]
    assert errors[2] < 1e-6
    assert errors[1] > 0.05
    assert table["generalisation_sd_mm"].iloc[0] > 0
    capped = generalisation(shapes, scale=False, max_modes=2)
    assert capped["n_modes"].tolist() == [1, 2]
    np.testing.assert_allclose(capped["generalisation_mm"], table["generalisation_mm"][:2])


def test_generalisation_decreases_with_modes(modal):
    shapes, _ = modal
    errors = generalisation(shapes, max_modes=3)["generalisation_mm"].to_numpy()
    assert errors[0] > errors[1] > errors[2] > 0


def test_generalisation_needs_three_shapes(family):
    shapes, _ = family
    with pytest.raises(ValueError, match="at least 3 shapes"):
        generalisation(shapes[:2])
    with pytest.raises(ValueError, match="max_modes"):
        generalisation(shapes, max_modes=0)


def test_specificity_is_seeded_and_pose_invariant(modal):
    shapes, model = modal
    first = specificity(model, shapes, n_samples=50, seed=3)
    assert list(first.columns) == ["n_modes", "specificity_mm", "specificity_sd_mm"]
    assert first["n_modes"].tolist() == list(range(1, model.n_modes + 1))
    assert np.all(np.isfinite(first.to_numpy())) and np.all(first["specificity_mm"] > 0)
    again = specificity(model, shapes, n_samples=50, seed=3)
    np.testing.assert_array_equal(first.to_numpy(), again.to_numpy())
    other = specificity(model, shapes, n_samples=50, seed=4)
    assert not np.allclose(first["specificity_mm"], other["specificity_mm"])
    rng = np.random.default_rng(5)
    moved = np.stack([random_pose(rng).apply(s) for s in shapes])
    np.testing.assert_allclose(specificity(model, moved, n_samples=50, seed=3).to_numpy(), first.to_numpy(),
                               atol=1e-9)
    assert len(specificity(model, shapes, n_samples=5, max_modes=2)) == 2


def test_specificity_follows_its_definition(modal):
    shapes, model = modal
    z = np.random.default_rng(7).standard_normal((1, model.n_modes))
    sample = model.instance(z[0, :2] * model.sd[:2])
    aligned = [fit_similarity(s, model.mean, scale=True).apply(s) for s in shapes]
    nearest = min(np.linalg.norm(sample - a, axis=1).mean() for a in aligned)
    table = specificity(model, shapes, n_samples=1, seed=7)
    assert table["specificity_mm"].iloc[1] == pytest.approx(nearest, rel=1e-10)
    assert table["specificity_sd_mm"].iloc[1] == 0.0


def test_specificity_is_worse_against_other_shapes(modal):
    shapes, model = modal
    others, *_ = modal_shapes(np.random.default_rng(52), n=15, n_points=150, pose="similarity")
    own = specificity(model, shapes, n_samples=30)["specificity_mm"]
    foreign = specificity(model, others, n_samples=30)["specificity_mm"]
    assert np.all(foreign > 2 * own)


def test_quality_table(modal):
    shapes, model = modal
    table = quality_table(model, shapes, n_samples=20, seed=1)
    assert list(table.columns) == list(QUALITY_COLUMNS)
    assert table["n_modes"].tolist() == list(range(1, model.n_modes + 1))
    np.testing.assert_allclose(table["compactness"], compactness(model))
    spec = specificity(model, shapes, n_samples=20, seed=1)
    np.testing.assert_allclose(table["specificity_mm"], spec["specificity_mm"])
    gen = generalisation(shapes, max_modes=model.n_modes)
    np.testing.assert_allclose(table["generalisation_mm"].iloc[: len(gen)], gen["generalisation_mm"])


def test_quality_table_marks_undefined_generalisation():
    shapes, *_ = modal_shapes(np.random.default_rng(53), n=4, n_points=60, pose="similarity")
    model = fit_shape_model(shapes, ids(4))
    assert model.n_modes == 3
    table = quality_table(model, shapes, n_samples=10)
    assert table["generalisation_mm"].notna().tolist() == [True, True, False]
    assert table["specificity_mm"].notna().all()
    pair = fit_shape_model(shapes[:2], ids(2))
    small = quality_table(pair, shapes[:2], n_samples=10)
    assert len(small) == 1 and small["generalisation_mm"].isna().all()
    assert small["compactness"].iloc[0] == pytest.approx(1.0)


def test_quality_of_a_model_without_modes():
    shapes, *_ = modal_shapes(np.random.default_rng(54), n=2, n_points=60, sds=(1.0,), pose="none")
    rng = np.random.default_rng(55)
    copies = np.stack([random_pose(rng).apply(shapes[0]) for _ in range(4)])
    model = fit_shape_model(copies, ids(4))
    assert model.n_modes == 0
    table = quality_table(model, copies, n_samples=5)
    assert table.empty and list(table.columns) == list(QUALITY_COLUMNS)
    assert compactness(model).shape == (0,)

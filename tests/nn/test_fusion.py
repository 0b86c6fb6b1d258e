"""Three-plane fusion: weighted sums, the weight search (against brute force) and the weights file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")

from mskseg.nn.fusion import (
    FusionFit,
    fit_fusion_streamed,
    fit_fusion_weights,
    fuse,
    read_fusion_weights,
    simplex_grid,
    write_fusion_weights,
)
from mskseg.nn.inference import to_labels


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)


def _target(shape, k: int, rng: np.random.Generator) -> np.ndarray:
    """Blocky class map: a few boxes of foreground classes on background."""
    t = np.zeros(shape, np.int64)
    for c in range(1, k):
        lo = rng.integers(0, np.array(shape) // 2)
        hi = lo + rng.integers(2, np.array(shape) // 2 + 2)
        t[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = c
    return t


def test_fuse_is_the_normalised_weighted_sum():
    rng = np.random.default_rng(0)
    a, b, c = (_softmax(rng.normal(size=(3, 4, 5, 6))) for _ in range(3))
    out = fuse([a, b, c], [2.0, 1.0, 1.0])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 0.5 * a + 0.25 * b + 0.25 * c, atol=1e-6)
    np.testing.assert_allclose(out.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(fuse([a, b], [0.0, 3.0]), b)


@pytest.mark.parametrize("probs, weights, match", [
    ([np.zeros((2, 3, 3, 3)), np.zeros((2, 3, 3, 4))], [1, 1], "shape"),
    ([np.zeros((2, 3, 3, 3))] * 2, [1, 1, 1], "one weight per view"),
    ([np.zeros((2, 3, 3, 3))] * 2, [1, -1], "non-negative"),
    ([np.zeros((2, 3, 3, 3))] * 2, [0, 0], "not all zero"),
    ([], [], "at least one"),
])
def test_fuse_rejects(probs, weights, match):
    with pytest.raises(ValueError, match=match):
        fuse(probs, weights)


def test_simplex_grid_sizes():
    g = simplex_grid(3, 0.5)
    assert g.shape == (6, 3)
    assert {tuple(r) for r in g} == {(0, 0, 1), (0, 0.5, 0.5), (0, 1, 0), (0.5, 0, 0.5), (0.5, 0.5, 0), (1, 0, 0)}
    g = simplex_grid(3, 0.05)
    assert g.shape == (math.comb(22, 2), 3) == (231, 3)
    np.testing.assert_allclose(g.sum(axis=1), 1.0)
    assert len({tuple(np.round(r * 20).astype(int)) for r in g}) == 231
    assert simplex_grid(1, 0.25).tolist() == [[1.0]]
    for bad in (0.3, 0.0, 1.5):
        with pytest.raises(ValueError, match="step"):
            simplex_grid(3, bad)


def test_fit_recovers_the_perfect_view():
    rng = np.random.default_rng(1)
    shape, k = (10, 12, 8), 3
    probs, targets = [], []
    for _ in range(2):
        t = _target(shape, k, rng)
        perfect = _softmax(3.0 * np.eye(k)[t].transpose(3, 0, 1, 2))  # right class 0.82, others 0.09
        noise = [_softmax(2.0 * rng.normal(size=(k, *shape))) for _ in range(2)]
        probs.append([noise[0], perfect, noise[1]])
        targets.append(t)
    fit = fit_fusion_weights(probs, targets, step=0.05)
    assert fit.dice == 1.0
    assert fit.weights[1] == max(fit.weights) and fit.weights[1] > 0.5
    assert math.isclose(sum(fit.weights), 1.0)
    assert len(fit.grid) == 231 and list(fit.grid.columns) == ["w0", "w1", "w2", "dice"]
    assert fit.grid["dice"].max() == fit.dice
    assert fit.grid.loc[(fit.grid["w1"] == 1.0)].iloc[0]["dice"] == 1.0
    assert fit.grid.loc[(fit.grid["w0"] == 1.0)].iloc[0]["dice"] < 0.6


def test_ties_go_to_equal_weights():
    rng = np.random.default_rng(2)
    p = _softmax(rng.normal(size=(3, 5, 6, 7)))
    t = _target((5, 6, 7), 3, rng)
    assert fit_fusion_weights([[p, p]], [t], step=0.5).weights == (0.5, 0.5)
    fit = fit_fusion_weights([[p, p, p]], [t], step=0.25)
    assert fit.weights == (0.25, 0.25, 0.5)  # the first of the three closest to (1/3, 1/3, 1/3)


def _brute_force(probs, targets, grid) -> np.ndarray:
    """Mean Dice per weight vector from the fused full volumes (fuse + to_labels)."""
    out = []
    for w in grid:
        case_dice = []
        for case, t in zip(probs, targets, strict=True):
            pred = to_labels(fuse(case, w))
            dice = [2 * np.sum((pred == c) & (t == c)) / (np.sum(pred == c) + np.sum(t == c))
                    for c in range(1, case[0].shape[0]) if np.any(pred == c) or np.any(t == c)]
            case_dice.append(np.mean(dice) if dice else 1.0)
        out.append(np.mean(case_dice))
    return np.array(out)


def test_fast_path_equals_brute_force():
    rng = np.random.default_rng(3)
    shape, k = (6, 7, 8), 4
    probs, targets = [], []
    for _ in range(3):
        t = _target(shape, k, rng)
        base = 2.0 * np.eye(k)[t].transpose(3, 0, 1, 2)
        probs.append([_softmax(base + rng.normal(scale=s, size=(k, *shape))) for s in (0.8, 1.5, 2.5)])
        targets.append(t)
    probs[1][2] = probs[1][2].astype(np.float64)  # any float dtype is accepted
    targets[2] = targets[2].astype(np.uint8)
    fit = fit_fusion_weights(probs, targets, step=0.1)
    brute = _brute_force(probs, targets, fit.grid[["w0", "w1", "w2"]].to_numpy())
    np.testing.assert_allclose(fit.grid["dice"].to_numpy(), brute, rtol=0, atol=1e-12)
    assert fit.dice == pytest.approx(brute.max(), abs=1e-12)
    assert 0.3 < fit.dice < 1.0 and len(set(np.round(brute, 9))) > 5  # a non-trivial landscape


def test_streamed_fit_equals_the_fit_on_lists():
    rng = np.random.default_rng(3)
    shape, k = (8, 9, 6), 3
    probs = [[_softmax(2.0 * rng.normal(size=(k, *shape))) for _ in range(3)] for _ in range(3)]
    targets = [_target(shape, k, rng) for _ in range(3)]
    made = []

    def one_at_a_time():  # as the fusion rule predicts its subjects
        for case_probs, target in zip(probs, targets, strict=True):
            made.append(1)
            yield case_probs, target

    streamed = fit_fusion_streamed(one_at_a_time(), 3, step=0.1)
    listed = fit_fusion_weights(probs, targets, step=0.1)
    assert streamed.weights == listed.weights and streamed.dice == listed.dice and len(made) == 3
    assert streamed.grid.equals(listed.grid)
    with pytest.raises(ValueError, match="at least one"):
        fit_fusion_streamed(iter([]), 3)
    with pytest.raises(ValueError, match="same views"):
        fit_fusion_streamed(iter([(probs[0][:2], targets[0])]), 3)


def test_fit_handles_cases_without_foreground():
    p = np.zeros((2, 3, 3, 3), np.float32)
    p[0] = 1.0
    fit = fit_fusion_weights([[p, p]], [np.zeros((3, 3, 3), np.int64)], step=0.5)
    assert fit.dice == 1.0 and fit.weights == (0.5, 0.5)


def test_fit_rejects_inconsistent_input():
    p = np.full((2, 3, 3, 3), 0.5, np.float32)
    t = np.zeros((3, 3, 3), np.int64)
    with pytest.raises(ValueError, match="targets"):
        fit_fusion_weights([[p, p]], [t, t])
    with pytest.raises(ValueError, match="same views"):
        fit_fusion_weights([[p, p], [p]], [t, t])
    with pytest.raises(ValueError, match="target shape"):
        fit_fusion_weights([[p, p]], [np.zeros((3, 3, 4), np.int64)])
    with pytest.raises(ValueError, match="class indices"):
        fit_fusion_weights([[p, p]], [t + 2])
    with pytest.raises(ValueError, match="step"):
        fit_fusion_weights([[p, p]], [t], step=0.3)
    with pytest.raises(ValueError, match="at least one"):
        fit_fusion_weights([], [])


def test_weights_file_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    p = [_softmax(rng.normal(size=(3, 4, 4, 4))) for _ in range(3)]
    fit = fit_fusion_weights([p], [_target((4, 4, 4), 3, rng)], step=0.1)
    path = tmp_path / "fusion" / "weights.json"
    write_fusion_weights(path, ["coronal", "axial", "sagittal"], fit)
    weights = read_fusion_weights(path)
    assert list(weights) == ["coronal", "axial", "sagittal"]
    assert tuple(weights.values()) == fit.weights
    doc = json.loads(path.read_text())
    assert doc["dice"] == fit.dice and doc["step"] == 0.1
    assert [f.name for f in path.parent.iterdir()] == ["weights.json"]  # no temporary file left
    with pytest.raises(ValueError, match="view names"):
        write_fusion_weights(path, ["coronal", "axial"], fit)


@pytest.mark.parametrize("text", [
    "not json {",
    "[1, 2]",
    '{"weights": {"a": 1.0}}',
    '{"views": {}}',
    '{"views": {"a": "0.5", "b": 0.5}}',
    '{"views": {"a": -0.5, "b": 1.5}}',
    '{"views": {"a": 0.5, "b": 0.4}}',
])
def test_malformed_weights_files(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"bad.json"):
        read_fusion_weights(path)


def test_fusion_fit_is_comparable():
    fit = FusionFit(weights=(0.5, 0.5), dice=0.9, grid=None, step=0.5)  # type: ignore[arg-type]
    assert fit == FusionFit(weights=(0.5, 0.5), dice=0.9, grid=None, step=0.5)  # type: ignore[arg-type]
    assert hash(fit) == hash(FusionFit((0.5, 0.5), 0.9, None, 0.5))  # type: ignore[arg-type]

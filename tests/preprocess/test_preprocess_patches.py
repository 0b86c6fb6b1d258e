"""Patches centred on voxels and their merge back into a volume, against np.pad and a voxel loop."""

from __future__ import annotations

import numpy as np
import pytest

from mskseg.preprocess.patches import (
    Patch,
    centre_voxels,
    extract_patches,
    merge_patches,
    patch_layout,
    union_region,
)
from mskseg.volume import Volume
from tests.conftest import ROTATED

SHAPE = (13, 11, 9)
SIZE = (5, 4, 6)


def random_centres(n: int, seed: int, spill: int = 2) -> np.ndarray:
    """``n`` voxel indices in the volume and up to ``spill`` voxels beyond it."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(-spill, s + spill, n) for s in SHAPE], axis=1)


def test_layout_records_padding_at_the_border() -> None:
    (p,) = patch_layout(np.array([[0, 10, 4]]), SIZE, SHAPE)
    assert p.start == (-2, 8, 1) and p.centre == (0, 10, 4)
    assert p.padding == ((2, 0), (0, 1), (0, 0)) and p.padded
    assert p.in_volume == (slice(0, 3), slice(8, 11), slice(1, 7))
    assert p.in_patch == (slice(2, 5), slice(0, 3), slice(0, 6))
    (q,) = patch_layout(np.array([[6, 5, 4]]), SIZE, SHAPE)
    assert not q.padded and q.start == (4, 3, 1)


def test_shift_moves_the_patch_inside_keeping_the_centre_in_it() -> None:
    layout = patch_layout(random_centres(50, 0, spill=0), SIZE, SHAPE, border="shift")
    for p in layout:
        assert not p.padded
        assert all(s <= c < s + n for s, c, n in zip(p.start, p.centre, p.size, strict=True))
    # an axis shorter than the patch is padded, centred
    (p,) = patch_layout(np.array([[3, 3, 3]]), (5, 5, 5), (3, 9, 9), border="shift")
    assert p.padding[0] == (1, 1) and p.padding[1:] == ((0, 0), (0, 0))


@pytest.mark.parametrize("border", ["pad", "shift"])
def test_extraction_matches_a_padded_volume(border: str) -> None:
    rng = np.random.default_rng(1)
    vol = rng.standard_normal((2, *SHAPE)).astype(np.float32)  # a channel axis in front
    centres = random_centres(20, 2)
    layout = patch_layout(centres, SIZE, SHAPE, border=border)
    patches = extract_patches(vol, layout, fill=-7.0)
    assert patches.shape == (20, 2, *SIZE) and patches.dtype == np.float32
    m = 10
    padded = np.pad(vol, [(0, 0)] + [(m, m)] * 3, constant_values=-7.0)
    for patch, p in zip(patches, layout, strict=True):
        box = tuple(slice(s + m, s + m + n) for s, n in zip(p.start, SIZE, strict=True))
        assert np.array_equal(patch, padded[(slice(None), *box)])


def brute_merge(patches, layout, shape, fallback, weight=None):
    """Per voxel: the weighted mean over covering patches (a loop over every patch voxel), else fallback."""
    lead = patches.shape[1:-3]
    total = np.zeros((*lead, *shape))
    wsum = np.zeros(shape)
    count = np.zeros(shape, int)
    for values, p in zip(patches, layout, strict=True):
        for q in np.ndindex(*p.size):
            v = tuple(s + a for s, a in zip(p.start, q, strict=True))
            if all(0 <= a < n for a, n in zip(v, shape, strict=True)):
                w = 1.0 if weight is None else float(weight[q])
                total[(..., *v)] += w * values[(..., *q)].astype(np.float64)
                wsum[v] += w
                count[v] += 1
    out = np.broadcast_to(np.asarray(fallback, np.float32), (*lead, *shape)).copy()
    cov = count > 0
    out[..., cov] = (total[..., cov] / wsum[cov]).astype(np.float32)
    return out, count


@pytest.mark.parametrize("weighted", [False, True])
def test_merge_averages_overlaps_like_a_voxel_loop(weighted: bool) -> None:
    rng = np.random.default_rng(4)
    layout = patch_layout(random_centres(15, 5), SIZE, SHAPE)
    patches = rng.random((15, 3, *SIZE)).astype(np.float32)  # e.g. 3 classes' probabilities
    weight = rng.uniform(0.1, 1.0, SIZE) if weighted else None
    merged = merge_patches(patches, layout, fallback=-1.0, weight=weight)
    expected, count = brute_merge(patches, layout, SHAPE, -1.0, weight)
    assert np.array_equal(merged.coverage, count)
    assert (count > 1).any() and (count == 0).any()  # overlaps and uncovered voxels both tested
    assert np.array_equal(merged.values, expected)  # float64 sums in patch order on both sides
    assert merged.values.dtype == np.float32


@pytest.mark.parametrize("border", ["pad", "shift"])
def test_merging_the_patches_of_a_volume_restores_it_exactly(border: str) -> None:
    rng = np.random.default_rng(6)
    vol = rng.random((2, *SHAPE)).astype(np.float32)
    layout = patch_layout(random_centres(40, 7), SIZE, SHAPE, border=border)
    merged = merge_patches(extract_patches(vol, layout, fill=np.nan), layout)
    covered = merged.coverage > 0
    assert covered.mean() > 0.5 and merged.coverage.max() >= 5
    assert np.array_equal(merged.values[:, covered], vol[:, covered])
    assert np.isnan(merged.values[:, ~covered]).all()  # the default fallback: NaN, "not covered"


def test_a_fallback_volume_fills_what_no_patch_covers() -> None:
    rng = np.random.default_rng(8)
    fallback = rng.random((2, *SHAPE)).astype(np.float32)
    layout = patch_layout(np.array([[6, 5, 4]]), SIZE, SHAPE)
    merged = merge_patches(np.full((1, 2, *SIZE), 0.25, np.float32), layout, fallback=fallback)
    inside = layout[0].in_volume
    assert (merged.values[(slice(None), *inside)] == 0.25).all()
    outside = merged.coverage == 0
    assert np.array_equal(merged.values[:, outside], fallback[:, outside])
    with pytest.raises(ValueError, match="fallback"):
        merge_patches(np.zeros((1, 2, *SIZE), np.float32), layout, fallback=fallback[0])


def test_empty_and_outside_cases() -> None:
    assert patch_layout(np.zeros((0, 3), int), SIZE, SHAPE) == []
    assert extract_patches(np.zeros(SHAPE), []).shape == (0,)
    far = patch_layout(np.array([[40, 5, 4]]), SIZE, SHAPE)  # wholly outside
    assert far[0].empty and union_region(far) is None
    assert (extract_patches(np.ones(SHAPE), far, fill=3.0) == 3.0).all()
    merged = merge_patches(np.ones((1, *SIZE), np.float32), far, fallback=0.5)
    assert (merged.values == 0.5).all() and not merged.coverage.any()
    moved = patch_layout(np.array([[40, 5, 4]]), SIZE, SHAPE, border="shift")
    assert moved[0].start[0] == SHAPE[0] - SIZE[0] and not moved[0].empty


def test_centre_voxels_round_world_points() -> None:
    vol = Volume(np.zeros(SHAPE), (0.7, 0.4, 0.5), (10.0, -3.0, 2.0), ROTATED)
    idx = np.array([[0, 0, 0], [3, 7, 2], [12, 10, 8], [-1, 4, 20]])
    offsets = np.array([[0.2, -0.3, 0.4], [-0.49, 0.49, 0.0], [0.5, -0.5, 0.1], [0.0, 0.0, 0.0]])
    got = centre_voxels(vol.index_to_world(idx + offsets), vol)
    assert got.tolist() == [[0, 0, 0], [3, 7, 2], [13, 10, 8], [-1, 4, 20]]  # halves round up


def test_bad_inputs() -> None:
    layout = patch_layout(np.array([[6, 5, 4]]), SIZE, SHAPE)
    with pytest.raises(ValueError, match="size"):
        patch_layout(np.array([[1, 1, 1]]), (4, 0, 4), SHAPE)
    with pytest.raises(ValueError, match="border"):
        patch_layout(np.array([[1, 1, 1]]), SIZE, SHAPE, border="wrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integer"):
        patch_layout(np.array([[1.5, 1, 1]]), SIZE, SHAPE)
    with pytest.raises(ValueError, match="volume shape"):
        extract_patches(np.zeros((5, 5, 5)), layout)
    with pytest.raises(ValueError, match="do not match"):
        merge_patches(np.zeros((2, *SIZE), np.float32), layout)
    with pytest.raises(ValueError, match="floating"):
        merge_patches(np.zeros((1, *SIZE), np.uint8), layout)
    with pytest.raises(ValueError, match="weight"):
        merge_patches(np.zeros((1, *SIZE), np.float32), layout, weight=np.zeros(SIZE))
    with pytest.raises(ValueError, match="non-empty"):
        merge_patches(np.zeros((0, *SIZE), np.float32), [])
    assert isinstance(layout[0], Patch)

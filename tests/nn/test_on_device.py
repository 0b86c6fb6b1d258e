"""Tensor versions of the inference steps against the numpy/scipy ones they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from mskseg.nn.inference import predict_slices
from mskseg.nn.models import build_model
from mskseg.nn.on_device import (
    channel_argmax,
    extract_patches_t,
    largest_component_box,
    merge_patches_t,
    slice_probabilities,
)
from mskseg.preprocess.patches import extract_patches, merge_patches, patch_layout


@pytest.mark.parametrize(("axis", "n_slices"), [(0, 1), (1, 1), (2, 3)])
def test_slice_probabilities_equal_predict_slices(axis, n_slices):
    torch.manual_seed(0)
    name = "unet25d" if n_slices > 1 else "unet2d"
    options = {"n_slices": n_slices} if n_slices > 1 else {}
    model = build_model(name, in_channels=1, n_classes=3, base=4, depth=2, **options).eval()
    image = np.random.default_rng(1).normal(size=(9, 10, 7)).astype(np.float32)
    expected = predict_slices(model, image, axis, n_slices=n_slices, multiple=4, batch_size=4)
    got = slice_probabilities(model, torch.from_numpy(image), axis, n_slices=n_slices, multiple=4, batch_size=4)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def _brute_box(mask: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    largest = labels == 1 + int(np.argmax(sizes))
    hits = np.argwhere(largest)
    return tuple(hits.min(axis=0).tolist()), tuple(hits.max(axis=0).tolist())


def test_largest_component_box_against_scipy():
    mask = np.zeros((40, 36, 30), bool)
    mask[4:20, 5:25, 3:18] = True        # the largest
    mask[30:34, 28:33, 22:27] = True      # an island far from it (more than `factor` voxels away)
    mask[2, 30, 28] = True
    assert largest_component_box(torch.from_numpy(mask), factor=4) == _brute_box(mask)
    assert largest_component_box(torch.zeros((5, 5, 5), dtype=torch.bool)) is None


def test_largest_component_box_of_a_curved_component():
    mask = np.zeros((32, 32, 32), bool)
    mask[2:30, 2:6, 2:6] = True
    mask[26:30, 2:30, 2:6] = True          # an L: propagation must travel around the corner
    mask[2:8, 20:30, 20:30] = True         # a smaller block
    assert largest_component_box(torch.from_numpy(mask), factor=2) == _brute_box(mask)


def test_extract_and_merge_patches_equal_the_numpy_versions():
    rng = np.random.default_rng(2)
    volume = rng.normal(size=(20, 18, 16)).astype(np.float32)
    centres = np.array([[0, 0, 0], [10, 9, 8], [19, 17, 15], [11, 9, 9]])
    layout = patch_layout(centres, (8, 6, 6), volume.shape, border="pad")
    patches = extract_patches_t(torch.from_numpy(volume), layout, fill=-5.0)
    np.testing.assert_array_equal(patches.numpy(), extract_patches(volume, layout, fill=-5.0))
    probs = rng.random((len(layout), 2, 8, 6, 6)).astype(np.float32)
    merged, coverage = merge_patches_t(torch.from_numpy(probs), layout, volume.shape)
    expected = merge_patches(probs, layout, fallback=0.0)
    np.testing.assert_allclose(merged.numpy(), expected.values, atol=1e-6)
    np.testing.assert_array_equal(coverage.numpy(), expected.coverage)


def test_merging_patches_of_a_volume_restores_it_exactly_where_covered():
    volume = torch.arange(12 * 10 * 8, dtype=torch.float32).reshape(1, 12, 10, 8)
    layout = patch_layout(np.array([[3, 3, 3], [6, 5, 4], [8, 6, 5]]), (6, 6, 6), (12, 10, 8), border="shift")
    patches = torch.stack([extract_patches_t(volume[0], layout)], dim=1)  # (k, 1, *size)
    merged, coverage = merge_patches_t(patches, layout, (12, 10, 8))
    covered = coverage > 0
    assert torch.equal(merged[0][covered], volume[0][covered]) and int(covered.sum()) > 0


def test_channel_argmax_is_argmax_with_the_first_maximum_on_ties():
    scores = torch.rand(5, 7, 6, 4)
    scores[:, 0, 0, 0] = torch.tensor([0.2, 0.5, 0.5, 0.1, 0.5])  # a tie: the first maximum wins, as argmax
    got = channel_argmax(scores)
    assert got.dtype == torch.uint8 and torch.equal(got.long(), scores.argmax(dim=0)) and int(got[0, 0, 0]) == 1

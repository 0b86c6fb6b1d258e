"""Slice-wise and sliding-window inference: agreement with plain loops, padding, geometry, labels."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from mskseg.nn.inference import (  # noqa: E402
    gaussian_importance,
    predict_slices,
    sliding_window_3d,
    to_labels,
    window_starts,
)
from mskseg.nn.models import build_model  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny networks run as fast on one thread, and far faster than on two when the machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SHAPE = (11, 18, 13)  # odd sizes, none a multiple of 16


def _image(shape=SHAPE, seed: int = 0) -> np.ndarray:
    return (2.0 + np.random.default_rng(seed).random(shape)).astype(np.float32)  # minimum ~2, not 0


@pytest.fixture(scope="module")
def models() -> dict[int, nn.Module]:
    torch.manual_seed(0)
    return {1: build_model("unet2d", in_channels=1, n_classes=3, base=4, depth=2),
            3: build_model("unet25d", in_channels=1, n_classes=3, base=4, depth=2, n_slices=3)}


def _pad_centre(plane: np.ndarray, size: tuple[int, int], value: float) -> np.ndarray:
    """(C, H, W) centre-padded to ``size`` (before = (size - n) // 2)."""
    pad = [(0, 0)] + [((s - n) // 2, s - n - (s - n) // 2) for s, n in zip(size, plane.shape[1:], strict=True)]
    return np.pad(plane, pad, constant_values=value)


def _manual(model: nn.Module, image: np.ndarray, axis: int, n_slices: int, multiple: int = 16) -> np.ndarray:
    """The reference: one forward per slice, written with plain loops."""
    model.eval()
    n = image.shape[axis]
    plane = [s for a, s in enumerate(image.shape) if a != axis]
    size = tuple(-(-s // multiple) * multiple for s in plane)
    h0, w0 = ((s - p) // 2 for s, p in zip(size, plane, strict=True))
    out = None
    for i in range(n):
        idx = [min(max(j, 0), n - 1) for j in range(i - n_slices // 2, i + n_slices // 2 + 1)]
        x = _pad_centre(np.stack([np.take(image, j, axis) for j in idx]), size, float(image.min()))
        with torch.no_grad():
            prob = model(torch.from_numpy(x)[None]).softmax(1)[0].numpy()
        prob = prob[:, h0:h0 + plane[0], w0:w0 + plane[1]]
        if out is None:
            out = np.zeros((prob.shape[0], *image.shape), np.float32)
        index = [slice(None)] * 4
        index[axis + 1] = i
        out[tuple(index)] = prob
    return out


@pytest.mark.parametrize("n_slices", [1, 3])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_predict_slices_matches_a_per_slice_loop(models, axis, n_slices):
    image = _image()
    probs = predict_slices(models[n_slices], image, axis, n_slices=n_slices, batch_size=4)
    assert probs.shape == (3, *SHAPE) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, _manual(models[n_slices], image, axis, n_slices), atol=1e-5)


def test_batch_size_does_not_change_the_result(models):
    image = _image(seed=1)
    a = predict_slices(models[3], image, 1, n_slices=3, batch_size=1)
    b = predict_slices(models[3], image, 1, n_slices=3, batch_size=7)
    np.testing.assert_allclose(a, b, atol=1e-5)  # convolution kernels may sum in another order


def test_negative_axis_and_multiple_of_4(models):
    image = _image(seed=2)
    np.testing.assert_allclose(predict_slices(models[1], image, -1, multiple=4),
                               _manual(models[1], image, 2, 1, multiple=4), atol=1e-5)


class _MeanModel(nn.Module):
    """Logits (x + mean, -x - mean): every output depends on the whole padded slice, padding included."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(2, 3), keepdim=True)
        return torch.cat([x + m, -x - m], dim=1)


@pytest.mark.parametrize("axis", [0, 2])
def test_padding_uses_the_image_minimum(axis):
    image = _image(seed=3)
    probs = predict_slices(_MeanModel(), image, axis)
    plane = [s for a, s in enumerate(image.shape) if a != axis]
    area = np.prod([-(-s // 16) * 16 for s in plane])
    slice_sum = image.sum(axis=tuple(a for a in range(3) if a != axis))
    mean = (slice_sum + (area - np.prod(plane)) * image.min()) / area  # padded with the minimum
    shape = [1, 1, 1]
    shape[axis] = -1
    logit = image + mean.reshape(shape)
    np.testing.assert_allclose(probs[0], 1 / (1 + np.exp(-2 * logit)), rtol=1e-5)


def test_restores_the_training_mode(models):
    model = models[1]
    model.train()
    predict_slices(model, _image(), 0)
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    predict_slices(model, _image(), 0)
    assert not model.training


def _threshold_model(n_slices: int) -> nn.Module:
    """Fixed 1x1 conv: class 1 where the centre slice's value exceeds 0.5, else class 0."""
    conv = nn.Conv2d(n_slices, 2, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, n_slices // 2] = -10.0
        conv.weight[1, n_slices // 2] = 10.0
        conv.bias.copy_(torch.tensor([5.0, -5.0]))
    return conv


@pytest.mark.parametrize("n_slices", [1, 3])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_geometry_a_ball_comes_back_in_place(axis, n_slices):
    shape = (13, 17, 21)
    idx = np.indices(shape)
    ball = ((idx[0] - 4) ** 2 + (idx[1] - 10) ** 2 + (idx[2] - 13) ** 2) <= 16  # off-centre, fully inside
    image = ball.astype(np.float32)
    labels = to_labels(predict_slices(_threshold_model(n_slices), image, axis, n_slices=n_slices, batch_size=5))
    np.testing.assert_array_equal(labels, ball.astype(np.uint8))


def test_channels_last_and_bf16_on_the_cpu(models):
    image = _image(seed=10)
    ref = predict_slices(models[1], image, 2)
    np.testing.assert_allclose(predict_slices(models[1], image, 2, channels_last=True), ref, atol=1e-5)
    bf16 = predict_slices(models[1], image, 2, precision="bf16")
    assert bf16.dtype == np.float32
    np.testing.assert_allclose(bf16.sum(axis=0), 1.0, atol=1e-5)  # softmax in float32
    np.testing.assert_allclose(bf16, ref, atol=0.1)


def test_predict_slices_rejects_bad_arguments(models):
    with pytest.raises(ValueError, match="3D"):
        predict_slices(models[1], np.zeros((4, 4)), 0)
    with pytest.raises(ValueError, match="axis"):
        predict_slices(models[1], _image(), 3)
    with pytest.raises(ValueError, match="odd"):
        predict_slices(models[3], _image(), 0, n_slices=2)


# ------------------------------------------------------------------------------ sliding window
def test_gaussian_importance():
    g = gaussian_importance((8, 9, 6))
    assert g.shape == (8, 9, 6) and g.dtype == np.float32
    assert g.max() == 1.0 and g.min() > 0
    for ax in range(3):
        np.testing.assert_array_equal(g, np.flip(g, axis=ax))
    assert g[4, 4, 3] == 1.0 and g[0, 0, 0] < g[2, 2, 1] < g[3, 4, 2]
    with pytest.raises(ValueError):
        gaussian_importance((8, 0, 8))


def test_window_starts():
    assert window_starts(20, 8, 0.5) == [0, 4, 8, 12]
    assert window_starts(21, 8, 0.5) == [0, 4, 8, 12, 13]  # last flush with the end
    assert window_starts(8, 8, 0.5) == [0]
    assert window_starts(10, 4, 0.0) == [0, 4, 6]
    with pytest.raises(ValueError):
        window_starts(10, 4, 1.0)


def _pointwise_model(n_classes: int = 3) -> nn.Module:
    torch.manual_seed(1)
    return nn.Conv3d(1, n_classes, 1)


def _whole_volume(model: nn.Module, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(image)[None, None]).softmax(1)[0].numpy()


@pytest.mark.parametrize("shape", [(12, 20, 24), (13, 21, 9), (5, 7, 8)])
def test_sliding_window_with_a_pointwise_model_equals_one_forward(shape):
    image = _image(shape, seed=4)
    model = _pointwise_model()
    probs = sliding_window_3d(model, image, (8, 8, 8), overlap=0.5, batch_size=3)
    assert probs.shape == (3, *shape) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, _whole_volume(model, image), atol=1e-5)


def test_sliding_window_single_patch_equals_a_forward_and_pads_with_the_minimum():
    torch.manual_seed(2)
    model = build_model("unet3d", in_channels=1, n_classes=2, base=4, depth=2).eval()
    image = _image((16, 16, 16), seed=5)
    np.testing.assert_allclose(sliding_window_3d(model, image, (16, 16, 16)), _whole_volume(model, image), atol=1e-5)
    small = _image((10, 16, 13), seed=6)  # smaller than the patch along two axes
    padded = np.pad(small, [(3, 3), (0, 0), (1, 2)], constant_values=float(small.min()))
    expected = _whole_volume(model, padded)[:, 3:13, :, 1:14]
    np.testing.assert_allclose(sliding_window_3d(model, small, (16, 16, 16)), expected, atol=1e-5)


def test_sliding_window_unet_covers_every_voxel():
    torch.manual_seed(3)
    model = build_model("unet3d", in_channels=1, n_classes=3, base=4, depth=2)
    model.train()
    probs = sliding_window_3d(model, _image((12, 20, 24), seed=7), (8, 8, 16), overlap=0.25, batch_size=4)
    assert probs.shape == (3, 12, 20, 24) and np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    assert model.training


def test_to_labels():
    rng = np.random.default_rng(8)
    probs = rng.random((4, 5, 6, 7)).astype(np.float32)
    labels = to_labels(probs)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, probs.argmax(axis=0))
    many = rng.random((300, 3, 2))
    assert to_labels(many).dtype == np.uint16
    np.testing.assert_array_equal(to_labels(many), many.argmax(axis=0))
    with pytest.raises(ValueError):
        to_labels(np.zeros((0, 3)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_channels_last_on_gpu_matches_fp32(models):
    device = torch.device("cuda")
    model = models[3].to(device)
    try:
        image = _image((9, 40, 36), seed=9)
        fp32 = predict_slices(model, image, 0, n_slices=3, device=device)
        bf16 = predict_slices(model, image, 0, n_slices=3, device=device, precision="bf16", channels_last=True)
        assert bf16.dtype == np.float32
        np.testing.assert_allclose(bf16, fp32, atol=0.05)
        np.testing.assert_allclose(fp32, _manual(model.cpu(), image, 0, 3), atol=2e-3)  # TF32 convolutions
    finally:
        model.cpu()

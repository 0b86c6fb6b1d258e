"""The segmentation networks: shapes, training, He initialisation, determinism, options, VGG16 loading."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from mskseg.nn.models import (  # noqa: E402
    MODELS,
    DeepLabV3Plus,
    SegNet,
    UNet,
    UNet25D,
    VGG16UNet,
    build_model,
    count_parameters,
    load_vgg16_encoder,
    model_options,
)
from mskseg.nn.models.blocks import he_init  # noqa: E402

torch.set_num_threads(1)

#: tiny configurations (and their input spatial size) used throughout
TINY = {
    "unet2d": ({"base": 4, "depth": 2}, (32, 32)),
    "segnet": ({"base": 4, "depth": 3}, (32, 32)),
    "deeplabv3plus": ({"base": 4, "blocks": (1, 1, 1, 1)}, (32, 32)),
    "vgg16unet": ({"base": 4}, (32, 32)),
    "unet25d": ({"base": 4, "depth": 2, "n_slices": 3}, (32, 32)),
    "unet3d": ({"base": 4, "depth": 2}, (16, 16, 16)),
}
IN_CHANNELS, N_CLASSES = 2, 3


def _tiny(name: str, seed: int = 0, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    options = {**TINY[name][0], **overrides}
    return build_model(name, in_channels=IN_CHANNELS, n_classes=N_CLASSES, **options)


def _input(model: nn.Module, batch: int, shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.in_channels, *shape, generator=g)


def _task(model: nn.Module, shape: tuple[int, ...], batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch of 8-voxel blocks of random classes, whose intensity (plus noise) tells the class."""
    g = torch.Generator().manual_seed(2)
    target = torch.randint(0, N_CLASSES, (batch, *[s // 8 for s in shape]), generator=g)
    for axis in range(1, target.dim()):
        target = target.repeat_interleave(8, dim=axis)
    x = target.float().unsqueeze(1).expand(-1, model.in_channels, *shape)
    return x + 0.3 * torch.randn(x.shape, generator=g), target


@pytest.mark.parametrize("batch", [2, 3])
@pytest.mark.parametrize("name", list(TINY))
def test_output_has_input_size(name, batch):
    model = _tiny(name).train()
    shape = TINY[name][1]
    out = model(_input(model, batch, shape))
    assert out.shape == (batch, N_CLASSES, *shape)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(TINY))
def test_eval_mode_batch_of_one(name):
    model = _tiny(name).eval()
    shape = TINY[name][1]
    with torch.no_grad():
        out = model(_input(model, 1, shape))
    assert out.shape == (1, N_CLASSES, *shape)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(TINY))
def test_training_lowers_the_loss(name):
    model = _tiny(name).train()
    x, target = _task(model, TINY[name][1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = F.cross_entropy(model(x), target).item()
    assert final < 0.8 * losses[0]
    if name.startswith("unet"):  # a U-Net memorises this tiny batch quickly
        assert final < 0.5 * losses[0]


@pytest.mark.parametrize("name", list(TINY))
def test_he_initialisation(name):
    model = _tiny(name, base=8)
    # in != out, so that a fan_in initialisation would give a different std
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)) and m.in_channels != m.out_channels]
    widest = max(convs, key=lambda m: m.weight.numel())
    w = widest.weight.detach()
    expected = math.sqrt(2.0 / (w.shape[0] * math.prod(w.shape[2:])))
    assert w.numel() >= 2000
    assert w.std().item() == pytest.approx(expected, rel=0.1)
    assert abs(w.mean().item()) < 0.1 * expected
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)) and m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_he_init_reinitialises_a_module():
    layer = nn.Sequential(nn.Conv2d(3, 256, 3, bias=True), nn.BatchNorm2d(256))
    nn.init.constant_(layer[0].weight, 1.0)
    nn.init.constant_(layer[0].bias, 1.0)
    nn.init.constant_(layer[1].weight, 3.0)
    assert he_init(layer) is layer
    assert layer[0].weight.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.1)
    assert torch.count_nonzero(layer[0].bias) == 0 and torch.all(layer[1].weight == 1)


@pytest.mark.parametrize("name", list(TINY))
def test_same_seed_same_model(name):
    a, b, c = _tiny(name, seed=0), _tiny(name, seed=0), _tiny(name, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    x = _input(a, 2, TINY[name][1])
    with torch.no_grad():
        assert torch.equal(a.eval()(x), b.eval()(x))


def test_registry_names_and_errors():
    assert set(MODELS) == {"unet2d", "segnet", "deeplabv3plus", "vgg16unet", "unet25d", "unet3d"}
    with pytest.raises(ValueError, match=r"unknown model 'unet4d'.*unet2d.*segnet"):
        build_model("unet4d", in_channels=1, n_classes=2)
    with pytest.raises(ValueError, match=r"no option 'dims'.*depth"):
        build_model("unet2d", in_channels=1, n_classes=2, dims=3)
    with pytest.raises(ValueError, match="no option 'depth'"):
        build_model("vgg16unet", in_channels=1, n_classes=2, depth=3)
    assert "n_slices" in model_options("unet25d") and "output_stride" in model_options("deeplabv3plus")
    with pytest.raises(ValueError, match="base"):
        build_model("unet2d", in_channels=1, n_classes=2, base=0)
    assert isinstance(build_model("unet3d", in_channels=1, n_classes=2, base=2, depth=1), UNet)


def test_count_parameters_of_a_hand_counted_unet():
    model = UNet(1, 2, base=4, depth=1)
    # inc 1->4->4 (36 + 144 weights, 2 BN x 8); down 4->8->8 (288 + 576, 2 BN x 16);
    # up: transposed 8->4 (128 + 4 bias), double conv 8->4->4 (288 + 144, 2 BN x 8); head 4->2 (8 + 2)
    assert count_parameters(model) == 196 + 896 + 132 + 448 + 10
    model.head.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 1682 - 8
    assert count_parameters(model) == 1682


def test_unet_rejects_sizes_not_divisible_by_two_to_the_depth():
    model = UNet(1, 2, base=4, depth=3)
    with pytest.raises(ValueError, match=r"divisible by 8.*\(20, 24\)"):
        model(torch.zeros(1, 1, 20, 24))
    with pytest.raises(ValueError, match="input channel"):
        model(torch.zeros(1, 2, 16, 16))
    with pytest.raises(ValueError, match="4-D input"):
        model(torch.zeros(1, 1, 16, 16, 16))
    assert model(torch.zeros(1, 1, 24, 40)).shape == (1, 2, 24, 40)  # non-square, divisible by 8


@pytest.mark.parametrize("dims", [2, 3])
def test_unet_interpolation_upsampling(dims):
    model = UNet(1, 2, base=4, depth=2, dims=dims, upsample="interp")
    assert not any(isinstance(m, (nn.ConvTranspose2d, nn.ConvTranspose3d)) for m in model.modules())
    x = torch.randn(2, 1, *([8] * dims))
    assert model(x).shape == (2, 2, *([8] * dims))
    with pytest.raises(ValueError, match="upsample"):
        UNet(1, 2, upsample="nearest")
    with pytest.raises(ValueError, match="dims"):
        UNet(1, 2, dims=1)


def test_unet_dropout_sits_at_the_end_of_the_contracting_path():
    model = UNet(1, 2, base=4, depth=3, dropout=0.5)
    assert [i for i, d in enumerate(model.down) if any(isinstance(m, nn.Dropout) for m in d)] == [2]
    with pytest.raises(ValueError, match="dropout"):
        UNet(1, 2, dropout=1.0)


@pytest.mark.parametrize("n_slices", [0, 2, 4, -3])
def test_unet25d_rejects_bad_slice_counts(n_slices):
    with pytest.raises(ValueError, match="n_slices"):
        UNet25D(n_slices, 2, base=4, depth=2)


@pytest.mark.parametrize("n_slices", [3, 5, 7])
def test_unet25d_maps_slices_to_the_centre_slice(n_slices):
    torch.manual_seed(0)
    model = UNet25D(n_slices, 4, channels_per_slice=2, base=4, depth=2).eval()
    assert model.in_channels == 2 * n_slices and model.centre == n_slices // 2
    slab = torch.randn(2, 2, n_slices, 16, 16)  # (B, C, N, H, W), slices along the depth axis
    stacked = slab.transpose(1, 2).reshape(2, 2 * n_slices, 16, 16)  # slice-major channels
    with torch.no_grad():
        out = model(stacked)
        assert out.shape == (2, 4, 16, 16)
        assert torch.equal(model(slab), out)
    with pytest.raises(ValueError, match="slab"):
        model(torch.randn(1, 2, n_slices + 2, 16, 16))
    with pytest.raises(ValueError, match="input channel"):
        model(torch.randn(1, n_slices, 16, 16))
    assert build_model("unet25d", in_channels=2, n_classes=4, n_slices=n_slices, base=4, depth=2).in_channels \
        == 2 * n_slices


def test_segnet_restores_odd_sizes_with_the_pooling_indices():
    model = SegNet(1, 2, base=4, depth=3).eval()
    assert sum(isinstance(m, nn.MaxUnpool2d) for m in model.modules()) == 1
    with torch.no_grad():
        assert model(torch.randn(1, 1, 36, 30)).shape == (1, 2, 36, 30)
    with pytest.raises(ValueError, match="at least 8"):
        model(torch.randn(1, 1, 4, 16))


def test_segnet_default_is_the_vgg16_layout():
    model = SegNet(1, 2, base=2)
    enc = [[m.out_channels for m in stage.modules() if isinstance(m, nn.Conv2d)] for stage in model.encoder]
    assert enc == [[2, 2], [4, 4], [8, 8, 8], [16, 16, 16], [16, 16, 16]]
    dec = [[m.out_channels for m in stage.modules() if isinstance(m, nn.Conv2d)] for stage in model.decoder]
    assert dec == [[16, 16, 16], [16, 16, 8], [8, 8, 4], [4, 2], [2]]


@pytest.mark.parametrize(("output_stride", "rates", "size"), [(16, (6, 12, 18), 32), (8, (12, 24, 36), 16)])
def test_deeplab_output_strides(output_stride, rates, size):
    torch.manual_seed(0)
    model = DeepLabV3Plus(1, 2, base=4, blocks=(1, 1, 1, 1), output_stride=output_stride).eval()
    assert model.aspp.rates == rates
    assert [b[0].dilation[0] for b in model.aspp.branches[1:]] == list(rates)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        low, high = model.encoder(x)
        assert low.shape[-2:] == (16, 16) and high.shape[-2:] == (64 // output_stride,) * 2
        assert model(torch.randn(1, 1, size + 1, 2 * size - 3)).shape == (1, 2, size + 1, 2 * size - 3)
    with pytest.raises(ValueError, match="output_stride"):
        DeepLabV3Plus(1, 2, base=4, output_stride=32)


def test_deeplab_trains_with_batch_size_one():
    torch.manual_seed(0)
    model = DeepLabV3Plus(1, 2, base=4, blocks=(1, 1, 1, 1)).train()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.aspp.image_pool.modules())
    loss = model(torch.randn(1, 1, 32, 32)).square().mean()
    loss.backward()
    assert model.aspp.image_pool[1].weight.grad is not None


def test_vgg16unet_layout_and_size_check():
    model = VGG16UNet(1, 2, base=2)
    assert [layer[0].out_channels for layer in model.encoder_layers()] == [2, 2, 4, 4] + [8] * 3 + [16] * 6
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.zeros(1, 1, 48, 48))


def _vgg16_state(base: int, batch_norm: bool, seed: int = 0, in_channels: int = 3) -> dict[str, torch.Tensor]:
    """A synthetic torchvision-style ``vgg16``/``vgg16_bn`` state dict (features + a classifier)."""
    g = torch.Generator().manual_seed(seed)
    state, index, previous = {}, 0, in_channels
    for _block, (n, mult) in enumerate(zip((2, 2, 3, 3, 3), (1, 2, 4, 8, 8), strict=True)):
        width = base * mult
        for _ in range(n):
            state[f"features.{index}.weight"] = torch.randn(width, previous, 3, 3, generator=g)
            state[f"features.{index}.bias"] = torch.randn(width, generator=g)
            index += 1
            if batch_norm:
                state[f"features.{index}.weight"] = torch.rand(width, generator=g) + 0.5
                state[f"features.{index}.bias"] = torch.randn(width, generator=g)
                state[f"features.{index}.running_mean"] = torch.randn(width, generator=g)
                state[f"features.{index}.running_var"] = torch.rand(width, generator=g) + 0.5
                state[f"features.{index}.num_batches_tracked"] = torch.tensor(100)
                index += 1
            index += 1  # ReLU
            previous = width
        index += 1  # max pooling
    state["classifier.0.weight"] = torch.randn(7, 3, generator=g)
    return state


@pytest.mark.parametrize("batch_norm", [False, True])
def test_load_vgg16_encoder_from_a_file(tmp_path, batch_norm):
    state = _vgg16_state(4, batch_norm)
    path = tmp_path / "vgg16.pt"
    torch.save(state, path)
    model = VGG16UNet(3, 2, base=4, batch_norm=batch_norm)
    decoder_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    load_vgg16_encoder(model, path)
    conv_keys = sorted((k for k in state if k.endswith(".weight") and state[k].dim() == 4),
                       key=lambda k: int(k.split(".")[1]))
    for layer, key in zip(model.encoder_layers(), conv_keys, strict=True):
        assert torch.equal(layer[0].weight, state[key])
        assert torch.equal(layer[0].bias, state[key.replace("weight", "bias")])
        if batch_norm:
            bn_index = int(key.split(".")[1]) + 1
            assert torch.equal(layer[1].running_mean, state[f"features.{bn_index}.running_mean"])
            assert torch.equal(layer[1].weight, state[f"features.{bn_index}.weight"])
    assert all(torch.equal(v, decoder_before[k]) for k, v in model.decoder.state_dict().items())


def test_load_vgg16_bn_into_a_model_without_bn_folds_the_norm():
    state = _vgg16_state(4, batch_norm=True)
    with_bn, without_bn = VGG16UNet(3, 2, base=4, batch_norm=True), VGG16UNet(3, 2, base=4, batch_norm=False)
    load_vgg16_encoder(with_bn, state)
    load_vgg16_encoder(without_bn, state)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = with_bn.eval().encoder[0](x), without_bn.eval().encoder[0](x)
    assert torch.allclose(a, b, atol=1e-4)


def test_load_vgg16_encoder_lists_mismatches():
    model = VGG16UNet(1, 2, base=8, batch_norm=False)
    state = _vgg16_state(4, batch_norm=False)
    before = [layer[0].weight.clone() for layer in model.encoder_layers()]
    with pytest.raises(ValueError, match=r"conv 1 \(features.0.weight\).*conv 2 \(features.2.weight\)") as err:
        load_vgg16_encoder(model, state)
    assert "conv 13" in str(err.value)
    assert all(torch.equal(a, layer[0].weight) for a, layer in zip(before, model.encoder_layers(), strict=True))
    del state["features.28.weight"], state["features.28.bias"]
    with pytest.raises(ValueError, match="expected 13 convolutions, found 12"):
        load_vgg16_encoder(VGG16UNet(3, 2, base=4, batch_norm=False), state)


def test_load_vgg16_encoder_adapts_the_input_channels():
    state = _vgg16_state(4, batch_norm=False)
    model = VGG16UNet(1, 2, base=4, batch_norm=False)
    with pytest.raises(ValueError, match=r"conv 1 \(features.0.weight\): file \(4, 3, 3, 3\), model \(4, 1, 3, 3\)"):
        load_vgg16_encoder(model, state)
    load_vgg16_encoder(model, state, adapt_input_channels=True)
    assert torch.allclose(model.encoder_layers()[0][0].weight, state["features.0.weight"].sum(1, keepdim=True))
    rgb = VGG16UNet(3, 2, base=4, batch_norm=False)
    load_vgg16_encoder(rgb, state, adapt_input_channels=True)  # nothing to adapt: copied unchanged
    assert torch.equal(rgb.encoder_layers()[0][0].weight, state["features.0.weight"])
    grey = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.encoder[0](grey), rgb.encoder[0](grey.expand(-1, 3, -1, -1)), atol=1e-5)

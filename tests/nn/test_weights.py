"""Saving and loading weights: round trips, atomic writes, clear errors for bad files."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from mskseg.nn import weights as weights_module  # noqa: E402
from mskseg.nn.models import MODELS, UNet, build_model  # noqa: E402
from mskseg.nn.weights import (  # noqa: E402
    WeightsFileError,
    load_weights,
    read_state_dict,
    save_weights,
)

torch.set_num_threads(1)

TINY = {
    "unet2d": {"base": 4, "depth": 2},
    "segnet": {"base": 4, "depth": 3},
    "deeplabv3plus": {"base": 4, "blocks": (1, 1, 1, 1)},
    "vgg16unet": {"base": 4},
    "unet25d": {"base": 4, "depth": 2, "n_slices": 3},
    "unet3d": {"base": 4, "depth": 2},
}


def _model(name: str, seed: int, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, in_channels=1, n_classes=3, **{**TINY[name], **overrides})


def _trained_a_little(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """One optimizer step in train mode, so weights and BN running statistics leave their initial values."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    model(x).square().mean().backward()
    opt.step()
    return model.eval()


def test_registry_covers_every_model():
    assert set(TINY) == set(MODELS)


@pytest.mark.parametrize("name", list(TINY))
def test_round_trip_gives_identical_outputs(tmp_path, name):
    shape = (16, 16, 16) if name == "unet3d" else (32, 32)
    source = _model(name, seed=0)
    x = torch.randn(2, source.in_channels, *shape, generator=torch.Generator().manual_seed(3))
    _trained_a_little(source, x)
    path = save_weights(source, tmp_path / "sub" / "model.pt")
    assert path == tmp_path / "sub" / "model.pt" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left

    target = _model(name, seed=1).eval()
    with torch.no_grad():
        assert not torch.equal(target(x), source(x))
        assert load_weights(target, path) == ((), ())
        assert torch.equal(target(x), source(x))
    loaded = build_model(name, in_channels=1, n_classes=3, weights=path, **TINY[name]).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    first = _model("unet2d", seed=0)
    save_weights(first, path)
    original = path.read_bytes()

    def broken_save(obj, handle):
        handle.write(b"partial")  # a half-written temporary file
        raise OSError("disk full")

    monkeypatch.setattr(weights_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_weights(_model("unet2d", seed=1), path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_equal_weights_give_identical_files(tmp_path):
    save_weights(_model("unet2d", seed=0), tmp_path / "a.pt")
    save_weights(_model("unet2d", seed=0), tmp_path / "other_name.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "other_name.pt").read_bytes()


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere.pt"
    with pytest.raises(FileNotFoundError, match=r"nowhere.pt"):
        load_weights(_model("unet2d", seed=0), path)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_state_dict(tmp_path)  # a folder is not a weights file


@pytest.mark.parametrize("content", [b"not a torch file", b""])
def test_corrupt_file_names_the_path(tmp_path, content):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(content)
    with pytest.raises(WeightsFileError, match=f"cannot read weights file {path}"):
        load_weights(_model("unet2d", seed=0), path)


def test_truncated_file_names_the_path(tmp_path):
    path = save_weights(_model("unet2d", seed=0), tmp_path / "model.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsFileError, match=r"model.pt"):
        load_weights(_model("unet2d", seed=0), path)


def test_file_without_a_state_dict(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(WeightsFileError, match="does not hold a state dict"):
        load_weights(_model("unet2d", seed=0), path)


def test_wrong_shapes_raise_value_error_and_leave_the_model_unchanged(tmp_path):
    path = save_weights(_model("unet2d", seed=0, base=8), tmp_path / "wide.pt")
    model = _model("unet2d", seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"shape mismatch for inc\.0\.0\.weight \(file \(8, 1, 3, 3\), "
                                         r"model \(4, 1, 3, 3\)\).*more"):
        load_weights(model, path)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="shape mismatch"):
        load_weights(model, path, strict=False)


def test_missing_and_unexpected_keys(tmp_path):
    model = UNet(1, 3, base=4, depth=1)
    partial = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"missing head\.weight, head\.bias$"):
        load_weights(model, tmp_path / "partial.pt")
    result = load_weights(model, tmp_path / "partial.pt", strict=False)
    assert result.missing == ("head.weight", "head.bias") and result.unexpected == ()
    torch.save({**model.state_dict(), "extra.weight": torch.zeros(1)}, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match=r"unexpected extra.weight"):
        load_weights(model, tmp_path / "extra.pt")
    result = load_weights(model, tmp_path / "extra.pt", strict=False)
    assert result.missing == () and result.unexpected == ("extra.weight",)


def test_checkpoint_and_data_parallel_layouts(tmp_path):
    source = _model("unet2d", seed=0)
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "epoch": 3},
               tmp_path / "ckpt.pt")
    target = _model("unet2d", seed=1)
    load_weights(target, tmp_path / "ckpt.pt")
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in target.state_dict().items())

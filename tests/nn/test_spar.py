"""SPAR: the shape auto-encoder, the discriminators, the regularisation terms, the alternating steps, the settings."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from mskseg.nn.models import build_model  # noqa: E402
from mskseg.nn.models.spar import LatentDiscriminator, MaskDiscriminator, ShapeAutoEncoder  # noqa: E402
from mskseg.nn.spar import (  # noqa: E402
    REGULARISERS,
    SparSettings,
    adam,
    autoencoder_loss,
    discriminator_step,
    freeze,
    one_hot,
    regularisation_term,
    segmenter_step,
    spar_step,
    train_autoencoder_step,
)

torch.set_num_threads(1)
K = 3  # classes: background and two "bones"


def _masks(batch: int, size: int, dims: int = 2, seed: int = 0) -> torch.Tensor:
    """Integer label maps ``(batch, *[size] * dims)``: a box of class 1 and a box of class 2 at random places."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(batch, *[size] * dims, dtype=torch.long)
    for b in range(batch):
        for label in (1, 2):
            lo = torch.randint(0, size // 2, (dims,), generator=g).tolist()
            box = tuple(slice(start, start + size // 3) for start in lo)
            out[(b, *box)] = label
    return out


def _batch(batch: int = 2, size: int = 16, dims: int = 2, seed: int = 0) -> dict:
    target = _masks(batch, size, dims, seed)
    g = torch.Generator().manual_seed(seed + 100)
    image = target.unsqueeze(1).float() + 0.5 * torch.randn(target.unsqueeze(1).shape, generator=g)
    return {"image": image, "target": target}


def _parts(dims: int = 2, regulariser: str = "spar", seed: int = 0):
    """A tiny segmenter, a frozen auto-encoder and the discriminator the regulariser uses."""
    torch.manual_seed(seed)
    segmenter = build_model("unet2d" if dims == 2 else "unet3d", in_channels=1, n_classes=K, base=4, depth=1)
    ae = freeze(ShapeAutoEncoder(K, dims=dims, base=2, depth=2))  # codes: 8 channels at 1/4 size
    if regulariser == "adversarial_mask":
        disc = MaskDiscriminator(K, dims=dims, n_layers=2, width=8)
    else:
        disc = LatentDiscriminator(ae.latent_channels, dims=dims, n_layers=2)
    return segmenter, ae, disc


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(module: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    after = module.state_dict()
    return after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def _params_changed(module: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(p, before[name]) for name, p in module.named_parameters())


# --- the networks ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dims", [2, 3])
def test_autoencoder_shapes(dims):
    torch.manual_seed(0)
    ae = ShapeAutoEncoder(K, dims=dims, base=2, depth=2, latent_channels=6)
    y = one_hot(_masks(2, 8, dims), K)
    codes = ae.encode(y)
    assert codes.shape == (2, 6, *[2] * dims)
    assert ae.decode(codes).shape == ae(y).shape == (2, K, *[8] * dims)
    assert ShapeAutoEncoder(K, base=64, depth=3).latent_channels == 512  # the paper's 512 features
    with pytest.raises(ValueError, match="divisible by 4"):
        ae.encode(torch.zeros(1, K, *[6] * dims))
    with pytest.raises(ValueError, match="3 input channel"):
        ae.encode(torch.zeros(1, 2, *[8] * dims))


def test_autoencoder_reconstructs_a_mask():
    torch.manual_seed(0)
    ae = ShapeAutoEncoder(K, base=4, depth=2)
    mask = _masks(1, 16, seed=3)
    optimiser = adam(ae, 1e-2)  # the paper's auto-encoder learning rate
    losses = [train_autoencoder_step(ae, optimiser, mask) for _ in range(300)]
    assert losses[-1] < 0.02 * losses[0]
    ae.eval()  # the running batch-norm statistics, as the frozen encoder will use them
    with torch.no_grad():
        reconstruction = ae(one_hot(mask, K)).argmax(dim=1)
        assert float(autoencoder_loss(ae, one_hot(mask, K))) < 0.05
    for label in (1, 2):
        a, b = reconstruction == label, mask == label
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.95
    assert (reconstruction != mask).sum() <= 2


def test_latent_discriminator_halves_features_and_size_and_outputs_probabilities():
    torch.manual_seed(0)
    disc = LatentDiscriminator(16, n_layers=3)
    x = torch.randn(4, 16, 16, 16) * 10
    shapes = []
    h = x
    for layer in disc.layers:
        conv = layer[0]
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1)
        assert [type(m) for m in layer] == [nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.ReLU]
        h = layer(h)
        shapes.append(tuple(h.shape))
    assert shapes == [(4, 8, 8, 8), (4, 4, 4, 4), (4, 2, 2, 2)]
    p = disc(x)
    assert p.shape == (4,)
    assert torch.all((p > 0) & (p < 1))
    assert torch.allclose(p, torch.sigmoid(disc.logits(x)))
    with pytest.raises(ValueError, match="divisible by 8"):
        disc(torch.randn(2, 16, 12, 12))
    with pytest.raises(ValueError, match="divisible by 8"):
        LatentDiscriminator(12, n_layers=3)


def test_mask_discriminator_3d():
    torch.manual_seed(0)
    disc = MaskDiscriminator(K, dims=3, n_layers=2, width=8)
    p = disc(one_hot(_masks(2, 8, dims=3), K))
    assert p.shape == (2,) and torch.all((p > 0) & (p < 1))
    assert [layer[0].out_channels for layer in disc.layers] == [4, 2]


# --- the regularisation terms ---------------------------------------------------------------------------------------

def test_regularisation_terms():
    _, ae, latent = _parts()
    mask_disc = MaskDiscriminator(K, n_layers=2, width=8).eval()
    latent.eval()
    y = one_hot(_masks(2, 16), K)
    probs = torch.softmax(torch.randn(2, K, 16, 16), dim=1)
    assert float(regularisation_term("none", probs, y)) == 0.0
    assert float(regularisation_term("shape_prior", y, y, encoder=ae)) == 0.0
    assert float(regularisation_term("shape_prior", probs, y, encoder=ae)) > 0.0
    spar = regularisation_term("spar", probs, y, encoder=ae, discriminator=latent)
    assert torch.allclose(spar, -torch.log(latent(ae.encode(probs))).mean())
    adversarial = regularisation_term("adversarial_mask", probs, y, discriminator=mask_disc)
    assert torch.allclose(adversarial, -torch.log(mask_disc(probs)).mean())
    with pytest.raises(ValueError, match="needs the frozen shape encoder"):
        regularisation_term("spar", probs, y, discriminator=latent)
    with pytest.raises(ValueError, match="needs a discriminator"):
        regularisation_term("adversarial_mask", probs, y)
    with pytest.raises(ValueError, match="must be frozen"):
        regularisation_term("shape_prior", probs, y, encoder=ShapeAutoEncoder(K, base=2, depth=2))
    with pytest.raises(ValueError, match="regulariser must be one of"):
        regularisation_term("tv", probs, y)


def test_none_regulariser_is_plain_cross_entropy():
    segmenter, _, _ = _parts()
    out = segmenter_step(segmenter, adam(segmenter, 1e-4), _batch(), regulariser="none")
    assert out["reg"] == 0.0 and out["loss"] == out["ce"] > 0


# --- the steps ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dims", [2, 3])
def test_spar_step_updates_discriminator_then_segmenter_and_leaves_the_encoder(dims):
    segmenter, ae, disc = _parts(dims)
    seg_opt, disc_opt = adam(segmenter, 1e-4), adam(disc, 1e-4)
    batch = _batch(2, 16, dims)
    encoder_before, seg_before, disc_before = _state(ae), _state(segmenter), _state(disc)
    calls = []
    seg_opt.register_step_post_hook(lambda *_: calls.append(("segmenter", _params_changed(disc, disc_before))))
    disc_opt.register_step_post_hook(lambda *_: calls.append(("discriminator", _params_changed(segmenter, seg_before))))
    out = spar_step(segmenter, seg_opt, batch, encoder=ae, discriminator=disc, discriminator_optimiser=disc_opt)
    # in turn: the discriminator's step first (segmenter untouched then), the segmenter's after it
    assert calls == [("discriminator", False), ("segmenter", True)]
    assert _params_changed(segmenter, seg_before) and _params_changed(disc, disc_before)
    assert _same(ae, encoder_before)  # weights and batch-norm buffers bit-identical
    assert not ae.training and not any(p.requires_grad for p in ae.parameters())
    assert all(p.grad is None for p in disc.parameters())
    assert set(out) == {"loss", "ce", "reg", "d_loss", "d_real", "d_fake"}
    assert all(isinstance(v, float) and v == v for v in out.values())
    assert 0 < out["d_real"] < 1 and 0 < out["d_fake"] < 1


@pytest.mark.parametrize("regulariser", ["adversarial_mask", "spar"])
def test_segmenter_step_does_not_change_the_discriminator(regulariser):
    segmenter, ae, disc = _parts(regulariser=regulariser)
    disc.train()
    before, seg_before = _state(disc), _state(segmenter)
    out = segmenter_step(segmenter, adam(segmenter, 1e-4), _batch(), regulariser=regulariser,
                         encoder=ae if regulariser == "spar" else None, discriminator=disc, lam=1.0)
    assert _same(disc, before)  # parameters and batch-norm statistics
    assert all(p.grad is None for p in disc.parameters())
    assert disc.training and all(p.requires_grad for p in disc.parameters())  # restored
    assert _params_changed(segmenter, seg_before)
    assert out["reg"] > 0 and out["loss"] == pytest.approx(out["ce"] + out["reg"], rel=1e-5)


@pytest.mark.parametrize("regulariser", ["adversarial_mask", "spar"])
def test_discriminator_step_does_not_change_the_segmenter(regulariser):
    segmenter, ae, disc = _parts(regulariser=regulariser)
    before, disc_before = _state(segmenter), _state(disc)
    out = discriminator_step(disc, adam(disc, 1e-4), _batch(), segmenter=segmenter,
                             encoder=ae if regulariser == "spar" else None, regulariser=regulariser)
    assert _same(segmenter, before)  # parameters and batch-norm statistics
    assert segmenter.training  # restored
    assert _params_changed(disc, disc_before)
    assert out["d_loss"] > 0


def test_discriminator_learns_to_separate():
    segmenter, ae, disc = _parts()
    opt = adam(disc, 1e-2)
    batch = _batch(4)
    first = discriminator_step(disc, opt, batch, segmenter=segmenter, encoder=ae, regulariser="spar")
    for _ in range(40):
        out = discriminator_step(disc, opt, batch, segmenter=segmenter, encoder=ae, regulariser="spar")
    assert out["d_loss"] < 0.5 * first["d_loss"]
    assert out["d_real"] > 0.5 > out["d_fake"] and out["d_real"] - out["d_fake"] > 0.3


@pytest.mark.parametrize("regulariser", REGULARISERS)
def test_every_regulariser_trains(regulariser):
    segmenter, ae, disc = _parts(regulariser=regulariser)
    adversarial = regulariser in ("adversarial_mask", "spar")
    kwargs = {"encoder": ae if regulariser in ("shape_prior", "spar") else None,
              "discriminator": disc if adversarial else None,
              "discriminator_optimiser": adam(disc, 1e-4) if adversarial else None}
    seg_opt = adam(segmenter, 1e-2)
    batch = _batch(2)
    first = spar_step(segmenter, seg_opt, batch, regulariser=regulariser, **kwargs)
    for _ in range(10):
        last = spar_step(segmenter, seg_opt, batch, regulariser=regulariser, **kwargs)
    assert last["ce"] < first["ce"]
    assert ("d_loss" in last) == adversarial


def test_bf16_step_and_errors():
    segmenter, ae, disc = _parts()
    out = spar_step(segmenter, adam(segmenter, 1e-4), _batch(), encoder=ae, discriminator=disc,
                    discriminator_optimiser=adam(disc, 1e-4), precision="bf16")
    assert all(v == v for v in out.values())
    with pytest.raises(ValueError, match="loss scaling"):
        segmenter_step(segmenter, adam(segmenter, 1e-4), _batch(), regulariser="none", precision="fp16")
    with pytest.raises(ValueError, match="needs discriminator_optimiser"):
        spar_step(segmenter, adam(segmenter, 1e-4), _batch(), encoder=ae, discriminator=disc)
    with pytest.raises(ValueError, match="adversarial regulariser"):
        discriminator_step(disc, adam(disc, 1e-4), _batch(), segmenter=segmenter, regulariser="shape_prior")
    with pytest.raises(ValueError, match="'image' and 'target'"):
        segmenter_step(segmenter, adam(segmenter, 1e-4), {"image": torch.zeros(1)}, regulariser="none")
    ae.train()
    with pytest.raises(ValueError, match="must be frozen"):
        segmenter_step(segmenter, adam(segmenter, 1e-4), _batch(), regulariser="spar", encoder=ae,
                       discriminator=disc)


# --- the settings ---------------------------------------------------------------------------------------------------

def test_settings_defaults_follow_the_paper_and_round_trip():
    s = SparSettings()
    assert (s.regulariser, s.lam, s.discriminator_lr, s.autoencoder_lr, s.autoencoder_epochs,
            s.autoencoder_batch_size, s.codes) == ("spar", 1e-2, 1e-4, 1e-2, 10, 32, 512)
    assert SparSettings.from_dict(s.to_dict()) == s
    assert SparSettings.from_dict({"lam": "1e-3", "regulariser": "shape_prior"}).lam == 1e-3
    with pytest.raises(AttributeError):
        s.lam = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(("regulariser", "needs", "adversarial"), [
    ("none", False, False), ("adversarial_mask", False, True), ("shape_prior", True, False), ("spar", True, True)])
def test_settings_say_what_the_regulariser_needs(regulariser, needs, adversarial):
    s = SparSettings(regulariser=regulariser)
    assert (s.needs_autoencoder, s.adversarial) == (needs, adversarial)


def test_autoencoder_key_depends_on_the_autoencoder_settings_only():
    key = SparSettings().autoencoder_key()
    assert len(key) == 10 and int(key, 16) >= 0
    assert key == SparSettings(regulariser="none", lam=0.5, discriminator_lr=1e-3, discriminator_layers=2
                               ).autoencoder_key()
    assert key == SparSettings(latent_channels=512).autoencoder_key()  # the default's effective value
    assert key == "c5e9b33214"  # stable across runs and versions (a changed key retrains shared auto-encoders)
    for change in ({"autoencoder_lr": 1e-3}, {"autoencoder_epochs": 3}, {"autoencoder_batch_size": 8},
                   {"autoencoder_base": 32}, {"autoencoder_depth": 2}, {"latent_channels": 64}):
        assert SparSettings(**change).autoencoder_key() != key, change
    assert SparSettings().autoencoder_key(seed=0) != key != SparSettings().autoencoder_key(seed=1)


@pytest.mark.parametrize(("values", "named"), [
    ({"lambda": 0.1}, "'lambda'"),
    ({"lr": 1e-4}, "'lr'"),  # the segmenter's lr, epochs, batch size and seed are the method's train block
    ({"epochs": 10}, "'epochs'"),
    ({"batch_size": 32}, "'batch_size'"),
    ({"seed": 0}, "'seed'"),
    ({"regulariser": "tv"}, "'regulariser'"),
    ({"lam": -1}, "'lam'"),
    ({"discriminator_lr": "fast"}, "'discriminator_lr'"),
    ({"autoencoder_lr": float("nan")}, "'autoencoder_lr'"),
    ({"autoencoder_epochs": 0}, "'autoencoder_epochs'"),
    ({"autoencoder_batch_size": 2.5}, "'autoencoder_batch_size'"),
    ({"latent_channels": 0}, "'latent_channels'"),
    ({"latent_channels": 12, "discriminator_layers": 3}, "'discriminator_layers'"),
])
def test_settings_errors_name_the_setting(values, named):
    with pytest.raises(ValueError, match=named):
        SparSettings.from_dict(values)

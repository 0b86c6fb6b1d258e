"""SPAR as a trainable method: the config block, the shape auto-encoder of a fold, the regularised training
(discriminator then segmenter, the encoder untouched), exact resume, the exported model and the latent codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

torch = pytest.importorskip("torch")

from mskseg.errors import ConfigError  # noqa: E402
from mskseg.io.volumes import write_volume  # noqa: E402
from mskseg.nn import spar_train  # noqa: E402
from mskseg.nn.checkpoint import load_state  # noqa: E402
from mskseg.nn.data import fit_to_size  # noqa: E402
from mskseg.nn.engine import train  # noqa: E402
from mskseg.nn.fit import loss_function  # noqa: E402
from mskseg.nn.method import MethodSpec  # noqa: E402
from mskseg.nn.model_info import load_trained  # noqa: E402
from mskseg.nn.models import build_model  # noqa: E402
from mskseg.nn.predict import predict_view  # noqa: E402
from mskseg.nn.settings import TrainSettings  # noqa: E402
from mskseg.nn.spar import adam, freeze, one_hot  # noqa: E402
from mskseg.nn.spar_regulariser import ShapeRegulariser, slice_multiple  # noqa: E402
from mskseg.nn.spar_settings import SparSettings  # noqa: E402
from mskseg.nn.spar_train import (  # noqa: E402
    AE_HISTORY,
    AutoencoderInfo,
    load_autoencoder,
    reconstruction_dice,
    train_autoencoder_fold,
    train_regularised_fold,
)
from mskseg.nn.training import ModelFiles, load_cases  # noqa: E402
from mskseg.nn.weights import read_state_dict  # noqa: E402
from tests.nn.test_training import phantom  # noqa: E402  (the same tiny bone and cartilage phantom)

REPO = Path(__file__).resolve().parents[2]
LABELS = {"bone": 1, "cartilage": 2}
#: a tiny auto-encoder (8 x 2**2 = 32 code channels at 1/4 size) and a one-layer discriminator
REGULARISATION = {"regulariser": "spar", "lam": 0.1, "discriminator_layers": 1, "autoencoder_base": 8,
                  "autoencoder_depth": 2, "autoencoder_epochs": 30, "autoencoder_batch_size": 8}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, list[str]]:
    root = tmp_path_factory.mktemp("cases")
    out: dict[str, list[str]] = {"image": [], "mask": []}
    for i in range(4):
        volumes = dict(zip(("image", "mask"), phantom(i), strict=True))
        for kind, volume in volumes.items():
            write_volume(volume, root / f"s{i}_{kind}.nii.gz")
            out[kind].append(str(root / f"s{i}_{kind}.nii.gz"))
    return out


def method(regularisation=None, **entry) -> MethodSpec:
    base = {"kind": "trained", "network": {"name": "unet2d", "base": 4, "depth": 2},
            "train": {"epochs": 2, "batch_size": 4, "lr": 0.01, "seed": 3, "steps_per_epoch": 3,
                      "validation": {"slices_per_volume": 4}},
            "regularisation": REGULARISATION if regularisation is None else regularisation}
    return MethodSpec.from_config("tiny", {**base, **entry})


@pytest.fixture(scope="module")
def autoencoder(files, tmp_path_factory) -> dict[str, Path]:
    """The shape auto-encoder of the training subjects s0, s1 (about 3 s)."""
    root = tmp_path_factory.mktemp("autoencoder")
    out = {"weights": root / "ae.pt", "info": root / "ae.json", "history": root / "ae.csv"}
    train_autoencoder_fold("sagittal", LABELS, ["s0", "s1"], files["mask"][:2],
                           SparSettings.from_dict(REGULARISATION), seed=0, slice_size=None, workdir=root / "work",
                           weights_out=out["weights"], info_out=out["info"], history_out=out["history"])
    return out


def fold_inputs(files, train=(0, 1), val=(2,)) -> tuple[dict, dict]:
    subjects = {"train": [f"s{i}" for i in train], "val": [f"s{i}" for i in val]}
    inputs = {f"{role}_{kind}": [files[kind][int(s[1:])] for s in names]
              for role, names in subjects.items() for kind in ("image", "mask")}
    return subjects, inputs


def outputs(folder: Path) -> ModelFiles:
    return ModelFiles(model=folder / "model.pt", info=folder / "model.json", history=folder / "history.csv",
                      curve=folder / "curve.png")


# --- the config block -----------------------------------------------------------------------------------------------

def test_regularisation_block_is_parsed_for_plane_views_only() -> None:
    spec = method()
    assert spec.regularisation == SparSettings.from_dict(REGULARISATION)
    assert method(regularisation={}).regularisation == SparSettings()
    assert MethodSpec.from_config("plain", {"kind": "trained"}).regularisation is None
    with pytest.raises(ConfigError, match=r"methods\.tiny\.regularisation.*plane view"):
        MethodSpec.from_config("tiny", {"view": "volume", "network": {"name": "unet3d", "base": 4, "depth": 2},
                                        "regularisation": {}})
    with pytest.raises(ConfigError, match=r"methods\.tiny\.regularisation.*plane view"):
        method(view="three_plane")
    with pytest.raises(ConfigError, match=r"methods\.tiny\.regularisation: unknown SPAR setting.*'lr'"):
        method(regularisation={"lr": 1e-4})
    with pytest.raises(ConfigError, match="cannot have `interactive`"):
        method(interactive={"rounds": [1]})


def test_schema_accepts_the_block_and_rejects_unknown_keys() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    trained = {"$ref": "#/$defs/trained_method", "$defs": schema["$defs"]}
    jsonschema.validate({"kind": "trained", "regularisation": REGULARISATION}, trained)
    jsonschema.validate({"kind": "trained", "regularisation": SparSettings().to_dict()}, trained)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"kind": "trained", "regularisation": {"epochs": 3}}, trained)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"kind": "trained", "regularisation": {"regulariser": "tv"}}, trained)


# --- stage 1: the shape auto-encoder --------------------------------------------------------------------------------

def test_autoencoder_reconstructs_the_training_masks(files, autoencoder) -> None:
    info = AutoencoderInfo.read(autoencoder["info"])
    settings = SparSettings.from_dict(REGULARISATION)
    assert (info.n_classes, info.label_values, info.view, info.base, info.depth, info.latent_channels) == (
        3, [1, 2], "sagittal", 8, 2, 32)
    assert info.slice_size == [20, 16] and info.key == settings.autoencoder_key(0)
    history = pd.read_csv(autoencoder["history"])
    assert list(history.columns) == list(AE_HISTORY) and len(history) == 30
    assert history["loss"].iloc[-1] < 0.2 * history["loss"].iloc[0]
    assert info.recon_dice >= 0.9
    ae = load_autoencoder(autoencoder["weights"], autoencoder["info"])
    assert not ae.training and not any(p.requires_grad for p in ae.parameters())
    # a training mask's slices, reconstructed by the exported network
    case = load_cases(["s0"], files["image"][:1], files["mask"][:1], label_values=[1, 2])[0]
    masks = torch.from_numpy(fit_to_size(np.moveaxis(case.target, 1, 0), (20, 16), 0))  # 18 slices of 20 x 14
    with torch.no_grad():
        reconstruction = ae(one_hot(masks, 3)).argmax(dim=1)
    assert reconstruction_dice(masks, reconstruction, 3) >= 0.9


def test_autoencoder_needs_a_plane_and_resumes_a_finished_run(files, autoencoder, tmp_path) -> None:
    with pytest.raises(ValueError, match="2D slices of a plane"):
        train_autoencoder_fold("mpr", LABELS, ["s0"], files["mask"][:1], SparSettings(), seed=0, slice_size=None,
                               workdir=tmp_path, weights_out=tmp_path / "w.pt", info_out=tmp_path / "i.json",
                               history_out=tmp_path / "h.csv")
    settings = SparSettings.from_dict({**REGULARISATION, "autoencoder_epochs": 1})
    info = train_autoencoder_fold("axial", LABELS, ["s0"], files["mask"][:1], settings, seed=1, slice_size=[17, 9],
                                  workdir=tmp_path / "work", weights_out=tmp_path / "w.pt",
                                  info_out=tmp_path / "i.json", history_out=tmp_path / "h.csv")
    assert info.slice_size == [20, 12]  # rounded up to multiples of 2**depth
    first = (tmp_path / "w.pt").read_bytes()
    train_autoencoder_fold("axial", LABELS, ["s0"], files["mask"][:1], settings, seed=1, slice_size=[17, 9],
                           workdir=tmp_path / "work", weights_out=tmp_path / "w.pt", info_out=tmp_path / "i.json",
                           history_out=tmp_path / "h.csv")
    assert (tmp_path / "w.pt").read_bytes() == first


# --- stage 2: one regularised step ----------------------------------------------------------------------------------

def _state(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(module, before) -> bool:
    after = module.state_dict()
    return after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def _changed(module, before) -> bool:
    return any(not torch.equal(p, before[name]) for name, p in module.named_parameters())


def test_one_spar_step_updates_discriminator_then_segmenter_and_not_the_encoder(autoencoder) -> None:
    settings = SparSettings.from_dict(REGULARISATION)
    ae = load_autoencoder(autoencoder["weights"], autoencoder["info"])
    torch.manual_seed(0)
    segmenter = build_model("unet2d", in_channels=1, n_classes=3, base=4, depth=2)
    regulariser = ShapeRegulariser(settings, loss_function("dice_ce"), ae, n_classes=3, seed=0)
    disc, optimiser = regulariser.discriminator, adam(segmenter, 1e-3)
    target = torch.zeros(4, 24, 16, dtype=torch.long)
    target[:, 4:16, 3:12], target[:, 8:12, 5:9] = 2, 1
    image = target[:, None].float() + 0.3 * torch.randn(4, 1, 24, 16)
    encoder_before, seg_before, disc_before = _state(ae), _state(segmenter), _state(disc)
    calls = []
    regulariser.optimiser.register_step_post_hook(lambda *_: calls.append(("discriminator",
                                                                           _changed(segmenter, seg_before))))
    optimiser.register_step_post_hook(lambda *_: calls.append(("segmenter", _changed(disc, disc_before))))
    segmenter.train()
    optimiser.zero_grad()
    loss = regulariser(segmenter(image), target, torch.ones(4, 24, 16), torch.ones(4))
    after_disc = _state(disc)
    loss.backward()
    optimiser.step()
    assert calls == [("discriminator", False), ("segmenter", True)]  # in turn: D first, S after it
    assert _changed(segmenter, seg_before) and _changed(disc, disc_before)
    assert _same(disc, after_disc)  # the segmenter's loss left D (weights and batch-norm statistics) alone
    assert _same(ae, encoder_before)  # the frozen encoder bit-identical
    assert disc.training and all(p.requires_grad for p in disc.parameters())
    means = regulariser.end_epoch(segmenter, 1, torch.device("cpu"), "fp32")
    assert set(means) == {"reg", "d_loss", "d_real", "d_fake"} and means["reg"] > 0


@pytest.mark.parametrize("regulariser", ["none", "adversarial_mask", "shape_prior"])
def test_each_baseline_trains_in_the_engine(autoencoder, tmp_path, regulariser) -> None:
    settings = SparSettings.from_dict({**REGULARISATION, "regulariser": regulariser})
    ae = load_autoencoder(autoencoder["weights"], autoencoder["info"])
    reg = ShapeRegulariser(settings, loss_function("ce"), ae, n_classes=3, seed=0)
    assert (reg.discriminator is None) == (regulariser != "adversarial_mask")
    assert slice_multiple(settings, 2) == 4 and slice_multiple(SparSettings.from_dict(REGULARISATION), 2) == 8
    data = [{"image": torch.randn(1, 16, 16), "target": (torch.rand(16, 16) * 3).long(),
             "weight": torch.ones(16, 16), "sample_weight": torch.tensor(1.0)} for _ in range(8)]
    torch.manual_seed(0)
    model = build_model("unet2d", in_channels=1, n_classes=3, base=4, depth=2)
    result = train(model, data, reg, TrainSettings(epochs=1, batch_size=4, lr=1e-3, monitor="train_loss",
                                                   device="cpu"), tmp_path, companion=reg)
    row = result.history.iloc[0]
    assert ("d_loss" in row) == (regulariser == "adversarial_mask")
    assert (row["reg"] == 0.0) == (regulariser == "none")


# --- stage 2: a fold, resumed, exported, with its latent codes ------------------------------------------------------

class Interrupt(Exception):
    pass


def test_killed_regularised_training_resumes_bit_identically(files, autoencoder, tmp_path, monkeypatch) -> None:
    spec = method(train={"epochs": 3, "batch_size": 4, "lr": 0.01, "seed": 3, "steps_per_epoch": 3,
                         "validation": {"slices_per_volume": 4}})
    subjects, inputs = fold_inputs(files)
    kwargs = {"autoencoder_weights": autoencoder["weights"], "autoencoder_info": autoencoder["info"]}
    train_regularised_fold(spec, "sagittal", LABELS, subjects, inputs, tmp_path / "ref", outputs(tmp_path / "a"),
                           latents_out=tmp_path / "a" / "latents.npz", **kwargs)
    real, calls = spar_train.loss_function, []

    def failing(name):
        loss = real(name)

        def wrapped(*args):
            calls.append(1)
            if len(calls) == 5:  # epoch 2, step 2: one discriminator and segmenter step of epoch 2 applied
                raise Interrupt
            return loss(*args)
        return wrapped

    monkeypatch.setattr(spar_train, "loss_function", failing)
    with pytest.raises(Interrupt):
        train_regularised_fold(spec, "sagittal", LABELS, subjects, inputs, tmp_path / "run", outputs(tmp_path / "b"),
                               latents_out=tmp_path / "b" / "latents.npz", **kwargs)
    monkeypatch.setattr(spar_train, "loss_function", real)
    (state_path,) = (tmp_path / "run").glob("regularised-*/last.pt")
    assert load_state(state_path)["epoch"] == 1
    resumed = train_regularised_fold(spec, "sagittal", LABELS, subjects, inputs, tmp_path / "run",
                                     outputs(tmp_path / "b"), latents_out=tmp_path / "b" / "latents.npz", **kwargs)
    assert resumed.resumed_from == 1 and resumed.epochs_run == 3
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
    (ref_path,) = (tmp_path / "ref").glob("regularised-*/last.pt")
    ref, run = load_state(ref_path), load_state(state_path)
    for key, value in read_state_dict(ref_path.parent / "last_weights.pt").items():
        assert torch.equal(value, read_state_dict(state_path.parent / "last_weights.pt")[key]), key
    for key, value in ref["companion"]["discriminator"].items():
        assert torch.equal(value, run["companion"]["discriminator"][key]), key
    for a, b in zip(ref["companion"]["optimiser"]["state"].values(), run["companion"]["optimiser"]["state"].values(),
                    strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    a, b = np.load(tmp_path / "a" / "latents.npz"), np.load(tmp_path / "b" / "latents.npz")
    assert all(np.array_equal(a[key], b[key]) for key in a.files)
    history = pd.read_csv(tmp_path / "b" / "history.csv")
    assert {"reg", "d_loss", "d_real", "d_fake"} <= set(history.columns) and history["d_loss"].notna().all()


def test_exported_model_predicts_and_latents_have_pred_and_ref_each_epoch(files, autoencoder, tmp_path) -> None:
    spec = method()
    subjects, inputs = fold_inputs(files)
    result = train_regularised_fold(spec, "sagittal", LABELS, subjects, inputs, tmp_path / "work",
                                    outputs(tmp_path), autoencoder_weights=autoencoder["weights"],
                                    autoencoder_info=autoencoder["info"], latents_out=tmp_path / "latents.npz")
    assert result.epochs_run == 2 and (tmp_path / "curve.png").is_file()
    assert not list((tmp_path / "work").glob("*/cache"))
    model, info = load_trained(tmp_path / "model.pt", tmp_path / "model.json", torch.device("cpu"))
    assert info.slice_size == [24, 16]  # multiples of 2**(depth 2 + 1 discriminator layer)
    test = load_cases(["s3"], files["image"][3:], label_values=[1, 2])[0]
    probs = predict_view(model, info, test, device=torch.device("cpu"))
    assert probs.shape == (3, *test.image.shape)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    with np.load(tmp_path / "latents.npz", allow_pickle=False) as data:
        epoch, kind, subject, codes = data["epoch"], data["kind"], data["subject"], data["codes"]
        assert set(data.files) == {"epoch", "kind", "subject", "slice", "codes"}
    assert sorted(set(epoch.tolist())) == [1, 2] and codes.shape == (len(epoch), 32)
    assert set(subject.tolist()) == {"s2"}  # the validation subject's slices
    for e in (1, 2):
        pred, ref = codes[(epoch == e) & (kind == "pred")], codes[(epoch == e) & (kind == "ref")]
        assert len(pred) == len(ref) == 18  # every sagittal slice of s2 (fewer than 64)
    np.testing.assert_array_equal(codes[(epoch == 1) & (kind == "ref")], codes[(epoch == 2) & (kind == "ref")])
    assert not np.array_equal(codes[(epoch == 1) & (kind == "pred")], codes[(epoch == 2) & (kind == "pred")])


def test_mismatched_autoencoder_and_unregularised_method_are_refused(files, autoencoder, tmp_path) -> None:
    subjects, inputs = fold_inputs(files)
    kwargs = {"autoencoder_weights": autoencoder["weights"], "autoencoder_info": autoencoder["info"],
              "latents_out": tmp_path / "latents.npz"}
    with pytest.raises(ValueError, match="no regularisation block"):
        train_regularised_fold(MethodSpec.from_config("plain", {"kind": "trained"}), "sagittal", LABELS, subjects,
                               inputs, tmp_path / "work", outputs(tmp_path), **kwargs)
    other = method(regularisation={**REGULARISATION, "autoencoder_epochs": 5})
    with pytest.raises(ValueError, match="trained with other settings"):
        train_regularised_fold(other, "sagittal", LABELS, subjects, inputs, tmp_path / "work", outputs(tmp_path),
                               **kwargs)
    with pytest.raises(ValueError, match="learnt labels"):
        train_regularised_fold(method(), "sagittal", {"bone": 1}, subjects, inputs, tmp_path / "work",
                               outputs(tmp_path), **kwargs)


def test_regulariser_refuses_a_trainable_encoder(autoencoder) -> None:
    ae = load_autoencoder(autoencoder["weights"], autoencoder["info"]).train()
    with pytest.raises(ValueError, match="must be frozen"):
        ShapeRegulariser(SparSettings(), loss_function("ce"), ae, n_classes=3)
    with pytest.raises(ValueError, match="3 classes, the segmenter 2"):
        ShapeRegulariser(SparSettings(), loss_function("ce"), freeze(ae), n_classes=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_regularised_training_on_the_gpu_in_bf16_resumes(autoencoder, tmp_path) -> None:
    settings = SparSettings.from_dict(REGULARISATION)
    g = torch.Generator().manual_seed(0)
    data = [{"image": torch.randn(1, 16, 16, generator=g), "target": (torch.rand(16, 16, generator=g) * 3).long(),
             "weight": torch.ones(16, 16), "sample_weight": torch.tensor(1.0)} for _ in range(8)]
    calls = []

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:  # epoch 2, step 1
            raise Interrupt
        return loss_function("ce")(*args)

    def run(base_loss):
        ae = load_autoencoder(autoencoder["weights"], autoencoder["info"])
        reg = ShapeRegulariser(settings, base_loss, ae, n_classes=3, seed=0)
        torch.manual_seed(0)
        model = build_model("unet2d", in_channels=1, n_classes=3, base=4, depth=2)
        return train(model, data, reg, TrainSettings(epochs=2, batch_size=4, lr=1e-3, monitor="train_loss",
                                                     device="cuda", precision="bf16"), tmp_path, companion=reg), reg

    with pytest.raises(Interrupt):
        run(failing)
    result, reg = run(loss_function("ce"))  # the discriminator's Adam state is restored onto the GPU
    assert result.resumed_from == 1 and result.epochs_run == 2
    assert next(reg.discriminator.parameters()).device.type == "cuda"
    assert np.isfinite(result.history[["train_loss", "reg", "d_loss"]].to_numpy()).all()
    records = load_state(tmp_path / "last.pt")["companion"]["latents"]
    assert records is None  # no recorder given

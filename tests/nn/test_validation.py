"""Validation during training: every k epochs (best epoch, patience and plateau count validations), on a
fixed seeded sample of slices, the time split in the history and the log, and the settings' checks."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mskseg.errors import ConfigError  # noqa: E402
from mskseg.nn.data import Case  # noqa: E402
from mskseg.nn.engine import train  # noqa: E402
from mskseg.nn.history import COLUMNS  # noqa: E402
from mskseg.nn.method import MethodSpec  # noqa: E402
from mskseg.nn.model_info import ModelInfo  # noqa: E402
from mskseg.nn.settings import TrainSettings, ValidationSettings  # noqa: E402
from mskseg.nn.validation import dice_and_nll, make_validator, validation_slices  # noqa: E402
from tests.nn.test_engine import TinySet, pixel_loss, settings, tiny_model  # noqa: E402

ROTATED = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def counting(values):
    """A validate function returning ``values[call]`` as val_dice, recording the calls."""
    calls = []

    def validate(model, device, precision):
        calls.append(len(calls))
        return {"val_dice": values[len(calls) - 1], "val_loss": 1.0}
    return validate, calls


def test_validation_every_k_epochs_runs_on_the_expected_epochs(tmp_path, caplog):
    validate, calls = counting([0.1, 0.2, 0.3])
    with caplog.at_level(logging.INFO, logger="mskseg.nn.engine"):
        result = train(tiny_model(), TinySet(), pixel_loss,
                       settings(epochs=7, monitor="val_dice", validation={"every_epochs": 3}), tmp_path / "run",
                       validate=validate)
    history = result.history
    validated = history.loc[history["val_dice"].notna(), "epoch"].tolist()
    assert validated == [3, 6, 7] and len(calls) == 3  # every third epoch and the last one
    assert history.loc[history["val_dice"].notna(), "val_dice"].tolist() == [0.1, 0.2, 0.3]
    assert history["val_seconds"].notna().tolist() == [e in (3, 6, 7) for e in range(1, 8)]
    assert result.best_epoch == 7 and result.epochs_run == 7
    lines = [r.message for r in caplog.records if r.message.startswith("epoch ")]
    assert "no validation" in lines[0] and "validation " in lines[2] and "(best)" in lines[2]
    assert "(best)" not in lines[3]


def test_patience_and_plateau_count_validations(tmp_path):
    # every 2nd epoch; the monitored Dice improves once, then stays flat: patience 2 validations -> stop at 6
    validate, calls = counting([0.5, 0.5, 0.5, 0.5, 0.5])
    result = train(tiny_model(), TinySet(), pixel_loss,
                   settings(epochs=20, monitor="val_dice", early_stopping=2, schedule="plateau", plateau_patience=1,
                            plateau_factor=0.5, validation={"every_epochs": 2}), tmp_path / "run",
                   validate=validate)
    assert result.stopped_early and result.epochs_run == 6 and len(calls) == 3 and result.best_epoch == 2
    # the lr (the one each epoch used) halves after the flat validation of epoch 4, not after epochs without one
    assert result.history["lr"].tolist() == pytest.approx([0.01] * 4 + [0.005] * 2)


def test_every_epoch_is_the_default_and_train_loss_ignores_the_interval(tmp_path):
    assert TrainSettings().validation == ValidationSettings(every_epochs=1, slices_per_volume=None, seed=0)
    validate, calls = counting([0.3] * 3)
    result = train(tiny_model(), TinySet(), pixel_loss, settings(validation={"every_epochs": 2}), tmp_path / "run",
                   validate=validate)
    assert len(calls) == 2 and result.best_epoch > 0  # epochs 2 and 3 validated; train_loss judged every epoch


def test_history_records_the_time_split(tmp_path):
    validate, _ = counting([0.3] * 3)
    result = train(tiny_model(), TinySet(), pixel_loss, settings(monitor="val_dice"), tmp_path / "run",
                   validate=validate)
    history = result.history
    assert {"train_seconds", "val_seconds"} <= set(COLUMNS) and list(history.columns) == list(COLUMNS)
    assert (history["train_seconds"] > 0).all() and (history["val_seconds"] >= 0).all()
    assert (history["train_seconds"] + history["val_seconds"] <= history["seconds"] + 1e-6).all()
    no_validation = train(tiny_model(), TinySet(), pixel_loss, settings(), tmp_path / "plain").history
    assert no_validation["val_seconds"].isna().all() and no_validation["train_seconds"].notna().all()


# ---- which slices, and the sampled validation --------------------------------------------------------
def test_validation_slices_are_stratified_seeded_and_per_subject():
    picked = validation_slices(100, 10, seed=3, name="knee001")
    assert len(picked) == 10 and np.all(np.diff(picked) > 0)
    assert np.all(picked // 10 == np.arange(10))  # one from each run of 10 slices
    assert np.array_equal(picked, validation_slices(100, 10, seed=3, name="knee001"))
    assert not np.array_equal(picked, validation_slices(100, 10, seed=4, name="knee001"))
    assert not np.array_equal(picked, validation_slices(100, 10, seed=3, name="knee002"))
    uneven = validation_slices(7, 3, seed=0, name="a")  # runs 0-1, 2-3, 4-6
    assert 0 <= uneven[0] <= 1 and 2 <= uneven[1] <= 3 and 4 <= uneven[2] <= 6
    assert np.array_equal(validation_slices(5, 8, seed=0, name="a"), np.arange(5))
    assert np.array_equal(validation_slices(5, None, seed=0, name="a"), np.arange(5))


def _case(name: str, shape=(14, 18, 12), seed=0) -> Case:
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    r = np.sqrt((grid ** 2).sum(0))
    target = np.where(r < 0.5, 2, np.where(r < 0.9, 1, 0)).astype(np.int64)
    image = (target * 1.5 + rng.normal(0, 0.3, shape)).astype(np.float32)
    return Case(name, image, target, None, (1.0, 1.2, 2.0), ROTATED)


@pytest.mark.parametrize("n_slices", [1, 3])
def test_sampled_validation_is_the_full_one_on_the_same_slices(n_slices):
    name = "unet25d" if n_slices > 1 else "unet2d"
    info = ModelInfo(method="m", view="coronal", network={"name": name, "base": 4, "depth": 2,
                                                          **({"n_slices": n_slices} if n_slices > 1 else {})},
                     n_classes=3, label_values=[1, 2], n_slices=n_slices, multiple=4, train_subjects=[],
                     val_subjects=[])
    torch.manual_seed(0)
    model = info.build().eval()
    cases = [_case("a"), _case("b", (12, 16, 10), seed=1)]
    device = torch.device("cpu")
    sample = ValidationSettings(slices_per_volume=4, seed=7)
    sampled = make_validator(info, cases, 5, sample)
    first = sampled(model, device, "fp32")
    assert sampled(model, device, "fp32") == first  # the same slices at every validation
    full = make_validator(info, cases, 5)(model, device, "fp32")
    assert first != full
    # the full validation's probabilities on the sampled slices give the sampled scores
    from mskseg.nn.predict import predict_view

    scores = []
    for case in cases:
        axis = case.axis("coronal")
        picked = validation_slices(case.image.shape[axis], 4, seed=7, name=case.name)
        probs = predict_view(model, info, case, device=device, batch_size=5)
        scores.append(dice_and_nll(np.take(probs, picked, axis=axis + 1), np.take(case.target, picked, axis=axis)))
    assert first["val_dice"] == pytest.approx(np.mean([s[0] for s in scores]), abs=1e-9)
    assert first["val_loss"] == pytest.approx(np.mean([s[1] for s in scores]), rel=1e-5)
    everything = make_validator(info, cases, 5, ValidationSettings(slices_per_volume=1000))(model, device, "fp32")
    assert everything["val_dice"] == pytest.approx(full["val_dice"], abs=1e-9)  # more than the volume: all slices


def test_sampled_validation_needs_a_plane_view():
    info = ModelInfo(method="m", view="3d", network={"name": "unet3d", "base": 4, "depth": 2}, n_classes=3,
                     label_values=[1, 2], n_slices=1, multiple=4, train_subjects=[], val_subjects=[],
                     patch_size=[8, 8, 8], overlap=0.5)
    with pytest.raises(ValueError, match="plane view"):
        make_validator(info, [_case("a")], 2, ValidationSettings(slices_per_volume=4))
    entry = {"kind": "trained", "view": "volume", "network": {"name": "unet3d"}, "patch": {"size": [16, 16, 16]},
             "train": {"validation": {"slices_per_volume": 8}}}
    with pytest.raises(ConfigError, match=r"methods\.m\.train\.validation\.slices_per_volume"):
        MethodSpec.from_config("m", entry)
    entry = {"kind": "trained", "view": "three_plane", "train": {"validation": {"slices_per_volume": 8,
                                                                                "every_epochs": 5}}}
    assert MethodSpec.from_config("m", entry).train.validation.slices_per_volume == 8


@pytest.mark.parametrize(("values", "problem"), [
    ({"every_epochs": 0}, "every_epochs"), ({"every_epochs": 1.5}, "every_epochs"),
    ({"slices_per_volume": 0}, "slices_per_volume"), ({"seed": "x"}, "seed"), ({"often": 2}, "often"),
])
def test_validation_settings_are_checked(values, problem):
    with pytest.raises(ValueError, match=problem):
        TrainSettings.from_dict({"validation": values})


def test_validation_settings_round_trip_and_fingerprint():
    s = TrainSettings.from_dict({"validation": {"every_epochs": 5, "slices_per_volume": 32, "seed": 2}})
    assert s.to_dict()["validation"] == {"every_epochs": 5, "slices_per_volume": 32, "seed": 2}
    assert TrainSettings.from_dict(s.to_dict()) == s
    assert s.fingerprint() != TrainSettings().fingerprint()  # validation changes the best epoch: a new run
    with pytest.raises(ValueError, match="mapping"):
        TrainSettings(validation=3)
    assert math.isfinite(s.lr)

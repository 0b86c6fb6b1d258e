"""The training engine: learning, determinism, exact resume (after an exception and after SIGKILL),
schedules, early stopping, the work-folder files and the errors."""

from __future__ import annotations

import functools
import logging
import math
import operator
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import Dataset  # noqa: E402

from mskseg.nn.checkpoint import CheckpointError, load_state  # noqa: E402
from mskseg.nn.engine import _epoch_batches, train  # noqa: E402
from mskseg.nn.history import COLUMNS, TIMING  # noqa: E402
from mskseg.nn.losses import weight_map_cross_entropy  # noqa: E402
from mskseg.nn.models import build_model  # noqa: E402
from mskseg.nn.settings import TrainSettings  # noqa: E402
from mskseg.nn.weights import read_state_dict  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


class TinySet(Dataset):
    """``n`` random 2-channel ``size``² images; the target is where channel 0 is positive (learnable).

    Items are flipped left-right with a probability drawn from ``(seed, epoch, index)``, so the
    engine must call ``set_epoch`` for runs to agree.
    """

    def __init__(self, n: int = 12, size: int = 16, seed: int = 0) -> None:
        self.images = np.random.default_rng(seed).normal(size=(n, 2, size, size)).astype(np.float32)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image = self.images[index]
        if np.random.default_rng([self.seed, self.epoch, index]).random() < 0.5:
            image = image[:, :, ::-1]
        image = torch.from_numpy(image.copy())
        return {"image": image, "target": (image[0] > 0).long(), "weight": torch.ones(image.shape[1:]),
                "sample_weight": torch.tensor(1.0)}


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("unet2d", in_channels=2, n_classes=2, base=4, depth=2, dropout=0.2)


def pixel_loss(logits, target, weight, sample_weight):
    return weight_map_cross_entropy(logits, target, weight, sample_weight=sample_weight)


def validate_loss(model, device, precision):
    """A validation that depends on the model: the loss on the first four (unflipped) items."""
    data = TinySet()
    data.set_epoch(0)
    batch = [data[i] for i in range(4)]
    image = torch.stack([b["image"] for b in batch]).to(device)
    target = torch.stack([b["target"] for b in batch]).to(device)
    logits = model(image)
    dice = ((logits.argmax(1) == 1) & (target == 1)).sum() * 2 / ((logits.argmax(1) == 1).sum() + target.sum())
    return {"val_loss": float(torch.nn.functional.cross_entropy(logits.float(), target)), "val_dice": float(dice)}


def settings(**overrides) -> TrainSettings:
    base = {"epochs": 3, "batch_size": 4, "lr": 1e-2, "monitor": "train_loss", "device": "cpu", "progress": False,
            "early_stopping": None, "seed": 3}
    return TrainSettings(**{**base, **overrides})


#: the settings of the resume tests (shared with the subprocess of the SIGKILL test)
RESUME = {"epochs": 3, "monitor": "val_loss", "plateau_patience": 1, "plateau_factor": 0.5}


def constant(value: float = 0.5):
    def validate(model, device, precision):
        return {"val_dice": value}
    return validate


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: bit-identical results between this process and the subprocess, and no
    oversubscription on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_loss_falls_and_files_written(tmp_path, caplog):
    model = tiny_model()
    rng_before = torch.get_rng_state()
    with caplog.at_level(logging.INFO, logger="mskseg.nn.engine"):
        result = train(model, TinySet(), pixel_loss, settings(epochs=6), tmp_path, validate=validate_loss)
    loss = result.history["train_loss"].to_numpy()
    assert loss[-1] < 0.8 * loss[0]
    assert result.epochs_run == 6 and not result.stopped_early and result.resumed_from is None
    assert result.best_epoch == int(np.argmin(loss)) + 1 and result.best_value == pytest.approx(loss.min())
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history.columns) == list(COLUMNS) and list(history["epoch"]) == [1, 2, 3, 4, 5, 6]
    assert np.isfinite(history[["val_loss", "val_dice", "seconds", "samples_per_s"]].to_numpy()).all()
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.best_weights.is_file() and result.last_weights.is_file()
    assert load_state(tmp_path / "last.pt")["finished"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    text = caplog.text
    assert "training on cpu" in text and "epoch 6/6: train_loss" in text and "samples/s" in text
    assert not torch.are_deterministic_algorithms_enabled()  # the caller's setting is restored
    assert torch.equal(torch.get_rng_state(), rng_before)  # and the caller's RNG state


def test_same_seed_same_weights_with_and_without_workers(tmp_path):
    runs = {}
    for name, workers in (("a", 0), ("b", 0), ("c", 2)):
        train(tiny_model(), TinySet(), pixel_loss, settings(num_workers=workers), tmp_path / name)
        runs[name] = read_state_dict(tmp_path / name / "last_weights.pt")
    assert_same_weights(runs["a"], runs["b"])
    assert_same_weights(runs["a"], runs["c"])
    train(tiny_model(), TinySet(), pixel_loss, settings(seed=4), tmp_path / "d")
    other = read_state_dict(tmp_path / "d" / "last_weights.pt")
    assert any(not torch.equal(runs["a"][k], other[k]) for k in other)


class Interrupt(Exception):
    pass


def test_resume_after_exception_is_exact(tmp_path, caplog):
    reference = train(tiny_model(), TinySet(), pixel_loss, settings(**RESUME), tmp_path / "ref",
                      validate=validate_loss)
    calls = []

    def failing(*args):
        calls.append(1)
        if len(calls) == 5:  # epoch 2 (3 steps per epoch), step 2: one step of epoch 2 already applied
            raise Interrupt
        return pixel_loss(*args)

    with pytest.raises(Interrupt):
        train(tiny_model(), TinySet(), failing, settings(**RESUME), tmp_path / "run", validate=validate_loss)
    assert load_state(tmp_path / "run" / "last.pt")["epoch"] == 1
    with caplog.at_level(logging.INFO, logger="mskseg.nn.engine"):
        resumed = train(tiny_model(), TinySet(), pixel_loss, settings(**RESUME), tmp_path / "run",
                        validate=validate_loss)
    assert "resuming after epoch 1" in caplog.text
    assert resumed.resumed_from == 1 and resumed.epochs_run == 3
    for name in ("last_weights.pt", "best_weights.pt"):
        assert_same_weights(read_state_dict(tmp_path / "ref" / name), read_state_dict(tmp_path / "run" / name))
    pd.testing.assert_frame_equal(resumed.history.drop(columns=list(TIMING)),
                                  reference.history.drop(columns=list(TIMING)))
    ref_state, run_state = load_state(tmp_path / "ref" / "last.pt"), load_state(tmp_path / "run" / "last.pt")
    assert ref_state["scheduler"] == run_state["scheduler"]


_KILLED_RUN = """
import sys, time
from pathlib import Path
import torch
sys.path.insert(0, {repo!r})
from mskseg.nn.engine import train
from tests.nn.test_engine import RESUME, TinySet, pixel_loss, settings, tiny_model, validate_loss

torch.set_num_threads(1)
marker = Path({marker!r})
calls = []

def hanging(*args):
    calls.append(1)
    if len(calls) == 5:  # epoch 2, step 2: say so, then hang until killed
        marker.write_text("hanging")
        time.sleep(600)
    return pixel_loss(*args)

train(tiny_model(), TinySet(), hanging, settings(**RESUME), Path({workdir!r}), validate=validate_loss)
"""


def test_resume_after_sigkill_is_exact(tmp_path):
    workdir, marker = tmp_path / "run", tmp_path / "hanging"
    script = tmp_path / "killed_run.py"
    script.write_text(textwrap.dedent(_KILLED_RUN.format(repo=str(REPO), marker=str(marker), workdir=str(workdir))))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:  # the uninterrupted reference run meanwhile (the subprocess spends seconds importing torch)
        train(tiny_model(), TinySet(), pixel_loss, settings(**RESUME), tmp_path / "ref", validate=validate_loss)
        deadline = time.monotonic() + 300  # a bound against hanging the suite, not a timing assertion
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"the training subprocess ended early:\n{proc.stdout.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("the training subprocess never reached epoch 2")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert load_state(workdir / "last.pt")["epoch"] == 1
    resumed = train(tiny_model(), TinySet(), pixel_loss, settings(**RESUME), workdir, validate=validate_loss)
    assert resumed.resumed_from == 1
    assert_same_weights(read_state_dict(tmp_path / "ref" / "last_weights.pt"),
                        read_state_dict(workdir / "last_weights.pt"))
    assert not [p for p in workdir.iterdir() if p.name.startswith(".tmp-")]


def test_plateau_lowers_lr_by_ten_percent_after_two_flat_epochs(tmp_path):
    result = train(tiny_model(), TinySet(), pixel_loss,
                   settings(epochs=6, steps_per_epoch=1, lr=1e-3, monitor="val_dice", schedule="plateau"),
                   tmp_path, validate=constant())
    expected = [1e-3, 1e-3, 1e-3, 9e-4, 9e-4, 8.1e-4]
    assert result.history["lr"].to_numpy() == pytest.approx(expected, rel=1e-9)


def test_cosine_schedule(tmp_path):
    result = train(tiny_model(), TinySet(), pixel_loss,
                   settings(epochs=4, steps_per_epoch=1, lr=1e-2, min_lr=1e-3, schedule="cosine"), tmp_path)
    expected = [1e-3 + 9e-3 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert result.history["lr"].to_numpy() == pytest.approx(expected, rel=1e-9)


def test_constant_schedule_keeps_lr(tmp_path):
    result = train(tiny_model(), TinySet(), pixel_loss, settings(steps_per_epoch=1, schedule="constant"), tmp_path)
    assert list(result.history["lr"]) == [1e-2] * 3


def test_early_stopping_at_the_right_epoch(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="mskseg.nn.engine"):
        result = train(tiny_model(), TinySet(), pixel_loss,
                       settings(epochs=10, steps_per_epoch=1, monitor="val_dice", early_stopping=3), tmp_path,
                       validate=constant())
    assert result.stopped_early and result.epochs_run == 4 and len(result.history) == 4
    assert result.best_epoch == 1 and result.best_value == 0.5
    assert "stopped early after epoch 4" in caplog.text
    state = load_state(tmp_path / "last.pt")
    assert state["finished"] and state["stopped_early"]


def test_best_weights_are_those_of_the_best_epoch(tmp_path):
    values, snapshots = [0.2, 0.6, 0.4, 0.5], []

    def validate(model, device, precision):
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"val_dice": values[len(snapshots) - 1], "val_loss": 1.0, "val_extra": 7.0}

    result = train(tiny_model(), TinySet(), pixel_loss, settings(epochs=4, monitor="val_dice"), tmp_path,
                   validate=validate)
    assert result.best_epoch == 2 and result.best_value == 0.6
    assert_same_weights(read_state_dict(result.best_weights), snapshots[1])
    assert_same_weights(read_state_dict(result.last_weights), snapshots[3])
    assert list(pd.read_csv(tmp_path / "history.csv").columns) == [*COLUMNS, "val_extra"]


def test_finished_run_returns_without_training(tmp_path, caplog):
    first = train(tiny_model(), TinySet(), pixel_loss, settings(steps_per_epoch=1), tmp_path)

    def never(*args):
        raise AssertionError("the loss of a finished run must not be called")

    model = tiny_model(seed=9)
    with caplog.at_level(logging.INFO, logger="mskseg.nn.engine"):
        again = train(model, TinySet(), never, settings(steps_per_epoch=1, progress=True), tmp_path)
    assert "finished run" in caplog.text
    assert again.resumed_from == 3 and again.epochs_run == 3 and again.best_epoch == first.best_epoch
    pd.testing.assert_frame_equal(again.history, first.history)
    assert_same_weights(model.state_dict(), read_state_dict(first.last_weights))
    first.best_weights.unlink()
    with pytest.raises(CheckpointError, match=r"best_weights.pt is missing"):
        train(model, TinySet(), never, settings(steps_per_epoch=1), tmp_path)


def test_other_settings_start_afresh(tmp_path, caplog):
    train(tiny_model(), TinySet(), pixel_loss, settings(epochs=2, steps_per_epoch=1), tmp_path)
    with caplog.at_level(logging.WARNING, logger="mskseg.nn.engine"):
        result = train(tiny_model(), TinySet(), pixel_loss, settings(epochs=2, steps_per_epoch=1, lr=2e-2), tmp_path)
    assert "starting afresh" in caplog.text
    assert result.resumed_from is None and list(result.history["lr"]) == [2e-2, 2e-2]


def test_fingerprint_ignores_only_presentation_settings():
    base = TrainSettings()
    assert TrainSettings(progress=True, tensorboard=True, num_workers=4).fingerprint() == base.fingerprint()
    for change in ({"lr": 2e-5}, {"seed": 1}, {"epochs": 41}, {"precision": "bf16"}, {"batch_size": 8}):
        assert TrainSettings(**change).fingerprint() != base.fingerprint(), change


def test_from_dict_coerces_and_checks():
    parsed = TrainSettings.from_dict({"lr": "1e-4", "betas": [0.8, 0.9], "epochs": 3, "early_stopping": None})
    assert parsed.lr == 1e-4 and parsed.betas == (0.8, 0.9) and parsed.early_stopping is None
    assert TrainSettings.from_dict({}) == TrainSettings()


@pytest.mark.parametrize(("values", "field"), [
    ({"epoch": 3}, "epoch.*allowed: epochs"), ({"epochs": 0}, "epochs"), ({"lr": 0}, "lr"), ({"lr": "fast"}, "lr"),
    ({"schedule": "step"}, "schedule"), ({"monitor": "dice"}, "monitor"), ({"plateau_factor": 1.0}, "plateau_factor"),
    ({"betas": [0.9]}, "betas"), ({"batch_size": 2.5}, "batch_size"), ({"early_stopping": 0}, "early_stopping"),
    ({"device": "gpu"}, "device"), ({"precision": "fp64"}, "precision"), ({"channels_last": "yes"}, "channels_last"),
    ({"min_lr": 1.0}, "min_lr"), ({"grad_clip": 0}, "grad_clip"), ({"steps_per_epoch": True}, "steps_per_epoch"),
    ({"epochs": "inf"}, "epochs"), ({"seed": float("nan")}, "seed"),
])
def test_from_dict_rejects(values, field):
    with pytest.raises(ValueError, match=field):
        TrainSettings.from_dict(values)


def test_epoch_batches_drop_last_and_repeat():
    plain = _epoch_batches(10, settings(), 1)
    assert [len(b) for b in plain] == [4, 4] and len(set(functools.reduce(operator.iadd, plain, []))) == 8
    assert [len(b) for b in _epoch_batches(3, settings(), 1)] == [3]
    assert plain == _epoch_batches(10, settings(), 1) and plain != _epoch_batches(10, settings(), 2)
    steps = functools.reduce(operator.iadd, _epoch_batches(6, settings(steps_per_epoch=5), 1), [])
    assert len(steps) == 20 and sorted(steps[:6]) == list(range(6)) and sorted(steps[6:12]) == list(range(6))


def test_tensorboard(tmp_path):
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="tensorboard"):
            train(tiny_model(), TinySet(), pixel_loss, settings(tensorboard=True), tmp_path / "run")
        assert not (tmp_path / "run").exists()
    else:
        train(tiny_model(), TinySet(), pixel_loss, settings(epochs=1, steps_per_epoch=1, tensorboard=True), tmp_path)
        assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tensorboard").iterdir())


def test_non_finite_loss_raises_without_checkpoint(tmp_path):
    calls = []

    def exploding(*args):
        calls.append(1)
        loss = pixel_loss(*args)
        return loss * math.nan if len(calls) == 2 else loss

    with pytest.raises(RuntimeError, match="epoch 2, step 1"):
        train(tiny_model(), TinySet(), exploding, settings(steps_per_epoch=1), tmp_path)
    assert load_state(tmp_path / "last.pt")["epoch"] == 1


def test_errors_before_training(tmp_path):
    with pytest.raises(ValueError, match="fp16"):
        train(tiny_model(), TinySet(), pixel_loss, settings(precision="fp16"), tmp_path / "a")
    with pytest.raises(ValueError, match="validate"):
        train(tiny_model(), TinySet(), pixel_loss, settings(monitor="val_dice"), tmp_path / "b")
    with pytest.raises(ValueError, match="empty"):
        train(tiny_model(), TinySet(n=0), pixel_loss, settings(), tmp_path / "c")
    with pytest.raises(ValueError, match=r"val_dice.*val_loss"):
        train(tiny_model(), TinySet(), pixel_loss, settings(monitor="val_dice"), tmp_path / "d",
              validate=lambda *a: {"val_loss": 1.0})


def test_corrupt_checkpoint_names_the_file(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"last\.pt.*delete it"):
        train(tiny_model(), TinySet(), pixel_loss, settings(), tmp_path)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_bf16_channels_last(tmp_path):
    result = train(tiny_model(), TinySet(), pixel_loss,
                   settings(epochs=2, device="cuda", precision="bf16", channels_last=True), tmp_path,
                   validate=validate_loss)
    assert result.epochs_run == 2 and np.isfinite(result.history["train_loss"]).all()
    assert np.isfinite(result.history["val_loss"]).all()
    assert all(v.device.type == "cpu" for v in read_state_dict(result.last_weights).values())

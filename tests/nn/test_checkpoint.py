"""Checkpoint files (atomic, weights_only, clear errors) and the history table, CSV and figure."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from mskseg.nn import checkpoint  # noqa: E402
from mskseg.nn.checkpoint import (  # noqa: E402
    CheckpointError,
    clear_outputs,
    load_state,
    previous_state,
    remove_temporaries,
    save_state,
)
from mskseg.nn.history import COLUMNS, history_frame, plot_history, write_history  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _state() -> dict:
    return {"epoch": 3, "model": {"w": torch.arange(6.0).reshape(2, 3)}, "best_value": math.nan,
            "history": [{"epoch": 1, "train_loss": 0.5, "val_dice": math.inf}], "betas": (0.9, 0.999),
            "scheduler": None, "finished": False, "name": "x"}


def test_round_trip_with_weights_only(tmp_path):
    path = save_state(_state(), tmp_path / "sub" / "last.pt")
    loaded = load_state(path)
    assert torch.equal(loaded["model"]["w"], _state()["model"]["w"])
    assert math.isnan(loaded["best_value"]) and loaded["history"][0]["val_dice"] == math.inf
    assert loaded["betas"] == (0.9, 0.999) and loaded["scheduler"] is None and loaded["name"] == "x"
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_optimizer_and_scheduler_states_load_with_weights_only(tmp_path):
    layer = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-3)
    layer(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max")
    plateau.step(0.5)
    save_state({"optimizer": optimizer.state_dict(), "scheduler": plateau.state_dict()}, tmp_path / "s.pt")
    loaded = load_state(tmp_path / "s.pt")
    optimizer.load_state_dict(loaded["optimizer"])
    plateau.load_state_dict(loaded["scheduler"])
    assert plateau.best == 0.5


def test_missing_file():
    with pytest.raises(FileNotFoundError, match=r"nowhere.pt"):
        load_state("/nonexistent/nowhere.pt")


@pytest.mark.parametrize("content", [b"garbage", b""])
def test_corrupt_file_names_it(tmp_path, content):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"last\.pt.*delete it"):
        load_state(path)


def test_truncated_file(tmp_path):
    path = save_state(_state(), tmp_path / "last.pt")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"last.pt"):
        load_state(path)


class Custom:
    pass


def test_not_a_dict_or_not_plain_types(tmp_path):
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_state(tmp_path / "list.pt")
    torch.save({"obj": Custom()}, tmp_path / "custom.pt")
    with pytest.raises(CheckpointError, match=r"custom.pt"):
        load_state(tmp_path / "custom.pt")


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_state({"epoch": 1}, tmp_path / "last.pt")

    def half_then_die(obj, handle):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt  # like a kill in the middle of the write

    monkeypatch.setattr(checkpoint.torch, "save", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_state({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_state(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_remove_temporaries_only_touches_abandoned_temporary_files(tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()  # a process id that no longer runs
    (tmp_path / ".tmp-1234abcd-last.pt").write_bytes(b"x")  # the old form: no owner recorded
    (tmp_path / f".tmp-p{dead}-00aa-best_weights.pt").write_bytes(b"x")
    (tmp_path / f".tmp-p{os.getpid()}-00bb-last.pt").write_bytes(b"mine")  # this process is writing it
    (tmp_path / f".tmp-p{os.getppid()}-00cc-last.pt").write_bytes(b"a live writer's")
    (tmp_path / "last.pt").write_bytes(b"y")
    (tmp_path / "notes.tmp-").write_bytes(b"z")
    removed = remove_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == [".tmp-1234abcd-last.pt", f".tmp-p{dead}-00aa-best_weights.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
        "last.pt", "notes.tmp-", f".tmp-p{os.getpid()}-00bb-last.pt", f".tmp-p{os.getppid()}-00cc-last.pt"])
    assert remove_temporaries(tmp_path / "absent") == []


def test_clear_outputs_and_previous_state(tmp_path, caplog):
    log = logging.getLogger("test")
    for name in ("best_weights.pt", "last_weights.pt", "history.csv", "curve.png", "keep.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "tensorboard" / "run").mkdir(parents=True)
    assert previous_state(tmp_path, "abc", log) is None  # no last.pt: a fresh start clears stale outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    full = dict.fromkeys(checkpoint.STATE_KEYS, 0) | {"fingerprint": "abc"}
    save_state(full, tmp_path / "last.pt")
    assert previous_state(tmp_path, "abc", log)["fingerprint"] == "abc"
    with caplog.at_level(logging.WARNING):
        assert previous_state(tmp_path, "other", log) is None
    assert "starting afresh" in caplog.text and not (tmp_path / "last.pt").exists()
    save_state({"fingerprint": "abc"}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="lacks epoch"):
        previous_state(tmp_path, "abc", log)
    clear_outputs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


ROWS = [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9, "val_dice": 0.5, "lr": 1e-3, "seconds": 2.0,
         "samples_per_s": 10.0, "val_hd95": 4.0},
        {"epoch": 2, "train_loss": 0.8, "lr": 1e-3, "seconds": 2.0, "samples_per_s": 10.0, "val_assd": 1.0}]


def test_history_frame_columns():
    frame = history_frame(ROWS)
    assert list(frame.columns) == [*COLUMNS, "val_hd95", "val_assd"]
    assert frame["epoch"].dtype == np.int64 and math.isnan(frame.loc[1, "val_dice"])
    empty = history_frame([])
    assert list(empty.columns) == list(COLUMNS) and len(empty) == 0
    assert list(history_frame(frame).columns) == list(frame.columns)


def test_write_history_csv(tmp_path):
    path = write_history(ROWS, tmp_path / "history.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == [*COLUMNS, "val_hd95", "val_assd"] and list(back["epoch"]) == [1, 2]
    assert back.loc[0, "val_hd95"] == 4.0 and math.isnan(back.loc[1, "val_hd95"])


@pytest.mark.parametrize("rows", [
    ROWS[:1],  # a single epoch
    [{"epoch": e, "train_loss": 1.0 / e} for e in (1, 2, 3)],  # no validation at all
    [{"epoch": 1, "train_loss": 1.0, "val_dice": math.nan, "val_loss": math.nan}],  # NaN validation
    [],  # nothing yet
])
def test_plot_history(tmp_path, rows):
    path = plot_history(history_frame(rows), tmp_path / "curve.png", title="fold 0")
    assert path.read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]


def test_plot_history_explicit_best_epoch(tmp_path):
    plot_history(history_frame(ROWS), tmp_path / "curve.png", best_epoch=2)
    assert (tmp_path / "curve.png").read_bytes()[:8] == PNG

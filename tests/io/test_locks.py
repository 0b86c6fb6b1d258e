"""An exclusive lock on a work folder: a second process waits or stops naming the holder; kill -9 frees it."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mskseg.io.locks import FolderInUse, folder_lock, holder
from tests.conftest import REPO

HOLD = ("import sys, time; sys.path.insert(0, {src!r}); from mskseg.io.locks import folder_lock\n"
        "with folder_lock({folder!r}):\n    print('held', flush=True)\n    time.sleep(60)\n")


def _holder_process(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(src=str(REPO / "src"), folder=str(folder))],
                            stdout=subprocess.PIPE, text=True, encoding="utf-8")
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_stops_or_waits_naming_the_holder_and_kill_frees_the_lock(tmp_path: Path, caplog) -> None:
    folder = tmp_path / "work"
    proc = _holder_process(folder)
    try:
        assert f"process {proc.pid} on" in holder(folder)
        with pytest.raises(FolderInUse, match=rf"{folder} is in use by process {proc.pid} on"), \
                folder_lock(folder, wait=False):
            pass
        caplog.set_level(logging.WARNING)
        with pytest.raises(FolderInUse, match="still in use"), folder_lock(folder, timeout_s=0.3, poll_s=0.1):
            pass
        assert f"is in use by process {proc.pid}" in caplog.text and "waiting for it to finish" in caplog.text
    finally:
        proc.send_signal(signal.SIGKILL)  # the operating system releases a killed holder's lock
        proc.wait()
    start = time.monotonic()
    with folder_lock(folder, timeout_s=5, poll_s=0.05) as locked:
        assert locked == folder and f"process {__import__('os').getpid()} on" in holder(folder)
    assert time.monotonic() - start < 5


def test_a_waiting_writer_goes_on_when_the_holder_finishes(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    code = HOLD.replace("time.sleep(60)", "time.sleep(0.5)")
    proc = subprocess.Popen([sys.executable, "-c", code.format(src=str(REPO / "src"), folder=str(folder))],
                            stdout=subprocess.PIPE, text=True, encoding="utf-8")
    assert proc.stdout.readline().strip() == "held"
    start = time.monotonic()
    with folder_lock(folder, poll_s=0.05):
        assert time.monotonic() - start > 0.2  # it waited for the holder's half second
    proc.wait()

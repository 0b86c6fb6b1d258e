"""An exclusive lock on a folder, so that two processes never write the same work folder at once.

:func:`folder_lock` takes an ``flock`` on ``<folder>/.lock`` and writes who holds it (process id, host,
command line, since when). The operating system releases the lock when its holder ends, however it
ends (``kill -9`` included), so a lock never outlives its process. A second process either waits
for the holder to finish, saying which process it waits for, or stops at once with a
:class:`FolderInUse` error naming the folder and the holder.

``flock`` is local to a machine, and across machines as far as the shared file system passes it on
(NFS does, through its lock manager).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"


class FolderInUse(RuntimeError):
    """The folder is locked by another process (the message names the folder and the holder)."""


def _me() -> str:
    since = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    command = " ".join(sys.argv) or sys.executable
    return f"process {os.getpid()} on {socket.gethostname()} since {since} ({command[:200]})"


def holder(folder: str | os.PathLike) -> str:
    """Who holds (or last held) the lock of ``folder``, as its lock file says; "" if nobody wrote one."""
    try:
        return (Path(folder) / LOCK_NAME).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, wait: bool = True, timeout_s: float | None = None,
                poll_s: float = 2.0, report_s: float = 60.0, logger: logging.Logger | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if needed) for the ``with`` block.

    Parameters
    ----------
    wait
        Wait for the holder to finish (logging who it is every ``report_s`` seconds); False: raise
        :class:`FolderInUse` at once.
    timeout_s
        Give up waiting after this many seconds (raise :class:`FolderInUse`); None: wait as long as it takes.
    """
    log = logger or logging.getLogger(__name__)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115 - held across the block
    try:
        start, reported = time.monotonic(), None
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                who = holder(folder) or "another process"
                if not wait:
                    raise FolderInUse(f"{folder} is in use by {who}") from None
                now = time.monotonic()
                if timeout_s is not None and now - start >= timeout_s:
                    raise FolderInUse(f"{folder} is still in use by {who} after {timeout_s:.0f} s") from None
                if reported is None or now - reported >= report_s:
                    log.warning("%s is in use by %s; waiting for it to finish", folder, who)
                    reported = now
                time.sleep(poll_s)
        if time.monotonic() - start > poll_s:
            log.info("%s is free now (waited %.0f s)", folder, time.monotonic() - start)
        handle.seek(0)
        handle.truncate()
        handle.write(_me() + "\n")
        handle.flush()
        yield folder
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


__all__ = ["LOCK_NAME", "FolderInUse", "folder_lock", "holder"]

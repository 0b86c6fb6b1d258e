"""Logging for rule scripts: one logger that writes to the rule's log file, its attempts log and stderr.

Snakemake deletes a job's log before it runs the job again, so the log of a failed attempt would be
gone when the job is retried. Every line is therefore written twice: to the rule's log (this attempt)
and appended to ``<log stem>.attempts.log`` beside it, which Snakemake does not manage and which keeps
every attempt, each after a header line naming the time, the process and the host.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: the start of every attempt's header line
ATTEMPT = "==== attempt"


def attempts_path(log: str | os.PathLike) -> Path:
    """The log that keeps every attempt: ``logs/qc/knee/k1.log`` -> ``logs/qc/knee/k1.attempts.log``."""
    log = Path(log)
    return log.with_name(f"{log.name.removesuffix('.log')}.attempts.log")


def attempt_header() -> str:
    """``==== attempt 2026-12-05T18:00:00+00:00, pid 123 on host ====`` and a newline."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return f"{ATTEMPT} {now}, pid {os.getpid()} on {socket.gethostname()} ====\n"


def setup_logging(log: str | Path | None, name: str = "mskseg") -> logging.Logger:
    """Configure the ``mskseg`` logger to write to ``log`` and its attempts log (each after this
    attempt's header line) and to stderr."""
    logger = logging.getLogger("mskseg")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if hasattr(sys.stderr, "reconfigure"):  # an ASCII locale must not break a log line holding e.g. "±"
        sys.stderr.reconfigure(errors="backslashreplace")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    files = [] if log is None else [Path(log), attempts_path(log)]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(attempt_header())
        handlers.append(logging.FileHandler(path, mode="a", encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(handler)
    logger.propagate = False
    if files:
        sys.excepthook = _log_then_raise(files)
    return logging.getLogger(name if name.startswith("mskseg") else f"mskseg.{name}")


def _log_then_raise(logs: list[Path]) -> Callable[..., None]:
    """An excepthook that also writes an uncaught error (and its traceback) to the rule's logs,
    where Snakemake tells the user to look."""

    def hook(kind, value, tb) -> None:
        text = "ERROR: " + "".join(traceback.format_exception(kind, value, tb))
        for log in logs:
            with contextlib.suppress(OSError), open(log, "a", encoding="utf-8") as fh:
                fh.write(text)
        sys.__excepthook__(kind, value, tb)

    return hook


__all__ = ["ATTEMPT", "attempt_header", "attempts_path", "setup_logging"]

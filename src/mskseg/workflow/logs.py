"""Logging for rule scripts: one logger that writes to the rule's log file and to stderr."""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log: str | Path | None, name: str = "mskseg") -> logging.Logger:
    """Configure the ``mskseg`` logger to write to ``log`` (created, truncated) and stderr."""
    logger = logging.getLogger("mskseg")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if hasattr(sys.stderr, "reconfigure"):  # an ASCII locale must not break a log line holding e.g. "±"
        sys.stderr.reconfigure(errors="backslashreplace")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log is not None:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log, mode="w", encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(handler)
    logger.propagate = False
    if log is not None:
        sys.excepthook = _log_then_raise(Path(log))
    return logging.getLogger(name if name.startswith("mskseg") else f"mskseg.{name}")


def _log_then_raise(log: Path):
    """An excepthook that also writes an uncaught error (and its traceback) to the rule's log,
    where Snakemake tells the user to look."""

    def hook(kind, value, tb) -> None:
        try:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write("ERROR: " + "".join(traceback.format_exception(kind, value, tb)))
        except OSError:
            pass
        sys.__excepthook__(kind, value, tb)

    return hook

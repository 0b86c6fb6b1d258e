"""Logging for rule scripts: one logger that writes to the rule's log file and to stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log: str | Path | None, name: str = "mskseg") -> logging.Logger:
    """Configure the ``mskseg`` logger to write to ``log`` (created, truncated) and stderr."""
    logger = logging.getLogger("mskseg")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log is not None:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log, mode="w"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(handler)
    logger.propagate = False
    return logging.getLogger(name if name.startswith("mskseg") else f"mskseg.{name}")

"""Errors shared by the stages."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


__all__ = ["ConfigError"]

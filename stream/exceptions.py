"""Exceptions of the stream package: one root, one-line subclasses.

``retryable`` tells retry code whether trying again can help (a broker or
Redis that is briefly away) or not (a bad configuration, a fenced worker).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DriftlineError",
    "EmbeddedServerError",
    "FencedError",
    "StoreError",
]


class DriftlineError(Exception):
    """Root of every error raised by the stream package."""

    retryable: bool = False


class ConfigError(DriftlineError, ValueError):
    """A configuration key or value is invalid; the message names both."""


class EmbeddedServerError(DriftlineError, RuntimeError):
    """The embedded broker or Redis-compatible server could not be started."""


class StoreError(DriftlineError):
    """Redis refused or lost a state write; the batch can be retried."""

    retryable = True


class FencedError(StoreError):
    """Another worker now owns the partition: this worker must not write to it."""

    retryable = False

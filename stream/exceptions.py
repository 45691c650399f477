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
    "OffsetMismatchError",
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


class OffsetMismatchError(StoreError):
    """Redis holds another offset than this worker wrote last (e.g. Redis lost
    its latest writes, or lost the claim): the worker must re-read from the
    stored offset. ``stored`` is that offset (``None``: nothing stored)."""

    retryable = False

    def __init__(self, message: str, stored: int | None, owner_lost: bool = False) -> None:
        super().__init__(message)
        self.stored = stored
        self.owner_lost = owner_lost

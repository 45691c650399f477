"""Exceptions raised by :mod:`sketches`.

One root, :class:`SketchError`; every subclass is also a :class:`ValueError`,
because each one reports a bad value handed in by the caller, so code that
already catches ``ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = ["DecodeError", "IncompatibleSketchError", "SketchError"]


class SketchError(Exception):
    """Root of every error raised by :mod:`sketches`."""


class IncompatibleSketchError(SketchError, ValueError):
    """Two sketches with different parameters were merged or compared."""


class DecodeError(SketchError, ValueError):
    """Bytes or a field mapping could not be decoded into a sketch."""

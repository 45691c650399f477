"""Durations in configuration: ``30``, ``1.5``, ``"500ms"``, ``"5m"``, ``"1h30m"``, ``"7d"``.

A number is seconds. A string is one or more ``<number><unit>`` parts with
units ``ms``, ``s``, ``m``, ``h``, ``d`` (``"1h30m"`` is 5,400 s), or a bare
number of seconds. Durations are finite and never negative; whether zero is
allowed is up to the caller.

Example:
    >>> parse_duration("1h30m", "windows.size")
    5400.0
    >>> parse_duration(0.25, "worker.poll_timeout")
    0.25
    >>> format_duration(90.0)
    '1m30s'
"""

from __future__ import annotations

import json
import math
import re

from stream.exceptions import ConfigError

__all__ = ["UNITS", "format_duration", "parse_duration"]

UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)\s*")
_WHOLE = re.compile(rf"\s*(?:{_NUMBER}\s*(?:ms|s|m|h|d)\s*)+")
_BARE = re.compile(rf"\s*{_NUMBER}\s*")


def _show(value: object) -> str:
    """A value as TOML would spell it, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def parse_duration(value: float | int | str, key: str) -> float:
    """Seconds from a number of seconds or a string such as ``"500ms"`` or ``"7d"``.

    Args:
        value: the configured value.
        key: the dotted configuration key, named in errors.

    Raises:
        ConfigError: not a duration, negative, or not finite; the message names
            ``key`` and ``value``.
    """
    expected = f'expected a duration like "60s" or a number of seconds, got {_show(value)}'
    if isinstance(value, bool):
        raise ConfigError(f"{key}: {expected}")
    if isinstance(value, int | float) or (isinstance(value, str) and _BARE.fullmatch(value)):
        seconds = float(value)
    elif isinstance(value, str) and _WHOLE.fullmatch(value):
        seconds = sum(float(n) * UNITS[u] for n, u in _PART.findall(value))
    else:
        units = ", ".join(UNITS)
        hint = f" (units: {units})" if isinstance(value, str) else ""
        raise ConfigError(f"{key}: {expected}{hint}")
    if not math.isfinite(seconds):
        raise ConfigError(f"{key}: a duration must be finite, got {_show(value)}")
    if seconds < 0:
        raise ConfigError(f"{key}: a duration cannot be negative, got {_show(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """A spelling that parses back: ``90 → "1m30s"``, ``0.5 → "500ms"``, ``1.5 → "1.5s"``."""
    if 0 < seconds < 1 and float(round(seconds * 1000)) == seconds * 1000:
        return f"{round(seconds * 1000)}ms"
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds <= 0 or seconds != int(seconds):
        return f"{seconds:g}s"
    rest, parts = int(seconds), []
    for unit in ("d", "h", "m", "s"):
        count, rest = divmod(rest, int(UNITS[unit]))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)

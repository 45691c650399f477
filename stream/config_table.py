"""Reading one table of the configuration document, with errors that name the key.

:class:`Table` wraps a table at a dotted path; its readers (``get``,
``string``, ``integer``, ``duration``, ``sub``) check a value and, when it is
bad, append ``<dotted.key>: expected …, got <value>`` to a shared error list
and return the default, so that one pass reports every problem.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from alerting.text import toml_value
from stream.durations import format_duration, parse_duration
from stream.exceptions import ConfigError

__all__ = ["Table", "is_finite", "is_number", "key", "show", "suggest"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+(\[\d+\])?")  # an array item: trend[0]
_ANY = re.compile(r"(?s).+")


def key(*parts: str) -> str:
    """A dotted key as TOML spells it: ``models."churn.v2".features``."""
    return ".".join(p if _BARE_KEY.fullmatch(p) else json.dumps(p) for p in parts)


show = toml_value  # a value as TOML would spell it, for error messages


def suggest(name: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1)
    return f'; did you mean "{close[0]}"?' if close else ""


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite(value: object) -> bool:
    return is_number(value) and math.isfinite(cast(float, value))


class Table:
    """A table of the document at a dotted path; reads report problems to ``errors``."""

    def __init__(
        self,
        raw: Any,
        parts: tuple[str, ...],
        errors: list[str],
        allowed: Iterable[str] | None = None,
    ) -> None:
        self.parts, self.errors, self.ok = parts, errors, True
        if raw is not None and not isinstance(raw, Mapping):
            self.error(None, f"expected a table, got {show(raw)}")
            self.ok = False
        self.data: dict[str, Any] = {}
        for name, value in (raw if isinstance(raw, Mapping) else {}).items():
            if not isinstance(name, str) or not name:
                self.error(None, f"keys must be non-empty strings, got {show(name)}")
            elif allowed is not None and name not in allowed:
                listed = ", ".join(allowed)
                self.error(name, f"unknown key; allowed: {listed}{suggest(name, allowed)}")
            else:
                self.data[name] = value

    def key(self, *names: str) -> str:
        return key(*self.parts, *names)

    def error(self, name: str | tuple[str, ...] | None, problem: str) -> None:
        names = () if name is None else (name,) if isinstance(name, str) else name
        self.errors.append(f"{self.key(*names)}: {problem}")

    def sub(self, name: str, allowed: Iterable[str] | None = None) -> Table:
        allowed = None if allowed is None else tuple(allowed)
        return Table(self.data.get(name), (*self.parts, name), self.errors, allowed)

    def array(self, name: str, allowed: Iterable[str]) -> list[Table] | None:
        """The tables of an array of tables (``[[x.name]]``), as ``name[i]``;
        ``None`` when it is absent or not an array (reported)."""
        raw = self.data.get(name)
        if raw is None:
            return None
        if not isinstance(raw, list):
            self.error(name, f"expected an array of tables ([[{self.key(name)}]]), got {show(raw)}")
            return None
        allowed = tuple(allowed)
        items = [
            Table(v, (*self.parts, f"{name}[{i}]"), self.errors, allowed) for i, v in enumerate(raw)
        ]
        return [t for t in items if t.ok]

    def get(self, name: str, default: Any, ok: Callable[[Any], bool], expected: str) -> Any:
        value = self.data.get(name)
        if value is None:
            return default
        if not ok(value):
            self.error(name, f"expected {expected}, got {show(value)}")
            return default
        return value

    def string(
        self, name: str, default: str, pattern: re.Pattern[str] = _ANY, expected: str = ""
    ) -> str:
        def ok(v: object) -> bool:
            return isinstance(v, str) and bool(pattern.fullmatch(v))

        return cast(str, self.get(name, default, ok, expected or "a non-empty string"))

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        def ok(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= minimum

        return cast(int, self.get(name, default, ok, f"an integer ≥ {minimum}"))

    def duration(
        self, name: str, default: float, minimum: float = 0.0, strict: bool = True
    ) -> float:
        if self.data.get(name) is None:
            return default
        try:
            seconds = parse_duration(self.data[name], self.key(name))
        except ConfigError as exc:
            self.errors.append(str(exc))
            return default
        if seconds < minimum or (strict and seconds <= minimum):
            bound = f"{'longer than' if strict else 'at least'} {format_duration(minimum)}"
            self.error(name, f"must be {bound}, got {show(self.data[name])}")
            return default
        return seconds

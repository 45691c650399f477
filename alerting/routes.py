"""Alert routes: which alerts go to which sink (``[[routes]]`` in the configuration).

Pure: parsing and matching only; :mod:`alerting.router` builds the sinks and
delivers. Shape::

    [[routes]]
    match = { severity = ["high", "critical"], model = "churn" }  # every key optional
    sink = "webhook"        # log | webhook | slack | email | alertmanager
    url = "https://hooks.example.com/driftline"
    secret = "s3cret"
    continue = false        # true: later routes may match too (default: first match wins)

``match`` keys are ``severity``, ``model``, ``rule`` and ``status``; each is a
string or a list of strings (any of them matches); a missing key matches
everything. Per sink: ``webhook`` takes ``url`` (required) and ``secret``;
``slack`` and ``alertmanager`` take ``url``; ``email`` takes ``host``, ``port``
(25), ``sender``, ``recipients``, ``starttls``, ``username``, ``password``;
``log`` takes ``json``. Every route may set ``name`` (its name in Redis keys
and dead-letter headers; default: the sink type, suffixed with the route's
index when several routes use the same type), ``attempts`` (total tries),
``backoff`` (first retry delay, seconds) and ``timeout`` (seconds per try).
Without any route, alerts go to one ``log`` route (:data:`DEFAULT_ROUTES`).

Example:
    >>> from alerting.events import AlertEvent, Window
    >>> errors: list[str] = []
    >>> routes = parse_routes([{"match": {"severity": "high"}, "sink": "log"}], errors)
    >>> a = AlertEvent("x", "churn", None, Window(0, 60), "volume", "ratio", None, 3.0,
    ...     2.0, "high", "firing", None, "", 61.0)
    >>> [r.name for r in select(routes, a)], errors
    (['log'], [])
    >>> parse_routes([{"sink": "pager"}], errors)
    ()
    >>> print(errors[0])
    routes[0].sink: expected one of log, webhook, slack, email, alertmanager, got "pager"
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from alerting.events import SEVERITIES, STATUSES, AlertEvent
from alerting.text import toml_value

__all__ = ["DEFAULT_ROUTES", "MATCH_KEYS", "SINK_KINDS", "Route", "parse_routes", "select"]

SINK_KINDS = ("log", "webhook", "slack", "email", "alertmanager")
MATCH_KEYS = ("severity", "model", "rule", "status")
_COMMON_KEYS = ("match", "sink", "name", "continue", "attempts", "backoff", "timeout")
_SINK_KEYS: dict[str, tuple[str, ...]] = {
    "log": ("json",),
    "webhook": ("url", "secret"),
    "slack": ("url",),
    "alertmanager": ("url",),
    "email": ("host", "port", "sender", "recipients", "starttls", "username", "password"),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "log": (),
    "webhook": ("url",),
    "slack": ("url",),
    "alertmanager": ("url",),
    "email": ("host", "sender", "recipients"),
}
_SECRET_KEYS = ("secret", "password", "url")  # a Slack URL is a credential
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class Route:
    """One ``[[routes]]`` entry.

    Attributes:
        sink: the sink type (:data:`SINK_KINDS`).
        name: the route's sink name (Redis dedupe keys, outcomes, dead-letter headers).
        match: ``key -> allowed values`` for :data:`MATCH_KEYS`; a missing key matches all.
        options: the sink's settings (``url``, ``secret``, ``host``, ...).
        cont: ``continue``: later routes may match the alert too.
        attempts: total delivery tries (``None``: the sink's default).
        backoff: first retry delay in seconds (``None``: the sink's default).
        timeout: seconds per try (``None``: the sink's default).
    """

    sink: str = "log"
    name: str = "log"
    match: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    cont: bool = False
    attempts: int | None = None
    backoff: float | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "match", MappingProxyType(dict(self.match)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def matches(self, alert: AlertEvent) -> bool:
        """Whether every ``match`` key admits ``alert``."""
        values = {
            "severity": alert.severity,
            "model": alert.model,
            "rule": alert.rule,
            "status": alert.status,
        }
        return all(values[k] in allowed for k, allowed in self.match.items())

    def __repr__(self) -> str:
        shown = {k: "***" if k in _SECRET_KEYS else v for k, v in self.options.items()}
        return (
            f"Route(sink={self.sink!r}, name={self.name!r}, match={dict(self.match)!r}, "
            f"options={shown!r}, cont={self.cont})"
        )


DEFAULT_ROUTES: tuple[Route, ...] = (Route(),)


def select(routes: Iterable[Route], alert: AlertEvent) -> list[Route]:
    """The routes ``alert`` goes to: in order, stopping after a match without ``continue``."""
    chosen: list[Route] = []
    for route in routes:
        if route.matches(alert):
            chosen.append(route)
            if not route.cont:
                break
    return chosen


def _strings(value: object) -> tuple[str, ...] | None:
    """A string or a non-empty list of strings as a tuple; ``None`` when neither."""
    if isinstance(value, str) and value:
        return (value,)
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or not value:
        return None
    if all(isinstance(v, str) and v for v in value):
        return tuple(value)
    return None


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


class _Entry:
    """Reads one route entry, reporting problems as ``routes[i].key: problem, got value``."""

    def __init__(self, raw: Mapping[str, Any], index: int, errors: list[str]) -> None:
        self.raw, self.where, self.errors = raw, f"routes[{index}]", errors

    def error(self, key: str, problem: str) -> None:
        self.errors.append(f"{self.where}.{key}: {problem}")

    def bad(self, key: str, expected: str, value: object) -> None:
        self.error(key, f"expected {expected}, got {toml_value(value)}")

    def get(self, key: str, ok: Any, expected: str) -> Any:
        value = self.raw.get(key)
        if value is None:
            return None
        if not ok(value):
            self.bad(key, expected, value)
            return None
        return value


def _parse_match(e: _Entry) -> dict[str, tuple[str, ...]]:
    raw = e.raw.get("match")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        e.bad("match", 'a table such as { severity = "high" }', raw)
        return {}
    match: dict[str, tuple[str, ...]] = {}
    known = {"severity": SEVERITIES, "status": STATUSES}
    for key, value in raw.items():
        if key not in MATCH_KEYS:
            e.error(f"match.{key}", f"unknown key; allowed: {', '.join(MATCH_KEYS)}")
            continue
        values = _strings(value)
        if values is None:
            e.bad(f"match.{key}", "a string or a non-empty list of strings", value)
            continue
        allowed = known.get(key)
        wrong = [v for v in values if allowed is not None and v not in allowed]
        if allowed is not None and wrong:
            e.bad(f"match.{key}", f"one or more of {', '.join(allowed)}", wrong[0])
            continue
        match[key] = values
    return match


def _parse_options(e: _Entry, kind: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key in _SINK_KEYS[kind]:
        value = e.raw.get(key)
        if value is None:
            if key in _REQUIRED[kind]:
                e.error(key, f"required for sink {toml_value(kind)}")
            continue
        if key == "recipients":
            value = _strings(value)
            if value is None:
                e.bad(key, "an address or a non-empty list of addresses", e.raw[key])
                continue
        elif key in ("json", "starttls"):
            if not isinstance(value, bool):
                e.bad(key, "true or false", value)
                continue
        elif key == "port":
            if not (isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536):
                e.bad(key, "a port number from 1 to 65535", value)
                continue
        elif key == "url":
            if not (isinstance(value, str) and re.match(r"https?://[^/\s]+", value)):
                e.bad(key, "an http:// or https:// URL", value)
                continue
        elif not (isinstance(value, str) and value):
            e.bad(key, "a non-empty string", value)
            continue
        options[key] = value
    return options


def _parse_entry(raw: object, index: int, errors: list[str]) -> Route | None:
    if not isinstance(raw, Mapping):
        errors.append(f"routes[{index}]: expected a table ([[routes]]), got {toml_value(raw)}")
        return None
    e = _Entry(raw, index, errors)
    kind = raw.get("sink")
    if kind not in SINK_KINDS:
        shown = "nothing" if kind is None else toml_value(kind)
        e.error("sink", f"expected one of {', '.join(SINK_KINDS)}, got {shown}")
        return None
    allowed = (*_COMMON_KEYS, *_SINK_KEYS[kind])
    for key in raw:
        if key not in allowed:
            e.error(
                str(key), f"unknown key for sink {toml_value(kind)}; allowed: {', '.join(allowed)}"
            )
    name = e.get(
        "name", lambda v: isinstance(v, str) and _NAME.fullmatch(v), "1 to 64 of [A-Za-z0-9_.-]"
    )
    cont = e.get("continue", lambda v: isinstance(v, bool), "true or false")
    attempts = e.get(
        "attempts",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "an integer ≥ 1",
    )
    backoff = e.get("backoff", lambda v: _is_number(v) and v >= 0, "a number of seconds ≥ 0")
    timeout = e.get("timeout", lambda v: _is_number(v) and v > 0, "a number of seconds > 0")
    return Route(
        sink=kind,
        name=name or "",
        match=_parse_match(e),
        options=_parse_options(e, kind),
        cont=bool(cont),
        attempts=attempts,
        backoff=None if backoff is None else float(backoff),
        timeout=None if timeout is None else float(timeout),
    )


def parse_routes(raw: Any, errors: list[str]) -> tuple[Route, ...]:
    """Validate the ``routes`` array (``None``: no routes); problems go to ``errors``.

    Returns the routes in order, with default names filled in; ``()`` when
    there are none (the router then uses :data:`DEFAULT_ROUTES`) or when any
    entry is invalid.
    """
    if raw is None:
        return ()
    if isinstance(raw, Mapping) or not isinstance(raw, Sequence) or isinstance(raw, str):
        errors.append(f"routes: expected an array of tables ([[routes]]), got {toml_value(raw)}")
        return ()
    before = len(errors)
    parsed = [_parse_entry(item, i, errors) for i, item in enumerate(raw)]
    counts: dict[str, int] = {}
    for r in parsed:
        if r is not None:
            counts[r.sink] = counts.get(r.sink, 0) + 1
    named: list[Route] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(parsed):
        if entry is None:
            continue
        r = entry
        name = r.name or (r.sink if counts[r.sink] == 1 else f"{r.sink}-{i}")
        if name in seen:
            errors.append(
                f"routes[{i}].name: {toml_value(name)} is also the name of routes[{seen[name]}]; "
                "route names must differ"
            )
        seen.setdefault(name, i)
        named.append(
            Route(r.sink, name, r.match, r.options, r.cont, r.attempts, r.backoff, r.timeout)
        )
    return () if len(errors) > before else tuple(named)

"""Value checks and formatting shared by the row and columnar paths of event decoding.

Each ``*_values``/``*_seconds``/``check_*`` function either returns the decoded
value or raises ``Reject`` with the event's reason and a one-line detail that
names the field and shows the bad value (``show``).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "BOOL_NONE",
    "BOOL_STR",
    "CAT_OK",
    "ID_MAX",
    "INF",
    "MODEL_RE",
    "NAN",
    "NUM",
    "NUM_NONE",
    "STR",
    "STR_NONE",
    "TS_MAX",
    "Reject",
    "Types",
    "bool_str",
    "boolean_values",
    "cat_str",
    "categorical_values",
    "check_numeric",
    "check_segment",
    "dump",
    "field",
    "id_problem",
    "iso_seconds",
    "model_name_problem",
    "model_type_problem",
    "proba_top",
    "show",
    "ts_seconds",
]

MODEL_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
ID_MAX = 128
TS_MAX = 253_402_300_800.0  # 10000-01-01T00:00:00Z: larger is not epoch seconds (ms, µs)
NAN = math.nan
INF = math.inf
Types = frozenset[type]
NUM: Types = frozenset({float, int})
NUM_NONE: Types = frozenset({float, int, type(None)})
STR: Types = frozenset({str})
STR_NONE: Types = frozenset({str, type(None)})
CAT_OK: Types = frozenset({str, type(None), int, float, bool})
BOOL_NONE: Types = frozenset({bool, type(None)})
BOOL_STR: dict[object, str] = {True: "true", False: "false", "true": "true", "false": "false"}


class Reject(Exception):
    """An event failed validation: ``reason`` (one of ``REASONS``) and a one-line detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def show(v: object) -> str:
    """A JSON value, shortened to one line for a dead letter's detail."""
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if type(v) is float and v - v:
        return "NaN" if v != v else "Infinity" if v > 0 else "-Infinity"
    if type(v) is dict:
        return "an object"
    if type(v) is list:
        return "an array"
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def field(name: str) -> str:
    """A feature or class name as printed in a detail: one line, at most 60 characters."""
    return name if name.isprintable() and len(name) <= 60 else show(name)


def iso_seconds(text: str) -> float | None:
    """Epoch seconds of an ISO-8601 time (naive = UTC), ``None`` when unparseable."""
    try:
        t = datetime.fromisoformat(text)
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.timestamp()
    except (ValueError, OverflowError):
        return None


def cat_str(v: object) -> str | None:
    """A categorical value as a string (``None`` stays ``None``); ``v`` has a CAT_OK type."""
    t = type(v)
    if t is str:
        return v  # type: ignore[return-value]
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        return repr(v)
    return None


def bool_str(v: object) -> str | None:
    """A boolean value as ``"true"``/``"false"``; ``None`` for null (and anything else)."""
    return BOOL_STR.get(v) if type(v) is not int and type(v) is not float else None


def dump(event: object, lenient: bool) -> bytes:
    """``event`` as JSON bytes for a dead letter's payload.

    Events of a leniently parsed message (it held NaN or Infinity) are written
    by the standard library so those survive.
    An event nested too deeply for both writers (about 1000 levels) gets a stub.
    """
    if not lenient:
        try:
            return orjson.dumps(event)
        except orjson.JSONEncodeError:  # nesting deeper than orjson writes
            pass
    try:
        return json.dumps(event, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        return b'{"error":"event too deeply nested to serialize"}'


def id_problem(ident: object) -> Reject:
    """Why ``ident`` is not an event id (a string of 1 to ``ID_MAX`` characters);
    call it only for one that is not."""
    if ident is None:
        return Reject("missing_field", "id: missing")
    if type(ident) is not str:
        return Reject("bad_type", f"id: expected a string, got {show(ident)}")
    return Reject("bad_value", f"id: {len(ident)} characters, expected 1..{ID_MAX}")


def model_type_problem(model: object) -> Reject:
    """Why ``model``, not a string, is no model id (missing, or of another type)."""
    if model is None:
        return Reject("missing_field", "model: missing")
    return Reject("bad_type", f"model: expected a string, got {show(model)}")


def model_name_problem(model: str) -> Reject:
    """Why ``model`` is no model id: it does not match :data:`MODEL_RE`."""
    return Reject("bad_value", f"model: {show(model)} does not match [A-Za-z0-9_.-]{{1,64}}")


def ts_seconds(v: object) -> float:
    """Epoch seconds of a ts value, or raise Reject."""
    tv = type(v)
    if tv is float or tv is int:
        s: float | None = v  # type: ignore[assignment]
    elif tv is str:
        s = iso_seconds(v)  # type: ignore[arg-type]
        if s is None:
            raise Reject("bad_value", f"ts: not an ISO-8601 time: {show(v)}")
    elif v is None:
        raise Reject("missing_field", "ts: missing")
    else:
        raise Reject("bad_type", f"ts: expected a number or an ISO-8601 string, got {show(v)}")
    assert s is not None
    if 0.0 <= s < TS_MAX:
        return s
    if s - s:
        raise Reject("non_finite", f"ts: {show(v)}")
    raise Reject("bad_value", f"ts: {show(v)} is not epoch seconds in years 1970..9999")


def check_numeric(names: tuple[str, ...], values: tuple[Any, ...]) -> None:
    """Raise for the first numeric feature value that is not a finite number or null."""
    for name, v in zip(names, values, strict=True):
        tv = type(v)
        if tv is float:
            if v - v:
                raise Reject("non_finite", f"features.{field(name)}: {show(v)}")
        elif tv is not int and v is not None:
            raise Reject(
                "bad_type", f"features.{field(name)}: expected a number or null, got {show(v)}"
            )


def categorical_values(names: tuple[str, ...], values: tuple[Any, ...]) -> list[str | None]:
    """Categorical feature values as strings, or raise for the first bad one."""
    out: list[str | None] = []
    for name, v in zip(names, values, strict=True):
        tv = type(v)
        if tv not in CAT_OK:
            raise Reject(
                "bad_type",
                f"features.{field(name)}: expected a string, number, bool or null, got {show(v)}",
            )
        if tv is float and v - v:
            raise Reject("non_finite", f"features.{field(name)}: {show(v)}")
        out.append(cat_str(v))
    return out


def boolean_values(names: tuple[str, ...], values: tuple[Any, ...]) -> list[str | None]:
    """Boolean feature values as ``"true"``/``"false"``/``None``, or raise for the first bad one."""
    out: list[str | None] = []
    for name, v in zip(names, values, strict=True):
        tv = type(v)
        if tv is bool or v is None:
            out.append(bool_str(v))
        elif tv is str and v in BOOL_STR:
            out.append(v)
        elif tv is str:
            raise Reject(
                "bad_value", f"features.{field(name)}: expected 'true' or 'false', got {show(v)}"
            )
        else:
            raise Reject(
                "bad_type",
                f"features.{field(name)}: expected a bool, 'true', 'false' or null, got {show(v)}",
            )
    return out


def proba_top(proba: dict[str, Any]) -> float:
    """The largest class probability (NaN for ``{}``), or raise for the first bad one."""
    top = NAN
    for cls, v in proba.items():
        tv = type(v)
        if tv is not float and tv is not int:
            raise Reject("bad_type", f"proba.{field(cls)}: expected a number, got {show(v)}")
        if not 0.0 <= v <= 1.0:
            reason = "non_finite" if v - v else "bad_value"
            raise Reject(reason, f"proba.{field(cls)}: {show(v)} is not in [0, 1]")
        if not v <= top:  # also true while top is NaN
            top = v
    return float(top)


def check_segment(segment: object) -> None:
    """Raise unless ``segment`` is an object of strings."""
    if type(segment) is not dict:
        raise Reject("bad_type", f"segment: expected an object, got {show(segment)}")
    for key, v in segment.items():
        if type(v) is not str:
            raise Reject("bad_type", f"segment.{field(key)}: expected a string, got {show(v)}")

"""Decode and validate prediction events: Kafka message bytes → per-model columns + dead letters.

Every event of a message ends in exactly one place: a row of the ``ModelBatch`` of
its model, or a ``DeadLetter``. Decoding never raises on bad input.

Message formats (JSON, UTF-8; at most ``max_bytes``)
----------------------------------------------------
* one event object;
* a JSON array of event objects (of any models: one ``ModelBatch`` per model);
* a columnar batch: one object for one model whose per-event fields are arrays of
  equal length ``n``. A message is columnar when it is an object whose ``id`` is an
  array. Exact shape (``?`` = optional)::

      {"model": "m",                          # string, one model for all rows
       "version"?: "v1" | null | [str|null, ...n],
       "id": [str, ...n],
       "ts": [number|ISO-8601 string, ...n],
       "features": {"age": [...n], "plan": [...n], ...},   # every value an array
       "prediction": [number|string, ...n],
       "proba"?: [{class: number} | null, ...n] | {class: [number|null, ...n], ...},
       "latency_ms"?: [number|null, ...n],
       "segment"?: [{name: string} | null, ...n] | {name: [string|null, ...n], ...}}

  In the object forms of ``proba`` and ``segment`` a null means "not given for
  this row". A field that is not an array, or arrays of different lengths, make
  the whole message ``bad_type``; a bad value in a row dead-letters that row alone
  (its payload is the row rebuilt as a single event object).

Event fields: ``model`` (``[A-Za-z0-9_.-]{1,64}``), ``version``?, ``id`` (1..128
characters), ``ts`` (epoch seconds, or ISO-8601 with ``Z`` or an offset; naive =
UTC; must fall in the years 1970..9999, which also catches milliseconds),
``features`` (name → number, string, bool or null), ``prediction`` (number or
string; the schema may require one kind), ``proba``? (class → number in [0, 1]),
``latency_ms``? (number ≥ 0), ``segment``? (name → string; checked, not used yet).
A null optional field is the same as an absent one; a null required field is
``missing_field``. Unknown top-level fields and features the schema does not name
are ignored; schema features absent from an event are missing values.

Feature values by kind: *numeric* takes a number or null (NaN when missing); a
bool or a string, even ``"1.5"``, is ``bad_type``. *categorical* takes a string,
number, bool or null (``None`` when missing): ints become ``str(int)``, floats
``repr(float)``, bools ``"true"``/``"false"``. *boolean* takes a bool, ``"true"``,
``"false"`` or null: a number is ``bad_type``, another string ``bad_value``.

Dead letters: ``REASONS``; ``decode_message`` produces all but ``too_late`` and
``no_baseline``, which the worker assigns. The whole message is one dead letter
(``index=None``, payload = the message bytes) when it is empty, too large, not
UTF-8 (also a lone ``\\ud800``-style surrogate escape), not JSON, not an object
or array, or a columnar batch whose model or shape is bad. Otherwise each bad
event is one dead letter: for a single-event message with the message bytes, in
an array or columnar batch with its position and itself as JSON. Checks run in
contract order (model, version, id, ts, features — numeric, categorical, boolean
—, prediction, proba, latency_ms, segment); the first failure gives the reason.
``NaN``, ``Infinity`` and numbers that overflow (``1e999``), which orjson refuses,
are re-parsed with the standard library so that the event gets ``non_finite``
rather than the message ``malformed_json``.

Example:
    >>> schemas = {"churn": ModelSchema("churn", {"age": "numeric", "plan": "categorical"})}
    >>> msg = b'{"model":"churn","id":"a1","ts":1.7e9,"features":{"age":41},"prediction":0.8}'
    >>> [batch], dead = decode_message(msg, schemas)
    >>> batch.numeric["age"].tolist(), batch.categorical["plan"], dead
    ([41.0], [None], [])
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from stream.columnar import check_shape, row, rows, vectorise
from stream.event_rows import Rows, plan_for
from stream.event_types import REASONS, DeadLetter, FeatureKind, ModelBatch, ModelSchema, concat
from stream.event_values import (
    MODEL_RE,
    Reject,
    dump,
    model_name_problem,
    model_type_problem,
    show,
)

__all__ = [
    "REASONS",
    "DeadLetter",
    "FeatureKind",
    "ModelBatch",
    "ModelSchema",
    "decode_message",
    "decode_messages",
]

MAX_BYTES = 1_048_576
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


def _parse_int(text: str) -> int | float:
    """Integers as orjson reads them: in [-2**63, 2**64) an int, else a float."""
    value = int(text) if len(text) < 24 else None
    return value if value is not None and -(2**63) <= value < 2**64 else float(text)


def _lenient_loads(value: bytes, error: ValueError) -> Any:
    """Parse what orjson refused; a ``DeadLetter`` when the message really is bad.

    The standard library accepts ``NaN``, ``Infinity``, overflowing numbers (as
    ``inf``) and lone surrogate escapes; the first three are left for the field
    checks (``non_finite``), a lone surrogate makes the whole message ``not_utf8``
    like any other text that is not UTF-8.
    """
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return DeadLetter("not_utf8", f"invalid UTF-8 at byte {exc.start}", value)
    try:
        obj = json.loads(text, parse_int=_parse_int)
        json.dumps(obj, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return DeadLetter("not_utf8", "a \\u escape decodes to a lone UTF-16 surrogate", value)
    except (ValueError, RecursionError):
        return DeadLetter("malformed_json", " ".join(str(error).split()), value)
    return obj


@functools.lru_cache(maxsize=4096)
def _matches(model: str) -> bool:
    return MODEL_RE.fullmatch(model) is not None


def _valid_name(model: str) -> bool:
    """``model`` matches ``[A-Za-z0-9_.-]{1,64}`` (cached; long strings are never cached)."""
    return len(model) <= 64 and _matches(model)


class _Decoder:
    """The state of one decode call: a slot per model, dead letters in message order."""

    def __init__(self, schemas: Mapping[str, ModelSchema], max_bytes: int) -> None:
        self.schemas = schemas
        self.max_bytes = max_bytes
        self.slots: dict[str, Rows | Reject] = {}
        self.dead: list[tuple[int, DeadLetter]] = []

    def resolve(self, model: object) -> Rows | Reject:
        """The slot of an event's ``model`` value, or why the event has none."""
        if type(model) is not str:
            return model_type_problem(model)
        slot = self.slots.get(model)
        if slot is None:
            schema = self.schemas.get(model)
            if not _valid_name(model):
                slot = model_name_problem(model)
            elif schema is None:
                slot = Reject("unknown_model", f"model: {show(model)} has no registered schema")
            else:
                slot = Rows(model, plan_for(schema))
            self.slots[model] = slot
        return slot

    def feed(self, k: int, value: bytes | None) -> None:
        """Decode message number ``k`` of the call."""
        if not value:
            self.dead.append((k, DeadLetter("malformed_json", "empty message", value or b"")))
            return
        if type(value) is not bytes:
            value = bytes(value)
        if len(value) > self.max_bytes:
            detail = f"message is {len(value)} bytes, limit {self.max_bytes}"
            self.dead.append((k, DeadLetter("too_large", detail, value)))
            return
        lenient = False
        try:
            obj = _loads(value)
        except _JSONDecodeError as exc:
            obj = _lenient_loads(value, exc)
            if type(obj) is DeadLetter:
                self.dead.append((k, obj))
                return
            lenient = True
        if type(obj) is dict:
            if type(obj.get("id")) is list:
                self._columnar(k, obj, value, lenient)
                return
            model = obj.get("model")
            slot = self.slots.get(model) if type(model) is str else None
            if slot is None:
                slot = self.resolve(model)
            err = slot if isinstance(slot, Reject) else slot.add(obj, lenient, k, -1)
            if err is not None:
                self.dead.append((k, DeadLetter(err.reason, err.detail, value)))
        elif type(obj) is list:
            self._array(k, obj, lenient)
        else:
            detail = f"message: expected an event object or an array, got {show(obj)}"
            self.dead.append((k, DeadLetter("bad_type", detail, value)))

    def _array(self, k: int, events: list[Any], lenient: bool) -> None:
        slots, dead = self.slots, self.dead
        for i, ev in enumerate(events):
            if type(ev) is not dict:
                detail = f"[{i}]: expected an event object, got {show(ev)}"
                dead.append((k, DeadLetter("bad_type", detail, dump(ev, lenient), i)))
                continue
            model = ev.get("model")
            slot = slots.get(model) if type(model) is str else None
            if slot is None:
                slot = self.resolve(model)
            err = slot if isinstance(slot, Reject) else slot.add(ev, lenient, k, i)
            if err is not None:
                dead.append((k, DeadLetter(err.reason, err.detail, dump(ev, lenient), i)))

    def _columnar(self, k: int, msg: dict[str, Any], value: bytes, lenient: bool) -> None:
        slot = self.resolve(msg.get("model"))
        if isinstance(slot, Reject):
            self.dead.append((k, DeadLetter(slot.reason, slot.detail, value)))
            return
        try:
            n = check_shape(msg)
        except Reject as err:
            self.dead.append((k, DeadLetter(err.reason, err.detail, value)))
            return
        batch = None if lenient else vectorise(msg, n, slot.plan, k)
        if batch is not None:
            if n:
                slot.close()
                slot.parts.append(batch)
            return
        for i, ev in enumerate(rows(msg, n)):
            reject = slot.add(ev, lenient, k, i)
            if reject is not None:
                dl = DeadLetter(reject.reason, reject.detail, dump(ev, lenient), i)
                self.dead.append((k, dl))

    def finish(self) -> list[ModelBatch]:
        """One ``ModelBatch`` per model with good events, in order of first appearance."""
        out = []
        for slot in self.slots.values():
            if type(slot) is Rows:
                slot.close()
                parts = slot.parts
                if parts:
                    out.append(parts[0] if len(parts) == 1 else concat(parts))
        return out


_last_parsed: tuple[bytes, Any, bool] | None = None  # (value, parsed, lenient)


def event_payload(value: bytes, position: int) -> bytes:
    """Event ``position`` of an array or columnar message ``value``, alone, as JSON.

    For ``ModelBatch.row_payload``; the last message parsed is kept, so asking for
    many rows of one message parses it once.

    Raises:
        ValueError: ``value`` is not an array or columnar message with that position.
    """
    global _last_parsed
    last = _last_parsed
    if last is not None and (last[0] is value or last[0] == value):
        obj, lenient = last[1], last[2]
    else:
        try:
            obj, lenient = _loads(value), False
        except _JSONDecodeError as exc:
            obj, lenient = _lenient_loads(value, exc), True
        _last_parsed = (value, obj, lenient)
    if type(obj) is list and 0 <= position < len(obj):
        return dump(obj[position], lenient)
    if type(obj) is dict and type(obj.get("id")) is list and 0 <= position < len(obj["id"]):
        try:
            check_shape(obj)
        except Reject:
            pass
        else:
            return dump(row(obj, position), lenient)
    raise ValueError(f"no event at position {position} of this message")


def decode_message(
    value: bytes | None, schemas: Mapping[str, ModelSchema], max_bytes: int = MAX_BYTES
) -> tuple[list[ModelBatch], list[DeadLetter]]:
    """Decode one Kafka message value.

    Args:
        value: the message value (``None`` for a tombstone).
        schemas: model name → schema; events of other models are ``unknown_model``.
        max_bytes: longer messages are ``too_large`` (checked before parsing).

    Returns:
        One ``ModelBatch`` per model with at least one good event, and the dead
        letters in message order.
    """
    decoder = _Decoder(schemas, max_bytes)
    decoder.feed(0, value)
    dead = decoder.dead
    return decoder.finish(), [dl for _, dl in dead] if dead else []


def decode_messages(
    values: Iterable[bytes | None],
    schemas: Mapping[str, ModelSchema],
    max_bytes: int = MAX_BYTES,
) -> tuple[list[ModelBatch], list[tuple[int, DeadLetter]]]:
    """Decode a consumer batch of message values at once: one ``ModelBatch`` per model.

    Faster than calling ``decode_message`` per message: rows of all messages are
    gathered in Python lists and converted to numpy once per model.

    Returns:
        One ``ModelBatch`` per model with good events (rows in message order), and
        ``(message index, DeadLetter)`` pairs in message order.
    """
    decoder = _Decoder(schemas, max_bytes)
    for k, value in enumerate(values):
        decoder.feed(k, value)
    return decoder.finish(), decoder.dead

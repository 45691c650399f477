"""Label events (topic ``driftline.labels``): decoding and validation.

A label is the ground truth of an earlier prediction::

    {"model": "churn", "id": "req-42", "label": 1, "ts": 1732450000.0}

``label`` is a number (regression, or a class given as a number) or a string
(a class); ``ts`` (epoch seconds or ISO-8601) is when the truth became known,
from which the label delay is measured. A message holds one label or an array
of them (the SDK sends arrays keyed by the model id). Bad labels are
dead-lettered with the prediction event's reasons (``malformed_json``,
``not_utf8``, ``missing_field``, ``bad_type``, ``bad_value``, ``non_finite``,
``unknown_model``, ``too_large``); the join adds ``labels_off``,
``unknown_id``, ``expired`` and ``duplicate_label``.

Example:
    >>> batches, dead = decode_labels([b'[{"model": "m", "id": "a", "label": 1, "ts": 5}]'], {"m"})
    >>> b = batches[0]
    >>> (b.model, b.ids, b.labels, b.ts.tolist(), dead)
    ('m', ['a'], [1], [5.0], [])
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from stream.event_types import DeadLetter
from stream.event_values import (
    ID_MAX,
    MODEL_RE,
    Reject,
    dump,
    id_problem,
    model_name_problem,
    model_type_problem,
    show,
    ts_seconds,
)

__all__ = ["LABEL_REASONS", "LabelBatch", "decode_labels"]

#: reasons the join dead-letters a well-formed label for
LABEL_REASONS = ("labels_off", "unknown_id", "expired", "duplicate_label")


@dataclass
class LabelBatch:
    """The good labels of one model, in message order."""

    model: str
    ids: list[str] = field(default_factory=list)
    labels: list[str | int | float] = field(default_factory=list)
    ts: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    msg_index: list[int] = field(default_factory=list)  # the message each label came in
    positions: list[int] = field(default_factory=list)  # its index in the array (-1: alone)
    events: list[Any] = field(default_factory=list)  # the label objects as decoded

    def __len__(self) -> int:
        return len(self.ids)

    def payload(self, i: int, value: bytes) -> bytes:
        """Label ``i`` as it was sent, alone (the message itself for a single label)."""
        if self.positions[i] < 0:
            return value
        return dump(self.events[i], False)


def _check(ev: Any, models: Container[str]) -> tuple[str, str, str | int | float, float]:
    if type(ev) is not dict:
        raise Reject("bad_type", f"expected a label object, got {show(ev)}")
    model = ev.get("model")
    if type(model) is not str:
        raise model_type_problem(model)
    if not MODEL_RE.fullmatch(model):
        raise model_name_problem(model)
    if model not in models:
        raise Reject("unknown_model", f"model: {show(model)} is not configured")
    ident = ev.get("id")
    if type(ident) is not str or not 0 < len(ident) <= ID_MAX:
        raise id_problem(ident)
    label: Any = ev.get("label")
    tl = type(label)
    if label is None:
        raise Reject("missing_field", "label: missing")
    if tl is bool:
        label = "true" if label else "false"
    elif tl is float and not math.isfinite(label):
        raise Reject("non_finite", f"label: {show(label)}")
    elif tl is str and not label:
        raise Reject("bad_value", "label: empty string")
    elif tl not in (int, float, str):
        raise Reject("bad_type", f"label: expected a number or a string, got {show(label)}")
    return model, ident, label, ts_seconds(ev.get("ts"))


def decode_labels(
    values: Iterable[bytes | None], models: Container[str], max_bytes: int = 1_048_576
) -> tuple[list[LabelBatch], list[tuple[int, DeadLetter]]]:
    """Decode a consumer batch of label messages: one :class:`LabelBatch` per model.

    Returns:
        The batches (models in order of first appearance) and ``(message index,
        DeadLetter)`` for every bad message or label, in message order.
    """
    batches: dict[str, LabelBatch] = {}
    ts: dict[str, list[float]] = {}
    dead: list[tuple[int, DeadLetter]] = []
    for k, value in enumerate(values):
        if not value:
            dead.append((k, DeadLetter("malformed_json", "empty message", value or b"")))
            continue
        if len(value) > max_bytes:
            detail = f"message is {len(value)} bytes, limit {max_bytes}"
            dead.append((k, DeadLetter("too_large", detail, value)))
            continue
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            try:
                value.decode("utf-8")
                dl = DeadLetter("malformed_json", " ".join(str(exc).split()), value)
            except UnicodeDecodeError as bad:
                dl = DeadLetter("not_utf8", f"invalid UTF-8 at byte {bad.start}", value)
            dead.append((k, dl))
            continue
        items = list(enumerate(obj)) if type(obj) is list else [(-1, obj)]
        for i, ev in items:
            try:
                model, ident, label, t = _check(ev, models)
            except Reject as err:
                payload = value if i < 0 else dump(ev, False)
                dead.append((k, DeadLetter(err.reason, err.detail, payload, None if i < 0 else i)))
                continue
            b = batches.get(model)
            if b is None:
                b = batches[model] = LabelBatch(model)
                ts[model] = []
            b.ids.append(ident)
            b.labels.append(label)
            ts[model].append(t)
            b.msg_index.append(k)
            b.positions.append(i)
            b.events.append(ev)
    for model, b in batches.items():
        b.ts = np.asarray(ts[model], dtype=np.float64)
    return list(batches.values()), dead

"""Validate parsed events one by one and gather the good ones of a model, row-major.

The per-event path of ``stream.events``: single events, arrays of events, and the
rows of a columnar batch that failed its vectorised checks. Checks run in the order
of the event contract (version, id, ts, features, prediction, proba, latency_ms,
segment); the first failure names the event's reason. Feature groups are checked
numeric first, then categorical, then boolean.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.event_types import ModelBatch, ModelSchema
from stream.event_values import (
    BOOL_NONE,
    BOOL_STR,
    ID_MAX,
    INF,
    NAN,
    NUM_NONE,
    STR_NONE,
    TS_MAX,
    Reject,
    boolean_values,
    categorical_values,
    check_numeric,
    check_segment,
    id_problem,
    proba_top,
    show,
    ts_seconds,
)

__all__ = ["Plan", "Rows", "plan_for"]

Getter = Callable[[dict[str, Any]], tuple[Any, ...]]


def _getter(names: tuple[str, ...]) -> Getter:
    """A fast ``features -> tuple of values`` for ``names``; raises KeyError if one is absent."""
    if len(names) >= 2:
        return operator.itemgetter(*names)
    return lambda feats: tuple(feats[k] for k in names)


@dataclass(frozen=True)
class Plan:
    """A schema compiled for the decoder: feature names per kind, prediction rules.

    A row holds ``fwidth`` floats (ts, numeric features, prediction, proba_top,
    latency_ms) and ``owidth`` objects (id, version, categorical then boolean
    features, prediction label, proba object, message index, position in the message).
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    boolean: tuple[str, ...]
    number_ok: bool  # a numeric prediction is allowed
    label_ok: bool  # a string prediction is allowed
    fwidth: int
    owidth: int
    labels: tuple[str, ...]  # categorical then boolean: the keys of ``ModelBatch.categorical``
    get_numeric: Getter
    get_categorical: Getter
    get_boolean: Getter


_PLANS: dict[int, tuple[ModelSchema, Plan]] = {}


def plan_for(schema: ModelSchema) -> Plan:
    """The compiled plan of ``schema`` (cached per schema object)."""
    hit = _PLANS.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    feats = schema.features
    numeric = tuple(k for k, v in feats.items() if v == "numeric")
    categorical = tuple(k for k, v in feats.items() if v == "categorical")
    boolean = tuple(k for k, v in feats.items() if v == "boolean")
    plan = Plan(
        numeric=numeric,
        categorical=categorical,
        boolean=boolean,
        number_ok=schema.prediction != "categorical",
        label_ok=schema.prediction != "numeric",
        fwidth=len(numeric) + 4,
        owidth=len(categorical) + len(boolean) + 6,
        labels=categorical + boolean,
        get_numeric=_getter(numeric),
        get_categorical=_getter(categorical),
        get_boolean=_getter(boolean),
    )
    if len(_PLANS) >= 4096:
        _PLANS.clear()
    _PLANS[id(schema)] = (schema, plan)
    return plan


def _values(feats: dict[str, Any], get: Getter, names: tuple[str, ...]) -> tuple[Any, ...]:
    try:
        return get(feats)
    except KeyError:  # an absent feature is a missing value
        return tuple(map(feats.get, names))


class Rows:
    """The good events of one model, gathered row-major into two flat lists (see ``Plan``).

    ``parts`` holds batches already finished (columnar batches, or rows closed
    before one), so that a decode call returns one batch per model in order.
    """

    __slots__ = ("_floats", "_fw", "_objects", "_ow", "model", "n", "parts", "plan")

    def __init__(self, model: str, plan: Plan) -> None:
        self.model = model
        self.plan = plan
        self._fw = plan.fwidth
        self._ow = plan.owidth
        self.n = 0
        self._floats: list[Any] = []
        self._objects: list[Any] = []
        self.parts: list[ModelBatch] = []

    def add(self, ev: dict[str, Any], lenient: bool, k: int, position: int) -> Reject | None:
        """Validate ``ev`` (its model already resolved) and keep it, or return why not.

        Args:
            ev: the parsed event.
            lenient: the message was parsed by the standard library, so numbers may
                be non-finite.
            k: the message's index in the decode call.
            position: the event's position inside the message (-1: the message is
                this event).
        """
        floats = self._floats
        objects = self._objects
        plan = self.plan
        try:
            version = ev.get("version")
            if version is not None and type(version) is not str:
                raise Reject("bad_type", f"version: expected a string, got {show(version)}")
            ident = ev.get("id")
            if type(ident) is not str or not 0 < len(ident) <= ID_MAX:
                raise id_problem(ident)
            ts = ev.get("ts")
            if type(ts) is not float or not 0.0 <= ts < TS_MAX:
                ts = ts_seconds(ts)
            feats = ev.get("features")
            if type(feats) is not dict:
                if feats is None:
                    raise Reject("missing_field", "features: missing")
                raise Reject("bad_type", f"features: expected an object, got {show(feats)}")
            objects.append(ident)
            objects.append(version)
            floats.append(ts)
            names = plan.numeric
            if names:
                try:
                    values = plan.get_numeric(feats)
                except KeyError:  # an absent feature is a missing value
                    values = tuple(map(feats.get, names))
                if lenient or not NUM_NONE.issuperset(map(type, values)):
                    check_numeric(names, values)
                floats += values
            if plan.categorical:
                values = _values(feats, plan.get_categorical, plan.categorical)
                if STR_NONE.issuperset(map(type, values)):
                    objects += values
                else:
                    objects += categorical_values(plan.categorical, values)
            if plan.boolean:
                values = _values(feats, plan.get_boolean, plan.boolean)
                if BOOL_NONE.issuperset(map(type, values)):
                    objects += map(BOOL_STR.get, values)
                else:
                    objects += boolean_values(plan.boolean, values)
            pred = ev.get("prediction")
            tp = type(pred)
            if (tp is float or tp is int) and plan.number_ok:
                if tp is float and pred - pred:  # type: ignore[operator]
                    raise Reject("non_finite", f"prediction: {show(pred)}")
                floats.append(pred)
                label = None
            elif tp is str and plan.label_ok:
                floats.append(NAN)
                label = pred
            elif pred is None:
                raise Reject("missing_field", "prediction: missing")
            else:
                want = "a number or a string"
                if not plan.label_ok or not plan.number_ok:
                    want = "a number" if plan.number_ok else "a string"
                raise Reject("bad_type", f"prediction: expected {want}, got {show(pred)}")
            proba = ev.get("proba")
            if proba is None:
                floats.append(NAN)
            elif type(proba) is dict:
                floats.append(proba_top(proba))
            else:
                raise Reject("bad_type", f"proba: expected an object, got {show(proba)}")
            latency = ev.get("latency_ms")
            tl = type(latency)
            if latency is None:
                floats.append(NAN)
            elif (tl is float or tl is int) and 0.0 <= latency < INF:
                floats.append(latency)
            elif tl is float or tl is int:
                reason = "non_finite" if latency - latency else "bad_value"
                raise Reject(reason, f"latency_ms: {show(latency)} is not a number >= 0")
            else:
                raise Reject("bad_type", f"latency_ms: expected a number, got {show(latency)}")
            segment = ev.get("segment")
            if segment is not None:
                check_segment(segment)
            objects.append(label)
            objects.append(proba)
            objects.append(k)
            objects.append(position)
        except Reject as reject:
            del floats[self.n * self._fw :]
            del objects[self.n * self._ow :]
            return reject
        self.n += 1
        return None

    def close(self) -> None:
        """Move the gathered rows, if any, into ``parts`` as one ``ModelBatch``."""
        n = self.n
        if not n:
            return
        plan, ow, fw = self.plan, self._ow, self._fw
        if n == 1:
            matrix = np.array(self._floats, dtype=np.float64).reshape(fw, 1)
        else:
            matrix = np.array(self._floats, dtype=np.float64).reshape(n, fw).T.copy()
        cols = list(matrix)  # one view per column, a C loop
        objects = self._objects
        k = len(plan.numeric)
        self.parts.append(
            ModelBatch(  # positional: noticeably faster for one-event messages
                self.model,
                cols[0],  # ts
                objects[0::ow],  # ids
                dict(zip(plan.numeric, cols[1 : k + 1], strict=True)),
                {name: objects[j::ow] for j, name in enumerate(plan.labels, 2)},
                cols[k + 1],  # prediction
                objects[ow - 4 :: ow],  # prediction_label
                cols[k + 2],  # proba_top
                cols[k + 3],  # latency_ms
                objects[1::ow],  # versions
                objects[ow - 2 :: ow],  # msg_index
                objects[ow - 1 :: ow],  # positions
                [(n, objects[ow - 3 :: ow])],  # proba, one dict (or None) per row
            )
        )
        self.n = 0
        self._floats = []
        self._objects = []

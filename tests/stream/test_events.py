"""Decoding and validation of prediction events (``stream.events``): pure, no Kafka or Redis."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.event_types import concat
from stream.events import (
    REASONS,
    DeadLetter,
    ModelBatch,
    ModelSchema,
    decode_message,
    decode_messages,
)
from stream.exceptions import ConfigError

SCHEMA = ModelSchema(
    "churn",
    {"age": "numeric", "income": "numeric", "plan": "categorical", "vip": "boolean"},
)
SCHEMAS = {
    "churn": SCHEMA,
    "fraud": ModelSchema("fraud", {"amount": "numeric"}, prediction="numeric"),
    "intent": ModelSchema("intent", {"text_len": "numeric"}, prediction="categorical"),
}
TS = 1_717_000_000.0
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def event(**overrides: Any) -> dict[str, Any]:
    """A valid churn event, with fields replaced (``None`` removes a field)."""
    ev: dict[str, Any] = {
        "model": "churn",
        "version": "v1",
        "id": "req-1",
        "ts": TS,
        "features": {"age": 41, "income": 52_000.5, "plan": "pro", "vip": True},
        "prediction": 0.8,
        "proba": {"stay": 0.2, "churn": 0.8},
        "latency_ms": 3.5,
    }
    for key, value in overrides.items():
        if value is None:
            ev.pop(key, None)
        else:
            ev[key] = value
    return ev


def features(**overrides: Any) -> dict[str, Any]:
    feats: dict[str, Any] = {"age": 41, "income": 52_000.5, "plan": "pro", "vip": True}
    feats.update(overrides)
    return feats


def decode(value: bytes | None, **kw: Any) -> tuple[list[ModelBatch], list[DeadLetter]]:
    batches, dead = decode_message(value, SCHEMAS, **kw)
    check_invariants(batches, dead)
    return batches, dead


def check_invariants(batches: list[ModelBatch], dead: list[DeadLetter]) -> None:
    for dl in dead:
        assert dl.reason in REASONS
        assert dl.detail and "\n" not in dl.detail and len(dl.detail) < 300
        dl.detail.encode()  # fit for a Kafka header: no lone surrogates
        assert isinstance(dl.payload, bytes)
    for b in batches:
        n = len(b)
        assert n > 0
        assert b.ts.shape == b.prediction.shape == b.proba_top.shape == b.latency_ms.shape == (n,)
        assert len(b.prediction_label) == len(b.versions) == n
        assert all(a.shape == (n,) and a.dtype == np.float64 for a in b.numeric.values())
        assert all(len(c) == n for c in b.categorical.values())
        assert np.isfinite(b.ts).all()


def only_dead(value: bytes | None, **kw: Any) -> DeadLetter:
    batches, dead = decode(value, **kw)
    assert batches == [] and len(dead) == 1, (batches, dead)
    return dead[0]


def single(ev: Any) -> DeadLetter:
    return only_dead(orjson.dumps(ev))


def one_row(value: bytes) -> ModelBatch:
    batches, dead = decode(value)
    assert dead == [] and len(batches) == 1 and len(batches[0]) == 1, dead
    return batches[0]


def rows_of(batch: ModelBatch) -> list[dict[str, Any]]:
    """Row dicts of a batch (NaN as None) to compare batches decoded different ways."""

    def num(x: float) -> float | None:
        return None if math.isnan(x) else float(x)

    out = []
    for i in range(len(batch)):
        row: dict[str, Any] = {
            "id": batch.ids[i],
            "ts": float(batch.ts[i]),
            "prediction": num(batch.prediction[i]),
            "label": batch.prediction_label[i],
            "proba_top": num(batch.proba_top[i]),
            "latency_ms": num(batch.latency_ms[i]),
            "version": batch.versions[i],
        }
        row.update({k: num(v[i]) for k, v in batch.numeric.items()})
        row.update({k: v[i] for k, v in batch.categorical.items()})
        out.append(row)
    return out


def columnar(events: list[dict[str, Any]], model: str = "churn") -> dict[str, Any]:
    """Events of one model as a columnar batch (absent values as null)."""
    names: dict[str, None] = {}
    for e in events:
        names.update(dict.fromkeys(e.get("features") or {}))
    return {
        "model": model,
        "version": [e.get("version") for e in events],
        "id": [e.get("id") for e in events],
        "ts": [e.get("ts") for e in events],
        "features": {n: [(e.get("features") or {}).get(n) for e in events] for n in names},
        "prediction": [e.get("prediction") for e in events],
        "proba": [e.get("proba") for e in events],
        "latency_ms": [e.get("latency_ms") for e in events],
        "segment": [e.get("segment") for e in events],
    }


# -- the three formats ----------------------------------------------------------
def test_single_event_decodes_every_field() -> None:
    b = one_row(orjson.dumps(event()))
    assert b.model == "churn" and b.ids == ["req-1"] and b.versions == ["v1"]
    assert b.ts.tolist() == [TS]
    assert b.numeric["age"].tolist() == [41.0] and b.numeric["income"].tolist() == [52_000.5]
    assert b.categorical == {"plan": ["pro"], "vip": ["true"]}
    assert b.prediction.tolist() == [0.8] and b.prediction_label == [None]
    assert b.proba_top.tolist() == [0.8] and b.latency_ms.tolist() == [3.5]


def test_optional_fields_absent_or_null_are_missing_values() -> None:
    ev = event(version=None, proba=None, latency_ms=None, features={"age": None})
    ev["segment"] = None
    b = one_row(orjson.dumps(ev))
    assert b.versions == [None]
    assert math.isnan(b.proba_top[0]) and math.isnan(b.latency_ms[0])
    assert math.isnan(b.numeric["age"][0]) and math.isnan(b.numeric["income"][0])
    assert b.categorical == {"plan": [None], "vip": [None]}


def test_unknown_features_and_fields_are_ignored() -> None:
    ev = event(features=features(shoe_size=44, extra=[1, 2]))
    ev["unknown_field"] = {"x": 1}
    ev["segment"] = {"region": "eu"}
    b = one_row(orjson.dumps(ev))
    assert set(b.numeric) == {"age", "income"} and set(b.categorical) == {"plan", "vip"}


def test_string_prediction_goes_to_label() -> None:
    b = one_row(orjson.dumps(event(prediction="churn")))
    assert math.isnan(b.prediction[0]) and b.prediction_label == ["churn"]


def test_array_of_events_keeps_order() -> None:
    events = [event(id=f"e{i}", ts=TS + i) for i in range(5)]
    [b], dead = decode(orjson.dumps(events))
    assert dead == [] and b.ids == [f"e{i}" for i in range(5)]
    assert b.ts.tolist() == [TS + i for i in range(5)]


def test_empty_array_and_empty_columnar_give_nothing() -> None:
    assert decode(b"[]") == ([], [])
    msg = {"model": "churn", "id": [], "ts": [], "features": {}, "prediction": []}
    assert decode(orjson.dumps(msg)) == ([], [])


def test_multi_model_array_gives_one_batch_per_model_in_order_of_appearance() -> None:
    events = [
        event(model="fraud", id="f1", features={"amount": 5}, prediction=0.1),
        event(id="c1"),
        event(model="fraud", id="f2", features={"amount": 7}, prediction=0.2),
        event(model="ghost", id="g1"),
        event(id="c2"),
    ]
    batches, dead = decode(orjson.dumps(events))
    assert [b.model for b in batches] == ["fraud", "churn"]
    assert batches[0].ids == ["f1", "f2"] and batches[0].numeric["amount"].tolist() == [5.0, 7.0]
    assert batches[1].ids == ["c1", "c2"]
    assert [(d.reason, d.index) for d in dead] == [("unknown_model", 3)]
    assert orjson.loads(dead[0].payload) == events[3]


def test_columnar_batch_decodes_to_the_same_rows_as_its_events() -> None:
    events = [
        event(id="a", ts=TS, features=features(age=1, plan=7)),
        event(id="b", ts="2024-06-01T00:00:00Z", prediction="churn", proba=None),
        event(id="c", ts=TS + 2, features={"vip": "false"}, latency_ms=None),
    ]
    [col], dead = decode(orjson.dumps(columnar(events)))
    [arr], dead2 = decode(orjson.dumps(events))
    assert dead == dead2 == []
    assert rows_of(col) == rows_of(arr)
    assert col.categorical["plan"] == ["7", "pro", None]
    assert col.categorical["vip"] == ["true", "true", "false"]


def test_columnar_scalar_version_and_object_forms_of_proba_and_segment() -> None:
    msg = {
        "model": "churn",
        "version": "v9",
        "id": ["a", "b", "c"],
        "ts": [TS, TS + 1, TS + 2],
        "features": {"age": [1, None, 3.5], "vip": [True, None, "false"]},
        "prediction": [0.1, 0.2, 0.3],
        "proba": {"stay": [0.9, None, None], "churn": [0.1, 0.6, None]},
        "latency_ms": [1, None, 2.5],
        "segment": {"region": ["eu", None, "us"]},
    }
    [b], dead = decode(orjson.dumps(msg))
    assert dead == []
    assert b.versions == ["v9"] * 3
    np.testing.assert_array_equal(b.numeric["age"], [1.0, np.nan, 3.5])
    np.testing.assert_array_equal(b.proba_top, [0.9, 0.6, np.nan])
    np.testing.assert_array_equal(b.latency_ms, [1.0, np.nan, 2.5])
    assert b.categorical["vip"] == ["true", None, "false"]
    assert b.categorical["plan"] == [None, None, None]
    assert math.isnan(b.numeric["income"][1])


def test_columnar_bad_row_is_dead_lettered_alone_with_that_row_as_payload() -> None:
    events = [event(id=f"r{i}", ts=TS + i) for i in range(6)]
    events[2]["features"] = features(age=True)
    events[4]["latency_ms"] = -1
    msg = columnar(events)
    msg["proba"] = {"churn": [0.5] * 6}
    batches, dead = decode(orjson.dumps(msg))
    assert [b.ids for b in batches] == [["r0", "r1", "r3", "r5"]]
    assert [(d.reason, d.index) for d in dead] == [("bad_type", 2), ("bad_value", 4)]
    assert dead[0].detail == "features.age: expected a number or null, got true"
    row = orjson.loads(dead[0].payload)
    assert row["id"] == "r2" and row["features"]["age"] is True and row["model"] == "churn"
    assert row["proba"] == {"churn": 0.5} and row["ts"] == TS + 2
    assert sum(map(len, batches)) + len(dead) == 6


@pytest.mark.parametrize(
    ("mutate", "detail"),
    [
        (lambda m: m["ts"].pop(), "columnar arrays differ in length: id=3, ts=2"),
        (lambda m: m["features"]["age"].append(1), "columnar arrays differ in length: id=3, "),
        (lambda m: m.update(latency_ms=5), "latency_ms: expected an array in a columnar batch"),
        (lambda m: m["features"].update(age=5), "features.age: expected an array"),
        (lambda m: m.update(features=[1]), "features: expected an object of arrays"),
        (lambda m: m.update(proba="x"), "proba: expected an array or an object of arrays"),
        (lambda m: m.update(version=3), "version: expected a string or an array in a columnar"),
    ],
)
def test_columnar_shape_errors_reject_the_whole_message(mutate: Any, detail: str) -> None:
    msg = columnar([event(id=f"r{i}") for i in range(3)])
    mutate(msg)
    value = orjson.dumps(msg)
    dl = only_dead(value)
    assert (dl.reason, dl.index, dl.payload) == ("bad_type", None, value)
    assert dl.detail.startswith(detail)


@pytest.mark.parametrize(
    ("field", "reason"),
    [("model", "missing_field"), ("ts", "missing_field"), ("features", "missing_field")],
)
def test_columnar_missing_fields_reject_the_whole_message(field: str, reason: str) -> None:
    msg = columnar([event()])
    del msg[field]
    assert only_dead(orjson.dumps(msg)).reason == reason


def test_columnar_unknown_model_rejects_the_whole_message() -> None:
    msg = columnar([event(), event(id="x")], model="ghost")
    dl = only_dead(orjson.dumps(msg))
    assert (dl.reason, dl.index) == ("unknown_model", None)


def test_columnar_with_non_finite_value_keeps_the_other_rows() -> None:
    msg = orjson.dumps(columnar([event(id="a"), event(id="b"), event(id="c")]))
    msg = msg.replace(b'"latency_ms":[3.5,3.5,3.5]', b'"latency_ms":[3.5,NaN,3.5]')
    batches, dead = decode(msg)
    assert [b.ids for b in batches] == [["a", "c"]]
    assert [(d.reason, d.index) for d in dead] == [("non_finite", 1)]
    assert dead[0].detail == "latency_ms: NaN is not a number >= 0"
    assert json.loads(dead[0].payload)["id"] == "b"


# -- every reason ---------------------------------------------------------------
@pytest.mark.parametrize("value", [None, b""])
def test_empty_message_is_malformed(value: bytes | None) -> None:
    dl = only_dead(value)
    assert (dl.reason, dl.detail, dl.payload, dl.index) == (
        "malformed_json",
        "empty message",
        b"",
        None,
    )


@pytest.mark.parametrize(
    "value", [b'{"model": ', b"{'a': 1}", b'[{"a":1},]', b"   ", b"\xef\xbb\xbf{}"]
)
def test_bad_json_is_malformed(value: bytes) -> None:
    dl = only_dead(value)
    assert (dl.reason, dl.payload) == ("malformed_json", value)


def test_deep_nesting_is_malformed_not_a_crash() -> None:
    assert only_dead(b"[" * 5000 + b"]" * 5000).reason == "malformed_json"
    assert only_dead(b"[" * 5000).reason == "malformed_json"


@pytest.mark.parametrize(
    "value",
    [
        b"\xff\xfe",
        b'{"model":"churn","id":"\xc3\x28"}',
        orjson.dumps(event(id="abc")).replace(b"abc", b"a\xe9c"),  # latin-1, not UTF-8
        b'{"model":"churn","x":NaN,"id":"\xff"}',  # not UTF-8 wins over NaN
    ],
)
def test_invalid_utf8_is_not_utf8(value: bytes) -> None:
    dl = only_dead(value)
    assert (dl.reason, dl.payload, dl.index) == ("not_utf8", value, None)


def test_lone_surrogate_escape_is_not_utf8_for_the_whole_message() -> None:
    value = orjson.dumps(event(id="abc")).replace(b"abc", b"a\\ud800c")
    assert only_dead(value).reason == "not_utf8"
    array = b"[" + orjson.dumps(event()) + b"," + value + b"]"
    assert (only_dead(array).reason, only_dead(array).index) == ("not_utf8", None)
    key = orjson.dumps([event(), event()]).replace(b'"model":', b'"model\\udc00":', 1)
    assert only_dead(key).reason == "not_utf8"
    # a valid surrogate pair is fine
    assert one_row(value.replace(b"\\ud800", b"\\ud83d\\ude00")).ids == ["a\U0001f600c"]


@pytest.mark.parametrize("field", ["model", "id", "ts", "features", "prediction"])
@pytest.mark.parametrize("how", ["absent", "null"])
def test_required_field_missing(field: str, how: str) -> None:
    ev = event()
    if how == "absent":
        del ev[field]
    else:
        ev[field] = None
    dl = single(ev)
    assert dl.reason == "missing_field" and dl.detail.startswith(f"{field}:")


@pytest.mark.parametrize(
    ("ev", "detail"),
    [
        (event(features=features(age=True)), "features.age: expected a number or null, got true"),
        (event(features=features(age="41")), "features.age: expected a number or null, got '41'"),
        (event(features=features(age="1.5")), "features.age: expected a number or null, got '1.5'"),
        (
            event(features=features(age=[1])),
            "features.age: expected a number or null, got an array",
        ),
        (event(features=features(plan={"a": 1})), "features.plan: expected a string, number,"),
        (event(features=features(vip=1)), "features.vip: expected a bool, 'true', 'false' or null"),
        (event(features=features(vip=0.0)), "features.vip: expected a bool"),
        (event(features=[1, 2]), "features: expected an object, got an array"),
        (event(id=17), "id: expected a string, got 17"),
        (event(model=3), "model: expected a string, got 3"),
        (event(ts=True), "ts: expected a number or an ISO-8601 string, got true"),
        (event(prediction=True), "prediction: expected a number or a string, got true"),
        (event(prediction=[0.5]), "prediction: expected a number or a string, got an array"),
        (event(proba=[0.5]), "proba: expected an object, got an array"),
        (event(proba={"a": "0.5"}), "proba.a: expected a number, got '0.5'"),
        (event(proba={"a": False}), "proba.a: expected a number, got false"),
        (event(latency_ms="3"), "latency_ms: expected a number, got '3'"),
        (event(latency_ms=True), "latency_ms: expected a number, got true"),
        (event(version=2), "version: expected a string, got 2"),
        (event(segment={"region": 1}), "segment.region: expected a string, got 1"),
        (event(segment="eu"), "segment: expected an object, got 'eu'"),
        (
            event(model="fraud", features={"amount": 1}, prediction="yes"),
            "prediction: expected a number, got 'yes'",
        ),
        (
            event(model="intent", features={"text_len": 1}, prediction=0.3),
            "prediction: expected a string, got 0.3",
        ),
    ],
)
def test_wrong_json_type_is_bad_type(ev: dict[str, Any], detail: str) -> None:
    dl = single(ev)
    assert dl.reason == "bad_type" and dl.detail.startswith(detail), dl.detail
    assert dl.payload == orjson.dumps(ev) and dl.index is None


@pytest.mark.parametrize("value", [b"3", b'"text"', b"null", b"true"])
def test_top_level_scalar_is_bad_type(value: bytes) -> None:
    dl = only_dead(value)
    assert (dl.reason, dl.index) == ("bad_type", None)


def test_array_element_that_is_not_an_object_is_bad_type() -> None:
    batches, dead = decode(orjson.dumps([event(), 5, [event()], "x"]))
    assert len(batches[0]) == 1
    assert [(d.reason, d.index, d.payload) for d in dead] == [
        ("bad_type", 1, b"5"),
        ("bad_type", 2, orjson.dumps([event()])),
        ("bad_type", 3, b'"x"'),
    ]


@pytest.mark.parametrize(
    ("ev", "detail"),
    [
        (event(latency_ms=-0.5), "latency_ms: -0.5 is not a number >= 0"),
        (event(proba={"a": 1.5}), "proba.a: 1.5 is not in [0, 1]"),
        (event(proba={"a": -0.1, "b": 0.2}), "proba.a: -0.1 is not in [0, 1]"),
        (event(id="x" * 129), "id: 129 characters, expected 1..128"),
        (event(id=""), "id: 0 characters"),
        (event(model="churn model"), "model: 'churn model' does not match"),
        (event(model="m" * 65), "model: "),
        (event(model=""), "model: '' does not match"),
        (event(ts="yesterday"), "ts: not an ISO-8601 time: 'yesterday'"),
        (event(ts="2024-13-01T00:00:00Z"), "ts: not an ISO-8601 time"),
        (event(ts="2024-01-01T00:00:00+25:00"), "ts: not an ISO-8601 time"),
        (event(ts=1.7e12), "ts: 1700000000000.0 is not epoch seconds"),  # milliseconds
        (event(ts=-1), "ts: -1 is not epoch seconds"),
        (event(ts="1969-12-31T23:59:59Z"), "ts: '1969-12-31T23:59:59Z' is not epoch seconds"),
        (
            event(features=features(vip="yes")),
            "features.vip: expected 'true' or 'false', got 'yes'",
        ),
    ],
)
def test_out_of_range_is_bad_value(ev: dict[str, Any], detail: str) -> None:
    dl = single(ev)
    assert dl.reason == "bad_value" and dl.detail.startswith(detail), dl.detail


def test_id_of_exactly_128_characters_is_fine() -> None:
    assert one_row(orjson.dumps(event(id="x" * 128))).ids == ["x" * 128]


@pytest.mark.parametrize(
    ("where", "literal", "detail"),
    [
        (("features", "age"), b"NaN", "features.age: NaN"),
        (("features", "age"), b"1e999", "features.age: Infinity"),
        (("features", "age"), b"-1e999", "features.age: -Infinity"),
        (("features", "income"), b"-Infinity", "features.income: -Infinity"),
        (("features", "plan"), b"NaN", "features.plan: NaN"),
        (("ts",), b"Infinity", "ts: Infinity"),
        (("ts",), b"NaN", "ts: NaN"),
        (("prediction",), b"NaN", "prediction: NaN"),
        (("prediction",), b"-Infinity", "prediction: -Infinity"),
        (("proba", "churn"), b"NaN", "proba.churn: NaN is not in [0, 1]"),
        (("latency_ms",), b"Infinity", "latency_ms: Infinity is not a number >= 0"),
    ],
)
def test_non_finite_numbers_are_non_finite(
    where: tuple[str, ...], literal: bytes, detail: str
) -> None:
    ev = event()
    parent = ev
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = "__HERE__"
    msg = orjson.dumps(ev).replace(b'"__HERE__"', literal)
    dl = only_dead(msg)
    assert (dl.reason, dl.detail, dl.payload) == ("non_finite", detail, msg)


def test_non_finite_in_an_array_dead_letters_that_event_only() -> None:
    good = orjson.dumps(event(id="ok"))
    bad = orjson.dumps(event(id="bad")).replace(b'"age":41', b'"age":NaN')
    batches, dead = decode(b"[" + good + b"," + bad + b"," + good + b"]")
    assert [b.ids for b in batches] == [["ok", "ok"]]
    assert [(d.reason, d.index) for d in dead] == [("non_finite", 1)]
    assert (
        json.loads(dead[0].payload)["features"]["age"]
        != json.loads(dead[0].payload)["features"]["age"]
    )


def test_unknown_model() -> None:
    dl = single(event(model="ghost"))
    assert (dl.reason, dl.detail) == ("unknown_model", "model: 'ghost' has no registered schema")


def test_too_large_is_checked_before_parsing() -> None:
    value = orjson.dumps(event())
    assert one_row(value)
    assert only_dead(value, max_bytes=len(value) - 1).reason == "too_large"
    assert only_dead(b"{" * 100, max_bytes=50).reason == "too_large"
    assert only_dead(value, max_bytes=len(value) - 1).payload == value


def test_worker_reasons_are_listed() -> None:
    assert {"too_late", "no_baseline"} <= set(REASONS) and len(set(REASONS)) == len(REASONS)


def test_first_failing_field_in_contract_order_names_the_reason() -> None:
    dl = single(event(id=None, ts="bad", latency_ms=-1))
    assert dl.reason == "missing_field" and dl.detail == "id: missing"
    dl = single(event(ts="bad", latency_ms=-1))
    assert dl.reason == "bad_value" and dl.detail.startswith("ts:")


# -- values -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (TS, TS),
        (1_717_000_000, 1_717_000_000.0),
        ("2024-06-01T12:00:00Z", datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp()),
        ("2024-06-01T12:00:00.250Z", datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp() + 0.25),
        ("2024-06-01T14:00:00+02:00", datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp()),
        ("2024-06-01T07:30:00-04:30", datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp()),
        ("2024-06-01T12:00:00", datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp()),  # naive = UTC
        ("2024-06-01", datetime(2024, 6, 1, tzinfo=UTC).timestamp()),
    ],
)
def test_ts_numeric_or_iso8601(ts: Any, expected: float) -> None:
    assert one_row(orjson.dumps(event(ts=ts))).ts.tolist() == [pytest.approx(expected, abs=1e-6)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "true"),
        (False, "false"),
        ("true", "true"),
        ("false", "false"),
        (None, None),
    ],
)
def test_boolean_feature_values(value: Any, expected: str | None) -> None:
    b = one_row(orjson.dumps(event(features=features(vip=value))))
    assert b.categorical["vip"] == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12345, "12345"),
        (-7, "-7"),
        (2.5, "2.5"),
        (3.0, "3.0"),
        (True, "true"),
        (False, "false"),
        ("gold", "gold"),
        ("", ""),
        (None, None),
        (18446744073709551615, "18446744073709551615"),
    ],
)
def test_categorical_feature_values_are_strings(value: Any, expected: str | None) -> None:
    b = one_row(orjson.dumps(event(features=features(plan=value))))
    assert b.categorical["plan"] == [expected]


def test_numeric_feature_ints_and_big_numbers() -> None:
    ev = event(features=features(age=-3, income=18446744073709551615))
    b = one_row(orjson.dumps(ev))
    assert b.numeric["age"].tolist() == [-3.0] and b.numeric["income"].tolist() == [2.0**64]
    b = one_row(orjson.dumps(event()).replace(b"52000.5", b"1" + b"0" * 30))
    assert b.numeric["income"].tolist() == [1e30]


def test_huge_integer_in_a_leniently_parsed_message_is_non_finite() -> None:
    msg = b"[" + orjson.dumps(event()).replace(b"52000.5", b"1" + b"0" * 400)
    msg += b"," + orjson.dumps(event(id="x")).replace(b"41", b"NaN") + b"]"
    batches, dead = decode(msg)
    assert batches == [] and [(d.reason, d.index) for d in dead] == [
        ("non_finite", 0),
        ("non_finite", 1),
    ]


def test_proba_top_is_the_largest_probability() -> None:
    b = one_row(orjson.dumps(event(proba={"a": 0.1, "b": 0.7, "c": 0.2, "d": 0, "e": 1})))
    assert b.proba_top.tolist() == [1.0]
    assert np.isnan(one_row(orjson.dumps(event(proba={}))).proba_top[0])


def test_detail_is_one_short_line_even_for_long_or_multiline_values() -> None:
    dl = single(event(features=features(age="a\n" * 1000)))
    assert "\n" not in dl.detail and len(dl.detail) < 150
    dl = single(event(features={"age\nx": 1, "plan": 1, "vip": "maybe\n"}))
    assert "\n" not in dl.detail


def test_mixed_array_accounts_for_every_event() -> None:
    events: list[Any] = [
        event(id="1"),
        event(id="2", features=features(age="x")),
        event(id="3", model="fraud", features={"amount": 1}),
        7,
        event(id="5", model="ghost"),
        event(id="6", ts="not a time"),
        event(id="7", features=features(plan=9)),
    ]
    batches, dead = decode(orjson.dumps(events))
    assert sum(map(len, batches)) + len(dead) == len(events)
    assert sorted(i for b in batches for i in b.ids) == ["1", "3", "7"]
    assert [d.index for d in dead] == [1, 3, 4, 5]
    for d in dead:
        assert orjson.loads(d.payload) == events[d.index or 0]


# -- decode_messages ----------------------------------------------------------------
def test_decode_messages_gives_one_batch_per_model_in_message_order() -> None:
    values: list[bytes | None] = [
        orjson.dumps(event(id="a")),
        orjson.dumps(columnar([event(id="b"), event(id="c")])),
        None,
        orjson.dumps([event(id="d"), event(id="x", model="ghost")]),
        orjson.dumps(event(model="fraud", id="f", features={"amount": 2})),
        orjson.dumps(columnar([event(id="e")])),
        orjson.dumps(event(id="g")),
        b"\xff",
    ]
    batches, dead = decode_messages(values, SCHEMAS)
    check_invariants(batches, [d for _, d in dead])
    assert [(b.model, b.ids) for b in batches] == [
        ("churn", ["a", "b", "c", "d", "e", "g"]),
        ("fraud", ["f"]),
    ]
    assert [(k, d.reason, d.index) for k, d in dead] == [
        (2, "malformed_json", None),
        (3, "unknown_model", 1),
        (7, "not_utf8", None),
    ]
    # the same rows as decoding message by message
    per_message = [b for v in values for b in decode_message(v, SCHEMAS)[0] if b.model == "churn"]
    assert rows_of(batches[0]) == [r for b in per_message for r in rows_of(b)]


def test_rows_know_their_message_position_and_payload() -> None:
    bad = event(id="bad", features=features(age="x"))
    values: list[bytes | None] = [
        orjson.dumps(event(id="s")),
        orjson.dumps([event(id="a0"), bad, event(id="a2")]),
        orjson.dumps(columnar([event(id="c0"), event(id="c1")])),
        orjson.dumps(columnar([event(id="f0"), bad, event(id="f2")])),
        orjson.dumps([event(id="n0")]).replace(b"]", b',{"model":"churn","ts":NaN}]'),
    ]
    [b], dead = decode_messages(values, SCHEMAS)
    assert b.ids == ["s", "a0", "a2", "c0", "c1", "f0", "f2", "n0"]
    assert b.msg_index == [0, 1, 1, 2, 2, 3, 3, 4]
    assert b.positions == [-1, 0, 2, 0, 1, 0, 2, 0]
    assert [b.row_in_message(i) for i in range(3)] == [None, 0, 2]
    for i in range(len(b)):
        value = values[b.msg_index[i]]
        assert value is not None
        payload = b.row_payload(i, value)
        if i == 0:
            assert payload == value
        else:
            assert json.loads(payload)["id"] == b.ids[i]
    assert json.loads(b.row_payload(1, values[1] or b"")) == event(id="a0")
    assert [(k, d.reason, d.index) for k, d in dead] == [
        (1, "bad_type", 1),
        (3, "bad_type", 1),
        (4, "missing_field", 1),
    ]


def test_row_payload_of_a_position_that_is_not_there_raises() -> None:
    b = one_row(orjson.dumps([event()]))
    assert json.loads(b.row_payload(0, orjson.dumps([event()]))) == event()
    with pytest.raises(ValueError, match="no event at position"):
        b.row_payload(0, b"{}")


def test_decode_messages_many_messages() -> None:
    values = [orjson.dumps(event(id=str(i), ts=TS + i)) for i in range(2000)]
    values[100] = b"{"
    batches, dead = decode_messages(values, SCHEMAS)
    assert len(batches) == 1 and len(batches[0]) == 1999
    assert batches[0].ts[-1] == TS + 1999 and [k for k, _ in dead] == [100]


def test_decode_messages_of_nothing() -> None:
    assert decode_messages([], SCHEMAS) == ([], [])


# -- schema -------------------------------------------------------------------------
def test_schema_rejects_unknown_kinds_and_is_frozen() -> None:
    with pytest.raises(ConfigError, match="kind 'number'"):
        ModelSchema("m", {"x": "number"})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="prediction kind"):
        ModelSchema("m", {}, prediction="boolean")  # type: ignore[arg-type]
    feats: dict[str, Any] = {"x": "numeric"}
    schema = ModelSchema("m", feats)
    feats["y"] = "numeric"
    assert dict(schema.features) == {"x": "numeric"}
    with pytest.raises(TypeError):
        schema.features["z"] = "numeric"  # type: ignore[index]


def test_schema_without_features_or_with_one_of_each() -> None:
    schemas = {
        "bare": ModelSchema("bare", {}),
        "one": ModelSchema("one", {"n": "numeric", "c": "categorical", "b": "boolean"}),
    }
    msg = [
        {"model": "bare", "id": "1", "ts": TS, "features": {"n": 1}, "prediction": 1},
        {"model": "one", "id": "2", "ts": TS, "features": {"n": 1, "c": 2}, "prediction": "y"},
        {"model": "one", "id": "3", "ts": TS, "features": {}, "prediction": 0},
    ]
    batches, dead = decode_message(orjson.dumps(msg), schemas)
    assert dead == [] and [len(b) for b in batches] == [1, 2]
    assert batches[0].numeric == {} and batches[0].categorical == {}
    assert batches[1].categorical == {"c": ["2", None], "b": [None, None]}


# -- properties ---------------------------------------------------------------------
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELD_VALUES = st.one_of(
    JSON_VALUES,
    st.sampled_from(["churn", "fraud", "2024-06-01T00:00:00Z", "true", "pro", TS, -1.0, 0.5]),
)


@PROPS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(value: bytes) -> None:
    decode(value)  # checks the invariants


EVENT_KEYS = st.sampled_from(
    ["model", "id", "ts", "features", "prediction", "proba", "latency_ms", "segment", "version"]
)


@st.composite
def columnar_like(draw: st.DrawFn) -> dict[str, Any]:
    """Objects whose ``id`` is an array: columnar batches, well formed or not."""
    n = draw(st.integers(0, 3))
    column = st.lists(FIELD_VALUES, min_size=n, max_size=n)
    msg = draw(st.dictionaries(EVENT_KEYS, st.one_of(column, FIELD_VALUES)))
    msg["id"] = draw(column)
    msg.setdefault("model", "churn")
    if draw(st.booleans()):
        msg["features"] = draw(
            st.dictionaries(st.sampled_from(["age", "plan", "vip", "x"]), column, max_size=3)
        )
    for key in ("proba", "segment"):
        if draw(st.booleans()):
            msg[key] = draw(st.one_of(column, st.dictionaries(TEXT, column, max_size=2)))
    return msg


@PROPS
@given(
    st.one_of(
        st.lists(st.dictionaries(EVENT_KEYS, FIELD_VALUES), max_size=6),
        st.dictionaries(EVENT_KEYS, FIELD_VALUES),
        columnar_like(),
    ),
    st.sampled_from(["plain", "non_finite", "surrogates"]),
)
def test_arbitrary_json_never_raises_and_every_event_is_accounted_for(
    msg: dict[str, Any] | list[Any], mangle: str
) -> None:
    value = orjson.dumps(msg)
    if mangle == "non_finite":
        value = value.replace(b"0.5", b"NaN").replace(b"true", b"Infinity")
    elif mangle == "surrogates":
        value = value.replace(b'":', b'\\ud800":', 2).replace(b'",', b'\\udfff",', 2)
    if isinstance(msg, list):
        n = len(msg)
    elif isinstance(msg.get("id"), list):
        n = len(msg["id"])
    else:
        n = 1
    batches, dead = decode(value)
    whole = [d for d in dead if d.index is None]
    if whole:
        assert len(dead) == 1 and not batches
    else:
        assert sum(map(len, batches)) + len(dead) == n
        assert all(d.index is not None and 0 <= d.index < n for d in dead)


def finite(**kw: Any) -> st.SearchStrategy[float]:
    return st.floats(allow_nan=False, allow_infinity=False, **kw)


NUMERIC_VALUES = st.one_of(st.none(), finite(), st.integers(-(2**63), 2**63 - 1))
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
CATEGORY_VALUES = st.one_of(
    st.none(), TEXT, st.integers(-(2**63), 2**63 - 1), st.booleans(), finite()
)
BOOLEAN_VALUES = st.sampled_from([None, True, False, "true", "false"])
ISO_TIMES = st.builds(
    lambda dt, minutes, sep, naive: (
        dt.replace(tzinfo=None).isoformat(sep=sep)
        if naive
        else dt.astimezone(timezone(timedelta(minutes=minutes))).isoformat(sep=sep)
    ),
    st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(-23 * 60, 23 * 60),
    st.sampled_from(["T", " "]),
    st.booleans(),
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    feats: dict[str, Any] = {}
    for name, values in (
        ("age", NUMERIC_VALUES),
        ("income", NUMERIC_VALUES),
        ("plan", CATEGORY_VALUES),
        ("vip", BOOLEAN_VALUES),
        ("unknown", JSON_VALUES),
    ):
        if draw(st.booleans()):
            feats[name] = draw(values)
    ev: dict[str, Any] = {
        "model": "churn",
        "id": draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=128)),
        "ts": draw(st.one_of(finite(min_value=0, max_value=4e9), ISO_TIMES, st.integers(0, 2**32))),
        "features": feats,
        "prediction": draw(st.one_of(finite(), st.integers(-(2**53), 2**53), TEXT)),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "version": TEXT,
        "proba": st.dictionaries(TEXT, finite(min_value=0, max_value=1), max_size=4),
        "latency_ms": st.one_of(finite(min_value=0), st.integers(0, 10**9)),
        "segment": st.dictionaries(TEXT, TEXT, max_size=3),
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            ev[key] = draw(st.one_of(st.none(), values))
    return ev


def expected_row(ev: dict[str, Any]) -> dict[str, Any]:
    def num(v: Any) -> float | None:
        return None if v is None else float(v)

    def cat(v: Any) -> str | None:
        if v is None or isinstance(v, str):
            return v
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if isinstance(v, int) else repr(v)

    ts = ev["ts"]
    if isinstance(ts, str):
        parsed = datetime.fromisoformat(ts)
        ts = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    feats = ev["features"]
    pred = ev["prediction"]
    proba = ev.get("proba")
    return {
        "id": ev["id"],
        "ts": float(ts),
        "prediction": None if isinstance(pred, str) else float(pred),
        "label": pred if isinstance(pred, str) else None,
        "proba_top": max(proba.values()) if proba else None,
        "latency_ms": num(ev.get("latency_ms")),
        "version": ev.get("version"),
        "age": num(feats.get("age")),
        "income": num(feats.get("income")),
        "plan": cat(feats.get("plan")),
        "vip": cat(feats.get("vip")),
    }


@PROPS
@given(st.lists(valid_events(), min_size=1, max_size=8))
def test_valid_events_round_trip_in_every_format(events: list[dict[str, Any]]) -> None:
    expected = [expected_row(e) for e in events]
    values = {
        "single": [orjson.dumps(e) for e in events],
        "array": [orjson.dumps(events)],
        "columnar": [orjson.dumps(columnar(events))],
    }
    for form, msgs in values.items():
        batches, dead = decode_messages(msgs, SCHEMAS)
        assert dead == [], (form, dead)
        assert len(batches) == 1, form
        got = rows_of(batches[0])
        assert [g["ts"] for g in got] == pytest.approx([e["ts"] for e in expected], abs=1e-6)
        assert [{**g, "ts": 0} for g in got] == [{**e, "ts": 0} for e in expected], form
        b = batches[0]
        assert b.msg_index is not None
        for i, ev in enumerate(events):
            payload = b.row_payload(i, msgs[b.msg_index[i]])
            if form == "columnar":
                assert orjson.loads(payload)["id"] == ev["id"]
            else:
                assert orjson.loads(payload) == orjson.loads(orjson.dumps(ev))


BAD_FEATURE_VALUES = st.sampled_from([True, "1.5", [1], {"a": 1}, -1, 2.5, "yes", None])


@PROPS
@given(
    st.lists(
        st.tuples(
            valid_events(),
            st.sampled_from(
                ["age", "plan", "vip", "latency_ms", "id", "ts", "prediction", "proba"]
            ),
            BAD_FEATURE_VALUES,
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_columnar_rows_get_the_same_outcome_as_the_same_events_in_an_array(
    cases: list[tuple[dict[str, Any], str, Any, bool]],
) -> None:
    events = []
    for ev, key, bad, spoil in cases:
        if spoil:
            if key in ("age", "plan", "vip"):
                ev["features"][key] = bad
            elif key == "proba":
                ev["proba"] = {"a": bad}
            else:
                ev[key] = bad
        events.append(ev)
    col_batches, col_dead = decode(orjson.dumps(columnar(events)))
    arr_batches, arr_dead = decode(orjson.dumps(events))
    assert [rows_of(b) for b in col_batches] == [rows_of(b) for b in arr_batches]
    assert [(d.reason, d.detail, d.index) for d in col_dead] == [
        (d.reason, d.detail, d.index) for d in arr_dead
    ]
    assert sum(map(len, col_batches)) + len(col_dead) == len(events)
    for d in col_dead:
        row = orjson.loads(d.payload)
        assert row["id"] == events[d.index or 0].get("id")


def test_schema_registered_under_an_invalid_name_still_gets_bad_value() -> None:
    schemas = {"bad name": ModelSchema("bad name", {"x": "numeric"})}
    value = orjson.dumps(event(model="bad name", features={"x": 1}))
    _, [dl] = decode_message(value, schemas)
    assert dl.reason == "bad_value"


def test_decode_messages_takes_any_iterable() -> None:
    batches, dead = decode_messages((orjson.dumps(event(id=str(i))) for i in range(3)), SCHEMAS)
    assert [b.ids for b in batches] == [["0", "1", "2"]] and dead == []


def test_concat_refuses_nothing_and_mixed_models() -> None:
    a = one_row(orjson.dumps(event()))
    f = one_row(orjson.dumps(event(model="fraud", features={"amount": 1})))
    assert concat([a]) is a
    assert len(concat([a, a])) == 2
    with pytest.raises(ValueError, match="at least one"):
        concat([])
    with pytest.raises(ValueError, match="mixes models"):
        concat([a, f])

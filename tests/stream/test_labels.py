"""Label events: decoding, and the prediction records the join looks them up in."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from stream.event_types import REASONS, ModelSchema
from stream.events import decode_messages
from stream.keys import Keys
from stream.labels import LABEL_REASONS, decode_labels
from stream.prediction_store import SHARDS, PredictionStore, RecordLayout, shard_of


def test_good_labels_in_every_shape() -> None:
    msgs = [
        orjson.dumps({"model": "m", "id": "a", "label": 1, "ts": 10}),
        orjson.dumps(
            [
                {"model": "m", "id": "b", "label": "yes", "ts": "1970-01-01T00:00:20Z"},
                {"model": "n", "id": "c", "label": 2.5, "ts": 30.5},
                {"model": "m", "id": "d", "label": True, "ts": 40},
            ]
        ),
    ]
    batches, dead = decode_labels(msgs, {"m", "n"})
    assert dead == []
    m, n = batches
    assert (m.model, m.ids, m.labels, m.ts.tolist()) == (
        "m",
        ["a", "b", "d"],
        [1, "yes", "true"],
        [10.0, 20.0, 40.0],
    )
    assert (m.msg_index, m.positions) == ([0, 1, 1], [-1, 0, 2])
    assert (n.ids, n.labels) == (["c"], [2.5])
    assert m.payload(0, msgs[0]) == msgs[0]
    sent = {"model": "m", "id": "b", "label": "yes", "ts": "1970-01-01T00:00:20Z"}
    assert orjson.loads(m.payload(1, msgs[1])) == sent


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (b"", "malformed_json", "empty message"),
        (b"{", "malformed_json", ""),
        (b"\xff\xfe", "not_utf8", "invalid UTF-8 at byte 0"),
        (b"[1]", "bad_type", "expected a label object, got 1"),
        (b'{"id": "a", "label": 1, "ts": 1}', "missing_field", "model: missing"),
        (b'{"model": "x", "id": "a", "label": 1, "ts": 1}', "unknown_model", "not configured"),
        (b'{"model": "m y", "id": "a", "label": 1, "ts": 1}', "bad_value", "does not match"),
        (b'{"model": "m", "label": 1, "ts": 1}', "missing_field", "id: missing"),
        (b'{"model": "m", "id": 5, "label": 1, "ts": 1}', "bad_type", "id: expected a string"),
        (b'{"model": "m", "id": "a", "ts": 1}', "missing_field", "label: missing"),
        (b'{"model": "m", "id": "a", "label": [1], "ts": 1}', "bad_type", "label: expected"),
        (b'{"model": "m", "id": "a", "label": "", "ts": 1}', "bad_value", "label: empty string"),
        (b'{"model": "m", "id": "a", "label": 1}', "missing_field", "ts: missing"),
        (b'{"model": "m", "id": "a", "label": 1, "ts": "soon"}', "bad_value", "ts: not an ISO"),
        (b'{"model": "m", "id": "a", "label": 1, "ts": -1}', "bad_value", "ts: -1 is not epoch"),
    ],
)
def test_bad_labels_are_dead_lettered_with_a_reason(value: bytes, reason: str, detail: str) -> None:
    batches, dead = decode_labels([value], {"m"})
    assert batches == [] and len(dead) == 1
    k, dl = dead[0]
    assert (k, dl.reason) == (0, reason) and detail in dl.detail and dl.reason in REASONS


def test_one_bad_label_in_an_array_leaves_the_others() -> None:
    msg = orjson.dumps(
        [{"model": "m", "id": "a", "label": 1, "ts": 1}, {"model": "m", "id": "b", "ts": 2}]
    )
    (b,), [(k, dl)] = decode_labels([msg], {"m"})
    assert b.ids == ["a"] and (k, dl.reason, dl.index) == (0, "missing_field", 1)
    assert orjson.loads(dl.payload) == {"model": "m", "id": "b", "ts": 2}
    big = orjson.dumps([{"model": "m", "id": "a", "label": 1, "ts": 1}] * 100)
    assert decode_labels([big], {"m"}, max_bytes=100)[1][0][1].reason == "too_large"
    assert set(LABEL_REASONS) <= set(REASONS)


def test_records_round_trip_from_decoded_events() -> None:
    schema = ModelSchema("m", {"x": "numeric"}, "categorical")
    base = {"model": "m", "features": {"x": 1}}
    events = [
        {**base, "id": "a", "ts": 5, "prediction": "1", "proba": {"0": 0.25, "1": 0.75}},
        {**base, "id": "b", "ts": 6, "prediction": "7"},
        {**base, "id": "c", "ts": 7, "prediction": "0", "proba": {"0": 0.5}},
    ]
    (batch,), dead = decode_messages([orjson.dumps(events)], {"m": schema})
    assert dead == []
    lay = RecordLayout("classification", ("0", "1"))
    rows = np.arange(3)
    ts, pred, proba = lay.unpack(lay.records(batch, rows))
    assert ts.tolist() == [5.0, 6.0, 7.0] and pred.tolist() == [1.0, -1.0, 0.0]
    assert proba[0].tolist() == [0.25, 0.75] and np.isnan(proba[1]).all()
    assert proba[2][0] == 0.5 and np.isnan(proba[2][1])
    reg = RecordLayout("regression")
    assert reg.width == 16 and reg.unpack(
        reg.pack(np.array([1.0]), np.array([2.5]), np.empty((1, 0)))
    )[1].tolist() == [2.5]


@pytest.mark.integration
def test_prediction_store_finds_records_around_the_label_time(
    redis_client: Any, key_prefix: str
) -> None:
    store = PredictionStore(redis_client, Keys(key_prefix))
    lay = RecordLayout("regression")
    horizon = 100.0
    ids = [f"id{i}" for i in range(300)]
    ts = np.arange(300, dtype=float) * 2.0  # 0 .. 598 s: six buckets of 100 s
    store.put("m", horizon, ids, ts, lay.pack(ts, ts * 10, np.empty((300, 0))))
    label_ts = ts + 99.0  # every label within the horizon, mostly in the next bucket
    found = store.get("m", horizon, [*ids, "nope"], np.append(label_ts, 5.0))
    assert found[-1] is None
    got_ts, got_pred, _ = lay.unpack([r for r in found[:-1] if r is not None])
    assert got_ts.tolist() == ts.tolist() and got_pred.tolist() == (ts * 10).tolist()
    assert {shard_of(i) for i in ids} == set(range(SHARDS))
    # an id logged again later: the newest prediction not after the label wins
    store.put(
        "m",
        horizon,
        ["id0"],
        np.array([150.0]),
        lay.pack(np.array([150.0]), np.array([-1.0]), np.empty((1, 0))),
    )
    (early,) = store.get("m", horizon, ["id0"], np.array([120.0]))
    (late,) = store.get("m", horizon, ["id0"], np.array([160.0]))
    assert lay.unpack([early])[0].tolist() == [0.0] and lay.unpack([late])[0].tolist() == [150.0]
    ttl = redis_client.ttl(Keys(key_prefix).predictions("m", shard_of("id0"), 1))
    assert 3000 < ttl <= 3600  # at least an hour, else 1.05 horizons

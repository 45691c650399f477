"""The producer SDK: batched, non-blocking, nothing lost silently."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from stream.sdk import LabelLogger, PredictionLogger

pytestmark = pytest.mark.integration


def read_all(bootstrap: str, topic: str, expect_events: int, timeout: float = 20.0) -> list[Any]:
    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "sdk-test", "enable.auto.commit": False}
    )
    out: list[Any] = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        events = 0
        while events < expect_events and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            doc = orjson.loads(m.value())
            out.append((m.key(), doc))
            events += len(doc["id"]) if isinstance(doc, dict) else len(doc)
    finally:
        c.close()
    return out


def test_predictions_arrive_as_columnar_batches(kafka_bootstrap: str, unique_topic: Any) -> None:
    topic = unique_topic("sdk")
    with PredictionLogger(kafka_bootstrap, topic, model="churn", batch_size=100) as logger:
        for i in range(250):
            feats = {"age": i, "plan": "a" if i % 2 else None}
            if i == 7:
                feats["extra"] = 1.5
            assert logger.log(feats, i / 250, id=f"p{i}", ts=1000.0 + i, latency_ms=3.0)
        assert logger.log({"age": 1}, "yes", model="other", id="q1", ts=5.0)
    assert logger.stats.sent == 251 and logger.stats.dropped == 0
    msgs = read_all(kafka_bootstrap, topic, 251)
    churn = [d for k, d in msgs if k == b"churn"]
    assert [len(d["id"]) for d in churn] == [100, 100, 50]
    ids = [i for d in churn for i in d["id"]]
    assert ids == [f"p{i}" for i in range(250)]
    ages = [a for d in churn for a in d["features"]["age"]]
    assert ages == list(range(250))
    extra = [x for d in churn for x in d["features"].get("extra", [None] * len(d["id"]))]
    assert extra[7] == 1.5 and extra.count(None) == 249
    other = [d for k, d in msgs if k == b"other"]
    assert other[0]["prediction"] == ["yes"] and other[0]["model"] == "other"


def test_full_queue_drops_and_counts_without_blocking(kafka_bootstrap: str) -> None:
    logger = PredictionLogger(kafka_bootstrap, "sdk.never", model="m", max_queue=10, linger_s=60)
    try:
        t0 = time.perf_counter()
        results = [logger.log({"x": i}, 0.5) for i in range(50)]
        assert time.perf_counter() - t0 < 0.5
        assert results.count(True) == 10 and logger.stats.dropped == 40
    finally:
        logger.close(timeout=5)


def test_bad_input_is_rejected_and_counted_not_raised(
    kafka_bootstrap: str, unique_topic: Any
) -> None:
    topic = unique_topic("sdkbad")
    with PredictionLogger(kafka_bootstrap, topic, batch_size=10) as logger:
        assert not logger.log({"x": 1}, 0.5)  # no model anywhere
        assert not logger.log(None, 0.5, model="m")  # type: ignore[arg-type]
        assert logger.log({"x": object()}, 0.5, model="m")  # queued; fails to serialise
        assert logger.log({"x": 2}, 0.5, model="m")
    assert logger.stats.rejected == 3
    assert logger.stats.sent == 1


def test_labels_are_sent_as_arrays(kafka_bootstrap: str, unique_topic: Any) -> None:
    topic = unique_topic("labels")
    with LabelLogger(kafka_bootstrap, topic, model="churn") as labels:
        for i in range(5):
            labels.log(f"p{i}", i % 2, ts=10.0)
    msgs = read_all(kafka_bootstrap, topic, 5)
    events = [e for _, d in msgs for e in d]
    assert events == [
        {"model": "churn", "id": f"p{i}", "label": i % 2, "ts": 10.0} for i in range(5)
    ]

"""The worker end to end on the real broker and Redis: exact window state, one
summary per closed window, alerts for exactly the drifted features, dead letters."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from scipy import stats

from stream.baseline import BaselineStore, build_baseline
from stream.closer import WindowCloser
from stream.config import Config
from stream.keys import Keys
from stream.redis_client import connect
from stream.sdk import PredictionLogger
from stream.worker import Worker
from tests.stream.data import churn_training, worker_config

pytestmark = pytest.mark.integration

WINDOW = 10
T0 = 1_000_000  # a multiple of WINDOW
N_WINDOWS = 5
PER_WINDOW = 1500
DRIFT_FROM = 3  # windows 3 and 4 have "income" shifted


def make_config(bootstrap: str, redis_url: str, prefix: str, topics: dict[str, str]) -> Config:
    return worker_config(
        bootstrap,
        redis_url,
        prefix,
        topics,
        {
            "churn": {
                "latency_slo_ms": 1000,
                # income's drift value rising over 3 windows (read back from Redis by the closer)
                "alerts": {
                    "trend": [
                        {
                            "metric": "feature_drift",
                            "feature": "income",
                            "windows": 3,
                            "slope": 0.05,
                        }
                    ]
                },
            }
        },
        WINDOW,
        max_message_bytes=200_000,
    )


def read_topic(bootstrap: str, topic: str, until: Callable[[list[Any]], bool]) -> list[Any]:
    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False}
    )
    out: list[Any] = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 30
        while not until(out) and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                out.append(m)
    finally:
        c.close()
    return out


@pytest.fixture
def setup(
    kafka_bootstrap: str, redis_url: str, key_prefix: str, driftline_topics: Any
) -> Iterator[dict[str, Any]]:
    topics = driftline_topics("worker")
    cfg = make_config(kafka_bootstrap, redis_url, key_prefix, topics)
    rng = np.random.default_rng(7)
    train = churn_training(rng)
    client = connect(cfg.redis)
    BaselineStore(client, Keys(key_prefix)).save(
        build_baseline("churn", train, label_column="y", version="v1")
    )
    yield {"cfg": cfg, "topics": topics, "redis": client, "bootstrap": kafka_bootstrap}


def production(rng: np.random.Generator) -> list[dict[str, Any]]:
    events = []
    for w in range(N_WINDOWS):
        income_mu = 10.0 if w < DRIFT_FROM else 10.8
        ts = T0 + w * WINDOW + rng.uniform(0, WINDOW, PER_WINDOW)
        age = rng.normal(40, 10, PER_WINDOW)
        income = rng.lognormal(income_mu, 0.5, PER_WINDOW)
        plan = rng.choice(["basic", "pro", "team"], PER_WINDOW, p=[0.6, 0.3, 0.1])
        for i in range(PER_WINDOW):
            events.append(
                {
                    "ts": float(ts[i]),
                    "features": {
                        "age": float(age[i]) if i % 50 else None,
                        "income": float(income[i]),
                        "plan": str(plan[i]),
                    },
                    "prediction": float(i % 2),
                    "latency_ms": float(rng.gamma(2.0, 5.0)),
                    "proba": {"0": 0.3, "1": 0.7},
                }
            )
    return events


def start_worker(cfg: Config) -> tuple[Worker, threading.Thread]:
    worker = Worker(cfg, closer_factory=lambda w: WindowCloser(w, w.topic_partitions))
    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 120}, daemon=True)
    thread.start()
    return worker, thread


def wait_closed(client: Any, keys: Keys, n: int, timeout: float = 40) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        starts = [int(s) for s in client.zrange(keys.closed_windows("churn"), 0, -1)]
        if len(starts) >= n:
            return starts
        time.sleep(0.2)
    raise AssertionError(f"only {len(starts)} of {n} windows closed in {timeout} s")


def test_events_to_exact_windows_summaries_and_alerts(setup: dict[str, Any]) -> None:
    cfg, topics, client = setup["cfg"], setup["topics"], setup["redis"]
    keys = Keys(cfg.redis.prefix)
    events = production(np.random.default_rng(11))
    with PredictionLogger(setup["bootstrap"], topics["predictions"], model="churn") as logger:
        for i, e in enumerate(events):
            logger.log(
                e["features"],
                e["prediction"],
                id=f"e{i}",
                ts=e["ts"],
                latency_ms=e["latency_ms"],
                proba=e["proba"],
            )
        # one event far ahead pushes the watermark past every window above
        logger.log(
            {"age": 40.0, "income": 2e4, "plan": "basic"}, 1.0, id="tick", ts=T0 + 100 * WINDOW
        )
    worker, thread = start_worker(cfg)
    try:
        starts = wait_closed(client, keys, N_WINDOWS)
        assert starts == [T0 + w * WINDOW for w in range(N_WINDOWS)]
        for w, start in enumerate(starts):
            res = orjson.loads(client.get(keys.result("churn", start)))
            mine = [e for e in events if start <= e["ts"] < start + WINDOW]
            assert res["count"] == len(mine)
            ages = np.array([e["features"]["age"] for e in mine], dtype=float)
            age = res["features"]["age"]
            assert age["missing"] == int(np.isnan(ages).sum())
            assert age["count"] == int((~np.isnan(ages)).sum())
            assert age["mean"] == pytest.approx(np.nanmean(ages), rel=1e-9)
            assert age["min"] == np.nanmin(ages) and age["max"] == np.nanmax(ages)
            plans = [e["features"]["plan"] for e in mine]
            top = dict(map(tuple, res["features"]["plan"]["top"]))
            assert top == {p: plans.count(p) for p in set(plans)}
            assert res["drifted_features"] == (["income"] if w >= DRIFT_FROM else [])
        summaries = read_topic(setup["bootstrap"], topics["windows"], lambda m: len(m) >= 5)
        assert sorted(orjson.loads(m.value())["window"]["start"] for m in summaries) == starts
        alerts = [
            orjson.loads(m.value())
            for m in read_topic(setup["bootstrap"], topics["alerts"], lambda m: len(m) >= 4)
        ]
        drift = [a for a in alerts if a["rule"] == "feature_drift"]
        assert {(a["feature"], a["window"]["start"]) for a in drift} == {
            ("income", starts[w]) for w in range(DRIFT_FROM, N_WINDOWS)
        }
        assert all(a["status"] == "firing" for a in drift)
        values = [
            orjson.loads(client.get(keys.result("churn", s)))["features"]["income"]["drift"][
                "value"
            ]
            for s in starts
        ]
        trend = {a["window"]["start"]: a for a in alerts if a["rule"] == "feature_drift_trend"}
        assert sorted(trend) == starts[DRIFT_FROM:]  # windows 1-3 and 2-4 rise
        for w in range(DRIFT_FROM, N_WINDOWS):
            slope = stats.linregress(range(3), values[w - 2 : w + 1]).slope
            assert trend[starts[w]]["value"] == pytest.approx(slope, rel=1e-9)

        # an event for a closed window is dead-lettered as too_late
        p = Producer({"bootstrap.servers": setup["bootstrap"]})
        late = orjson.dumps(
            {"model": "churn", "id": "late", "ts": T0 + 1, "features": {}, "prediction": 1}
        )
        p.produce(topics["predictions"], key=b"churn", value=late)
        p.flush(10)
        dlq = read_topic(setup["bootstrap"], topics["dlq"], lambda m: len(m) >= 1)
        assert [dict(m.headers())["reason"] for m in dlq] == [b"too_late"]
        assert dlq[0].value() == late
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()


BAD = {
    "malformed_json": b'{"model": "churn", "id": ',
    "not_utf8": b'{"model": "churn", "id": "\xff\xfe"}',
    "non_finite": b'{"model": "churn", "id": "a", "ts": 1000001, "features": {"age": NaN}, '
    b'"prediction": 1}',
    "missing_field": b'{"model": "churn", "ts": 1000001, "features": {}, "prediction": 1}',
    "bad_type": b'{"model": "churn", "id": "a", "ts": 1000001, "features": {"age": "old"}, '
    b'"prediction": 1}',
    "unknown_model": b'{"model": "nope", "id": "a", "ts": 1000001, "features": {}, '
    b'"prediction": 1}',
    "too_large": b'{"model": "churn", "id": "' + b"x" * 300_000 + b'"}',
}


def test_every_bad_input_is_dead_lettered_and_the_worker_keeps_going(
    setup: dict[str, Any],
) -> None:
    cfg, topics = setup["cfg"], setup["topics"]
    p = Producer({"bootstrap.servers": setup["bootstrap"]})
    for value in BAD.values():
        p.produce(topics["predictions"], key=b"churn", value=value)
    good = {"model": "churn", "id": "g", "ts": T0 + 1, "features": {"age": 30}, "prediction": 0}
    p.produce(topics["predictions"], key=b"churn", value=orjson.dumps(good))
    p.flush(10)
    worker, thread = start_worker(cfg)
    try:
        dlq = read_topic(setup["bootstrap"], topics["dlq"], lambda m: len(m) >= len(BAD))
        got = {dict(m.headers())["reason"].decode(): m.value() for m in dlq}
        assert got == BAD
        for m in dlq:
            h = dict(m.headers())
            assert h["source.topic"] == topics["predictions"].encode()
            assert h["detail"]
        deadline = time.monotonic() + 20
        while worker.stats.events < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert worker.stats.events == 1 and thread.is_alive()
        # the dead letters count toward the window's dead-letter rate, and the rule fires
        tick = dict(good, id="tick", ts=T0 + 100 * WINDOW)
        p.produce(topics["predictions"], key=b"churn", value=orjson.dumps(tick))
        p.flush(10)
        client, keys = setup["redis"], Keys(cfg.redis.prefix)
        [start] = wait_closed(client, keys, 1)
        res = orjson.loads(client.get(keys.result("churn", start)))
        assert res["count"] == 1 and res["dead_letters"] == dict.fromkeys(BAD, 1)
        assert res["dead_letter_rate"] == pytest.approx(len(BAD) / (len(BAD) + 1))
        assert ["dead_letter_rate", None] in res["firing"]
    finally:
        worker.stop()
        thread.join(30)


FEATURES = ["f0", "f1", "f2", "f3", "f4", "f5"]
DRIFTED = {"f1": 0.6, "f4": -0.6}  # shift in reference standard deviations, from window 6


def test_k_of_n_drifted_features_alert_and_stationary_windows_do_not(
    setup: dict[str, Any], key_prefix: str, unique_topic: Any
) -> None:
    cfg, client = setup["cfg"], setup["redis"]
    topics = dict(setup["topics"], predictions=unique_topic("pred6", 2))
    cfg = cfg.with_overrides(topics=type(cfg.topics)(**topics))
    keys = Keys(cfg.redis.prefix)
    rng = np.random.default_rng(21)
    train = {f: rng.normal(0, 1, 20_000) for f in FEATURES} | {"y": rng.integers(0, 2, 20_000)}
    BaselineStore(client, keys).save(build_baseline("churn", train, label_column="y", version="v2"))
    n_windows, per_window = 9, 3000
    with PredictionLogger(setup["bootstrap"], topics["predictions"], model="churn") as logger:
        for w in range(n_windows):
            ts = np.sort(T0 + w * WINDOW + rng.uniform(0, WINDOW, per_window))
            cols = {
                f: rng.normal(DRIFTED.get(f, 0.0) if w >= 6 else 0.0, 1.0, per_window)
                for f in FEATURES
            }
            for i in range(per_window):
                feats = {f: float(cols[f][i]) for f in FEATURES}
                logger.log(feats, float(i % 2), id=f"w{w}-{i}", ts=float(ts[i]))
        logger.log(dict.fromkeys(FEATURES, 0.0), 1.0, id="tick", ts=T0 + 100 * WINDOW)
    worker, thread = start_worker(cfg)
    try:
        starts = wait_closed(client, keys, n_windows)
        drifted = {
            s: orjson.loads(client.get(keys.result("churn", s)))["drifted_features"] for s in starts
        }
        assert drifted == {
            T0 + w * WINDOW: (sorted(DRIFTED) if w >= 6 else []) for w in range(n_windows)
        }
        alerts = [
            orjson.loads(m.value())
            for m in read_topic(setup["bootstrap"], topics["alerts"], lambda m: len(m) >= 6)
        ]
        fired = {
            (a["feature"], a["window"]["start"]) for a in alerts if a["rule"] == "feature_drift"
        }
        assert fired == {(f, T0 + w * WINDOW) for f in DRIFTED for w in range(6, n_windows)}
    finally:
        worker.stop()
        thread.join(30)


def test_baseline_re_registered_mid_window_keeps_the_window_on_its_bins(
    setup: dict[str, Any],
) -> None:
    cfg, topics, client = setup["cfg"], setup["topics"], setup["redis"]
    keys = Keys(cfg.redis.prefix)
    rng = np.random.default_rng(31)

    def events(lo: float, hi: float, n: int, tag: str) -> list[dict[str, Any]]:
        ts = np.sort(rng.uniform(lo, hi, n))
        return [
            {
                "model": "churn",
                "id": f"{tag}{i}",
                "ts": float(t),
                "features": {"age": float(rng.normal(40, 10)), "plan": "basic"},
                "prediction": 1.0,
            }
            for i, t in enumerate(ts)
        ]

    p = Producer({"bootstrap.servers": setup["bootstrap"]})

    def send(evs: list[dict[str, Any]]) -> None:
        for e in evs:
            p.produce(topics["predictions"], key=b"churn", value=orjson.dumps(e))
        p.flush(10)

    first, second = events(T0, T0 + 5, 300, "a"), events(T0 + 5, T0 + 10, 200, "b")
    later = events(T0 + 10, T0 + 20, 400, "c")
    worker, thread = start_worker(cfg)
    try:
        send(first)
        deadline = time.monotonic() + 30
        while worker.stats.flushes < 1 or worker.stats.events < 300:
            assert time.monotonic() < deadline, "the first events were not flushed"
            time.sleep(0.1)
        new = {
            "age": rng.normal(70, 3, 5000),
            "income": rng.lognormal(9, 0.3, 5000),
            "plan": ["team"] * 5000,
            "y": rng.integers(0, 2, 5000),
        }
        BaselineStore(client, keys).save(
            build_baseline("churn", new, label_column="y", version="v2")
        )
        time.sleep(10.5)  # workers reload baselines every 10 s
        send(second + later)
        tick = {"model": "churn", "id": "t", "ts": T0 + 100.0, "features": {}, "prediction": 1}
        send([tick])
        starts = wait_closed(client, keys, 2)
        w0 = orjson.loads(client.get(keys.result("churn", starts[0])))
        w1 = orjson.loads(client.get(keys.result("churn", starts[1])))
        assert (w0["baseline"], w0["count"]) == ("v1", 500)  # stayed on the bins it began on
        assert "other_baseline_events" not in w0
        assert (w1["baseline"], w1["count"]) == ("v2", 400)
        assert worker.stats.refused_flushes >= 1  # the store refused mixing the versions
        ages = np.array([e["features"]["age"] for e in first + second])
        assert w0["features"]["age"]["mean"] == pytest.approx(ages.mean(), rel=1e-9)
    finally:
        worker.stop()
        thread.join(30)

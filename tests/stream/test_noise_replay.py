"""Issue 4 through the whole worker, on the real broker and Redis: a stationary
stream replayed at 400, 2,000 and 20,000 events per window raises no drift alert
at default settings, and a 0.5-σ mean shift in one feature is caught at each of
those volumes (the noise-aware thresholds of :mod:`sketches.noise`).

One model per volume, all from the same 20,000-row training table (normal,
lognormal and uniform numeric features, a categorical one, a numeric
prediction), no ``[models.X.drift]`` and no ``[alerts]``: default methods,
default rules. Every one of the 24 windows per model holds fresh draws from the
training distributions (never the training rows); six of them move one numeric
feature's mean by half of its training standard deviation, each shape once up
and once down, so 18 windows per volume are stationary. Run with ``-s`` for the
drift values against the effective thresholds per volume.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from sketches import METHODS
from sketches.noise import NullModel
from stream.baseline import Baseline, BaselineStore, build_baseline
from stream.closer import WindowCloser
from stream.config import Config
from stream.keys import Keys
from stream.reader import StateReader
from stream.redis_client import connect
from stream.worker import Worker
from tests.stream.data import worker_config

pytestmark = pytest.mark.integration

WINDOW = 10
T0 = 3_000_000  # a multiple of WINDOW
VOLUMES = (400, 2000, 20_000)
TRAIN_ROWS = 20_000
SHIFT_SD = 0.5
N_WINDOWS = 24
# window index → (feature, sign): its mean moves by SHIFT_SD of its training σ;
# every other window is stationary (18 per volume)
SHIFTS: dict[int, tuple[str, int]] = {
    4: ("age", 1),
    7: ("income", 1),
    10: ("utilisation", 1),
    13: ("age", -1),
    16: ("income", -1),
    19: ("utilisation", -1),
}
NUMERIC = ("age", "income", "utilisation")
FEATURES = (*NUMERIC, "plan")
PREDICTION = "prediction"  # how the tables below name the prediction
DRIFT_RULES = frozenset({"feature_drift", "prediction_drift", "drift_share"})
PLANS, PLAN_MIX = ["basic", "pro", "team"], [0.6, 0.3, 0.1]
PER_MESSAGE = 1000  # events per columnar message
# one partition per model, so that each partition's event times only grow: a
# worker dead-letters as too_late what lies more than allowed_lateness behind
# its partition's latest event time
PARTITIONS = len(VOLUMES)


def draw(rng: np.random.Generator, n: int) -> dict[str, Any]:
    """``n`` rows from the stationary generating distributions (``score``: the prediction)."""
    return {
        "age": rng.normal(40, 10, n),
        "income": rng.lognormal(10, 0.5, n),
        "utilisation": rng.uniform(0, 1, n),  # bounded
        "plan": rng.choice(PLANS, n, p=PLAN_MIX).tolist(),
        "score": rng.beta(2, 5, n),
    }


def model_name(volume: int) -> str:
    return f"noise{volume}"


def make_config(bootstrap: str, redis_url: str, prefix: str, topics: dict[str, str]) -> Config:
    return worker_config(
        bootstrap, redis_url, prefix, topics, {model_name(v): {} for v in VOLUMES}, WINDOW
    )


def produce(bootstrap: str, topic: str, sigma: dict[str, float], rng: np.random.Generator) -> int:
    """Every window of every model as columnar batches, in time order on the
    model's own partition, then one event far ahead on each partition so that
    the watermark passes them all. Returns the number of messages sent."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": "20", "compression.type": "lz4"}
    )
    sent = 0
    for w in range(N_WINDOWS):
        start = T0 + w * WINDOW
        for part, volume in enumerate(VOLUMES):
            model, cols = model_name(volume), draw(rng, volume)
            if w in SHIFTS:
                feature, sign = SHIFTS[w]
                cols[feature] = cols[feature] + sign * SHIFT_SD * sigma[feature]
            ts = np.sort(np.minimum(start + rng.uniform(0, WINDOW, volume), start + WINDOW - 1e-3))
            for i in range(0, volume, PER_MESSAGE):
                j = min(i + PER_MESSAGE, volume)
                batch = {
                    "model": model,
                    "id": [f"{model}-{w}-{k}" for k in range(i, j)],
                    "ts": ts[i:j],
                    "features": {f: cols[f][i:j] for f in FEATURES},
                    "prediction": cols["score"][i:j],
                }
                value = orjson.dumps(batch, option=orjson.OPT_SERIALIZE_NUMPY)
                producer.produce(topic, value, model.encode(), partition=part)
                producer.poll(0)
                sent += 1
    for p in range(PARTITIONS):
        tick = {
            "model": model_name(VOLUMES[0]),
            "id": f"tick{p}",
            "ts": T0 + 1000.0,
            "features": {"age": 40.0},
            "prediction": 0.3,
        }
        producer.produce(topic, orjson.dumps(tick), b"tick", partition=p)
    assert producer.flush(30) == 0, "predictions not delivered"
    return sent + PARTITIONS


def wait_closed(reader: StateReader, models: list[str], n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(len(reader.windows(m)) < n for m in models):
        if time.monotonic() > deadline:
            got = {m: len(reader.windows(m)) for m in models}
            raise AssertionError(f"windows closed in {timeout} s: {got}, expected {n} each")
        time.sleep(0.2)


def read_alerts(bootstrap: str, topic: str, ids: set[str], timeout: float = 30) -> list[Any]:
    """Alert events from the one-partition alerts topic, until every id in ``ids`` is seen."""
    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "noise-reader", "enable.auto.commit": False}
    )
    out: list[Any] = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        while not ids <= {a["alert_id"] for a in out} and time.monotonic() < deadline:
            m = c.poll(0.2)
            value = None if m is None or m.error() else m.value()
            if value is not None:
                out.append(orjson.loads(value))
    finally:
        c.close()
    return out


def alert_id(entry: Any) -> str:
    """An entry of a result's ``alerts``: the alert's id, or the whole event."""
    return str(entry["alert_id"] if isinstance(entry, dict) else entry)


@dataclass(frozen=True)
class Drift:
    """One subject (a feature or the prediction) of one window's result."""

    volume: int
    window: int
    subject: str
    shifted: bool  # this subject's mean was moved in this window
    method: str
    value: float
    threshold: float


def expected_threshold(baseline: Baseline, subject: str, method: str, n: int) -> float:
    """The default effect plus the baseline's null floor for ``method`` at ``n`` events."""
    fb = baseline.prediction if subject == PREDICTION else baseline.features[subject]
    assert fb is not None and method in fb.null, f"{subject}: no null model for {method}"
    effect = METHODS[method].threshold
    assert effect is not None
    return NullModel.from_dict(fb.null[method]).threshold(effect, n)


def drifts(
    results: dict[tuple[int, int], dict[str, Any]], baselines: dict[str, Baseline]
) -> list[Drift]:
    """Every subject's drift vs baseline, checked to use the default method and
    the noise-aware threshold of its baseline's null model at the window's size."""
    out = []
    for (volume, w), res in results.items():
        subjects = {f: res["features"][f]["drift"] for f in FEATURES}
        subjects[PREDICTION] = res["prediction"]["drift"]
        for subject, d in subjects.items():
            default = "js" if subject == "plan" else "wasserstein_norm"
            where = (volume, w, subject, d)
            assert d["method"] == default and d["value"] is not None, where
            want = expected_threshold(baselines[model_name(volume)], subject, default, volume)
            assert d["threshold"] == pytest.approx(want, rel=1e-9), where
            shifted = w in SHIFTS and SHIFTS[w][0] == subject
            out.append(Drift(volume, w, subject, shifted, default, d["value"], d["threshold"]))
    return out


def print_table(rows: list[Drift]) -> None:
    """Per volume and subject: the effective threshold, the largest value over
    the stationary windows and the smallest over the windows shifting it."""
    print(
        f"\n{'events':>6}  {'subject':<11}  {'method':<16}  {'effect':>6}  {'threshold':>9}  "
        f"{'stationary max':>14}  {'shifted min':>11}"
    )
    for volume in VOLUMES:
        for subject in (*FEATURES, PREDICTION):
            mine = [r for r in rows if (r.volume, r.subject) == (volume, subject)]
            [threshold] = {r.threshold for r in mine}  # one window size, one threshold
            calm = max(r.value for r in mine if not r.shifted)
            hit = [r.value for r in mine if r.shifted]
            print(
                f"{volume:>6}  {subject:<11}  {mine[0].method:<16}  "
                f"{METHODS[mine[0].method].threshold:>6}  {threshold:>9.4f}  {calm:>14.4f}  "
                f"{f'{min(hit):.4f}' if hit else '-':>11}"
            )


def run_worker(cfg: Config, models: list[str]) -> tuple[dict[tuple[int, int], Any], list[Any]]:
    """Run a worker until every model has closed ``N_WINDOWS`` windows; their
    results by ``(volume, window index)`` and every alert event they published."""
    worker = Worker(cfg, closer_factory=lambda w: WindowCloser(w, w.topic_partitions))
    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 120}, daemon=True)
    thread.start()
    try:
        reader = StateReader.from_config(cfg)
        try:
            wait_closed(reader, models, N_WINDOWS)
            results = {
                (v, w): reader.result(model_name(v), start)
                for v in VOLUMES
                for w, start in enumerate(reader.windows(model_name(v)))
            }
        finally:
            reader.client.close()
        ids = {alert_id(a) for r in results.values() if r for a in r["alerts"]}
        alerts = read_alerts(cfg.kafka["bootstrap.servers"], cfg.topics.alerts, ids)
        assert ids <= {a["alert_id"] for a in alerts}, "alerts missing from the topic"
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    return results, alerts


def test_stationary_stream_is_quiet_and_a_half_sigma_shift_is_caught_at_each_volume(
    kafka_bootstrap: str,
    redis_url: str,
    key_prefix: str,
    driftline_topics: Callable[..., dict[str, str]],
) -> None:
    began = time.monotonic()
    topics = driftline_topics("noise", PARTITIONS)
    cfg = make_config(kafka_bootstrap, redis_url, key_prefix, topics)
    models = [model_name(v) for v in VOLUMES]
    train = draw(np.random.default_rng(2024), TRAIN_ROWS)
    sigma = {f: float(np.std(train[f])) for f in NUMERIC}
    baselines = {
        m: build_baseline(m, train, prediction_column="score", version="v1") for m in models
    }
    client = connect(cfg.redis)
    try:
        for b in baselines.values():
            BaselineStore(client, Keys(key_prefix)).save(b)
    finally:
        client.close()
    messages = produce(kafka_bootstrap, topics["predictions"], sigma, np.random.default_rng(4))
    produced = time.monotonic()
    results, alerts = run_worker(cfg, models)

    assert sorted(results) == [(v, w) for v in VOLUMES for w in range(N_WINDOWS)]
    for (volume, w), res in results.items():
        assert res["window"]["start"] == T0 + w * WINDOW
        assert (res["count"], res["dead_letters"]) == (volume, {}), (volume, w, res["count"])
    rows = drifts(results, baselines)
    print_table(rows)
    firing = [a for a in alerts if a["status"] == "firing"]
    print(
        f"{sum(VOLUMES) * N_WINDOWS} events in {messages} messages; windows closed "
        f"{time.monotonic() - produced:.1f} s after producing; {time.monotonic() - began:.1f} s "
        f"in all. Firing alerts: "
        + ", ".join(
            f"{a['model']} w{(a['window']['start'] - T0) // WINDOW} {a['rule']}({a['feature']})"
            for a in firing
        )
    )

    fired: dict[tuple[str, int], set[tuple[str, str | None]]] = {}
    for a in firing:
        fired.setdefault((a["model"], a["window"]["start"]), set()).add((a["rule"], a["feature"]))
    for (volume, w), res in results.items():
        model, start = model_name(volume), T0 + w * WINDOW
        drift_alerts = {(r, f) for r, f in fired.get((model, start), ()) if r in DRIFT_RULES}
        if w in SHIFTS:
            feature = SHIFTS[w][0]
            where = f"{model} window {w} (mean of {feature} shifted)"
            assert res["drifted_features"] == [feature], where
            assert not res["prediction"]["drift"]["drifted"], where
            assert drift_alerts == {("feature_drift", feature)}, where
        else:
            where = f"{model} window {w} (stationary)"
            assert res["drifted_features"] == [], where
            assert res["drift_share"] == 0.0, where
            assert not res["prediction"]["drift"]["drifted"], where
            assert drift_alerts == set(), where
            # nothing else fires on a stationary stream at default settings either
            assert res["firing"] == [] and (model, start) not in fired, where
    # the floor is noise: the threshold shrinks towards the effect as windows grow
    for subject in (*FEATURES, PREDICTION):
        first = {r.volume: r for r in reversed(rows) if r.subject == subject}
        thr = [first[v].threshold for v in VOLUMES]
        effect = METHODS[first[VOLUMES[0]].method].threshold
        assert effect is not None and thr[0] > thr[1] > thr[2] > effect, (subject, thr)

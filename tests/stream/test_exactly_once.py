"""Guarantee 1 on the real broker and Redis: two workers in one group, one of
them killed with SIGKILL and restarted several times mid-stream; every window's
count is exact (no event lost or doubled) and every window closes once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from stream.baseline import BaselineStore, build_baseline
from stream.config import RedisSettings
from stream.keys import Keys
from stream.redis_client import connect
from tests.conftest import KAFKA_TEST_CONF

pytestmark = pytest.mark.integration

WINDOW = 10
T0 = 2_000_000
PARTITIONS = 4
MESSAGES = 400
PER_MESSAGE = 50


def write_config(
    path: Path, bootstrap: str, redis_url: str, prefix: str, topics: dict[str, str]
) -> None:
    kafka = "\n".join(f'"{k}" = "{v}"' for k, v in KAFKA_TEST_CONF.items())
    topic_lines = "\n".join(f'{k} = "{v}"' for k, v in topics.items())
    path.write_text(
        f"""
[kafka]
"bootstrap.servers" = "{bootstrap}"
{kafka}
[redis]
url = "{redis_url}"
prefix = "{prefix}"
[topics]
{topic_lines}
[windows]
size = {WINDOW}
allowed_lateness = 2
idle_timeout = "10m"
retention = "1d"
[worker]
group_id = "g-{prefix}"
flush_interval = "300ms"
poll_timeout = "100ms"
batch_size = 20
[models.churn]
"""
    )


def prepare(
    topics: dict[str, str],
    tmp_path: Path,
    bootstrap: str,
    redis_url: str,
    prefix: str,
    train: dict[str, Any],
) -> tuple[Path, Any, Keys]:
    """Config file, Redis client and keys, and the model's baseline (version v1)."""
    cfg_path = tmp_path / "driftline.toml"
    write_config(cfg_path, bootstrap, redis_url, prefix, topics)
    client = connect(RedisSettings(url=redis_url))
    keys = Keys(prefix)
    label = "y" if "y" in train else None
    BaselineStore(client, keys).save(
        build_baseline("churn", train, label_column=label, version="v1")
    )
    return cfg_path, client, keys


def read_all(bootstrap: str, topic: str, idle_s: float = 3.0) -> list[Any]:
    """Every message of a one-partition topic (until none arrives for ``idle_s``)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "xo-reader"})
    out: list[Any] = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            m = c.poll(0.2)
            if m is not None and not m.error():
                out.append(m)
                last = time.monotonic()
    finally:
        c.close()
    return out


def push_watermark(producer: Producer, topic: str, partitions: int) -> None:
    """One event far ahead on every partition: every window above can close."""
    for p in range(partitions):
        tick = {
            "model": "churn",
            "id": f"tick{p}",
            "ts": T0 + 1000.0,
            "features": {"x": 0.0},
            "prediction": 1,
        }
        producer.produce(topic, orjson.dumps(tick), b"churn", partition=p)
    producer.flush(10)


def closed_starts(client: Any, keys: Keys, n: int, timeout: float = 90) -> list[int]:
    """Starts of the closed windows, once there are ``n`` (or at the timeout)."""
    deadline = time.monotonic() + timeout
    starts: list[int] = []
    while time.monotonic() < deadline and len(starts) < n:
        with contextlib.suppress(redis.RedisError):  # Redis may still be coming back
            starts = [int(s) for s in client.zrange(keys.closed_windows("churn"), 0, -1)]
        time.sleep(0.5)
    return starts


def spawn(config: Path) -> subprocess.Popen[bytes]:
    log = config.parent / f"worker-{time.monotonic_ns()}.log"
    with open(log, "wb") as err:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "stream", "worker", "-v", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process still running, then wait (SIGKILL after 20 s)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_sigkill_and_restart_keep_counts_exact(
    kafka_bootstrap: str, redis_url: str, key_prefix: str, driftline_topics: Any, tmp_path: Path
) -> None:
    topics = driftline_topics("xo", PARTITIONS)
    rng = np.random.default_rng(3)
    train = {"x": rng.normal(size=3000), "y": rng.integers(0, 2, 3000)}
    cfg_path, client, keys = prepare(
        topics, tmp_path, kafka_bootstrap, redis_url, key_prefix, train
    )
    ts = np.sort(T0 + rng.uniform(0, 6 * WINDOW, MESSAGES * PER_MESSAGE))  # time order
    expected = np.bincount(((ts - T0) // WINDOW).astype(int), minlength=6)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})

    def send(lo: int, hi: int) -> None:
        for m in range(lo, hi):
            part = ts[m * PER_MESSAGE : (m + 1) * PER_MESSAGE]
            doc = {
                "model": "churn",
                "id": [f"e{m}-{i}" for i in range(PER_MESSAGE)],
                "ts": part.tolist(),
                # x shifts by one standard deviation from window 3 on: alerts expected there
                "features": {"x": (rng.normal(size=PER_MESSAGE) + (part >= T0 + 30)).tolist()},
                "prediction": [1] * PER_MESSAGE,
            }
            producer.produce(
                topics["predictions"], orjson.dumps(doc), b"churn", partition=m % PARTITIONS
            )
        producer.flush(10)

    workers = [spawn(cfg_path), spawn(cfg_path)]
    try:
        send(0, MESSAGES // 4)
        for round_ in range(3):  # kill -9 the first worker mid-stream, three times
            time.sleep(4)
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(10)
            lo = MESSAGES // 4 + round_ * MESSAGES // 4
            send(lo, min(MESSAGES, lo + MESSAGES // 4))
            workers[0] = spawn(cfg_path)
        push_watermark(producer, topics["predictions"], PARTITIONS)
        starts = closed_starts(client, keys, 6)
        assert starts == [T0 + w * WINDOW for w in range(6)]
        counts = [orjson.loads(client.get(keys.result("churn", s)))["count"] for s in starts]
        assert counts == expected.tolist()
        assert sum(counts) == MESSAGES * PER_MESSAGE
        # every expected alert is on the alerts topic (repeats carry the same id)
        alerts = [orjson.loads(m.value()) for m in read_all(kafka_bootstrap, topics["alerts"])]
        drift = [a for a in alerts if a["rule"] == "feature_drift"]
        assert {(a["feature"], a["window"]["start"]) for a in drift} == {
            ("x", T0 + w * WINDOW) for w in (3, 4, 5)
        }
        assert len({a["alert_id"] for a in drift}) == 3
    finally:
        stop_all(workers)


def test_redis_restart_mid_stream_keeps_counts_exact(
    kafka_bootstrap: str, embedded_redis: Any, driftline_topics: Any, tmp_path: Path
) -> None:
    """Redis killed with SIGKILL and restarted (AOF replayed) while a worker runs."""
    import threading

    from stream.closer import WindowCloser
    from stream.config import load_config
    from stream.worker import Worker

    topics = driftline_topics("rr", 2)
    rng = np.random.default_rng(5)
    train = {"x": rng.normal(size=2000), "y": rng.integers(0, 2, 2000)}
    cfg_path, client, keys = prepare(
        topics, tmp_path, kafka_bootstrap, embedded_redis.url, "rr", train
    )
    cfg = load_config(cfg_path)
    n_msgs = 200
    ts = np.sort(T0 + rng.uniform(0, 4 * WINDOW, n_msgs * PER_MESSAGE))
    expected = np.bincount(((ts - T0) // WINDOW).astype(int), minlength=4)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})

    def send(lo: int, hi: int) -> None:
        for m in range(lo, hi):
            doc = {
                "model": "churn",
                "id": [f"e{m}-{i}" for i in range(PER_MESSAGE)],
                "ts": ts[m * PER_MESSAGE : (m + 1) * PER_MESSAGE].tolist(),
                "features": {"x": [0.5] * PER_MESSAGE},
                "prediction": [1] * PER_MESSAGE,
            }
            producer.produce(topics["predictions"], orjson.dumps(doc), b"churn", partition=m % 2)
        producer.flush(10)

    worker = Worker(cfg, closer_factory=lambda w: WindowCloser(w, w.topic_partitions))
    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 150}, daemon=True)
    thread.start()
    try:
        send(0, n_msgs // 2)
        time.sleep(3)
        embedded_redis.restart()
        send(n_msgs // 2, n_msgs)
        push_watermark(producer, topics["predictions"], 2)
        starts = closed_starts(client, keys, 4)
        assert starts == [T0 + w * WINDOW for w in range(4)]
        counts = [orjson.loads(client.get(keys.result("churn", s)))["count"] for s in starts]
        assert counts == expected.tolist()
    finally:
        worker.stop()
        thread.join(30)


def test_sigterm_flushes_and_exits_cleanly(
    kafka_bootstrap: str, redis_url: str, key_prefix: str, driftline_topics: Any, tmp_path: Path
) -> None:
    topics = driftline_topics("st", 1)
    rng = np.random.default_rng(9)
    cfg_path, client, keys = prepare(
        topics, tmp_path, kafka_bootstrap, redis_url, key_prefix, {"x": rng.normal(size=500)}
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(30):
        event = {
            "model": "churn",
            "id": f"e{i}",
            "ts": T0 + i,
            "features": {"x": 1.0},
            "prediction": 1,
        }
        producer.produce(topics["predictions"], orjson.dumps(event), b"churn")
    producer.flush(10)
    worker = spawn(cfg_path)
    deadline = time.monotonic() + 30
    offset = None
    while time.monotonic() < deadline and offset != b"30":
        offset = client.hget(keys.offsets(topics["predictions"], 0), "off")
        time.sleep(0.2)
    assert offset == b"30"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    log = max(tmp_path.glob("worker-*.log")).read_text()
    assert "worker stopped: 30 messages, 30 events" in log

"""The label join's exactly-once guarantee: two worker processes, one killed with
SIGKILL and restarted three times while labels (and duplicates of them) arrive;
every window's confusion matrix is exactly scikit-learn's afterwards."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer
from sklearn.metrics import confusion_matrix

from stream.prediction_store import shard_of
from tests.stream.test_exactly_once import (
    PER_MESSAGE,
    T0,
    WINDOW,
    closed_starts,
    prepare,
    push_watermark,
    spawn,
    stop_all,
    write_config,
)

pytestmark = pytest.mark.integration

PARTITIONS = 2
N = 6000  # predictions over 4 windows


def test_sigkill_while_labels_arrive_keeps_quality_exact(
    kafka_bootstrap: str, redis_url: str, key_prefix: str, unique_topic: Any, tmp_path: Path
) -> None:
    topics = {
        "predictions": unique_topic("lk.pred", PARTITIONS),
        "labels": unique_topic("lk.labels", PARTITIONS),
        "dlq": unique_topic("lk.dlq"),
        "windows": unique_topic("lk.windows"),
        "alerts": unique_topic("lk.alerts"),
    }
    rng = np.random.default_rng(21)
    train = {"x": rng.normal(size=3000), "y": rng.integers(0, 2, 3000)}
    cfg_path, client, keys = prepare(
        topics, tmp_path, kafka_bootstrap, redis_url, key_prefix, train
    )
    write_config(cfg_path, kafka_bootstrap, redis_url, key_prefix, topics)
    with open(cfg_path, "a") as f:  # join labels, and do not wait long for predictions
        f.write('[models.churn.labels]\nhorizon = "1h"\nclasses = ["0", "1"]\n')
    text = cfg_path.read_text().replace("batch_size = 20", 'batch_size = 20\nlabel_wait = "1s"')
    cfg_path.write_text(text)

    ts = np.sort(T0 + rng.uniform(0, 4 * WINDOW, N))
    p = rng.random(N)
    pred = (p >= 0.5).astype(int)
    truth = (rng.random(N) < p).astype(int)
    ids = [f"e{i}" for i in range(N)]
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
    for m in range(N // PER_MESSAGE):
        sl = slice(m * PER_MESSAGE, (m + 1) * PER_MESSAGE)
        doc = {
            "model": "churn",
            "id": ids[sl],
            "ts": ts[sl].tolist(),
            "features": {"x": rng.normal(size=PER_MESSAGE).tolist()},
            "prediction": pred[sl].tolist(),
            "proba": {"0": (1 - p[sl]).tolist(), "1": p[sl].tolist()},
        }
        producer.produce(topics["predictions"], orjson.dumps(doc), b"churn", partition=m % 2)
    producer.flush(10)
    push_watermark(producer, topics["predictions"], PARTITIONS)

    labelled = np.flatnonzero(rng.random(N) < 0.8)
    rng.shuffle(labelled)
    dups = labelled[:300]  # sent again later, with the other label: must not count

    def send_labels(rows: np.ndarray, flip: bool = False) -> None:
        for chunk in np.array_split(rows, max(1, rows.size // 40)):
            by_part: dict[int, list[dict[str, Any]]] = {}
            for i in chunk.tolist():
                label = int(1 - truth[i]) if flip else int(truth[i])
                event = {"model": "churn", "id": ids[i], "label": label, "ts": float(ts[i]) + 30}
                by_part.setdefault(shard_of(ids[i]) % PARTITIONS, []).append(event)
            for part, events in by_part.items():  # one id: always the same partition
                producer.produce(topics["labels"], orjson.dumps(events), b"churn", partition=part)
        producer.flush(10)

    workers = [spawn(cfg_path), spawn(cfg_path)]
    try:
        assert len(closed_starts(client, keys, 4)) == 4
        chunks = np.array_split(labelled, 4)
        send_labels(chunks[0])
        for round_ in range(3):  # kill -9 the first worker while labels are joined
            time.sleep(3)
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(10)
            send_labels(chunks[round_ + 1])
            if round_ == 1:
                send_labels(dups, flip=True)
            workers[0] = spawn(cfg_path)

        windows = ((ts - T0) // WINDOW).astype(int)

        def labelled_now() -> int:
            total = 0
            for w in range(4):
                raw = client.get(keys.quality("churn", T0 + w * WINDOW))
                total += orjson.loads(raw)["labelled"] if raw else 0
            return total

        deadline = time.monotonic() + 90
        while labelled_now() < labelled.size and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)  # a double count would show up now
        assert labelled_now() == labelled.size
        for w in range(4):
            q = orjson.loads(client.get(keys.quality("churn", T0 + w * WINDOW)))
            rows = labelled[windows[labelled] == w]
            want = confusion_matrix(truth[rows], pred[rows], labels=[0, 1])
            got = np.array(q["metrics"]["confusion_matrix"])[:2, :2]
            assert got.tolist() == want.tolist(), w
            assert q["labelled"] == rows.size
    finally:
        stop_all(workers)

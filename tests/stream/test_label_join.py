"""The label join end to end: labels before and after close, out of order, duplicated,
unknown and expired, on the embedded broker and Redis, checked against scikit-learn."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from sklearn import metrics as skm

from stream.baseline import BaselineStore, build_baseline
from stream.closer import WindowCloser
from stream.keys import Keys
from stream.query_commands import _show_lines
from stream.reader import StateReader
from stream.redis_client import connect
from stream.sdk import LabelLogger, PredictionLogger
from stream.worker import Worker
from tests.stream.data import worker_config
from tests.stream.test_exactly_once import read_all

pytestmark = pytest.mark.integration

WINDOW = 60
T0 = 1_700_000_040  # a window start
N_WINDOWS = 4
PER_WINDOW = 400
HORIZON = 3600
BROKEN = 2


@pytest.fixture
def setup(
    kafka_bootstrap: str, redis_url: str, key_prefix: str, driftline_topics: Any
) -> Iterator[dict[str, Any]]:
    topics = driftline_topics("labels")
    model = {"labels": {"horizon": f"{HORIZON}s", "classes": ["0", "1"]}}
    cfg = worker_config(
        kafka_bootstrap, redis_url, key_prefix, topics, {"churn": model}, WINDOW, label_wait="2s"
    )
    rng = np.random.default_rng(3)
    x = rng.normal(size=5000)
    p = 1 / (1 + np.exp(-2 * x))
    y = (rng.random(5000) < p).astype(int)
    client = connect(cfg.redis)
    columns = {"x": x, "y": y, "p": p}
    BaselineStore(client, Keys(key_prefix)).save(
        build_baseline("churn", columns, label_column="y", proba_column="p", version="v1")
    )
    trained = skm.accuracy_score(y, (p >= 0.5).astype(int))
    yield {
        "cfg": cfg,
        "topics": topics,
        "redis": client,
        "bootstrap": kafka_bootstrap,
        "trained": trained,
    }


def predictions(rng: np.random.Generator) -> list[dict[str, Any]]:
    out = []
    for w in range(N_WINDOWS):
        x = rng.normal(size=PER_WINDOW)
        p = 1 / (1 + np.exp(-2 * x))
        ts = T0 + w * WINDOW + np.sort(rng.uniform(0, WINDOW, PER_WINDOW))
        for i in range(PER_WINDOW):
            out.append(
                {
                    "id": f"p{w}-{i}",
                    "ts": float(ts[i]),
                    "x": float(x[i]),
                    "proba": float(p[i]),
                    # window 2: a broken model, half its classes wrong: accuracy drops
                    "pred": int(p[i] >= 0.5) ^ int(w == BROKEN and i % 2 == 0),
                    "truth": int(rng.random() < p[i]),
                }
            )
    return out


def read_dlq(bootstrap: str, topic: str, n: int, timeout: float = 20.0) -> list[Any]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "dlq", "enable.auto.commit": False})
    out: list[Any] = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                out.append(m)
    finally:
        c.close()
    return out


def wait_for(check: Any, timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"not reached in {timeout} s")


def test_labels_mature_windows_exactly_once(setup: dict[str, Any]) -> None:
    cfg, topics, client = setup["cfg"], setup["topics"], setup["redis"]
    keys = Keys(cfg.redis.prefix)
    rng = np.random.default_rng(11)
    preds = predictions(rng)
    with PredictionLogger(setup["bootstrap"], topics["predictions"], model="churn") as log:
        for e in preds:
            log.log(
                {"x": e["x"]},
                e["pred"],
                id=e["id"],
                ts=e["ts"],
                proba={"0": 1 - e["proba"], "1": e["proba"]},
            )
        log.log({"x": 0.0}, 0, id="tick", ts=T0 + 10 * WINDOW)  # closes every window above
    # labels: for a random 70 % of the predictions, in shuffled order, 5-300 s after them
    labelled = [e for e in preds if rng.random() < 0.7]
    order = rng.permutation(len(labelled))
    bad = [
        ("nope-1", 1, T0 + 100.0),  # never predicted: unknown_id
        ("p0-1", 1, preds[1]["ts"] + HORIZON + 60),  # after the horizon: expired
    ]
    worker = Worker(cfg, closer_factory=lambda w: WindowCloser(w, w.topic_partitions))
    import threading

    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 150}, daemon=True)
    thread.start()
    try:
        with LabelLogger(setup["bootstrap"], topics["labels"], model="churn") as lab:
            half = len(order) // 2
            for j in order[:half]:  # some before the windows close
                e = labelled[j]
                lab.log(e["id"], e["truth"], ts=e["ts"] + float(rng.uniform(5, 300)))
            for ident, label, ts in bad:
                lab.log(ident, label, ts=ts)
        wait_for(lambda: client.zcard(keys.closed_windows("churn")) >= N_WINDOWS)
        with LabelLogger(setup["bootstrap"], topics["labels"], model="churn") as lab:
            for j in order[half:]:  # the rest after: the windows mature
                e = labelled[j]
                lab.log(e["id"], e["truth"], ts=e["ts"] + float(rng.uniform(5, 300)))
            for j in order[:25]:  # duplicates of labels already counted
                e = labelled[j]
                lab.log(e["id"], 1 - e["truth"], ts=e["ts"] + 400.0)

        def matured() -> bool:
            total = 0
            for w in range(N_WINDOWS):
                raw = client.get(keys.quality("churn", T0 + w * WINDOW))
                total += orjson.loads(raw)["labelled"] if raw else 0
            return total == len(labelled)

        wait_for(matured, 60)
        dead = read_dlq(setup["bootstrap"], topics["dlq"], 27)
        time.sleep(1.0)  # anything more would be a double count
        reasons: dict[str, int] = {}
        for m in dead:
            r = dict(m.headers())["reason"].decode()
            reasons[r] = reasons.get(r, 0) + 1
        assert reasons == {"unknown_id": 1, "expired": 1, "duplicate_label": 25}
        # and counted with the label partitions' offsets, exactly
        assert StateReader.from_config(cfg).dead_letters() == reasons
        for w in range(N_WINDOWS):
            start = T0 + w * WINDOW
            q = orjson.loads(client.get(keys.quality("churn", start)))
            mine = [e for e in labelled if start <= e["ts"] < start + WINDOW]
            y = [e["truth"] for e in mine]
            yhat = [e["pred"] for e in mine]
            score = np.array([e["proba"] for e in mine])
            m = q["metrics"]
            assert q["labelled"] == len(mine) and q["predictions"] == PER_WINDOW
            assert q["coverage"] == pytest.approx(len(mine) / PER_WINDOW)
            assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, yhat), abs=1e-12)
            assert m["confusion_matrix"][0][:2] == skm.confusion_matrix(y, yhat)[0].tolist()
            assert m["log_loss"] == pytest.approx(
                skm.log_loss(y, np.c_[1 - score, score]), rel=1e-5
            )  # probabilities travel as float32
            assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score), abs=0.005)
            assert 5 <= q["delay_s"]["p50"] <= 300
            # estimated at close from the probabilities alone, then compared
            res = orjson.loads(client.get(keys.result("churn", start)))
            est = res["quality"]["estimated"]
            assert est["n"] == PER_WINDOW and q["estimated"] == est
            assert res["quality"]["baseline"]["accuracy"] == pytest.approx(setup["trained"])
            gaps = q["gaps"]
            assert gaps["accuracy"]["realised"] == m["accuracy"]
            if w != BROKEN:  # the estimate assumes the model decides by its own probabilities
                assert all(abs(g["z"]) < 4 for g in gaps.values() if g["z"] is not None), gaps
            # read back: the result carries the quality as it is now
            read = StateReader.from_config(cfg).result("churn", start)
            assert read is not None and read["quality"]["realised"] == q
            shown = "\n".join(_show_lines(read))
            assert f"quality      {len(mine)} labels ({100 * len(mine) / PER_WINDOW:.1f} %" in shown
            assert "estimated    accuracy" in shown and "baseline     accuracy" in shown
        # the broken window's accuracy fell 5 points or more below the baseline's
        alerts = [
            orjson.loads(m.value()) for m in read_all(setup["bootstrap"], topics["alerts"], 2.0)
        ]
        quality = [a for a in alerts if a["rule"] == "quality_accuracy"]
        fired = [a for a in quality if a["status"] == "firing"]
        # a repeat (the window re-evaluated as more labels came) carries the same id
        assert len({a["alert_id"] for a in fired}) == 1, quality
        assert fired[0]["severity"] == "critical"
        broken = orjson.loads(client.get(keys.quality("churn", T0 + BROKEN * WINDOW)))
        assert broken["metrics"]["accuracy"] <= setup["trained"] - 0.05
        assert fired[0]["window"]["start"] >= T0 + BROKEN * WINDOW
        assert len({a["alert_id"] for a in quality if a["status"] == "resolved"}) <= 1
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert worker.labels is not None and worker.labels.stats.joined == len(labelled)


def test_waiting_label_messages_wait_together(setup: dict[str, Any]) -> None:
    """Labels newer than every stored prediction wait ``label_wait`` (2 s here)
    once, all messages at the same time, then are joined with what is stored."""
    import threading

    cfg, topics, client = setup["cfg"], setup["topics"], setup["redis"]
    keys = Keys(cfg.redis.prefix)
    worker = Worker(cfg)
    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 60}, daemon=True)
    thread.start()
    try:
        with PredictionLogger(setup["bootstrap"], topics["predictions"], model="churn") as log:
            for i in range(600):
                log.log({"x": 0.1}, 1, id=f"q{i}", ts=T0 + i * 0.05, proba={"0": 0.2, "1": 0.8})
        wait_for(lambda: client.hlen(keys.predictions("churn", 0, T0 // HORIZON)) > 0)
        time.sleep(1.0)  # every prediction record is stored
        with LabelLogger(setup["bootstrap"], topics["labels"], model="churn") as lab:
            for k in range(6):  # six messages, each newer than every prediction
                for i in range(k * 100, (k + 1) * 100):
                    lab.log(f"q{i}", 1, ts=T0 + 3000.0)
                lab.flush()
        began = time.monotonic()
        wait_for(lambda: worker.labels is not None and worker.labels.stats.joined == 600, 30)
        took = time.monotonic() - began
        assert took < 6.0, f"joined after {took:.1f} s: the messages waited one after another"
    finally:
        worker.stop()
        thread.join(30)

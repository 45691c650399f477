"""The query side on the real broker and Redis: StateReader and the status, show
and alerts tail commands agree with what was folded, flushed and closed.

State is written as a worker writes it, without consuming: events are folded
(:class:`~stream.fold.WindowFold`), flushed with their offsets per partition
(:meth:`~stream.store.StateStore.flush`), and four of six windows are closed by
a :class:`~stream.closer.WindowCloser` on a worker that is built but not run
(it stores results and history and publishes summaries and alerts).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from stream.baseline import BaselineStore, build_baseline
from stream.cli import main
from stream.closer import WindowCloser
from stream.config import Config, load_config
from stream.embedded import create_topics
from stream.event_types import ModelBatch
from stream.fold import WindowFold
from stream.keys import Keys
from stream.reader import StateReader
from stream.redis_client import connect
from stream.store import StateStore, WindowWrite
from stream.worker import Worker
from tests.conftest import KAFKA_TEST_CONF
from tests.stream.data import churn_training

pytestmark = pytest.mark.integration

WINDOW, T0, PER_WINDOW = 10, 2_000_000, 400
N_CLOSED, N_OPEN = 4, 2  # windows 0-3 closed, 4-5 open
DRIFTED = 3  # "income" shifted in window 3
DEAD = {0: {"dlq:malformed_json": 2}, 1: {"dlq:malformed_json": 1, "dlq:bad_type": 4}}
STARTS = [T0 + w * WINDOW for w in range(N_CLOSED + N_OPEN)]


def write_config(path: Path, bootstrap: str, redis_url: str, prefix: str) -> Path:
    topics = {t: f"{t}.{prefix}" for t in ("predictions", "labels", "dlq", "windows", "alerts")}
    kafka = {"bootstrap.servers": bootstrap, **KAFKA_TEST_CONF}
    lines = ["[kafka]", *(f'"{k}" = "{v}"' for k, v in kafka.items())]
    lines += ["[redis]", f'url = "{redis_url}"', f'prefix = "{prefix}"', "[topics]"]
    lines += [f'{k} = "{v}"' for k, v in topics.items()]
    lines += ["[windows]", "size = 10", "allowed_lateness = 2", 'idle_timeout = "3s"']
    lines += ['retention = "1d"', "[worker]", f'group_id = "g-{prefix}"', "[models.churn]"]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_events(rng: np.random.Generator) -> list[dict[str, Any]]:
    """Per window: the columns of its events (row i goes to partition i % 2)."""
    out = []
    for w, start in enumerate(STARTS):
        age = rng.normal(40, 10, PER_WINDOW)
        age[::25] = np.nan
        mu = 10.8 if w == DRIFTED else 10.0
        out.append(
            {
                "start": start,
                "ts": start + rng.uniform(0, WINDOW, PER_WINDOW),
                "age": age,
                "income": rng.lognormal(mu, 0.5, PER_WINDOW),
                "plan": rng.choice(
                    ["basic", "pro", "team"], PER_WINDOW, p=[0.6, 0.3, 0.1]
                ).tolist(),
                "prediction": (np.arange(PER_WINDOW) % 2).astype(float),
                "latency_ms": rng.gamma(2.0, 5.0, PER_WINDOW),
            }
        )
    return out


def batch(ev: dict[str, Any], rows: np.ndarray) -> ModelBatch:
    n = rows.size
    return ModelBatch(
        model="churn",
        ts=ev["ts"][rows],
        ids=[f"{ev['start']}-{i}" for i in rows.tolist()],
        numeric={"age": ev["age"][rows], "income": ev["income"][rows]},
        categorical={"plan": [ev["plan"][i] for i in rows.tolist()]},
        prediction=ev["prediction"][rows],
        prediction_label=[None] * n,
        proba_top=np.full(n, 0.7),
        latency_ms=ev["latency_ms"][rows],
        versions=[None] * n,
    )


@pytest.fixture(scope="module")
def state(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    prefix = f"r{uuid.uuid4().hex[:8]}"
    path = write_config(
        tmp_path_factory.mktemp("reader") / "c.toml", kafka_bootstrap, redis_url, prefix
    )
    cfg: Config = load_config(path)
    create_topics(kafka_bootstrap, {cfg.topics.predictions: 2, cfg.topics.alerts: 1})
    create_topics(kafka_bootstrap, {cfg.topics.windows: 1})
    rng = np.random.default_rng(5)
    train = churn_training(rng)
    client = connect(cfg.redis)
    keys = Keys(prefix)
    base = build_baseline("churn", train, label_column="y", version="v1")
    BaselineStore(client, keys).save(base)
    events = make_events(rng)
    store, topic, now = StateStore(client, keys), cfg.topics.predictions, time.time()
    marks = {}
    for p in (0, 1):
        writes = []
        for ev in events:
            fold = WindowFold(base)
            fold.add(batch(ev, np.arange(p, PER_WINDOW, 2)), slice(None))
            writes.append(WindowWrite("churn", ev["start"], ev["start"] + WINDOW, fold.ops()))
        marks[p] = max(float(ev["ts"][p::2].max()) for ev in events)
        store.claim(topic, p, "test")
        offset = 100 + p
        assert store.flush(topic, p, "test", None, offset, writes, marks[p], now, DEAD[p]).ok
    worker = Worker(cfg, clock=lambda: now)
    closer = WindowCloser(worker, lambda: [0, 1])
    for start in STARTS[:N_CLOSED]:
        assert closer.close("churn", start, start + WINDOW, [0, 1])
    worker.producer.flush(10)
    yield {"cfg": cfg, "path": str(path), "events": events, "now": now, "marks": marks}
    client.close()


def closed_result(reader: StateReader, start: int) -> dict[str, Any]:
    res = reader.result("churn", start)
    assert res is not None, f"window {start} has no result"
    return res


@pytest.fixture
def reader(state: dict[str, Any]) -> StateReader:
    return StateReader.from_config(state["cfg"], clock=lambda: state["now"])


def test_closed_windows_results_and_history(state: dict[str, Any], reader: StateReader) -> None:
    closed = STARTS[:N_CLOSED]
    assert reader.models() == ["churn"]
    base = reader.baseline("churn")
    assert base is not None and base["version"] == "v1" and base["rows"] == 5000
    assert base["features"] == {"age": "numeric", "income": "numeric", "plan": "categorical"}
    assert reader.windows("churn") == closed
    assert reader.windows("churn", since=closed[1]) == closed[1:]
    assert reader.windows("churn", limit=2) == closed[-2:]
    assert reader.windows("churn", since=closed[0], limit=1) == closed[-1:]
    results = [closed_result(reader, s) for s in closed]
    assert reader.latest("churn") == results[-1]
    for w, (res, ev) in enumerate(zip(results, state["events"], strict=False)):
        assert res["window"] == {"start": ev["start"], "end": ev["start"] + WINDOW}
        assert res["count"] == PER_WINDOW
        assert res["features"]["age"]["missing"] == int(np.isnan(ev["age"]).sum())
        assert res["features"]["age"]["mean"] == pytest.approx(np.nanmean(ev["age"]), rel=1e-9)
        assert ("income" in res["drifted_features"]) == (w == DRIFTED)
    assert reader.result("churn", STARTS[-1]) is None  # still open
    for feature, metric in [("age", "count"), ("age", "mean"), ("income", "std")]:
        want = [(s, r["features"][feature][metric]) for s, r in zip(closed, results, strict=True)]
        assert reader.history("churn", feature, metric) == want
    drift = reader.history("churn", "income", "drift")
    assert drift == [
        (s, r["features"]["income"]["drift"]["value"]) for s, r in zip(closed, results, strict=True)
    ]
    assert reader.history("churn", "@volume", "count") == [(s, PER_WINDOW) for s in closed]


def test_live_windows_are_the_folded_open_ones(state: dict[str, Any], reader: StateReader) -> None:
    live = reader.live("churn")
    assert [(w["start"], w["end"]) for w in live] == [(s, s + WINDOW) for s in STARTS[N_CLOSED:]]
    for w, ev in zip(live, state["events"][N_CLOSED:], strict=True):
        assert w["partial"] is True and w["count"] == PER_WINDOW
        age = w["features"]["age"]
        assert age["count"] == int((~np.isnan(ev["age"])).sum())
        assert age["mean"] == pytest.approx(np.nanmean(ev["age"]), rel=1e-9)
        top = dict(map(tuple, w["features"]["plan"]["top"]))
        assert top == {p: ev["plan"].count(p) for p in set(ev["plan"])}
        assert w["latency_ms"]["p50"] == pytest.approx(np.median(ev["latency_ms"]), rel=0.02)
        assert w["features"]["income"]["drift"]["method"]
    assert set(reader.open_windows()) == {("churn", s) for s in STARTS[N_CLOSED:]}


def test_partitions_watermark_and_unknown_names(state: dict[str, Any], reader: StateReader) -> None:
    assert reader.partition_ids() == [0, 1]
    parts = reader.partitions()
    assert [(p["partition"], p["offset"]) for p in parts] == [(0, 100), (1, 101)]
    assert [p["dead_letters"] for p in parts] == [
        {"malformed_json": 2},
        {"bad_type": 4, "malformed_json": 1},
    ]
    assert all(p["closed_upto"] == {"churn": STARTS[N_CLOSED]} for p in parts)
    assert reader.dead_letters() == {"bad_type": 4, "malformed_json": 3}
    assert reader.watermark() == pytest.approx(min(state["marks"].values()) - 2)
    for name in ("nope", "a|b:{x}"):
        assert reader.baseline(name) is None and reader.windows(name) == []
        assert reader.result(name, STARTS[0]) is None and reader.latest(name) is None
        assert reader.live(name) == [] and reader.history(name, "age", "count") == []
    assert reader.history("churn", "nope", "mean") == []
    assert reader.history("churn", "age", "nope") == []
    other = StateReader(reader.client, Keys("nothing-here"))
    assert other.models() == [] and other.partitions() == [] and other.watermark() is None


def test_status_command(state: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "-c", state["path"]]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    row = next(line for line in lines if line.startswith("churn ") and "v1" in line)
    assert f" {STARTS[N_CLOSED - 1]} " in row and "income" in row
    assert "feature_drift(income)" in row
    for s in STARTS[N_CLOSED:]:
        assert any(f" {s} " in line and line.endswith(f" {PER_WINDOW}") for line in lines)
    assert any(line.startswith("0 ") and " 100 " in line for line in lines)
    assert "dead letters: bad_type 4, malformed_json 3" in lines
    assert main(["status", "-c", state["path"], "--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    (model,) = data["models"]
    assert model["last_window"]["start"] == STARTS[N_CLOSED - 1]
    assert [w["count"] for w in model["open_windows"]] == [PER_WINDOW] * N_OPEN
    assert data["dead_letters"] == {"bad_type": 4, "malformed_json": 3}


def test_show_command(state: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    path, last = state["path"], STARTS[N_CLOSED - 1]
    assert main(["show", "-c", path, "--model", "churn"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"[{last}, {last + WINDOW})" in lines[0] and "closed" in lines[0]
    assert lines[2].split()[:3] == ["FEATURE", "KIND", "COUNT"]
    income = next(line for line in lines if line.startswith("income "))
    assert "numeric" in income and "YES" in income
    plan = next(line for line in lines if line.startswith("plan "))
    assert "categorical" in plan and "basic" in plan and plan.endswith(" no")
    assert any(line.startswith("(prediction)") for line in lines)
    assert any(line.startswith("alerts") and "feature_drift(income)" in line for line in lines)
    assert main(["show", "-c", path, "--model", "churn", "--json"]) == 0
    reader = StateReader.from_config(state["cfg"])
    assert orjson.loads(capsys.readouterr().out) == reader.result("churn", last)
    assert main(["show", "-c", path, "--model", "churn", "--window", str(STARTS[0])]) == 0
    assert f"[{STARTS[0]}, " in capsys.readouterr().out
    assert main(["show", "-c", path, "--model", "churn", "--window", "live"]) == 0
    out = capsys.readouterr().out
    assert out.count("LIVE") == N_OPEN and f"events       {PER_WINDOW}" in out
    assert main(["show", "-c", path, "--model", "churn", "--window", "live", "--json"]) == 0
    assert [w["start"] for w in orjson.loads(capsys.readouterr().out)] == STARTS[N_CLOSED:]
    assert main(["show", "-c", path, "--model", "nope"]) == 1
    assert "no closed window" in capsys.readouterr().err
    assert main(["show", "-c", path, "--model", "churn", "--window", "5"]) == 1


def test_alerts_tail(state: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    reader = StateReader.from_config(state["cfg"])
    published = [
        a["alert_id"] for s in STARTS[:N_CLOSED] for a in closed_result(reader, s)["alerts"]
    ]
    assert published
    argv = ["alerts", "tail", "-c", state["path"], "--timeout", "20"]
    assert main([*argv, "--from-beginning", "--max", str(len(published))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(published)
    assert all("churn" in line and ("firing" in line or "resolved" in line) for line in lines)
    assert any("feature_drift" in line and "income" in line for line in lines)
    assert main([*argv, "--from-beginning", "--max", "1", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["alert_id"] in published
    quick = ["alerts", "tail", "-c", state["path"], "--timeout", "1.5"]
    assert main([*quick, "--from-beginning", "--model", "other"]) == 0
    assert main(quick) == 0  # from the end: nothing new
    assert capsys.readouterr().out == ""


def test_alerts_tail_from_the_end_prints_new_alerts(
    state: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from confluent_kafka import Producer

    from alerting.events import AlertEvent, Window, alert_id

    event = AlertEvent(
        alert_id=alert_id("churn", "volume", None, 1),
        model="churn",
        version=None,
        window=Window(1, 11),
        rule="volume",
        metric="volume",
        feature=None,
        value=0.2,
        threshold=0.5,
        severity="medium",
        status="firing",
        baseline="v1",
        message="churn: volume low",
        emitted_at=time.time(),
    )
    argv = ["alerts", "tail", "-c", state["path"], "--max", "1", "--timeout", "20"]
    tail = threading.Thread(target=main, args=(argv,))
    tail.start()
    producer = Producer({"bootstrap.servers": state["cfg"].kafka["bootstrap.servers"]})
    deadline = time.monotonic() + 25
    while tail.is_alive() and time.monotonic() < deadline:
        time.sleep(1)  # until the tail has found the end of the topic and prints one
        producer.produce(state["cfg"].topics.alerts, key=b"churn", value=event.to_json())
        producer.flush(10)
    tail.join(5)
    assert not tail.is_alive()
    (line,) = capsys.readouterr().out.splitlines()
    assert "medium    firing    churn  volume  -  0.2/0.5  churn: volume low" in line


def test_redis_down_is_one_error_message(
    state: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = Path(state["path"]).read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(state["cfg"].redis.url, "redis://127.0.0.1:1/0"))
    assert main(["status", "-c", str(bad)]) == 2
    assert "driftline status: error: cannot read Redis" in capsys.readouterr().err

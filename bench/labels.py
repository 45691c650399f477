"""Cost of the label join: worker throughput with and without it, labels joined per
second, and Redis memory per prediction record and per labelled window.

Run from the repository root::

    .venv/bin/python bench/labels.py            # full run: 3 repeats, about 2 minutes
    .venv/bin/python bench/labels.py --repeat 5
    .venv/bin/python bench/labels.py --quick    # small sizes: a smoke run (< 60 s)

Servers, pinning, fresh key prefixes and topics, and the timing of a worker run
are those of ``bench/throughput.py`` (whose helpers this script imports): the
worker runs in this process on one CPU, the embedded broker and Redis on the
others; ``$KAFKA_BOOTSTRAP`` and ``$REDIS_URL`` are used when set.

The model is a **binary classifier**: the 20 numeric and 2 categorical features
of ``bench/throughput.py``, a prediction ``0``/``1`` (``p >= 0.5``), the class
probabilities ``{"0": 1 - p, "1": p}`` of every event (the SDK's form: a list of
objects) and ``latency_ms``; ids of 12 characters. Its baseline is built with
``label_column``, ``prediction_column`` and ``proba_column``, so it has a
calibrator. The events go to a one-partition topic as columnar batches of 500
(the SDK's default), keyed by model.

1. **Events/s through one worker**, the model configured **without** a labels
   table and **with** ``[models.churn.labels]`` (``horizon = "7d"``, ``classes =
   ["0", "1"]``, ``positive_class = "1"``): the same topic, the two runs
   alternating within each repeat, each a fresh worker (own consumer group and
   key prefix) with ``batch_size`` 20 messages (10,000 events per poll), timed as
   in ``bench/throughput.py`` (from the first ``consume()`` that returns messages
   to the end of the final ``flush_all``, the closer included). With the table
   the worker also builds a record per prediction (``Worker._remember``), writes
   them before each state flush (``PredictionStore.put``), folds a score
   histogram per window, polls the (empty) labels topic once per poll, and the
   closer estimates the window quality from the score histogram. The worker's
   time is split by wrapping those calls (and the consumer, ``_decode``,
   ``flush_all`` and ``close_due``, as ``bench/throughput.py`` does). Info: the
   longest Redis command of each run, from ``SLOWLOG`` (read only; commands
   under ``slowlog-log-slower-than``, 10 ms by default, are not logged).
2. **Labels joined per second** by one worker. Labels for a share of the
   predictions (0/1 drawn from ``p``, so the model is calibrated) are produced in
   arrays of 500 keyed by model (as ``LabelLogger`` sends them), in label-time
   order; a label's ``ts`` lies between its prediction's and the last
   prediction's, so no label waits for its prediction to be stored. After the
   "with labels" run of section 1 has stored every prediction record, a fresh
   worker on the same key prefix (the predictions topic's stored offset is its
   end, so it folds no predictions; its own label consumer group) consumes the
   labels topic. **Timing** starts when the label consumer's first ``consume()``
   returns messages and ends once every label is joined and the final
   ``flush_all`` (label state, then the quality of the touched windows
   recomputed and stored) has returned. ``batch_size`` is 20 messages (10,000
   labels per label poll) and ``poll_timeout`` 10 ms: the predictions consumer is
   idle, and with the default 500 ms every poll would wait that long before the
   labels are polled (a worker with prediction traffic does not wait). The
   **raw baseline** (same process, alternating): ``Consumer.consume`` (same batch
   size and timeout) + ``orjson.loads`` of every label message — no validation,
   lookup, folding or Redis. The worker's time is split as in section 1 (the idle
   predictions consumer, the label consumer, the join with its record lookup and
   duplicate check, the label state flush, the quality refresh); info: the
   longest Redis command (``SLOWLOG``) and the ids written by the largest label
   flush. The worker's capacity when every prediction gets its label is
   derived: ``1 / (1 / events/s with labels + 1 / labels/s)``.
3. **Redis memory** (``MEMORY USAGE key SAMPLES 0``): the prediction record
   hashes over the number of records (the run's 16 shard hashes); the same for
   records with 36-character UUID ids, written with ``PredictionStore.put``
   (info); per labelled window, the window's label delta hash (one label
   partition) and its quality JSON; per joined label, the ids kept for the
   duplicate check; and what the label path adds to a closed window (result JSON
   and merged sketches, with minus without labels; info).

Prints one markdown table (median, min … max over the repeats), then the targets
with PASS/FAIL; the exit status is 0 either way.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

if __name__ == "__main__":
    from bench.report import one_blas_thread

    one_blas_thread()  # before numpy is imported

import argparse  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, cast  # noqa: E402

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import redis  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition  # noqa: E402

from bench.report import Report, Stat, TimedParts  # noqa: E402
from bench.throughput import (  # noqa: E402
    CATEGORICAL,
    MODEL,
    NUMERIC,
    ROWS_PER_MESSAGE,
    SPAN_S,
    T0,
    Columns,
    Servers,
    WorkerRun,
    _Probe,
    clean_up,
    fresh_prefix,
    fresh_topics,
    make_columns,
    make_config,
    memory,
    pin_worker_core,
    produce_all,
    servers,
    training,
)
from stream.baseline import Baseline, BaselineStore, build_baseline  # noqa: E402
from stream.closer import WindowCloser  # noqa: E402
from stream.embedded import create_topics  # noqa: E402
from stream.keys import Keys  # noqa: E402
from stream.prediction_store import SHARDS, PredictionStore, RecordLayout  # noqa: E402
from stream.redis_client import connect  # noqa: E402
from stream.worker import Worker  # noqa: E402

HORIZON = "7d"
HORIZON_S = 7 * 86400.0
CLASSES = ["0", "1"]
LABELS_TABLE = {"labels": {"horizon": HORIZON, "classes": CLASSES, "positive_class": "1"}}
BATCH_MESSAGES = 10_000 // ROWS_PER_MESSAGE  # 20 messages: 10,000 events (or labels) per poll
LABEL_POLL = {"poll_timeout": 0.01}  # the label phase: the predictions consumer is idle
UUID_RECORDS = 100_000


class SlowLog:
    """The longest command Redis' SLOWLOG logged during a ``with`` block (read only:
    the log is neither reset nor reconfigured). ``ms`` is 0 when none was logged
    (none took ``slowlog-log-slower-than``, 10 ms by default), NaN when the server
    refuses SLOWLOG."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ms = math.nan
        self.command = ""
        self._last: int | None = None  # the newest entry's id before the block

    def _entries(self, n: int) -> list[dict[str, Any]] | None:
        client = redis.Redis.from_url(self.url)
        try:
            return list(client.slowlog_get(n))
        except redis.RedisError:
            return None
        finally:
            client.close()

    def __enter__(self) -> SlowLog:
        entries = self._entries(1)
        if entries is not None:
            self._last = int(entries[0]["id"]) if entries else -1
        return self

    def __exit__(self, *exc: object) -> None:
        entries = self._entries(128) if self._last is not None else None
        if entries is None:
            return
        new = [e for e in entries if int(e["id"]) > (self._last or -1)]
        self.ms = max((int(e["duration"]) / 1e3 for e in new), default=0.0)
        if new:
            cmd = max(new, key=lambda e: int(e["duration"]))["command"]
            text = cmd.decode("utf-8", "replace") if isinstance(cmd, bytes) else str(cmd)
            self.command = text.split(" ", 1)[0].upper()


@dataclass(frozen=True)
class Sizes:
    """How much work each section does."""

    events: int  # predictions on the topic (500 per message)
    labels: int  # labels for a random subset of them (500 per message)


FULL = Sizes(1_000_000, 400_000)
QUICK = Sizes(100_000, 50_000)


# -- data ----------------------------------------------------------------------------------
def ident(i: int) -> str:
    """The id of prediction ``i`` (12 characters)."""
    return f"r{i:011d}"


def classifier_messages(cols: Columns) -> Iterator[bytes]:
    """The events as columnar batches of a binary classifier: ``cols.prediction`` is
    the probability of class ``1``; the prediction is ``p >= 0.5``."""
    n, r = len(cols), ROWS_PER_MESSAGE
    for lo in range(0, n, r):
        hi = min(n, lo + r)
        p1 = cols.prediction[lo:hi]
        feats: dict[str, list[Any]] = {k: v[lo:hi] for k, v in cols.numeric.items()}
        feats.update({k: v[lo:hi] for k, v in cols.categorical.items()})
        yield orjson.dumps(
            {
                "model": MODEL,
                "id": [ident(i) for i in range(lo, hi)],
                "ts": cols.ts[lo:hi],
                "features": feats,
                "prediction": [int(p >= 0.5) for p in p1],
                "proba": [{"0": round(1.0 - p, 6), "1": p} for p in p1],
                "latency_ms": cols.latency_ms[lo:hi],
            }
        )


def label_messages(cols: Columns, n: int, rng: np.random.Generator) -> Iterator[bytes]:
    """Labels for ``n`` random predictions, in arrays of 500 in label-time order; each
    label drawn from the prediction's probability, its time between the prediction's
    and the last prediction's."""
    rows = rng.choice(len(cols), n, replace=False)
    ts = np.asarray(cols.ts)[rows]
    p1 = np.asarray(cols.prediction)[rows]
    label_ts = np.round(ts + rng.random(n) * (cols.ts[-1] - ts), 3)
    truth = (rng.random(n) < p1).astype(np.int64)
    order = np.argsort(label_ts, kind="stable")
    events = [
        {
            "model": MODEL,
            "id": ident(int(rows[k])),
            "label": int(truth[k]),
            "ts": float(label_ts[k]),
        }
        for k in order.tolist()
    ]
    for lo in range(0, n, ROWS_PER_MESSAGE):
        yield orjson.dumps(events[lo : lo + ROWS_PER_MESSAGE])


def classifier_baseline(rng: np.random.Generator) -> Baseline:
    """A calibrated binary classifier's baseline: features, label, prediction, proba."""
    cols = training(rng, NUMERIC, True)
    p = np.round(rng.random(len(cols["prediction"])), 6)
    cols["proba"] = p
    cols["prediction"] = (p >= 0.5).astype(np.int64)
    cols["label"] = (rng.random(p.size) < p).astype(np.int64)
    base = build_baseline(
        MODEL,
        cols,
        label_column="label",
        prediction_column="prediction",
        proba_column="proba",
        version="bench",
    )
    if "calibrator" not in base.meta:
        raise RuntimeError("the classifier's baseline has no calibrator")
    return base


# -- 1. worker throughput, with and without labels --------------------------------------------
_PARTS = ("kafka", "decode", "flush", "close", "labels")  # outside the fold
_SUBPARTS = ("remember", "records")  # inside the fold and the flush


def run_predictions(
    srv: Servers,
    topics: dict[str, str],
    baseline: Baseline,
    events: int,
    labels: bool,
    prefix: str,
    timeout: float = 240.0,
) -> tuple[WorkerRun, SlowLog]:
    """A fresh worker over every event of the topic, timed as in ``bench/throughput.py``;
    also the longest Redis command meanwhile."""
    table = LABELS_TABLE if labels else None
    cfg = make_config(srv, prefix, topics, MODEL, BATCH_MESSAGES, table=table)
    client = connect(cfg.redis)
    BaselineStore(client, Keys(prefix)).save(baseline)
    client.close()
    worker = Worker(cfg, closer_factory=lambda w: WindowCloser(w, w.topic_partitions))
    probe = _Probe(worker, events, None)
    for part in ("labels", *_SUBPARTS):
        probe.split[part] = 0.0
    worker._remember = probe._timed(worker._remember, "remember")  # type: ignore[method-assign]
    worker.predictions.put = probe._timed(worker.predictions.put, "records")  # type: ignore[method-assign]
    if worker.labels is not None:
        worker.labels.poll_once = probe._timed(worker.labels.poll_once, "labels")  # type: ignore[method-assign]
    gc.collect()
    try:
        with SlowLog(srv.redis_url) as slow:
            stats = worker.run(max_seconds=timeout)
    finally:
        worker.redis.close()
    if probe.t_first is None or probe.t_end is None:
        raise RuntimeError(
            f"worker run incomplete after {timeout:g} s: {stats.events} of {events} events"
        )
    seconds = probe.t_end - probe.t_first
    run = WorkerRun(
        events / seconds,
        seconds,
        dict(probe.split),
        stats.events,
        sum(stats.dead_letters.values()),
        stats.windows_closed,
    )
    return run, slow


def shares(runs: Sequence[WorkerRun], part: str) -> Stat:
    """Per run, the share of the time in ``part`` (``fold``: what the parts leave)."""
    out = []
    for r in runs:
        value = r.split[part] if part != "fold" else r.seconds - sum(r.split[p] for p in _PARTS)
        out.append(100.0 * value / r.seconds)
    return Stat(out)


# -- 2. label join ---------------------------------------------------------------------------
class _Timed:
    """Forwards to a consumer; times ``consume`` and notes the first messages."""

    def __init__(self, inner: Any, probe: _LabelProbe, part: str, first: bool) -> None:
        self._inner = inner
        self._probe = probe
        self._part = part
        self._first = first

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        """``Consumer.consume``, timed once the labels have started to arrive."""
        t = time.perf_counter()
        msgs: list[Any] = self._inner.consume(num_messages, timeout)
        now = time.perf_counter()
        if self._probe.t_first is None:
            if msgs and self._first:
                self._probe.t_first = now
        elif self._probe.t_end is None:
            self._probe.split[self._part] += now - t
        return msgs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


_LABEL_PARTS = {  # outside the join: what the rest of the loop is
    "idle": "the idle predictions consumer's consume()",
    "consume": "label consume()",
    "join": "decode and join (LabelJoiner._fold_partition)",
    "flush": "label state flush (LabelJoiner._flush_partition)",
    "refresh": "window quality recomputed (QualityUpdater.refresh)",
}
_JOIN_PARTS = {  # inside the join
    "lookup": "prediction record lookup (PredictionStore.get)",
    "dedupe": "duplicate check (LabelJoiner._not_seen)",
}


class _LabelProbe(TimedParts):
    """Times a worker's label join (see section 2) and stops it when all is flushed."""

    def __init__(self, worker: Worker, labels: int) -> None:
        assert worker.labels is not None
        super().__init__([*_LABEL_PARTS, *_JOIN_PARTS])
        self.worker = worker
        self.joiner = worker.labels
        self.labels = labels
        self._poll = worker.poll_once
        self._flush = worker.flush_all
        j = self.joiner
        worker.poll_once = self._poll_once  # type: ignore[method-assign]
        j._fold_partition = self._timed(j._fold_partition, "join")  # type: ignore[method-assign]
        self.largest_flush = 0  # ids written by the largest label flush
        flush = self._timed(j._flush_partition, "flush")

        def flush_partition(p: int, final: bool = False) -> Any:
            st = j.parts.get(p)
            if st is not None:
                ids = sum(map(len, st.fold.seen.values()))
                self.largest_flush = max(self.largest_flush, ids)
            return flush(p, final)

        j._flush_partition = flush_partition  # type: ignore[method-assign]
        j.updater.refresh = self._timed(j.updater.refresh, "refresh")  # type: ignore[method-assign]
        j.predictions.get = self._timed(j.predictions.get, "lookup")  # type: ignore[method-assign]
        j._not_seen = self._timed(j._not_seen, "dedupe")  # type: ignore[method-assign]

    def done(self) -> bool:
        s = self.joiner.stats
        return s.joined + sum(s.dead_letters.values()) >= self.labels

    def _poll_once(self) -> None:
        w, j = self.worker, self.joiner
        if w.consumer is not None and not isinstance(w.consumer, _Timed):
            w.consumer = _Timed(w.consumer, self, "idle", False)  # type: ignore[assignment]
        if j.consumer is not None and not isinstance(j.consumer, _Timed):
            j.consumer = _Timed(j.consumer, self, "consume", True)  # type: ignore[assignment]
        self._poll()
        if self.t_first is not None and self.t_end is None and self.done():
            self._flush()
            self.t_end = time.perf_counter()
            w.stop()


@dataclass(frozen=True)
class JoinRun:
    """What one timed label join measured."""

    rate: float  # labels per second
    seconds: float
    split: dict[str, float]
    joined: int
    dead_letters: dict[str, int]
    deferred: int
    flushes: int
    largest_flush: int  # ids written by the largest label flush
    slowest_ms: float  # the longest Redis command meanwhile (SLOWLOG)
    slowest: str  # its name


def run_join(
    srv: Servers, topics: dict[str, str], labels: int, prefix: str, timeout: float = 240.0
) -> JoinRun:
    """A fresh worker on ``prefix`` (whose records are stored) over every label."""
    group = f"bench-{prefix}-join-{uuid.uuid4().hex[:6]}"
    cfg = make_config(
        srv,
        prefix,
        topics,
        MODEL,
        BATCH_MESSAGES,
        table=LABELS_TABLE,
        worker={**LABEL_POLL, "group_id": group},
    )
    worker = Worker(cfg, closer_factory=lambda w: WindowCloser(w, w.topic_partitions))
    probe = _LabelProbe(worker, labels)
    gc.collect()
    try:
        with SlowLog(srv.redis_url) as slow:
            worker.run(max_seconds=timeout)
    finally:
        worker.redis.close()
    s = probe.joiner.stats
    if probe.t_first is None or probe.t_end is None:
        raise RuntimeError(f"label join incomplete after {timeout:g} s: {s.joined} of {labels}")
    seconds = probe.t_end - probe.t_first
    return JoinRun(
        labels / seconds,
        seconds,
        dict(probe.split),
        s.joined,
        dict(s.dead_letters),
        s.deferred,
        s.flushes,
        probe.largest_flush,
        slow.ms,
        slow.command,
    )


def run_raw_labels(srv: Servers, topic: str, labels: int, timeout: float = 240.0) -> float:
    """The raw baseline: consume + ``orjson.loads`` of every label message; labels/s."""
    cfg = make_config(srv, "raw", {"labels": topic}, MODEL, BATCH_MESSAGES, worker=LABEL_POLL)
    consumer = Consumer(cfg.consumer_conf(**{"group.id": f"raw-{uuid.uuid4().hex[:8]}"}))
    batch, wait = cfg.worker.batch_size, cfg.worker.poll_timeout_s
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        gc.collect()
        got = 0
        t_first: float | None = None
        deadline = time.monotonic() + timeout
        loads = orjson.loads
        while got < labels:
            if time.monotonic() > deadline:
                raise RuntimeError(f"raw loop: {got} of {labels} labels after {timeout:g} s")
            msgs = consumer.consume(batch, wait)
            if msgs and t_first is None:
                t_first = time.perf_counter()
            for m in msgs:
                got += len(loads(m.value() or b"[]"))
        assert t_first is not None
        return labels / (time.perf_counter() - t_first)
    finally:
        consumer.close()


# -- 3. Redis memory -------------------------------------------------------------------------
@dataclass
class Memory:
    """Bytes measured after each repeat."""

    record: list[float] = field(default_factory=list)  # per prediction record
    window_delta: list[float] = field(default_factory=list)  # per labelled window
    window_quality: list[float] = field(default_factory=list)
    seen: list[float] = field(default_factory=list)  # per joined label
    closed_extra: list[float] = field(default_factory=list)  # per closed window
    uuid_record: float = math.nan
    records_found: int = 0
    windows: int = 0


def keys_like(client: Any, pattern: str) -> list[str]:
    """Every key matching ``pattern`` (decoded)."""
    return sorted(k.decode() for k in client.scan_iter(match=pattern, count=1000))


def measure_memory(
    srv: Servers,
    mem: Memory,
    with_prefix: str,
    without_prefix: str,
    label_topic: str,
    joined: int,
) -> None:
    """Section 3 on the keys of one repeat (records, label state, closed windows)."""
    client = redis.Redis.from_url(srv.redis_url)
    try:
        wk, ok = Keys(with_prefix), Keys(without_prefix)
        records = keys_like(client, f"{with_prefix}:{{pr:{MODEL}:*}}:*")
        mem.records_found = sum(int(client.hlen(k)) for k in records)
        mem.record.append(memory(client, records) / max(1, mem.records_found))
        deltas = keys_like(client, f"{with_prefix}:{{p:{label_topic}:*}}:w:{MODEL}:*")
        starts = sorted({int(k.rsplit(":", 1)[1]) for k in deltas})
        mem.windows = len(starts)
        mem.window_delta.append(memory(client, deltas) / len(starts))
        quality = [wk.quality(MODEL, s) for s in starts]
        mem.window_quality.append(memory(client, quality) / len(starts))
        seen = keys_like(client, f"{with_prefix}:{{p:{label_topic}:*}}:seen:{MODEL}:*")
        mem.seen.append(memory(client, seen) / joined)
        closed = [
            int(s) for s in cast("list[bytes]", client.zrange(wk.closed_windows(MODEL), 0, -1))
        ]
        if closed:
            extra = [
                memory(client, [wk.result(MODEL, s), wk.window_sketches(MODEL, s)])
                - memory(client, [ok.result(MODEL, s), ok.window_sketches(MODEL, s)])
                for s in closed
            ]
            mem.closed_extra.append(statistics.median(extra))
    finally:
        client.close()


def uuid_record_bytes(srv: Servers, prefixes: list[str], rng: np.random.Generator) -> float:
    """Bytes per record for 36-character UUID ids, written with ``PredictionStore.put``."""
    prefix = fresh_prefix(prefixes)
    client = redis.Redis.from_url(srv.redis_url)
    try:
        n = UUID_RECORDS
        ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]
        ts = T0 + np.arange(n, dtype=np.float64) * (SPAN_S / n)
        p1 = rng.random(n)
        layout = RecordLayout("classification", tuple(CLASSES))
        records = layout.pack(ts, (p1 >= 0.5).astype(np.float64), np.c_[1.0 - p1, p1])
        store = PredictionStore(client, Keys(prefix))
        for lo in range(0, n, 10_000):
            store.put(
                MODEL,
                HORIZON_S,
                ids[lo : lo + 10_000],
                ts[lo : lo + 10_000],
                records[lo : lo + 10_000],
            )
        keys = keys_like(client, f"{prefix}:{{pr:{MODEL}:*}}:*")
        return memory(client, keys) / n
    finally:
        client.close()


def drop_prefix(srv: Servers, prefix: str) -> None:
    """Delete a repeat's keys now (its records take memory), not at the end of the run."""
    clean_up(srv, [prefix], [])


# -- the run -----------------------------------------------------------------------------------
@dataclass
class Results:
    """Everything measured, over the repeats."""

    without: list[WorkerRun] = field(default_factory=list)
    with_labels: list[WorkerRun] = field(default_factory=list)
    slow: dict[bool, list[SlowLog]] = field(default_factory=lambda: {False: [], True: []})
    join: list[JoinRun] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    mem: Memory = field(default_factory=Memory)
    notes: list[str] = field(default_factory=list)


def run_all(
    srv: Servers,
    sz: Sizes,
    repeat: int,
    rng: np.random.Generator,
    created: list[str],
    prefixes: list[str],
) -> Results:
    """Produce the topics, then run the repeats (sections 1 and 2, memory after each)."""
    res = Results()
    baseline = classifier_baseline(rng)
    cols = make_columns(sz.events, rng, T0, SPAN_S)
    tag = uuid.uuid4().hex[:8]
    pred_topic, label_topic = f"bench.pred.cls.{tag}", f"bench.labels.cls.{tag}"
    create_topics(srv.bootstrap, {pred_topic: 1, label_topic: 1})
    created += [pred_topic, label_topic]
    produce_all(srv.bootstrap, pred_topic, classifier_messages(cols), MODEL.encode())
    produce_all(srv.bootstrap, label_topic, label_messages(cols, sz.labels, rng), MODEL.encode())
    del cols
    outputs = fresh_topics(srv, created)  # its labels topic stays empty in section 1
    pred_topics = {**outputs, "predictions": pred_topic}
    join_topics = {**pred_topics, "labels": label_topic}
    for k in range(repeat):
        plain, labelled = fresh_prefix(prefixes), fresh_prefix(prefixes)
        order = (False, True) if k % 2 == 0 else (True, False)  # alternate which goes first
        for labels in order:
            run, slow = run_predictions(
                srv, pred_topics, baseline, sz.events, labels, labelled if labels else plain
            )
            res.slow[labels].append(slow)
            if run.events != sz.events or run.dead_letters:
                res.notes.append(
                    f"WARNING: {'with' if labels else 'without'} labels: the worker folded "
                    f"{run.events} of {sz.events} events, {run.dead_letters} dead letters"
                )
            (res.with_labels if labels else res.without).append(run)
        res.raw.append(run_raw_labels(srv, label_topic, sz.labels))
        join = run_join(srv, join_topics, sz.labels, labelled)
        if join.joined != sz.labels or join.dead_letters or join.deferred:
            res.notes.append(
                f"WARNING: label join: {join.joined} of {sz.labels} joined, dead letters "
                f"{join.dead_letters}, {join.deferred} deferrals"
            )
        res.join.append(join)
        measure_memory(srv, res.mem, labelled, plain, label_topic, join.joined)
        if res.mem.records_found != sz.events:
            res.notes.append(
                f"WARNING: {res.mem.records_found} prediction records stored, expected {sz.events}"
            )
        drop_prefix(srv, plain)
        drop_prefix(srv, labelled)
    res.mem.uuid_record = uuid_record_bytes(srv, prefixes, rng)
    return res


# -- the report ----------------------------------------------------------------------------------
_PRED_PARTS = (
    ("kafka", "Kafka consume()"),
    ("decode", "decode (Worker._decode)"),
    ("fold", "fold and the rest of the poll"),
    ("remember", "    of which building the records (Worker._remember)"),
    ("flush", "flush to Redis (flush_all)"),
    ("records", "    of which writing the records (PredictionStore.put)"),
    ("close", "window closer (close_due)"),
    ("labels", "label poll (LabelJoiner.poll_once, empty topic)"),
)


def _slowest(slow: Sequence[SlowLog]) -> tuple[Stat, str]:
    names = sorted({x.command for x in slow if x.command})
    return Stat([x.ms for x in slow]), ", ".join(names) or "none logged"


def report_predictions(rep: Report, sz: Sizes, res: Results) -> tuple[float, float]:
    """Section 1; returns the rates without and with labels (events/s)."""
    s = "1"
    poll = f"batch_size {BATCH_MESSAGES} messages; {sz.events:,} events"
    closed = statistics.median(r.windows_closed for r in res.without + res.with_labels)
    what = f"columnar, {ROWS_PER_MESSAGE} events per message, binary classifier with proba"
    without = rep.stat(
        s,
        f"worker, {what}, no labels table",
        Stat([r.rate / 1e3 for r in res.without]),
        "k events/s",
        f"{poll}; {closed:g} windows closed per run",
    )
    labelled = rep.stat(
        s,
        f"worker, {what}, labels table (horizon {HORIZON})",
        Stat([r.rate / 1e3 for r in res.with_labels]),
        "k events/s",
        f"{poll}; records stored, score histograms folded",
    )
    rep.figure(s, "with labels / without", labelled / without, "×")
    rep.figure(s, "extra worker time per event with labels", 1e3 / labelled - 1e3 / without, "µs")
    for mode, runs in (("no labels", res.without), ("labels", res.with_labels)):
        for part, name in _PRED_PARTS:
            if mode == "no labels" and part in ("remember", "records", "labels"):
                continue
            name = name if name.startswith("  ") else f"  worker time in {name}"
            rep.stat(s, f"{name}, {mode}", shares(runs, part), "%", "info")
    for labels, mode in ((False, "no labels"), (True, "labels")):
        st, names = _slowest(res.slow[labels])
        rep.stat(s, f"longest Redis command in a run, {mode}", st, "ms", f"SLOWLOG: {names}; info")
    return without * 1e3, labelled * 1e3


def report_join(rep: Report, sz: Sizes, res: Results) -> float:
    """Section 2; returns the label join's rate (labels/s)."""
    s = "2"
    raw = rep.stat(
        s,
        f"raw loop, label arrays of {ROWS_PER_MESSAGE}: consume + orjson.loads",
        Stat([r / 1e3 for r in res.raw]),
        "k labels/s",
        f"batch_size {BATCH_MESSAGES} messages; {sz.labels:,} labels",
    )
    flushes = statistics.median(j.flushes for j in res.join)
    join = rep.stat(
        s,
        "label join, one worker: decode, look up, deduplicate, fold, flush, quality",
        Stat([j.rate / 1e3 for j in res.join]),
        "k labels/s",
        f"{sz.labels:,} labels for {sz.events:,} stored predictions, {res.mem.windows} windows; "
        f"batch_size {BATCH_MESSAGES} messages, poll_timeout 10 ms; "
        f"label flushes per run: {flushes:g}",
    )
    rep.figure(s, "label join / raw loop", join / raw, "×")
    rep.figure(s, "worker time per label joined", 1e3 / join, "µs")
    for part, what in [*_LABEL_PARTS.items(), *_JOIN_PARTS.items()]:
        name = f"    of which {what}" if part in _JOIN_PARTS else f"  worker time in {what}"
        st = Stat([100.0 * j.split[part] / j.seconds for j in res.join])
        rep.stat(s, name, st, "%", "info")
    rest = [
        100.0 * (j.seconds - sum(j.split[p] for p in _LABEL_PARTS)) / j.seconds for j in res.join
    ]
    rep.stat(s, "  worker time in the rest of the loop", Stat(rest), "%", "info")
    largest = statistics.median(j.largest_flush for j in res.join)
    names = ", ".join(sorted({j.slowest for j in res.join if j.slowest})) or "none logged"
    rep.stat(
        s,
        "longest Redis command during the label join",
        Stat([j.slowest_ms for j in res.join]),
        "ms",
        f"SLOWLOG: {names}; largest label flush {largest:,.0f} ids; info",
    )
    return join * 1e3


def report_memory(rep: Report, sz: Sizes, m: Memory) -> float:
    """Section 3; returns the bytes per prediction record."""
    s = "3"
    rec = rep.stat(
        s,
        "Redis per prediction record (binary classifier, 12-character ids)",
        Stat(m.record),
        "B",
        f"{sz.events:,} records in {SHARDS} shard hashes (one horizon bucket)",
    )
    rep.figure(
        s,
        "Redis per prediction record, 36-character UUID ids",
        m.uuid_record,
        "B",
        f"{UUID_RECORDS:,} records written by PredictionStore.put; info",
    )
    rep.stat(
        s,
        "Redis per labelled window: label deltas + quality JSON",
        Stat([a + b for a, b in zip(m.window_delta, m.window_quality, strict=True)]),
        "B",
        f"one label partition; {m.windows} windows",
    )
    rep.stat(s, "  label delta hash (quality sketch, count, delays)", Stat(m.window_delta), "B")
    rep.stat(s, "  quality JSON", Stat(m.window_quality), "B")
    rep.stat(
        s,
        "Redis per joined label: its id kept for the duplicate check",
        Stat(m.seen),
        "B",
        "kept for horizon + retention",
    )
    if m.closed_extra:
        rep.stat(
            s,
            "Redis per closed window, with labels − without (score histogram, quality)",
            Stat(m.closed_extra),
            "B",
            "result JSON + merged sketches; info",
        )
    return rec


def report(rep: Report, sz: Sizes, res: Results) -> None:
    """Rows and targets of the three sections."""
    without, labelled = report_predictions(rep, sz, res)
    join = report_join(rep, sz, res)
    both = 1.0 / (1.0 / labelled + 1.0 / join)
    rep.figure(
        "2",
        "worker capacity when every prediction gets its label",
        both / 1e3,
        "k events/s",
        "1 / (1 / events/s with labels + 1 / labels/s)",
    )
    rec = report_memory(rep, sz, res.mem)
    rep.notes += res.notes
    ratio = labelled / without
    rep.target(
        "worker with a labels table ≥ 50% of the worker without",
        f"{ratio:.0%} ({labelled:,.0f} vs {without:,.0f} events/s)",
        "≥ 50%",
        ratio >= 0.5,
    )
    rep.target(
        "label join, one worker",
        f"{join:,.0f} labels/s",
        "≥ 30,000 labels/s",
        join >= 30_000,
    )
    doc = 75  # label_config: "about 75 bytes for a binary classifier with short ids"
    rep.target(
        "Redis per prediction record as label_config documents (75 B, binary, short ids)",
        f"{rec:.1f} B (12-character ids)",
        f"≤ {doc} B + 10%",
        rec <= 1.1 * doc,
    )


# -- main -------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=None, help="repeats (default 3)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a fast smoke run")
    args = parser.parse_args(argv)
    sz = QUICK if args.quick else FULL
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeat < 1:
        parser.error("--repeat must be at least 1")

    cpu, server_cpus = pin_worker_core()
    rng = np.random.default_rng(20240611)
    rep = Report()
    created: list[str] = []
    prefixes: list[str] = []
    t0 = time.perf_counter()
    with servers(server_cpus) as srv:
        try:
            res = run_all(srv, sz, repeat, rng, created, prefixes)
        finally:
            clean_up(srv, prefixes, created)
    report(rep, sz, res)
    elapsed = time.perf_counter() - t0

    import confluent_kafka

    mode = "quick (small sizes: figures are indicative only)" if args.quick else "full"
    pinned = f"worker pinned to CPU {cpu}" if cpu is not None else "worker not pinned"
    print("# driftline label join benchmark\n")
    print(
        f"mode {mode}; median of {repeat} repeats; {pinned}; {srv.pinning}; "
        f"features: {len(NUMERIC)} numeric + {len(CATEGORICAL)} categorical; "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"orjson {orjson.__version__}, confluent-kafka {confluent_kafka.version()[0]} "
        f"(librdkafka {confluent_kafka.libversion()[0]}); {elapsed:.1f} s\n"
    )
    print(rep.render(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())

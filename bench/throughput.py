"""Throughput of one stream worker, window-close time and Redis memory per closed window.

Run from the repository root::

    .venv/bin/python bench/throughput.py            # full run: 3 repeats, 2-3 minutes
    .venv/bin/python bench/throughput.py --repeat 5
    .venv/bin/python bench/throughput.py --quick    # small sizes: a smoke run (< 60 s)
    .venv/bin/python bench/throughput.py --profile  # also cProfile the worker and a close
    .venv/bin/python bench/throughput.py --kafka fetch.queue.backoff.ms=10  # any librdkafka

Servers: ``$KAFKA_BOOTSTRAP`` and ``$REDIS_URL`` when set, otherwise an embedded
broker and Redis (``stream.embedded``) started for the run. This process (the
worker) is pinned to one CPU and the embedded servers, every thread of them, to
the other CPUs, so the worker gets one core to itself; BLAS/OpenMP pools use one
thread. Every key is written under a fresh prefix (deleted at the end) and every
topic is fresh (deleted at the end on an external broker).

1. **Events/s through one** :class:`~stream.worker.Worker` (closer included, as
   ``driftline worker`` runs it) for events of 20 numeric and 2 categorical
   features, a numeric prediction and ``latency_ms``: (a) one event per Kafka
   message, (b) columnar batches of 500 events per message (the SDK's format and
   default size). The events are produced to a fresh one-partition topic first
   (keyed by model, as the SDK does, so one model's events share a partition);
   each repeat then runs a fresh worker (own consumer group and key prefix) over
   all of them. ``worker.batch_size`` is set so that one poll takes 10,000 events
   in both modes (10,000 messages, or 20 batches of 500); the other settings are
   the defaults (``poll_timeout`` 500 ms, ``flush_interval`` 1 s, 60 s windows).
   **Timing** starts when the first ``consume()`` call returns messages (so the
   consumer-group join, the partition claim and the first fetch are excluded) and
   ends when the last event has been folded and its state written to Redis: as
   soon as the worker has folded every event the benchmark calls
   ``worker.flush_all()`` itself and includes that flush, instead of waiting for
   the next ``flush_interval``. The rate is all events over that time.
   The **raw baseline** runs in the same process on the same topic, alternating
   with the worker repeats, with the same consumer settings and batch size:
   ``Consumer.consume`` + ``orjson.loads`` + the 22 features pulled into
   per-feature lists and ``np.array`` of the 20 numeric ones (per consume batch;
   for columnar messages ``np.array`` of each numeric column) — no validation,
   no folding, no Redis; timed the same way. Both see librdkafka's pacing: once
   its prefetch queue is over ``queued.min.messages`` or
   ``queued.max.messages.kbytes``, the next fetch waits ``fetch.queue.backoff.ms``
   (1 s by default), so a consumer faster than that waits in ``consume()``;
   ``--kafka`` sets such properties for both.
   The worker's time is split by wrapping, per poll (negligible cost), the
   consumer's ``consume`` (Kafka), ``Worker._decode`` (decode), ``flush_all``
   (Redis writes) and the closer's ``close_due``; the rest of the poll is
   folding (window assignment and sketch updates). An info row runs the worker
   on the columnar topic with the default ``batch_size`` (10,000 messages, which
   a queue of 500-event messages never holds, so every ``consume()`` waits the
   whole ``poll_timeout``).
2. **Window close time**: :meth:`~stream.closer.WindowCloser.close` of a window
   of a model with 100 numeric features, whose deltas were folded by the worker's
   own code (columnar messages decoded by ``decode_messages``, folded by
   ``PartitionFold`` and flushed by ``StateStore.flush``) on 4 partitions; a
   sequence of consecutive windows is closed (so each one is compared with its
   predecessor, and a tenth of the features drift, so alerts are published);
   the first close is a warm-up, the figure is the median of the others. The
   close includes publishing the summary and alerts and waiting for delivery.
   Its main steps are also timed alone on the same window just before it is
   closed (reading the delta hashes, merging them, loading the baseline), and
   so is the worker-side flush that wrote each partition's deltas (info).
3. **Redis memory** (``MEMORY USAGE key SAMPLES 0``, the whole key): per closed
   (model, window, feature), the closed-window keys (result JSON, merged
   sketches hash, the close marker, and the window's share of the model's
   history hashes, closed-window index and volume history) over the 100
   features; and the live delta hashes of an open window (all 4 partitions) per
   feature. Done at 2,000 and at 20,000 events per window, to show that memory
   does not grow with traffic.

Prints one markdown table (median, min … max over the repeats), then the targets
with PASS/FAIL; the exit status is 0 either way (a benchmark reports, it does not
gate). With ``--profile``, one more worker run per mode (from the first consumed
message to the final flush) and one more window close run under cProfile, not
counted in the table, and the functions with the most cumulative and own time
are printed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

if __name__ == "__main__":
    from bench.report import one_blas_thread

    one_blas_thread()  # before numpy is imported

import argparse  # noqa: E402
import contextlib  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from bench.report import Report, Stat, TimedParts  # noqa: E402
from stream.baseline import Baseline, BaselineStore, build_baseline  # noqa: E402
from stream.closer import WindowCloser  # noqa: E402
from stream.config import Config, parse_config  # noqa: E402
from stream.embedded import EmbeddedKafka, EmbeddedRedis, create_topics  # noqa: E402
from stream.events import ModelSchema, decode_messages  # noqa: E402
from stream.fold import PartitionFold, WindowSketches  # noqa: E402
from stream.keys import Keys  # noqa: E402
from stream.redis_client import connect  # noqa: E402
from stream.worker import Worker  # noqa: E402

NUMERIC = [f"f{i:02d}" for i in range(20)]
CATEGORICAL = ["plan", "country"]
PLANS = ["free", "basic", "pro", "enterprise"]
COUNTRIES = ["DE", "FR", "US", "JP", "BR", "IN", "NG"]
MODEL = "churn"
WIDE_MODEL = "wide"
WINDOW_S = 60
T0 = 1_717_000_020  # a multiple of WINDOW_S
SPAN_S = 150.0  # event times of a throughput topic: two windows close during a run
POLL_EVENTS = 10_000  # events per consume() call in both modes
CLOSE_PARTITIONS = 4
ROWS_PER_MESSAGE = 500
# Tansu holds each JoinGroup round for about half the session timeout.
KAFKA_CONF = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}

Array = NDArray[np.float64]


# -- sizes ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """How much work each section does."""

    single_events: int  # events of the one-event-per-message topic
    batch_events: int  # events of the columnar topic (500 per message)
    close_windows: int  # windows closed per traffic level (the first is a warm-up)
    window_events: int  # events per window at 1× (10× is ten times this)
    close_features: int = 100


FULL = Sizes(200_000, 1_000_000, 8, 2_000)
QUICK = Sizes(20_000, 100_000, 3, 2_000)


# -- report --------------------------------------------------------------------------
# -- servers and pinning ---------------------------------------------------------------
def pin_worker_core() -> tuple[int | None, set[int]]:
    """Pin this process to its lowest CPU; returns it and the CPUs left for the servers."""
    if not hasattr(os, "sched_setaffinity"):
        return None, set()
    cpus = sorted(os.sched_getaffinity(0))
    try:
        os.sched_setaffinity(0, {cpus[0]})
    except OSError:
        return None, set(cpus)
    return cpus[0], set(cpus[1:])


def pin_process(pid: int, cpus: set[int]) -> bool:
    """Pin every thread of ``pid`` to ``cpus``; ``False`` if that was not possible."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    done = False
    for tid in tids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus)
            done = True
    return done


@dataclass
class Servers:
    """The broker and Redis of the run, embedded or from the environment."""

    bootstrap: str
    redis_url: str
    own_broker: bool  # the embedded broker, started for this run
    pinning: str
    kafka: dict[str, str] = field(default_factory=dict)  # extra librdkafka properties


@contextlib.contextmanager
def servers(server_cpus: set[int], kafka: dict[str, str] | None = None) -> Iterator[Servers]:
    """``$KAFKA_BOOTSTRAP``/``$REDIS_URL``, else embedded servers pinned to ``server_cpus``."""
    env_kafka, env_redis = os.environ.get("KAFKA_BOOTSTRAP"), os.environ.get("REDIS_URL")
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dl-bench-")))
        pinned: list[str] = []
        bootstrap, redis_url = env_kafka, env_redis
        if not bootstrap:
            broker = stack.enter_context(EmbeddedKafka(workdir / "kafka"))
            bootstrap = broker.bootstrap
            if broker.pid is not None and pin_process(broker.pid, server_cpus):
                pinned.append("broker")
        if not redis_url:
            server = stack.enter_context(EmbeddedRedis(workdir / "redis"))
            redis_url = server.url
            if server.pid is not None and pin_process(server.pid, server_cpus):
                pinned.append("Redis")
        cpus = ",".join(map(str, sorted(server_cpus))) or "none"
        if pinned:
            pinning = f"embedded {' and '.join(pinned)} pinned to CPU {cpus}"
        elif env_kafka and env_redis:
            pinning = "external broker and Redis (not pinned)"
        else:
            pinning = "embedded servers not pinned (one CPU)"
        yield Servers(bootstrap, redis_url, not env_kafka, pinning, dict(kafka or {}))


def make_config(
    srv: Servers,
    prefix: str,
    topics: dict[str, str],
    model: str,
    batch_size: int = 10_000,
    *,
    table: Mapping[str, Any] | None = None,
    worker: Mapping[str, Any] | None = None,
) -> Config:
    """A worker configuration: defaults, except the servers, topics and batch size
    (and the ``--kafka`` properties); ``table`` is the model's ``[models.<m>]`` table
    and ``worker`` more ``[worker]`` settings (both empty by default)."""
    return parse_config(
        {
            "kafka": {"bootstrap.servers": srv.bootstrap, **KAFKA_CONF, **srv.kafka},
            "redis": {"url": srv.redis_url, "prefix": prefix},
            "topics": topics,
            "windows": {"size": WINDOW_S},
            "worker": {"group_id": f"bench-{prefix}", "batch_size": batch_size, **(worker or {})},
            "models": {model: dict(table or {})},
        },
        env={},
    )


def fresh_topics(srv: Servers, created: list[str]) -> dict[str, str]:
    """Five fresh topics (one partition each) for a worker's outputs and inputs."""
    tag = uuid.uuid4().hex[:8]
    topics = {k: f"bench.{k}.{tag}" for k in ("predictions", "labels", "dlq", "windows", "alerts")}
    create_topics(srv.bootstrap, dict.fromkeys(topics.values(), 1))
    created += topics.values()
    return topics


def fresh_prefix(prefixes: list[str]) -> str:
    """A Redis key prefix used by nothing else (remembered for the clean-up)."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    prefixes.append(prefix)
    return prefix


def clean_up(srv: Servers, prefixes: Sequence[str], topics: Sequence[str]) -> None:
    """Delete the run's keys, and its topics on an external broker (consumers are closed)."""
    import redis

    client = redis.Redis.from_url(srv.redis_url)
    try:
        for prefix in prefixes:
            batch = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for i in range(0, len(batch), 1000):
                client.delete(*batch[i : i + 1000])
    finally:
        client.close()
    if topics and not srv.own_broker:
        admin = AdminClient({"bootstrap.servers": srv.bootstrap})
        for future in admin.delete_topics(list(topics), operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)


# -- events ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Columns:
    """Generated events, column by column (``None`` in a list = missing)."""

    ts: list[float]
    numeric: dict[str, list[float | int | None]]
    categorical: dict[str, list[str]]
    prediction: list[float]
    latency_ms: list[float]

    def __len__(self) -> int:
        return len(self.ts)


def make_columns(
    n: int,
    rng: np.random.Generator,
    start: float,
    span: float,
    names: Sequence[str] = NUMERIC,
    categorical: bool = True,
    shift: Callable[[int], float] | None = None,
) -> Columns:
    """``n`` realistic events with increasing times in ``[start, start + span)``.

    Numbers have 6 decimals, 2 % are null, the first numeric feature holds ints;
    ``shift(j)`` moves numeric feature ``j`` by that many standard deviations.
    """
    values = np.round(rng.normal(50.0, 15.0, size=(n, len(names))), 6)
    if shift is not None:
        values += np.array([15.0 * shift(j) for j in range(len(names))])
    nulls = rng.random((n, len(names))) < 0.02
    numeric: dict[str, list[float | int | None]] = {}
    for j, name in enumerate(names):
        col: list[float | int | None] = (
            values[:, j].astype(np.int64).tolist() if j == 0 else values[:, j].tolist()
        )
        for i in np.flatnonzero(nulls[:, j]).tolist():
            col[i] = None
        numeric[name] = col
    cats: dict[str, list[str]] = {}
    if categorical:
        cats["plan"] = [PLANS[i] for i in rng.integers(0, len(PLANS), n).tolist()]
        cats["country"] = [COUNTRIES[i] for i in rng.integers(0, len(COUNTRIES), n).tolist()]
    return Columns(
        ts=(start + np.arange(n) * (span / n)).round(3).tolist(),
        numeric=numeric,
        categorical=cats,
        prediction=np.round(rng.random(n), 6).tolist(),
        latency_ms=np.round(rng.gamma(2.0, 5.0, n), 3).tolist(),
    )


def columnar_message(model: str, cols: Columns, lo: int, hi: int, tag: str) -> bytes:
    """Events ``lo:hi`` as one columnar batch (the SDK's message format)."""
    feats: dict[str, list[Any]] = {k: v[lo:hi] for k, v in cols.numeric.items()}
    feats.update({k: v[lo:hi] for k, v in cols.categorical.items()})
    return orjson.dumps(
        {
            "model": model,
            "id": [f"{tag}{i:08d}" for i in range(lo, hi)],
            "ts": cols.ts[lo:hi],
            "features": feats,
            "prediction": cols.prediction[lo:hi],
            "latency_ms": cols.latency_ms[lo:hi],
        }
    )


def single_messages(model: str, cols: Columns) -> Iterator[bytes]:
    """One event object per message."""
    names = [*cols.numeric, *cols.categorical]
    columns: list[Sequence[Any]] = [*cols.numeric.values(), *cols.categorical.values()]
    for i in range(len(cols)):
        yield orjson.dumps(
            {
                "model": model,
                "id": f"e{i:08d}",
                "ts": cols.ts[i],
                "features": {k: c[i] for k, c in zip(names, columns, strict=True)},
                "prediction": cols.prediction[i],
                "latency_ms": cols.latency_ms[i],
            }
        )


def produce_all(bootstrap: str, topic: str, messages: Iterator[bytes], key: bytes) -> int:
    """Produce ``messages`` (each handed over at once: orjson results are not kept)."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": "20", "compression.type": "lz4"})
    n = 0
    for value in messages:
        while True:
            try:
                p.produce(topic, value=value, key=key)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
    left = p.flush(120)
    if left:
        raise RuntimeError(f"{left} messages to {topic} not delivered")
    return n


def training(rng: np.random.Generator, names: Sequence[str], categorical: bool) -> dict[str, Any]:
    """Training columns with the production distributions (no drift)."""
    n = 20_000
    cols: dict[str, Any] = {k: np.round(rng.normal(50.0, 15.0, n), 6) for k in names}
    if categorical:
        cols["plan"] = rng.choice(PLANS, n).tolist()
        cols["country"] = rng.choice(COUNTRIES, n).tolist()
    cols["prediction"] = np.round(rng.random(n), 6)
    return cols


# -- 1. worker throughput -----------------------------------------------------------------
class _TimedConsumer:
    """Forwards to the worker's consumer; notes when messages first arrive and consume time."""

    def __init__(self, inner: Any, probe: _Probe) -> None:
        self._inner = inner
        self._probe = probe

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        """``Consumer.consume``, timed once messages have started to arrive."""
        t = time.perf_counter()
        msgs: list[Any] = self._inner.consume(num_messages, timeout)
        now = time.perf_counter()
        if self._probe.t_first is None:
            if msgs:
                self._probe.first_messages()
        else:
            self._probe.split["kafka"] += now - t
        return msgs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Probe(TimedParts):
    """Times one worker run (see the module docstring) and stops it when all is flushed."""

    def __init__(self, worker: Worker, events: int, profile: cProfile.Profile | None) -> None:
        super().__init__(("kafka", "decode", "flush", "close"))
        self.worker = worker
        self.events = events
        self.profile = profile
        self._poll = worker.poll_once
        self._flush = worker.flush_all
        worker.poll_once = self._poll_once  # type: ignore[method-assign]
        worker.flush_all = self._timed(self._flush, "flush")  # type: ignore[method-assign]
        decode = getattr(worker, "_decode", None)
        self.has_decode = decode is not None
        if decode is not None:
            worker._decode = self._timed(decode, "decode")  # type: ignore[method-assign]
        if worker.closer is not None:
            worker.closer.close_due = self._timed(worker.closer.close_due, "close")

    def first_messages(self) -> None:
        """The first messages have arrived: start the clock (and the profiler)."""
        self.t_first = time.perf_counter()
        if self.profile is not None:
            self.profile.enable()

    def _poll_once(self) -> None:
        """The worker's poll; once every event is folded, the final flush, timed, and stop."""
        w = self.worker
        if w.consumer is not None and not isinstance(w.consumer, _TimedConsumer):
            w.consumer = _TimedConsumer(w.consumer, self)  # type: ignore[assignment]
        self._poll()
        if self.t_end is None and self.done():
            t = time.perf_counter()
            self._flush()
            self.t_end = time.perf_counter()
            self.split["flush"] += self.t_end - t
            if self.profile is not None:
                self.profile.disable()
            w.stop()

    def done(self) -> bool:
        """Every produced event has been folded (or dead-lettered)."""
        s = self.worker.stats
        return s.events + sum(s.dead_letters.values()) >= self.events


@dataclass(frozen=True)
class WorkerRun:
    """What one timed worker run measured."""

    rate: float  # events per second
    seconds: float
    split: dict[str, float]  # seconds per part
    events: int
    dead_letters: int
    windows_closed: int


def run_worker(
    srv: Servers,
    topics: dict[str, str],
    baseline: Baseline,
    events: int,
    batch_size: int,
    prefixes: list[str],
    profile: cProfile.Profile | None = None,
    timeout: float = 240.0,
) -> WorkerRun:
    """One fresh worker (own group and key prefix) over every event of the topic."""
    prefix = fresh_prefix(prefixes)
    cfg = make_config(srv, prefix, topics, MODEL, batch_size)
    client = connect(cfg.redis)
    BaselineStore(client, Keys(prefix)).save(baseline)
    client.close()
    worker = Worker(cfg, closer_factory=lambda w: WindowCloser(w, w.topic_partitions))
    probe = _Probe(worker, events, profile)
    gc.collect()
    try:
        stats = worker.run(max_seconds=timeout)
    finally:
        worker.redis.close()
    if probe.t_first is None or probe.t_end is None:
        raise RuntimeError(
            f"worker run incomplete after {timeout:g} s: {stats.events} of {events} events"
        )
    seconds = probe.t_end - probe.t_first
    dead = sum(stats.dead_letters.values())
    return WorkerRun(
        events / seconds,
        seconds,
        dict(probe.split) if probe.has_decode else {**probe.split, "decode": math.nan},
        stats.events,
        dead,
        stats.windows_closed,
    )


def _single_batch(msgs: list[Any]) -> int:
    """The raw baseline for one consume batch of one-event messages."""
    names = NUMERIC + CATEGORICAL
    lists: dict[str, list[Any]] = {k: [] for k in names}
    appends = [(k, lists[k].append) for k in names]
    loads = orjson.loads
    for m in msgs:
        get = loads(m.value())["features"].get
        for k, app in appends:
            app(get(k))
    for k in NUMERIC:
        np.array(lists[k], dtype=np.float64)
    return len(msgs)


def _columnar_batch(msgs: list[Any]) -> int:
    """The raw baseline for one consume batch of columnar messages."""
    n = 0
    loads = orjson.loads
    for m in msgs:
        feats = loads(m.value())["features"]
        for k in NUMERIC:
            np.array(feats[k], dtype=np.float64)
        n += len(feats["plan"])
        feats["country"]  # already a list: nothing to convert
    return n


def run_raw(cfg: Config, topic: str, events: int, columnar: bool, timeout: float = 240.0) -> float:
    """The raw baseline loop over every event of ``topic``; events per second."""
    conf = cfg.consumer_conf(**{"group.id": f"raw-{uuid.uuid4().hex[:8]}"})
    consumer = Consumer(conf)
    handle = _columnar_batch if columnar else _single_batch
    batch, wait = cfg.worker.batch_size, cfg.worker.poll_timeout_s
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        gc.collect()
        got = 0
        t_first: float | None = None
        deadline = time.monotonic() + timeout
        while got < events:
            if time.monotonic() > deadline:
                raise RuntimeError(f"raw loop: {got} of {events} events after {timeout:g} s")
            msgs = consumer.consume(batch, wait)
            if msgs and t_first is None:
                t_first = time.perf_counter()
            got += handle(msgs)
        assert t_first is not None
        return events / (time.perf_counter() - t_first)
    finally:
        consumer.close()


@dataclass
class Mode:
    """A message format of section 1 and the worker's batch size for it."""

    key: str
    label: str
    columnar: bool
    events: int
    batch_size: int
    raw_loop: bool = True  # also run the raw baseline; targets are set on these modes
    topic: str = ""
    worker: list[WorkerRun] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)


def prepare_modes(
    srv: Servers, sz: Sizes, rng: np.random.Generator, created: list[str]
) -> list[Mode]:
    """Produce the topics of section 1: one-event messages, columnar batches."""
    single = Mode("single", "one event per message", False, sz.single_events, POLL_EVENTS)
    batched = Mode(
        "batched",
        f"columnar, {ROWS_PER_MESSAGE} events per message",
        True,
        sz.batch_events,
        POLL_EVENTS // ROWS_PER_MESSAGE,
    )
    default = Mode(
        "default",
        f"columnar, {ROWS_PER_MESSAGE} events per message, default batch_size",
        True,
        sz.batch_events,
        10_000,
        raw_loop=False,
    )
    for mode in (single, batched):
        mode.topic = f"bench.pred.{mode.key}.{uuid.uuid4().hex[:8]}"
        create_topics(srv.bootstrap, {mode.topic: 1})
        created.append(mode.topic)
        cols = make_columns(mode.events, rng, T0, SPAN_S)
        if mode.columnar:
            n, r = mode.events, ROWS_PER_MESSAGE
            msgs: Iterator[bytes] = (
                columnar_message(MODEL, cols, i, min(n, i + r), "b") for i in range(0, n, r)
            )
        else:
            msgs = single_messages(MODEL, cols)
        produce_all(srv.bootstrap, mode.topic, msgs, MODEL.encode())
    default.topic = batched.topic
    return [single, batched, default]


_PARTS = (
    ("kafka", "Kafka consume()"),
    ("decode", "decode (Worker._decode)"),
    ("fold", "fold and the rest of the poll"),
    ("flush", "flush to Redis (flush_all)"),
    ("close", "window closer (close_due)"),
)


def report_mode(rep: Report, mode: Mode) -> None:
    """Rows and targets of one mode of section 1."""
    s = "1"
    poll = f"batch_size {mode.batch_size} messages; {mode.events:,} events"
    raw = math.nan
    if mode.raw_loop:
        raw = rep.stat(
            s,
            f"raw loop, {mode.label}: consume + orjson + 22 features to numpy",
            Stat([r / 1e3 for r in mode.raw]),
            "k events/s",
            poll,
        )
    closed = statistics.median(r.windows_closed for r in mode.worker)
    work = rep.stat(
        s,
        f"worker, {mode.label}",
        Stat([r.rate / 1e3 for r in mode.worker]),
        "k events/s",
        f"{poll}; decode, fold, flush, closer ({closed:g} windows closed per run)"
        + ("" if mode.raw_loop else "; info"),
    )
    if mode.raw_loop:
        rep.figure(s, f"worker / raw loop, {mode.label}", work / raw, "×")
    for part, what in _PARTS:
        shares = []
        for r in mode.worker:
            known = sum(v for v in r.split.values() if not math.isnan(v))
            value = r.seconds - known if part == "fold" else r.split[part]
            shares.append(100.0 * value / r.seconds)
        rep.stat(s, f"  worker time in {what}, {mode.label}", Stat(shares), "%", "info")
    rate = work * 1e3
    if not mode.raw_loop:
        return
    if mode.columnar:
        rep.target(
            f"worker, {mode.label} ≥ 250,000 events/s",
            f"{rate:,.0f} events/s",
            "≥ 250,000 events/s",
            rate >= 250_000,
        )
    else:
        rep.target(
            f"worker, {mode.label} ≥ 60% of the raw loop",
            f"{work / raw:.0%} of raw ({rate:,.0f} vs {raw * 1e3:,.0f} events/s)",
            "≥ 60% of raw",
            work >= 0.6 * raw,
        )


def bench_throughput(
    rep: Report,
    srv: Servers,
    sz: Sizes,
    repeat: int,
    rng: np.random.Generator,
    created: list[str],
    prefixes: list[str],
    profile: bool,
) -> list[str]:
    """Section 1; returns the profile report lines (empty without ``profile``)."""
    baseline = build_baseline(
        MODEL,
        training(rng, NUMERIC, True),
        prediction_column="prediction",
        version="bench",
    )
    modes = prepare_modes(srv, sz, rng, created)
    outputs = fresh_topics(srv, created)
    for _ in range(repeat):
        for mode in modes:  # interleaved: raw loop and worker see the same conditions
            topics = {**outputs, "predictions": mode.topic}
            if mode.raw_loop:
                cfg = make_config(srv, "raw", topics, MODEL, mode.batch_size)
                mode.raw.append(run_raw(cfg, mode.topic, mode.events, mode.columnar))
            run = run_worker(srv, topics, baseline, mode.events, mode.batch_size, prefixes)
            if run.events != mode.events or run.dead_letters:
                rep.notes.append(
                    f"WARNING: {mode.label}: the worker folded {run.events} of {mode.events} "
                    f"events, {run.dead_letters} dead letters"
                )
            mode.worker.append(run)
    for mode in modes:
        report_mode(rep, mode)
    if not profile:
        return []
    lines: list[str] = []
    for mode in modes:
        if not mode.raw_loop:
            continue
        prof = cProfile.Profile()
        topics = {**outputs, "predictions": mode.topic}
        run = run_worker(srv, topics, baseline, mode.events, mode.batch_size, prefixes, prof)
        lines += profile_lines(
            f"worker, {mode.label}: {run.rate:,.0f} events/s under the profiler "
            f"({run.seconds:.2f} s from the first consumed message to the final flush)",
            prof,
        )
    return lines


def _short(line: str) -> str:
    """A profile line with the repository and site-packages paths left out."""
    line = line.replace(f"{_ROOT}{os.sep}", "")
    return re.sub(r"\S*site-packages" + re.escape(os.sep), "", line)


def profile_lines(title: str, prof: cProfile.Profile, top: int = 25) -> list[str]:
    """The functions with the most cumulative time in a profile."""
    out = io.StringIO()
    st = pstats.Stats(prof, stream=out)
    st.sort_stats("cumulative").print_stats(top)
    st.sort_stats("tottime").print_stats(top // 2)
    return [
        f"### cProfile, {title}",
        "",
        "```",
        *[_short(line.rstrip()) for line in out.getvalue().strip().splitlines()],
        "```",
        "",
    ]


# -- 2 and 3. window close and Redis memory ------------------------------------------------
@dataclass
class Level:
    """Close times and memory at one traffic level."""

    events: int
    close_ms: list[float] = field(default_factory=list)
    parts_ms: dict[str, list[float]] = field(default_factory=dict)  # close components
    fields: int = 0  # delta fields read by one close (all partitions)
    flush_ms: list[float] = field(default_factory=list)  # one partition's flush of a window
    flush_ops: int = 0  # field operations in that flush
    closed_bytes: list[float] = field(default_factory=list)  # per window, all features
    live_bytes: list[float] = field(default_factory=list)  # per window, all partitions
    parts: dict[str, float] = field(default_factory=dict)  # closed bytes by key kind


def fold_window(
    worker: Worker,
    baseline: Baseline,
    cols: Columns,
    start: int,
    partition: int,
    stored: dict[int, int | None],
    level: Level,
) -> None:
    """Decode, fold and flush one partition's events of one window, as the worker does
    (the flush is timed: ``level.flush_ms``)."""
    schemas = {baseline.model: ModelSchema(baseline.model, baseline.kinds(), "numeric")}
    n, r = len(cols), ROWS_PER_MESSAGE
    msgs = [columnar_message(baseline.model, cols, i, min(n, i + r), "w") for i in range(0, n, r)]
    batches, dead = decode_messages(msgs, schemas)
    assert not dead, dead[:2]
    fold = PartitionFold(WINDOW_S)
    for b in batches:
        fold.window(baseline, start).add(b, np.arange(len(b)))
        fold.saw(float(b.ts.max()))
    expected = stored[partition]
    new = (expected or 0) + len(msgs)
    t = time.perf_counter()
    writes = fold.writes()
    res = worker.store.flush(
        worker.topic,
        partition,
        worker.token,
        expected,
        new,
        writes,
        fold.max_event_time,
        time.time(),
    )
    level.flush_ms.append((time.perf_counter() - t) * 1e3)
    level.flush_ops = sum(len(w.ops) for w in writes)
    assert res.ok, res
    stored[partition] = new


def memory(client: Any, keys: Sequence[str]) -> int:
    """``MEMORY USAGE`` (all fields sampled) summed over ``keys``; absent keys count 0."""
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.memory_usage(k, samples=0)
    return sum(int(v or 0) for v in pipe.execute())


def _time_parts(
    level: Level, worker: Worker, baseline: Baseline, parts: list[int], start: int
) -> None:
    """Time the close's main steps on their own, on the window about to be closed."""
    t0 = time.perf_counter()
    deltas = worker.store.window_deltas(worker.topic, parts, baseline.model, start)
    t1 = time.perf_counter()
    WindowSketches.from_deltas(deltas, baseline)
    t2 = time.perf_counter()
    worker.baselines.load(baseline.model)
    t3 = time.perf_counter()
    for name, seconds in (
        ("read the delta hashes (StateStore.window_deltas)", t1 - t0),
        ("merge them (WindowSketches.from_deltas)", t2 - t1),
        ("load the baseline (BaselineStore.load)", t3 - t2),
    ):
        level.parts_ms.setdefault(name, []).append(seconds * 1e3)
    level.fields = sum(map(len, deltas))


def run_level(
    srv: Servers,
    sz: Sizes,
    events: int,
    rng: np.random.Generator,
    created: list[str],
    prefixes: list[str],
    profile: cProfile.Profile | None = None,
) -> Level:
    """Fold ``close_windows`` windows of ``events`` events, measure them, close them.

    With ``profile``, one more window is folded and its close runs under the
    profiler (and is left out of the timings).
    """
    names = [f"x{i:03d}" for i in range(sz.close_features)]
    level = Level(events)
    prefix = fresh_prefix(prefixes)
    topics = fresh_topics(srv, created)
    worker = Worker(make_config(srv, prefix, topics, WIDE_MODEL))
    try:
        client = worker.redis
        keys = Keys(prefix)
        baseline = build_baseline(
            WIDE_MODEL, training(rng, names, False), prediction_column="prediction", version="v1"
        )
        BaselineStore(client, keys).save(baseline)
        parts = list(range(CLOSE_PARTITIONS))
        stored = {p: worker.store.claim(worker.topic, p, worker.token) for p in parts}
        extra = 0 if profile is None else 1
        starts = [T0 + k * WINDOW_S for k in range(sz.close_windows + extra)]
        per_part = events // CLOSE_PARTITIONS

        def drift(j: int) -> float:
            return 0.5 if j % 10 == 0 else 0.0

        for start in starts:
            for p in parts:
                cols = make_columns(
                    per_part, rng, start, WINDOW_S, names, categorical=False, shift=drift
                )
                fold_window(worker, baseline, cols, start, p, stored, level)
            deltas = [keys.window_delta(worker.topic, p, WIDE_MODEL, start) for p in parts]
            level.live_bytes.append(memory(client, deltas))
        closer = WindowCloser(worker, lambda: parts)
        for k, start in enumerate(starts):
            timed = 0 < k < sz.close_windows  # the first close is a warm-up
            if timed:
                _time_parts(level, worker, baseline, parts, start)
            gc.collect()
            if profile is not None and k == sz.close_windows:
                profile.enable()
            t = time.perf_counter()
            closed = closer.close(WIDE_MODEL, start, start + WINDOW_S, parts)
            elapsed = time.perf_counter() - t
            if profile is not None:
                profile.disable()
            if not closed:
                raise RuntimeError(f"window {start} was not closed")
            if timed:
                level.close_ms.append(elapsed * 1e3)
        w = len(starts)
        shared = memory(client, [keys.history(WIDE_MODEL, f) for f in [*names, "@prediction"]])
        index = memory(
            client, [keys.closed_windows(WIDE_MODEL), keys.history(WIDE_MODEL, "@volume")]
        )
        res = [memory(client, [keys.result(WIDE_MODEL, s)]) for s in starts]
        sk = [memory(client, [keys.window_sketches(WIDE_MODEL, s)]) for s in starts]
        marker = [memory(client, [keys.close_claim(WIDE_MODEL, s)]) for s in starts]
        level.closed_bytes = [
            a + b + c + (shared + index) / w for a, b, c in zip(res, sk, marker, strict=True)
        ]
        level.parts = {
            "result JSON": statistics.median(res),
            "merged sketches hash": statistics.median(sk),
            "history hashes (the window's share)": shared / w,
            "close marker, window index, volume history": statistics.median(marker) + index / w,
        }
    finally:
        worker.redis.close()
        worker.producer.flush(10)
    return level


def bench_close_and_memory(
    rep: Report,
    srv: Servers,
    sz: Sizes,
    rng: np.random.Generator,
    created: list[str],
    prefixes: list[str],
    profile: bool,
) -> list[str]:
    """Sections 2 and 3; returns the profile report lines (empty without ``profile``)."""
    prof = cProfile.Profile() if profile else None
    levels = [
        run_level(srv, sz, sz.window_events * k, rng, created, prefixes, prof if k == 1 else None)
        for k in (1, 10)
    ]
    nf = sz.close_features
    ctx = f"{CLOSE_PARTITIONS} partitions; median of {sz.close_windows - 1} closes after a warm-up"
    worst = 0.0
    for lv in levels:
        med = rep.stat(
            "2",
            f"WindowCloser.close, {nf} numeric features, {lv.events:,} events per window",
            Stat(lv.close_ms),
            "ms",
            ctx,
        )
        worst = max(worst, med)
        for what, ms in lv.parts_ms.items():
            rep.stat("2", f"  of which: {what}", Stat(ms), "ms", "timed alone, before the close")
        rep.figure("2", "  delta fields read per close", lv.fields, "fields", "info")
        rep.stat(
            "2",
            f"  (worker side) flush of one partition's window, {nf} features",
            Stat(lv.flush_ms),
            "ms",
            f"PartitionFold.writes + StateStore.flush, {lv.flush_ops:,} field ops; info",
        )
    per_feature: list[float] = []
    for lv in levels:
        closed = rep.stat(
            "3",
            f"Redis per closed (model, window, feature), {lv.events:,} events per window",
            Stat([b / nf / 1024 for b in lv.closed_bytes]),
            "KiB",
            f"{nf} features; spread over {len(lv.closed_bytes)} windows",
        )
        per_feature.append(closed)
        for what, nbytes in lv.parts.items():
            rep.figure("3", f"  {what}", nbytes / nf, "B/feature")
        rep.stat(
            "3",
            f"Redis live deltas per (model, window, feature), {lv.events:,} events per window",
            Stat([b / nf / 1024 for b in lv.live_bytes]),
            "KiB",
            f"the {CLOSE_PARTITIONS} partitions' hashes of an open window",
        )
    growth = per_feature[1] / per_feature[0]
    live = [statistics.median(lv.live_bytes) for lv in levels]
    rep.figure("3", "closed memory, 10× events / 1× events", growth, "×")
    rep.figure("3", "live delta memory, 10× events / 1× events", live[1] / live[0], "×", "info")
    rep.target(
        f"window close, {nf} features < 50 ms",
        f"{worst:.1f} ms (slower of the two traffic levels)",
        "< 50 ms",
        worst < 50.0,
    )
    top = max(per_feature)
    rep.target(
        "Redis per closed (model, window, feature) ≤ 16 KiB",
        f"{top:.2f} KiB",
        "≤ 16 KiB",
        top <= 16.0,
    )
    rep.target(
        "Redis per closed (model, window, feature) flat at 10× events",
        f"{growth - 1:+.1%} (10× vs 1×)",
        "within ±20%",
        abs(growth - 1) <= 0.2,
    )
    if prof is None:
        return []
    title = f"WindowCloser.close, {nf} features, {levels[0].events:,} events per window"
    return profile_lines(f"{title}: one close, not among the timed ones", prof)


# -- main -------------------------------------------------------------------------------
def _property(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=None, help="worker repeats (default 3)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a fast smoke run")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run the worker under cProfile (once per mode) and profile the closes",
    )
    parser.add_argument(
        "--kafka",
        type=_property,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a librdkafka property for the worker's [kafka] table and the raw loop "
        "(repeatable), e.g. fetch.queue.backoff.ms=10",
    )
    args = parser.parse_args(argv)
    sz = QUICK if args.quick else FULL
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeat < 1:
        parser.error("--repeat must be at least 1")

    cpu, server_cpus = pin_worker_core()
    rng = np.random.default_rng(20240601)
    rep = Report()
    created: list[str] = []
    prefixes: list[str] = []
    profile: list[str] = []
    t0 = time.perf_counter()
    with servers(server_cpus, dict(args.kafka)) as srv:
        try:
            profile += bench_throughput(rep, srv, sz, repeat, rng, created, prefixes, args.profile)
            profile += bench_close_and_memory(rep, srv, sz, rng, created, prefixes, args.profile)
        finally:
            clean_up(srv, prefixes, created)
    elapsed = time.perf_counter() - t0

    import confluent_kafka

    mode = "quick (small sizes: figures are indicative only)" if args.quick else "full"
    pinned = f"worker pinned to CPU {cpu}" if cpu is not None else "worker not pinned"
    extra = ", ".join(f"{k}={v}" for k, v in args.kafka) or "none"
    print("# driftline worker throughput benchmark\n")
    print(
        f"mode {mode}; median of {repeat} worker repeats; {pinned}; {srv.pinning}; "
        f"extra librdkafka properties: {extra}; "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"orjson {orjson.__version__}, confluent-kafka {confluent_kafka.version()[0]} "
        f"(librdkafka {confluent_kafka.libversion()[0]}); {elapsed:.1f} s\n"
    )
    print(rep.render(quick=args.quick))
    if profile:
        print("\n## profile\n")
        print("\n".join(profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())

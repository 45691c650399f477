"""The stream worker: consume, validate, fold, flush exactly once, close windows.

One worker process consumes ``driftline.predictions`` in a consumer group.
For each assigned partition it *claims* the partition in Redis (fencing any
previous owner) and seeks to the offset stored there, not to Kafka's committed
offset. Each consumed batch is decoded, bad events are dead-lettered, good
events are folded into in-memory sketch deltas per (model, window); every
``flush_interval`` the deltas and the next offset are written to Redis in one
atomic, fenced compare-and-set (:class:`~stream.store.StateStore`). Dead
letters are produced and flushed to Kafka *before* the state write, so a crash
can repeat a dead letter but never lose one. After flushing, the worker asks
the :class:`~stream.closer.WindowCloser` to close windows the watermark has
passed.

Lateness, per partition: an event is ``too_late`` when its window has already
been closed, or when its time is more than ``allowed_lateness`` before the
partition's largest event time as of the start of its batch.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from stream.baseline import Baseline, BaselineStore
from stream.config import Config
from stream.events import DeadLetter, ModelBatch, ModelSchema, decode_messages
from stream.exceptions import FencedError, OffsetMismatchError, StoreError
from stream.fold import PartitionFold, window_start
from stream.keys import Keys
from stream.label_join import LabelJoiner
from stream.prediction_store import PredictionStore
from stream.rebalance import PartitionOwner
from stream.redis_client import connect
from stream.store import PartitionState, StateStore, patiently

__all__ = ["Worker", "WorkerStats"]

log = logging.getLogger("driftline.worker")


@dataclass
class _Partition:
    """A claimed partition: what is stored in Redis and what is pending."""

    stored: int | None  # next offset as stored in Redis
    next_offset: int  # next offset to fold
    fold: PartitionFold
    watermark: float | None = None  # largest event time as stored
    closed_upto: dict[str, float] = field(default_factory=dict)


@dataclass
class WorkerStats:
    """Counters for logs, tests and metrics."""

    messages: int = 0
    events: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    flushes: int = 0
    refused_flushes: int = 0
    windows_closed: int = 0


class Worker(PartitionOwner):
    """A driftline stream worker.

    Args:
        config: validated configuration.
        clock: wall-clock source (seconds); tests pass a fake one.
        token: this worker's owner token (a fresh UUID by default).
        closer_factory: builds the window closer (``None``: windows are not
            closed by this worker).
    """

    def __init__(
        self,
        config: Config,
        clock: Callable[[], float] = time.time,
        token: str | None = None,
        closer_factory: Callable[[Worker], Any] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.token = token or uuid.uuid4().hex
        self.topic = config.topics.predictions
        self.size = max(1, round(config.windows.size_s))
        self.lateness = config.windows.allowed_lateness_s
        self.redis = connect(config.redis)
        self.keys = Keys(config.redis.prefix)
        self.store = StateStore(
            self.redis, self.keys, config.windows.retention_s, config.worker.max_categories
        )
        self.baselines = BaselineStore(self.redis, self.keys)
        self.stats = WorkerStats()
        self.parts: dict[int, _Partition] = {}
        self._models: dict[str, Baseline | None] = {}
        self._schemas: dict[str, ModelSchema] = {}
        self._models_loaded_at = -1e18
        self._stop = threading.Event()
        self._last_flush = clock()
        self.consumer: Consumer | None = None
        # a too_large dead letter carries the original message: let the producer send it
        max_bytes = max(1_000_000, config.worker.max_message_bytes + 65_536)
        self.producer = Producer(config.producer_conf(**{"message.max.bytes": str(max_bytes)}))
        self._partitions: list[int] | None = None
        self._blame: list[tuple[str | None, str, int]] = []
        # windows that hold deltas on another baseline version than the current one
        self._pinned: dict[tuple[str, int], str] = {}
        self._versions: dict[tuple[str, str], Baseline | None] = {}
        self.closer = closer_factory(self) if closer_factory else None
        self.predictions = PredictionStore(self.redis, self.keys)
        # labels are joined when any model has a [models.<m>.labels] table
        joins = any(spec.labels is not None for spec in config.models.values())
        self.labels: LabelJoiner | None = LabelJoiner(self) if joins else None

    def topic_partitions(self) -> list[int]:
        """Partitions of the predictions topic (looked up once)."""
        if self._partitions is None:
            md = self.producer.list_topics(self.topic, timeout=10)
            meta = md.topics.get(self.topic)
            if meta is None or meta.error is not None or not meta.partitions:
                return sorted(self.parts)
            self._partitions = sorted(meta.partitions)
        return self._partitions

    # -- models and baselines -------------------------------------------
    def refresh_models(self, force: bool = False) -> None:
        """(Re)load the baselines of configured models (every 10 s at most)."""
        now = self.clock()
        if not force and now - self._models_loaded_at < 10.0:
            return
        self._models_loaded_at = now
        for name, spec in self.config.models.items():
            try:
                version = self.baselines.current_version(name)
                held = self._models.get(name)
                if held is not None and name in self._schemas and held.version == version:
                    continue  # unchanged: only the version is read every 10 s
                base = self.baselines.load(name, version) if version is not None else None
            except redis.RedisError as exc:
                log.warning("cannot load the baseline of %s (keeping the last one): %s", name, exc)
                continue
            self._models[name] = base
            if base is None:
                kinds: dict[str, Any] = {f.name: f.kind for f in spec.features}
                self._schemas[name] = ModelSchema(name, kinds, spec.prediction)
            else:
                pred = base.prediction
                pkind: Any = None
                if pred is not None:
                    pkind = "numeric" if pred.numeric else "categorical"
                self._schemas[name] = ModelSchema(name, base.kinds(), spec.prediction or pkind)

    def baseline(self, model: str) -> Baseline | None:
        return self._models.get(model)

    def baseline_version(self, model: str, version: str) -> Baseline | None:
        """A given baseline version of a model (cached; the current one if it matches)."""
        current = self._models.get(model)
        if current is not None and current.version == version:
            return current
        key = (model, version)
        if key not in self._versions:
            self._versions[key] = self.baselines.load(model, version)
        return self._versions[key]

    def _window_baseline(self, model: str, start: int, current: Baseline) -> Baseline:
        """The baseline a window is binned on: the version it was pinned to, else the current."""
        pinned = self._pinned.get((model, start))
        if pinned is None or pinned == current.version:
            return current
        return self.baseline_version(model, pinned) or current

    # -- rebalance callbacks ---------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            stored, st = self._claim(tp.topic, tp.partition)
            self.parts[tp.partition] = _Partition(
                stored,
                stored if stored is not None else 0,
                PartitionFold(self.size),
                st.watermark,
                dict(st.closed_upto),
            )
            tp.offset = stored if stored is not None else OFFSET_BEGINNING
            log.info("claimed %s[%d] at offset %s", tp.topic, tp.partition, stored)
        consumer.assign(partitions)

    def _claim(self, topic: str, partition: int) -> tuple[int | None, PartitionState]:
        """Claim a partition, retrying while Redis is unreachable."""
        return patiently(
            lambda: (
                self.store.claim(topic, partition, self.token),
                self.store.partition_states(topic, [partition])[0],
            ),
            f"claim {topic}[{partition}]",
            self._stop.is_set,
        )

    # -- main loop ---------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish its batch, flush and exit."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the worker gracefully."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def run(self, max_seconds: float | None = None) -> WorkerStats:
        """Consume until :meth:`stop` (or ``max_seconds``); flush and close on exit."""
        self.refresh_models(force=True)
        conf = self.config.consumer_conf()
        self.consumer = consumer = Consumer(conf)
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        if self.labels is not None:
            self.labels.start()
        try:
            consumer.subscribe(
                [self.topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                try:
                    self.poll_once()
                except (StoreError, redis.RedisError) as exc:
                    # Redis away: unflushed deltas stay in memory; flushing resumes later
                    log.warning("Redis unavailable, retrying: %s", exc)
                    self._stop.wait(0.5)
            try:
                self.flush_all()
                if self.closer is not None:
                    self.closer.close_due()
            except (StoreError, redis.RedisError) as exc:
                log.warning("final flush failed (state resumes from Redis' offsets): %s", exc)
        finally:
            if self.labels is not None:
                self.labels.close()
            self.producer.flush(10)
            consumer.close()
            self.consumer = None
        return self.stats

    def poll_once(self) -> None:
        """One consume call, folding, and a flush when one is due."""
        assert self.consumer is not None
        cfg = self.config.worker
        msgs = self.consumer.consume(cfg.batch_size, cfg.poll_timeout_s)
        self.refresh_models()
        by_part: dict[int, list[Any]] = {}
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            by_part.setdefault(int(m.partition() or 0), []).append(m)
        for p, batch in by_part.items():
            self._fold_partition(p, batch)
        if self.labels is not None:
            self.labels.poll_once()
        if self.clock() - self._last_flush >= cfg.flush_interval_s:
            self.flush_all()
            if self.closer is not None:
                self.closer.close_due()

    # -- folding -----------------------------------------------------------
    def _fold_partition(self, p: int, msgs: list[Any]) -> None:
        st = self.parts.get(p)
        if st is None:
            return  # not ours (any more): a rebalance is under way
        msgs = [m for m in msgs if m.offset() >= st.next_offset]
        if not msgs:
            return
        fold = st.fold
        self._blame = []
        batches = self._decode(fold, msgs)
        horizon = None
        marks = [x for x in (st.watermark, fold.max_event_time) if x is not None]
        if marks:
            horizon = max(marks) - self.lateness
        batch_max: float | None = None
        for b in batches:
            n = len(b)
            if n == 0:
                continue
            base = self._models.get(b.model)
            if base is None:
                rows = np.arange(n)
                self._dead_letter_rows(fold, msgs, b, rows, "no_baseline")
                continue
            starts = window_start(b.ts, self.size)
            late = np.zeros(n, dtype=bool)
            if horizon is not None:
                late |= b.ts < horizon
            cu = st.closed_upto.get(b.model)
            if cu is not None:
                late |= (starts + self.size) <= cu
            if late.any():
                late_rows = np.flatnonzero(late)
                self._dead_letter_rows(fold, msgs, b, late_rows, "too_late")
            ok = np.flatnonzero(~late)
            if ok.size:
                tmax = float(b.ts[ok].max())
                batch_max = tmax if batch_max is None else max(batch_max, tmax)
                ustarts, inverse = np.unique(starts[ok], return_inverse=True)
                spec = self.config.models[b.model]
                scored = self._score_classes(b.model, base)
                for j, start in enumerate(ustarts.tolist()):
                    rows = ok[inverse == j]
                    wbase = self._window_baseline(b.model, int(start), base)
                    w = fold.window(wbase, int(start), spec.confidence_threshold, scored)
                    w.add(b, rows)
                self._remember(fold, b, ok)
                self.stats.events += int(ok.size)
        if batch_max is not None:
            fold.saw(batch_max)
        self._attribute_dead_letters(st)
        fold.messages += len(msgs)
        self.stats.messages += len(msgs)
        st.next_offset = msgs[-1].offset() + 1

    def _score_classes(self, model: str, base: Baseline) -> tuple[str, ...] | None:
        """The classes (positive last) of a binary classifier whose quality is
        estimated before labels arrive (its labels are joined and its baseline
        has a calibrator)."""
        mq = self.labels.models.get(model) if self.labels is not None else None
        if mq is None or len(mq.classes) != 2 or "calibrator" not in base.meta:
            return None
        return mq.classes

    def _remember(self, fold: PartitionFold, b: ModelBatch, rows: np.ndarray) -> None:
        """Keep the prediction records of a model whose labels are joined."""
        mq = self.labels.models.get(b.model) if self.labels is not None else None
        if mq is None:
            return
        fold.remember(
            b.model, [b.ids[i] for i in rows.tolist()], b.ts[rows], mq.layout.records(b, rows)
        )

    def _decode(self, fold: PartitionFold, msgs: list[Any]) -> list[ModelBatch]:
        """Decode a partition's messages at once; dead-letter the bad events."""
        values = [m.value() for m in msgs]
        batches, dead = decode_messages(values, self._schemas, self.config.worker.max_message_bytes)
        for k, dl in dead:
            self._dead_letter(fold, msgs[k], dl)
        return batches

    def _dead_letter_rows(
        self, fold: PartitionFold, msgs: list[Any], batch: ModelBatch, rows: np.ndarray, reason: str
    ) -> None:
        detail = {
            "no_baseline": f"model {batch.model!r} has no registered baseline",
            "too_late": "event time is before the watermark or its window is closed",
        }[reason]
        assert batch.msg_index is not None
        for i in rows.tolist():
            msg = msgs[batch.msg_index[i]]
            payload = batch.row_payload(i, msg.value())
            self._produce_dlq(msg, DeadLetter(reason, detail, payload, batch.row_in_message(i)))
        fold.count(f"dlq:{reason}", int(rows.size))
        self._blame.append((batch.model, reason, int(rows.size)))

    def _dead_letter(self, fold: PartitionFold, msg: Any, dl: DeadLetter) -> None:
        self._produce_dlq(msg, dl)
        fold.count(f"dlq:{dl.reason}")
        key = msg.key()
        self._blame.append((key.decode("utf-8", "replace") if key else None, dl.reason, 1))

    def _attribute_dead_letters(self, st: _Partition) -> None:
        """Count dead letters in their model's current window, for the dead-letter rate.

        The model is the event's (or the message key, the model id by contract);
        the window is the one holding the partition's latest event time, unless
        it is closed already (then the partition-level count is all there is).
        """
        mark = st.fold.max_event_time if st.fold.max_event_time is not None else st.watermark
        if mark is None:
            return
        start = int(window_start(np.array([mark]), self.size)[0])
        for model, reason, n in self._blame:
            base = self._models.get(model) if model else None
            cu = st.closed_upto.get(model) if model else None
            if base is None or (cu is not None and start + self.size <= cu):
                continue
            st.fold.window(base, start).dead_letter(reason, n)

    def _produce_dlq(self, msg: Any, dl: DeadLetter) -> None:
        headers = [
            ("reason", dl.reason.encode()),
            ("detail", dl.detail.encode("utf-8", "replace")[:1000]),
            ("source.topic", msg.topic().encode()),
            ("source.partition", str(msg.partition()).encode()),
            ("source.offset", str(msg.offset()).encode()),
        ]
        if dl.index is not None:
            headers.append(("source.index", str(dl.index).encode()))
        self.stats.dead_letters[dl.reason] = self.stats.dead_letters.get(dl.reason, 0) + 1
        while True:
            try:
                self.producer.produce(
                    self.config.topics.dlq, value=dl.payload, key=msg.key(), headers=headers
                )
                break
            except BufferError:
                self.producer.poll(0.1)

    # -- flushing ----------------------------------------------------------
    def flush_all(self) -> None:
        """Write every partition's pending deltas and offsets to Redis."""
        self._last_flush = self.clock()
        if any(not st.fold.empty for st in self.parts.values()):
            remaining = self.producer.flush(30)
            if remaining:
                log.error("%d dead letters not yet delivered; state not written", remaining)
                return
        for p in list(self.parts):
            self._flush_partition(p)
        if self.labels is not None:
            self.labels.flush_all()

    def _flush_partition(self, p: int, final: bool = False) -> None:
        st = self.parts.get(p)
        if st is None or st.fold.empty:
            return
        if final and self.producer.flush(30):
            return
        fold = st.fold
        try:
            self._store_records(fold)
            res = self.store.flush(
                self.topic,
                p,
                self.token,
                st.stored,
                st.next_offset,
                fold.writes(),
                fold.max_event_time,
                self.clock(),
                {k: v for k, v in fold.counters.items()},
            )
        except FencedError as exc:
            log.warning("fenced, dropping partition %d: %s", p, exc)
            self.parts.pop(p, None)
            self.stats.refused_flushes += 1
            return
        except OffsetMismatchError as exc:
            # Redis lost writes (e.g. a restart): what it holds is the truth; refold from there
            log.warning("partition %d: %s; re-reading from the stored offset", p, exc)
            self.stats.refused_flushes += 1
            stored = exc.stored
            if exc.owner_lost:
                stored = self.store.claim(self.topic, p, self.token)
            self._rewind(p, st, stored, final)
            return
        except StoreError as exc:
            log.warning("state write failed, will retry: %s", exc)
            return
        if res.ok:
            st.stored = st.next_offset
            if fold.max_event_time is not None:
                st.watermark = max(st.watermark or fold.max_event_time, fold.max_event_time)
            st.fold = PartitionFold(self.size)
            self.stats.flushes += 1
            return
        self.stats.refused_flushes += 1
        if res.version_conflict is not None:
            # the window holds deltas on another baseline version: refold on that one
            model, start, held = res.version_conflict
            log.warning("%s@%d is binned on baseline %r: refolding on it", model, start, held)
            self._pinned[(model, start)] = held
            if len(self._pinned) > 10_000:  # old windows are closed long ago
                self._pinned.pop(next(iter(self._pinned)))
            self._rewind(p, st, st.stored, final)
            return
        # a window was closed under us: refresh the fences and refold from the stored offset
        assert res.closed_model is not None and res.closed_upto is not None
        st.closed_upto[res.closed_model] = res.closed_upto
        self._rewind(p, st, st.stored, final)

    def _store_records(self, fold: PartitionFold) -> None:
        """Write the label join's prediction records (idempotent) before the state they go with."""
        for model, (ids, ts, records) in fold.records.items():
            spec = self.config.models[model].labels
            if spec is not None and ids:
                self.predictions.put(model, spec.horizon_s, ids, np.concatenate(ts), records)
        fold.records.clear()

    def _rewind(self, p: int, st: _Partition, stored: int | None, final: bool) -> None:
        """Drop unflushed state and consume again from the stored offset."""
        st.stored = stored
        st.fold = PartitionFold(self.size)
        st.next_offset = stored if stored is not None else 0
        if self.consumer is not None and not final:
            tp = TopicPartition(self.topic, p, st.next_offset)
            self.consumer.seek(tp)

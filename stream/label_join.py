"""The label join: ground truth from ``driftline.labels`` counted toward its prediction's window.

A :class:`LabelJoiner` runs inside each worker with a consumer of its own
(group ``<worker.group_id>.labels``) on the labels topic, and keeps the same
exactly-once discipline as the prediction path: it claims each label
partition in Redis (fencing the previous owner), resumes from the offset
stored there, and writes its quality deltas, the ids it labelled and the new
offset in one fenced compare-and-set (:class:`~stream.store.StateStore`).

For each label of a model with ``[models.<m>.labels]`` it

1. **waits** until the predictions up to the label's time are stored: a label
   message newer than the prediction partitions' stored event time is left
   for a later poll, for at most ``worker.label_wait`` (then it is joined with
   what is stored);
2. **looks up** the prediction record (:mod:`stream.prediction_store`): none →
   ``unknown_id``; a prediction more than ``horizon`` before the label →
   ``expired``;
3. **deduplicates**: an id already labelled (in Redis or earlier in this
   batch) → ``duplicate_label``;
4. **folds** the label into the quality state of the prediction's window —
   also when that window has long closed ("the window matures").

Labels of unconfigured models, malformed labels and the reasons above are
dead-lettered (before the state write) and counted per partition. A label
partition's labels for one id must share a partition (key them by the model
id, as the SDK does, or by the id) for duplicates to be caught.

After each flush the touched windows' quality is recomputed from every label
partition's deltas (:mod:`stream.quality`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from stream.closer import watermark
from stream.event_types import DeadLetter
from stream.exceptions import FencedError, OffsetMismatchError, StoreError
from stream.label_fold import LabelFold
from stream.labels import LabelBatch, decode_labels
from stream.prediction_store import PredictionStore
from stream.quality import QualityModels, QualityUpdater
from stream.rebalance import PartitionOwner
from stream.store import StateStore, patiently

__all__ = ["LABELS_PER_FLUSH", "LabelJoiner", "LabelStats"]

log = logging.getLogger("driftline.labels")
LABELS_PER_FLUSH = 20_000  # labels a partition folds before its state is written
DECODE_CHUNK = 50  # label messages decoded at a time (arrays of 500: 25,000 labels)


@dataclass
class _Partition:
    stored: int | None
    next_offset: int
    fold: LabelFold
    waiting: dict[int, float] = field(default_factory=dict)  # offset -> first consumed (wall)


@dataclass
class LabelStats:
    """Counters for logs and tests."""

    messages: int = 0
    joined: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    flushes: int = 0
    deferred: int = 0


class LabelJoiner(PartitionOwner):
    """Consumes labels for one worker (see the module docstring).

    Args:
        worker: the :class:`~stream.worker.Worker` whose Redis, producer,
            configuration, clock and token it shares.
    """

    def __init__(self, worker: Any) -> None:
        self.w = worker
        cfg = worker.config
        self.topic = cfg.topics.labels
        self.size = worker.size
        self.models = QualityModels(worker)
        self.predictions = PredictionStore(worker.redis, worker.keys)
        self.updater = QualityUpdater(worker, self.models)
        self.stats = LabelStats()
        self.parts: dict[int, _Partition] = {}
        self.consumer: Consumer | None = None
        self._partitions: list[int] | None = None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        conf = self.w.config.consumer_conf(
            **{"group.id": f"{self.w.config.worker.group_id}.labels"}
        )
        self.consumer = Consumer(conf)
        self.consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def close(self) -> None:
        if self.consumer is None:
            return
        try:
            self.flush_all()
        except (StoreError, redis.RedisError) as exc:
            log.warning("final label flush failed (resumes from Redis' offsets): %s", exc)
        self.consumer.close()
        self.consumer = None

    def partitions(self) -> list[int]:
        """Partitions of the labels topic (looked up once)."""
        if self._partitions is None:
            md = self.w.producer.list_topics(self.topic, timeout=10)
            meta = md.topics.get(self.topic)
            if meta is None or meta.error is not None or not meta.partitions:
                return sorted(self.parts)
            self._partitions = sorted(meta.partitions)
        return self._partitions

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            stored = self._claim(tp.partition)
            self.parts[tp.partition] = _Partition(stored, stored or 0, LabelFold(self.size))
            tp.offset = stored if stored is not None else OFFSET_BEGINNING
        consumer.assign(partitions)

    def _claim(self, partition: int) -> int | None:
        store: StateStore = self.w.store
        return patiently(
            lambda: store.claim(self.topic, partition, self.w.token),
            f"claim {self.topic}[{partition}]",
            self.w._stop.is_set,
        )

    # -- the loop --------------------------------------------------------------
    def poll_once(self, timeout: float = 0.0) -> None:
        """One consume call and the folding of what came (no flush)."""
        assert self.consumer is not None
        msgs = self.consumer.consume(self.w.config.worker.batch_size, timeout)
        by_part: dict[int, list[Any]] = {}
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("label consumer error: %s", err)
                continue
            by_part.setdefault(int(m.partition() or 0), []).append(m)
        if not by_part:
            return
        mark = self._stored_mark()
        for p, batch in by_part.items():
            try:
                self._fold_partition(p, batch, mark)
            except (StoreError, redis.RedisError):
                st = self.parts.get(p)
                if st is not None:  # half-folded: drop it all, re-read from the stored offset
                    self._rewind(p, st, st.stored, False)
                raise
        if any(st.fold.labels >= LABELS_PER_FLUSH for st in self.parts.values()):
            self.flush_all()

    def _stored_mark(self) -> float | None:
        """Event time up to which every active prediction partition's records are stored."""
        w, cfg = self.w, self.w.config.windows
        states = w.store.partition_states(w.topic, w.topic_partitions())
        return watermark(states, w.clock(), cfg.idle_timeout_s, 0.0)

    def _ready(self, st: _Partition, msg: Any, mark: float | None, newest: float) -> bool:
        """Whether a message's labels may be joined now (see step 1): they are not
        newer than the stored predictions, or it was consumed ``label_wait`` ago."""
        if mark is not None and newest <= mark:
            return True
        since = st.waiting.get(msg.offset(), self.w.clock())
        return bool(self.w.clock() - since >= self.w.config.worker.label_wait_s)

    def _fold_partition(self, p: int, msgs: list[Any], mark: float | None) -> None:
        st = self.parts.get(p)
        if st is None:
            return
        msgs = [m for m in msgs if m.offset() >= st.next_offset]
        # every message's wait starts when it is first consumed, so that N waiting
        # messages take one label_wait, not N of them
        now = self.w.clock()
        for m in msgs:
            st.waiting.setdefault(m.offset(), now)
        # decoded a chunk at a time: what the flush budget or a wait stops is not decoded
        for c in range(0, len(msgs), DECODE_CHUNK):
            chunk = msgs[c : c + DECODE_CHUNK]
            done = self._fold_messages(p, st, chunk, mark)
            for m in chunk[:done]:
                st.waiting.pop(m.offset(), None)
            if done < len(chunk):
                assert self.consumer is not None
                self.consumer.seek(TopicPartition(self.topic, p, chunk[done].offset()))
                return

    def _fold_messages(self, p: int, st: _Partition, msgs: list[Any], mark: float | None) -> int:
        """Fold the messages that are ready, within the flush budget; returns how many."""
        values = [m.value() for m in msgs]
        batches, dead = decode_labels(
            values, self.w.config.models, self.w.config.worker.max_message_bytes
        )
        newest = np.full(len(msgs), -math.inf)
        for b in batches:
            np.maximum.at(newest, np.asarray(b.msg_index, dtype=np.intp), b.ts)
        ready = [self._ready(st, m, mark, float(newest[k])) for k, m in enumerate(msgs)]
        upto = ready.index(False) if False in ready else len(msgs)
        if upto < len(msgs):
            self.stats.deferred += 1
        # at most LABELS_PER_FLUSH labels between flushes (one message at least),
        # so that one flush script never blocks Redis for long
        per_msg = np.zeros(len(msgs), dtype=np.int64)
        for b in batches:
            np.add.at(per_msg, np.asarray(b.msg_index, dtype=np.intp), 1)
        room = LABELS_PER_FLUSH - st.fold.labels
        fit = int(np.searchsorted(np.cumsum(per_msg), room, side="right"))
        upto = min(upto, max(fit, 0 if st.fold.labels else 1))
        if upto == 0:
            return 0
        st.fold.labels += int(per_msg[:upto].sum())
        for k, dl in dead:
            if k < upto:
                self._dead_letter(st.fold, msgs[k], dl)
        for b in batches:
            keep = [i for i, k in enumerate(b.msg_index) if k < upto]
            if keep:
                self._join(st.fold, msgs, b, keep)
        st.fold.messages += upto
        self.stats.messages += upto
        st.next_offset = msgs[upto - 1].offset() + 1
        return upto

    def _join(self, fold: LabelFold, msgs: list[Any], b: LabelBatch, rows: list[int]) -> None:
        spec = self.w.config.models[b.model].labels
        qm = self.models.get(b.model) if spec is not None else None
        if spec is None or qm is None:
            why = (
                f"model {b.model!r} has no [models.{b.model}.labels] table"
                if spec is None
                else f"model {b.model!r}: {self.models.why(b.model)}"
            )
            self._dead_rows(fold, msgs, b, rows, "labels_off", why)
            return
        ids = [b.ids[i] for i in rows]
        label_ts = b.ts[rows]
        records = self.predictions.get(b.model, spec.horizon_s, ids, label_ts)
        found = [j for j, r in enumerate(records) if r is not None]
        unknown = [rows[j] for j, r in enumerate(records) if r is None]
        if unknown:
            why = "no prediction with this id is stored (never logged, or past the horizon)"
            self._dead_rows(fold, msgs, b, unknown, "unknown_id", why)
        if not found:
            return
        ts, pred, proba = qm.layout.unpack([records[j] for j in found])  # type: ignore[misc]
        lts = label_ts[found]
        expired = lts - ts > spec.horizon_s
        if expired.any():
            why = (
                f"the label came more than the horizon ({spec.horizon_s:g} s) after the prediction"
            )
            self._dead_rows(
                fold, msgs, b, [rows[found[j]] for j in np.flatnonzero(expired)], "expired", why
            )
        live = np.flatnonzero(~expired)
        buckets = np.floor(ts / spec.horizon_s).astype(np.int64)
        fresh = self._not_seen(
            fold,
            b.model,
            [ids[found[j]] for j in live],
            buckets[live].tolist(),
            msgs,
            b,
            [rows[found[j]] for j in live],
        )
        if not fresh:
            return
        sel = live[fresh]
        starts = (np.floor(ts[sel] / self.size) * self.size).astype(np.int64)
        y_true = np.array([b.labels[rows[found[j]]] for j in sel], dtype=object)
        for start in np.unique(starts).tolist():
            at = np.flatnonzero(starts == start)
            rows_sel = sel[at]
            win = fold.window(b.model, int(start), qm.new_state)
            win.add(
                y_true[at],
                qm.predicted(pred[rows_sel]),
                qm.proba(proba[rows_sel]),
                lts[rows_sel] - ts[rows_sel],
            )
        self.stats.joined += int(sel.size)

    def _not_seen(
        self,
        fold: LabelFold,
        model: str,
        ids: list[str],
        buckets: list[int],
        msgs: list[Any],
        b: LabelBatch,
        rows: list[int],
    ) -> list[int]:
        """Indices of ``ids`` not labelled before (marking them); duplicates are dead-lettered."""
        p = int(msgs[b.msg_index[rows[0]]].partition() or 0) if rows else 0
        keys = self.w.keys
        by_key: dict[str, list[int]] = {}  # one HMGET per hash, not one call per id
        for j, bucket in enumerate(buckets):
            by_key.setdefault(keys.labelled(self.topic, p, model, bucket), []).append(j)
        pipe = self.w.redis.pipeline(transaction=False)
        for key, js in by_key.items():
            pipe.hmget(key, [ids[j] for j in js])
        try:
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise StoreError(f"labelled ids not read ({type(exc).__name__}): {exc}") from exc
        stored = [False] * len(ids)
        for js, got in zip(by_key.values(), replies, strict=True):
            for j, v in zip(js, got, strict=True):
                stored[j] = v is not None
        fresh, dup = [], []
        for j, (ident, bucket, known) in enumerate(zip(ids, buckets, stored, strict=True)):
            pending = fold.seen.setdefault((model, bucket), set())
            if known or ident in pending:
                dup.append(rows[j])
            else:
                pending.add(ident)
                fresh.append(j)
        if dup:
            self._dead_rows(fold, msgs, b, dup, "duplicate_label", "this id was labelled before")
        return fresh

    # -- dead letters ------------------------------------------------------------
    def _dead_rows(
        self,
        fold: LabelFold,
        msgs: list[Any],
        b: LabelBatch,
        rows: list[int],
        reason: str,
        why: str,
    ) -> None:
        for i in rows:
            msg = msgs[b.msg_index[i]]
            pos = b.positions[i]
            self._dead_letter(
                fold,
                msg,
                DeadLetter(reason, why, b.payload(i, msg.value()), None if pos < 0 else pos),
            )

    def _dead_letter(self, fold: LabelFold, msg: Any, dl: DeadLetter) -> None:
        self.w._produce_dlq(msg, dl)
        fold.count(f"dlq:{dl.reason}")
        self.stats.dead_letters[dl.reason] = self.stats.dead_letters.get(dl.reason, 0) + 1

    # -- flushing --------------------------------------------------------------
    def flush_all(self) -> None:
        """Write every label partition's pending state and offset to Redis."""
        pending = any(not st.fold.empty for st in self.parts.values())
        if pending and self.w.producer.flush(30):
            log.error("label dead letters not yet delivered; label state not written")
            return
        touched: set[tuple[str, int]] = set()
        for p in list(self.parts):
            touched |= self._flush_partition(p)
        if touched:
            self.updater.refresh(touched, self.partitions())

    def _flush_partition(self, p: int, final: bool = False) -> set[tuple[str, int]]:
        st = self.parts.get(p)
        if st is None or st.fold.empty:
            return set()
        if final and self.w.producer.flush(30):
            return set()
        fold, keys = st.fold, self.w.keys
        writes = fold.writes(
            lambda model, bucket: keys.labelled(self.topic, p, model, bucket),
            self.models.ttl_s,
        )
        try:
            res = self.w.store.flush(
                self.topic,
                p,
                self.w.token,
                st.stored,
                st.next_offset,
                writes,
                None,
                self.w.clock(),
                fold.counters,
            )
        except FencedError as exc:
            log.warning("fenced, dropping label partition %d: %s", p, exc)
            self.parts.pop(p, None)
            return set()
        except OffsetMismatchError as exc:
            log.warning("label partition %d: %s; re-reading from the stored offset", p, exc)
            stored = exc.stored
            if exc.owner_lost:
                stored = self.w.store.claim(self.topic, p, self.w.token)
            self._rewind(p, st, stored, final)
            return set()
        except StoreError as exc:
            log.warning("label state write failed, will retry: %s", exc)
            return set()
        if not res.ok:  # label partitions have no closed windows or versions: never expected
            log.error("label flush refused on partition %d: %s", p, res)
            self._rewind(p, st, st.stored, final)
            return set()
        st.stored = st.next_offset
        st.fold = LabelFold(self.size)
        self.stats.flushes += 1
        return set(fold.windows)

    def _rewind(self, p: int, st: _Partition, stored: int | None, final: bool) -> None:
        st.stored = stored
        st.fold = LabelFold(self.size)
        st.next_offset = stored if stored is not None else 0
        if self.consumer is not None and not final:
            self.consumer.seek(TopicPartition(self.topic, p, st.next_offset))

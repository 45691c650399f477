"""The producer SDK for model servers: ``PredictionLogger`` and ``LabelLogger``.

``log(...)`` never blocks and never raises into the serving path: it appends
the event to a bounded in-memory queue and returns ``True``, or ``False`` when
the queue is full (the event is counted in ``stats.dropped``, and the count is
reported by :meth:`close` and in a log line, never lost silently). A
background thread groups queued events per (model, version) into columnar
batches of up to ``batch_size`` events (the format the workers decode fastest)
and hands them to a confluent-kafka producer, keyed by model. Delivery
failures are counted in ``stats.failed``. :meth:`flush` and :meth:`close`
(also on leaving a ``with`` block) wait for everything queued to be delivered.

Example::

    with PredictionLogger("127.0.0.1:9092") as logger:
        logger.log(model="churn", id="p-1", features={"age": 42}, prediction=0.8)
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import KafkaError, Producer

__all__ = ["LabelLogger", "LoggerStats", "PredictionLogger"]

log = logging.getLogger("driftline.sdk")


@dataclass
class LoggerStats:
    """What a logger did: queued, sent (delivered), dropped, failed, rejected."""

    queued: int = 0
    sent: int = 0
    dropped: int = 0  # queue full
    failed: int = 0  # delivery failed after the producer's retries
    rejected: int = 0  # could not be serialised (e.g. an object orjson cannot encode)
    last_error: str = ""


class _Logger:
    TOPIC = ""  # the subclass's default topic

    def __init__(
        self,
        bootstrap: str,
        topic: str | None = None,
        model: str | None = None,
        batch_size: int = 500,
        linger_s: float = 0.2,
        max_queue: int = 100_000,
        producer_conf: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.model = model
        topic = topic or self.TOPIC
        if batch_size < 1 or max_queue < 1:
            raise ValueError(
                f"batch_size and max_queue must be >= 1, got {batch_size}, {max_queue}"
            )
        conf = {
            "bootstrap.servers": bootstrap,
            "linger.ms": "20",
            "compression.type": "lz4",
            "enable.idempotence": "true",
            **(producer_conf or {}),
        }
        self.producer = Producer(conf)
        self.topic = topic
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.max_queue = max_queue
        self.clock = clock
        self.stats = LoggerStats()
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="driftline-logger", daemon=True)
        self._thread.start()

    # -- serving path --------------------------------------------------
    def _enqueue(self, event: dict[str, Any]) -> bool:
        try:
            if self._closed or len(self._queue) >= self.max_queue:
                self.stats.dropped += 1
                return False
            self._queue.append(event)
            self.stats.queued += 1
            if len(self._queue) >= self.batch_size:
                self._wake.set()
            return True
        except Exception as exc:  # never raise into the caller
            self.stats.dropped += 1
            self.stats.last_error = repr(exc)
            return False

    # -- background ----------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.linger_s)
            self._wake.clear()
            self._drain()
            self.producer.poll(0)
            if self._closed and not self._queue:
                return

    def _drain(self) -> None:
        with self._lock:
            while self._queue:
                events: list[dict[str, Any]] = []
                while self._queue and len(events) < self.batch_size * 8:
                    events.append(self._queue.popleft())
                for key, value, n in self._encode(events):
                    self._produce(key, value, n)

    def _produce(self, key: bytes, value: bytes, n: int) -> None:
        def done(err: KafkaError | None, _msg: Any) -> None:
            if err is None:
                self.stats.sent += n
            else:
                self.stats.failed += n
                self.stats.last_error = str(err)

        while True:
            try:
                self.producer.produce(self.topic, value=value, key=key, on_delivery=done)
                return
            except BufferError:
                self.producer.poll(0.05)
            except Exception as exc:  # e.g. message too large
                self.stats.failed += n
                self.stats.last_error = repr(exc)
                return

    def _encode(self, events: list[dict[str, Any]]) -> list[tuple[bytes, bytes, int]]:
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> int:
        """Send everything queued; returns how many messages are still undelivered."""
        self._wake.set()
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            time.sleep(0.01)
        self._drain()
        return int(self.producer.flush(max(0.0, deadline - time.monotonic())))

    def close(self, timeout: float = 10.0) -> LoggerStats:
        """Flush, stop the background thread and report what could not be sent."""
        left = self.flush(timeout)
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        s = self.stats
        if s.dropped or s.failed or s.rejected or left:
            log.warning(
                "%s: %d events not delivered (dropped %d, failed %d, rejected %d, pending %d): %s",
                type(self).__name__,
                s.dropped + s.failed + s.rejected,
                s.dropped,
                s.failed,
                s.rejected,
                left,
                s.last_error,
            )
        return s

    def __enter__(self) -> _Logger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PredictionLogger(_Logger):
    """Logs predictions to ``driftline.predictions`` as columnar batches.

    Args:
        bootstrap: Kafka bootstrap servers.
        topic: the predictions topic.
        model: default model id for :meth:`log`.
        batch_size: events per Kafka message (500 by default).
        linger_s: longest time an event waits in the queue.
        max_queue: events held at most; beyond, ``log`` returns ``False``.
        producer_conf: extra librdkafka properties (security, ...).
    """

    TOPIC = "driftline.predictions"

    def log(
        self,
        features: Mapping[str, Any],
        prediction: float | int | str,
        *,
        model: str | None = None,
        id: str | None = None,
        ts: float | str | None = None,
        proba: Mapping[str, float] | None = None,
        latency_ms: float | None = None,
        version: str | None = None,
    ) -> bool:
        """Queue one prediction event; ``False`` if it could not be queued."""
        model = model or self.model
        if not model:
            self.stats.rejected += 1
            self.stats.last_error = "log() without a model (pass model= here or to the logger)"
            return False
        try:
            event = {
                "model": model,
                "version": version,
                "id": id if id is not None else uuid.uuid4().hex,
                "ts": self.clock() if ts is None else ts,
                "features": dict(features),
                "prediction": prediction,
                "proba": proba,
                "latency_ms": latency_ms,
            }
        except Exception as exc:  # never raise into the serving path
            self.stats.rejected += 1
            self.stats.last_error = repr(exc)
            return False
        return self._enqueue(event)

    def _encode(self, events: list[dict[str, Any]]) -> list[tuple[bytes, bytes, int]]:
        groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
        for e in events:
            groups.setdefault((e["model"], e["version"]), []).append(e)
        out = []
        for (model, version), group in groups.items():
            for i in range(0, len(group), self.batch_size):
                chunk = group[i : i + self.batch_size]
                try:
                    out.append((str(model).encode(), _columnar(model, version, chunk), len(chunk)))
                except (TypeError, orjson.JSONEncodeError) as exc:
                    for e in chunk:  # find the bad ones, keep the rest
                        try:
                            out.append((str(model).encode(), _columnar(model, version, [e]), 1))
                        except (TypeError, orjson.JSONEncodeError):
                            self.stats.rejected += 1
                            self.stats.last_error = repr(exc)
        return out


def _columnar(model: Any, version: Any, events: list[dict[str, Any]]) -> bytes:
    names: dict[str, None] = {}
    for e in events:
        names.update(dict.fromkeys(e["features"]))
    batch: dict[str, Any] = {
        "model": model,
        "id": [e["id"] for e in events],
        "ts": [e["ts"] for e in events],
        "features": {n: [e["features"].get(n) for e in events] for n in names},
        "prediction": [e["prediction"] for e in events],
    }
    if version is not None:
        batch["version"] = version
    if any(e["proba"] is not None for e in events):
        batch["proba"] = [e["proba"] for e in events]
    if any(e["latency_ms"] is not None for e in events):
        batch["latency_ms"] = [e["latency_ms"] for e in events]
    return orjson.dumps(batch, option=orjson.OPT_SERIALIZE_NUMPY)


class LabelLogger(_Logger):
    """Logs ground-truth labels to ``driftline.labels`` (arrays of label events).

    Same arguments as :class:`PredictionLogger`; the topic defaults to
    ``driftline.labels``.
    """

    TOPIC = "driftline.labels"

    def log(
        self, id: str, label: float | int | str, *, model: str | None = None, ts: Any = None
    ) -> bool:
        """Queue the ground truth of prediction ``id``; ``False`` if it could not be queued."""
        event = {"model": model or self.model, "id": id, "label": label, "ts": ts}
        if ts is None:
            event["ts"] = self.clock()
        return self._enqueue(event)

    def _encode(self, events: list[dict[str, Any]]) -> list[tuple[bytes, bytes, int]]:
        groups: dict[Any, list[dict[str, Any]]] = {}
        for e in events:
            groups.setdefault(e["model"], []).append(e)
        out = []
        for model, group in groups.items():
            for i in range(0, len(group), self.batch_size):
                chunk = group[i : i + self.batch_size]
                try:
                    out.append((str(model).encode(), orjson.dumps(chunk), len(chunk)))
                except (TypeError, orjson.JSONEncodeError) as exc:
                    self.stats.rejected += len(chunk)
                    self.stats.last_error = repr(exc)
        return out

"""The alert router: consume the alerts topic and deliver each alert to its routes' sinks.

``driftline alerts route -c CONFIG`` runs :class:`AlertRouter`. It consumes
``topics.alerts`` in its own consumer group (``<worker.group_id>-router``)
with ``enable.auto.commit=false``. For each message:

1. decode it (:meth:`AlertEvent.from_json`); a malformed one is logged,
   counted and skipped;
2. pick the routes (:func:`alerting.routes.select`; no routes configured: one
   ``log`` route);
3. for each route, skip the sink if Redis holds
   ``<prefix>:alert:sent:<sink>:<alert_id>`` (already delivered), else
   ``send`` the alert (with the sink's retries); after a successful delivery
   ``SET <prefix>:alert:sent:<sink>:<alert_id> 1 NX EX 7d``;
4. record the outcome in the hash ``<prefix>:alert:outcome:<alert_id>`` (field
   ``<sink>`` → ``ok`` or ``failed: <error>``, kept 7 days);
5. produce an alert that a sink could not deliver to ``topics.dlq`` (the
   original bytes, headers ``reason=undeliverable``, ``sink``, ``error``,
   ``alert_id``, ``topic``, ``partition``, ``offset``) and wait for the broker's
   acknowledgement;
6. commit the message's offset synchronously.

So delivery is at least once, and a router killed after a delivery was
recorded but before the commit does not deliver again: the redelivered message
finds the sent key. Only a kill in the instant between the receiver's answer
and the Redis write (well under a millisecond) sends that one alert again;
receivers deduplicate on ``X-Driftline-Alert-Id`` (tested by killing a real
router process mid-backlog, ``tests/alerting/test_router_kill.py``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alerting.events import AlertEvent
from alerting.routes import DEFAULT_ROUTES, Route, select
from alerting.sinks import (
    AlertmanagerSink,
    EmailSink,
    LogSink,
    RetryPolicy,
    Sink,
    SlackSink,
    WebhookSink,
)
from alerting.sinks.base import DEFAULT_RETRY
from alerting.sinks.email import EMAIL_RETRY

if TYPE_CHECKING:
    from stream.config import Config

__all__ = ["SENT_TTL_S", "AlertRouter", "RouterStats", "build_sink"]

log = logging.getLogger(__name__)

SENT_TTL_S = 7 * 86400  # how long a delivered alert id is remembered (and its outcome kept)


@dataclass
class RouterStats:
    """Counters of one :meth:`AlertRouter.run`.

    Attributes:
        consumed: alert messages read.
        malformed: messages that were not an alert event (logged, skipped).
        delivered: (alert, sink) deliveries that succeeded.
        duplicates: (alert, sink) pairs skipped because they were delivered before.
        failed: (alert, sink) deliveries that failed and were dead-lettered.
        unrouted: alerts that no route matched.
    """

    consumed: int = 0
    malformed: int = 0
    delivered: int = 0
    duplicates: int = 0
    failed: int = 0
    unrouted: int = 0


def build_sink(route: Route) -> Sink:
    """The sink a route delivers to, with its retry policy and timeout."""
    o = route.options
    base = EMAIL_RETRY if route.sink == "email" else DEFAULT_RETRY
    policy = RetryPolicy(
        attempts=base.attempts if route.attempts is None else route.attempts,
        base_delay=base.base_delay if route.backoff is None else route.backoff,
        max_delay=base.max_delay,
    )
    timeout = route.timeout
    if route.sink == "log":
        return LogSink(json=bool(o.get("json", False)), name=route.name)
    if route.sink == "webhook":
        return WebhookSink(o["url"], o.get("secret"), timeout or 5.0, retry=policy, name=route.name)
    if route.sink == "slack":
        return SlackSink(o["url"], timeout or 5.0, retry=policy, name=route.name)
    if route.sink == "alertmanager":
        return AlertmanagerSink(o["url"], timeout or 5.0, retry=policy, name=route.name)
    if route.sink == "email":
        return EmailSink(
            o["host"],
            int(o.get("port", 25)),
            o["sender"],
            list(o["recipients"]),
            bool(o.get("starttls", False)),
            o.get("username"),
            o.get("password"),
            timeout or 10.0,
            retry=policy,
            name=route.name,
        )
    raise ValueError(f"unknown sink type {route.sink!r}")


class AlertRouter:
    """Deliver alerts from the alerts topic to the configured sinks (see the module docstring).

    Args:
        config: the validated configuration (``[[routes]]``, topics, Kafka, Redis).
        clock: wall clock (injectable).
        sinks: sinks by route name, replacing the ones built from the routes (tests).
        redis_client: a redis-py client; default: one for ``config.redis``.
    """

    def __init__(
        self,
        config: Config,
        clock: Callable[[], float] = time.time,
        *,
        sinks: Mapping[str, Sink] | None = None,
        redis_client: Any = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.routes: tuple[Route, ...] = config.routes or DEFAULT_ROUTES
        built = {r.name: build_sink(r) for r in self.routes if r.name not in (sinks or {})}
        self.sinks: dict[str, Sink] = {**built, **(sinks or {})}
        self.group_id = f"{config.worker.group_id}-router"
        self.prefix = config.redis.prefix
        self.stats = RouterStats()
        self._stop = threading.Event()
        if redis_client is None:
            from stream.redis_client import connect

            redis_client = connect(config.redis)
        self.redis = redis_client
        self._dlq_errors: list[str] = []

    # -- control ----------------------------------------------------------------------
    def stop(self) -> None:
        """Ask :meth:`run` to finish the current message and return."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the router gracefully."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    # -- keys ---------------------------------------------------------------------------
    def sent_key(self, sink: str, alert_id: str) -> str:
        """``<prefix>:alert:sent:<sink>:<alert_id>``: set once ``sink`` delivered the alert."""
        return f"{self.prefix}:alert:sent:{sink}:{alert_id}"

    def outcome_key(self, alert_id: str) -> str:
        """``<prefix>:alert:outcome:<alert_id>``: hash sink → ``ok`` / ``failed: <error>``."""
        return f"{self.prefix}:alert:outcome:{alert_id}"

    # -- loop ----------------------------------------------------------------------------
    def run(self, max_seconds: float | None = None) -> RouterStats:
        """Route alerts until :meth:`stop` (or ``max_seconds``); close everything on exit."""
        from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

        conf = self.config.consumer_conf(**{"group.id": self.group_id, "enable.auto.commit": False})
        consumer = Consumer(conf)
        producer = Producer(self.config.producer_conf())
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        poll_s = min(self.config.worker.poll_timeout_s, 0.5)
        try:
            consumer.subscribe([self.config.topics.alerts])
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                msg = consumer.poll(poll_s)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("alerts consumer error: %s", err)
                    continue
                self.handle(
                    msg.value() or b"", msg.topic(), msg.partition(), msg.offset(), producer
                )
                try:
                    consumer.commit(message=msg, asynchronous=False)
                except KafkaException as exc:  # e.g. partitions moved: redelivery is deduped
                    log.warning("cannot commit offset %s: %s", msg.offset(), exc)
        finally:
            consumer.close()
            producer.flush(10)
            for sink in self.sinks.values():
                try:
                    sink.close()
                except Exception:  # a sink failing to flush must not hide the real error
                    log.exception("closing sink %s failed", sink.name)
        return self.stats

    def handle(
        self,
        value: bytes,
        topic: str | None,
        partition: int | None,
        offset: int | None,
        producer: Any,
    ) -> None:
        """Route one message; returns once every outcome is recorded and dead letters acked."""
        self.stats.consumed += 1
        try:
            alert = AlertEvent.from_json(value)
        except ValueError as exc:
            self.stats.malformed += 1
            log.warning("skipped a malformed alert at %s[%s]@%s: %s", topic, partition, offset, exc)
            return
        routes = select(self.routes, alert)
        if not routes:
            self.stats.unrouted += 1
            return
        dead = False
        for route in routes:
            sent = self.sent_key(route.name, alert.alert_id)
            if self.redis.exists(sent):
                self.stats.duplicates += 1
                continue
            delivery = self.sinks[route.name].send(alert)
            outcome = "ok" if delivery.ok else f"failed: {delivery.error}"
            pipe = self.redis.pipeline(transaction=False)
            if delivery.ok:
                pipe.set(sent, b"1", nx=True, ex=SENT_TTL_S)
            pipe.hset(self.outcome_key(alert.alert_id), route.name, outcome)
            pipe.expire(self.outcome_key(alert.alert_id), SENT_TTL_S)
            pipe.execute()
            if delivery.ok:
                self.stats.delivered += 1
                continue
            self.stats.failed += 1
            dead = True
            log.warning(
                "alert %s undeliverable to %s after %d tries: %s",
                alert.alert_id,
                route.name,
                delivery.attempts,
                delivery.error,
            )
            headers = [
                ("reason", b"undeliverable"),
                ("sink", route.name.encode()),
                ("error", str(delivery.error).encode("utf-8", "replace")),
                ("alert_id", alert.alert_id.encode("utf-8", "replace")),
                ("topic", (topic or "").encode()),
                ("partition", str(partition).encode()),
                ("offset", str(offset).encode()),
            ]
            producer.produce(
                self.config.topics.dlq,
                value=value,
                key=alert.model.encode("utf-8", "replace"),
                headers=headers,
                on_delivery=self._on_dlq_delivery,
            )
        if dead:
            self._flush_dlq(producer)

    def _on_dlq_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._dlq_errors.append(str(err))

    def _flush_dlq(self, producer: Any) -> None:
        """Wait until the dead letters are acknowledged; raise rather than commit past a loss."""
        left = producer.flush(30)
        if left or self._dlq_errors:
            errors, self._dlq_errors = self._dlq_errors, []
            why = "; ".join(errors) or f"{left} not acknowledged in 30 s"
            raise RuntimeError(f"cannot write to dead-letter topic {self.config.topics.dlq}: {why}")

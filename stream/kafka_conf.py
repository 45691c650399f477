"""The ``[kafka]`` section: librdkafka properties, checked and split between the clients.

Every property is passed through to librdkafka as a string (booleans and
numbers are converted; lists are comma-joined) and checked by building a
throwaway producer and consumer with it. Producer-only properties go to
producers only, consumer-only ones to the consumer only; anything else goes to
both.

The consumer also gets ``group.id`` = ``worker.group_id`` and
``enable.auto.commit=false`` (offsets live in Redis with the state), which
``[kafka]`` cannot set, and ``auto.offset.reset=earliest`` and
``fetch.queue.backoff.ms=50`` unless ``[kafka]`` sets them. Producers get
``linger.ms=20`` and ``compression.type=lz4`` unless these (or their aliases
``queue.buffering.max.ms``, ``compression.codec``) are set. Python callbacks
(``error_cb``, …) and ``metadata.broker.list`` are refused in ``[kafka]``.
"""

from __future__ import annotations

import difflib
import functools
import logging
import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "client_strings",
    "consumer_conf",
    "is_secret",
    "librdkafka_problems",
    "producer_conf",
]

_CALLBACKS = {
    "error_cb",
    "throttle_cb",
    "stats_cb",
    "oauth_cb",
    "logger",
    "on_commit",
    "on_delivery",
}
_RESERVED = {
    "group.id": "set worker.group_id instead",
    "metadata.broker.list": 'use "bootstrap.servers"',
}
_NOT_PROBED = {"bootstrap.servers", "plugin.library.paths"}  # would connect / load code


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Scopes from librdkafka's CONFIGURATION.md ("C" and "P" rows); "*" properties go to both.
_CONSUMER_ONLY = _words(
    "group.id group.instance.id partition.assignment.strategy session.timeout.ms "
    "heartbeat.interval.ms group.protocol.type group.protocol group.remote.assignor "
    "coordinator.query.interval.ms max.poll.interval.ms enable.auto.commit "
    "auto.commit.interval.ms enable.auto.offset.store queued.min.messages "
    "queued.max.messages.kbytes fetch.wait.max.ms fetch.queue.backoff.ms "
    "fetch.message.max.bytes max.partition.fetch.bytes fetch.max.bytes fetch.min.bytes "
    "fetch.error.backoff.ms offset.store.method isolation.level enable.partition.eof "
    "check.crcs auto.offset.reset auto.commit.enable offset.store.path "
    "offset.store.sync.interval.ms consume.callback.max.messages on_commit"
)
_PRODUCER_ONLY = _words(
    "transactional.id transaction.timeout.ms enable.idempotence enable.gapless.guarantee "
    "queue.buffering.max.messages queue.buffering.max.kbytes queue.buffering.max.ms linger.ms "
    "message.send.max.retries retries queue.buffering.backpressure.threshold "
    "compression.codec compression.type compression.level batch.num.messages batch.size "
    "delivery.report.only.error sticky.partitioning.linger.ms request.required.acks acks "
    "request.timeout.ms message.timeout.ms delivery.timeout.ms queuing.strategy partitioner "
    "on_delivery"
)
_COMMON = _words(
    "bootstrap.servers client.id client.rack security.protocol sasl.mechanism sasl.username "
    "sasl.password ssl.ca.location ssl.certificate.location ssl.key.location ssl.key.password "
    "ssl.endpoint.identification.algorithm enable.ssl.certificate.verification "
    "socket.timeout.ms message.max.bytes statistics.interval.ms debug retry.backoff.ms "
    "reconnect.backoff.ms socket.keepalive.enable topic.metadata.refresh.interval.ms"
)
_KNOWN = sorted(_CONSUMER_ONLY | _PRODUCER_ONLY | _COMMON)  # for "did you mean"
_PRODUCER_DEFAULTS = (
    (("linger.ms", "queue.buffering.max.ms"), "20"),
    (("compression.type", "compression.codec"), "lz4"),
)
_PROBE_LOG = logging.getLogger("driftline.config.librdkafka")
_PROBE_LOG.addHandler(logging.NullHandler())
_PROBE_LOG.propagate = False


def is_secret(name: str) -> bool:
    """Whether the value of property ``name`` must not be shown."""
    return any(
        s in name for s in ("password", "secret", "passphrase", ".pem", "oauthbearer.config")
    )


def consumer_conf(
    kafka: Mapping[str, str], group_id: str, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Consumer settings: ``kafka`` without producer-only properties, plus the fixed ones.

    Args:
        kafka: the checked ``[kafka]`` properties.
        group_id: the consumer group (``worker.group_id``).
        overrides: settings that win over all others; scalars become strings.
    """
    # librdkafka waits 1 s before refetching once its prefetch queue is full,
    # which leaves a busy worker idle; 50 ms keeps it fed (bench/throughput.py)
    conf: dict[str, Any] = {"auto.offset.reset": "earliest", "fetch.queue.backoff.ms": "50"}
    conf.update((k, v) for k, v in kafka.items() if k not in _PRODUCER_ONLY)
    conf.update({"group.id": group_id, "enable.auto.commit": "false"})
    conf.update((k, _client_value(v)) for k, v in overrides.items())
    return conf


def producer_conf(kafka: Mapping[str, str], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Producer settings: ``kafka`` without consumer-only properties, plus the defaults.

    Args:
        kafka: the checked ``[kafka]`` properties.
        overrides: settings that win over all others; scalars become strings.
    """
    conf: dict[str, Any] = {k: v for k, v in kafka.items() if k not in _CONSUMER_ONLY}
    for names, value in _PRODUCER_DEFAULTS:
        if not any(n in conf or n in overrides for n in names):
            conf[names[0]] = value
    conf.update((k, _client_value(v)) for k, v in overrides.items())
    return conf


def client_strings(
    flat: Mapping[str, Any], shown: Mapping[str, str]
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The librdkafka strings of the ``[kafka]`` properties that may be set there.

    Args:
        flat: property name → value as read (dotted keys joined).
        shown: property name → value as error messages show it (secrets masked).

    Returns:
        The accepted properties as strings, and ``(name, problem)`` for the others.
    """
    conf: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for name, value in flat.items():
        text = _kafka_string(value)
        if name in _CALLBACKS:
            problems.append(
                (name, "a Python callback; pass it to consumer_conf() or producer_conf() in code")
            )
        elif name in _RESERVED:
            problems.append((name, f"{_RESERVED[name]}, got {shown[name]}"))
        elif text is None:
            expected = "expected a string, number, boolean or a list of them"
            problems.append((name, f"{expected}, got {shown[name]}"))
        elif name == "enable.auto.commit" and text != "false":
            problems.append(
                (name, f"must stay false (offsets are stored in Redis), got {shown[name]}")
            )
        else:
            conf[name] = text
    return conf, problems


def librdkafka_problems(conf: Mapping[str, str], shown: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(name, problem)`` for each property that librdkafka refuses.

    ``bootstrap.servers`` and ``plugin.library.paths`` are not checked. An
    unknown name is reported without its value (it may be a misspelt secret).

    Args:
        conf: property name → librdkafka string, from :func:`client_strings`.
        shown: property name → value as error messages show it (secrets masked).
    """
    problems: list[tuple[str, str]] = []
    for name, text in conf.items():
        complaint = None if name in _NOT_PROBED else _librdkafka_complaint(name, text)
        if complaint and complaint.startswith("No such configuration property"):
            close = difflib.get_close_matches(name, _KNOWN, n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            problems.append((name, f"not a librdkafka property{hint}"))
        elif complaint:
            problems.append((name, f"{complaint}, got {shown[name]}"))
    return problems


def _client_value(value: Any) -> Any:
    """A librdkafka string for a scalar; callables and other objects unchanged."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    return value


def _kafka_string(value: Any) -> str | None:
    """A librdkafka string for a scalar or a list of scalars (comma-joined), else ``None``."""
    items = [_client_value(v) for v in value] if isinstance(value, list) else [_client_value(value)]
    return ",".join(items) if all(isinstance(i, str) for i in items) else None


@functools.lru_cache(maxsize=512)
def _librdkafka_complaint(name: str, value: str) -> str | None:
    """What librdkafka says about one property, or ``None`` if a producer or consumer takes it.

    Builds and drops a client without ``bootstrap.servers``, so nothing
    connects; errors that depend on other properties or on the machine
    (``Failed to create …``) are left to the worker's start.
    """
    from confluent_kafka import Consumer, KafkaException, Producer

    complaints: list[str] = []
    # Silent, and never GSSAPI: "security.protocol" = "SASL_*" alone would run kinit there.
    base = {"logger": _PROBE_LOG, "log_level": "0", "sasl.mechanism": "PLAIN"}
    for client, extra in ((Producer, {}), (Consumer, {"group.id": "driftline-config-check"})):
        try:
            handle = client({**base, **extra, name: value})
        except KafkaException as exc:
            text = str(exc.args[0].str()).strip()
            if text.startswith("Failed to create"):
                return None
            complaints.append(text)
        except (TypeError, ValueError) as exc:
            complaints.append(str(exc))
        else:
            if client is Consumer:
                handle.close()
            return None
    return sorted(complaints, key=lambda c: c.startswith("No such configuration property"))[0]

"""Embedded Kafka-protocol broker and Redis-compatible server, for tests and demos.

``EmbeddedStack`` starts both on free loopback ports and creates driftline's
topics; ``driftline up`` runs it from the command line. The broker keeps
everything in memory (every start is empty); Redis keeps an append-only file.

Limits of the broker measured on it (Tansu 0.6): high watermarks under-report,
``offsets_for_times`` returns 0, aborted transactions stay visible and
``create_partitions`` is unsupported. Never delete a topic while a librdkafka
consumer is subscribed to it: the client process crashes.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # typed here; confluent_kafka.admin re-exports it

from stream.embedded_kafka import EmbeddedKafka, resolve_tansu_bin
from stream.embedded_process import free_port
from stream.embedded_redis import EmbeddedRedis, resolve_valkey_bin
from stream.embedded_server import Managed
from stream.exceptions import ConfigError, EmbeddedServerError

__all__ = [
    "DEFAULT_TOPICS",
    "EmbeddedKafka",
    "EmbeddedRedis",
    "EmbeddedStack",
    "create_topics",
    "default_topics",
    "free_port",
    "resolve_tansu_bin",
    "resolve_valkey_bin",
]

DEFAULT_TOPICS: Mapping[str, int] = {
    "driftline.predictions": 4,
    "driftline.labels": 4,
    "driftline.dlq": 1,
    "driftline.windows": 1,
    "driftline.alerts": 1,
}


def default_topics(partitions: int = 4) -> dict[str, int]:
    """Return ``DEFAULT_TOPICS`` with ``partitions`` for the predictions and labels topics.

    >>> default_topics(2)["driftline.predictions"], default_topics(2)["driftline.dlq"]
    (2, 1)
    """
    if partitions < 1:
        raise ConfigError(f"partitions must be at least 1, got {partitions}")
    wide = ("driftline.predictions", "driftline.labels")
    return {name: partitions if name in wide else n for name, n in DEFAULT_TOPICS.items()}


def create_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    extra_conf: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> None:
    """Create topics with the given partition counts (replication 1) and wait for them.

    A topic that already exists is kept if its partition count matches.

    Raises:
        ConfigError: a partition count below 1, or an existing topic with another count.
        EmbeddedServerError: the broker refused or did not show the topics in time.
    """
    for name, n in topics.items():
        if n < 1:
            raise ConfigError(f"topic {name!r}: partitions must be at least 1, got {n}")
    if not topics:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap, **(extra_conf or {})})
    new = [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in topics.items()]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    existed = set()
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                existed.add(name)
                continue
            raise EmbeddedServerError(
                f"cannot create topic {name!r} on {bootstrap}: {err}"
            ) from exc
        except TimeoutError as exc:
            raise EmbeddedServerError(
                f"creating topic {name!r} on {bootstrap} took over {timeout:g} s"
            ) from exc
    _wait_for_topics(admin, bootstrap, topics, existed, timeout)


def _wait_for_topics(
    admin: AdminClient, bootstrap: str, topics: Mapping[str, int], existed: set[str], timeout: float
) -> None:
    """Poll metadata until every topic shows its partitions."""
    deadline = time.monotonic() + timeout
    seen: dict[str, int] = {}
    while True:
        try:
            meta = admin.list_topics(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
            seen = {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None}
        except KafkaException:
            pass
        for name in existed:
            if seen.get(name, 0) and seen[name] != topics[name]:
                raise ConfigError(
                    f"topic {name!r} already exists on {bootstrap} with {seen[name]} "
                    f"partitions, wanted {topics[name]}"
                )
        missing = {name: n for name, n in topics.items() if seen.get(name) != n}
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise EmbeddedServerError(
                f"topics not visible on {bootstrap} after {timeout:g} s: "
                + ", ".join(f"{name} ({n} partitions)" for name, n in sorted(missing.items()))
            )
        time.sleep(0.05)


class EmbeddedStack(Managed):
    """The embedded broker and Redis, with driftline's topics created.

    Args:
        workdir: Holds ``kafka/`` and ``redis/`` (logs, AOF); a temporary one
            (removed on stop) if ``None``.
        topics: Topic name to partition count; ``DEFAULT_TOPICS`` if ``None``.
    """

    def __init__(
        self, workdir: Path | None = None, topics: Mapping[str, int] | None = None
    ) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="driftline-")) if workdir is None else workdir
        self.topics: dict[str, int] = dict(DEFAULT_TOPICS if topics is None else topics)
        self.kafka = EmbeddedKafka(self.workdir / "kafka")
        self.redis = EmbeddedRedis(self.workdir / "redis")

    @property
    def bootstrap(self) -> str:
        """The broker's ``127.0.0.1:PORT``."""
        return self.kafka.bootstrap

    @property
    def redis_url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return self.redis.url

    def start(self) -> Self:
        """Start both servers and create the topics; on any failure stop what started."""
        try:
            self.kafka.start()
            self.redis.start()
            create_topics(self.bootstrap, self.topics)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both servers (each even if the other fails) and remove a temporary workdir."""
        try:
            self.kafka.stop()
        finally:
            self.redis.stop()
            if self._own_dir:
                shutil.rmtree(self.workdir, ignore_errors=True)

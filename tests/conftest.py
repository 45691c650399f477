"""Shared fixtures: the broker and Redis for integration tests.

Servers come from ``KAFKA_BOOTSTRAP`` / ``REDIS_URL`` when set, otherwise an
embedded broker and Redis are started once per session, and only when a test
asks for them: tests that use none of these fixtures start nothing.
Tests share the servers, so each one works under its own ``key_prefix`` and
``unique_topic`` names instead of flushing anything.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported lazily: tests without servers stay light
    import redis

    from stream.embedded import EmbeddedRedis

__all__ = ["KAFKA_TEST_CONF"]

# Tansu holds each JoinGroup round for about half the session timeout.
KAFKA_TEST_CONF: dict[str, str] = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers: ``$KAFKA_BOOTSTRAP``, else a session-wide embedded broker."""
    from_env = os.environ.get("KAFKA_BOOTSTRAP")
    if from_env:
        yield from_env
        return
    from stream.embedded import EmbeddedKafka

    with EmbeddedKafka(tmp_path_factory.mktemp("kafka")) as kafka:
        yield kafka.bootstrap


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Redis URL: ``$REDIS_URL``, else a session-wide embedded server."""
    from_env = os.environ.get("REDIS_URL")
    if from_env:
        yield from_env
        return
    from stream.embedded import EmbeddedRedis

    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A redis-py client (bytes replies) on ``redis_url``; use ``key_prefix`` for keys."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=False)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def key_prefix() -> str:
    """A key prefix (or name stem) unique to this test, such as ``t1a2b3c4d``."""
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def unique_topic(kafka_bootstrap: str) -> Callable[..., str]:
    """Factory ``(stem, partitions=1) -> name`` creating a uniquely named topic.

    Topics are not deleted afterwards: deleting one while a consumer is still
    subscribed crashes librdkafka, and the embedded broker is memory-only.
    """
    from stream.embedded import create_topics

    def make(stem: str, partitions: int = 1) -> str:
        name = f"{stem}.{uuid.uuid4().hex[:8]}"
        create_topics(kafka_bootstrap, {name: partitions})
        return name

    return make


@pytest.fixture
def driftline_topics(unique_topic: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """Factory ``(stem, partitions=2) -> [topics]`` table: the five driftline topics,
    uniquely named, the predictions topic with ``partitions`` partitions."""

    def make(stem: str, partitions: int = 2) -> dict[str, str]:
        return {
            "predictions": unique_topic(f"{stem}.pred", partitions),
            "labels": unique_topic(f"{stem}.labels"),
            "dlq": unique_topic(f"{stem}.dlq"),
            "windows": unique_topic(f"{stem}.windows"),
            "alerts": unique_topic(f"{stem}.alerts"),
        }

    return make


@pytest.fixture
def kafka_test_conf() -> dict[str, str]:
    """A copy of ``KAFKA_TEST_CONF`` to merge into consumer configurations."""
    return dict(KAFKA_TEST_CONF)


@pytest.fixture
def embedded_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A started ``EmbeddedRedis`` of this test alone (in ``tmp_path``), for restarts."""
    from stream.embedded import EmbeddedRedis

    with EmbeddedRedis(tmp_path / "redis") as server:
        yield server

"""The embedded broker and Redis, their fixtures and ``driftline up``, on real servers."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import stream.embedded_server
from stream.cli import main
from stream.embedded import (
    DEFAULT_TOPICS,
    EmbeddedKafka,
    EmbeddedRedis,
    EmbeddedStack,
    free_port,
)
from stream.exceptions import EmbeddedServerError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _produce(bootstrap: str, topic: str, n: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        headers: list[tuple[str, str | bytes | None]] = [("model", b"m1"), ("seq", str(i))]
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), headers=headers)
    assert producer.flush(10) == 0


def _consume(consumer: Consumer, n: int, timeout: float = 20.0) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got.append(msg)
    return got


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether ``pid`` no longer runs (absent or a zombie) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_produce_and_consume_with_a_group_and_headers(
    kafka_bootstrap: str, unique_topic: Callable[..., str], kafka_test_conf: dict[str, str]
) -> None:
    topic = unique_topic("embedded.group", 2)
    _produce(kafka_bootstrap, topic, 6)
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"g{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            **kafka_test_conf,
        }
    )
    try:
        consumer.subscribe([topic])
        got = _consume(consumer, 6)
    finally:
        consumer.close()
    assert sorted(m.value() or b"" for m in got) == [f"v{i}".encode() for i in range(6)]
    for msg in got:
        headers = dict(msg.headers() or [])
        seq = headers["seq"]
        assert headers["model"] == b"m1" and isinstance(seq, bytes)  # bytes, even if sent as str
        assert msg.key() == b"k" + seq


def test_assign_reads_from_an_explicit_offset(
    kafka_bootstrap: str, unique_topic: Callable[..., str], kafka_test_conf: dict[str, str]
) -> None:
    topic = unique_topic("embedded.assign")
    _produce(kafka_bootstrap, topic, 5)
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"g{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            **kafka_test_conf,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 3)])
        got = _consume(consumer, 2, timeout=10)
    finally:
        consumer.close()
    assert [(m.offset(), m.value()) for m in got] == [(3, b"v3"), (4, b"v4")]


def test_redis_ping_hset_and_eval(redis_client: redis.Redis, key_prefix: str) -> None:
    key = f"{key_prefix}:h"
    assert redis_client.ping()
    redis_client.hset(key, mapping={"a": 1, "b": 2})
    script = "return redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])"
    assert redis_client.eval(script, 1, key, "a", 40) == 41
    assert redis_client.hgetall(key) == {b"a": b"41", b"b": b"2"}


def test_restart_keeps_an_acknowledged_write(embedded_redis: EmbeddedRedis) -> None:
    url, pid = embedded_redis.url, embedded_redis.pid
    client = redis.Redis.from_url(url)
    try:
        client.hset("state", "offset", 1234)
        assert embedded_redis.restart() == url
        assert embedded_redis.pid != pid
        assert pid is not None and _gone(pid)
        assert client.hget("state", "offset") == b"1234"
    finally:
        client.close()


def test_stack_creates_the_default_topics(tmp_path: Path) -> None:
    with EmbeddedStack(tmp_path / "stack") as stack:
        meta = AdminClient({"bootstrap.servers": stack.bootstrap}).list_topics(timeout=10)
        partitions = {name: len(meta.topics[name].partitions) for name in DEFAULT_TOPICS}
        assert partitions == dict(DEFAULT_TOPICS)
        assert redis.Redis.from_url(stack.redis_url).ping()
        ports = [stack.kafka.port, stack.redis.port]
    assert not stack.kafka.alive and not stack.redis.alive
    assert not any(_answers(port) for port in ports)
    assert (tmp_path / "stack" / "redis" / "appendonlydir").is_dir()


def test_driftline_up_serves_until_sigint(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", "up", "--partitions", "2", "--dir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out = _read_until(proc, "press Ctrl-C", timeout=20)
        env = dict(re.findall(r"^(KAFKA_BOOTSTRAP|REDIS_URL)=(\S+)$", out, re.M))
        pids = [int(p) for p in re.findall(r"\(pid (\d+),", out)]
        meta = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP"]}).list_topics(timeout=10)
        assert len(meta.topics["driftline.predictions"].partitions) == 2
        assert redis.Redis.from_url(env["REDIS_URL"]).ping()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0, proc.communicate()[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(pids) == 2 and all(_gone(pid) for pid in pids)
    ports = [int(env["KAFKA_BOOTSTRAP"].rsplit(":", 1)[1]), urlparse(env["REDIS_URL"]).port or 0]
    assert not any(_answers(port) for port in ports)


def _read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    out, deadline = b"", time.monotonic() + timeout
    while marker.encode() not in out:
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, f"no {marker!r} in time; output: {out!r}"
        if sel.select(left):
            out += os.read(fd, 65536)
    sel.close()
    return out.decode()


def test_bad_broker_binary_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent")
    with pytest.raises(EmbeddedServerError, match=r"CALF_TANSU_BIN='/nonexistent'"):
        EmbeddedKafka(tmp_path).start()
    assert main(["up", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("driftline up: error:") and "/nonexistent" in err
    assert "Traceback" not in err


def test_a_binary_that_exits_names_binary_port_and_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "fake-tansu"
    fake.write_text("#!/bin/sh\necho 'fake broker: cannot serve'\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CALF_TANSU_BIN", str(fake))
    with pytest.raises(EmbeddedServerError) as info:
        EmbeddedKafka(tmp_path).start(attempts=2)
    message = str(info.value)
    assert str(fake) in message and "127.0.0.1:" in message and "2 attempt(s)" in message
    assert "fake broker: cannot serve" in message


def test_busy_ports_are_retried_or_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        ports = iter([busy, free_port()])
        monkeypatch.setattr(stream.embedded_server, "free_port", lambda: next(ports))
        with EmbeddedKafka(tmp_path / "k") as kafka:
            assert kafka.port != busy
        with pytest.raises(EmbeddedServerError, match=f"127.0.0.1:{busy} exited"):
            EmbeddedRedis(tmp_path / "r", port=busy).start()
        assert (tmp_path / "r" / "server.log").is_file()  # kept for the user to read

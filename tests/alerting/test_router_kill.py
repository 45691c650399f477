"""``driftline alerts route`` as a real process, SIGKILLed mid-backlog and restarted.

The router runs as a subprocess against the broker and Redis and posts to a
slow local webhook receiver. While it works through a backlog of alerts it is
killed with SIGKILL three times — twice while the receiver holds a request,
once just after an answer was written, before the router could record it —
and restarted each time with the same configuration (so the same consumer
group); finally it drains the backlog and stops on SIGTERM.

What must hold:

* nothing is lost: every alert reached the receiver whole, was answered 200,
  and its outcome is recorded;
* no duplicate after a clean acknowledgement: an alert is delivered again only
  if its previous delivery was in flight when its router was killed — not
  answered, or answered less than ``IN_FLIGHT_S`` before the kill — so there
  is at most one duplicate per kill;
* the clean stop exits 0 with every offset committed.

Receiver times (request read, answer written) and kill times are all taken
with ``time.monotonic()`` in this process.

"A receiver that fails twice then succeeds gets the alert once" is
``test_router.py::test_retries_then_dead_letters``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from alerting.events import AlertEvent, Window, alert_id
from tests.alerting.receivers import Answer, HttpReceiver, die_with_parent
from tests.conftest import KAFKA_TEST_CONF

ALERTS = 60  # distinct alerts in the backlog
# when to kill: once the receiver holds request N+1, or once it has finished N answers
KILLS = ((12, "request"), (27, "answer"), (42, "request"))
DELAY_S = 0.03  # the receiver's time per request, so that kills land mid-backlog
IN_FLIGHT_S = 0.3  # an answer written this long before a kill must have been recorded
WAIT_S = 60.0  # deadline of each wait (a restart takes about 5 s)
# A SIGKILLed member leaves the group only when its session expires (then the
# next join round takes about half a session): 2 s makes a restart ~5 s, not ~12 s.
# A heartbeat missed on a busy machine only costs a rebalance, which the router survives.
ROUTER_KAFKA = {**KAFKA_TEST_CONF, "session.timeout.ms": "2000"}
ROOT = Path(__file__).resolve().parents[2]
ALERT_ID_HEADER = "X-Driftline-Alert-Id"  # read from the headers: a killed sender cuts the body
STOPPED = re.compile(
    r"alert router stopped: (\d+) alerts read, (\d+) delivered, (\d+) duplicates skipped, "
    r"(\d+) dead-lettered, (\d+) malformed"
)


def make_alert(start: int) -> AlertEvent:
    return AlertEvent(
        alert_id("churn", "feature_drift", "income", start),
        "churn",
        "3",
        Window(start, start + 60),
        "feature_drift",
        "psi",
        "income",
        0.31,
        0.1,
        "high",
        "firing",
        "b1",
        "churn: feature 'income' drifted",
        float(start + 61),
    )


def write_config(path: Path, tables: dict[str, dict[str, Any]], route: dict[str, Any]) -> Path:
    """Write a TOML configuration (values are strings or numbers: JSON spells them as TOML)."""
    lines = []
    for name, table in [*tables.items(), ("models.churn", {})]:
        lines += [f"[{name}]", *(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in table.items())]
    lines += ["[[routes]]", *(f"{k} = {json.dumps(v)}" for k, v in route.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class RouterProcess:
    """``driftline alerts route -c CONFIG`` as a subprocess, started again after each kill."""

    config: Path
    log: Path
    started: list[float] = field(default_factory=list)  # when each process was started
    kills: list[float] = field(default_factory=list)  # just before each SIGKILL
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("driftline")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "stream.cli"]
        with self.log.open("ab") as out:
            out.write(f"--- router {len(self.started)}\n".encode())
            out.flush()
            self.started.append(time.monotonic())
            self.proc = subprocess.Popen(
                [*cmd, "alerts", "route", "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                preexec_fn=die_with_parent,
            )

    def running(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            pytest.fail(f"the router is not running (exit status {code}):\n{self.output()}")
        return self.proc

    def kill(self) -> None:
        proc = self.running()
        self.kills.append(time.monotonic())
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL

    def terminate(self) -> int:
        proc = self.running()
        os.kill(proc.pid, signal.SIGTERM)
        return proc.wait(20)

    def close(self) -> None:
        """Kill the process if it still runs (the test failed)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def generation(self, t: float) -> int:
        """Which process (0 = the first) was running at ``t``."""
        return max(i for i, s in enumerate(self.started) if s <= t)


def wait(what: str, done: Callable[[], bool], router: RouterProcess) -> None:
    """Poll ``done`` until it holds; fail at once if the router exits, or after ``WAIT_S``."""
    end = time.monotonic() + WAIT_S
    while not done():
        router.running()
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}:\n{router.output()}")
        time.sleep(0.01)


def wait_for_kill_point(
    receiver: HttpReceiver, router: RouterProcess, count: int, moment: str
) -> None:
    """Return as soon as the receiver holds request ``count + 1`` or finished answer ``count``."""
    end = time.monotonic() + WAIT_S
    while True:
        try:
            if moment == "request":
                receiver.wait_for(count + 1, timeout=0.25)
            else:
                receiver.wait_for_answers(count, timeout=0.25)
            return
        except TimeoutError:
            router.running()
            if time.monotonic() > end:
                pytest.fail(f"timed out waiting for {moment} {count}:\n{router.output()}")


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver(delay=DELAY_S) as r:
        yield r


@pytest.mark.integration
def test_killed_router_loses_nothing_and_resends_only_in_flight(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: Any,
    key_prefix: str,
    unique_topic: Callable[..., str],
    receiver: HttpReceiver,
    tmp_path: Path,
) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = unique_topic("alerts", 2)
    config = write_config(
        tmp_path / "router.toml",
        {
            "kafka": {"bootstrap.servers": kafka_bootstrap, **ROUTER_KAFKA},
            "redis": {"url": redis_url, "prefix": key_prefix},
            "topics": {"alerts": topic, "dlq": unique_topic("dlq")},
            "worker": {"group_id": key_prefix, "poll_timeout": "100ms"},
        },
        {"sink": "webhook", "url": receiver.url + "/hook", "attempts": 3, "backoff": 0.01},
    )
    alerts = {e.alert_id: e for e in (make_alert(60 * i) for i in range(ALERTS))}
    assert len(alerts) == ALERTS
    produced: dict[int, int] = {}  # partition -> messages

    def on_delivery(err: Any, msg: Any) -> None:
        assert err is None, err
        produced[msg.partition()] = produced.get(msg.partition(), 0) + 1

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for event in alerts.values():
        producer.produce(topic, value=event.to_json(), key=event.alert_id, on_delivery=on_delivery)
    assert producer.flush(10) == 0

    def sent(aid: str) -> bool:
        return bool(redis_client.exists(f"{key_prefix}:alert:sent:webhook:{aid}"))

    router = RouterProcess(config, tmp_path / "router.log")
    t0 = time.monotonic()
    try:
        router.start()
        for count, moment in KILLS:
            wait_for_kill_point(receiver, router, count, moment)
            router.kill()
            router.start()
        wait("every alert delivered and recorded", lambda: all(map(sent, alerts)), router)
        drained = time.monotonic()
        assert router.terminate() == 0, router.output()
    finally:
        router.close()
    stopped = time.monotonic()

    # every request, including those cut off by a kill, has finished its answer
    answers = sorted(receiver.wait_for_answers(len(receiver.requests)), key=lambda a: a.received_at)
    by_id: dict[str, list[Answer]] = {}
    for a in answers:
        by_id.setdefault(a.request.headers[ALERT_ID_HEADER], []).append(a)
    gens = [router.generation(a.received_at) for a in answers]

    # each kill landed mid-backlog, after its router had delivered a few alerts
    for g, kill in enumerate(router.kills):
        assert gens.count(g) >= 5, (g, gens)
        seen = {a.request.headers[ALERT_ID_HEADER] for a in answers if a.received_at < kill}
        assert len(seen) < ALERTS, (g, len(seen))

    # nothing lost: every alert arrived whole, was answered 200 and recorded as delivered
    assert set(by_id) == set(alerts)
    assert all(a.status == 200 for a in answers)
    for aid, got in by_id.items():
        assert any(a.request.body == alerts[aid].to_json() for a in got), aid
        assert redis_client.hgetall(f"{key_prefix}:alert:outcome:{aid}") == {b"webhook": b"ok"}

    # delivered again only when in flight at its router's kill: one duplicate per kill at most
    blamed: list[int] = []
    for aid, got in by_id.items():
        for before, again in itertools.pairwise(got):
            gen = router.generation(before.received_at)
            assert gen < len(router.kills), f"{aid} delivered twice by the last router"
            assert router.generation(again.received_at) > gen, f"{aid} resent by one router"
            kill = router.kills[gen]
            if before.answered_at is not None:
                early = kill - before.answered_at
                assert early < IN_FLIGHT_S, f"{aid} resent though answered {early:.3f} s before"
            blamed.append(gen)
    assert len(blamed) == len(set(blamed)) <= len(router.kills), blamed

    # the clean stop: its counts match the receiver's, and every offset is committed
    stats = STOPPED.search(router.output())
    assert stats is not None, router.output()
    assert int(stats[2]) == gens.count(len(router.kills)), stats[0]  # delivered by the last
    assert (stats[4], stats[5]) == ("0", "0"), stats[0]
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"{key_prefix}-router"})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in produced], timeout=10)
    finally:
        consumer.close()
    assert {tp.partition: tp.offset for tp in committed} == produced
    print(
        f"\n{len(answers)} deliveries of {ALERTS} alerts, {len(blamed)} resent after "
        f"{len(router.kills)} kills at {', '.join(f'{k - t0:.1f}' for k in router.kills)} s; "
        f"drained at {drained - t0:.1f} s, stopped at {stopped - t0:.1f} s; {stats[0]}"
    )

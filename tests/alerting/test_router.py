"""The alert router: route parsing and matching, and delivery against a real broker, Redis and
HTTP receiver (dedupe, retries, dead letters, restart)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from alerting.events import AlertEvent, Window, alert_id
from alerting.router import AlertRouter
from alerting.routes import parse_routes, select
from alerting.sinks.webhook import SIGNATURE_HEADER, sign
from stream.config import Config, parse_config
from stream.exceptions import ConfigError
from tests.alerting.receivers import HttpReceiver
from tests.conftest import KAFKA_TEST_CONF

SECRET = "s3cret"


def make_alert(
    model: str = "churn", severity: str = "high", rule: str = "feature_drift", start: int = 0
) -> AlertEvent:
    return AlertEvent(
        alert_id(model, rule, "income", start),
        model,
        "3",
        Window(start, start + 60),
        rule,
        "psi",
        "income",
        0.31,
        0.1,
        severity,  # type: ignore[arg-type]
        "firing",
        "b1",
        f"{model}: feature 'income' drifted",
        float(start + 61),
    )


# -- parsing and matching (no servers) -----------------------------------------------------


def test_parse_and_select_routes() -> None:
    errors: list[str] = []
    routes = parse_routes(
        [
            {"match": {"severity": ["high", "critical"], "model": "churn"}, "sink": "webhook",
             "url": "http://h/x", "secret": "topsecret", "continue": True},
            {"match": {"rule": "volume"}, "sink": "webhook", "url": "http://h/y"},
            {"sink": "log"},
        ],
        errors,
    )  # fmt: skip
    assert errors == []
    assert [r.name for r in routes] == ["webhook-0", "webhook-1", "log"]
    assert "topsecret" not in repr(routes[0])
    assert [r.name for r in select(routes, make_alert())] == ["webhook-0", "log"]
    assert [r.name for r in select(routes, make_alert(severity="low"))] == ["log"]
    assert [r.name for r in select(routes, make_alert(rule="volume"))] == ["webhook-0", "webhook-1"]
    assert parse_routes(None, errors) == () and errors == []


def test_route_errors_name_key_and_value() -> None:
    data = {
        "kafka": {"bootstrap.servers": "k:9092"},
        "models": {"m": {}},
        "routes": [
            {"sink": "pager"},
            {"sink": "webhook", "match": {"severity": "urgent"}, "colour": "red"},
            {"sink": "email", "host": "smtp", "sender": "a@b", "recipients": [], "port": 0},
            {"sink": "log", "name": "x"},
            {"sink": "log", "name": "x", "attempts": 0},
        ],
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    text = str(info.value)
    for expected in (
        'routes[0].sink: expected one of log, webhook, slack, email, alertmanager, got "pager"',
        "routes[1].match.severity: expected one or more of low, medium, high, critical, "
        'got "urgent"',
        'routes[1].url: required for sink "webhook"',
        "routes[1].colour: unknown key",
        "routes[2].recipients: expected an address or a non-empty list of addresses, got []",
        "routes[2].port: expected a port number from 1 to 65535, got 0",
        "routes[4].attempts: expected an integer ≥ 1, got 0",
    ):
        assert expected in text, text
    cfg = parse_config({"kafka": {"bootstrap.servers": "k:9092"}, "models": {"m": {}}}, env={})
    assert cfg.routes == ()
    bad = {"kafka": {"bootstrap.servers": "k:9092"}, "models": {"m": {}}, "routes": {"sink": "log"}}
    with pytest.raises(ConfigError, match=r"routes: expected an array of tables"):
        parse_config(bad, env={})


# -- integration ------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as r:
        yield r


@pytest.fixture
def setup(
    kafka_bootstrap: str, redis_url: str, key_prefix: str, unique_topic: Callable[..., str]
) -> Callable[..., Config]:
    alerts, dlq = unique_topic("alerts"), unique_topic("dlq")

    def make(routes: list[dict[str, Any]], group: str = key_prefix) -> Config:
        return parse_config(
            {
                "kafka": {"bootstrap.servers": kafka_bootstrap, **KAFKA_TEST_CONF},
                "redis": {"url": redis_url, "prefix": key_prefix},
                "topics": {"alerts": alerts, "dlq": dlq},
                "worker": {"group_id": group, "poll_timeout": "100ms"},
                "models": {"churn": {}},
                "routes": routes,
            },
            env={},
        )

    return make


def produce(cfg: Config, *alerts: AlertEvent) -> None:
    from confluent_kafka import Producer

    producer = Producer(cfg.producer_conf())
    for a in alerts:
        producer.produce(cfg.topics.alerts, value=a.to_json(), key=a.model.encode())
    assert producer.flush(10) == 0


def run_until(router: AlertRouter, done: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run ``router`` in a thread until ``done()`` (then a short grace period) or ``timeout``."""
    thread = threading.Thread(target=router.run, kwargs={"max_seconds": timeout}, daemon=True)
    thread.start()
    end = time.monotonic() + timeout
    while time.monotonic() < end and not done():
        time.sleep(0.05)
    time.sleep(0.3)  # anything that should not arrive has a chance to
    router.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert done(), router.stats


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "sink": "webhook",
        "url": url,
        "secret": SECRET,
        "attempts": 3,
        "backoff": 0.01,
        **extra,
    }


@pytest.mark.integration
def test_routes_by_severity_and_model_signs_and_dedupes(
    setup: Callable[..., Config],
    receiver: HttpReceiver,
    redis_client: Any,
    key_prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = setup(
        [
            webhook(receiver.url + "/hook", match={"severity": ["high", "critical"],
                    "model": "churn"}),
            {"sink": "log"},
        ]
    )  # fmt: skip
    high, low, other = make_alert(), make_alert(severity="low", start=60), make_alert("fraud")
    produce(cfg, high, low, other, high)  # the same alert id twice
    router = AlertRouter(cfg)
    run_until(router, lambda: router.stats.consumed >= 4)
    got = receiver.requests
    assert len(got) == 1
    assert got[0].path == "/hook"
    assert got[0].headers[SIGNATURE_HEADER] == sign(got[0].body, SECRET)
    assert got[0].json()["alert_id"] == high.alert_id
    assert router.stats.delivered == 3 and router.stats.duplicates == 1
    out = capsys.readouterr().out
    assert f"id={low.alert_id}" in out and f"id={other.alert_id}" in out
    assert f"id={high.alert_id}" not in out  # first match wins
    outcome = redis_client.hgetall(f"{key_prefix}:alert:outcome:{high.alert_id}")
    assert outcome == {b"webhook": b"ok"}
    assert redis_client.ttl(f"{key_prefix}:alert:sent:webhook:{high.alert_id}") > 86400


@pytest.mark.integration
def test_retries_then_dead_letters(
    setup: Callable[..., Config], receiver: HttpReceiver, redis_client: Any, key_prefix: str
) -> None:
    from confluent_kafka import Consumer, TopicPartition

    with HttpReceiver(status=503) as broken:
        cfg = setup(
            [
                webhook(receiver.url, match={"severity": "high"}),
                webhook(broken.url, match={"severity": "critical"}, name="broken"),
            ]
        )
        receiver.fail(2, status=500)
        flaky, doomed = make_alert(), make_alert(severity="critical", start=60)
        produce(cfg, flaky, doomed)
        router = AlertRouter(cfg)
        run_until(router, lambda: router.stats.consumed >= 2)
        assert len(broken.requests) == 3  # every attempt used
    assert len(receiver.requests) == 3  # two 500s, then delivered once
    assert router.stats.delivered == 1 and router.stats.failed == 1
    outcome = redis_client.hget(f"{key_prefix}:alert:outcome:{doomed.alert_id}", "broken")
    assert outcome.startswith(b"failed: HTTP 503")
    consumer = Consumer(cfg.consumer_conf(**{"group.id": f"{key_prefix}-dlq"}))
    consumer.assign([TopicPartition(cfg.topics.dlq, 0, 0)])
    try:
        msg = None
        end = time.monotonic() + 10
        while msg is None and time.monotonic() < end:
            m = consumer.poll(0.2)
            msg = m if m is not None and m.error() is None else None
    finally:
        consumer.close()
    assert msg is not None
    headers = {k: v.decode() for k, v in msg.headers() or []}
    assert headers["reason"] == "undeliverable" and headers["sink"] == "broken"
    assert headers["error"].startswith("HTTP 503") and headers["alert_id"] == doomed.alert_id
    assert AlertEvent.from_json(msg.value()) == doomed


@pytest.mark.integration
def test_restart_resends_nothing(
    setup: Callable[..., Config], receiver: HttpReceiver, key_prefix: str
) -> None:
    cfg = setup([webhook(receiver.url)])
    first, second, third = make_alert(), make_alert(start=60), make_alert(start=120)
    produce(cfg, first, third)
    router = AlertRouter(cfg)
    run_until(router, lambda: router.stats.consumed >= 2)
    assert len(receiver.requests) == 2
    produce(cfg, second)
    again = AlertRouter(cfg)  # same group: resumes after the committed offsets
    run_until(again, lambda: again.stats.consumed >= 1)
    assert again.stats.consumed == 1 and again.stats.delivered == 1
    # as if the commits were lost (killed before committing): Redis still dedupes
    lost = AlertRouter(setup([webhook(receiver.url)], group=f"{key_prefix}-lost"))
    run_until(lost, lambda: lost.stats.consumed >= 3)
    assert lost.stats.duplicates == 3 and lost.stats.delivered == 0
    assert [r.json()["alert_id"] for r in receiver.requests] == [
        first.alert_id,
        third.alert_id,
        second.alert_id,
    ]


@pytest.mark.integration
def test_malformed_alert_is_skipped_and_committed(
    setup: Callable[..., Config], capsys: pytest.CaptureFixture[str]
) -> None:
    from confluent_kafka import Producer

    cfg = setup([])  # no routes: the default log route
    producer = Producer(cfg.producer_conf())
    producer.produce(cfg.topics.alerts, value=b"not json")
    producer.produce(cfg.topics.alerts, value=make_alert().to_json())
    assert producer.flush(10) == 0
    router = AlertRouter(cfg)
    run_until(router, lambda: router.stats.consumed >= 2)
    assert router.stats.malformed == 1 and router.stats.delivered == 1
    assert f"id={make_alert().alert_id}" in capsys.readouterr().out

"""Alert sinks against real local receivers (no transport mocks)."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import hashlib
import hmac
import io
import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.events import AlertEvent, alert_id
from alerting.sinks import (
    AlertmanagerSink,
    Delivery,
    EmailSink,
    LogSink,
    RetryPolicy,
    Sink,
    SinkError,
    SlackSink,
    WebhookSink,
    retry,
)
from alerting.sinks.email import EMAIL_RETRY
from tests.alerting.receivers import (
    Alertmanager,
    HttpReceiver,
    alertmanager_binary,
    free_port,
    smtp_server,
)

START, END = 1_700_000_000, 1_700_000_300
SECRET = "s3cret"


def make_alert(
    status: str = "firing", severity: str = "high", feature: str | None = "income"
) -> AlertEvent:
    return AlertEvent.from_dict(
        {
            "alert_id": alert_id("churn", "feature_drift", feature, START, status=status),  # type: ignore[arg-type]
            "model": "churn",
            "version": "7",
            "window": {"start": START, "end": END},
            "rule": "feature_drift",
            "metric": "psi",
            "feature": feature,
            "value": 0.31,
            "threshold": 0.1,
            "severity": severity,
            "status": status,
            "baseline": "b-2026-01",
            "message": f"churn: feature {feature!r} drifted vs baseline (psi 0.31 ≥ 0.1)",
            "emitted_at": END + 12.5,
        }
    )


class FakeSleep:
    """Records the delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class RecordingRng:
    """A seeded ``random.random`` that remembers what it returned."""

    def __init__(self, seed: int = 7) -> None:
        self._rng = random.Random(seed)
        self.values: list[float] = []

    def __call__(self) -> float:
        value = self._rng.random()
        self.values.append(value)
        return value


def email_retry(sleep: Callable[[float], None]) -> RetryPolicy:
    """Email's default policy (3 attempts) with a fake sleep."""
    return dataclasses.replace(EMAIL_RETRY, sleep=sleep)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as r:
        yield r


# --- the protocol and the retry helper -------------------------------------------------------


def test_every_sink_satisfies_the_protocol() -> None:
    sinks: list[Sink] = [
        LogSink(io.StringIO()),
        WebhookSink("http://127.0.0.1:1/"),
        SlackSink("http://127.0.0.1:1/"),
        EmailSink("127.0.0.1", 25, "a@example.org", ["b@example.org"]),
        AlertmanagerSink("http://127.0.0.1:1"),
    ]
    for sink in sinks:
        assert isinstance(sink, Sink)
        assert sink.name
        sink.flush()
        sink.close()
    assert [s.name for s in sinks] == ["log", "webhook", "slack", "email", "alertmanager"]


def test_retry_backoff_without_jitter_doubles_and_caps() -> None:
    sleep = FakeSleep()

    def always_503() -> int:
        raise SinkError("HTTP 503", retryable=True, status=503)

    d = retry(
        always_503,
        RetryPolicy(attempts=6, base_delay=0.5, max_delay=3.0, sleep=sleep),
        jitter=False,
    )
    assert d == Delivery(ok=False, attempts=6, error="HTTP 503", status=503)
    assert sleep.delays == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_retry_stops_at_a_fatal_error_and_lets_bugs_through() -> None:
    sleep = FakeSleep()
    calls: list[int] = []

    def fatal() -> int:
        calls.append(1)
        raise SinkError("HTTP 404", retryable=False, status=404)

    assert retry(fatal, RetryPolicy(sleep=sleep)) == Delivery(False, 1, "HTTP 404", 404)
    assert calls == [1] and sleep.delays == []

    def bug() -> int:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        retry(bug, RetryPolicy(sleep=sleep))
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="non-negative"):
        RetryPolicy(base_delay=-1.0)
    with pytest.raises(ValueError, match="non-negative"):
        RetryPolicy(max_delay=-1.0)


# --- webhook ---------------------------------------------------------------------------------


def test_webhook_delivers_once_with_a_valid_signature(receiver: HttpReceiver) -> None:
    alert = make_alert()
    sink = WebhookSink(receiver.url + "/hook", secret=SECRET, headers={"Authorization": "Bearer t"})
    delivery = sink.send(alert)
    assert delivery == Delivery(ok=True, attempts=1, status=200)
    [req] = receiver.requests
    assert (req.method, req.path) == ("POST", "/hook")
    assert req.body == alert.to_json()
    assert AlertEvent.from_json(req.body) == alert
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["X-Driftline-Alert-Id"] == alert.alert_id
    assert req.headers["Authorization"] == "Bearer t"
    expected = hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    signature = req.headers["X-Driftline-Signature"]
    assert hmac.compare_digest(signature, f"sha256={expected}")
    wrong = hmac.new(b"other", req.body, hashlib.sha256).hexdigest()
    assert signature != f"sha256={wrong}"


def test_webhook_without_secret_sends_no_signature(receiver: HttpReceiver) -> None:
    assert WebhookSink(receiver.url).send(make_alert()).ok
    [req] = receiver.requests
    assert "X-Driftline-Signature" not in req.headers


def test_webhook_retries_500s_with_growing_jittered_backoff(receiver: HttpReceiver) -> None:
    receiver.fail(3, status=500)
    sleep, rng = FakeSleep(), RecordingRng()
    sink = WebhookSink(
        receiver.url,
        secret=SECRET,
        retry=RetryPolicy(attempts=5, base_delay=0.5, sleep=sleep, rng=rng),
    )
    delivery = sink.send(make_alert())
    assert delivery == Delivery(ok=True, attempts=4, status=200)
    reqs = receiver.requests
    assert len(reqs) == 4
    assert len({r.body for r in reqs}) == 1  # the same body and id on every try
    assert len({r.headers["X-Driftline-Alert-Id"] for r in reqs}) == 1
    caps = [0.5, 1.0, 2.0]
    assert len(sleep.delays) == 3
    for delay, cap, u in zip(sleep.delays, caps, rng.values, strict=True):
        assert 0 <= delay < cap
        assert delay == pytest.approx(u * cap)  # full jitter over the capped exponential
    assert len(set(rng.values)) == 3

    # with the random source near its top, the delays show the exponential growth
    receiver.fail(3, status=502)
    sleep = FakeSleep()
    sink = WebhookSink(
        receiver.url, retry=RetryPolicy(attempts=5, base_delay=0.5, sleep=sleep, rng=lambda: 0.99)
    )
    assert sink.send(make_alert()).attempts == 4
    assert sleep.delays == pytest.approx([0.495, 0.99, 1.98])
    assert sleep.delays == sorted(sleep.delays)


def test_webhook_does_not_retry_4xx(receiver: HttpReceiver) -> None:
    receiver.fail(1, status=400, body=b"bad payload")
    sleep = FakeSleep()
    delivery = WebhookSink(receiver.url, retry=RetryPolicy(attempts=5, sleep=sleep)).send(
        make_alert()
    )
    assert not delivery.ok
    assert (delivery.attempts, delivery.status) == (1, 400)
    assert (
        delivery.error is not None and "400" in delivery.error and "bad payload" in delivery.error
    )
    assert len(receiver.requests) == 1 and sleep.delays == []


def test_webhook_gives_up_after_attempts_with_the_last_error(receiver: HttpReceiver) -> None:
    receiver.fail(2, status=500)
    receiver.fail(1, status=503, body=b"last")
    sleep = FakeSleep()
    delivery = WebhookSink(receiver.url, retry=RetryPolicy(attempts=3, sleep=sleep)).send(
        make_alert()
    )
    assert not delivery.ok
    assert (delivery.attempts, delivery.status) == (3, 503)
    assert delivery.error is not None and "503" in delivery.error and "last" in delivery.error
    assert len(receiver.requests) == 3 and len(sleep.delays) == 2


def test_webhook_honours_retry_after_on_429(receiver: HttpReceiver) -> None:
    receiver.fail(1, status=429, headers={"Retry-After": "7"})
    sleep = FakeSleep()
    sink = WebhookSink(receiver.url, retry=RetryPolicy(sleep=sleep, rng=lambda: 0.0))
    assert sink.send(make_alert()) == Delivery(ok=True, attempts=2, status=200)
    assert sleep.delays == [7.0]


def test_webhook_retries_timeouts(receiver: HttpReceiver) -> None:
    receiver.fail(1, status=200, delay=1.0)
    sleep = FakeSleep()
    sink = WebhookSink(receiver.url, timeout=0.2, retry=RetryPolicy(attempts=3, sleep=sleep))
    delivery = sink.send(make_alert())
    assert delivery == Delivery(ok=True, attempts=2, status=200)
    assert len(sleep.delays) == 1


def test_webhook_retries_connection_errors_then_reports_them() -> None:
    sleep = FakeSleep()
    url = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    delivery = WebhookSink(url, retry=RetryPolicy(attempts=3, sleep=sleep)).send(make_alert())
    assert not delivery.ok and delivery.attempts == 3 and delivery.status is None
    assert delivery.error is not None and "refused" in delivery.error.lower()
    assert len(sleep.delays) == 2


def test_webhook_does_not_follow_redirects(receiver: HttpReceiver) -> None:
    receiver.fail(1, status=302, headers={"Location": "http://127.0.0.1:1/elsewhere"})
    delivery = WebhookSink(receiver.url, retry=RetryPolicy(sleep=FakeSleep())).send(make_alert())
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 1, 302)
    assert len(receiver.requests) == 1


# --- Slack -----------------------------------------------------------------------------------


def test_slack_payload_shape(receiver: HttpReceiver) -> None:
    sink = SlackSink(receiver.url + "/services/T/B/X", retry=RetryPolicy(sleep=FakeSleep()))
    assert sink.send(make_alert()).ok
    assert sink.send(make_alert(status="resolved", feature="<b>&co")).ok
    firing, resolved = (r.json() for r in receiver.wait_for(2))
    assert receiver.requests[0].headers["Content-Type"] == "application/json"

    assert set(firing) == {"text", "blocks", "attachments"}
    assert (
        firing["text"] == ":rotating_light: [driftline HIGH firing] churn: feature 'income' drifted"
    )
    header, section, context = firing["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": firing["text"]},
    }
    assert section["type"] == "section"
    assert [f["type"] for f in section["fields"]] == ["mrkdwn"] * 6
    texts = [f["text"] for f in section["fields"]]
    assert texts == [
        "*Model*\nchurn (v7)",
        "*Feature*\nincome",
        "*Rule*\nfeature_drift (psi)",
        "*Value vs threshold*\n0.31 vs 0.1",
        "*Window*\n2023-11-14 22:13:20Z to 2023-11-14 22:18:20Z",
        "*Status*\nfiring (high)",
    ]
    assert context["type"] == "context"
    assert make_alert().alert_id in context["elements"][0]["text"]
    assert firing["attachments"] == [
        {"color": "#E01E5A", "text": "churn: feature 'income' drifted vs baseline (psi 0.31 ≥ 0.1)"}
    ]

    assert resolved["text"].startswith(":white_check_mark: [driftline HIGH resolved]")
    assert resolved["attachments"][0]["color"] == "#2EB67D"
    assert "*Feature*\n&lt;b&gt;&amp;co" in [f["text"] for f in resolved["blocks"][1]["fields"]]


def test_slack_retries_rate_limits(receiver: HttpReceiver) -> None:
    receiver.fail(2, status=429, headers={"Retry-After": "1"})
    sleep = FakeSleep()
    delivery = SlackSink(receiver.url, retry=RetryPolicy(sleep=sleep, rng=lambda: 0.0)).send(
        make_alert()
    )
    assert delivery == Delivery(ok=True, attempts=3, status=200)
    assert sleep.delays == [1.0, 1.0]


# --- log -------------------------------------------------------------------------------------


def test_log_sink_text_and_json_lines() -> None:
    out = io.StringIO()
    sink = LogSink(out)
    assert sink.send(make_alert()) == Delivery(ok=True, attempts=1)
    line = out.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    assert line.startswith("[driftline HIGH firing] churn: feature 'income' drifted value=0.31")
    assert "window=2023-11-14T22:13:20Z/2023-11-14T22:18:20Z" in line

    out = io.StringIO()
    sink = LogSink(out, json=True)
    sink.send(make_alert())
    sink.send(make_alert(status="resolved"))
    sink.close()
    lines = out.getvalue().splitlines()
    assert [AlertEvent.from_json(x) for x in lines] == [make_alert(), make_alert(status="resolved")]


def test_log_sink_reports_a_closed_stream() -> None:
    out = io.StringIO()
    out.close()
    delivery = LogSink(out).send(make_alert())
    assert not delivery.ok and delivery.error is not None


def test_log_sink_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    LogSink(json=True).send(make_alert())
    assert json.loads(capsys.readouterr().out)["alert_id"] == make_alert().alert_id


# --- email -----------------------------------------------------------------------------------

NO_AIOSMTPD = "aiosmtpd (a local SMTP server for tests; dev extra) is not installed"


def test_email_through_a_real_smtp_server() -> None:
    pytest.importorskip("aiosmtpd", reason=NO_AIOSMTPD)
    with smtp_server() as (handler, port):
        sink = EmailSink("127.0.0.1", port, "driftline@example.org", ["ops@example.org"])
        delivery = sink.send(make_alert())
    assert delivery == Delivery(ok=True, attempts=1)
    [(mail_from, rcpt_tos, raw)] = handler.messages
    assert mail_from == "driftline@example.org" and rcpt_tos == ["ops@example.org"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "[driftline HIGH firing] churn: feature 'income' drifted"
    assert msg["From"] == "driftline@example.org" and msg["To"] == "ops@example.org"
    assert msg["X-Driftline-Alert-Id"] == make_alert().alert_id
    assert msg.get_content_type() == "text/plain"
    body = msg.get_content().replace("\r\n", "\n")  # SMTP line endings
    assert body.startswith("churn: feature 'income' drifted vs baseline (psi 0.31 ≥ 0.1)\n")
    for line in (
        "Model:     churn (version 7)",
        "Feature:   income",
        "Value:     0.31 (threshold 0.1)",
        "Window:    2023-11-14T22:13:20Z to 2023-11-14T22:18:20Z",
        f"Alert id:  {make_alert().alert_id}",
    ):
        assert line in body


def test_email_retries_4xx_but_not_5xx() -> None:
    pytest.importorskip("aiosmtpd", reason=NO_AIOSMTPD)
    with smtp_server() as (handler, port):
        sleep = FakeSleep()
        sink = EmailSink(
            "127.0.0.1", port, "d@example.org", ["ops@example.org"], retry=email_retry(sleep)
        )
        handler.rcpt_answers = ["451 4.3.0 Try again later"]
        assert sink.send(make_alert()) == Delivery(ok=True, attempts=2)
        assert len(sleep.delays) == 1 and len(handler.messages) == 1

        handler.rcpt_answers = ["550 5.1.1 No such user"]
        delivery = sink.send(make_alert(status="resolved"))
        assert (delivery.ok, delivery.attempts, delivery.status) == (False, 1, 550)
        assert delivery.error is not None and "No such user" in delivery.error
        assert len(handler.messages) == 1 and len(sleep.delays) == 1


def test_email_partial_refusal_is_delivered_with_a_note() -> None:
    pytest.importorskip("aiosmtpd", reason=NO_AIOSMTPD)
    with smtp_server() as (handler, port):
        sink = EmailSink(
            "127.0.0.1", port, "d@example.org", ["gone@example.org", "ops@example.org"]
        )
        handler.rcpt_answers = ["550 5.1.1 No such user"]
        delivery = sink.send(make_alert())
    assert delivery.ok and delivery.error is not None and "gone@example.org" in delivery.error
    [(_, rcpt_tos, _)] = handler.messages
    assert rcpt_tos == ["ops@example.org"]


def test_email_connection_refused_is_retried() -> None:
    sleep = FakeSleep()
    sink = EmailSink(
        "127.0.0.1", free_port(), "d@example.org", ["o@example.org"], retry=email_retry(sleep)
    )
    delivery = sink.send(make_alert())
    assert not delivery.ok and delivery.attempts == 3 and len(sleep.delays) == 2


# --- Alertmanager ----------------------------------------------------------------------------

LABELS = {
    "alertname": "feature_drift",
    "model": "churn",
    "feature": "income",
    "rule": "feature_drift",
}


def test_alertmanager_posts_the_v2_api_shape(receiver: HttpReceiver) -> None:
    sink = AlertmanagerSink(receiver.url + "/", retry=RetryPolicy(sleep=FakeSleep()))
    assert sink.send(make_alert()).ok
    assert sink.send(make_alert(status="resolved")).ok
    assert sink.send(make_alert(feature=None)).ok
    firing, resolved, model_level = receiver.wait_for(3)
    assert {r.path for r in (firing, resolved, model_level)} == {"/api/v2/alerts"}
    annotations = {
        "summary": "churn: feature 'income' drifted vs baseline (psi 0.31 ≥ 0.1)",
        "severity": "high",
        "value": "0.31",
        "threshold": "0.1",
        "window_start": "2023-11-14T22:13:20Z",
        "window_end": "2023-11-14T22:18:20Z",
        "metric": "psi",
        "alert_id": make_alert().alert_id,
    }
    assert firing.json() == [
        {"labels": LABELS, "annotations": annotations, "startsAt": "2023-11-14T22:18:20Z"}
    ]
    assert resolved.json() == [
        {
            "labels": LABELS,  # the same labels: Alertmanager matches the two
            "annotations": {
                **annotations,
                "summary": annotations["summary"],
                "alert_id": make_alert(status="resolved").alert_id,
            },
            "startsAt": "2023-11-14T22:13:20Z",
            "endsAt": "2023-11-14T22:18:20Z",
        }
    ]
    assert "feature" not in model_level.json()[0]["labels"]


def test_alertmanager_firing_ttl_sets_ends_at(receiver: HttpReceiver) -> None:
    assert AlertmanagerSink(receiver.url, firing_ttl=900).send(make_alert()).ok
    [req] = receiver.requests
    assert req.json()[0]["endsAt"] == "2023-11-14T22:33:32.500000Z"


def _poll(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_alertmanager_real_binary(tmp_path: Path, receiver: HttpReceiver) -> None:
    binary = alertmanager_binary()
    if binary is None:
        pytest.skip(
            "Alertmanager not installed (Debian package prometheus-alertmanager); "
            "the API shape is checked against a local receiver instead"
        )
    now = time.time()
    start = int(now) - 120
    firing = AlertEvent.from_dict(
        {**make_alert().to_dict(), "window": {"start": start, "end": start + 60}}
    )
    resolved = AlertEvent.from_dict(
        {
            **make_alert(status="resolved").to_dict(),
            "window": {"start": start + 60, "end": start + 120},
        }
    )
    with Alertmanager(binary, tmp_path, receiver.url + "/notify") as am:
        sink = AlertmanagerSink(am.url, retry=RetryPolicy(sleep=FakeSleep()))
        assert sink.send(firing) == Delivery(ok=True, attempts=1, status=200)
        active = _poll(am.alerts)
        assert [a["labels"] for a in active] == [LABELS]
        assert active[0]["annotations"]["alert_id"] == firing.alert_id
        note = receiver.wait_for(1, timeout=15)[0]
        assert note.json()["status"] == "firing"
        assert note.json()["alerts"][0]["labels"] == LABELS

        assert sink.send(resolved).ok
        assert _poll(lambda: not am.alerts())  # matched by labels: no longer active
        notes = receiver.wait_for(2, timeout=15)
        assert notes[1].json()["status"] == "resolved"
        assert notes[1].json()["alerts"][0]["labels"] == LABELS

        bad = AlertmanagerSink(am.url + "/nope", retry=RetryPolicy(sleep=FakeSleep())).send(firing)
        assert (bad.ok, bad.attempts, bad.status) == (False, 1, 404)

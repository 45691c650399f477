"""Post alerts to a Slack incoming webhook.

The payload has a ``text`` (the notification and fallback line), ``blocks``
(a header with the severity emoji and status, then fields: model, feature,
rule, value vs threshold, window, alert id) and one ``attachments`` entry
whose ``color`` marks the severity (green when resolved) and whose text is
the alert's message. Slack answers 429 with ``Retry-After`` when rate
limited: that and 5xx are retried with backoff; 4xx (``invalid_payload``,
``no_service``) are not.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from alerting.events import AlertEvent
from alerting.sinks.base import DEFAULT_RETRY, Delivery, HttpPoster, RetryPolicy, headline

__all__ = ["COLOURS", "EMOJI", "SlackSink", "slack_payload"]

EMOJI: Mapping[str, str] = {
    "low": ":information_source:",
    "medium": ":warning:",
    "high": ":rotating_light:",
    "critical": ":fire:",
    "resolved": ":white_check_mark:",
}
COLOURS: Mapping[str, str] = {
    "low": "#439FE0",
    "medium": "#ECB22E",
    "high": "#E01E5A",
    "critical": "#8B0000",
    "resolved": "#2EB67D",
}


def _escape(text: str) -> str:
    """Slack's mrkdwn escaping of ``&``, ``<`` and ``>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def slack_payload(alert: AlertEvent) -> dict[str, Any]:
    """The JSON object posted for ``alert``."""
    key = "resolved" if alert.status == "resolved" else alert.severity
    title = f"{EMOJI[key]} {headline(alert)}"
    fields = [
        ("Model", alert.model + (f" (v{alert.version})" if alert.version else "")),
        ("Feature", alert.feature or "-"),
        ("Rule", f"{alert.rule} ({alert.metric})"),
        ("Value vs threshold", f"{_num(alert.value)} vs {_num(alert.threshold)}"),
        ("Window", f"{_iso(alert.window.start)} to {_iso(alert.window.end)}"),
        ("Status", f"{alert.status} ({alert.severity})"),
    ]
    return {
        "text": _escape(title),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}*\n{_escape(value)}"}
                    for name, value in fields
                ],
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"alert id `{alert.alert_id}`"}],
            },
        ],
        "attachments": [{"color": COLOURS[key], "text": _escape(alert.message)}],
    }


class SlackSink:
    """Post alerts to a Slack incoming-webhook URL.

    Args:
        webhook_url: the incoming webhook (``https://hooks.slack.com/services/...``).
        timeout: seconds per try.
        retry: how failed tries are retried (:class:`~alerting.sinks.base.RetryPolicy`).
        name: the sink's name.
    """

    def __init__(
        self,
        webhook_url: str,
        timeout: float = 5.0,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        name: str = "slack",
    ) -> None:
        self.name = name
        self._http = HttpPoster(webhook_url, timeout, None, retry)

    def send(self, alert: AlertEvent) -> Delivery:
        """Post one alert, retrying retryable failures."""
        return self._http.post(orjson.dumps(slack_payload(alert)))

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """Nothing to release."""

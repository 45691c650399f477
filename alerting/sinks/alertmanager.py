"""Post alerts to Prometheus Alertmanager's API (``POST {url}/api/v2/alerts``).

Each alert becomes a list with one Alertmanager alert. Its labels identify it
and stay the same between the firing and the resolved event, so Alertmanager
matches them: ``alertname`` (the rule), ``model``, ``feature`` (only when set)
and ``rule``. The severity is an annotation, not a label: it can change
between windows (a drift's tier), which would make Alertmanager see a new
alert and never resolve the old one. Annotations carry ``summary`` (the
message), ``severity``, ``value``, ``threshold``, ``window_start``,
``window_end``, ``metric`` and ``alert_id``. ``startsAt`` is the window end
(RFC 3339, UTC); a resolved event also sets ``endsAt`` (the window end) with
``startsAt`` the window start, so Alertmanager marks the alert resolved. A
firing alert without ``endsAt`` resolves by itself after Alertmanager's
``resolve_timeout`` (5 min by default) unless sent again: set ``firing_ttl``
to a few window lengths when windows are longer than that.

Example:
    >>> from alerting.events import AlertEvent, Window
    >>> alert = AlertEvent("89109830cd6dbb92613964e0", "churn", None, Window(0, 60),
    ...     "feature_drift", "psi", "income", 0.31, 0.1, "high", "firing", None,
    ...     "churn: feature 'income' drifted", 61.0)
    >>> am = alertmanager_alerts(alert)[0]
    >>> am["labels"], am["startsAt"]
    ({'alertname': 'feature_drift', 'model': 'churn', 'feature': 'income', \
'rule': 'feature_drift'}, '1970-01-01T00:01:00Z')
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from alerting.events import AlertEvent
from alerting.sinks.base import DEFAULT_RETRY, Delivery, HttpPoster, RetryPolicy

__all__ = ["AlertmanagerSink", "alertmanager_alerts", "rfc3339"]


def rfc3339(ts: float) -> str:
    """Epoch seconds as RFC 3339 in UTC (``Z``), as Alertmanager expects."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def alertmanager_alerts(alert: AlertEvent, firing_ttl: float | None = None) -> list[dict[str, Any]]:
    """The JSON list posted for ``alert`` (see the module docstring)."""
    labels = {"alertname": alert.rule, "model": alert.model}
    if alert.feature is not None:
        labels["feature"] = alert.feature
    labels["rule"] = alert.rule
    annotations = {
        "summary": alert.message,
        "severity": alert.severity,
        "value": _num(alert.value),
        "threshold": _num(alert.threshold),
        "window_start": rfc3339(alert.window.start),
        "window_end": rfc3339(alert.window.end),
        "metric": alert.metric,
        "alert_id": alert.alert_id,
    }
    out: dict[str, Any] = {"labels": labels, "annotations": annotations}
    if alert.status == "resolved":
        out["startsAt"] = rfc3339(alert.window.start)
        out["endsAt"] = rfc3339(alert.window.end)
    else:
        out["startsAt"] = rfc3339(alert.window.end)
        if firing_ttl is not None:
            out["endsAt"] = rfc3339(max(alert.emitted_at, alert.window.end) + firing_ttl)
    return [out]


class AlertmanagerSink:
    """Post alerts to Alertmanager (``{url}/api/v2/alerts``).

    Args:
        url: Alertmanager's base URL, e.g. ``http://alertmanager:9093``.
        timeout: seconds per try.
        headers: extra headers (e.g. ``Authorization`` behind a proxy).
        firing_ttl: seconds after which a firing alert that is not sent again
            resolves; ``None`` leaves it to Alertmanager's ``resolve_timeout``.
        retry: how failed tries are retried (:class:`~alerting.sinks.base.RetryPolicy`).
        name: the sink's name.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        firing_ttl: float | None = None,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        name: str = "alertmanager",
    ) -> None:
        self.name = name
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self._firing_ttl = firing_ttl
        self._http = HttpPoster(self.url, timeout, headers, retry)

    def send(self, alert: AlertEvent) -> Delivery:
        """Post one alert, retrying retryable failures."""
        return self._http.post(orjson.dumps(alertmanager_alerts(alert, self._firing_ttl)))

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """Nothing to release."""

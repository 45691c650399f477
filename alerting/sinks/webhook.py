"""POST each alert as JSON to a URL, signed with HMAC-SHA256.

The body is exactly ``AlertEvent.to_json()``. Headers: ``Content-Type:
application/json``, ``X-Driftline-Alert-Id: <alert_id>`` (deduplicate on it:
delivery is at least once) and, when a secret is set, ``X-Driftline-Signature:
sha256=<hex HMAC-SHA256 of the raw body keyed with the secret>``. Answers 5xx
and 429, connection errors and timeouts are retried with backoff; other 4xx
and redirects are not.

A receiver verifies the signature over the raw bytes before parsing them; for
example, one that starts a retraining job when a model's features drift
seriously (route only those alerts to it with ``match = { rule =
["feature_drift", "many_features"], severity = ["high", "critical"] }``)::

    import hashlib, hmac, json, subprocess
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen = set()  # alert ids already handled (delivery is at least once)

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            mac = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
            sig = self.headers.get("X-Driftline-Signature", "")
            if not hmac.compare_digest(f"sha256={mac}", sig):
                return self.send_error(401)
            alert = json.loads(body)
            if alert["alert_id"] not in seen and alert["status"] == "firing":
                seen.add(alert["alert_id"])
                subprocess.Popen(["retrain", alert["model"], "--reason", alert["message"]])
            self.send_response(204)  # 2xx: delivered; 5xx would make the router retry
            self.end_headers()

    HTTPServer(("0.0.0.0", 8080), Hook).serve_forever()
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from alerting.events import AlertEvent
from alerting.sinks.base import DEFAULT_RETRY, Delivery, HttpPoster, RetryPolicy

__all__ = ["SIGNATURE_HEADER", "WebhookSink", "sign"]

SIGNATURE_HEADER = "X-Driftline-Signature"


def sign(body: bytes, secret: str) -> str:
    """The ``X-Driftline-Signature`` value for ``body``.

    Example:
        >>> sign(b"{}", "s3cret")[:16]
        'sha256=adbde1ce4'
    """
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookSink:
    """POST alerts as signed JSON to ``url`` (standard library only).

    Args:
        url: the receiver's URL.
        secret: HMAC key; ``None`` sends no signature header.
        timeout: seconds per try.
        headers: extra headers (e.g. an ``Authorization`` token).
        retry: how failed tries are retried (:class:`~alerting.sinks.base.RetryPolicy`).
        name: the sink's name.
    """

    def __init__(
        self,
        url: str,
        secret: str | None = None,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        name: str = "webhook",
    ) -> None:
        self.name = name
        self.url = url
        self._secret = secret
        self._http = HttpPoster(url, timeout, headers, retry)

    def request(self, alert: AlertEvent) -> tuple[bytes, dict[str, str]]:
        """Body and per-alert headers sent for ``alert`` (on top of ``headers``)."""
        body = alert.to_json()
        headers = {"X-Driftline-Alert-Id": alert.alert_id}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self._secret)
        return body, headers

    def send(self, alert: AlertEvent) -> Delivery:
        """POST one alert, retrying retryable failures."""
        body, headers = self.request(alert)
        return self._http.post(body, headers)

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """Nothing to release."""

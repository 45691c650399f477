"""Alert sinks: where alert events are delivered.

Every sink has ``name``, ``send(alert) -> Delivery``, ``flush()`` and
``close()`` (:class:`Sink`); ``send`` retries retryable failures with
backoff (:func:`retry`, as set by a :class:`RetryPolicy`) and reports the
outcome instead of raising, so the router can dead-letter what was not
delivered.

* :class:`LogSink` — a text or JSON line per alert on a stream.
* :class:`WebhookSink` — signed JSON POST (HMAC-SHA256).
* :class:`SlackSink` — Slack incoming webhook.
* :class:`EmailSink` — plain-text mail over SMTP.
* :class:`AlertmanagerSink` — Prometheus Alertmanager's ``/api/v2/alerts``.
"""

from alerting.sinks.alertmanager import AlertmanagerSink
from alerting.sinks.base import Delivery, RetryPolicy, Sink, SinkError, retry
from alerting.sinks.email import EmailSink
from alerting.sinks.log import LogSink
from alerting.sinks.slack import SlackSink
from alerting.sinks.webhook import WebhookSink

__all__ = [
    "AlertmanagerSink",
    "Delivery",
    "EmailSink",
    "LogSink",
    "RetryPolicy",
    "Sink",
    "SinkError",
    "SlackSink",
    "WebhookSink",
    "retry",
]

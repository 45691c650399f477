"""Send alerts as plain-text e-mail over SMTP (``smtplib``).

Subject: :func:`~alerting.sinks.base.headline`, e.g. ``[driftline HIGH
firing] churn: feature 'income' drifted``. The body lists the message, model,
feature, rule, value vs threshold, window and alert id; the alert id is also in
the ``X-Driftline-Alert-Id`` header. Connection errors, timeouts and SMTP 4xx
answers are retried with backoff; 5xx answers and failed logins are not. When
some recipients are refused and others accepted, the delivery is ``ok`` and
``error`` names the refused ones.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from alerting.events import AlertEvent
from alerting.sinks.base import Delivery, RetryPolicy, SinkError, headline, retry

__all__ = ["EMAIL_RETRY", "EmailSink", "email_message"]

EMAIL_RETRY = RetryPolicy(attempts=3, base_delay=1.0, max_delay=60.0)
"""Email's default: fewer, slower tries than the HTTP sinks."""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def email_message(alert: AlertEvent, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The message sent for ``alert``."""
    msg = EmailMessage()
    msg["Subject"] = headline(alert)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(alert.emitted_at, usegmt=True)
    msg["Message-ID"] = make_msgid("driftline")
    msg["X-Driftline-Alert-Id"] = alert.alert_id
    lines = [
        alert.message,
        "",
        f"Model:     {alert.model}" + (f" (version {alert.version})" if alert.version else ""),
        f"Feature:   {alert.feature or '-'}",
        f"Rule:      {alert.rule} (metric {alert.metric})",
        f"Value:     {_num(alert.value)} (threshold {_num(alert.threshold)})",
        f"Severity:  {alert.severity}",
        f"Status:    {alert.status}",
        f"Window:    {_iso(alert.window.start)} to {_iso(alert.window.end)}",
        f"Baseline:  {alert.baseline or '-'}",
        f"Emitted:   {_iso(alert.emitted_at)}",
        f"Alert id:  {alert.alert_id}",
        "",
        "-- driftline",
    ]
    msg.set_content("\n".join(lines) + "\n")
    return msg


class EmailSink:
    """Mail each alert to ``recipients`` through an SMTP server.

    Args:
        host: SMTP server.
        port: its port (25, 587 with ``starttls=True``, ...).
        sender: the ``From`` address.
        recipients: ``To`` addresses (at least one).
        starttls: upgrade the connection with STARTTLS (certificate checked).
        username: login name, if the server needs one.
        password: login password.
        timeout: seconds per connection.
        retry: how failed tries are retried (:class:`~alerting.sinks.base.RetryPolicy`);
            :data:`EMAIL_RETRY` (3 tries, slower backoff) by default.
        name: the sink's name.
    """

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        *,
        retry: RetryPolicy = EMAIL_RETRY,
        name: str = "email",
    ) -> None:
        if not recipients:
            raise ValueError("EmailSink needs at least one recipient")
        self.name = name
        self.host, self.port = host, port
        self.sender, self.recipients = sender, list(recipients)
        self._starttls, self._username, self._password = starttls, username, password
        self._timeout = timeout
        self._retry = retry

    def _deliver(self, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username is not None:
                    smtp.login(self._username, self._password or "")
                return smtp.send_message(msg, self.sender, self.recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise SinkError(
                f"all recipients refused: {_refused(exc.recipients)}",
                retryable=all(400 <= c < 500 for c in codes),
                status=codes[0] if codes else None,
            ) from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, data error, auth
            err = exc.smtp_error
            text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
            raise SinkError(
                f"SMTP {exc.smtp_code}: {text}",
                retryable=400 <= exc.smtp_code < 500
                and not isinstance(exc, smtplib.SMTPAuthenticationError),
                status=exc.smtp_code,
            ) from exc
        except (smtplib.SMTPNotSupportedError, smtplib.SMTPHeloError) as exc:
            raise SinkError(f"{type(exc).__name__}: {exc}", retryable=False) from exc

    def send(self, alert: AlertEvent) -> Delivery:
        """Mail one alert, retrying retryable failures."""
        msg = email_message(alert, self.sender, self.recipients)
        refused: dict[str, tuple[int, bytes]] = {}

        def call() -> None:
            refused.clear()
            refused.update(self._deliver(msg))

        delivery = retry(call, self._retry)
        if delivery.ok and refused:
            return Delivery(
                True, delivery.attempts, f"some recipients refused: {_refused(refused)}"
            )
        return delivery

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """Nothing to release (one connection per alert)."""


def _refused(recipients: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(
        f"{rcpt} ({code} {text.decode('utf-8', 'replace')})"
        for rcpt, (code, text) in recipients.items()
    )

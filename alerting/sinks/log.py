"""Write alerts as lines of text or JSON to a stream (stdout by default).

Example:
    >>> import io
    >>> from alerting.events import AlertEvent, Window
    >>> alert = AlertEvent("89109830cd6dbb92613964e0", "churn", "3", Window(0, 60),
    ...     "feature_drift", "psi", "income", 0.31, 0.1, "high", "firing", "b1",
    ...     "churn: feature 'income' drifted vs baseline", 61.0)
    >>> out = io.StringIO()
    >>> LogSink(out).send(alert).ok
    True
    >>> print(out.getvalue(), end="")
    [driftline HIGH firing] churn: feature 'income' drifted value=0.31 threshold=0.1 \
window=1970-01-01T00:00:00Z/1970-01-01T00:01:00Z id=89109830cd6dbb92613964e0 \
- churn: feature 'income' drifted vs baseline
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TextIO

from alerting.events import AlertEvent
from alerting.sinks.base import Delivery, headline

__all__ = ["LogSink"]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _num(value: float | None) -> str:
    return "null" if value is None else f"{value:g}"


class LogSink:
    """One line per alert: human-readable, or JSON lines (``json=True``).

    Args:
        stream: where to write; ``None`` means ``sys.stdout`` at the time of writing.
        json: write ``AlertEvent.to_json()`` lines instead of text.
        name: the sink's name in router configuration and metrics.
    """

    def __init__(self, stream: TextIO | None = None, json: bool = False, name: str = "log") -> None:
        self.name = name
        self._stream = stream
        self._json = json

    @property
    def stream(self) -> TextIO:
        """The stream written to."""
        return self._stream if self._stream is not None else sys.stdout

    def format(self, alert: AlertEvent) -> str:
        """The line written for ``alert`` (without the newline)."""
        if self._json:
            return alert.to_json().decode("utf-8")
        return (
            f"{headline(alert)} value={_num(alert.value)} threshold={_num(alert.threshold)} "
            f"window={_iso(alert.window.start)}/{_iso(alert.window.end)} "
            f"id={alert.alert_id} - {alert.message}"
        )

    def send(self, alert: AlertEvent) -> Delivery:
        """Write one line; a failed write is reported, not raised."""
        try:
            self.stream.write(self.format(alert) + "\n")
        except (OSError, ValueError) as exc:  # closed stream, broken pipe
            return Delivery(ok=False, attempts=1, error=f"{type(exc).__name__}: {exc}")
        return Delivery(ok=True, attempts=1)

    def flush(self) -> None:
        """Flush the stream."""
        self.stream.flush()

    def close(self) -> None:
        """Flush; the stream is the caller's to close."""
        self.flush()

"""What every sink shares: the protocol, the delivery record, errors and retries.

A sink delivers one :class:`~alerting.events.AlertEvent` per :meth:`Sink.send`
call and reports the outcome as a :class:`Delivery` instead of raising, so the
router can dead-letter what could not be delivered. :func:`retry` retries only
errors marked retryable (HTTP 5xx and 429, connection errors, timeouts, SMTP
4xx), with exponential backoff and full jitter: before retry ``k`` (``k = 0,
1, ...``) it sleeps a uniform random time in ``[0, min(max_delay, base_delay *
2**k))``, or at least a server's ``Retry-After``, capped at ``max_delay``. The
attempts, delays and injectable sleep and random source form a
:class:`RetryPolicy`, which every retrying sink takes as ``retry=``.

Example:
    >>> calls = []
    >>> def flaky() -> int:
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise SinkError("HTTP 503", retryable=True, status=503)
    ...     return 200
    >>> retry(flaky, RetryPolicy(sleep=lambda s: None))
    Delivery(ok=True, attempts=3, error=None, status=200)
"""

from __future__ import annotations

import http.client
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from alerting.events import AlertEvent

__all__ = [
    "DEFAULT_RETRY",
    "Delivery",
    "HttpPoster",
    "RetryPolicy",
    "Sink",
    "SinkError",
    "backoff_delay",
    "headline",
    "post_json",
    "retry",
]


@dataclass(frozen=True)
class Delivery:
    """Outcome of one :meth:`Sink.send`.

    Attributes:
        ok: the alert was accepted by the target.
        attempts: how many tries were made (1 when the first one worked).
        error: the last error (``None`` when ok).
        status: the last HTTP status seen, if any.
    """

    ok: bool
    attempts: int
    error: str | None = None
    status: int | None = None


class SinkError(Exception):
    """A delivery failed; ``retryable`` tells :func:`retry` whether to try again.

    Args:
        message: what went wrong.
        retryable: a later try may succeed (5xx, 429, connection error, timeout).
        status: HTTP status or SMTP code, if any.
        retry_after: seconds the server asked us to wait (``Retry-After``).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


@runtime_checkable
class Sink(Protocol):
    """A delivery target: ``send`` one alert, ``flush`` buffered ones, ``close``."""

    name: str

    def send(self, alert: AlertEvent) -> Delivery:
        """Deliver one alert (retrying as configured); never raises for delivery errors."""
        ...

    def flush(self) -> None:
        """Deliver anything buffered."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...


def backoff_delay(
    retry_index: int,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    jitter: bool = True,
    rng: Callable[[], float] = random.random,
) -> float:
    """Delay before retry ``retry_index`` (0-based): full jitter over the capped exponential."""
    cap = min(max_delay, base_delay * 2.0**retry_index)
    return rng() * cap if jitter else cap


@dataclass(frozen=True)
class RetryPolicy:
    """How :func:`retry` retries: total tries, backoff bounds, and injectables.

    Attributes:
        attempts: total tries, at least 1.
        base_delay: first backoff cap in seconds.
        max_delay: largest sleep in seconds.
        sleep: injectable sleep (tests).
        rng: injectable ``random.random`` (tests).
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError(
                f"delays must be non-negative, got base_delay={self.base_delay}, "
                f"max_delay={self.max_delay}"
            )


DEFAULT_RETRY = RetryPolicy()


def retry(
    call: Callable[[], int | None],
    policy: RetryPolicy = DEFAULT_RETRY,
    *,
    jitter: bool = True,
) -> Delivery:
    """Run ``call`` until it succeeds, fails for good, or ``policy.attempts`` are used up.

    Args:
        call: one try; returns a status (or ``None``) on success, raises
            :class:`SinkError` or ``OSError`` (connection errors, timeouts:
            retryable) on failure. Other exceptions propagate (bugs).
        policy: attempts, backoff bounds, sleep and random source.
        jitter: full jitter (uniform in ``[0, cap)``); ``False`` sleeps the cap.

    Returns:
        ``Delivery(ok=True, ...)``, or ``ok=False`` with the last error.
    """
    attempts, max_delay = policy.attempts, policy.max_delay
    for attempt in range(1, attempts + 1):
        try:
            status = call()
        except SinkError as exc:
            error, retryable, last_status, after = (
                str(exc),
                exc.retryable,
                exc.status,
                exc.retry_after,
            )
        except OSError as exc:  # connection refused/reset, timeouts, URLError
            error, retryable, last_status, after = _describe(exc), True, None, None
        else:
            return Delivery(ok=True, attempts=attempt, status=status)
        if not retryable or attempt == attempts:
            return Delivery(ok=False, attempts=attempt, error=error, status=last_status)
        delay = backoff_delay(attempt - 1, policy.base_delay, max_delay, jitter, policy.rng)
        if after is not None:
            delay = max(delay, min(after, max_delay))
        policy.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a POST must not be silently turned into a GET elsewhere."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: not worth parsing, backoff applies
        return None


def post_json(
    url: str, body: bytes, headers: Mapping[str, str] | None = None, timeout: float = 5.0
) -> int:
    """POST ``body`` as JSON with the standard library; return the 2xx status.

    Raises:
        SinkError: on a non-2xx answer (retryable for 5xx and 429) or a
            malformed response; ``OSError`` (retryable) on connection errors.
    """
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", "driftline")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        detail = " ".join(exc.read(200).decode("utf-8", "replace").split())
        exc.close()
        raise SinkError(
            f"HTTP {exc.code} from {url}" + (f": {detail}" if detail else ""),
            retryable=exc.code >= 500 or exc.code == 429,
            status=exc.code,
            retry_after=_retry_after(exc.headers.get("Retry-After")),
        ) from exc
    except http.client.HTTPException as exc:  # bad status line, incomplete read
        raise SinkError(_describe(exc), retryable=True) from exc
    if not 200 <= status < 300:
        raise SinkError(f"HTTP {status} from {url}", retryable=False, status=status)
    return status


class HttpPoster:
    """POSTs JSON bodies to one URL with timeout and retries (shared by the HTTP sinks).

    Args:
        url: target URL.
        timeout: seconds per try.
        headers: headers added to every request.
        policy: how failed tries are retried.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        policy: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.policy = policy

    def post(self, body: bytes, headers: Mapping[str, str] | None = None) -> Delivery:
        """POST ``body`` (with ``headers`` on top of the defaults), retrying."""
        merged = {**self.headers, **(headers or {})}
        return retry(lambda: post_json(self.url, body, merged, self.timeout), self.policy)


_PHRASES = {
    "prediction_drift": "prediction drifted",
    "drift_share": "many features drifted",
    "latency_p99": "latency p99 above SLO",
    "volume": "unusual volume",
    "dead_letter_rate": "dead-letter rate high",
    "low_confidence": "low-confidence predictions",
}


def headline(alert: AlertEvent) -> str:
    """Short human title, e.g. ``[driftline HIGH firing] churn: feature 'income' drifted``."""
    if alert.rule == "feature_drift" and alert.feature is not None:
        what = f"feature {alert.feature!r} drifted"
    elif alert.rule in _PHRASES:
        what = _PHRASES[alert.rule]
    else:
        what = alert.rule + (f" on feature {alert.feature!r}" if alert.feature else "")
    return f"[driftline {alert.severity.upper()} {alert.status}] {alert.model}: {what}"

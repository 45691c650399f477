"""Real local receivers for the sink tests: an HTTP server, an SMTP server, Alertmanager.

* :class:`HttpReceiver` — ``ThreadingHTTPServer`` on ``127.0.0.1:0`` in a
  thread; records every request (and, in :attr:`HttpReceiver.answers`, when
  its answer was written) and can be told to answer the next N with an error
  (or slowly) before succeeding, or to answer every request slowly.
* :func:`smtp_server` — an ``aiosmtpd`` server recording envelopes; its RCPT
  answers can be scripted. Imports ``aiosmtpd`` only when called.
* :class:`Alertmanager` — the real ``alertmanager`` binary (Debian package
  ``prometheus-alertmanager``) on a free loopback port, routing every alert to
  a webhook URL.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = [
    "Alertmanager",
    "Answer",
    "HttpReceiver",
    "Recorded",
    "SmtpRecorder",
    "alertmanager_binary",
    "die_with_parent",
    "free_port",
    "smtp_server",
]


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Recorded:
    """One request as received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    """One request and the answer it got; times are ``time.monotonic()`` in this process.

    Attributes:
        request: the request.
        status: the HTTP status answered.
        received_at: when the request's body had been read.
        answered_at: when the whole answer had been written to the socket; ``None``
            if writing it failed (the client was gone).
    """

    request: Recorded
    status: int
    received_at: float
    answered_at: float | None


@dataclass
class _Failure:
    status: int
    body: bytes
    headers: dict[str, str]
    delay: float


@dataclass
class _State:
    requests: list[Recorded] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)


class HttpReceiver:
    """A recording HTTP server; use as a context manager.

    Args:
        status: the answer when no failure is scheduled.
        delay: seconds to wait before giving that answer (a slow receiver).
    """

    def __init__(self, status: int = 200, *, delay: float = 0.0) -> None:
        self.status = status
        self.delay = delay
        self._state = _State()
        state, receiver = self._state, self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                rec = Recorded(self.command, self.path, dict(self.headers.items()), body)
                received_at = time.monotonic()
                with state.cond:
                    state.requests.append(rec)
                    failure = state.failures.pop(0) if state.failures else None
                    state.cond.notify_all()
                if failure is None:
                    failure = _Failure(receiver.status, b"ok", {}, receiver.delay)
                if failure.delay:
                    time.sleep(failure.delay)
                answered_at: float | None = None
                try:
                    self.send_response(failure.status)
                    for key, value in failure.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(failure.body)))
                    self.end_headers()
                    self.wfile.write(failure.body)
                    self.wfile.flush()
                    answered_at = time.monotonic()
                except OSError:  # the client went away (e.g. was killed) mid-answer
                    self.close_connection = True
                with state.cond:
                    state.answers.append(Answer(rec, failure.status, received_at, answered_at))
                    state.cond.notify_all()

            do_POST = _handle
            do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43211``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[Recorded]:
        """A copy of the requests received so far."""
        with self._state.cond:
            return list(self._state.requests)

    @property
    def answers(self) -> list[Answer]:
        """A copy of the answers given so far, in the order they were finished."""
        with self._state.cond:
            return list(self._state.answers)

    def fail(
        self,
        times: int,
        status: int = 500,
        body: bytes = b"boom",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (after ``delay`` seconds)."""
        with self._state.cond:
            self._state.failures += [
                _Failure(status, body, dict(headers or {}), delay) for _ in range(times)
            ]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        """Block until ``count`` requests arrived; return them (raises on timeout)."""
        with self._state.cond:
            if not self._state.cond.wait_for(
                lambda: len(self._state.requests) >= count, timeout=timeout
            ):
                raise TimeoutError(f"{len(self._state.requests)} of {count} requests arrived")
            return list(self._state.requests)

    def wait_for_answers(self, count: int, timeout: float = 10.0) -> list[Answer]:
        """Block until ``count`` answers were finished; return them (raises on timeout)."""
        with self._state.cond:
            if not self._state.cond.wait_for(
                lambda: len(self._state.answers) >= count, timeout=timeout
            ):
                raise TimeoutError(f"{len(self._state.answers)} of {count} answers finished")
            return list(self._state.answers)

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class SmtpRecorder:
    """An ``aiosmtpd`` handler that records envelopes; ``rcpt_answers`` are used first."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.rcpt_answers: list[str] = []
        self.rcpt_calls = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        self.rcpt_calls += 1
        if self.rcpt_answers:
            return self.rcpt_answers.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[SmtpRecorder, int]]:
    """Run an ``aiosmtpd`` server on a free loopback port; yield (handler, port)."""
    from aiosmtpd.controller import Controller

    handler = SmtpRecorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def alertmanager_binary() -> str | None:
    """The Alertmanager binary on this machine, if any."""
    found = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")
    if found:
        return found
    debian = Path("/usr/bin/prometheus-alertmanager")
    return str(debian) if debian.exists() else None


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """``preexec_fn`` for test subprocesses: SIGKILL the child when its parent dies."""
    with contextlib.suppress(OSError):  # not Linux: no parent-death signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


_CONFIG = """\
route:
  receiver: hook
  group_by: ["alertname", "model", "feature"]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: "{webhook}"
        send_resolved: true
"""


class Alertmanager:
    """The real Alertmanager on ``127.0.0.1``, notifying ``webhook_url``."""

    def __init__(self, binary: str, workdir: Path, webhook_url: str) -> None:
        self.binary = binary
        self.workdir = workdir
        self.webhook_url = webhook_url
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Alertmanager:
        config = self.workdir / "alertmanager.yml"
        config.write_text(_CONFIG.format(webhook=self.webhook_url))
        for _ in range(5):  # a port taken meanwhile: try another
            port = free_port()
            log = (self.workdir / "alertmanager.log").open("wb")
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
            log.close()
            self.url = f"http://127.0.0.1:{port}"
            if self._ready(timeout=15):
                return self
            self._stop()
        log_text = (self.workdir / "alertmanager.log").read_text(errors="replace")
        raise RuntimeError(f"alertmanager did not start:\n{log_text[-2000:]}")

    def _ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def alerts(self) -> Any:
        """``GET /api/v2/alerts`` (the active ones)."""
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=5) as r:
            return json.loads(r.read())

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __exit__(self, *exc: object) -> None:
        self._stop()

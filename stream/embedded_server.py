"""The life cycle the embedded broker and Redis share: a child on a free port.

A subclass names its binary, its command line and its readiness check;
:class:`EmbeddedServer` starts it on a free loopback port (retrying on another
port when that one turns out busy), stops only the PID it started, and removes
a temporary working directory on stop.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from stream.embedded_process import free_port, server_error, spawn, stop_process
from stream.exceptions import EmbeddedServerError

__all__ = ["EmbeddedServer", "Managed", "Readiness"]

Readiness = Literal["ready", "exited", "timeout"]


class Managed:
    """``with`` support for anything with ``start()`` and ``stop()``."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedServer(Managed):
    """One server process on a loopback port, logging to ``workdir/<LOG_NAME>``.

    Args:
        workdir: directory for the log (and data); a temporary one, removed on
            stop, if ``None``.
        port: listen on this port instead of a free one (no retry then).
        start_timeout: seconds to wait for each start attempt.
    """

    WHAT = "server"  # in messages: "the embedded <WHAT> is not started"
    DIR_PREFIX = "driftline-server-"
    LOG_NAME = "server.log"
    STOP_SIGNAL = signal.SIGTERM  # graceful stop; SIGKILL after 5 s
    APPEND_LOG = False  # keep the log of earlier starts (restarts)
    NOT_READY = "did not come up"  # the timeout, in words

    def __init__(
        self, workdir: Path | None = None, *, port: int | None = None, start_timeout: float = 10.0
    ) -> None:
        self._own_dir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix=self.DIR_PREFIX)) if workdir is None else workdir
        )
        self.log_path = self.workdir / self.LOG_NAME
        self._fixed_port = port
        self._port: int | None = None
        self._timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    # -- what a subclass says ------------------------------------------------
    def _binary(self) -> str:
        raise NotImplementedError

    def _argv(self, binary: str, port: int) -> list[str]:
        raise NotImplementedError

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int) -> Readiness:
        raise NotImplementedError

    def _address(self) -> str:
        """What :meth:`start` returns (a bootstrap address, a URL)."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------
    @property
    def port(self) -> int:
        """The listening port (only while started)."""
        if self._port is None or self._proc is None:
            raise EmbeddedServerError(f"the embedded {self.WHAT} is not started")
        return self._port

    @property
    def pid(self) -> int | None:
        """PID of the server process, or ``None`` if not started."""
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        """Whether the server process is running."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, attempts: int = 5) -> str:
        """Start the server and return its address.

        Raises:
            EmbeddedServerError: no binary, or no attempt came up; names the
                binary, the port and the last lines of the log.
        """
        if self._proc is not None:
            return self._address()
        fixed = self._fixed_port
        return self._launch(fixed, 1 if fixed is not None else attempts)

    def _launch(self, port: int | None, tries: int, pause: float = 0.0) -> str:
        """Start on ``port`` (or free ports), trying ``tries`` times."""
        binary = self._binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, tries + 1):
            p = port or free_port()
            try:
                proc = spawn(self._argv(binary, p), self.log_path, append=self.APPEND_LOG)
            except OSError as exc:
                raise EmbeddedServerError(
                    f"cannot run the {self.WHAT} binary {binary} (port {p}): {exc}"
                ) from exc
            state = self._wait_ready(proc, p)
            if state == "ready":
                self._proc, self._port = proc, p
                return self._address()
            stop_process(proc, signal.SIGKILL, grace=2.0)
            if state == "timeout" or attempt == tries:
                reason = (
                    f"{self.NOT_READY} within {self._timeout:g} s"
                    if state == "timeout"
                    else f"exited ({proc.returncode}; port busy?) after {tries} attempt(s)"
                )
                raise server_error(self.WHAT, binary, p, self.log_path, reason)
            time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop the server (``STOP_SIGNAL``, then SIGKILL after 5 s); remove a temporary workdir."""
        proc, self._proc, self._port = self._proc, None, None
        if proc is not None:
            stop_process(proc, self.STOP_SIGNAL, grace=5.0)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

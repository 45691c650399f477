"""Child-process plumbing shared by the embedded broker and Redis.

Children are started in their own session (a Ctrl-C in the terminal reaches
only the parent, which then stops them in order) with the parent-death signal
set to SIGKILL on Linux, so a killed parent never leaves a server behind. The
signal fires when the *thread* that started the child ends: start servers from
the main thread or a thread that outlives them. Only the PID that was started
is ever signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from stream.exceptions import EmbeddedServerError

__all__ = [
    "INSTALL_HINT",
    "free_port",
    "log_tail",
    "server_error",
    "spawn",
    "stop_process",
]

INSTALL_HINT = "install it with: pip install 'driftline[embedded]'"

_PR_SET_PDEATHSIG = 1
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Another process may take it before it is used: callers retry on a busy port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> Callable[[], None] | None:
    """Build a ``preexec_fn`` that sets PR_SET_PDEATHSIG to SIGKILL (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # resolved before the fork
    prctl = libc.prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def spawn(argv: Sequence[str], log_path: Path, *, append: bool = False) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr going to ``log_path``.

    Raises:
        OSError: the binary cannot be executed.
    """
    with open(log_path, "ab" if append else "wb") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )


def stop_process(
    proc: subprocess.Popen[bytes], sig: signal.Signals, grace: float = 5.0
) -> int | None:
    """Send ``sig`` to ``proc``, wait up to ``grace`` seconds, then SIGKILL it.

    Returns:
        The exit code, or ``None`` if the process had to be killed.
    """
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def log_tail(path: Path, lines: int = 8) -> str:
    """Return the last ``lines`` lines of a log file, without colour codes."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "    (no log)"
    tail = [_ANSI.sub("", line).rstrip() for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(f"    {line}" for line in tail) if tail else "    (empty log)"


def server_error(
    what: str, binary: str, port: int, log_path: Path, reason: str
) -> EmbeddedServerError:
    """Build the error for a server that did not come up: binary, port and log tail."""
    return EmbeddedServerError(
        f"{what} {binary} on 127.0.0.1:{port} {reason}; last lines of {log_path}:\n"
        f"{log_tail(log_path)}"
    )

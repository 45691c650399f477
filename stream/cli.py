"""The ``driftline`` command line.

Each subcommand is one :class:`Command` in ``COMMANDS``: a name, a one-line
help, a function adding its arguments and a function running it. Adding a
subcommand means writing those two functions and appending one entry.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from stream import alert_commands as acmd
from stream import commands as cmd
from stream import demo
from stream import query_commands as qcmd
from stream.exceptions import DriftlineError

__all__ = ["COMMANDS", "Command", "build_parser", "main"]


@dataclass(frozen=True)
class Command:
    """One subcommand: ``run`` returns the exit status."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _add_up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--partitions",
        type=int,
        default=4,
        metavar="N",
        help="partitions of the predictions and labels topics (default: 4)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep logs and the Redis append-only file here (default: a temporary directory)",
    )


def _run_up(args: argparse.Namespace) -> int:
    """Run the embedded broker and Redis until Ctrl-C or SIGTERM."""
    from stream.embedded import EmbeddedStack, default_topics

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with EmbeddedStack(args.dir, default_topics(args.partitions)) as stack:
            kafka, redis = stack.kafka, stack.redis
            print(f"Kafka broker   {stack.bootstrap}  (pid {kafka.pid}, log {kafka.log_path})")
            print(f"Redis          {stack.redis_url}  (pid {redis.pid}, log {redis.log_path})")
            print("topics         " + ", ".join(f"{t} ({n})" for t, n in stack.topics.items()))
            print(f"\nKAFKA_BOOTSTRAP={stack.bootstrap}\nREDIS_URL={stack.redis_url}\n")
            print("running; press Ctrl-C to stop", flush=True)
            while not stop.wait(0.5):
                for name, server in (("Kafka broker", kafka), ("Redis", redis)):
                    if not server.alive:
                        raise DriftlineError(f"the {name} exited unexpectedly")
        print("stopped", flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


COMMANDS: list[Command] = [
    Command(
        "up", "run the embedded Kafka broker and Redis until Ctrl-C", _add_up_arguments, _run_up
    ),
    Command(
        "worker",
        "consume predictions into exactly-once window state; close windows",
        cmd.add_worker_arguments,
        cmd.run_worker,
    ),
    Command(
        "baseline",
        "register a model's baseline from a training file",
        cmd.add_baseline_arguments,
        cmd.run_baseline,
    ),
    Command(
        "status",
        "models, last and open windows, partitions, dead letters",
        qcmd.add_status_arguments,
        qcmd.run_status,
    ),
    Command(
        "show", "a window's result as a table (or JSON)", qcmd.add_show_arguments, qcmd.run_show
    ),
    Command(
        "alerts",
        "tail live alerts, read past ones from Redis, or route alerts to sinks",
        acmd.add_alerts_arguments,
        acmd.run_alerts,
    ),
    Command(
        "mute",
        "mute a model's alerts (or one feature's or rule's) for a while",
        cmd.add_mute_arguments,
        cmd.run_mute,
    ),
    Command(
        "demo",
        "end-to-end demo: embedded servers, simulated models, injected drift, live alerts",
        demo.add_arguments,
        demo.run_command,
    ),
]


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    """Build the ``driftline`` parser with one subparser per command."""
    parser = argparse.ArgumentParser(prog="driftline", description="Streaming ML-model monitor.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        sub_parser = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub_parser)
        sub_parser.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (2 on an error, with one message)."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except BrokenPipeError:  # stdout's reader left (`| head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # for the exit flush
        return 141  # 128 + SIGPIPE
    except (DriftlineError, OSError) as exc:
        print(f"driftline {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())

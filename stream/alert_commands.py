"""CLI subcommands for alerts: ``alerts tail``, ``alerts history`` and ``alerts route``.

``alerts tail`` reads the alerts topic with ``assign()`` under a group id of
its own (``driftline-alerts-tail-<uuid>``): no group join, nothing committed.
``alerts history`` reads the alerts stored with each closed window's result
in Redis (:meth:`~stream.reader.StateReader.alerts`), so it reaches back as
far as ``windows.retention``, whatever the topic keeps. Both print one line
per alert (:func:`alert_line`), filtered by :class:`AlertFilter` and coloured
by severity (:func:`colorize`) when :func:`use_color` says so. ``alerts
route`` runs :class:`alerting.router.AlertRouter`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import orjson

from stream.exceptions import DriftlineError
from stream.query_commands import _config_argument, _f, _read, _utc, time_arg

if TYPE_CHECKING:
    from stream.reader import StateReader

__all__ = ["SEVERITIES", "STATUSES", "AlertFilter", "add_alerts_arguments", "alert_line"]
__all__ += ["colorize", "run_alerts", "use_color"]

# As alerting.events (a test keeps them equal); not imported, so the CLI starts
# without loading the alerting package.
SEVERITIES = ("low", "medium", "high", "critical")
STATUSES = ("firing", "resolved")

RESET = "\x1b[0m"
COLORS = {"critical": "\x1b[1;31m", "high": "\x1b[31m", "medium": "\x1b[33m", "low": "\x1b[36m"}
RESOLVED_COLOR = "\x1b[32m"
COLOR_CHOICES = ("auto", "always", "never")
HISTORY_LIMIT = 100

# control characters (from feature names, say) are shown escaped, never sent to the terminal
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


# -- one alert as a line ------------------------------------------------------------------


def _text(value: Any) -> str:
    return str(value).translate(_CONTROL)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _time(x: Any) -> str:
    try:
        return _utc(x) if _is_number(x) and math.isfinite(x) else "-"
    except (OverflowError, OSError, ValueError):  # beyond what datetime can show
        return "-"


def _number(x: Any) -> str:
    return _f(x) if _is_number(x) else "-" if x is None else _text(x)


def alert_line(a: Mapping[str, Any]) -> str:
    """An alert as one line: time, severity, status, model, rule, feature, value/threshold, message.

    Fields missing or malformed show as ``-``; control characters are escaped.

    Example:
        >>> alert_line({"emitted_at": 0, "severity": "high", "status": "firing",
        ...     "model": "churn", "rule": "volume", "value": 0.2, "threshold": 0.5,
        ...     "message": "volume low"})
        '1970-01-01 00:00:00  high      firing    churn  volume  -  0.2/0.5  volume low'
    """
    return "  ".join(
        [
            _time(a.get("emitted_at")),
            f"{_text(a.get('severity') or '-'):<8}",
            f"{_text(a.get('status') or '-'):<8}",
            _text(a.get("model") or "-"),
            _text(a.get("rule") or "-"),
            _text(a.get("feature") or "-"),
            f"{_number(a.get('value'))}/{_number(a.get('threshold'))}",
            _text(a.get("message", "")),
        ]
    )


def colorize(line: str, alert: Mapping[str, Any]) -> str:
    """``line`` in its alert's colour: critical bold red, high red, medium yellow,
    low cyan; any resolved alert green. Unknown severities stay plain.

    Example:
        >>> colorize("x", {"severity": "high", "status": "firing"})
        '\\x1b[31mx\\x1b[0m'
        >>> colorize("x", {"severity": "high", "status": "resolved"})
        '\\x1b[32mx\\x1b[0m'
    """
    if alert.get("status") == "resolved":
        code: str | None = RESOLVED_COLOR
    else:
        code = COLORS.get(str(alert.get("severity")))
    return line if code is None else f"{code}{line}{RESET}"


def use_color(
    choice: str, stream: IO[str] | None = None, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether to colour: ``always``, ``never``, or (``auto``) when ``stream`` is a
    terminal and neither ``NO_COLOR`` is set (non-empty) nor ``TERM`` is ``dumb``.

    Example:
        >>> use_color("always"), use_color("never"), use_color("auto", None, {})
        (True, False, False)
    """
    if choice != "auto":
        return choice == "always"
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


# -- filters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertFilter:
    """Which alerts to show; an empty set or ``None`` lets everything through.

    Attributes:
        models: only these models.
        rules: only these rules.
        features: only alerts on these features (model-level alerts have none).
        min_severity: this severity and the ones above (``high``: high, critical).
        status: only ``firing`` or only ``resolved``.

    Example:
        >>> f = AlertFilter(min_severity="high", features=frozenset({"income"}))
        >>> f.matches({"severity": "critical", "feature": "income"})
        True
        >>> f.matches({"severity": "medium", "feature": "income"})
        False
        >>> f.matches({"severity": "high", "feature": None})
        False
    """

    models: frozenset[str] = frozenset()
    rules: frozenset[str] = frozenset()
    features: frozenset[str] = frozenset()
    min_severity: str | None = None
    status: str | None = None

    def __post_init__(self) -> None:
        if self.min_severity is not None and self.min_severity not in SEVERITIES:
            raise ValueError(f"min_severity must be one of {SEVERITIES}, got {self.min_severity!r}")
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> AlertFilter:
        """The filter of ``--model``, ``--rule``, ``--feature``, ``--severity``, ``--status``."""
        return cls(
            models=frozenset(args.model or ()),
            rules=frozenset(args.rule or ()),
            features=frozenset(args.feature or ()),
            min_severity=args.severity,
            status=args.status,
        )

    def matches(self, alert: Mapping[str, Any]) -> bool:
        """Whether ``alert`` (an alert event as a dict) passes every condition."""
        if self.models and alert.get("model") not in self.models:
            return False
        if self.rules and alert.get("rule") not in self.rules:
            return False
        if self.features and alert.get("feature") not in self.features:
            return False
        if self.status is not None and alert.get("status") != self.status:
            return False
        if self.min_severity is not None:
            severity = alert.get("severity")
            if severity not in SEVERITIES:
                return False
            return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)
        return True


def _check_rules(rules: Iterable[str], cfg: Any) -> None:
    """Refuse rule names no rule has (a typo would silently show nothing): the
    built-in rules and the trend and k-of-m rules of the configuration."""
    from stream.alert_config import BUILTIN_RULES

    known = list(BUILTIN_RULES)
    for settings in [cfg.alerts, *(cfg.alerts_for(m) for m in cfg.models)]:
        known += [t.rule for t in settings.rules.trends] + [g.name for g in settings.rules.k_of_m]
    known = list(dict.fromkeys(known))
    unknown = sorted(set(rules) - set(known))
    if unknown:
        names = ", ".join(repr(r) for r in unknown)
        raise DriftlineError(f"unknown rule {names}; rules: {', '.join(known)}")


# -- arguments --------------------------------------------------------------------------------


def _filter_arguments(parser: argparse.ArgumentParser, history: bool) -> None:
    parser.add_argument(
        "--model",
        action="append",
        required=history,
        metavar="M",
        help="the model whose alerts to read (repeatable)"
        if history
        else "only this model's alerts (repeatable)",
    )
    parser.add_argument(
        "--severity",
        choices=SEVERITIES,
        default=None,
        help="minimum severity: high shows high and critical",
    )
    parser.add_argument(
        "--rule", action="append", metavar="RULE", help="only this rule (repeatable)"
    )
    parser.add_argument(
        "--feature",
        action="append",
        metavar="FEATURE",
        help="only alerts on this feature (repeatable)",
    )
    parser.add_argument("--status", choices=STATUSES, default=None, help="only firing or resolved")
    parser.add_argument(
        "--color",
        choices=COLOR_CHOICES,
        default="auto",
        help="colour lines by severity: auto (a terminal, and NO_COLOR unset), always, never",
    )


def _limit_arg(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a count (0: no limit), got {text!r}")
    return n


def add_alerts_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = sub.add_parser("tail", help="print alert events as they are published")
    _config_argument(tail, "print each alert as one line of JSON")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest alert")
    _filter_arguments(tail, history=False)
    tail.add_argument("--max", type=int, default=None, metavar="N", help="stop after N alerts")
    tail.add_argument("--timeout", type=float, default=None, metavar="S", help="stop after S s")
    history = sub.add_parser(
        "history", help="print past alerts from the window results in Redis, oldest first"
    )
    _config_argument(history, "print each alert as one line of JSON")
    _filter_arguments(history, history=True)
    history.add_argument(
        "--since",
        type=time_arg,
        default=None,
        metavar="TIME",
        help="windows starting at or after TIME (epoch seconds or ISO-8601 UTC, "
        "e.g. 2026-11-24T10:00)",
    )
    history.add_argument(
        "--until", type=time_arg, default=None, metavar="TIME", help="windows starting before TIME"
    )
    history.add_argument(
        "--limit",
        type=_limit_arg,
        default=HISTORY_LIMIT,
        metavar="N",
        help=f"the newest N alerts (default: {HISTORY_LIMIT}; 0: all)",
    )
    route = sub.add_parser(
        "route", help="deliver alerts to the sinks of [[routes]] (webhook, Slack, email, ...)"
    )
    route.add_argument(
        "-c", "--config", required=True, metavar="FILE", help="configuration file (TOML)"
    )
    route.add_argument("--timeout", type=float, default=None, metavar="S", help="stop after S s")


# -- running ------------------------------------------------------------------------------------


class _Printer:
    """Prints alerts as ``--json`` and ``--color`` ask."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json = args.json
        self.color = not args.json and use_color(args.color, sys.stdout)

    def __call__(self, alert: Mapping[str, Any]) -> None:
        if self.json:
            line = orjson.dumps(alert).decode()
        else:
            line = alert_line(alert)
            line = colorize(line, alert) if self.color else line
        print(line, flush=True)


def _run_tail(args: argparse.Namespace) -> int:
    """``alerts tail``: print matching alerts until ``--max``, ``--timeout`` or Ctrl-C.

    Without ``--from-beginning`` only alerts produced after the start are
    printed (by message time too, as some brokers under-report the end offset).
    """
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

    from stream.config import load_config

    cfg = load_config(args.config)
    if args.rule:
        _check_rules(args.rule, cfg)
    keep, show = AlertFilter.from_args(args), _Printer(args)
    topic, started = cfg.topics.alerts, time.time()
    group = f"driftline-alerts-tail-{uuid.uuid4().hex}"
    consumer = Consumer(cfg.consumer_conf(**{"group.id": group}))
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    printed = 0
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            why = "" if meta is None else f": {meta.error}"
            raise DriftlineError(f"alerts topic {topic!r} not found{why}")
        offset = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, offset) for p in sorted(meta.partitions)])
        while args.max is None or printed < args.max:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                break
            msg = consumer.poll(wait)
            if msg is None or msg.error() is not None:
                continue
            kind, ts_ms = msg.timestamp()
            if not args.from_beginning and kind and ts_ms < started * 1000:
                continue
            try:
                alert = orjson.loads(msg.value() or b"")
            except orjson.JSONDecodeError:
                print(f"skipped a malformed alert at offset {msg.offset()}", file=sys.stderr)
                continue
            if isinstance(alert, dict) and keep.matches(alert):
                show(alert)
                printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


def _is_stub(alert: Mapping[str, Any]) -> bool:
    """An alert stored by id only (see :meth:`~stream.reader.StateReader.alerts`)."""
    return "rule" not in alert


def _order(alert: Mapping[str, Any]) -> tuple[float, float]:
    """Sort key: window start, then emission time (missing ones first)."""
    window = alert.get("window")
    start = window.get("start") if isinstance(window, dict) else None
    emitted = alert.get("emitted_at")
    return (
        float(start) if isinstance(start, int | float) else -math.inf,
        float(emitted) if isinstance(emitted, int | float) else -math.inf,
    )


def _run_history(args: argparse.Namespace) -> int:
    """``alerts history``: the matching alerts of past windows, oldest first."""
    since, until, limit = args.since, args.until, args.limit
    if since is not None and until is not None and since >= until:
        raise DriftlineError(f"--since ({since}) must be before --until ({until})")
    keep, show = AlertFilter.from_args(args), _Printer(args)
    want = None if limit == 0 else limit + 1  # one more tells whether some were left out
    models = list(dict.fromkeys(args.model))

    def query(cfg: Any, reader: StateReader) -> list[dict[str, Any]]:
        if args.rule:
            _check_rules(args.rule, cfg)
        known = set(reader.models()) | set(cfg.models)
        for m in models:
            if m not in known and not reader.windows(m, limit=1):
                listed = ", ".join(sorted(known)) or "none"
                raise DriftlineError(f"unknown model {m!r}; known models: {listed}")
        return [a for m in models for a in reader.alerts(m, since, until, want, wanted)]

    def wanted(alert: dict[str, Any]) -> bool:
        return _is_stub(alert) or keep.matches(alert)

    found = sorted(_read(args, query), key=_order)  # stable: published order within a window
    left_out = 0 if want is None else max(0, len(found) - limit)
    found = found[left_out:]
    stubs = sum(1 for a in found if _is_stub(a))
    for alert in found:
        if not _is_stub(alert):
            show(alert)
    if left_out:
        print(f"(the newest {limit} shown; --limit 0 shows all)", file=sys.stderr)
    if stubs:
        print(
            f"{stubs} alerts in these windows are stored by id only (closed before results "
            "kept the alert events); `driftline alerts tail --from-beginning` shows them while "
            "the alerts topic keeps them",
            file=sys.stderr,
        )
    elif not found:
        print(f"no alerts for {', '.join(models)} in these windows", file=sys.stderr)
    return 0


def _run_route(args: argparse.Namespace) -> int:
    """``alerts route``: run the alert router until SIGTERM/SIGINT (or ``--timeout``)."""
    from alerting.router import AlertRouter
    from stream.config import load_config

    router = AlertRouter(load_config(args.config))
    router.install_signal_handlers()
    stats = router.run(max_seconds=args.timeout)
    print(
        f"alert router stopped: {stats.consumed} alerts read, {stats.delivered} delivered, "
        f"{stats.duplicates} duplicates skipped, {stats.failed} dead-lettered, "
        f"{stats.malformed} malformed",
        file=sys.stderr,
    )
    return 0


def run_alerts(args: argparse.Namespace) -> int:
    """Run ``alerts tail``, ``alerts history`` or ``alerts route``."""
    run = {"tail": _run_tail, "history": _run_history, "route": _run_route}[args.action]
    return run(args)

"""CLI subcommands that read state: ``status``, ``show``, ``alerts tail`` (and ``alerts route``).

``status`` and ``show`` read Redis through :class:`~stream.reader.StateReader`
and print tables (``--json``: the data as JSON). ``alerts tail`` reads the
alerts topic with ``assign()`` under a group id of its own
(``driftline-alerts-tail-<uuid>``): no group join, nothing committed.
``alerts route`` runs :class:`alerting.router.AlertRouter`.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from stream.exceptions import DriftlineError, StoreError

if TYPE_CHECKING:  # imported when a command runs, so the CLI starts fast
    from stream.reader import StateReader

__all__ = ["add_alerts_arguments", "add_show_arguments", "add_status_arguments", "alert_line"]
__all__ += ["run_alerts", "run_show", "run_status"]

# -- formatting --------------------------------------------------------------------------


def _utc(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _f(x: Any) -> str:
    """A number for a table cell (``-`` for none)."""
    if x is None or isinstance(x, bool):
        return "-"
    if isinstance(x, int):
        return str(x)
    return f"{x:.1f}" if abs(x) >= 1000 else f"{x:.4g}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _table(heads: Sequence[str], rows: Iterable[Sequence[str]], right: set[int]) -> list[str]:
    """Aligned lines; the columns in ``right`` right-aligned."""
    grid = [list(heads), *(list(r) for r in rows)]
    widths = [max(len(c) for c in col) for col in zip(*grid, strict=True)]
    return [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in grid
    ]


def _firing(pairs: Iterable[Sequence[Any]]) -> str:
    return ", ".join(f"{r}({f})" if f else str(r) for r, f in pairs) or "-"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in counts.items())


def _config_argument(
    parser: argparse.ArgumentParser, json: str = "print JSON, not a table"
) -> None:
    parser.add_argument(
        "-c", "--config", required=True, metavar="FILE", help="configuration file (TOML)"
    )
    parser.add_argument("--json", action="store_true", help=json)


def _read(args: argparse.Namespace, query: Callable[[Any, StateReader], Any]) -> Any:
    """Run ``query(config, reader)``; a Redis failure becomes one error message."""
    import redis

    from stream.config import load_config
    from stream.reader import StateReader

    cfg = load_config(args.config)
    try:
        return query(cfg, StateReader.from_config(cfg))
    except redis.RedisError as exc:
        raise StoreError(f"cannot read Redis ({type(exc).__name__}): {exc}") from exc


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


# -- status ---------------------------------------------------------------------------------


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)


def _status_lines(d: dict[str, Any]) -> list[str]:
    mark = d["watermark"]
    shown = "-" if mark is None else f"{_utc(mark)} UTC ({_f(mark)})"
    out = [f"prefix {d['prefix']}   topic {d['topic']}   watermark {shown}", ""]
    rows, live = [], []
    for m in d["models"]:
        last = m["last_window"] or {}
        drifted = ", ".join(last.get("drifted_features", [])) or "-"
        start, n = last.get("start"), last.get("count")
        firing = _firing(last.get("firing", []))
        rows.append(
            [m["model"], m["baseline"] or "(none)", _utc(start), _f(start), _f(n), drifted, firing]
        )
        for w in m["open_windows"]:
            live.append(
                [m["model"], _utc(w["start"]), _f(w["start"]), _f(w["end"]), _f(w["count"])]
            )
    heads = ["MODEL", "BASELINE", "LAST CLOSED (UTC)", "START", "EVENTS", "DRIFTED", "FIRING"]
    out += _table(heads, rows, {3, 4})
    heads = ["MODEL", "START (UTC)", "START", "END", "EVENTS"]
    out += ["", "OPEN WINDOWS (live)", *(_table(heads, live, {2, 3, 4}) if live else ["none"])]
    parts = [
        [
            str(p["partition"]),
            _f(p["offset"]),
            _utc(p["watermark"]),
            "-" if p["active_at"] is None else f"{d['now'] - p['active_at']:.1f} s ago",
            _counts(p["dead_letters"]) or "-",
        ]
        for p in d["partitions"]
    ]
    heads = ["PARTITION", "OFFSET", "MAX EVENT TIME (UTC)", "LAST EVENT", "DEAD LETTERS"]
    out += ["", "PARTITIONS", *(_table(heads, parts, {1}) if parts else ["none stored"])]
    return [*out, "", f"dead letters: {_counts(d['dead_letters']) or 'none'}"]


def run_status(args: argparse.Namespace) -> int:
    """Print models, last and open windows, partitions and dead letters."""
    data = _read(args, lambda cfg, reader: reader.status(cfg.models))
    if args.json:
        _print_json(data)
    else:
        print("\n".join(_status_lines(data)))
    return 0


# -- show -----------------------------------------------------------------------------------


def _window_arg(text: str) -> int | str:
    if text in ("live", "latest"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START, live or latest, got {text!r}") from None


def add_show_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument("--model", required=True, help="model id")
    parser.add_argument(
        "--window",
        type=_window_arg,
        default="latest",
        metavar="START|live|latest",
        help="a closed window's start (epoch seconds), live (the open windows) or latest",
    )


def _feature_row(name: str, f: dict[str, Any]) -> list[str]:
    if f.get("top") is not None:
        top = f["top"][0] if f["top"] else None
        shown = "-" if top is None else f"{top[0]} ({_pct(top[1] / max(f['count'], 1))})"
    else:
        shown = _f(f.get("mean"))
    d = f.get("drift") or {}
    test = d.get("p_value") is not None  # a test: its p-value is what the threshold bounds
    drifted = "n/a" if d.get("value") is None and not d.get("drifted") else "no"
    if d.get("drifted"):
        drifted = f"YES ({d.get('severity') or 'medium'})"
    return [
        name,
        str(f.get("kind", "-")),
        _f(f.get("count")),
        _pct(f.get("missing_rate")),
        shown[:28],
        str(d.get("method", "-")),
        f"p={_f(d['p_value'])}" if test else _f(d.get("value")),
        _f(d.get("threshold")),
        drifted,
    ]


def _show_lines(r: dict[str, Any]) -> list[str]:
    w, c, lat, vol = r["window"], r["confidence"], r["latency_ms"], r["volume"]
    state = "LIVE (partial: still open)" if r.get("partial") else "closed"
    out = [
        f"model {r['model']}   window {_utc(w['start'])} – {_utc(w['end'])} UTC "
        f"[{w['start']}, {w['end']})   {state}   baseline {r['baseline']}",
        "",
    ]
    rows = [_feature_row(n, f) for n, f in r["features"].items()]
    if r.get("prediction"):
        rows.append(_feature_row("(prediction)", r["prediction"]))
    heads = ["FEATURE", "KIND", "COUNT", "MISSING", "MEAN/TOP", "DRIFT", "VALUE", "THRESHOLD"]
    out += _table([*heads, "DRIFTED"], rows, {2, 3, 6, 7})
    ratio = vol["ratio"]
    volume = "" if ratio is None else f" ({ratio:.2f}× the mean of {vol['history']} windows)"
    below = f"below {_f(c['threshold'])}: {_pct(c['share_below'])}"
    quantiles = ", ".join(f"{k} {_f(lat[k])}" for k in ("p50", "p90", "p95", "p99", "max"))
    out += [
        "",
        f"events       {r['count']}{volume}",
        f"confidence   mean top {_f(c['mean_top'])}, {below} (n {c['n']})",
        f"latency ms   {quantiles} (n {lat['count']})",
        f"dead letters {_counts(r['dead_letters']) or 'none'}",
    ]
    if not r.get("partial"):
        n = len(r.get("alerts", []))
        out.append(f"alerts       firing: {_firing(r.get('firing', []))}; {n} events published")
    return out


def _show_query(args: argparse.Namespace) -> Callable[[Any, StateReader], list[dict[str, Any]]]:
    def query(cfg: Any, reader: StateReader) -> list[dict[str, Any]]:
        if args.window == "live":
            return reader.live(args.model)
        got = reader.latest(args.model) if args.window == "latest" else None
        if isinstance(args.window, int):
            got = reader.result(args.model, args.window)
        return [] if got is None else [got]

    return query


def run_show(args: argparse.Namespace) -> int:
    """Print one window's result as a table (``--json``: the stored JSON)."""
    results = _read(args, _show_query(args))
    if not results:
        what = {"live": "no open window", "latest": "no closed window yet"}
        missing = what.get(args.window, f"no result for window {args.window}")
        print(f"model {args.model!r}: {missing}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(results if args.window == "live" else results[0])
    else:
        print("\n\n".join("\n".join(_show_lines(r)) for r in results))
    return 0


# -- alerts tail ----------------------------------------------------------------------------


def add_alerts_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = sub.add_parser("tail", help="print alert events as they are published")
    _config_argument(tail, "print each alert as one line of JSON")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest alert")
    tail.add_argument("--model", default=None, help="only this model's alerts")
    tail.add_argument("--max", type=int, default=None, metavar="N", help="stop after N alerts")
    tail.add_argument("--timeout", type=float, default=None, metavar="S", help="stop after S s")
    route = sub.add_parser(
        "route", help="deliver alerts to the sinks of [[routes]] (webhook, Slack, email, ...)"
    )
    route.add_argument(
        "-c", "--config", required=True, metavar="FILE", help="configuration file (TOML)"
    )
    route.add_argument("--timeout", type=float, default=None, metavar="S", help="stop after S s")


def alert_line(a: dict[str, Any]) -> str:
    """An alert as one line: time, severity, status, model, rule, feature, value/threshold."""
    return "  ".join(
        [
            _utc(a.get("emitted_at")),
            f"{a.get('severity', '-'):<8}",
            f"{a.get('status', '-'):<8}",
            str(a.get("model")),
            str(a.get("rule")),
            str(a.get("feature") or "-"),
            f"{_f(a.get('value'))}/{_f(a.get('threshold'))}",
            str(a.get("message", "")),
        ]
    )


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
    """``alerts tail``: print alerts until ``--max``, ``--timeout`` or Ctrl-C; ``alerts route``.

    Without ``--from-beginning`` only alerts produced after the start are
    printed (by message time too, as some brokers under-report the end offset).
    """
    if args.action == "route":
        return _run_route(args)
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

    from stream.config import load_config

    cfg = load_config(args.config)
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
            if not isinstance(alert, dict) or args.model not in (None, alert.get("model")):
                continue
            print(orjson.dumps(alert).decode() if args.json else alert_line(alert), flush=True)
            printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0

"""CLI subcommands that read state: ``status`` and ``show``.

Both read Redis through :class:`~stream.reader.StateReader` and print tables
(``--json``: the data as JSON). The formatting helpers and :func:`time_arg`
are shared with the ``alerts`` subcommands (:mod:`stream.alert_commands`).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from stream.exceptions import StoreError

if TYPE_CHECKING:  # imported when a command runs, so the CLI starts fast
    from stream.reader import StateReader

__all__ = ["add_show_arguments", "add_status_arguments", "run_show", "run_status", "time_arg"]

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
    labels = [
        [str(p["partition"]), _f(p["offset"]), _counts(p["dead_letters"]) or "-"]
        for p in d.get("label_partitions") or []
    ]
    if labels:
        out += [
            "",
            "LABEL PARTITIONS",
            *_table(["PARTITION", "OFFSET", "DEAD LETTERS"], labels, {1}),
        ]
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


def time_arg(text: str) -> int:
    """A time on the command line: epoch seconds, or ISO-8601 (UTC unless it names an offset).

    Raises:
        argparse.ArgumentTypeError: neither, so argparse prints a usage error.

    Example:
        >>> time_arg("1700000000"), time_arg("2026-11-24T10:00"), time_arg("2026-11-24T11:00+01:00")
        (1700000000, 1795514400, 1795514400)
    """
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected epoch seconds or an ISO-8601 UTC time like 2026-11-24T10:00, "
                f"got {text!r}"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp()
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"expected a finite time, got {text!r}")
    return math.floor(seconds)


def _window_arg(text: str) -> int | str:
    if text in ("live", "latest"):
        return text
    try:
        return time_arg(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected START (epoch seconds or ISO-8601 UTC), live or latest, got {text!r}"
        ) from None


def add_show_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument("--model", required=True, help="model id")
    parser.add_argument(
        "--window",
        type=_window_arg,
        default="latest",
        metavar="START|live|latest",
        help="a closed window's start (epoch seconds or ISO-8601 UTC), live (the open "
        "windows) or latest",
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


_QUALITY_SHOWN = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "rmse",
    "mae",
    "r2",
)


def _quality_lines(q: dict[str, Any] | None) -> list[str]:
    """``quality`` of a result: realised (with coverage), estimated, baseline."""
    if not q:
        return []
    real = q.get("realised") or {}
    metrics = real.get("metrics") or {}
    macro = metrics.get("macro") or {}
    shown = {k: metrics.get(k, macro.get(k)) for k in _QUALITY_SHOWN}
    values = ", ".join(f"{k} {_f(v)}" for k, v in shown.items() if v is not None)
    cover = real.get("coverage")
    labelled = real.get("labelled") or 0
    head = f"{labelled} labels" + ("" if cover is None else f" ({_pct(cover)} of the window)")
    out = [f"quality      {head}: {values or 'no labels yet'}"]
    delay = real.get("delay_s") or {}
    if delay.get("p50") is not None:
        out.append(f"label delay  p50 {_f(delay['p50'])} s, p90 {_f(delay.get('p90'))} s")
    est = q.get("estimated")
    if est:
        keys = ("accuracy", "precision", "recall", "f1", "roc_auc")
        out.append("estimated    " + ", ".join(f"{k} {_f(est.get(k))}" for k in keys))
    base = q.get("baseline") or {}
    if base:
        out.append(
            "baseline     "
            + ", ".join(f"{k} {_f(base.get(k))}" for k in _QUALITY_SHOWN if base.get(k) is not None)
        )
    return out


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
    out += _quality_lines(r.get("quality"))
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

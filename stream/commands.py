"""CLI subcommands that work on a configuration: ``worker``, ``baseline``.

The read-only ones are in :mod:`stream.query_commands` (``status``, ``show``) and
:mod:`stream.alert_commands` (``alerts tail|history|route``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

__all__ = [
    "add_baseline_arguments",
    "add_mute_arguments",
    "add_worker_arguments",
    "run_baseline",
    "run_mute",
    "run_worker",
]


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", required=True, metavar="FILE", help="configuration file (TOML)"
    )


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="stop after this long (default: never)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every flush and close")


def run_worker(args: argparse.Namespace) -> int:
    """Consume predictions until SIGTERM/SIGINT; flush and close windows on the way out."""
    from stream.closer import WindowCloser
    from stream.config import load_config
    from stream.worker import Worker

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    cfg = load_config(args.config)
    worker = Worker(cfg, closer_factory=lambda w: WindowCloser(w, w.topic_partitions))
    worker.install_signal_handlers()
    stats = worker.run(max_seconds=args.max_seconds)
    print(
        f"worker stopped: {stats.messages} messages, {stats.events} events, "
        f"{sum(stats.dead_letters.values())} dead letters {stats.dead_letters}, "
        f"{stats.windows_closed} windows closed",
        file=sys.stderr,
    )
    return 0


def add_baseline_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    reg = sub.add_parser("register", help="build reference sketches from a training file")
    _config_argument(reg)
    reg.add_argument("--model", required=True, help="model id (declared in the configuration)")
    reg.add_argument("--data", required=True, metavar="FILE", help="train.csv or train.parquet")
    reg.add_argument("--label-column", default=None, help="ground-truth column (not a feature)")
    reg.add_argument(
        "--prediction-column", default=None, help="predictions on the training set (not a feature)"
    )
    reg.add_argument(
        "--proba-column",
        default=None,
        help="binary classifiers: the positive class's probability on the training set "
        "(calibrates the estimated quality; not a feature)",
    )
    reg.add_argument("--version", default=None, help="version name (default: a UTC timestamp)")


def run_baseline(args: argparse.Namespace) -> int:
    """``baseline register``: validate the file against the model and store its sketches."""
    from stream.baseline import BaselineStore, build_baseline
    from stream.config import load_config
    from stream.exceptions import ConfigError
    from stream.keys import Keys
    from stream.redis_client import connect
    from stream.results import drift_method
    from stream.table import read_table

    cfg = load_config(args.config)
    spec = cfg.models.get(args.model)
    if spec is None:
        raise ConfigError(f"model {args.model!r} is not in the configuration: {sorted(cfg.models)}")
    print(f"reading {args.data} ...", file=sys.stderr)
    columns = read_table(args.data)
    kinds: dict[str, Any] | None = {f.name: f.kind for f in spec.features} or None
    reserved = (args.label_column, args.prediction_column, args.proba_column)
    total = len(columns) - sum(1 for c in reserved if c)
    done = [0]

    def progress(name: str) -> None:
        done[0] += 1
        width = 30
        filled = width * done[0] // max(total, 1)
        bar = "#" * filled + "." * (width - filled)
        print(f"\r[{bar}] {done[0]}/{total} {name[:30]:<30}", end="", file=sys.stderr)

    base = build_baseline(
        args.model,
        columns,
        kinds,
        label_column=args.label_column,
        prediction_column=args.prediction_column,
        version=args.version,
        progress=progress,
        methods=lambda name, kind, rows: drift_method(name, kind, spec, rows)[0],
        proba_column=args.proba_column,
        positive_class=spec.labels.positive_class if spec.labels else None,
    )
    base.source = str(args.data)
    print(file=sys.stderr)
    version = BaselineStore(connect(cfg.redis), Keys(cfg.redis.prefix)).save(base)
    kinds_seen = base.kinds()
    print(
        f"registered baseline {version!r} for model {args.model!r}: {base.rows} rows, "
        f"{len(kinds_seen)} features "
        f"({', '.join(f'{n}:{k}' for n, k in kinds_seen.items())})"
        + (f", prediction {base.prediction.kind}" if base.prediction else "")
    )
    return 0


def add_mute_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument("--model", required=True)
    parser.add_argument("--feature", default=None, help="one feature (default: all)")
    parser.add_argument("--rule", default=None, help="one rule, e.g. feature_drift (default: all)")
    parser.add_argument(
        "--for", dest="duration", default="1h", help='how long, e.g. "2h" (default 1h)'
    )
    parser.add_argument("--off", action="store_true", help="remove this mute instead")


def run_mute(args: argparse.Namespace) -> int:
    """Mute a model's alerts (or one feature's or rule's) for a while, or unmute."""
    import time

    from stream.config import load_config
    from stream.durations import format_duration, parse_duration
    from stream.keys import Keys
    from stream.mutes import MuteStore
    from stream.redis_client import connect

    cfg = load_config(args.config)
    store = MuteStore(connect(cfg.redis), Keys(cfg.redis.prefix))
    what = (
        f"model {args.model!r}"
        + (f" feature {args.feature!r}" if args.feature else "")
        + (f" rule {args.rule!r}" if args.rule else "")
    )
    if args.off:
        found = store.unmute(args.model, args.feature, args.rule)
        print(f"unmuted {what}" if found else f"{what} was not muted")
        return 0
    seconds = parse_duration(args.duration, "--for")
    until = time.time() + seconds
    store.mute(args.model, until, args.feature, args.rule)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(until))
    print(f"muted {what} for {format_duration(seconds)} (until {stamp})")
    return 0

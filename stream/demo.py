"""``driftline demo``: the whole pipeline on one machine in about a minute.

Starts the embedded broker and Redis, registers baselines for three simulated
models (:mod:`stream.demo_data`), runs one stream worker in a background
thread and a simulated model server that logs predictions with
:class:`~stream.sdk.PredictionLogger`. Event time runs ``--speed`` times faster
than the wall clock, so a window of ``--window-seconds`` closes every few
seconds. From window :attr:`DemoOptions.drift_from` on, drift is injected into
``churn.income``, ``churn.plan`` and ``fraud.amount``, and ``pricing`` serves
slowly for three windows. Every closed window (from ``driftline.windows``) and
every alert (from ``driftline.alerts``) is printed as it arrives.

``churn`` and ``pricing`` join labels: the model server sends the ground truth
of 80 % of their predictions with :class:`~stream.sdk.LabelLogger`, one to two
windows after the prediction. As they arrive each window's quality matures;
it is read from Redis (:meth:`~stream.reader.StateReader.quality`) and printed
twice per window: once half of its labels are joined, and when all are (its
final coverage) — accuracy against the estimate made at close and the
baseline's (churn), RMSE and MAE (pricing).

A summary names what drifted and from which window, what stayed stable, the
alert counts, the realised quality against the estimated one, and whether every
window counted exactly the events and labels sent.

:func:`run_demo` returns a :class:`DemoSummary`; :func:`main` returns its exit
status: 0 when every window closed with exact counts, joined exactly the labels
sent, and exactly the injected changes were detected, 1 otherwise. Window
numbers are 1-based.
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stream.demo_view import (
    Maturity,
    Viewer,
    qfmt,
    watch,
)
from stream.exceptions import ConfigError, DriftlineError

if TYPE_CHECKING:  # the heavy modules load when the demo runs, not with the CLI
    from stream.config import Config
    from stream.demo_data import Sent
    from stream.reader import StateReader

__all__ = [
    "DemoOptions",
    "DemoSummary",
    "ModelReport",
    "add_arguments",
    "main",
    "run_command",
    "run_demo",
]

LATENESS_S = 1  # above demo_data.TICK_S: events sent in event-time order are never too late
TRAINING_ROWS = 100_000
SETTLE_S = 30.0  # longest the demo waits for the last windows to close and mature
Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoOptions:
    """The demo's knobs (the command-line options)."""

    seed: int = 7
    windows: int = 16
    window_seconds: int = 5
    events: int = 3000  # per window and model (Poisson around it)
    speed: float = 2.0  # event seconds per wall second
    quiet: bool = False

    @property
    def drift_from(self) -> int:
        """First window with injected drift (the latency regression starts here too)."""
        return max(2, min(6, self.windows // 2 + 1))

    @property
    def slow_windows(self) -> range:
        """Windows in which ``pricing`` serves slowly (three at most, then it recovers)."""
        return range(self.drift_from, min(self.windows, self.drift_from + 2) + 1)


@dataclass
class ModelReport:
    """What the demo observed for one model (windows are 1-based)."""

    model: str
    features: list[str]
    windows: list[int] = field(default_factory=list)
    events: int = 0
    flagged: dict[str, list[int]] = field(default_factory=dict)
    prediction_flagged: list[int] = field(default_factory=list)
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)
    latency_alert_windows: list[int] = field(default_factory=list)
    labels_sent: dict[int, int] = field(default_factory=dict)  # window → labels sent
    labelled: dict[int, int] = field(default_factory=dict)  # window → labels joined in the end
    quality: dict[int, dict[str, Any]] = field(default_factory=dict)  # window → final metrics
    estimated: dict[int, float] = field(default_factory=dict)  # window → accuracy estimated
    baseline_quality: dict[str, Any] | None = None  # the training quality

    @property
    def drifted(self) -> dict[str, int]:
        """Feature → first window in which it was flagged."""
        return {f: ws[0] for f, ws in self.flagged.items() if ws}

    @property
    def stable(self) -> list[str]:
        """Features never flagged."""
        return [f for f in self.features if not self.flagged.get(f)]

    def realised(self, metric: str) -> float | None:
        """``metric`` (``accuracy``, ``mae``, ``mse``) over every label joined: the
        windows' values weighted by their labels; ``None`` without labels."""
        pairs = [(q.get(metric), self.labelled.get(w, 0)) for w, q in self.quality.items()]
        kept = [(float(v), n) for v, n in pairs if isinstance(v, int | float) and n]
        total = sum(n for _, n in kept)
        return sum(v * n for v, n in kept) / total if total else None

    @property
    def estimated_accuracy(self) -> float | None:
        """The accuracy estimated at close, weighted like :meth:`realised`."""
        kept = [(v, self.labelled.get(w, 0)) for w, v in self.estimated.items()]
        total = sum(n for _, n in kept)
        return sum(v * n for v, n in kept) / total if total else None


@dataclass
class DemoSummary:
    """The outcome of a demo run; ``exit_code`` is 0 when ``problems`` is empty."""

    options: DemoOptions
    injected: dict[str, tuple[str, ...]]
    models: dict[str, ModelReport]
    problems: list[str]
    elapsed_s: float

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0

    @property
    def drifted(self) -> dict[str, dict[str, int]]:
        """Model → feature → first window flagged (models without drift map to ``{}``)."""
        return {name: r.drifted for name, r in self.models.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``driftline demo`` options."""
    d = DemoOptions()
    for flag, kind, default, text in (
        ("--seed", int, d.seed, "random seed"),
        ("--windows", int, d.windows, "windows to run, ≥ 2"),
        ("--window-seconds", int, d.window_seconds, "window length in event time, ≥ 1"),
        ("--events", int, d.events, "events per window and model, ≥ 500"),
        ("--speed", float, d.speed, "event seconds per wall second"),
    ):
        meta = "S" if kind is float or flag == "--window-seconds" else "N"
        parser.add_argument(
            flag, type=kind, default=default, metavar=meta, help=f"{text} (default: {default})"
        )
    parser.add_argument("--quiet", action="store_true", help="print the summary only")


def run_command(args: argparse.Namespace) -> int:
    """``driftline demo``: check the options, run it and return the exit status."""
    a = args
    opts = DemoOptions(a.seed, a.windows, a.window_seconds, a.events, a.speed, a.quiet)
    if opts.windows < 2 or opts.window_seconds < 1 or opts.events < 500 or not opts.speed > 0:
        raise ConfigError("need --windows ≥ 2, --window-seconds ≥ 1, --events ≥ 500, --speed > 0")
    return run_demo(opts).exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (``--seed``, ``--windows``, ...) and run the demo; the exit status."""
    parser = argparse.ArgumentParser(prog="driftline demo", description=__doc__)
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


def _send(
    cfg: Config,
    opts: DemoOptions,
    t0: int,
    maturity: Maturity,
    worker: threading.Thread,
    say: Say,
) -> None:
    """Run the simulated model server (filling in ``maturity.sent``), printing what
    arrives while it waits between steps."""
    from stream.demo_data import send_traffic
    from stream.sdk import LabelLogger, PredictionLogger

    def wait_until(deadline: float) -> None:
        if not worker.is_alive():
            raise DriftlineError("the stream worker stopped unexpectedly")
        watch(maturity.viewer, maturity, deadline - time.monotonic())

    conf = {k: v for k, v in cfg.producer_conf().items() if k != "bootstrap.servers"}
    bootstrap = cfg.kafka["bootstrap.servers"]
    logger = PredictionLogger(bootstrap, cfg.topics.predictions, linger_s=0.05, producer_conf=conf)
    try:
        labels = LabelLogger(bootstrap, cfg.topics.labels, linger_s=0.05, producer_conf=conf)
        try:
            send_traffic(opts, logger, labels, t0, LATENESS_S, wait_until, say, maturity.sent)
        finally:
            labels.close()
    finally:
        logger.close()


def _add_quality(
    r: ModelReport,
    viewer: Viewer,
    sent: Sent,
    final: Mapping[tuple[str, int], Mapping[str, Any]],
    windows: int,
) -> None:
    """The labels sent and joined per window, the final quality and the estimate at close."""
    for w in range(1, windows + 1):
        if (r.model, w) not in sent.planned:
            continue
        r.labels_sent[w] = sent.labels[r.model, w]
        q = final.get((r.model, w)) or {}
        r.labelled[w] = int(q.get("labelled") or 0)
        if q:
            r.quality[w] = q["metrics"]
        at_close = viewer.results.get((r.model, viewer.t0 + (w - 1) * viewer.size)) or {}
        quality = at_close.get("quality") or {}
        r.baseline_quality = quality.get("baseline") or r.baseline_quality
        est = (quality.get("estimated") or {}).get("accuracy")
        if isinstance(est, int | float):
            r.estimated[w] = float(est)


def _reports(
    viewer: Viewer,
    opts: DemoOptions,
    sent: Sent,
    final: Mapping[tuple[str, int], Mapping[str, Any]],
) -> tuple[dict[str, ModelReport], list[str]]:
    """Per-model reports from what the viewer received and the final quality of
    each window; and every deviation from the plan."""
    from stream.demo_data import MODELS

    reports = {m.name: ModelReport(m.name, list(m.kinds)) for m in MODELS.values()}
    for (model, start), res in sorted(viewer.results.items()):
        r, w = reports[model], viewer.index(start)
        r.windows.append(w)
        r.events += int(res["count"])
        for f in res["drifted_features"]:
            r.flagged.setdefault(f, []).append(w)
        if ((res.get("prediction") or {}).get("drift") or {}).get("drifted"):
            r.prediction_flagged.append(w)
    for a in viewer.alerts.values():
        r = reports[a["model"]]
        r.alerts[a["rule"], a["status"]] += 1
        if a["rule"] == "latency_p99" and a["status"] == "firing":
            r.latency_alert_windows.append(viewer.index(a["window"]["start"]))
    for r in reports.values():
        _add_quality(r, viewer, sent, final, opts.windows)
    problems: list[str] = []
    every = list(range(1, opts.windows + 1))
    for m in MODELS.values():
        r = reports[m.name]
        r.latency_alert_windows.sort()
        missing = sorted(set(every) - set(r.windows))
        if missing:
            problems.append(f"{m.name}: windows {missing} did not close")
        results = viewer.results.items()
        counts = {viewer.index(st): res["count"] for (n, st), res in results if n == m.name}
        wrong = [w for w in every if w in r.windows and counts[w] != sent.events[m.name, w]]
        if wrong:
            problems.append(f"{m.name}: windows {wrong} counted other than the events sent")
        if m.labels is not None:
            wrong = [w for w in every if r.labelled.get(w, 0) != r.labels_sent.get(w, 0)]
            if wrong:
                joined = {w: f"{r.labelled.get(w, 0)}/{r.labels_sent.get(w, 0)}" for w in wrong}
                problems.append(f"{m.name}: labels joined/sent differ in windows {joined}")
        fired = sorted({rule for rule, _ in r.alerts if rule.startswith("quality_")})
        if fired:  # every model is calibrated: the drift costs churn about a point of accuracy
            problems.append(f"{m.name}: {', '.join(fired)} fired, but no quality drop was injected")
        for f in m.kinds:
            want = list(range(opts.drift_from, opts.windows + 1)) if f in m.drifts else []
            if [w for w in r.flagged.get(f, []) if w in every] != want:
                problems.append(f"{m.name}.{f}: flagged in windows {r.flagged.get(f)}, want {want}")
        want_slow = list(opts.slow_windows) if m.slows_down else []
        if r.latency_alert_windows != want_slow:
            got = r.latency_alert_windows
            problems.append(f"{m.name}: latency alerts in windows {got}, want {want_slow}")
    return reports, problems


def _summary_lines(s: DemoSummary) -> list[str]:
    opts, lines = s.options, []
    total = sum(r.events for r in s.models.values())
    lines.append(
        f"summary: {opts.windows} windows of {opts.window_seconds} s x {len(s.models)} models, "
        f"{total:,} events; changes injected from window {opts.drift_from}"
    )
    for name, r in s.models.items():
        drifted = ", ".join(f"{f} (from window {w})" for f, w in r.drifted.items()) or "none"
        injected = ", ".join(s.injected.get(name, ())) or "none"
        lines.append(f"  {name:<8} drifted: {drifted}   [injected: {injected}]")
        lines.append(f"  {'':<8} stable:  {', '.join(r.stable) or 'none'}")
        if r.prediction_flagged:
            lines.append(f"  {'':<8} prediction drifted from window {r.prediction_flagged[0]}")
        by_rule: dict[str, list[str]] = {}
        for (rule, status), n in sorted(r.alerts.items()):
            by_rule.setdefault(rule, []).append(f"{n} {status}")
        shown = "; ".join(f"{rule} {', '.join(v)}" for rule, v in by_rule.items()) or "none"
        lines.append(f"  {'':<8} alerts:  {shown}")
        if r.latency_alert_windows:
            lines.append(f"  {'':<8} latency p99 over SLO in windows {r.latency_alert_windows}")
        if r.labels_sent:
            lines.append(f"  {'':<8} quality: {_quality_summary(r)}")
    if s.problems:
        lines.extend(f"PROBLEM: {p}" for p in s.problems)
    else:
        lines.append("every window counted exactly the events sent (no loss, no double count)")
        lines.append("every window joined exactly the labels sent (no loss, no double count)")
        lines.append("OK: exactly the injected drift and latency regression were detected")
    return lines


def _quality_summary(r: ModelReport) -> str:
    """Labels joined, and the realised quality against the estimated and the baseline's."""
    joined = sum(r.labelled.values())
    share = f" ({100 * joined / r.events:.0f} % of the predictions)" if r.events else ""
    text = f"{joined:,} labels{share}; "
    base = r.baseline_quality or {}
    if "accuracy" in base or r.estimated:
        return text + (
            f"accuracy {qfmt(r.realised('accuracy'))} realised vs "
            f"{qfmt(r.estimated_accuracy)} estimated (baseline {qfmt(base.get('accuracy'))})"
        )
    mse = r.realised("mse")
    rmse = None if mse is None else mse**0.5
    return text + (
        f"RMSE {qfmt(rmse)}, MAE {qfmt(r.realised('mae'))} "
        f"(baseline {qfmt(base.get('rmse'))}, {qfmt(base.get('mae'))})"
    )


def run_demo(opts: DemoOptions | None = None) -> DemoSummary:
    """Run the demo (see the module docstring); prints as it goes, then the summary."""
    from stream.closer import WindowCloser
    from stream.demo_data import MODELS, Sent, demo_config, register_baselines
    from stream.embedded import EmbeddedStack
    from stream.reader import StateReader
    from stream.worker import Worker

    opts = opts or DemoOptions()
    began = time.monotonic()

    def say(line: str) -> None:
        if not opts.quiet:
            print(line, flush=True)

    wall = opts.window_seconds / opts.speed
    say(
        f"driftline demo: seed {opts.seed}, {opts.windows} windows of {opts.window_seconds} s "
        f"event time (one every {wall:.1f} s), ~{opts.events:,} events per window and model"
    )
    stack = EmbeddedStack()
    worker: Worker | None = None
    thread: threading.Thread | None = None
    viewer: Viewer | None = None
    reader: StateReader | None = None
    problems: list[str] = []
    reports: dict[str, ModelReport] = {}

    def stop_worker() -> list[str]:
        if worker is None or thread is None or not thread.is_alive():
            return []
        worker.stop()
        thread.join(30)
        return ["the worker did not stop within 30 s"] if thread.is_alive() else []

    try:
        stack.start()
        say(f"Kafka broker  {stack.bootstrap}  (embedded Tansu, pid {stack.kafka.pid})")
        say(f"Redis         {stack.redis_url}  (embedded valkey, pid {stack.redis.pid})")
        cfg = demo_config(stack.bootstrap, stack.redis_url, opts.window_seconds, LATENESS_S)
        for m in MODELS.values():
            slo = f", p99 SLO {m.latency_slo_ms:g} ms" if m.latency_slo_ms else ""
            say(f"model {m.name:<8} {m.description}{slo}")
        say(f"registering baselines ({TRAINING_ROWS:,} training rows per model):")
        tty = sys.stdout.isatty() and not opts.quiet
        register_baselines(cfg, opts.seed, TRAINING_ROWS, say, tty)
        worker = Worker(cfg, closer_factory=lambda w: WindowCloser(w, w.topic_partitions))
        thread = threading.Thread(target=worker.run, name="driftline-demo-worker", daemon=True)
        thread.start()
        t0 = int(time.time()) // opts.window_seconds * opts.window_seconds
        viewer = Viewer(cfg, t0, opts.window_seconds, opts.windows, say)
        labels = worker.labels
        deadline = time.monotonic() + 30
        while thread.is_alive() and time.monotonic() < deadline:
            if worker.parts and (labels is None or labels.parts):
                break
            viewer.poll(0.1)
        if not worker.parts or (labels is not None and not labels.parts):
            raise DriftlineError("the stream worker did not get its partitions within 30 s")
        n_labels = 0 if labels is None else len(labels.parts)
        say(
            f"worker joined ({len(worker.parts)} prediction and {n_labels} label partitions); "
            f"streaming predictions and, a window or two later, labels:"
        )
        reader = StateReader.from_config(cfg)
        maturity = Maturity(reader, viewer, Sent(), say)
        _send(cfg, opts, t0, maturity, thread, say)
        due = len(MODELS) * opts.windows
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            closed = [k for k in viewer.results if viewer.index(k[1]) <= opts.windows]
            if len(closed) >= due and not viewer.pending and maturity.done:
                break
            watch(viewer, maturity, 0.2)
        late = stop_worker()  # its last flush is in the final counts
        reports, problems = _reports(viewer, opts, maturity.sent, maturity.final())
        problems += late
    finally:
        problems += stop_worker()
        if viewer is not None:
            viewer.close()
        if reader is not None:
            reader.client.close()
        worker = viewer = reader = None
        gc.collect()  # frees the worker's producer (held in a cycle) before its broker stops
        stack.stop()
    summary = DemoSummary(
        opts,
        {m.name: m.drifts for m in MODELS.values() if m.drifts},
        reports,
        problems,
        time.monotonic() - began,
    )
    for line in _summary_lines(summary):
        print(line, flush=True)
    print(f"done in {summary.elapsed_s:.1f} s; worker and servers stopped", flush=True)
    return summary

"""What ``driftline demo`` prints while it runs: closed windows with their alerts,
and each window's quality as its labels are joined.

:class:`Viewer` reads the window summaries and alerts from Kafka and prints a
window's line once its alerts have arrived (at most ``ALERT_WAIT_S`` later);
:class:`Maturity` reads the quality of the windows whose labels are coming
from Redis and prints it when half the labels are joined and when all are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream.config import Config
    from stream.demo_data import Sent
    from stream.reader import StateReader

__all__ = [
    "ALERT_WAIT_S",
    "QUALITY_READ_S",
    "Maturity",
    "Viewer",
    "alert_line",
    "clock",
    "fmt",
    "qfmt",
    "quality_text",
    "watch",
]

ALERT_WAIT_S = 5.0  # longest a window line waits for its alerts to arrive
QUALITY_READ_S = 0.25  # how often the quality of maturing windows is read from Redis
Say = Callable[[str], None]


def fmt(v: Any) -> str:
    """A number for a window line: 0, 1 or 3 decimals by size."""
    if not isinstance(v, int | float) or isinstance(v, bool):
        return "n/a"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"


def clock(ts: float) -> str:
    """``HH:MM:SS`` UTC."""
    return time.strftime("%H:%M:%S", time.gmtime(ts))


def qfmt(v: Any) -> str:
    """A quality metric: shares with three decimals, money with thousands separators."""
    if not isinstance(v, int | float) or isinstance(v, bool):
        return "n/a"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3f}"


def alert_line(a: Mapping[str, Any], window: int | None = None) -> str:
    """An alert as the demo prints it (with its window number when given)."""
    subject = f"{a['model']}.{a['feature']}" if a["feature"] else a["model"]
    of = "" if window is None else f" (window {window})"
    return (
        f"       ALERT {a['severity']:<8} {a['status']:<8} {a['rule']:<17}"
        f"{subject:<22} {a['metric']} {fmt(a['value'])} vs {fmt(a['threshold'])}{of}"
    )


class Viewer:
    """Reads window summaries and alerts from Kafka and prints them as they arrive
    (of windows 1 to ``last``: the traffic goes on a little after them)."""

    def __init__(self, cfg: Config, t0: int, size: int, last: int, say: Say) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.t0, self.size, self.last, self.say = t0, size, last, say
        self.consumer = Consumer(cfg.consumer_conf(**{"group.id": "driftline-demo-viewer"}))
        topics = (cfg.topics.windows, cfg.topics.alerts)
        meta = self.consumer.list_topics(timeout=10).topics
        self.consumer.assign(
            [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in meta[t].partitions]
        )
        self.alerts_topic = cfg.topics.alerts
        self.results: dict[tuple[str, int], dict[str, Any]] = {}
        self.alerts: dict[str, dict[str, Any]] = {}
        self._queue: list[tuple[tuple[str, int], float]] = []

    def index(self, start: int) -> int:
        """1-based window number of a window start."""
        return (start - self.t0) // self.size + 1

    @property
    def pending(self) -> bool:
        """Whether a received window is still waiting for its alerts."""
        return bool(self._queue)

    def shown(self, model: str, start: int) -> dict[str, Any] | None:
        """The result of a window whose line is printed, else ``None``."""
        if any(key == (model, start) for key, _ in self._queue):
            return None
        return self.results.get((model, start))

    def poll(self, seconds: float) -> None:
        """Read and print for ``seconds`` (at least one non-blocking read)."""
        import orjson

        deadline = time.monotonic() + seconds
        while True:
            left = min(0.1, deadline - time.monotonic())
            for msg in self.consumer.consume(1000, max(0.0, left)):
                value = msg.value()
                if msg.error() is not None or value is None:
                    continue
                data = orjson.loads(value)
                if self.index(int(data["window"]["start"])) > self.last:
                    continue
                if msg.topic() == self.alerts_topic:
                    fresh = data["alert_id"] not in self.alerts
                    self.alerts.setdefault(data["alert_id"], data)
                    if fresh and str(data["rule"]).startswith("quality_"):  # not tied to a close
                        self.say(alert_line(data, self.index(int(data["window"]["start"]))))
                    continue
                key = (data["model"], int(data["window"]["start"]))
                if key not in self.results:  # a redone close repeats its summary
                    self.results[key] = data
                    self._queue.append((key, time.monotonic()))
            self._show_ready()
            if time.monotonic() >= deadline:
                return

    def _show_ready(self) -> None:
        while self._queue:
            key, since = self._queue[0]
            res = self.results[key]
            ids = [a["alert_id"] for a in res.get("alerts") or []]
            if any(a not in self.alerts for a in ids) and time.monotonic() - since < ALERT_WAIT_S:
                return
            self._queue.pop(0)
            start, end = key[1], int(res["window"]["end"])
            drifted = ", ".join(res["drifted_features"]) or "-"
            self.say(
                f"w{self.index(start):>3} {clock(start)}–{clock(end)}  {res['model']:<8}"
                f"{res['count']:>7,} events  p99 {fmt(res['latency_ms']['p99']):>6} ms"
                f"  drifted: {drifted}"
            )
            for a in (self.alerts[i] for i in ids if i in self.alerts):
                self.say(alert_line(a))

    def close(self) -> None:
        self.consumer.close()


def quality_text(task: str, metrics: Mapping[str, Any], at_close: Mapping[str, Any]) -> str:
    """Accuracy against the estimate and the baseline's (classification), or RMSE and MAE."""
    base = at_close.get("baseline") or {}
    if task == "classification":
        est = (at_close.get("estimated") or {}).get("accuracy")
        return (
            f"accuracy {qfmt(metrics.get('accuracy'))} "
            f"(estimated {qfmt(est)}, baseline {qfmt(base.get('accuracy'))})"
        )
    return (
        f"RMSE {qfmt(metrics.get('rmse'))}, MAE {qfmt(metrics.get('mae'))} "
        f"(baseline {qfmt(base.get('rmse'))}, {qfmt(base.get('mae'))})"
    )


class Maturity:
    """Reads the quality of windows whose labels are coming and prints it as it matures:
    once half of a window's labels are joined, and once all are."""

    def __init__(self, reader: StateReader, viewer: Viewer, sent: Sent, say: Say) -> None:
        self.reader, self.viewer, self.sent, self.say = reader, viewer, sent, say
        self.stage: dict[tuple[str, int], int] = {}  # (model, window) → 1: half shown, 2: final
        self._next_read = 0.0

    def start(self, window: int) -> int:
        return self.viewer.t0 + (window - 1) * self.viewer.size

    @property
    def done(self) -> bool:
        """Whether every window with labels has shown its final quality."""
        return all(self.stage.get(key) == 2 for key in self.sent.planned)

    def poll(self) -> None:
        """Read the windows still maturing (every ``QUALITY_READ_S`` at most) and print."""
        if time.monotonic() < self._next_read:
            return
        self._next_read = time.monotonic() + QUALITY_READ_S
        for (model, w), planned in sorted(self.sent.planned.items(), key=lambda kv: kv[0][::-1]):
            stage = self.stage.get((model, w), 0)
            res = self.viewer.shown(model, self.start(w)) if stage < 2 else None
            q = self.reader.quality(model, self.start(w)) if res is not None else None
            if res is None or q is None:
                continue
            n = int(q["labelled"])
            if n >= planned and self.sent.labels[model, w] == planned:
                self.stage[model, w] = 2
            elif 2 * n >= planned and stage == 0:
                self.stage[model, w] = 1
            else:
                continue
            final = " final" if self.stage[model, w] == 2 else "      "
            coverage = f"{100 * n / res['count']:.0f} %" if res["count"] else "n/a"
            self.say(
                f"w{w:>3} {model:<8} quality: {n:>6,} labels ({coverage}){final}  "
                + quality_text(q["task"], q["metrics"], res.get("quality") or {})
            )

    def final(self) -> dict[tuple[str, int], dict[str, Any]]:
        """The quality of every window with labels as stored now."""
        out = {}
        for model, w in self.sent.planned:
            q = self.reader.quality(model, self.start(w))
            if q is not None:
                out[model, w] = q
        return out


def watch(viewer: Viewer, maturity: Maturity, seconds: float) -> None:
    """Print arriving windows, alerts and maturing quality for ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        viewer.poll(min(QUALITY_READ_S, deadline - time.monotonic()))
        maturity.poll()
        if time.monotonic() >= deadline:
            return

"""Closing windows exactly once, from any worker.

The watermark is taken over all partitions of the predictions topic from what
Redis holds (:meth:`~stream.store.StateStore.partition_states`): the smallest
largest-event-time among partitions that saw an event within
``idle_timeout`` (idle partitions excluded; when every partition is idle, the
largest), minus ``allowed_lateness``. A partition with no stored state yet
holds the watermark back for ``idle_timeout`` after the closer starts. A
window closes once the watermark reaches its end.

Closing a window, by whichever worker gets there first:

1. claim it: ``SET close:<start> claimed:<token> NX EX 20`` (a closer that
   dies mid-way lets the claim expire and another worker redoes the close,
   which is idempotent up to step 6);
2. fence it on every partition (``cu:<model>``), so no delta can land in it
   any more (a worker whose flush is refused re-reads from its stored offset
   and dead-letters those events as ``too_late``);
3. merge every partition's deltas, compute the result against the baseline
   and the previous window, evaluate the rules;
4. store result, merged sketches and history (one transaction on the
   model's hash slot);
5. publish the window summary and the alert events, and wait for delivery;
6. mark the close ``done`` and delete the deltas.

A window therefore produces one stored result; its summary and alerts are
published at least once, and a repeat carries the same ``alert_id``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from alerting.lifecycle import dump_state, load_state
from alerting.rules import evaluate_window
from alerting.settings import TrendRule
from sketches import CategoricalCounter, QuantileSketch, ReferenceHistogram
from stream.baseline import Baseline
from stream.fold import WindowSketches
from stream.mutes import MuteStore
from stream.quality import close_quality
from stream.results import window_result

__all__ = ["WindowCloser", "load_sketches", "sketch_fields", "watermark"]

log = logging.getLogger("driftline.closer")
CLAIM_TTL_S = 20  # a closer killed mid-close blocks the window this long


def watermark(
    states: Sequence[Any],
    now: float,
    idle_timeout_s: float,
    lateness_s: float,
    started_at: float = -math.inf,
) -> float | None:
    """The global watermark from partition states (see the module docstring).

    Example:
        >>> from stream.store import PartitionState as S
        >>> watermark([S(0, 1, 100.0, 9.0, {}), S(1, 1, 50.0, 9.0, {})], 10.0, 5.0, 10.0)
        40.0
        >>> watermark([S(0, 1, 100.0, 9.0, {}), S(1, 1, 50.0, 1.0, {})], 10.0, 5.0, 10.0)
        90.0
    """
    seen = [s for s in states if s.watermark is not None]
    if not seen or (len(seen) < len(states) and now - started_at < idle_timeout_s):
        return None  # a partition that has not reported yet holds it back for a while
    active = [
        s.watermark for s in seen if s.active_at is not None and now - s.active_at <= idle_timeout_s
    ]
    mark = min(active) if active else max(s.watermark for s in seen)
    return float(mark - lateness_s)


def sketch_fields(sk: WindowSketches) -> dict[str, bytes]:
    """A merged window as a hash of bytes (for the previous-window comparison)."""
    out: dict[str, bytes] = {
        "@meta": orjson.dumps(
            {
                "n": sk.n,
                "conf_n": sk.conf_n,
                "conf_sum": sk.conf_sum,
                "conf_below": sk.conf_below,
                "dlq": sk.dlq,
            }
        ),
        "@latency": sk.latency.to_bytes(),
    }
    for name, h in sk.hist.items():
        out[f"h:{name}"] = h.to_bytes()
    for name, c in sk.cats.items():
        out[f"c:{name}"] = c.to_bytes()
    if sk.prediction is not None:
        out["@prediction"] = sk.prediction.to_bytes()
    if sk.scores is not None:
        out["@score"] = sk.scores.astype("<f8").tobytes()
    return out


def load_sketches(raw: Mapping[Any, bytes]) -> WindowSketches | None:
    """Inverse of :func:`sketch_fields` (``None`` for an empty hash)."""
    if not raw:
        return None
    f = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in raw.items()}
    meta = orjson.loads(f["@meta"])
    sk = WindowSketches(
        n=int(meta["n"]),
        latency=QuantileSketch.from_bytes(f["@latency"]),
        conf_n=int(meta["conf_n"]),
        conf_sum=float(meta["conf_sum"]),
        conf_below=int(meta["conf_below"]),
        dlq=dict(meta["dlq"]),
    )
    for key, value in f.items():
        if key.startswith("h:"):
            sk.hist[key[2:]] = ReferenceHistogram.from_bytes(value)
        elif key.startswith("c:"):
            sk.cats[key[2:]] = CategoricalCounter.from_bytes(value)
    if "@score" in f:
        sk.scores = np.frombuffer(f["@score"], dtype="<f8").astype(np.float64)
    if "@prediction" in f:
        blob = f["@prediction"]
        try:
            sk.prediction = ReferenceHistogram.from_bytes(blob)
        except ValueError:
            sk.prediction = CategoricalCounter.from_bytes(blob)
    return sk


def _history_needed(trends: Sequence[TrendRule]) -> int:
    """Earlier results the trend rules evaluated at close need (quality trends are
    evaluated as windows mature, from the window qualities)."""
    return max((t.windows for t in trends if not t.on_quality), default=1) - 1


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class WindowCloser:
    """Closes due windows for a worker (see the module docstring)."""

    def __init__(self, worker: Any, partitions: Callable[[], list[int]]) -> None:
        self.w = worker
        self.partitions = partitions
        cfg = worker.config
        self.retention = max(1, math.ceil(cfg.windows.retention_s))
        self.started_at = worker.clock()
        # the last window this closer closed, per model: the next close compares with it
        self._last: dict[str, tuple[int, WindowSketches, dict[str, Any]]] = {}

    def current_watermark(self) -> float | None:
        cfg = self.w.config.windows
        states = self.w.store.partition_states(self.w.topic, self.partitions())
        return watermark(
            states, self.w.clock(), cfg.idle_timeout_s, cfg.allowed_lateness_s, self.started_at
        )

    def close_due(self) -> int:
        """Close every window whose end the watermark has reached; returns how many."""
        parts = self.partitions()
        mark = self.current_watermark()
        if mark is None:
            return 0
        due = [
            (end, model, start)
            for (model, start), end in self.w.store.open_windows(self.w.topic, parts).items()
            if end <= mark
        ]
        closed = 0
        for end, model, start in sorted(due):
            if self.close(model, start, end, parts):
                closed += 1
        self.w.stats.windows_closed += closed
        return closed

    def close(self, model: str, start: int, end: int, parts: list[int]) -> bool:
        """Close one window if no other worker has; ``True`` if this call closed it."""
        w, keys, r = self.w, self.w.keys, self.w.redis
        claim_key = keys.close_claim(model, start)
        if not r.set(claim_key, f"claimed:{w.token}", nx=True, ex=CLAIM_TTL_S):
            if r.get(claim_key) == b"done":
                w.store.drop_window(w.topic, parts, model, start)
            return False
        baseline: Baseline | None = w.baseline(model)
        if baseline is None:  # not loaded yet in this process
            w.refresh_models(force=True)
            baseline = w.baseline(model)
        if baseline is None:
            log.error("cannot close %s@%d: no baseline", model, start)
            r.delete(claim_key)
            return False
        w.store.fence_window(w.topic, parts, model, end)
        deltas = w.store.window_deltas(w.topic, parts, model, start)
        current, baseline, other = self._merge(model, deltas, baseline)
        prev_start = self._previous_start(model, start)
        previous = None
        prev_result: dict[str, Any] = {}
        if prev_start is not None:
            cached = self._last.get(model)
            if cached is not None and cached[0] == prev_start:
                previous, prev_result = cached[1], cached[2]
            else:
                previous = load_sketches(r.hgetall(keys.window_sketches(model, prev_start)))
                raw = r.get(keys.result(model, prev_start))
                prev_result = orjson.loads(raw) if raw else {}
        spec = w.config.models[model]
        result = window_result(
            model,
            start,
            end,
            current,
            baseline,
            previous,
            spec,
            self._recent_counts(model, start),
            w.clock(),
        )
        mq = w.labels.models.get(model) if w.labels is not None else None
        so_far = r.get(keys.quality(model, start)) if mq is not None else None
        result["quality"] = close_quality(
            current.scores, baseline.meta, mq, orjson.loads(so_far) if so_far else None
        )
        state = load_state(prev_result.get("rule_state", []))
        alerts = w.config.alerts_for(model)
        events, firing, state = evaluate_window(
            result,
            state,
            spec.latency_slos,
            alerts.rules,
            alerts.lifecycle,
            MuteStore(r, keys).matcher(model, w.clock()),
            version=baseline.version,
            history=self._history(model, start, _history_needed(alerts.rules.trends)),
        )
        if other:
            result["other_baseline_events"] = other
        result["firing"] = firing
        result["rule_state"] = dump_state(state)
        result["alerts"] = [e.to_dict() for e in events]  # alerts history reads these
        self._store(model, start, result, current)
        self._last[model] = (start, current, result)
        topics = w.config.topics
        w.producer.produce(topics.windows, key=model.encode(), value=orjson.dumps(result))
        for e in events:
            w.producer.produce(topics.alerts, key=model.encode(), value=e.to_json())
        left = w.producer.flush(30)
        if left:
            log.error("%d window/alert messages undelivered for %s@%d", left, model, start)
            return False  # the claim expires; the close is redone
        r.set(claim_key, "done", ex=self.retention)
        w.store.drop_window(w.topic, parts, model, start)
        log.info("closed %s@%d: %d events, %d alerts", model, start, current.n, len(events))
        return True

    def _merge(
        self, model: str, deltas: list[dict[str, bytes]], current: Baseline
    ) -> tuple[WindowSketches, Baseline, int]:
        """Merge partition deltas on the baseline version they were binned on.

        Partitions normally agree; if a baseline was re-registered while the
        window was open they may not. Then the version holding most events
        wins, and the others' events are reported (``other_baseline_events``),
        never mixed into histograms cut on other bins.
        """
        groups: dict[str, list[dict[str, bytes]]] = {}
        for d in deltas:
            raw = d.get("@n|n|bv")
            groups.setdefault(raw.decode() if raw else current.version, []).append(d)
        merged: list[tuple[WindowSketches, Baseline]] = []
        for version, group in groups.items():
            base = self.w.baseline_version(model, version) or current
            merged.append((WindowSketches.from_deltas(group, base), base))
        if not merged:
            return WindowSketches.from_deltas([], current), current, 0
        merged.sort(key=lambda sb: sb[0].n, reverse=True)
        if len(merged) > 1:
            log.warning("%s: window holds deltas on %d baseline versions", model, len(merged))
        return merged[0][0], merged[0][1], sum(sk.n for sk, _ in merged[1:])

    def _previous_start(self, model: str, start: int) -> int | None:
        rows = self.w.redis.zrevrangebyscore(
            self.w.keys.closed_windows(model), f"({start}", "-inf", start=0, num=1
        )
        return int(rows[0]) if rows else None

    def _history(self, model: str, start: int, n: int) -> list[dict[str, Any]]:
        """The results of the ``n`` closed windows before ``start``, oldest first."""
        if n <= 0:
            return []
        keys, r = self.w.keys, self.w.redis
        starts = r.zrevrangebyscore(keys.closed_windows(model), f"({start}", "-inf", 0, n)
        if not starts:
            return []
        raw = r.mget([keys.result(model, int(s)) for s in starts])
        return [orjson.loads(v) for v in reversed(raw) if v]

    def _recent_counts(self, model: str, start: int) -> list[int]:
        keys, r = self.w.keys, self.w.redis
        n = self.w.config.windows.history
        starts = r.zrevrangebyscore(keys.closed_windows(model), f"({start}", "-inf", 0, n)
        if not starts:
            return []
        vals = r.hmget(keys.history(model, "@volume"), [f"count|{int(s)}" for s in starts])
        return [int(float(v)) for v in vals if v is not None]

    def _store(self, model: str, start: int, result: dict[str, Any], sk: WindowSketches) -> None:
        keys, ttl = self.w.keys, self.retention
        pipe = self.w.redis.pipeline(transaction=True)
        pipe.set(keys.result(model, start), orjson.dumps(result), ex=ttl)
        sk_key = keys.window_sketches(model, start)
        pipe.delete(sk_key)
        pipe.hset(sk_key, mapping=sketch_fields(sk))
        pipe.expire(sk_key, ttl)
        pipe.zadd(keys.closed_windows(model), {str(start): start})
        vol = keys.history(model, "@volume")
        pipe.hset(vol, f"count|{start}", result["count"])
        pipe.expire(vol, ttl)
        for name, feat in result.get("features", {}).items():
            hist_key = keys.history(model, name)
            fields: dict[str, Any] = {}
            for metric in ("count", "missing_rate", "mean", "std", "out_of_range_share"):
                v = _clean(feat.get(metric))
                if v is not None:
                    fields[f"{metric}|{start}"] = v
            d = feat.get("drift") or {}
            if _clean(d.get("value")) is not None:
                fields[f"drift|{start}"] = d["value"]
            if fields:
                pipe.hset(hist_key, mapping=fields)
                pipe.expire(hist_key, ttl)
        pipe.execute()

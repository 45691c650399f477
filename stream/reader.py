"""Reading window state from Redis: the query side, read-only.

:class:`StateReader` answers what monitoring dashboards, the ``status``,
``show`` and ``alerts history`` commands and other programs ask of the state
the workers keep (key schema: :mod:`stream.keys`): the models with a baseline,
the closed windows, their results and the alerts published for them,
per-feature history, the windows still open (merged over partitions right now,
as partial results), and each partition's offset, watermark and dead letters.
It never writes, and it never raises on an unknown model or window: the
answer is ``None`` or empty.

Example::

    reader = StateReader.from_config(load_config("driftline.toml"))
    for start in reader.windows("churn", limit=3):
        print(start, reader.result("churn", start)["drifted_features"])
    print(reader.history("churn", "income", "drift"))
    print(reader.alerts("churn", limit=10))  # the 10 newest alert events, oldest first
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from stream.baseline import BaselineStore
from stream.closer import watermark
from stream.fold import WindowSketches
from stream.keys import SEP, Keys
from stream.results import ModelSpecLike, window_result
from stream.store import PartitionState, StateStore

if TYPE_CHECKING:
    from stream.config import Config

__all__ = ["HISTORY_METRICS", "StateReader"]

HISTORY_METRICS = ("count", "missing_rate", "mean", "std", "out_of_range_share", "drift")


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _num(text: str) -> float | int:
    """A stored number: an ``int`` when written as one, else a ``float``."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _alert_event(entry: Any, model: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """A result's ``alerts`` entry as an event dict (a bare id: a stub)."""
    if isinstance(entry, dict):
        return entry
    return {"alert_id": str(entry), "model": model, "window": result.get("window")}


def _total_dead(parts: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for p in parts:
        for reason, n in p["dead_letters"].items():
            total[reason] = total.get(reason, 0) + n
    return dict(sorted(total.items()))


class StateReader:
    """Read-only access to the window state of one key prefix and predictions topic.

    Args:
        client: a redis-py client (``redis.Redis`` or ``redis.RedisCluster``).
        keys: the key schema (prefix).
        predictions_topic: the topic whose partition state is read.
        partitions: the topic's partitions; ``None`` finds those with stored
            state by scanning for their offset hashes.
        models: model id → configuration, for the drift settings of live windows.
        idle_timeout_s: idle partitions stop holding the watermark back after this.
        allowed_lateness_s: the watermark trails the event times by this.
        clock: wall-clock source (seconds).
    """

    def __init__(
        self,
        client: Any,
        keys: Keys,
        predictions_topic: str = "driftline.predictions",
        partitions: Sequence[int] | None = None,
        *,
        models: Mapping[str, ModelSpecLike] | None = None,
        idle_timeout_s: float = 30.0,
        allowed_lateness_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        labels_topic: str = "driftline.labels",
    ) -> None:
        self.client = client
        self.keys = keys
        self.topic = predictions_topic
        self.labels_topic = labels_topic
        self._partitions = None if partitions is None else sorted(partitions)
        self.specs: Mapping[str, ModelSpecLike] = models or {}
        self.idle_timeout_s = idle_timeout_s
        self.allowed_lateness_s = allowed_lateness_s
        self.clock = clock
        self.store = StateStore(client, keys)
        self.baselines = BaselineStore(client, keys)

    @classmethod
    def from_config(
        cls, cfg: Config, client: Any | None = None, clock: Callable[[], float] = time.time
    ) -> StateReader:
        """A reader for a configuration (connects to its Redis unless ``client`` is given)."""
        if client is None:
            from stream.redis_client import connect

            client = connect(cfg.redis)
        return cls(
            client,
            Keys(cfg.redis.prefix),
            cfg.topics.predictions,
            models=cfg.models,
            idle_timeout_s=cfg.windows.idle_timeout_s,
            allowed_lateness_s=cfg.windows.allowed_lateness_s,
            labels_topic=cfg.topics.labels,
            clock=clock,
        )

    # -- models and baselines ----------------------------------------------
    def models(self) -> list[str]:
        """Models with a registered baseline, sorted."""
        return sorted(_s(m) for m in self.client.smembers(self.keys.models()))

    def baseline(self, model: str) -> dict[str, Any] | None:
        """The current baseline's version, rows, feature kinds and times, or ``None``."""
        base = self.baselines.load(model)
        if base is None:
            return None
        return {
            "model": model,
            "version": base.version,
            "versions": self.baselines.versions(model),
            "rows": base.rows,
            "created_at": base.created_at,
            "source": base.source,
            "features": base.kinds(),
            "prediction": None if base.prediction is None else base.prediction.kind,
        }

    # -- closed windows ------------------------------------------------------
    def windows(self, model: str, since: int | None = None, limit: int | None = None) -> list[int]:
        """Starts of closed windows, ascending.

        Args:
            since: only windows starting at or after this (epoch seconds).
            limit: only the newest ``limit`` of them.
        """
        low = "-inf" if since is None else str(int(since))
        key = self.keys.closed_windows(model)
        if limit is None:
            rows = self.client.zrangebyscore(key, low, "+inf")
        elif limit <= 0:
            return []
        else:
            rows = self.client.zrevrangebyscore(key, "+inf", low, start=0, num=limit)[::-1]
        return [int(_s(r)) for r in rows]

    def result(self, model: str, start: int) -> dict[str, Any] | None:
        """A closed window's result (:mod:`stream.results`), or ``None``.

        For a model whose labels are joined, ``quality.realised`` is the
        window's quality now (:meth:`quality`), not as it was at close.
        """
        raw = self.client.get(self.keys.result(model, int(start)))
        if raw is None:
            return None
        out: dict[str, Any] = orjson.loads(raw)
        if out.get("quality") is not None:
            now = self.quality(model, start)
            if now is not None:
                out["quality"]["realised"] = now
        return out

    def quality(self, model: str, start: int) -> dict[str, Any] | None:
        """A window's quality from the labels joined so far (:mod:`stream.quality`):
        ``labelled``, ``predictions``, ``coverage``, ``delay_s``, ``metrics``,
        ``estimated``, ``gaps``; ``None`` before the first label."""
        raw = self.client.get(self.keys.quality(model, int(start)))
        return None if raw is None else dict(orjson.loads(raw))

    def latest(self, model: str) -> dict[str, Any] | None:
        """The newest closed window's result, or ``None``."""
        starts = self.windows(model, limit=1)
        return self.result(model, starts[0]) if starts else None

    def alerts(
        self,
        model: str,
        since: int | None = None,
        until: int | None = None,
        limit: int | None = None,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Alert events published for closed windows, oldest window first.

        They are read from the stored window results (their ``alerts``), so
        they outlive the alerts topic's retention and last as long as the
        results (``windows.retention``). Within a window the published order
        is kept. An entry stored as a bare alert id (by closers before the
        events were kept) comes back as a stub ``{"alert_id", "model",
        "window"}`` without the other fields.

        Args:
            since: only windows starting at or after this (epoch seconds).
            until: only windows starting before this.
            limit: only the newest ``limit`` alerts (of those ``where`` keeps).
            where: keep only the alerts for which this returns ``True``.
        """
        if limit is not None and limit <= 0:
            return []
        key, low = self.keys.closed_windows(model), "-inf" if since is None else str(int(since))
        high = "+inf" if until is None else f"({int(until)}"
        newest_first: list[list[dict[str, Any]]] = []
        found = 0
        while limit is None or found < limit:
            page = [int(_s(s)) for s in self.client.zrevrangebyscore(key, high, low, 0, 100)]
            if not page:
                break
            high = f"({page[-1]}"  # by score, not offset: windows closing meanwhile shift nothing
            raws = self.client.mget([self.keys.result(model, s) for s in page])
            for raw in raws:
                if raw is None:  # expired since the index was read
                    continue
                res = orjson.loads(raw)
                got = [_alert_event(a, model, res) for a in res.get("alerts") or ()]
                got = [a for a in got if where is None or where(a)]
                newest_first.append(got)
                found += len(got)
        out = [a for window in reversed(newest_first) for a in window]
        return out if limit is None else out[max(0, len(out) - limit) :]

    def history(self, model: str, feature: str, metric: str) -> list[tuple[int, float]]:
        """``(window start, value)`` of one feature metric, ascending by start.

        Metrics are :data:`HISTORY_METRICS` (``drift`` is the drift value vs the
        baseline); feature ``@volume`` has ``count``. Windows where the value
        was undefined are absent.
        """
        raw = self.client.hgetall(self.keys.history(model, feature))
        out: list[tuple[int, float]] = []
        for key, value in raw.items():
            name, _, start = _s(key).rpartition(SEP)
            if name == metric:
                try:
                    out.append((int(start), float(_s(value))))
                except ValueError:
                    continue
        return sorted(out)

    # -- open windows ----------------------------------------------------------
    def open_windows(self, model: str | None = None) -> dict[tuple[str, int], int]:
        """``(model, start) -> end`` of windows holding deltas and not closed yet."""
        found = self.store.open_windows(self.topic, self.partition_ids())
        if model is not None:
            found = {k: v for k, v in found.items() if k[0] == model}
        by_model: dict[str, list[int]] = {}
        for m, start in found:
            by_model.setdefault(m, []).append(start)
        for m, starts in by_model.items():
            scores = self.client.zmscore(self.keys.closed_windows(m), [str(s) for s in starts])
            for start, score in zip(starts, scores, strict=True):
                if score is not None:
                    found.pop((m, start), None)
        return dict(sorted(found.items()))

    def live(self, model: str) -> list[dict[str, Any]]:
        """The model's open windows merged over partitions now, as partial results.

        Each is a :func:`~stream.results.window_result` (no previous window, no
        volume history, so no ``drift_previous`` and no volume ratio) with
        ``start``, ``end`` and ``partial: True`` added, oldest first.
        """
        opened = self.open_windows(model)
        if not opened:
            return []
        base = self.baselines.load(model)
        if base is None:
            return []
        parts, spec, out = self.partition_ids(), self.specs.get(model), []
        for (_, start), end in opened.items():
            deltas = self.store.window_deltas(self.topic, parts, model, start)
            if not deltas:
                continue  # dropped by a close since the index was read
            sk = WindowSketches.from_deltas(deltas, base)
            res = window_result(model, start, end, sk, base, None, spec, [], self.clock())
            out.append({"start": start, "end": end, "partial": True, **res})
        return out

    # -- partitions --------------------------------------------------------------
    def partition_ids(self, topic: str | None = None) -> list[int]:
        """The partitions given (of the predictions topic), else those of ``topic``
        (default: the predictions topic) with a stored offset hash (scanned)."""
        if self._partitions is not None and topic in (None, self.topic):
            return self._partitions
        head = self.keys.offsets(topic or self.topic, 0).removesuffix("0}:off")  # P:{p:T:
        match = "".join("\\" + c if c in "[]*?\\" else c for c in head) + "*}:off"
        found = set()
        for key in self.client.scan_iter(match=match, count=1000):
            part = _s(key)[len(head) : -len("}:off")]
            if part.isdigit():
                found.add(int(part))
        return sorted(found)

    def partitions(self, topic: str | None = None) -> list[dict[str, Any]]:
        """Each partition's stored state: offset, watermark, activity, fences, dead letters.

        ``topic``: the predictions topic (default) or the labels topic. Keys:
        ``partition``, ``offset`` (next to consume), ``watermark`` (largest
        event time), ``active_at`` (wall time of its last event),
        ``closed_upto`` {model: end of its newest closed window}, ``claims``
        (times a worker took it over), ``dead_letters`` {reason: n}.
        """
        topic = topic or self.topic
        parts = self.partition_ids(topic)
        pipe = self.client.pipeline(transaction=False)
        for p in parts:
            pipe.hgetall(self.keys.offsets(topic, p))
        out = []
        for p, raw in zip(parts, pipe.execute(), strict=True):
            h = {_s(k): _s(v) for k, v in raw.items()}
            out.append(
                {
                    "partition": p,
                    "offset": int(h["off"]) if "off" in h else None,
                    "watermark": float(h["wm"]) if "wm" in h else None,
                    "active_at": float(h["act"]) if "act" in h else None,
                    "closed_upto": {k[3:]: _num(v) for k, v in h.items() if k.startswith("cu:")},
                    "claims": int(h.get("gen", 0)),
                    "dead_letters": {
                        k[4:]: int(v) for k, v in sorted(h.items()) if k.startswith("dlq:")
                    },
                }
            )
        return out

    def dead_letters(self) -> dict[str, int]:
        """Dead letters by reason, summed over the partitions of both topics."""
        return _total_dead([*self.partitions(), *self.partitions(self.labels_topic)])

    def watermark(self) -> float | None:
        """The global watermark as the window closers compute it (``None``: none yet).

        Partitions without stored state do not hold it back here (the closer
        waits ``idle_timeout`` for them after it starts).
        """
        return self._watermark(self.partitions())

    def _watermark(self, parts: list[dict[str, Any]]) -> float | None:
        states = [
            PartitionState(p["partition"], p["offset"], p["watermark"], p["active_at"], {})
            for p in parts
        ]
        now, idle, late = self.clock(), self.idle_timeout_s, self.allowed_lateness_s
        return watermark(states, now, idle, late, -math.inf)

    # -- everything at once --------------------------------------------------------
    def status(self, models: Iterable[str] = ()) -> dict[str, Any]:
        """A JSON-ready snapshot for ``driftline status``.

        Args:
            models: models to list besides those with a baseline (configured ones).

        Returns:
            ``prefix``, ``topic``, ``now``, ``watermark``, ``models`` (each with
            ``model``, ``baseline`` version, ``last_window`` {start, end, count,
            drifted_features, firing} or ``None``, ``open_windows`` [{start,
            end, count}]), ``partitions`` and ``label_partitions``
            (:meth:`partitions`) and ``dead_letters`` by reason (both topics).
        """
        rows = []
        for model in sorted(set(self.models()) | set(models)):
            last = self.latest(model)
            rows.append(
                {
                    "model": model,
                    "baseline": self.baselines.current_version(model),
                    "last_window": None
                    if last is None
                    else {
                        **last["window"],
                        "count": last["count"],
                        "drifted_features": last["drifted_features"],
                        "firing": last.get("firing", []),
                    },
                    "open_windows": [
                        {"start": w["start"], "end": w["end"], "count": w["count"]}
                        for w in self.live(model)
                    ],
                }
            )
        parts = self.partitions()
        label_parts = self.partitions(self.labels_topic)
        return {
            "prefix": self.keys.prefix,
            "topic": self.topic,
            "now": self.clock(),
            "watermark": self._watermark(parts),
            "models": rows,
            "partitions": parts,
            "label_partitions": label_parts,
            "dead_letters": _total_dead([*parts, *label_parts]),
        }

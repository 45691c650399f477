"""Window quality from joined labels: what each model's join records, and the maturing result.

:class:`QualityModels` decides, per model with ``[models.<m>.labels]``, the
task (classification or regression), the classes, the prediction record
layout (:class:`~stream.prediction_store.RecordLayout`) and the quality
sketch (:class:`~sketches.classification.ClassificationQuality`,
:class:`~sketches.regression.RegressionQuality`). The task is the configured
one, else classification when classes are configured or the prediction is
categorical, else regression; classes are the configured ones, else the
baseline's label classes (recorded at registration), else its prediction
categories.

:class:`QualityUpdater` recomputes a window's quality whenever labels for it
were flushed: it merges every label partition's deltas, computes the metrics
and stores them as ``P:{m:M}:quality:<start>`` (JSON, expiring a horizon
after the last label plus the retention)::

    {"model", "window": {start, end}, "task", "labelled", "predictions" (events
     in the window, once closed), "coverage" (labelled / predictions),
     "delay_s": {mean, p50, p90, p99}, "metrics": {...}, "estimated", "gaps",
     "alerts_at" (labels at the last look of the quality rules), "updated_at"}

The quality rules (:mod:`alerting.quality_rules`) look at a window when it
reaches ``min_labels`` labels and then each time its labels double, so a
window maturing label by label is tested a handful of times, not at every
flush (each look is a chance for noise to alert).

``metrics`` is ``ClassificationQuality.metrics()`` (accuracy, precision /
recall / F1 per class and averaged, log loss, ROC-AUC, PR-AUC, ECE, the
confusion matrix) or ``RegressionQuality.metrics()`` (MAE, MSE, RMSE, R²,
MAPE, error quantiles).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import redis
from numpy.typing import NDArray

from alerting.events import AlertEvent, Window, alert_id
from alerting.quality_rules import quality_checks, quality_transition, quality_trend_checks
from sketches.categorical import CategoricalCounter
from sketches.classification import ClassificationQuality
from sketches.estimation import Calibrator, QualityEstimate, compare, estimate
from sketches.regression import RegressionQuality
from stream.exceptions import StoreError
from stream.label_config import MAX_CLASSES, LabelSpec
from stream.label_fold import DELAY_BUCKETS, delay_quantiles
from stream.mutes import MuteStore
from stream.prediction_store import RecordLayout

__all__ = [
    "ModelQuality",
    "QualityModels",
    "QualityUpdater",
    "close_quality",
    "estimate_gaps",
    "quality_of_deltas",
    "realised_binary",
]

log = logging.getLogger("driftline.quality")
_OTHER_PRED = "\x00other"  # a predicted class outside the classes: counted as "other"
Array = NDArray[np.float64]


@dataclass(frozen=True)
class ModelQuality:
    """The join's settings for one model, resolved."""

    spec: LabelSpec
    layout: RecordLayout

    @property
    def classes(self) -> tuple[str, ...]:
        return self.layout.classes

    def new_state(self) -> ClassificationQuality | RegressionQuality:
        if self.layout.task == "classification":
            return ClassificationQuality(self.classes)
        return RegressionQuality()

    def predicted(self, pred: Array) -> Any:
        """Stored predictions as the quality sketch takes them."""
        if self.layout.task == "regression":
            return pred
        out = np.empty(pred.size, dtype=object)
        for j, v in enumerate(pred.tolist()):
            out[j] = None if math.isnan(v) else self.classes[int(v)] if v >= 0 else _OTHER_PRED
        return out

    def proba(self, proba: Array) -> Array | None:
        """Stored probabilities (``n × k``) as the sketch takes them; rows without any: NaN."""
        if self.layout.task == "regression" or proba.shape[1] == 0:
            return None
        out = proba.copy()
        partial = ~np.isnan(out).all(axis=1)
        out[partial] = np.nan_to_num(out[partial], nan=0.0)  # an absent class has probability 0
        return out


class QualityModels:
    """:class:`ModelQuality` per model, resolved once per baseline version."""

    def __init__(self, worker: Any) -> None:
        self.w = worker
        self._cache: dict[str, tuple[str | None, ModelQuality | None, str]] = {}

    def _resolve(self, model: str) -> tuple[ModelQuality | None, str]:
        spec: LabelSpec | None = self.w.config.models[model].labels
        if spec is None:
            return None, f"model {model!r} has no labels table"
        base = self.w.baseline(model)
        schema = self.w._schemas.get(model)
        pkind = getattr(schema, "prediction", None)
        task = spec.task or (
            "classification" if spec.classes or pkind == "categorical" else "regression"
        )
        if task == "regression":
            return ModelQuality(spec, RecordLayout("regression")), ""
        classes = spec.classes
        if not classes and base is not None:
            classes = tuple(base.meta.get("classes") or ())
            pred = base.prediction
            if not classes and pred is not None and isinstance(pred.categories, CategoricalCounter):
                classes = tuple(sorted(k for k in pred.categories.counts))
        if not 2 <= len(classes) <= MAX_CLASSES:
            why = (
                f"no classes: set [models.{model}.labels] classes, or register the baseline "
                "with a label column"
            )
            return None, why
        positive = spec.positive(classes)
        if positive is not None and positive != classes[-1]:  # the sketch's positive is the last
            classes = (classes[0] if classes[1] == positive else classes[1], positive)
        return ModelQuality(spec, RecordLayout("classification", tuple(classes))), ""

    def get(self, model: str) -> ModelQuality | None:
        base = self.w.baseline(model)
        version = None if base is None else base.version
        cached = self._cache.get(model)
        if cached is None or cached[0] != version:
            mq, why = self._resolve(model) if model in self.w.config.models else (None, "unknown")
            cached = self._cache[model] = (version, mq, why)
        return cached[1]

    def why(self, model: str) -> str:
        cached = self._cache.get(model)
        return cached[2] if cached else ""

    def ttl_s(self, model: str) -> float:
        """Expiry of a model's label state: its horizon plus the window retention."""
        spec = self.w.config.models[model].labels
        horizon = spec.horizon_s if spec is not None else 0.0
        return float(horizon + self.w.config.windows.retention_s)


def quality_of_deltas(mq: ModelQuality, deltas: Iterable[dict[str, bytes]]) -> dict[str, Any]:
    """Merged quality fields of label deltas (see the module docstring), without the window."""
    state = mq.new_state()
    n, delay_sum = 0, 0.0
    delays = np.zeros(DELAY_BUCKETS.size)
    for d in deltas:
        if "q|v" not in d:
            continue
        if isinstance(state, ClassificationQuality):
            state.merge(ClassificationQuality.from_vector(mq.classes, d["q|v"]))
        else:
            state.merge(RegressionQuality.from_vector(d["q|v"]))
        n += int(d.get("q|n|n", b"0"))
        delays += np.frombuffer(d["q|d|v"], dtype="<f8")
        delay_sum += float(d.get("q|d|s", b"0"))
    p50, p90, p99 = delay_quantiles(delays)
    return {
        "task": mq.layout.task,
        "labelled": n,
        "delay_s": {
            "mean": delay_sum / n if n else None,
            "p50": p50,
            "p90": p90,
            "p99": p99,
        },
        "metrics": state.metrics(),
    }


def realised_binary(metrics: dict[str, Any], positive: str) -> dict[str, float | None]:
    """The realised counterparts of the estimated metrics: accuracy, and the
    positive class's precision, recall, F1, and the ROC-AUC."""
    cls = (metrics.get("classes") or {}).get(positive) or {}
    return {
        "accuracy": metrics.get("accuracy"),
        "precision": cls.get("precision"),
        "recall": cls.get("recall"),
        "f1": cls.get("f1"),
        "roc_auc": metrics.get("roc_auc"),
    }


def estimate_gaps(estimated: dict[str, Any], realised: dict[str, float | None]) -> dict[str, Any]:
    """``metric → {estimated, realised, error, z}`` (:func:`sketches.estimation.compare`)."""
    gaps = compare(QualityEstimate(**estimated), realised)
    return {
        m: {"estimated": g.estimated, "realised": g.realised, "error": g.error, "z": g.z}
        for m, g in gaps.items()
    }


def close_quality(
    scores: Array | None, meta: dict[str, Any], mq: ModelQuality | None, so_far: Any
) -> dict[str, Any] | None:
    """The ``quality`` entry of a window result at close: ``estimated`` (binary
    classifiers with a calibrated baseline, from the window's score histogram),
    ``realised`` (the labels joined so far: ``labelled``, ``metrics``) and
    ``baseline`` (the training quality); ``None`` for a model without labels."""
    if mq is None:
        return None
    out: dict[str, Any] = {
        "task": mq.layout.task,
        "baseline": meta.get("quality"),
        "estimated": None,
        "realised": None,
    }
    if scores is not None and "calibrator" in meta and scores.sum() > 0:
        try:
            est = estimate(scores, Calibrator.from_dict(meta["calibrator"]))
            out["estimated"] = est.to_dict()
        except (ValueError, KeyError, TypeError) as exc:  # a calibrator of another layout
            log.warning("no quality estimate: %s", exc)
    if so_far:
        out["realised"] = {
            "labelled": so_far.get("labelled"),
            "metrics": so_far.get("metrics"),
        }
    return out


class QualityUpdater:
    """Recomputes the quality of windows whose labels changed (see the module docstring)."""

    def __init__(self, worker: Any, models: QualityModels) -> None:
        self.w = worker
        self.models = models

    def refresh(self, windows: Iterable[tuple[str, int]], label_partitions: list[int]) -> None:
        for model, start in sorted(windows):
            mq = self.models.get(model)
            if mq is None:
                continue
            try:
                self._refresh(model, start, mq, label_partitions)
            except (StoreError, redis.RedisError) as exc:  # the next label for it refreshes it
                log.warning("quality of %s@%d not updated: %s", model, start, exc)

    def _refresh(self, model: str, start: int, mq: ModelQuality, parts: list[int]) -> None:
        w = self.w
        deltas = w.store.window_deltas(w.config.topics.labels, parts, model, start)
        q = quality_of_deltas(mq, deltas)
        raw = w.redis.get(w.keys.result(model, start))
        result = orjson.loads(raw) if raw else {}
        predictions = int(result["count"]) if "count" in result else None
        estimated = (result.get("quality") or {}).get("estimated")
        q = {
            "model": model,
            "window": {"start": start, "end": start + w.size},
            **q,
            "predictions": predictions,
            "coverage": q["labelled"] / predictions if predictions else None,
            "estimated": estimated,
            "gaps": None,
            "updated_at": w.clock(),
        }
        if estimated and len(mq.classes) == 2:
            q["gaps"] = estimate_gaps(estimated, realised_binary(q["metrics"], mq.classes[-1]))
        # quality rules look at a window at min_labels and then each time its labels
        # double (a handful of looks, however the labels trickle in)
        key = w.keys.quality(model, start)
        before = w.redis.get(key)
        looked = int(orjson.loads(before).get("alerts_at", 0)) if before else 0
        first = w.config.alerts_for(model).rules.quality.min_labels
        look = q["labelled"] >= (2 * looked if looked else first)
        q["alerts_at"] = q["labelled"] if look else looked
        ttl = max(1, math.ceil(self.models.ttl_s(model)))
        w.redis.set(key, orjson.dumps(q), ex=ttl)
        if look:
            self._alerts(model, start, q)

    def _recent(self, model: str, start: int, k: int) -> list[dict[str, Any]]:
        """The quality of the ``k`` newest closed windows up to ``start``, oldest first
        (a window without labels yet is ``{"window": ..., "labelled": 0}``)."""
        w = self.w
        starts = [
            int(x)
            for x in w.redis.zrevrangebyscore(w.keys.closed_windows(model), start, "-inf", 0, k)
        ][::-1]
        if not starts or starts[-1] != start:  # the window updated is not closed yet
            starts = [*starts[1:], start] if len(starts) == k else [*starts, start]
        raw = w.redis.mget([w.keys.quality(model, s) for s in starts])
        return [
            orjson.loads(v) if v else {"window": {"start": s, "end": s + w.size}, "labelled": 0}
            for s, v in zip(starts, raw, strict=True)
        ]

    def _alerts(self, model: str, start: int, q: dict[str, Any]) -> None:
        """Quality rules on the updated window (:mod:`alerting.quality_rules`)."""
        w = self.w
        base = w.baseline(model)
        rules = w.config.alerts_for(model).rules
        checks = quality_checks(
            q["metrics"], (base.meta if base else {}).get("quality"), q["labelled"], rules.quality
        )
        k = max((t.windows for t in rules.trends if t.on_quality), default=0)
        if k:
            checks += quality_trend_checks(
                self._recent(model, start, k), rules.trends, rules.quality
            )
        checks = [c for c in checks if rules.enabled(c.rule)]
        if not checks:
            return
        key = w.keys.quality_state(model)
        states = {k.decode(): orjson.loads(v) for k, v in w.redis.hgetall(key).items()}
        muted = MuteStore(w.redis, w.keys).matcher(model, w.clock())
        events, updates = [], {}
        for c in checks:
            status, new = quality_transition(states.get(c.rule), start, c.firing)
            if new is not None:
                updates[c.rule] = orjson.dumps(new)
            if status is not None and not muted((c.rule, None)):
                events.append(
                    AlertEvent(
                        alert_id=alert_id(model, c.rule, None, start, status),
                        model=model,
                        version=None if base is None else base.version,
                        window=Window(start, start + w.size),
                        rule=c.rule,
                        metric=c.metric,
                        feature=None,
                        value=c.value,
                        threshold=c.threshold,
                        severity=c.severity,
                        status=status,
                        baseline=None if base is None else base.version,
                        message=f"{model}: {c.message}"
                        + (" — resolved" if status == "resolved" else ""),
                        emitted_at=w.clock(),
                    )
                )
        for e in events:
            w.producer.produce(w.config.topics.alerts, key=model.encode(), value=e.to_json())
        if events and w.producer.flush(30):
            log.error("quality alerts of %s@%d not delivered; state kept as it was", model, start)
            return
        if updates:
            w.redis.hset(key, mapping=updates)

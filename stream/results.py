"""Window results: what a window close computes, as one JSON-ready dict.

:func:`window_result` is pure: merged window sketches, the baseline and the
previous window in, a dict of ``str/int/float/bool/None/list/dict`` out (no
NaN: undefined numbers are ``None``). It is stored in Redis and published as
the window summary. Shape (``schema: 1``; keys are always present)::

    schema, model, baseline (version), window {start, end}, emitted_at,
    count (events), dead_letters {reason: n}, dead_letter_rate,
    volume {count, recent_mean, ratio, history (recent windows counted)},
    features {name: FEATURE}, drifted_features [names], drift_share,
    prediction FEATURE | None, confidence {n, mean_top, share_below, threshold},
    latency_ms {count, p50, p90, p95, p99, max}

The closer adds ``quality`` (:func:`stream.quality.close_quality`; ``None``
for a model that joins no labels), ``firing``, ``rule_state`` and ``alerts``.

    FEATURE = kind, count (non-missing), missing, missing_rate,
      numeric:     mean, std, min, max, quantiles {p05, p25, p50, p75, p95},
                   out_of_range_share
      categorical: top [[category, n]] (≤ 10), unseen_categories [[category, n]]
                   (≤ 20), unseen_share              (boolean features too)
      drift, drift_previous: DRIFT | None
    DRIFT = method, value, threshold, effect, floor, drifted, p_value, severity,
            error_bound, reason

Accuracy. Counts, missing, mean, std (``ddof=1``), min, max and
``out_of_range_share`` (the two open outer bins of the baseline's bins: values
below its min or above its max) are exact. Quantiles come from the
reference-binned histogram: the bin holding rank ``q · n`` is found exactly
and the value interpolated linearly inside it (point bins are exact; the open
outer bins use the window's min/max as outer edges), so the estimate lies in
the bin holding the true quantile and its rank error is at most that bin's
mass (about 1 % at 100 equal-mass bins when nothing drifted). Latency
percentiles are within 1 % relative (:class:`~sketches.QuantileSketch`).

Drift method per feature: the feature's ``method``/``threshold``; else the
model's ``drift_method`` (where it applies to the kind) with the feature's
threshold or the model's ``drift_threshold``; else
:func:`sketches.default_method` for the kind and the baseline's rows, with the
feature's threshold or the registry default (the model's ``drift_threshold``
belongs to its ``drift_method``). A spec with ``drift_for(name, kind, rows)``
(:class:`stream.config.ModelSpec`) decides instead; where it refuses a
feature, the rule above applies. Boolean features are categorical here. The
prediction uses the default method. Severity: PSI ≥ 0.25 high, ≥ 0.1 medium;
tests p < 0.001 high; distances ≥ 2 × threshold high; else medium. A method
that cannot apply gives a ``None`` value with its ``reason``; nothing raises.

Thresholds vs the baseline are sample-size-aware: a distance with a null
model (:mod:`sketches.noise`; every distance but raw ``wasserstein`` without
spread) is compared with ``effect + floor``, where ``effect`` is the
configured threshold and ``floor`` the method's noise floor at this window's
size; ``threshold`` is their sum, and ``floor`` is ``None`` where none applied
(tests, whose p-values already account for both sample sizes, and the
comparison with the previous window). Null models of methods not stored with
the baseline are built on first use and kept with the loaded baseline.
``drift_previous`` is ``None`` without a non-empty previous window on the same
bins; ``unseen_categories`` are those absent from the baseline by name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sketches import (
    METHODS,
    OTHER,
    PSI_TIERS,
    CategoricalCounter,
    DriftResult,
    ReferenceHistogram,
    default_method,
    drift,
    drift_many,
)
from sketches.noise import effective_threshold

if TYPE_CHECKING:
    from stream.baseline import Baseline, FeatureBaseline
    from stream.fold import WindowSketches

__all__ = [
    "QUANTILES",
    "SCHEMA_VERSION",
    "FeatureSpecLike",
    "ModelSpecLike",
    "drift_dict",
    "drift_method",
    "histogram_quantiles",
    "severity",
    "window_result",
]

SCHEMA_VERSION = 1
QUANTILES = {"p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
LATENCY_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
TOP, MAX_UNSEEN = 10, 20
_BATCHED = ("ks", "wasserstein_norm")  # stacked by drift_many

Sketch = ReferenceHistogram | CategoricalCounter
Pair = tuple[Sketch, Sketch, str, float | None]  # reference, current, method, threshold


class FeatureSpecLike(Protocol):
    """What :func:`window_result` reads from a feature's configuration."""

    @property
    def method(self) -> str | None: ...
    @property
    def threshold(self) -> float | None: ...


class ModelSpecLike(Protocol):
    """What :func:`window_result` reads from a model's configuration."""

    @property
    def drift_method(self) -> str | None: ...
    @property
    def drift_threshold(self) -> float | None: ...
    @property
    def confidence_threshold(self) -> float: ...
    def feature(self, name: str) -> FeatureSpecLike | None: ...


def _num(x: Any) -> float | None:
    """A finite float, else ``None``."""
    return None if x is None or not math.isfinite(x) else float(x)


def _ratio(a: float, b: float) -> float | None:
    return _num(a / b) if b else None


def severity(result: DriftResult) -> str | None:
    """``None`` unless drifted; PSI by its tiers, tests by p-value, distances by 2× threshold."""
    if not result.drifted:
        return None
    if result.method == "psi":
        v = result.value
        return "high" if v >= PSI_TIERS[1] else "medium" if v >= PSI_TIERS[0] else "low"
    if result.p_value is not None:
        return "high" if result.p_value < 0.001 else "medium"
    return "high" if result.value >= 2 * result.threshold else "medium"


def drift_dict(result: DriftResult | None, floor: float | None = None) -> dict[str, Any] | None:
    """A :class:`~sketches.DriftResult` as the result's ``drift`` entry;
    ``floor``: the noise floor included in its threshold (``effect`` is the rest)."""
    if result is None:
        return None
    effect = result.threshold - floor if floor is not None else result.threshold
    return {
        "method": result.method,
        "value": _num(result.value),
        "threshold": _num(result.threshold),
        "effect": _num(effect),
        "floor": None if floor is None else _num(floor),
        "drifted": bool(result.drifted),
        "p_value": _num(result.p_value),
        "severity": severity(result),
        "error_bound": _num(result.error_bound),
        "reason": result.reason,
    }


def histogram_quantiles(h: ReferenceHistogram) -> dict[str, float | None]:
    """:data:`QUANTILES` of a window histogram (see the module docstring for the bound)."""
    n = h.count
    if n == 0:
        return dict.fromkeys(QUANTILES)
    lo, hi = h.binning.bin_edges()
    lo = np.clip(np.where(np.isfinite(lo), lo, h.min), h.min, h.max)
    hi = np.clip(np.where(np.isfinite(hi), hi, h.max), h.min, h.max)
    hi = np.where(h.binning.point_bins(), lo, hi)
    cum = np.cumsum(h.counts)
    ranks = np.array(list(QUANTILES.values())) * n
    i = np.minimum(np.searchsorted(cum, ranks, side="left"), cum.size - 1)
    frac = (ranks - (cum[i] - h.counts[i])) / np.maximum(h.counts[i], 1)
    values = lo[i] + np.clip(frac, 0.0, 1.0) * (hi[i] - lo[i])
    return {k: _num(v) for k, v in zip(QUANTILES, values.tolist(), strict=True)}


def _numeric_stats(h: ReferenceHistogram, ref: ReferenceHistogram) -> dict[str, Any]:
    n = h.count
    # the two open outer bins hold what lies outside the reference's range
    outside = None if ref.binning.is_empty else _ratio(int(h.counts[0] + h.counts[-1]), n)
    return {
        "mean": _num(h.mean),
        "std": _num(h.std),
        "min": _num(h.min) if n else None,
        "max": _num(h.max) if n else None,
        "quantiles": histogram_quantiles(h),
        "out_of_range_share": outside,
    }


def _categorical_stats(c: CategoricalCounter, ref: CategoricalCounter) -> dict[str, Any]:
    ranked = sorted(c.frequencies().items(), key=lambda kv: (-kv[1], kv[0]))
    unseen = [(k, n) for k, n in ranked if k != OTHER and n and k not in ref.counts]
    return {
        "top": [[k, int(n)] for k, n in ranked[:TOP]],
        "unseen_categories": [[k, int(n)] for k, n in unseen[:MAX_UNSEEN]],
        "unseen_share": _ratio(sum(n for _, n in unseen), c.count),
    }


def drift_method(
    name: str, kind: str, spec: ModelSpecLike | None, rows: int
) -> tuple[str, float | None]:
    """Method and threshold of a feature of ``kind`` with a reference of
    ``rows`` values under ``spec`` (see the module docstring)."""
    numeric = kind == "numeric"
    drift_for = getattr(spec, "drift_for", None)  # stream.config.ModelSpec's own rule
    if callable(drift_for):
        try:
            method, threshold = drift_for(name, kind, rows)
            return str(method), threshold
        except ValueError:
            pass  # a model-wide method that does not apply to an inferred feature
    fs = spec.feature(name) if spec is not None else None
    f_thr = fs.threshold if fs is not None else None
    if fs is not None and fs.method:
        return fs.method, f_thr
    if spec is not None and spec.drift_method:
        known = METHODS.get(spec.drift_method)  # unknown: kept, so its error is reported
        if known is None or (known.numeric if numeric else known.categorical):
            return spec.drift_method, f_thr if f_thr is not None else spec.drift_threshold
    return default_method("numeric" if numeric else "categorical", rows), f_thr


def _rethreshold(r: DriftResult, threshold: float | None) -> DriftResult:
    """A batched KS / normalised-Wasserstein result at another threshold (NaN never drifts)."""
    if threshold is None or threshold == r.threshold:
        return r
    if r.p_value is not None:
        drifted = r.p_value < threshold
    else:
        drifted = r.value >= threshold if threshold > 0 else r.value > 0
    return replace(r, threshold=threshold, drifted=bool(drifted))


def _one(ref: Sketch, cur: Sketch, method: str, threshold: float | None) -> DriftResult:
    try:
        return drift(ref, cur, method, threshold)
    except (ValueError, TypeError) as exc:  # unknown method, wrong kind, other bins
        spec = METHODS.get(method)
        thr = threshold if threshold is not None else (spec.threshold if spec else None)
        is_test = bool(spec and spec.is_test)
        return DriftResult.undefined(
            method, math.nan if thr is None else thr, ref.total, cur.total, str(exc), is_test
        )


def _noise_aware(
    fb: FeatureBaseline, method: str, threshold: float | None, cur: Sketch
) -> tuple[float | None, float | None]:
    """The threshold that applies vs the baseline and the noise floor in it.

    The configured effect plus the method's noise floor at this window's size
    (when the method has a null model, see :mod:`sketches.noise`), so that a
    stationary stream stays quiet at any volume; ``(threshold, None)`` otherwise.
    """
    spec = METHODS.get(method)
    effect = threshold if threshold is not None else (spec.threshold if spec else None)
    if spec is None or spec.is_test or effect is None or cur.total == 0:
        return threshold, None
    null = fb.null_model(method)
    if null is None:
        return threshold, None
    floor = null.floor(cur.total)
    return effective_threshold(effect, floor), floor


def _drift_all(pairs: Sequence[Pair | None]) -> list[DriftResult | None]:
    """Drift of every pair; KS and normalised Wasserstein stacked by ``drift_many``."""
    out: list[DriftResult | None] = [None] * len(pairs)
    for method in _BATCHED:
        batch = [
            (i, p)
            for i, p in enumerate(pairs)
            if p is not None
            and p[2] == method
            and isinstance(p[0], ReferenceHistogram)
            and isinstance(p[1], ReferenceHistogram)
            and p[0].binning == p[1].binning
        ]
        if batch:
            many = drift_many([p[0] for _, p in batch], [p[1] for _, p in batch], method)
            for (i, p), r in zip(batch, many, strict=True):
                out[i] = _rethreshold(r, p[3])
    for i, pair in enumerate(pairs):
        if pair is not None and out[i] is None:
            out[i] = _one(*pair)
    return out


def _reference(fb: FeatureBaseline) -> Sketch:
    if fb.histogram is not None:
        return fb.histogram
    return fb.categories if fb.categories is not None else CategoricalCounter()


def _same_kind(ref: Sketch, cur: Any) -> Sketch:
    """``cur`` if it is a sketch of ``ref``'s type (and bins), else an empty one."""
    if isinstance(ref, ReferenceHistogram):
        ok = isinstance(cur, ReferenceHistogram) and cur.binning == ref.binning
        return cur if ok else ref.empty_like()
    return cur if isinstance(cur, CategoricalCounter) else CategoricalCounter()


def _previous(ref: Sketch, prev: Any) -> Sketch | None:
    """The previous window's sketch when it is comparable and not empty."""
    if isinstance(ref, ReferenceHistogram):
        ok = isinstance(prev, ReferenceHistogram) and prev.binning == ref.binning
    else:
        ok = isinstance(prev, CategoricalCounter)
    return prev if ok and not prev.is_empty else None


def _summary(fb: FeatureBaseline, ref: Sketch, cur: Sketch) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": fb.kind,
        "count": int(cur.count),
        "missing": int(cur.missing),
        "missing_rate": _ratio(cur.missing, cur.count + cur.missing),
        "baseline_missing_rate": _ratio(ref.missing, ref.count + ref.missing),
    }
    if isinstance(ref, ReferenceHistogram) and isinstance(cur, ReferenceHistogram):
        out.update(_numeric_stats(cur, ref))
    elif isinstance(ref, CategoricalCounter) and isinstance(cur, CategoricalCounter):
        out.update(_categorical_stats(cur, ref))
    return out


def _latency(current: WindowSketches) -> dict[str, Any]:
    lat = current.latency
    out: dict[str, Any] = {"count": int(lat.count), **dict.fromkeys(LATENCY_QUANTILES), "max": None}
    if lat.count:
        qs = lat.quantiles(list(LATENCY_QUANTILES.values())).tolist()
        out.update(zip(LATENCY_QUANTILES, map(_num, qs), strict=True), max=_num(lat.max))
    return out


def window_result(
    model: str,
    start: int,
    end: int,
    current: WindowSketches,
    baseline: Baseline,
    previous: WindowSketches | None,
    spec: ModelSpecLike | None,
    recent_counts: Sequence[int],
    emitted_at: float,
) -> dict[str, Any]:
    """The window summary of ``current`` against ``baseline`` and ``previous``.

    Args:
        model: model id.
        start: window start (epoch seconds).
        end: window end (epoch seconds).
        current: the closed window's merged sketches.
        baseline: the model's baseline (its bins are the window's bins).
        previous: the model's previous closed window, or ``None``.
        spec: the model's configuration (see :class:`ModelSpecLike`).
        recent_counts: event counts of recent earlier windows, for volume.
        emitted_at: the close time (epoch seconds).

    Returns:
        The JSON-ready dict described in the module docstring.
    """
    prev = previous if previous is not None and previous.n > 0 else None
    fbs = list(baseline.features.values())
    if baseline.prediction is not None:
        fbs.append(baseline.prediction)  # last: drift by the default method for its kind
    base_pairs: list[Pair] = []
    prev_pairs: list[Pair | None] = []
    floors: list[float | None] = []
    for j, fb in enumerate(fbs):
        ref = _reference(fb)
        numeric = isinstance(ref, ReferenceHistogram)
        kind = "numeric" if numeric else "categorical" if fb.kind == "numeric" else fb.kind
        if j == len(baseline.features):
            cur_raw, prev_raw = current.prediction, prev.prediction if prev else None
            method, thr = drift_method(fb.name, kind, None, baseline.rows)
        else:
            cur_raw = (current.hist if numeric else current.cats).get(fb.name)
            prev_raw = (prev.hist if numeric else prev.cats).get(fb.name) if prev else None
            method, thr = drift_method(fb.name, kind, spec, baseline.rows)
        cur, before = _same_kind(ref, cur_raw), _previous(ref, prev_raw)
        applied, floor = _noise_aware(fb, method, thr, cur)
        floors.append(floor)
        base_pairs.append((ref, cur, method, applied))
        prev_pairs.append(None if before is None else (before, cur, method, thr))
    summaries: list[dict[str, Any]] = []
    for fb, pair, floor, vs_base, vs_prev in zip(
        fbs, base_pairs, floors, _drift_all(base_pairs), _drift_all(prev_pairs), strict=True
    ):
        feat = _summary(fb, pair[0], pair[1])
        feat["drift"], feat["drift_previous"] = drift_dict(vs_base, floor), drift_dict(vs_prev)
        summaries.append(feat)
    features = dict(zip(baseline.features, summaries, strict=False))
    defined = [
        k for k, f in features.items() if f["drift"]["value"] is not None or f["drift"]["drifted"]
    ]
    drifted = sorted(k for k in defined if features[k]["drift"]["drifted"])

    n = int(current.n)
    dead = {str(k): int(v) for k, v in sorted(current.dlq.items())}
    recent = float(np.mean(recent_counts)) if len(recent_counts) else None
    conf_n = int(current.conf_n)
    return {
        "schema": SCHEMA_VERSION,
        "model": model,
        "baseline": baseline.version,
        "window": {"start": int(start), "end": int(end)},
        "emitted_at": float(emitted_at),
        "count": n,
        "dead_letters": dead,
        "dead_letter_rate": _ratio(sum(dead.values()), n + sum(dead.values())),
        "volume": {
            "count": n,
            "recent_mean": recent,
            "ratio": None if recent is None else _ratio(n, recent),
            "history": len(recent_counts),
        },
        "features": features,
        "drifted_features": drifted,
        "drift_share": _ratio(len(drifted), len(defined)),
        "prediction": summaries[-1] if baseline.prediction is not None else None,
        "confidence": {
            "n": conf_n,
            "mean_top": _ratio(current.conf_sum, conf_n),
            "share_below": _ratio(current.conf_below, conf_n),
            "threshold": None if spec is None else _num(spec.confidence_threshold),
        },
        "latency_ms": _latency(current),
    }

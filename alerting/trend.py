"""Trend rules: a metric rising or falling over the last K windows.

A slow drift stays under every per-window threshold until it is large; a
trend rule sees it coming. For each configured :class:`~alerting.settings.TrendRule`
the metric is read from the last ``windows`` window results (this one and
the ones before it, which must all define it), and the ordinary
least-squares slope of value against window index (window start / window
length, so a missing window leaves a gap) is compared with ``slope``:
``rising`` fires when ``slope_hat ≥ slope``, ``falling`` when
``slope_hat ≤ -slope``, ``either`` when ``|slope_hat| ≥ slope``.

Example:
    >>> least_squares_slope([0, 1, 2, 3], [1.0, 1.5, 2.0, 2.5])
    0.5
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from alerting.check import Check, Context, features_of, fmt, num
from alerting.settings import TrendRule

__all__ = ["least_squares_slope", "metric_value", "slope_check", "trend", "window_index"]


def least_squares_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Slope of the least-squares line through ``(x, y)`` (``x`` not all equal)."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    if sxx == 0:
        raise ValueError("the x values are all equal: no slope")
    return sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sxx


def _model_metric(r: Mapping[str, Any], metric: str) -> float | None:
    get: dict[str, Callable[[], Any]] = {
        "volume": lambda: r.get("count"),
        "latency_p95": lambda: (r.get("latency_ms") or {}).get("p95"),
        "latency_p99": lambda: (r.get("latency_ms") or {}).get("p99"),
        "dead_letter_rate": lambda: r.get("dead_letter_rate"),
        "drift_share": lambda: r.get("drift_share"),
        "prediction_drift": lambda: ((r.get("prediction") or {}).get("drift") or {}).get("value"),
        "prediction_mean": lambda: (r.get("prediction") or {}).get("mean"),
        "low_confidence": lambda: (r.get("confidence") or {}).get("share_below"),
    }
    return num(get[metric]())


def metric_value(r: Mapping[str, Any], metric: str, feature: str | None) -> float | None:
    """A trend metric (:data:`~alerting.settings.TREND_METRICS`) of one window result."""
    if feature is None:
        return _model_metric(r, metric)
    feat = (r.get("features") or {}).get(feature)
    if not isinstance(feat, Mapping):
        return None
    if metric == "feature_drift":
        return num((feat.get("drift") or {}).get("value"))
    return num(feat.get(metric))


def window_index(r: Mapping[str, Any]) -> float | None:
    """A window's start in window lengths (the x of a trend fit)."""
    w = r.get("window") or {}
    start, end = num(w.get("start")), num(w.get("end"))
    if start is None or end is None or end <= start:
        return None
    return start / (end - start)


def _one(ctx: Context, t: TrendRule, feature: str | None) -> Check | None:
    rows = [*ctx.history[-(t.windows - 1) :], ctx.result] if t.windows > 1 else [ctx.result]
    if len(rows) < t.windows:
        return None
    xs = [window_index(r) for r in rows]
    ys = [metric_value(r, t.metric, feature) for r in rows]
    return slope_check(t, feature, xs, ys)


def slope_check(
    t: TrendRule, feature: str | None, xs: list[float | None], ys: list[float | None]
) -> Check | None:
    """The trend rule ``t`` on points ``(x = window index, y)``; ``None`` when one
    is undefined or the x values are all equal."""
    if any(v is None for v in xs) or any(v is None for v in ys):
        return None
    x = [float(v) for v in xs if v is not None]
    y = [float(v) for v in ys if v is not None]
    try:
        slope = least_squares_slope(x, y)
    except ValueError:
        return None
    if t.direction == "rising":
        firing, word = slope >= t.slope, "rising"
    elif t.direction == "falling":
        firing, word = slope <= -t.slope, "falling"
    else:
        firing, word = abs(slope) >= t.slope, "changing"
    subject = f"feature {feature!r} {t.metric}" if feature else t.metric
    if t.direction == "falling":
        test = f"{'≤' if firing else '>'} -{fmt(t.slope)}"
    else:
        test = f"{'≥' if firing else '<'} {fmt(t.slope)}"
    lhs = "|slope|" if t.direction == "either" else "slope"
    values = ", ".join(fmt(v) for v in y)
    msg = (
        f"{subject} {word if firing else 'not ' + word}: slope {fmt(slope)} per window over the "
        f"last {t.windows} windows ({values}); {lhs} {test}"
    )
    return Check(t.rule, feature, t.metric, slope, t.slope, t.severity, firing, msg)


def trend(ctx: Context) -> list[Check]:
    """Every configured trend rule on this window and the ones before it."""
    out = []
    for t in ctx.settings.trends:
        if t.on_quality:
            continue  # as windows mature: alerting.quality_rules.quality_trend_checks
        if not t.per_feature:
            subjects: list[str | None] = [None]
        elif t.feature is not None:
            subjects = [t.feature]
        else:
            subjects = [name for name, _ in features_of(ctx.result)]
        for feature in subjects:
            c = _one(ctx, t, feature)
            if c is not None:
                out.append(c)
    return out

"""Quality rules: a window's realised model quality against the baseline's.

Labels arrive after a window closed, so these rules run whenever a window's
quality is updated (:mod:`stream.quality`), not at close. For each configured
metric, a window with at least ``min_labels`` labels breaches a tier when

* a metric where higher is better (:data:`HIGHER_IS_BETTER`: accuracy, the
  macro-averaged precision, recall and F1, ROC-AUC, PR-AUC, R²) is at least
  the tier's margin *below* the baseline's (absolute: ``0.05`` is 5 points);
* a metric where lower is better (:data:`LOWER_IS_BETTER`: log loss, ECE,
  MAE, MSE, RMSE, MAPE) is at least the tier's margin *above* the baseline's,
  relative to it (``0.2``: 20 % worse).

An accuracy drop must also be significant: at least ``NOISE_Z`` (4)
binomial standard errors at the window's label count, ``sqrt(a (1 - a) / n)``
with ``a`` the baseline's accuracy, so that a window still filling up does not
alert on noise (at ``a = 0.86``: 0.14 at 100 labels, 0.062 at 500, 0.02 at
5,000; the 5-point margin rules from about 800 labels on). The threshold an
alert reports is the larger of the two. A window is looked at when it reaches
``min_labels`` and each time its labels double (:mod:`stream.quality`), so
its chance of a false alarm stays near 10⁻⁴.

The rule is ``quality_<metric>``; severity the highest tier breached. Default:
``accuracy = { critical = 0.05 }`` (5 points of accuracy lost is critical, as
the field does) with ``min_labels = 100``.

Lifecycle (one subject per model and rule, so that Alertmanager sees one
alert): a breach in any window fires (once); a window newer than the newest
breaching one that no longer breaches resolves it (:func:`quality_transition`).

Example:
    >>> s = QualitySettings()
    >>> [(c.rule, c.severity, c.firing) for c in quality_checks({"accuracy": 0.80},
    ...     {"accuracy": 0.86}, 2000, s)]
    [('quality_accuracy', 'critical', True)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alerting.check import Check, fmt, num
from alerting.events import Severity, Status
from alerting.settings import HIGHER_IS_BETTER, LOWER_IS_BETTER, QualitySettings, TrendRule
from alerting.trend import slope_check, window_index

__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "QualitySettings",
    "quality_checks",
    "quality_transition",
    "quality_trend_checks",
]

_ORDER: tuple[Severity, ...] = ("low", "medium", "high", "critical")


#: a drop in accuracy must also exceed this many binomial standard errors
NOISE_Z = 4.0  # one-sided 3e-5 per look; a window is looked at a handful of times


def _noise(metric: str, base: float, n: int) -> float:
    """The accuracy drop sampling noise alone exceeds with probability 0.1 % at
    ``n`` labels (``NOISE_Z`` binomial standard errors at the baseline's
    accuracy); 0 for other metrics."""
    if metric != "accuracy" or n <= 0 or not 0.0 < base < 1.0:
        return 0.0
    return float(NOISE_Z * (base * (1.0 - base) / n) ** 0.5)


def _value(metrics: Mapping[str, Any], metric: str) -> float | None:
    if metric in ("precision", "recall", "f1"):
        return num((metrics.get("macro") or {}).get(metric))
    return num(metrics.get(metric))


def quality_checks(
    metrics: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    labelled: int,
    settings: QualitySettings,
) -> list[Check]:
    """One check per configured metric that both the window and the baseline define."""
    if labelled < settings.min_labels or not baseline:
        return []
    out = []
    for metric, tiers in settings.metrics.items():
        value, base = _value(metrics, metric), _value(baseline, metric)
        if value is None or base is None:
            continue
        higher = metric in HIGHER_IS_BETTER
        worse = base - value if higher else (value - base) / base if base else 0.0
        noise = _noise(metric, base, labelled)
        reached = [
            s
            for s in _ORDER
            if s in tiers and worse >= max(tiers[s], noise) - 1e-9  # 0.86 - 0.81
        ]
        lowest = max(min(tiers.values()), noise)
        threshold = base - lowest if higher else base * (1 + lowest)
        firing = bool(reached)
        severity: Severity = reached[-1] if reached else next(s for s in _ORDER if s in tiers)
        if higher:
            how = f"{fmt(value)} is {fmt(100 * worse)} points below the baseline's {fmt(base)}"
        else:
            how = f"{fmt(value)} is {fmt(100 * worse)} % above the baseline's {fmt(base)}"
        msg = f"{metric} {how} ({labelled} labels)"
        out.append(
            Check(f"quality_{metric}", None, metric, value, threshold, severity, firing, msg)
        )
    return out


def quality_trend_checks(
    rows: Sequence[Mapping[str, Any]], trends: tuple[TrendRule, ...], settings: QualitySettings
) -> list[Check]:
    """Trend rules on realised quality (``metric`` in
    :data:`~alerting.settings.QUALITY_METRICS`) over window qualities
    ``rows`` (``{"window", "labelled", "metrics"}``, oldest first, ending with the
    window just updated): the last ``windows`` of them must each have at least
    ``min_labels`` labels and define the metric."""
    out = []
    for t in trends:
        if not t.on_quality:
            continue
        last = rows[-t.windows :]
        if len(last) < t.windows or any(
            int(r.get("labelled") or 0) < settings.min_labels for r in last
        ):
            continue
        xs = [window_index(r) for r in last]
        ys = [_value(r.get("metrics") or {}, t.metric) for r in last]
        c = slope_check(t, None, xs, ys)
        if c is not None:
            out.append(c)
    return out


def quality_transition(
    state: Mapping[str, Any] | None, start: int, firing: bool
) -> tuple[Status | None, dict[str, Any] | None]:
    """What a quality rule's evaluation on window ``start`` emits, and its new state.

    ``state`` is ``{"firing": bool, "start": int}`` (``start``: the newest
    breaching window while firing, else the newest evaluated one); returns the
    status to emit (``None``: nothing) and the state to store (``None``:
    unchanged). A breach in any window fires once; only a window newer than
    the newest breaching one resolves, so windows maturing out of order
    neither lose an alert nor resolve it early.

    Example:
        >>> quality_transition(None, 60, True)
        ('firing', {'firing': True, 'start': 60})
        >>> quality_transition({"firing": True, "start": 60}, 0, False)
        (None, None)
        >>> quality_transition({"firing": True, "start": 60}, 120, False)
        ('resolved', {'firing': False, 'start': 120})
        >>> quality_transition({"firing": False, "start": 120}, 60, True)
        ('firing', {'firing': True, 'start': 120})
    """
    was = bool(state and state.get("firing"))
    newest = max(start, int(state.get("start", start))) if state else start
    if firing:
        new = {"firing": True, "start": newest}
        return ("firing" if not was else None), new
    if was:
        if state is not None and start > int(state.get("start", start)):
            return "resolved", {"firing": False, "start": start}
        return None, None
    return None, {"firing": False, "start": newest}

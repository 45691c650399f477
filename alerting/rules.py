"""The alert rules, evaluated on one window result.

:func:`evaluate_window` reads a window result
(:func:`stream.results.window_result`), the lifecycle state of the model's
previous window and the rule settings (:class:`~alerting.settings.RuleSettings`),
and returns the alert events, the ``(rule, feature)`` pairs firing now and the
new state (:mod:`alerting.lifecycle`: ``for``, ``resolve_after``, repeats,
mutes). :func:`evaluate` is the same with the default lifecycle. Rules switched
off (``off``, per model or per feature) produce nothing; a pair that was
firing then resolves like any other.

Rules (``feature`` is ``None`` unless stated; boundaries inclusive as written):

* ``feature_drift`` (per feature): drifted vs baseline; metric the method,
  value the number compared (the p-value for tests), threshold the one that
  applied (effect + noise floor for distances; the Benjamini–Hochberg cutoff
  when ``fdr`` is set), severity by tier (:mod:`alerting.settings`).
* ``prediction_drift``: the prediction drifted vs baseline; as above.
* ``drift_share``: share of drifted features ≥ ``drift_share`` → critical
  (after the FDR correction when it is set).
* k of m (named by each group): at least ``k`` of the group's features
  drifted → the group's severity (:mod:`alerting.drift_rules`).
* ``latency_p95`` / ``latency_p99``: the percentile > its SLO (when one is
  set) → medium / high.
* ``volume``: events / recent mean < ``volume_low`` or > ``volume_high``, with
  at least ``volume_min_history`` recent windows → medium.
* ``dead_letter_rate``: dead letters / (events + dead letters) > ``dlq_rate``
  → medium.
* ``low_confidence``: share of predictions whose top probability is below the
  confidence threshold > ``confidence_share_below`` (when set) → medium.
* ``missing_rate`` (per feature): missing rate > the baseline's +
  ``missing_increase`` → medium.
* ``out_of_range`` (per feature): share of values outside the baseline's
  range > ``out_of_range_share`` → medium.
* ``unseen_categories`` (per feature): share of categories absent from the
  baseline > ``unseen_share`` → medium.
* ``<metric>_trend`` (per trend rule; per feature for feature metrics): the
  least-squares slope over the last K windows (:mod:`alerting.trend`).

Per-feature rules (drift and data quality, with per-feature overrides of
``min_samples`` and the shares) and prediction drift need at least
``min_samples`` values in the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from alerting.check import Check, Context, enough, features_of, fmt, num
from alerting.drift_rules import drift_share, feature_drift, k_of_m, mark_drifted, prediction_drift
from alerting.events import AlertEvent, Severity, Status, Window, alert_id
from alerting.lifecycle import DEFAULT_LIFECYCLE, Lifecycle, Pair, PairState, advance
from alerting.settings import RuleSettings
from alerting.trend import trend

__all__ = ["RULES", "RuleSettings", "Slo", "evaluate", "evaluate_window"]

#: a latency SLO: p99 in ms, or ``{"p95": ms, "p99": ms}`` (either or both)
Slo = float | Mapping[str, float] | None


def _share_check(
    rule: str, name: str, metric: str, value: float | None, limit: float, what: str
) -> Check | None:
    if value is None:
        return None
    firing = value > limit
    msg = f"feature {name!r}: {what} {fmt(value)} {'>' if firing else '≤'} {fmt(limit)}"
    return Check(rule, name, metric, value, limit, "medium", firing, msg)


def _quality(
    ctx: Context,
    rule: str,
    metric: str,
    limit: Callable[[Mapping[str, Any], RuleSettings], float],
    what: Callable[[Mapping[str, Any]], str],
) -> list[Check]:
    """A per-feature data-quality rule: ``feat[metric] > limit(feat, settings)`` fires."""
    out = []
    for name, feat in features_of(ctx.result):
        s = ctx.settings.for_feature(name)
        check = _share_check(rule, name, metric, num(feat.get(metric)), limit(feat, s), what(feat))
        if check is not None and enough(feat, s):
            out.append(check)
    return out


def _base_missing(f: Mapping[str, Any]) -> float:
    return num(f.get("baseline_missing_rate")) or 0.0


def _missing(ctx: Context) -> list[Check]:
    return _quality(
        ctx,
        "missing_rate",
        "missing_rate",
        lambda f, s: _base_missing(f) + s.missing_increase,
        lambda f: f"missing rate (baseline {fmt(_base_missing(f))})",
    )


def _out_of_range(ctx: Context) -> list[Check]:
    return _quality(
        ctx,
        "out_of_range",
        "out_of_range_share",
        lambda f, s: s.out_of_range_share,
        lambda f: "share outside the baseline's range",
    )


def _unseen(ctx: Context) -> list[Check]:
    def what(f: Mapping[str, Any]) -> str:
        shown = ", ".join(str(k) for k, _ in (f.get("unseen_categories") or [])[:3])
        return "share of unseen categories" + (f" ({shown}, …)" if shown else "")

    return _quality(ctx, "unseen_categories", "unseen_share", lambda f, s: s.unseen_share, what)


def _latency(ctx: Context, q: str, severity: Severity) -> list[Check]:
    slo = ctx.slo.get(q)
    value = num((ctx.result.get("latency_ms") or {}).get(q))
    if slo is None or value is None:
        return []
    firing = value > slo
    msg = f"latency {q} {fmt(value)} ms {'>' if firing else '≤'} SLO {fmt(slo)} ms"
    return [Check(f"latency_{q}", None, f"latency_{q}_ms", value, slo, severity, firing, msg)]


def _latency_p95(ctx: Context) -> list[Check]:
    return _latency(ctx, "p95", "medium")


def _latency_p99(ctx: Context) -> list[Check]:
    return _latency(ctx, "p99", "high")


def _volume(ctx: Context) -> list[Check]:
    s = ctx.settings
    vol = ctx.result.get("volume") or {}
    ratio, history = num(vol.get("ratio")), int(vol.get("history") or 0)
    if ratio is None or history < s.volume_min_history:
        return []
    low, high = ratio < s.volume_low, ratio > s.volume_high
    thr = s.volume_low if ratio < 1.0 else s.volume_high
    msg = (
        f"volume {vol.get('count')} events is {fmt(ratio)}× the mean of the last {history} "
        f"windows ({fmt(vol.get('recent_mean'))}; "
        f"{'outside' if low or high else 'within'} {fmt(s.volume_low)}–{fmt(s.volume_high)}×)"
    )
    return [Check("volume", None, "volume_ratio", ratio, thr, "medium", low or high, msg)]


def _dead_letters(ctx: Context) -> list[Check]:
    r, s = ctx.result, ctx.settings
    rate = num(r.get("dead_letter_rate"))
    if rate is None:
        return []
    firing = rate > s.dlq_rate
    n = sum(int(v) for v in (r.get("dead_letters") or {}).values())
    msg = f"dead-letter rate {fmt(rate)} {'>' if firing else '≤'} {fmt(s.dlq_rate)} ({n} dead)"
    return [
        Check("dead_letter_rate", None, "dead_letter_rate", rate, s.dlq_rate, "medium", firing, msg)
    ]


def _confidence(ctx: Context) -> list[Check]:
    conf = ctx.result.get("confidence") or {}
    share, limit = num(conf.get("share_below")), ctx.settings.confidence_share_below
    if share is None or limit is None:
        return []
    firing = share > limit
    msg = (
        f"share of predictions with top probability below {fmt(conf.get('threshold'))} "
        f"is {fmt(share)} ({'>' if firing else '≤'} {fmt(limit)})"
    )
    return [
        Check("low_confidence", None, "confidence_share_below", share, limit, "medium", firing, msg)
    ]


_Rule = Callable[[Context], list[Check]]
#: the rules, in the order their events are published (``k_of_m`` and
#: ``trend`` produce rules named by their configuration)
RULES: Mapping[str, _Rule] = MappingProxyType(
    {
        "feature_drift": feature_drift,
        "prediction_drift": prediction_drift,
        "drift_share": drift_share,
        "k_of_m": k_of_m,
        "latency_p95": _latency_p95,
        "latency_p99": _latency_p99,
        "volume": _volume,
        "dead_letter_rate": _dead_letters,
        "low_confidence": _confidence,
        "missing_rate": _missing,
        "out_of_range": _out_of_range,
        "unseen_categories": _unseen,
        "trend": trend,
    }
)
DEFAULT_SETTINGS = RuleSettings()
_DEFAULT_SEVERITY: Mapping[str, Severity] = {
    "drift_share": "critical",
    "latency_p99": "high",
}


def _slo(latency_slo_ms: Slo) -> dict[str, float]:
    if latency_slo_ms is None:
        return {}
    if isinstance(latency_slo_ms, Mapping):
        return {str(k): float(v) for k, v in latency_slo_ms.items() if v is not None}
    return {"p99": float(latency_slo_ms)}


def _checks(ctx: Context) -> list[Check]:
    mark_drifted(ctx)
    s = ctx.settings
    return [c for rule in RULES.values() for c in rule(ctx) if s.enabled(c.rule, c.feature)]


def _resolved_severity(rule: str, s: RuleSettings) -> Severity:
    for g in s.k_of_m:
        if g.name == rule:
            return g.severity
    for t in s.trends:
        if t.rule == rule:
            return t.severity
    return _DEFAULT_SEVERITY.get(rule, "medium")


def evaluate(
    result: Mapping[str, Any],
    previous_firing: Iterable[Sequence[str | None]],
    latency_slo_ms: Slo,
    settings: RuleSettings = DEFAULT_SETTINGS,
    version: str | None = None,
    history: Sequence[Mapping[str, Any]] = (),
) -> tuple[list[AlertEvent], list[list[str | None]]]:
    """Alert events for one window result, with the default lifecycle.

    Args:
        result: a window result (see :mod:`stream.results`).
        previous_firing: ``[rule, feature]`` pairs firing in the previous window.
        latency_slo_ms: the model's latency SLO (see :data:`Slo`), or ``None``.
        settings: rule thresholds.
        version: the ``version`` put on the events.
        history: the model's earlier window results, oldest first (trend rules).

    Returns:
        The events (firing ones in rule order, then resolved ones) and the
        ``[rule, feature]`` pairs firing now.
    """
    state = {
        (str(p[0]), None if p[1] is None else str(p[1])): PairState(1, 0, True, 0)
        for p in previous_firing
        if isinstance(p, Sequence) and not isinstance(p, str) and len(p) == 2 and p[0]
    }
    events, firing, _ = evaluate_window(
        result, state, latency_slo_ms, settings, version=version, history=history
    )
    return events, firing


def evaluate_window(
    result: Mapping[str, Any],
    state: Mapping[Pair, PairState],
    latency_slo_ms: Slo,
    settings: RuleSettings = DEFAULT_SETTINGS,
    lifecycle: Lifecycle = DEFAULT_LIFECYCLE,
    muted: Callable[[Pair], bool] = lambda pair: False,
    version: str | None = None,
    history: Sequence[Mapping[str, Any]] = (),
) -> tuple[list[AlertEvent], list[list[str | None]], dict[Pair, PairState]]:
    """Alert events for one window result, through the lifecycle (:mod:`alerting.lifecycle`).

    ``history`` holds the model's earlier window results, oldest first; only
    trend rules read it (the closer passes as many as the longest trend needs).

    Returns:
        The events (firing ones in rule order, then resolved ones), the
        ``[rule, feature]`` pairs firing after this window, and the new state.
    """
    model = str(result.get("model", ""))
    win = result.get("window") or {}
    window = Window(int(win.get("start", 0)), int(win.get("end", 0)))
    ctx = Context(result, settings, _slo(latency_slo_ms), history)
    checks = _checks(ctx)
    by_key = {(c.rule, c.feature): c for c in checks}
    breaching = [(c.rule, c.feature) for c in checks if c.firing]
    new_state, emits = advance(state, breaching, lifecycle, muted)

    def event(c: Check, resolved: bool) -> AlertEvent:
        status: Status = "resolved" if resolved else "firing"
        return AlertEvent(
            alert_id=alert_id(model, c.rule, c.feature, window.start, status),
            model=model,
            version=version,
            window=window,
            rule=c.rule,
            metric=c.metric,
            feature=c.feature,
            value=c.value,
            threshold=c.threshold,
            severity=c.severity,
            status=status,
            baseline=None if result.get("baseline") is None else str(result["baseline"]),
            message=f"{model}: {c.message}" + (" — resolved" if resolved else ""),
            emitted_at=float(result.get("emitted_at") or 0.0),
        )

    order = {name: i for i, name in enumerate(RULES)}
    order.update({g.name: order["k_of_m"] for g in settings.k_of_m})

    def rank(pair: Pair) -> tuple[int, int, str, str]:
        rule, feature = pair
        return (
            order.get(rule, len(order)),
            breaching.index(pair) if pair in breaching else 0,
            rule,
            feature or "",
        )

    fired = sorted((p for p, e in emits if e == "firing"), key=rank)
    gone = sorted((p for p, e in emits if e == "resolved"), key=rank)
    events = [event(by_key[p], False) for p in fired]
    for rule, feature in gone:
        c = by_key.get((rule, feature))
        if c is None:  # nothing to measure this window (no data, rule switched off)
            what = f"feature {feature!r}" if feature else "model"
            sev = _resolved_severity(rule, settings)
            c = Check(rule, feature, rule, None, None, sev, False, f"{rule} on {what}: no data")
        events.append(event(c, True))
    firing = [[rule, feature] for (rule, feature), st in new_state.items() if st.firing]
    firing.sort(key=lambda rf: rank((str(rf[0]), rf[1])))
    return events, firing, new_state

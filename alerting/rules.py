"""The default alert rules, evaluated on one window result.

:func:`evaluate` reads a window result (:func:`stream.results.window_result`)
and the ``(rule, feature)`` pairs that fired in the model's previous window,
and returns the alert events and the pairs firing now (store them as the
result's ``firing`` list for the next window). Lifecycle: a pair that holds
gets a ``firing`` event in every window while it holds (one id per window);
a pair that fired in the previous window and does not hold now gets one
``resolved`` event (carrying this window's values where they exist, and the
rule's usual severity).

Rules (``feature`` is ``None`` unless stated; boundaries inclusive as written):

* ``feature_drift`` (per feature): drifted vs baseline; metric the method,
  value the number compared (the p-value for tests), severity from the result.
* ``prediction_drift``: the prediction drifted vs baseline; as above.
* ``drift_share``: share of drifted features ≥ ``drift_share`` → critical.
* ``latency_p99``: p99 latency > the SLO (when one is set) → high.
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

Per-feature rules (drift and data quality) and prediction drift need at least
``min_samples`` values in the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from alerting.events import SEVERITIES, AlertEvent, Severity, Status, Window, alert_id
from alerting.lifecycle import DEFAULT_LIFECYCLE, Lifecycle, Pair, PairState, advance

__all__ = ["RULES", "RuleSettings", "evaluate", "evaluate_window"]


@dataclass(frozen=True)
class RuleSettings:
    """Thresholds of the default rules (see the module docstring)."""

    drift_share: float = 0.5
    volume_low: float = 0.5
    volume_high: float = 2.0
    volume_min_history: int = 3
    dlq_rate: float = 0.05
    confidence_share_below: float | None = None
    min_samples: int = 50
    missing_increase: float = 0.05
    out_of_range_share: float = 0.05
    unseen_share: float = 0.05


@dataclass(frozen=True)
class _Check:
    """One rule on one subject in this window, firing or not."""

    rule: str
    feature: str | None
    metric: str
    value: float | None
    threshold: float | None
    severity: Severity
    firing: bool
    message: str


def _fmt(v: Any) -> str:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return "n/a"
    if v != 0 and (abs(v) < 0.01 or abs(v) >= 10_000):
        return f"{v:.3g}"
    return f"{v:.2f}"


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _drift_check(rule: str, feature: str | None, subject: str, d: Mapping[str, Any]) -> _Check:
    method = str(d.get("method", "drift"))
    drifted = bool(d.get("drifted"))
    is_test = d.get("p_value") is not None
    value = _num(d.get("p_value") if is_test else d.get("value"))
    thr = _num(d.get("threshold"))
    if value is None and not drifted:
        detail = f"{method}: {d.get('reason') or 'undefined'}"
    elif is_test:
        detail = f"{method} p={_fmt(value)} {'<' if drifted else '≥'} {_fmt(thr)}"
    else:
        shown = _fmt(value) if value is not None else "inf"
        detail = f"{method} {shown} {'≥' if drifted else '<'} {_fmt(thr)}"
    state = "drifted" if drifted else "not drifted"
    sev = d.get("severity")
    severity: Severity = sev if sev in SEVERITIES else "medium"
    msg = f"{subject} {state} vs baseline ({detail})"
    return _Check(rule, feature, method, value, thr, severity, drifted, msg)


def _enough(feat: Mapping[str, Any], s: RuleSettings) -> bool:
    """At least ``min_samples`` values (present or missing) in the window
    (a result without counts is taken as enough)."""
    if "count" not in feat:
        return True
    return int(feat.get("count") or 0) + int(feat.get("missing") or 0) >= s.min_samples


def _features(r: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return [(n, f) for n, f in (r.get("features") or {}).items() if isinstance(f, Mapping)]


def _feature_drift(r: Mapping[str, Any], s: RuleSettings, slo: float | None) -> list[_Check]:
    return [
        _drift_check("feature_drift", name, f"feature {name!r}", feat["drift"])
        for name, feat in _features(r)
        if feat.get("drift") and _enough(feat, s)
    ]


def _prediction_drift(r: Mapping[str, Any], s: RuleSettings, slo: float | None) -> list[_Check]:
    pred = r.get("prediction") or {}
    d = pred.get("drift")
    if not d or not _enough(pred, s):
        return []
    return [_drift_check("prediction_drift", None, "prediction", d)]


def _share_check(
    rule: str, name: str, metric: str, value: float | None, limit: float, what: str
) -> _Check | None:
    if value is None:
        return None
    firing = value > limit
    msg = f"feature {name!r}: {what} {_fmt(value)} {'>' if firing else '≤'} {_fmt(limit)}"
    return _Check(rule, name, metric, value, limit, "medium", firing, msg)


def _quality(
    r: Mapping[str, Any],
    s: RuleSettings,
    rule: str,
    metric: str,
    limit: Callable[[Mapping[str, Any]], float],
    what: Callable[[Mapping[str, Any]], str],
) -> list[_Check]:
    """A per-feature data-quality rule: ``feat[metric] > limit(feat)`` fires."""
    out = []
    for name, feat in _features(r):
        check = _share_check(rule, name, metric, _num(feat.get(metric)), limit(feat), what(feat))
        if check is not None and _enough(feat, s):
            out.append(check)
    return out


def _missing(r: Mapping[str, Any], s: RuleSettings, slo: float | None) -> list[_Check]:
    def base(f: Mapping[str, Any]) -> float:
        return _num(f.get("baseline_missing_rate")) or 0.0

    return _quality(
        r,
        s,
        "missing_rate",
        "missing_rate",
        lambda f: base(f) + s.missing_increase,
        lambda f: f"missing rate (baseline {_fmt(base(f))})",
    )


def _out_of_range(r: Mapping[str, Any], s: RuleSettings, slo: float | None) -> list[_Check]:
    return _quality(
        r,
        s,
        "out_of_range",
        "out_of_range_share",
        lambda f: s.out_of_range_share,
        lambda f: "share outside the baseline's range",
    )


def _unseen(r: Mapping[str, Any], s: RuleSettings, slo: float | None) -> list[_Check]:
    def what(f: Mapping[str, Any]) -> str:
        shown = ", ".join(str(k) for k, _ in (f.get("unseen_categories") or [])[:3])
        return "share of unseen categories" + (f" ({shown}, …)" if shown else "")

    return _quality(r, s, "unseen_categories", "unseen_share", lambda f: s.unseen_share, what)


def _drift_share(r: Mapping[str, Any], s: RuleSettings, slo: float | None) -> list[_Check]:
    share = _num(r.get("drift_share"))
    if share is None:
        return []
    k = len(r.get("drifted_features") or [])
    firing = k > 0 and share >= s.drift_share
    op = "≥" if firing else "<"
    msg = f"{k} features drifted vs baseline (share {_fmt(share)} {op} {_fmt(s.drift_share)})"
    return [
        _Check("drift_share", None, "drift_share", share, s.drift_share, "critical", firing, msg)
    ]


def _latency(r: Mapping[str, Any], s: RuleSettings, slo: float | None) -> list[_Check]:
    p99 = _num((r.get("latency_ms") or {}).get("p99"))
    if slo is None or p99 is None:
        return []
    firing = p99 > slo
    msg = f"latency p99 {_fmt(p99)} ms {'>' if firing else '≤'} SLO {_fmt(slo)} ms"
    return [_Check("latency_p99", None, "latency_p99_ms", p99, slo, "high", firing, msg)]


def _volume(r: Mapping[str, Any], s: RuleSettings, slo: float | None) -> list[_Check]:
    vol = r.get("volume") or {}
    ratio, history = _num(vol.get("ratio")), int(vol.get("history") or 0)
    if ratio is None or history < s.volume_min_history:
        return []
    low, high = ratio < s.volume_low, ratio > s.volume_high
    thr = s.volume_low if ratio < 1.0 else s.volume_high
    msg = (
        f"volume {vol.get('count')} events is {_fmt(ratio)}× the mean of the last {history} "
        f"windows ({_fmt(vol.get('recent_mean'))}; "
        f"{'outside' if low or high else 'within'} {_fmt(s.volume_low)}–{_fmt(s.volume_high)}×)"
    )
    return [_Check("volume", None, "volume_ratio", ratio, thr, "medium", low or high, msg)]


def _dead_letters(r: Mapping[str, Any], s: RuleSettings, slo: float | None) -> list[_Check]:
    rate = _num(r.get("dead_letter_rate"))
    if rate is None:
        return []
    firing = rate > s.dlq_rate
    n = sum(int(v) for v in (r.get("dead_letters") or {}).values())
    msg = f"dead-letter rate {_fmt(rate)} {'>' if firing else '≤'} {_fmt(s.dlq_rate)} ({n} dead)"
    return [
        _Check(
            "dead_letter_rate", None, "dead_letter_rate", rate, s.dlq_rate, "medium", firing, msg
        )
    ]


def _confidence(r: Mapping[str, Any], s: RuleSettings, slo: float | None) -> list[_Check]:
    conf = r.get("confidence") or {}
    share, limit = _num(conf.get("share_below")), s.confidence_share_below
    if share is None or limit is None:
        return []
    firing = share > limit
    msg = (
        f"share of predictions with top probability below {_fmt(conf.get('threshold'))} "
        f"is {_fmt(share)} ({'>' if firing else '≤'} {_fmt(limit)})"
    )
    return [
        _Check(
            "low_confidence", None, "confidence_share_below", share, limit, "medium", firing, msg
        )
    ]


_Rule = Callable[[Mapping[str, Any], RuleSettings, float | None], list[_Check]]
RULES: Mapping[str, _Rule] = MappingProxyType(
    {
        "feature_drift": _feature_drift,
        "prediction_drift": _prediction_drift,
        "drift_share": _drift_share,
        "latency_p99": _latency,
        "volume": _volume,
        "dead_letter_rate": _dead_letters,
        "low_confidence": _confidence,
        "missing_rate": _missing,
        "out_of_range": _out_of_range,
        "unseen_categories": _unseen,
    }
)
_DEFAULT_SEVERITY: Mapping[str, Severity] = {
    "drift_share": "critical",
    "latency_p99": "high",
}


def evaluate(
    result: Mapping[str, Any],
    previous_firing: Iterable[Sequence[str | None]],
    latency_slo_ms: float | None,
    settings: RuleSettings = RuleSettings(),
    version: str | None = None,
) -> tuple[list[AlertEvent], list[list[str | None]]]:
    """Alert events for one window result, with the default lifecycle.

    Args:
        result: a window result (see :mod:`stream.results`).
        previous_firing: ``[rule, feature]`` pairs firing in the previous window.
        latency_slo_ms: the model's p99 latency SLO, or ``None`` (no latency rule).
        settings: rule thresholds.
        version: the ``version`` put on the events.

    Returns:
        The events (firing ones in rule order, then resolved ones) and the
        ``[rule, feature]`` pairs firing now.
    """
    state = {
        (str(p[0]), None if p[1] is None else str(p[1])): PairState(1, 0, True, 0)
        for p in previous_firing
        if isinstance(p, Sequence) and not isinstance(p, str) and len(p) == 2 and p[0]
    }
    events, firing, _ = evaluate_window(result, state, latency_slo_ms, settings, version=version)
    return events, firing


def evaluate_window(
    result: Mapping[str, Any],
    state: Mapping[Pair, PairState],
    latency_slo_ms: float | None,
    settings: RuleSettings = RuleSettings(),
    lifecycle: Lifecycle = DEFAULT_LIFECYCLE,
    muted: Callable[[Pair], bool] = lambda pair: False,
    version: str | None = None,
) -> tuple[list[AlertEvent], list[list[str | None]], dict[Pair, PairState]]:
    """Alert events for one window result, through the lifecycle (:mod:`alerting.lifecycle`).

    Returns:
        The events (firing ones in rule order, then resolved ones), the
        ``[rule, feature]`` pairs firing after this window, and the new state.
    """
    model = str(result.get("model", ""))
    win = result.get("window") or {}
    window = Window(int(win.get("start", 0)), int(win.get("end", 0)))
    checks = [c for rule in RULES.values() for c in rule(result, settings, latency_slo_ms)]
    by_key = {(c.rule, c.feature): c for c in checks}
    breaching = [(c.rule, c.feature) for c in checks if c.firing]
    new_state, emits = advance(state, breaching, lifecycle, muted)

    def event(c: _Check, resolved: bool) -> AlertEvent:
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
            sev = _DEFAULT_SEVERITY.get(rule, "medium")
            c = _Check(rule, feature, rule, None, None, sev, False, f"{rule} on {what}: no data")
        events.append(event(c, True))
    firing = [[rule, feature] for (rule, feature), st in new_state.items() if st.firing]
    firing.sort(key=lambda rf: rank((str(rf[0]), rf[1])))
    return events, firing, new_state

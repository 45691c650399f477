"""The ``[alerts]`` configuration: rule thresholds, severity tiers, extra rules, lifecycle.

``[alerts]`` sets defaults for every model; ``[models.<m>.alerts]`` overrides
any of them for one model (``severity`` and ``features`` merge per method and
per feature; ``off``, ``trend`` and ``k_of_m`` replace the defaults' lists)::

    [alerts]
    for = 1                    # consecutive breaching windows before an alert fires
    resolve_after = 1          # consecutive clean windows before it resolves
    repeat_every = 1           # windows between repeats while firing (0: never)
    drift_share = 0.5          # share of drifted features that fires drift_share
    volume_low = 0.5           # events / mean of recent windows below this ...
    volume_high = 2.0          # ... or above this fires volume
    volume_min_history = 3     # recent windows needed before volume may fire
    dead_letter_rate = 0.05    # dead letters / (events + dead letters) above this
    low_confidence_share = 0.3 # share of low-confidence predictions above this (off by default)
    min_samples = 50           # values a feature needs in a window before its rules may fire
    missing_increase = 0.05    # missing rate above the baseline's by more than this
    out_of_range_share = 0.05  # share of values outside the baseline's range above this
    unseen_share = 0.05        # share of categories the baseline never saw above this
    fdr = 0.05                 # Benjamini–Hochberg over a window's p-value features (default off)
    off = ["volume"]           # rules switched off

    [alerts.severity]          # where each tier starts, per drift method
    psi = { medium = 0.1, high = 0.25, critical = 0.5 }
    ks = { medium = 0.05, high = 0.001 }        # p-value levels for tests

    [[alerts.trend]]           # least-squares slope over the last `windows` windows
    metric = "feature_drift"   # see alerting.settings.TREND_METRICS
    windows = 6
    slope = 0.01               # per window
    direction = "rising"       # rising | falling | either
    severity = "medium"

    [[alerts.k_of_m]]          # at least k of these features drifted
    name = "demographics_drift"
    k = 2
    features = ["age", "income", "region"]      # omitted: all features
    severity = "high"

    [alerts.features.age]      # per-feature overrides
    min_samples = 500
    severity = { medium = 0.15, high = 0.3 }
    off = ["out_of_range"]
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from alerting.events import SEVERITIES
from alerting.lifecycle import Lifecycle
from alerting.settings import (
    QUALITY_METRICS,
    TREND_METRICS,
    FeatureOverride,
    KOfM,
    QualitySettings,
    RuleSettings,
    Tiers,
    TrendRule,
)
from sketches.registry import METHODS
from stream.config_table import Table, show, suggest

__all__ = [
    "ALERT_KEYS",
    "BUILTIN_RULES",
    "FEATURE_KEYS",
    "FEATURE_RULES",
    "AlertSettings",
    "parse_alerts",
]

ALERT_KEYS = (
    "for",
    "resolve_after",
    "repeat_every",
    "drift_share",
    "volume_low",
    "volume_high",
    "volume_min_history",
    "dead_letter_rate",
    "low_confidence_share",
    "min_samples",
    "missing_increase",
    "out_of_range_share",
    "unseen_share",
    "fdr",
    "off",
    "severity",
    "trend",
    "k_of_m",
    "features",
    "quality",
)
FEATURE_KEYS = (
    "min_samples",
    "missing_increase",
    "out_of_range_share",
    "unseen_share",
    "severity",
    "off",
)
#: rules of the model that ``off`` may name (besides trend and k-of-m rules)
QUALITY_RULES = tuple(f"quality_{m}" for m in QUALITY_METRICS)
BUILTIN_RULES = (
    "feature_drift",
    "prediction_drift",
    "drift_share",
    "latency_p95",
    "latency_p99",
    "volume",
    "dead_letter_rate",
    "low_confidence",
    "missing_rate",
    "out_of_range",
    "unseen_categories",
    *QUALITY_RULES,
)
FEATURE_RULES = ("feature_drift", "missing_rate", "out_of_range", "unseen_categories")
_TREND_KEYS = ("metric", "windows", "slope", "direction", "severity", "feature")
_GROUP_KEYS = ("name", "k", "features", "severity")
_RULE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class AlertSettings:
    """Rule thresholds and lifecycle of one model (or the defaults)."""

    rules: RuleSettings = field(default_factory=RuleSettings)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)


def _share(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 1


def _positive(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < math.inf


def _count(minimum: int) -> Any:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def _severity(t: Table, default: str) -> Any:
    """A rule's ``severity`` key: one of :data:`~alerting.events.SEVERITIES`."""
    return t.get(
        "severity", default, lambda v: v in SEVERITIES, " or ".join(f'"{x}"' for x in SEVERITIES)
    )


def _strings(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) and x for x in v)


def _tiers(t: Table, name: str, method: str | None) -> Tiers | None:
    """A tier table ``{low|medium|high|critical = level}`` for ``method``
    (``None``: a feature's own method, checked for either direction)."""
    e = t.sub(name, SEVERITIES)
    if not e.ok or not e.data:
        if e.ok:
            e.error(None, f"expected at least one of {', '.join(SEVERITIES)}")
        return None
    levels: dict[str, float] = {}
    for sev in SEVERITIES:
        v = e.data.get(sev)
        if v is None:
            continue
        if not _positive(v):
            e.error(sev, f"expected a number > 0, got {show(v)}")
            return None
        levels[sev] = float(v)
    values = list(levels.values())
    is_test = METHODS[method].is_test if method is not None and method in METHODS else None
    rising = all(a < b for a, b in itertools.pairwise(values))
    falling = all(a > b for a, b in itertools.pairwise(values))
    shown = ", ".join(f"{k} = {v:g}" for k, v in levels.items())
    if is_test or (is_test is None and falling and len(values) > 1):
        if not (falling and all(v < 1 for v in values)):
            what = f"{method} is a test: its tiers" if method else "p-value tiers"
            e.error(
                None,
                f"{what} are p-value levels in (0, 1), smaller for higher severity, got {shown}",
            )
            return None
    elif not rising:
        what = f"{method} is a distance: its tiers" if method else "tiers"
        e.error(None, f"{what} must grow with severity, got {shown}")
        return None
    return levels  # type: ignore[return-value]


def _severity_tables(t: Table, base: RuleSettings) -> dict[str, Tiers]:
    out = dict(base.severity)
    sev = t.sub("severity")
    for method in sev.data:
        if method not in METHODS:
            known = ", ".join(METHODS)
            sev.error(method, f"unknown drift method; known: {known}{suggest(method, METHODS)}")
            continue
        tiers = _tiers(sev, method, method)
        if tiers is not None:
            out[method] = tiers
    return out


def _feature_check(
    t: Table, name: str | tuple[str, ...], feature: str, features: Sequence[str]
) -> bool:
    if features and feature not in features:
        t.error(
            name,
            f"not a feature of the model ({', '.join(features)}), "
            f"got {show(feature)}{suggest(feature, features)}",
        )
        return False
    return True


def _trends(t: Table, base: RuleSettings, features: Sequence[str]) -> tuple[TrendRule, ...]:
    items = t.array("trend", _TREND_KEYS)
    if items is None:
        return base.trends
    out: list[TrendRule] = []
    seen: set[tuple[str, str | None]] = set()
    for e in items:
        metric = e.data.get("metric")
        if metric not in TREND_METRICS:
            listed = ", ".join(TREND_METRICS)
            hint = suggest(metric, TREND_METRICS) if isinstance(metric, str) else ""
            e.error("metric", f"expected one of {listed}, got {show(metric)}{hint}")
            continue
        slope = e.data.get("slope")
        if not _positive(slope):
            what = "the slope per window that fires, a number > 0"
            e.error(
                "slope",
                f"required: {what}" if slope is None else f"expected {what}, got {show(slope)}",
            )
            continue
        windows = e.get(
            "windows", 6, _count(3), "an integer ≥ 3 (a slope needs 3 points to mean anything)"
        )
        direction = e.get(
            "direction",
            "rising",
            lambda v: v in ("rising", "falling", "either"),
            '"rising", "falling" or "either"',
        )
        severity = _severity(e, "medium")
        feature = e.get("feature", None, lambda v: isinstance(v, str) and bool(v), "a feature name")
        rule = TrendRule(str(metric), int(windows), float(slope or 0), direction, severity, feature)
        if feature is not None and not rule.per_feature:
            e.error("feature", f"{metric} is a model metric, not a feature's; remove feature")
            continue
        if feature is not None and not _feature_check(e, "feature", feature, features):
            continue
        if (rule.rule, feature) in seen:
            subject = f"feature {show(feature)}" if feature else "the model"
            both = 'use direction = "either" for both ways'
            e.error(None, f"a second {rule.rule} rule for {subject}; {both}")
            continue
        seen.add((rule.rule, feature))
        out.append(rule)
    return tuple(out)


def _groups(t: Table, base: RuleSettings, features: Sequence[str]) -> tuple[KOfM, ...]:
    items = t.array("k_of_m", _GROUP_KEYS)
    if items is None:
        return base.k_of_m
    out: list[KOfM] = []
    for e in items:
        name = e.get(
            "name",
            "k_of_m",
            lambda v: isinstance(v, str) and bool(_RULE_NAME.fullmatch(v)),
            "a rule name of [a-z0-9_] starting with a letter",
        )
        if name in BUILTIN_RULES or any(g.name == name for g in out):
            e.error("name", f"{show(name)} is already a rule's name; give each group its own")
            continue
        k = e.data.get("k")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            what = "how many drifted features fire, an integer ≥ 1"
            e.error("k", f"required: {what}" if k is None else f"expected {what}, got {show(k)}")
            continue
        names = e.get(
            "features",
            [],
            lambda v: _strings(v) and len(set(v)) == len(v),
            "a list of distinct feature names",
        )
        if not all(_feature_check(e, "features", f, features) for f in names):
            continue
        if names and k > len(names):
            e.error("k", f"{k} is more than the group's {len(names)} features")
            continue
        severity = _severity(e, "high")
        out.append(KOfM(str(name), int(k), tuple(names), severity))
    return tuple(out)


def _off(t: Table, name: str, known: Sequence[str], base: frozenset[str]) -> frozenset[str]:
    raw = t.data.get(name)
    if raw is None:
        return base
    if not _strings(raw):
        t.error(name, f"expected a list of rule names, got {show(raw)}")
        return base
    for rule in raw:
        if rule not in known:
            t.error(
                name, f"unknown rule {show(rule)}; known: {', '.join(known)}{suggest(rule, known)}"
            )
    return frozenset(r for r in raw if r in known)


def _feature_overrides(
    t: Table, base: RuleSettings, features: Sequence[str], trends: Sequence[TrendRule]
) -> dict[str, FeatureOverride]:
    out = dict(base.features)
    table = t.sub("features")
    known = [*FEATURE_RULES, *(r.rule for r in trends if r.per_feature)]
    for feature in table.data:
        if not _feature_check(table, feature, feature, features):
            continue
        e = table.sub(feature, FEATURE_KEYS)
        if not e.ok:
            continue
        old = out.get(feature) or FeatureOverride()
        min_samples = e.get("min_samples", old.min_samples, _count(1), "an integer ≥ 1")
        shares = {
            k: e.get(k, getattr(old, k), _share, "a share in (0, 1]")
            for k in ("missing_increase", "out_of_range_share", "unseen_share")
        }
        tiers = _tiers(e, "severity", None) if "severity" in e.data else old.severity
        out[feature] = FeatureOverride(
            min_samples=min_samples,
            missing_increase=shares["missing_increase"],
            out_of_range_share=shares["out_of_range_share"],
            unseen_share=shares["unseen_share"],
            severity=tiers,
            off=_off(e, "off", known, old.off),
        )
    return out


def _quality(t: Table, base: QualitySettings) -> QualitySettings:
    """``[alerts.quality]`` on top of ``base``: ``min_labels`` and margins per metric."""
    if "quality" not in t.data:
        return base
    q = t.sub("quality", ("min_labels", *QUALITY_METRICS))
    min_labels = q.get("min_labels", base.min_labels, _count(1), "an integer ≥ 1")
    metrics = dict(base.metrics)
    for metric in QUALITY_METRICS:
        if metric not in q.data:
            continue
        e = q.sub(metric, SEVERITIES)
        levels = {k: e.data[k] for k in SEVERITIES if k in e.data}
        bad = [k for k, v in levels.items() if not _positive(v)]
        for k in bad:
            e.error(k, f"expected a margin > 0, got {show(levels[k])}")
        values = list(levels.values())
        if not e.ok or bad:
            continue
        if not levels:
            e.error(None, f"expected at least one of {', '.join(SEVERITIES)}")
        elif not all(a < b for a, b in itertools.pairwise(values)):
            shown = ", ".join(f"{k} = {v:g}" for k, v in levels.items())
            e.error(None, f"margins must grow with severity, got {shown}")
        else:
            metrics[metric] = {k: float(v) for k, v in levels.items()}  # type: ignore[misc]
    return QualitySettings(min_labels, metrics)


def parse_alerts(t: Table, base: AlertSettings, features: Sequence[str] = ()) -> AlertSettings:
    """``[alerts]``-style table ``t`` on top of ``base``; ``features``: the
    model's declared features (empty: not checked)."""
    r, lc = base.rules, base.lifecycle
    rules = RuleSettings(
        drift_share=float(t.get("drift_share", r.drift_share, _share, "a share in (0, 1]")),
        volume_low=float(t.get("volume_low", r.volume_low, _positive, "a ratio > 0")),
        volume_high=float(t.get("volume_high", r.volume_high, _positive, "a ratio > 0")),
        volume_min_history=t.get(
            "volume_min_history", r.volume_min_history, _count(1), "an integer ≥ 1"
        ),
        dlq_rate=float(t.get("dead_letter_rate", r.dlq_rate, _share, "a share in (0, 1]")),
        confidence_share_below=t.get(
            "low_confidence_share", r.confidence_share_below, _share, "a share in (0, 1]"
        ),
        min_samples=t.get("min_samples", r.min_samples, _count(1), "an integer ≥ 1"),
        missing_increase=float(
            t.get("missing_increase", r.missing_increase, _share, "a share in (0, 1]")
        ),
        out_of_range_share=float(
            t.get("out_of_range_share", r.out_of_range_share, _share, "a share in (0, 1]")
        ),
        unseen_share=float(t.get("unseen_share", r.unseen_share, _share, "a share in (0, 1]")),
        quality=_quality(t, r.quality),
        fdr=t.get("fdr", r.fdr, lambda v: _share(v) and v < 1, "a false-discovery rate in (0, 1)"),
        severity=_severity_tables(t, r),
    )
    trends, groups = _trends(t, r, features), _groups(t, r, features)
    taken = {g.name for g in groups} & {x.rule for x in trends}
    for name in sorted(taken):
        t.error("k_of_m", f"group name {show(name)} is also a trend rule's name")
    known = [*BUILTIN_RULES, *(x.rule for x in trends), *(g.name for g in groups)]
    rules = replace(
        rules,
        trends=trends,
        k_of_m=groups,
        off=_off(t, "off", known, r.off),
        features=_feature_overrides(t, r, features, trends),
    )
    sets_volume = "volume_low" in t.data or "volume_high" in t.data
    if sets_volume and rules.volume_low >= rules.volume_high:
        low = t.data.get("volume_low", rules.volume_low)
        t.error("volume_low", f"must be below volume_high ({rules.volume_high}), got {low}")
    lifecycle = Lifecycle(
        for_windows=t.get("for", lc.for_windows, _count(1), "an integer ≥ 1"),
        resolve_after=t.get("resolve_after", lc.resolve_after, _count(1), "an integer ≥ 1"),
        repeat_every=t.get("repeat_every", lc.repeat_every, _count(0), "an integer ≥ 0"),
    )
    return AlertSettings(rules, lifecycle)

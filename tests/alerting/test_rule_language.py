"""The configurable rules: severity tiers, FDR, k of m, trends, per-feature overrides, off."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats
from scipy.stats import false_discovery_control

from alerting import RuleSettings, evaluate
from alerting.lifecycle import Lifecycle, PairState
from alerting.multiplicity import benjamini_hochberg
from alerting.rules import evaluate_window
from alerting.settings import FeatureOverride, KOfM, TrendRule, tier_of
from alerting.trend import least_squares_slope
from tests.alerting.test_rules import drift, window


def distance(value: float, effect: float = 0.1, floor: float = 0.0, method: str = "psi") -> Any:
    thr = effect + floor
    d = drift(value >= thr, value, method)
    return {**d, "threshold": thr, "effect": effect, "floor": floor or None, "severity": None}


def pvalue_drift(p: float, level: float = 0.05, method: str = "ks") -> Any:
    return {**drift(p < level, 0.2, method), "p_value": p, "threshold": level, "severity": None}


DEFAULTS = RuleSettings()


def fire(r: dict[str, Any], s: RuleSettings = DEFAULTS, slo: Any = None, **kw: Any) -> Any:
    events, _ = evaluate(r, [], slo, s, **kw)
    return {(e.rule, e.feature): e for e in events if e.status == "firing"}


# -- severity tiers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "floor", "severity"),
    [(0.1, 0.0, "medium"), (0.2499, 0.0, "medium"), (0.25, 0.0, "high"), (0.3, 0.1, "medium")],
)
def test_psi_tiers_are_the_fields_and_carry_the_noise_floor(
    value: float, floor: float, severity: str
) -> None:
    r = window(features={"x": {"drift": distance(value, floor=floor)}})
    (e,) = fire(r).values()
    assert e.severity == severity and e.threshold == pytest.approx(0.1 + floor)


def test_configured_tiers_and_feature_override() -> None:
    tiers = {"psi": {"low": 0.1, "medium": 0.2, "high": 0.4, "critical": 0.8}}
    s = RuleSettings(
        severity=tiers, features={"y": FeatureOverride(severity={"medium": 0.1, "critical": 0.3})}
    )
    r = window(features={"x": {"drift": distance(0.35)}, "y": {"drift": distance(0.35)}})
    got = {f: e.severity for (_, f), e in fire(r, s).items()}
    assert got == {"x": "medium", "y": "critical"}
    r = window(features={"x": {"drift": distance(0.85)}, "y": {"drift": distance(0.12)}})
    assert {f: e.severity for (_, f), e in fire(r, s).items()} == {"x": "critical", "y": "medium"}


def test_test_tiers_by_p_value_and_raw_wasserstein_by_multiples() -> None:
    assert tier_of(0.2, 0.01, {"medium": 0.05, "high": 0.001}) == "medium"
    assert tier_of(0.2, 0.0009, {"medium": 0.05, "high": 0.001}) == "high"
    r = window(features={"x": {"drift": distance(1.9, effect=1.0, method="wasserstein")}})
    assert fire(r)[("feature_drift", "x")].severity == "medium"
    r = window(features={"x": {"drift": distance(2.0, effect=1.0, method="wasserstein")}})
    assert fire(r)[("feature_drift", "x")].severity == "high"


def test_alert_says_effect_and_noise_floor() -> None:
    r = window(features={"x": {"drift": distance(0.31, effect=0.1, floor=0.04)}})
    e = fire(r)[("feature_drift", "x")]
    assert "psi 0.31 ≥ 0.14 = effect 0.10 + noise floor 0.04" in e.message


# -- false-discovery rate ---------------------------------------------------------------


def test_benjamini_hochberg_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        m = int(rng.integers(1, 60))
        p = np.where(rng.random(m) < 0.3, rng.random(m) * 0.01, rng.random(m))
        q = float(rng.choice([0.01, 0.05, 0.1]))
        rejected, cutoff = benjamini_hochberg(p.tolist(), q)
        assert rejected == (false_discovery_control(p) <= q).tolist()
        k = sum(rejected)
        assert cutoff == pytest.approx(max(k, 1) * q / m)
        assert all(pv <= cutoff for pv, hit in zip(p, rejected, strict=True) if hit)
    with pytest.raises(ValueError, match="false-discovery rate"):
        benjamini_hochberg([0.1], 1.0)


def test_fdr_fires_only_the_rejected_features_and_drift_share_follows() -> None:
    rng = np.random.default_rng(2)
    ps = np.concatenate([[1e-6, 2e-4, 1e-3, 0.01, 0.03, 0.04], rng.uniform(0.05, 1.0, 34)])
    feats = {f"f{i}": {"drift": pvalue_drift(float(p))} for i, p in enumerate(ps)}
    raw = sorted(n for n, f in feats.items() if f["drift"]["drifted"])
    r = window(features=feats, drifted_features=raw, drift_share=len(raw) / len(ps))
    expected = {f"f{i}" for i, q in enumerate(false_discovery_control(ps)) if q <= 0.05}
    got = fire(r, RuleSettings(fdr=0.05, drift_share=0.99))
    assert {f for (rule, f) in got if rule == "feature_drift"} == expected
    assert len(raw) > len(expected) >= 3  # uncorrected, more features would page
    e = got[("feature_drift", "f0")]
    assert "Benjamini–Hochberg cutoff" in e.message and f"over {len(ps)} tests" in e.message
    assert e.threshold == pytest.approx(len(expected) * 0.05 / len(ps))
    share = fire(r, RuleSettings(fdr=0.05, drift_share=len(expected) / len(ps)))
    assert share[("drift_share", None)].value == pytest.approx(len(expected) / len(ps))
    share = fire(r, RuleSettings(drift_share=len(expected) / len(ps)))
    assert share[("drift_share", None)].value == pytest.approx(len(raw) / len(ps))


def test_fdr_keeps_a_stationary_window_of_hundreds_of_features_quiet() -> None:
    rng = np.random.default_rng(3)
    windows_with_alerts = {"raw": 0, "fdr": 0}
    for _ in range(200):
        feats = {f"f{i}": {"drift": pvalue_drift(float(p))} for i, p in enumerate(rng.random(300))}
        r = window(features=feats)
        windows_with_alerts["raw"] += bool(fire(r))
        windows_with_alerts["fdr"] += bool(fire(r, RuleSettings(fdr=0.05)))
    # under the global null BH bounds P(any alert) by q: 5 % of 200 windows is 10
    assert windows_with_alerts["raw"] == 200 and windows_with_alerts["fdr"] <= 20


# -- k of m -----------------------------------------------------------------------------


def test_k_of_m_fires_at_k_and_names_the_group() -> None:
    groups = (KOfM("spend", 2, ("a", "b", "c"), "critical"), KOfM("any3", 3))
    s = RuleSettings(k_of_m=groups, features={"c": FeatureOverride(min_samples=500)})

    def feats(hot: set[str]) -> dict[str, Any]:
        return {n: {"drift": distance(0.3 if n in hot else 0.01), "count": 400} for n in "abcde"}

    assert {r for r, _ in fire(window(features=feats({"a"})), s)} == {"feature_drift"}
    got = fire(window(features=feats({"a", "b"})), s)
    e = got[("spend", None)]
    assert (e.severity, e.value, e.threshold, e.metric) == (
        "critical",
        2.0,
        2.0,
        "drifted_features",
    )
    assert "2 of 3 group 'spend' drifted (a, b) ≥ k = 2" in e.message
    assert ("any3", None) not in got
    # c has too few values for its own rules, so it does not count towards a group either
    assert ("spend", None) not in fire(window(features=feats({"a", "c"})), s)
    got = fire(window(features=feats({"a", "d", "e"})), s)
    assert ("any3", None) in got and got[("any3", None)].severity == "high"


def test_k_of_m_resolves_with_its_own_severity() -> None:
    s = RuleSettings(k_of_m=(KOfM("pair", 2, ("a", "b"), "low"),))
    state = {("pair", None): PairState(1, 0, True, 0)}
    events, firing, _ = evaluate_window(window(features={}), state, None, s)
    (e,) = events
    assert (e.rule, e.status, e.severity) == ("pair", "resolved", "low") and firing == []


# -- trend ------------------------------------------------------------------------------


def series(values: list[float | None], metric: str = "p99", step: int = 60) -> list[Any]:
    out = []
    for i, v in enumerate(values):
        lat = {"count": 100, "p50": 1.0, "p90": 2.0, "p95": 3.0, "p99": v}
        out.append(window(600 + i * step, latency_ms=lat))
    return out


def test_least_squares_slope_equals_scipy() -> None:
    rng = np.random.default_rng(4)
    for _ in range(50):
        x = np.sort(rng.choice(100, size=int(rng.integers(3, 12)), replace=False)).astype(float)
        y = rng.normal(size=x.size)
        assert least_squares_slope(x.tolist(), y.tolist()) == pytest.approx(
            stats.linregress(x, y).slope, rel=1e-9, abs=1e-12
        )


@pytest.mark.parametrize(
    ("direction", "values", "fires"),
    [
        ("rising", [10, 12, 14, 16], True),  # slope 2.0: at the threshold
        ("rising", [10, 12, 14, 15.9], False),
        ("rising", [16, 14, 12, 10], False),
        ("falling", [16, 14, 12, 10], True),
        ("either", [16, 14, 12, 10], True),
        ("either", [10, 11, 10, 11], False),
    ],
)
def test_trend_fires_at_its_slope(direction: str, values: list[float], fires: bool) -> None:
    rule = TrendRule("latency_p99", 4, 2.0, direction, "low")  # type: ignore[arg-type]
    s = RuleSettings(trends=(rule,))
    rows = series(values)  # type: ignore[arg-type]
    got = fire(rows[-1], s, history=rows[:-1])
    assert (("latency_p99_trend", None) in got) is fires
    if fires:
        e = got[("latency_p99_trend", None)]
        slope = stats.linregress(range(4), values).slope
        assert e.value == pytest.approx(slope) and e.severity == "low" and e.threshold == 2.0
        assert "over the last 4 windows" in e.message


def test_trend_needs_every_window_and_counts_gaps() -> None:
    s = RuleSettings(trends=(TrendRule("latency_p99", 4, 1.0),))
    rows = series([10, 12, 14, 16])
    assert fire(rows[-1], s, history=rows[1:-1]) == {}  # 3 windows of 4
    gap = series([10, 12, None, 16])
    assert fire(gap[-1], s, history=gap[:-1]) == {}  # undefined in one of them
    # a missing window (no result) leaves a gap in x: windows 0, 1, 4 and 5
    rows = [
        window(600 + k * 60, latency_ms={"p99": v}) for k, v in ((0, 10), (1, 12), (4, 14), (5, 16))
    ]
    e = fire(rows[-1], s, history=rows[:-1])[("latency_p99_trend", None)]
    assert e.value == pytest.approx(stats.linregress([0, 1, 4, 5], [10, 12, 14, 16]).slope)


def test_feature_trend_on_every_feature_or_one() -> None:
    def w(i: int, drifts: dict[str, float]) -> dict[str, Any]:
        return window(600 + 60 * i, features={n: {"drift": distance(v)} for n, v in drifts.items()})

    rows = [w(i, {"a": 0.01 * i, "b": 0.02, "c": 0.005 + 0.02 * i}) for i in range(5)]
    every = RuleSettings(trends=(TrendRule("feature_drift", 5, 0.015),))
    got = fire(rows[-1], every, history=rows[:-1])
    assert {f for r, f in got if r == "feature_drift_trend"} == {"c"}
    one = RuleSettings(trends=(TrendRule("feature_drift", 5, 0.005, feature="a"),))
    got = fire(rows[-1], one, history=rows[:-1])
    assert {f for r, f in got if r == "feature_drift_trend"} == {"a"}


# -- overrides, off, latency p95 ----------------------------------------------------------


def test_per_feature_overrides_and_rules_switched_off() -> None:
    feats = {
        "a": {"drift": distance(0.3), "count": 100, "missing_rate": 0.08},
        "b": {"drift": distance(0.3), "count": 100, "missing_rate": 0.08},
    }
    r = window(features=feats, drifted_features=["a", "b"], drift_share=1.0)
    assert set(fire(r)) == {
        ("feature_drift", "a"),
        ("feature_drift", "b"),
        ("missing_rate", "a"),
        ("missing_rate", "b"),
        ("drift_share", None),
    }
    s = RuleSettings(
        off=frozenset({"drift_share"}),
        features={
            "a": FeatureOverride(min_samples=101),
            "b": FeatureOverride(missing_increase=0.1, off=frozenset({"feature_drift"})),
        },
    )
    assert set(fire(r, s)) == set()


def test_latency_p95_and_p99_slos() -> None:
    lat = {"count": 100, "p50": 1.0, "p90": 2.0, "p95": 120.0, "p99": 240.0}
    got = fire(window(latency_ms=lat), slo={"p95": 100.0, "p99": 250.0})
    assert set(got) == {("latency_p95", None)} and got[("latency_p95", None)].severity == "medium"
    assert set(fire(window(latency_ms=lat), slo=200.0)) == {("latency_p99", None)}


def test_lifecycle_applies_to_configured_rules() -> None:
    s = RuleSettings(trends=(TrendRule("latency_p99", 3, 1.0),))
    rows = series([10, 12, 14, 16, 18, 18, 18, 18])
    state: dict[Any, Any] = {}
    seen = []
    for i in range(2, len(rows)):
        events, _, state = evaluate_window(
            rows[i], state, None, s, Lifecycle(for_windows=2, resolve_after=2), history=rows[:i]
        )
        seen.append([e.status for e in events])
    # slopes over 3 windows: 2, 2, 2, 1, 0, 0 — fires at the 2nd breach, resolves at the 2nd calm
    assert seen == [[], ["firing"], ["firing"], ["firing"], [], ["resolved"]]

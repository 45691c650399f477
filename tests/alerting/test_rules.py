"""Alert events and the default rules on window results."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import orjson
import pytest

from alerting import AlertEvent, RuleSettings, Window, alert_id, evaluate
from stream.baseline import build_baseline
from stream.fold import WindowSketches
from stream.results import window_result

FIELDS = [
    "alert_id",
    "model",
    "version",
    "window",
    "rule",
    "metric",
    "feature",
    "value",
    "threshold",
    "severity",
    "status",
    "baseline",
    "message",
    "emitted_at",
    "schema",
]


def drift(drifted: bool, value: float = 0.31, method: str = "wasserstein_norm") -> dict[str, Any]:
    return {
        "method": method,
        "value": value,
        "threshold": 0.1,
        "drifted": drifted,
        "p_value": None,
        "severity": ("high" if value >= 0.2 else "medium") if drifted else None,
        "error_bound": 0.0,
        "reason": None,
    }


def window(start: int = 600, **over: Any) -> dict[str, Any]:
    """A calm window result (only the keys the rules read), with overrides."""
    r: dict[str, Any] = {
        "schema": 1,
        "model": "churn",
        "baseline": "v1",
        "window": {"start": start, "end": start + 60},
        "emitted_at": start + 75.0,
        "count": 1000,
        "dead_letters": {},
        "dead_letter_rate": 0.0,
        "volume": {"count": 1000, "recent_mean": 1000.0, "ratio": 1.0, "history": 5},
        "features": {"income": {"drift": drift(False, 0.02)}, "age": {"drift": drift(False, 0.03)}},
        "drifted_features": [],
        "drift_share": 0.0,
        "prediction": {"drift": drift(False, 0.01)},
        "confidence": {"n": 1000, "mean_top": 0.8, "share_below": 0.1, "threshold": 0.5},
        "latency_ms": {"count": 1000, "p50": 10.0, "p90": 20.0, "p95": 30.0, "p99": 50.0},
    }
    r.update(over)
    return r


def rules_firing(r: dict[str, Any], slo: float | None = 100.0, **settings: Any) -> set[str]:
    events, firing = evaluate(r, [], slo, RuleSettings(**settings))
    assert {e.rule for e in events} == {f[0] for f in firing}
    return {str(f[0]) for f in firing}


def test_alert_ids_are_stable_and_distinct() -> None:
    a = alert_id("churn", "feature_drift", "income", 600)
    assert a == alert_id("churn", "feature_drift", "income", 600) and len(a) == 24
    int(a, 16)
    others = {
        alert_id("churn", "feature_drift", "age", 600),
        alert_id("churn", "feature_drift", "income", 660),
        alert_id("churn", "volume", "income", 600),
        alert_id("fraud", "feature_drift", "income", 600),
        alert_id("churn", "feature_drift", None, 600),
        alert_id("churn", "feature_drift", "income", 600, status="resolved"),
    }
    assert len(others) == 6 and a not in others


def test_event_round_trip_and_fields() -> None:
    events, _ = evaluate(window(features={"income": {"drift": drift(True)}}), [], None)
    (e,) = events
    d = e.to_dict()
    assert list(d) == FIELDS and d["window"] == {"start": 600, "end": 660}
    assert AlertEvent.from_dict(d) == e
    assert AlertEvent.from_json(e.to_json()) == e and orjson.loads(e.to_json()) == d
    with pytest.raises(ValueError, match="severity"):
        AlertEvent(**{**d, "severity": "huge", "window": Window(0, 60)})
    with pytest.raises(ValueError, match="rule"):
        AlertEvent.from_dict({k: v for k, v in d.items() if k != "rule"})


def test_feature_drift_message_and_severity() -> None:
    r = window(features={"income": {"drift": drift(True)}, "age": {"drift": drift(False)}})
    events, firing = evaluate(r, [], None, version="v1")
    (e,) = events
    assert firing == [["feature_drift", "income"]]
    assert e.message == "churn: feature 'income' drifted vs baseline (wasserstein_norm 0.31 ≥ 0.10)"
    assert (e.metric, e.value, e.threshold, e.severity) == ("wasserstein_norm", 0.31, 0.1, "high")
    assert (e.status, e.version, e.baseline, e.emitted_at) == ("firing", "v1", "v1", 675.0)
    assert e.alert_id == alert_id("churn", "feature_drift", "income", 600)
    test = {**drift(True), "method": "ks", "value": 0.2, "p_value": 1e-5, "threshold": 0.05}
    (e,) = evaluate(window(features={"x": {"drift": test}}), [], None)[0]
    assert e.value == 1e-5 and "ks p=1e-05 < 0.05" in e.message


def test_lifecycle_firing_then_resolved() -> None:
    hot = {"income": {"drift": drift(True)}, "age": {"drift": drift(False)}}
    w1 = window(600, features=hot, drifted_features=["income"], drift_share=0.5)
    w2 = window(660, features=hot, drifted_features=["income"], drift_share=0.5)
    w3 = window(720)
    e1, f1 = evaluate(w1, [], None)
    assert {(e.rule, e.status) for e in e1} == {
        ("feature_drift", "firing"),
        ("drift_share", "firing"),
    }
    e2, f2 = evaluate(w2, orjson.loads(orjson.dumps(f1)), None)
    assert [(e.rule, e.status) for e in e2] == [(e.rule, e.status) for e in e1] and f2 == f1
    assert {e.alert_id for e in e1}.isdisjoint(e.alert_id for e in e2)
    assert evaluate(copy.deepcopy(w2), f1, None)[0] == e2  # a redone close: same ids
    e3, f3 = evaluate(w3, f2, None)
    assert f3 == [] and {(e.rule, e.feature, e.status) for e in e3} == {
        ("feature_drift", "income", "resolved"),
        ("drift_share", None, "resolved"),
    }
    resolved = next(e for e in e3 if e.rule == "feature_drift")
    assert resolved.alert_id == alert_id("churn", "feature_drift", "income", 720, "resolved")
    assert resolved.value == 0.02 and "not drifted" in resolved.message
    assert evaluate(window(780), f3, None) == ([], [])


def test_resolved_when_rule_has_nothing_to_measure() -> None:
    events, firing = evaluate(window(), [["latency_p99", None], ("bogus",)], None)
    (e,) = events
    assert (e.rule, e.status, e.severity, e.value) == ("latency_p99", "resolved", "high", None)
    assert firing == []


def test_drift_share_boundary() -> None:
    assert "drift_share" in rules_firing(window(drift_share=0.5, drifted_features=["a"]))
    assert "drift_share" not in rules_firing(window(drift_share=0.49, drifted_features=["a"]))
    (e,) = evaluate(window(drift_share=0.5, drifted_features=["a"]), [], None)[0]
    assert e.severity == "critical" and e.feature is None


def test_prediction_drift() -> None:
    assert rules_firing(window(prediction={"drift": drift(True, 0.15)})) == {"prediction_drift"}
    assert rules_firing(window(prediction=None)) == set()


def test_latency_boundary() -> None:
    lat = window()["latency_ms"]
    assert "latency_p99" not in rules_firing(window(latency_ms={**lat, "p99": 100.0}), 100.0)
    assert "latency_p99" in rules_firing(window(latency_ms={**lat, "p99": 100.01}), 100.0)
    assert "latency_p99" not in rules_firing(window(latency_ms={**lat, "p99": 1e9}), None)
    (e,) = evaluate(window(latency_ms={**lat, "p99": 250.0}), [], 100.0)[0]
    assert e.severity == "high" and e.message == "churn: latency p99 250.00 ms > SLO 100.00 ms"


@pytest.mark.parametrize(
    ("ratio", "history", "fires"),
    [(0.5, 3, False), (0.499, 3, True), (2.0, 3, False), (2.001, 3, True), (0.1, 2, False)],
)
def test_volume_boundary(ratio: float, history: int, fires: bool) -> None:
    vol = {"count": int(1000 * ratio), "recent_mean": 1000.0, "ratio": ratio, "history": history}
    assert ("volume" in rules_firing(window(volume=vol))) is fires


def test_dead_letter_boundary() -> None:
    assert "dead_letter_rate" not in rules_firing(window(dead_letter_rate=0.05))
    assert "dead_letter_rate" in rules_firing(window(dead_letter_rate=0.0501))
    assert "dead_letter_rate" not in rules_firing(window(dead_letter_rate=None))


def test_low_confidence_only_when_configured() -> None:
    conf = {"n": 10, "mean_top": 0.6, "share_below": 0.31, "threshold": 0.5}
    assert "low_confidence" not in rules_firing(window(confidence=conf))
    assert "low_confidence" in rules_firing(window(confidence=conf), confidence_share_below=0.3)
    calm = {**conf, "share_below": 0.3}
    assert "low_confidence" not in rules_firing(window(confidence=calm), confidence_share_below=0.3)


def test_on_real_window_results() -> None:
    rng = np.random.default_rng(3)
    names = [f"x{i}" for i in range(4)]
    b = build_baseline("m", {n: rng.normal(size=3000) for n in names}, version="v7")

    def close(start: int, shift: float, recent: list[int]) -> dict[str, Any]:
        w = WindowSketches(n=1000)
        for n in names:
            h = b.features[n].histogram
            assert h is not None
            w.hist[n] = h.empty_like()
            w.hist[n].update_many(rng.normal(shift if n in ("x0", "x1") else 0.0, 1.0, 1000))
        return window_result("m", start, start + 60, w, b, None, None, recent, start + 61.0)

    e1, f1 = evaluate(close(0, 1.0, [1000] * 3), [], None)
    assert sorted(map(tuple, f1)) == [
        ("drift_share", None),
        ("feature_drift", "x0"),
        ("feature_drift", "x1"),
    ]
    assert all(e.baseline == "v7" and e.status == "firing" for e in e1)
    e2, f2 = evaluate(close(60, 0.0, [1000] * 3), f1, None)
    assert f2 == [] and len(e2) == 3 and all(e.status == "resolved" for e in e2)


def quality(**feat: Any) -> dict[str, Any]:
    base = {"count": 1000, "missing": 0, "drift": drift(False, 0.02)}
    return window(features={"x": base | feat})


def test_missing_rate_fires_above_the_baselines_plus_the_increase() -> None:
    at = quality(missing_rate=0.15, baseline_missing_rate=0.10)
    above = quality(missing_rate=0.1501, baseline_missing_rate=0.10)
    assert "missing_rate" not in rules_firing(at)
    assert "missing_rate" in rules_firing(above)
    assert "missing_rate" not in rules_firing(above, missing_increase=0.1)


def test_out_of_range_and_unseen_categories_fire_above_their_shares() -> None:
    assert "out_of_range" not in rules_firing(quality(out_of_range_share=0.05))
    assert "out_of_range" in rules_firing(quality(out_of_range_share=0.06))
    seen = quality(unseen_share=0.2, unseen_categories=[["zz", 200]])
    assert "unseen_categories" in rules_firing(seen)
    events, _ = evaluate(seen, [], None)
    [unseen] = [e for e in events if e.rule == "unseen_categories"]
    assert unseen.feature == "x" and "zz" in unseen.message and unseen.value == 0.2
    assert "unseen_categories" not in rules_firing(seen, unseen_share=0.25)


def test_min_samples_silences_per_feature_rules_in_tiny_windows() -> None:
    tiny = quality(count=30, missing=5, out_of_range_share=0.5, drift=drift(True, 0.9))
    assert not {"feature_drift", "out_of_range"} & rules_firing(tiny)  # 35 values < 50
    assert not {"feature_drift", "out_of_range"} & rules_firing(tiny, min_samples=36)
    assert {"feature_drift", "out_of_range"} <= rules_firing(tiny, min_samples=35)

"""Quality rules: realised window quality against the baseline's, and their lifecycle."""

from __future__ import annotations

import pytest

from alerting.quality_rules import quality_checks, quality_transition
from alerting.settings import QualitySettings

BASE = {"accuracy": 0.86, "macro": {"f1": 0.80}, "rmse": 2.0, "roc_auc": 0.91}


@pytest.mark.parametrize(
    ("accuracy", "fires"), [(0.8101, False), (0.81, True), (0.80, True), (0.86, False)]
)
def test_accuracy_fires_at_five_points_lost_by_default(accuracy: float, fires: bool) -> None:
    (c,) = quality_checks({"accuracy": accuracy}, BASE, 1000, QualitySettings())
    assert (c.rule, c.firing, c.severity) == ("quality_accuracy", fires, "critical")
    assert c.threshold == pytest.approx(0.81) and c.value == accuracy


def test_tiers_relative_rises_macro_averages_and_min_labels() -> None:
    s = QualitySettings(
        min_labels=200,
        metrics={
            "accuracy": {"high": 0.03, "critical": 0.05},
            "rmse": {"medium": 0.1, "high": 0.5},
            "f1": {"low": 0.01},
            "roc_auc": {"high": 0.05},
        },
    )
    window = {"accuracy": 0.82, "rmse": 2.5, "macro": {"f1": 0.70}, "roc_auc": None}
    got = {c.rule: (c.firing, c.severity) for c in quality_checks(window, BASE, 5000, s)}
    assert got == {
        "quality_accuracy": (True, "high"),  # 4 points: high, not critical
        "quality_rmse": (True, "medium"),  # 25 % worse: medium, not high
        "quality_f1": (True, "low"),
    }  # roc_auc undefined in the window: no check
    (rmse,) = [c for c in quality_checks(window, BASE, 5000, s) if c.rule == "quality_rmse"]
    assert rmse.threshold == pytest.approx(2.2) and "25.00 % above" in rmse.message
    assert quality_checks(window, BASE, 199, s) == []
    # at 200 labels a 4-point drop is within noise (4 standard errors = 9.8 points)
    (acc,) = [c for c in quality_checks(window, BASE, 200, s) if c.rule == "quality_accuracy"]
    assert not acc.firing and acc.threshold == pytest.approx(0.86 - 4 * (0.86 * 0.14 / 200) ** 0.5)
    assert quality_checks(window, None, 500, s) == []


def test_lifecycle_fires_once_and_resolves_on_a_newer_window() -> None:
    state = None
    seen = []
    for start, breach in [(60, True), (60, True), (0, True), (0, False), (120, False), (60, True)]:
        status, new = quality_transition(state, start, breach)
        state = new if new is not None else state
        seen.append(status)
    # fires once; an older clean window does not resolve; a newer one does; a
    # later breach (more labels for window 60) fires again, with window 60's id
    assert seen == ["firing", None, None, None, "resolved", "firing"]


def test_quality_trend_on_matured_windows() -> None:
    from scipy import stats

    from alerting.quality_rules import quality_trend_checks
    from alerting.settings import TrendRule

    def row(i: int, acc: float, n: int = 500) -> dict[str, object]:
        return {
            "window": {"start": 60 * i, "end": 60 * i + 60},
            "labelled": n,
            "metrics": {"accuracy": acc},
        }

    falling = (TrendRule("accuracy", 4, 0.01, "falling", "high"),)
    s = QualitySettings()
    accs = [0.86, 0.85, 0.83, 0.82]
    (c,) = quality_trend_checks([row(i, a) for i, a in enumerate(accs)], falling, s)
    assert (c.rule, c.firing, c.severity) == ("accuracy_trend", True, "high")
    assert c.value == pytest.approx(stats.linregress(range(4), accs).slope)
    assert quality_trend_checks([row(i, a) for i, a in enumerate(accs[1:])], falling, s) == []
    few = [row(0, 0.86, 99), *(row(i, a) for i, a in enumerate(accs[1:], 1))]
    assert quality_trend_checks(few, falling, s) == []  # a window under min_labels
    drift = (TrendRule("feature_drift", 4, 0.01),)  # evaluated at close, not here
    assert quality_trend_checks([row(i, a) for i, a in enumerate(accs)], drift, s) == []


def test_stationary_windows_filling_up_stay_quiet() -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    base, alarms = {"accuracy": 0.86}, 0
    for _ in range(2000):  # windows looked at 100, 200, 400, 800 and 1,600 labels
        for n in (100, 200, 400, 800, 1600):
            acc = rng.binomial(n, 0.86) / n
            alarms += any(
                c.firing for c in quality_checks({"accuracy": acc}, base, n, QualitySettings())
            )
    assert alarms <= 2  # about 10^-4 per look

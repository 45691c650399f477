"""What the rules read: thresholds, severity tiers, trend and k-of-m rules, per-feature overrides.

:class:`RuleSettings` holds one model's rule configuration (``[alerts]`` with
``[models.<m>.alerts]`` on top, parsed by :mod:`stream.alert_config`); it is
plain data, and :mod:`alerting.rules` evaluates it.

**Severity tiers** (``severity``): for each drift method, where each tier
starts. A distance reaches a tier when its value is at least the tier's
effect size plus the window's noise floor (the same floor its drift
threshold carries, see :mod:`sketches.noise`); a test reaches it when its
p-value is below the tier's level. A drifted feature gets the highest tier it
reaches, or the lowest tier when it reaches none (the drift threshold, not the
tiers, decides whether a feature drifted). Defaults (:data:`DEFAULT_TIERS`)
follow the field: PSI 0.1 / 0.25, KL 0.1 / 0.2, the other distances 0.1 / 0.2,
KS and chi-square p < 0.05 / 0.001; a method without defaults (raw
``wasserstein``, in feature units) is medium from its threshold and high from
twice its threshold.

Example:
    >>> s = RuleSettings(features={"age": FeatureOverride(min_samples=500)})
    >>> s.for_feature("age").min_samples, s.for_feature("income").min_samples
    (500, 50)
    >>> tier_of(0.3, None, DEFAULT_TIERS["psi"], floor=0.0)
    'high'
    >>> tier_of(0.3, None, DEFAULT_TIERS["psi"], floor=0.1)
    'medium'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

from alerting.events import Severity

__all__ = [
    "DEFAULT_TIERS",
    "FEATURE_TREND_METRICS",
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "MODEL_TREND_METRICS",
    "QUALITY_METRICS",
    "TREND_METRICS",
    "Direction",
    "FeatureOverride",
    "KOfM",
    "QualitySettings",
    "RuleSettings",
    "Tiers",
    "TrendRule",
    "tier_of",
]

Tiers = Mapping[Severity, float]
_SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
Direction = Literal["rising", "falling", "either"]


def _tiers(**levels: float) -> Tiers:
    return MappingProxyType(levels)  # type: ignore[arg-type]


#: drift method → severity → where the tier starts (effect size; p-value level for tests)
DEFAULT_TIERS: Mapping[str, Tiers] = MappingProxyType(
    {
        "psi": _tiers(medium=0.1, high=0.25),
        "kl": _tiers(medium=0.1, high=0.2),
        "js": _tiers(medium=0.1, high=0.2),
        "hellinger": _tiers(medium=0.1, high=0.2),
        "wasserstein_norm": _tiers(medium=0.1, high=0.2),
        "energy": _tiers(medium=0.1, high=0.2),
        "ks": _tiers(medium=0.05, high=0.001),
        "chi2": _tiers(medium=0.05, high=0.001),
    }
)

#: trend metrics of the model: name → what is fitted
MODEL_TREND_METRICS: Mapping[str, str] = MappingProxyType(
    {
        "volume": "events in the window",
        "latency_p95": "p95 latency (ms)",
        "latency_p99": "p99 latency (ms)",
        "dead_letter_rate": "dead letters / (events + dead letters)",
        "drift_share": "share of drifted features",
        "prediction_drift": "the prediction's drift value vs the baseline",
        "prediction_mean": "mean of a numeric prediction",
        "low_confidence": "share of predictions below the confidence threshold",
    }
)
#: trend metrics of each feature (``feature`` names one; omitted: every feature)
FEATURE_TREND_METRICS: Mapping[str, str] = MappingProxyType(
    {
        "feature_drift": "the feature's drift value vs the baseline",
        "missing_rate": "missing values / all values",
        "mean": "mean of a numeric feature",
        "out_of_range_share": "share of values outside the baseline's range",
        "unseen_share": "share of categories the baseline never saw",
    }
)
#: realised quality metrics (quality rules and trends, :mod:`alerting.quality_rules`):
#: where higher is better, and where lower is better
HIGHER_IS_BETTER = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "r2")
LOWER_IS_BETTER = ("log_loss", "ece", "mae", "mse", "rmse", "mape")
QUALITY_METRICS = (*HIGHER_IS_BETTER, *LOWER_IS_BETTER)
TREND_METRICS = (*MODEL_TREND_METRICS, *FEATURE_TREND_METRICS, *QUALITY_METRICS)


@dataclass(frozen=True)
class TrendRule:
    """Fires when ``metric``'s least-squares slope over the last ``windows``
    windows (this one included) is at least ``slope`` per window in ``direction``.

    The rule's name is ``<metric>_trend``; a per-feature metric without
    ``feature`` applies to every feature.
    """

    metric: str
    windows: int
    slope: float
    direction: Direction = "rising"
    severity: Severity = "medium"
    feature: str | None = None

    @property
    def rule(self) -> str:
        return f"{self.metric}_trend"

    @property
    def per_feature(self) -> bool:
        return self.metric in FEATURE_TREND_METRICS

    @property
    def on_quality(self) -> bool:
        """A realised-quality metric: evaluated as windows mature, not at close."""
        return self.metric in QUALITY_METRICS


@dataclass(frozen=True)
class KOfM:
    """Fires when at least ``k`` of ``features`` (empty: all of the model's) drifted.

    ``name`` is the rule's name in alerts, routes and mutes.
    """

    name: str
    k: int
    features: tuple[str, ...] = ()
    severity: Severity = "high"


@dataclass(frozen=True)
class FeatureOverride:
    """Per-feature settings; ``None`` keeps the model's."""

    min_samples: int | None = None
    missing_increase: float | None = None
    out_of_range_share: float | None = None
    unseen_share: float | None = None
    severity: Tiers | None = None  # tiers of the feature's drift method
    off: frozenset[str] = frozenset()  # rules switched off for this feature


def _default_quality() -> Mapping[str, Tiers]:
    return MappingProxyType({"accuracy": _tiers(critical=0.05)})


@dataclass(frozen=True)
class QualitySettings:
    """``[alerts.quality]``: margins per metric and severity, and the labels a
    window needs before its quality may alert (:mod:`alerting.quality_rules`)."""

    min_labels: int = 100
    metrics: Mapping[str, Tiers] = field(default_factory=_default_quality)


@dataclass(frozen=True)
class RuleSettings:
    """Thresholds of the rules (see :mod:`alerting.rules`) and this module's extras."""

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
    severity: Mapping[str, Tiers] = field(default_factory=dict)  # method → tiers, over defaults
    off: frozenset[str] = frozenset()  # rules switched off for the model
    fdr: float | None = None  # Benjamini–Hochberg level for p-value drift across features
    trends: tuple[TrendRule, ...] = ()
    k_of_m: tuple[KOfM, ...] = ()
    features: Mapping[str, FeatureOverride] = field(default_factory=dict)
    quality: QualitySettings = field(default_factory=QualitySettings)

    def for_feature(self, name: str) -> RuleSettings:
        """These settings with ``name``'s overrides applied."""
        o = self.features.get(name)
        if o is None:
            return self
        changes = {
            k: getattr(o, k)
            for k in ("min_samples", "missing_increase", "out_of_range_share", "unseen_share")
            if getattr(o, k) is not None
        }
        return replace(self, **changes) if changes else self

    def enabled(self, rule: str, feature: str | None = None) -> bool:
        """Whether ``rule`` may fire (for ``feature``)."""
        if rule in self.off:
            return False
        o = self.features.get(feature) if feature is not None else None
        return o is None or rule not in o.off

    def tiers(self, method: str, feature: str | None = None) -> Tiers | None:
        """Severity tiers of ``method`` (for ``feature``), or ``None`` (no default)."""
        o = self.features.get(feature) if feature is not None else None
        if o is not None and o.severity is not None:
            return o.severity
        return self.severity.get(method) or DEFAULT_TIERS.get(method)


def tier_of(
    value: float | None, p_value: float | None, tiers: Tiers, floor: float = 0.0
) -> Severity:
    """The highest tier reached by a distance ``value`` (plus ``floor``) or a ``p_value``;
    the lowest configured tier when none is reached."""
    ranked: list[Severity] = [s for s in _SEVERITIES if s in tiers]
    reached = [
        s
        for s in ranked
        if (p_value is not None and p_value < tiers[s])
        or (p_value is None and value is not None and value >= tiers[s] + floor)
    ]
    return reached[-1] if reached else ranked[0]

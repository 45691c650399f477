"""The ``[alerts]`` configuration: rule thresholds and the alert lifecycle.

``[alerts]`` sets defaults for every model; ``[models.<m>.alerts]`` overrides
any of them for one model::

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from alerting.lifecycle import Lifecycle
from alerting.rules import RuleSettings

__all__ = ["ALERT_KEYS", "AlertSettings", "parse_alerts"]

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
)


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


def parse_alerts(t: Any, base: AlertSettings) -> AlertSettings:
    """``[alerts]``-style table ``t`` (a config ``_Table``) on top of ``base``."""
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

"""What every rule reads and returns: the window :class:`Context` and a :class:`Check`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alerting.events import Severity
from alerting.settings import RuleSettings

__all__ = ["Check", "Context", "enough", "features_of", "fmt", "num"]


@dataclass(frozen=True)
class Check:
    """One rule on one subject in this window, breaching or not."""

    rule: str
    feature: str | None
    metric: str
    value: float | None
    threshold: float | None
    severity: Severity
    firing: bool
    message: str


@dataclass
class Context:
    """One window result with what the rules need besides it.

    ``history`` holds the model's earlier window results, oldest first (only
    trend rules read it); ``slo`` maps ``p95``/``p99`` to the latency SLO in ms;
    ``drifted`` is filled once per window by the drift rules (after any
    false-discovery-rate correction) and read by ``drift_share`` and k-of-m.
    """

    result: Mapping[str, Any]
    settings: RuleSettings
    slo: Mapping[str, float]
    history: Sequence[Mapping[str, Any]] = ()
    drifted: dict[str, bool] = field(default_factory=dict)
    fdr_cutoff: float | None = None
    fdr_tests: int = 0


def fmt(v: Any) -> str:
    """A number for a message: 2 decimals, or 3 significant digits when tiny or huge."""
    if not isinstance(v, int | float) or isinstance(v, bool):
        return "n/a"
    if v != 0 and (abs(v) < 0.01 or abs(v) >= 10_000):
        return f"{v:.3g}"
    return f"{v:.2f}"


def num(v: Any) -> float | None:
    """``v`` as a float if it is a number (not a bool), else ``None``."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def features_of(r: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(name, feature summary)`` of a window result."""
    return [(n, f) for n, f in (r.get("features") or {}).items() if isinstance(f, Mapping)]


def enough(feat: Mapping[str, Any], s: RuleSettings) -> bool:
    """At least ``min_samples`` values (present or missing) in the window
    (a result without counts is taken as enough)."""
    if "count" not in feat:
        return True
    return int(feat.get("count") or 0) + int(feat.get("missing") or 0) >= s.min_samples

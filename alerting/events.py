"""The alert event published on ``driftline.alerts`` (key: the model id).

Fields as in DESIGN.md: ``alert_id``, ``model``, ``version``, ``window``
{``start``, ``end``}, ``rule``, ``metric``, ``feature`` (or ``None``),
``value``, ``threshold``, ``severity`` (``low|medium|high|critical``),
``status`` (``firing|resolved``), ``baseline``, ``message``, ``emitted_at``,
``schema``.

Identity: ``alert_id`` is the first 24 hex characters of the SHA-256 of
``model``, ``rule``, ``feature`` (``""`` for none) and the start of the window
in which the event is emitted, joined with ``"\\x1f"``; a resolved event adds
``"resolved"`` as a fifth part. So an event delivered twice (a redone window
close) carries the same id, a rule still firing in the next window gets a new
id, and the resolved event never shares its id with a firing one.

Example:
    >>> alert_id("churn", "feature_drift", "income", 1_700_000_000)
    '89109830cd6dbb92613964e0'
    >>> alert_id("churn", "feature_drift", "income", 1_700_000_000, status="resolved")
    'eefdd395a4ffe9ec577162bc'
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, cast

import orjson

__all__ = [
    "SCHEMA_VERSION",
    "SEVERITIES",
    "STATUSES",
    "AlertEvent",
    "Severity",
    "Status",
    "Window",
    "alert_id",
]

SCHEMA_VERSION = 1
SEVERITIES = ("low", "medium", "high", "critical")
STATUSES = ("firing", "resolved")
Severity = Literal["low", "medium", "high", "critical"]
Status = Literal["firing", "resolved"]


def alert_id(
    model: str, rule: str, feature: str | None, window_start: int, status: Status = "firing"
) -> str:
    """Stable id of an alert (see the module docstring).

    Args:
        model: model id.
        rule: rule name.
        feature: feature name, or ``None`` for model-level rules.
        window_start: start of the window the event is emitted for.
        status: ``"resolved"`` adds the status to the hash.
    """
    parts = [model, rule, feature or "", str(int(window_start))]
    if status == "resolved":
        parts.append("resolved")
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:24]


class Window(NamedTuple):
    """A window's bounds (epoch seconds)."""

    start: int
    end: int


def _number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"alert field {name!r} must be a number or null, got {value!r}")
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class AlertEvent:
    """One alert; ``to_dict``/``to_json`` give the wire form, ``from_dict`` reads it."""

    alert_id: str
    model: str
    version: str | None
    window: Window
    rule: str
    metric: str
    feature: str | None
    value: float | None
    threshold: float | None
    severity: Severity
    status: Status
    baseline: str | None
    message: str
    emitted_at: float
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite numbers become ``None``)."""
        return {
            "alert_id": self.alert_id,
            "model": self.model,
            "version": self.version,
            "window": {"start": int(self.window.start), "end": int(self.window.end)},
            "rule": self.rule,
            "metric": self.metric,
            "feature": self.feature,
            "value": _number(self.value, "value"),
            "threshold": _number(self.threshold, "threshold"),
            "severity": self.severity,
            "status": self.status,
            "baseline": self.baseline,
            "message": self.message,
            "emitted_at": float(self.emitted_at),
            "schema": int(self.schema),
        }

    def to_json(self) -> bytes:
        """UTF-8 JSON bytes (orjson)."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertEvent:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming a bad field."""
        try:
            window = data["window"]
            event = cls(
                alert_id=str(data["alert_id"]),
                model=str(data["model"]),
                version=None if data.get("version") is None else str(data["version"]),
                window=Window(int(window["start"]), int(window["end"])),
                rule=str(data["rule"]),
                metric=str(data["metric"]),
                feature=None if data.get("feature") is None else str(data["feature"]),
                value=_number(data.get("value"), "value"),
                threshold=_number(data.get("threshold"), "threshold"),
                severity=cast(Severity, data["severity"]),
                status=cast(Status, data["status"]),
                baseline=None if data.get("baseline") is None else str(data["baseline"]),
                message=str(data.get("message", "")),
                emitted_at=float(data["emitted_at"]),
                schema=int(data.get("schema", SCHEMA_VERSION)),
            )
        except KeyError as exc:
            raise ValueError(f"alert event lacks field {exc.args[0]!r}") from exc
        except TypeError as exc:
            raise ValueError(f"malformed alert event: {exc}") from exc
        return event

    @classmethod
    def from_json(cls, data: bytes | str) -> AlertEvent:
        """Parse :meth:`to_json` output."""
        obj = orjson.loads(data)
        if not isinstance(obj, dict):
            raise ValueError(f"alert event must be a JSON object, got {type(obj).__name__}")
        return cls.from_dict(obj)

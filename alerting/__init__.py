"""driftline's alerting: rules on window results, the alert event and its lifecycle.

* :func:`evaluate_window` with :class:`RuleSettings` and :class:`Lifecycle` —
  the default rules on one window result, through the lifecycle (for,
  resolve_after, repeat, mute); :func:`evaluate` is the default lifecycle.
* :class:`AlertEvent`, :func:`alert_id` — the event on ``driftline.alerts``.
"""

from alerting.events import SCHEMA_VERSION, SEVERITIES, STATUSES, AlertEvent, Window, alert_id
from alerting.lifecycle import Lifecycle, PairState, advance
from alerting.rules import RULES, RuleSettings, evaluate, evaluate_window

__all__ = [
    "RULES",
    "SCHEMA_VERSION",
    "SEVERITIES",
    "STATUSES",
    "AlertEvent",
    "Lifecycle",
    "PairState",
    "RuleSettings",
    "Window",
    "advance",
    "alert_id",
    "evaluate",
    "evaluate_window",
]

"""driftline's alerting: rules on window results, the alert event and its lifecycle.

* :func:`evaluate` with :class:`RuleSettings` — the default rules on one window
  result, firing and resolved events.
* :class:`AlertEvent`, :func:`alert_id` — the event on ``driftline.alerts``.
"""

from alerting.events import SCHEMA_VERSION, SEVERITIES, STATUSES, AlertEvent, Window, alert_id
from alerting.rules import RULES, RuleSettings, evaluate

__all__ = [
    "RULES",
    "SCHEMA_VERSION",
    "SEVERITIES",
    "STATUSES",
    "AlertEvent",
    "RuleSettings",
    "Window",
    "alert_id",
    "evaluate",
]

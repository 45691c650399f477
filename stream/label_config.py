"""``[models.<m>.labels]``: joining delayed ground truth to a model's predictions.

A model with this table keeps what the join needs of every prediction (its
time, predicted value or class, class probabilities) in Redis for ``horizon``
and counts each label from ``driftline.labels`` toward the window of its
prediction::

    [models.churn.labels]
    horizon = "7d"              # how long a prediction waits for its label (required)
    task = "classification"     # or "regression"; default: from the prediction kind
    classes = ["0", "1"]        # classification classes, at most 64 (default: the baseline's)
    positive_class = "1"        # binary: the class probabilities and AUC refer to
                                # (default: the last of classes)

Memory: each prediction's record takes about 75 bytes in Redis for a binary
classifier with short ids (87 with UUIDs; 4 more per extra class) and is kept
1 to 2 horizons (1.5 on average): ``rate × 1.5 × horizon × 75 B``, e.g. 100
predictions/s for 7 days is about 7 GB. Each joined label's id is kept too
(about 40 bytes, for the horizon plus the window retention) to refuse
duplicates. Without the table, labels for the model are dead-lettered as
``labels_off``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from stream.config_table import Table, show

__all__ = ["LABEL_KEYS", "MAX_CLASSES", "LabelSpec", "class_name", "parse_labels"]

LABEL_KEYS = ("horizon", "task", "classes", "positive_class")
MAX_CLASSES = 64
Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class LabelSpec:
    """How a model's labels are joined (see the module docstring)."""

    horizon_s: float
    task: Task | None = None  # None: from the prediction kind
    classes: tuple[str, ...] = ()  # empty: from the baseline
    positive_class: str | None = None

    def positive(self, classes: tuple[str, ...]) -> str | None:
        """The positive class of a binary task over ``classes``."""
        if len(classes) != 2:
            return None
        return self.positive_class if self.positive_class in classes else classes[-1]


def class_name(value: object) -> str:
    """A label or prediction as a class name: strings as they are, integral
    numbers without a fraction (``1.0`` → ``"1"``), other numbers by ``repr``.

    Example:
        >>> class_name(1.0), class_name(True), class_name("yes"), class_name(0.5)
        ('1', 'true', 'yes', '0.5')
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return repr(value)


def parse_labels(t: Table) -> LabelSpec | None:
    """The ``labels`` table of a model (``t``), or ``None`` when it has errors."""
    if "horizon" not in t.data:
        t.error("horizon", 'required: how long a prediction waits for its label, e.g. "7d"')
        return None
    horizon = t.duration("horizon", math.nan, minimum=1.0)
    task = t.get(
        "task",
        None,
        lambda v: v in ("classification", "regression"),
        '"classification" or "regression"',
    )
    classes = t.get(
        "classes",
        (),
        lambda v: (
            isinstance(v, list)
            and all(isinstance(c, str) and c for c in v)
            and len(set(v)) == len(v)
        ),
        "a list of distinct class names (strings)",
    )
    if classes and not 2 <= len(classes) <= MAX_CLASSES:
        t.error("classes", f"expected 2 to {MAX_CLASSES} classes, got {len(classes)}")
        classes = ()
    if classes and task == "regression":
        t.error("classes", "a regression has no classes; remove them or set task")
    positive = t.get("positive_class", None, lambda v: isinstance(v, str) and bool(v), "a class")
    if positive is not None and classes and positive not in classes:
        t.error("positive_class", f"{show(positive)} is not one of classes {show(list(classes))}")
    if positive is not None and classes and len(classes) != 2:
        t.error("positive_class", f"only a binary task has one; classes has {len(classes)}")
    if math.isnan(horizon):
        return None
    return LabelSpec(horizon, task, tuple(classes), positive)

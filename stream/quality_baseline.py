"""What a baseline knows about model quality: classes, training quality, calibrator.

When a baseline is registered with a label column, :func:`quality_meta` adds
to its metadata

* ``task`` and ``classes``: a classification when the labels are strings,
  booleans or integers with at most 64 distinct values (classes sorted by
  name; the label join's default classes), else a regression;
* ``quality``: the metrics of the training predictions against the labels
  (with a prediction or probability column): the reference the quality alerts
  compare each window with;
* ``calibrator``: for a binary classifier with a probability column (the
  positive class's probability), the calibrator of the estimated quality
  before labels arrive (:class:`sketches.estimation.Calibrator`, at least
  1,000 labelled rows and 50 of each class; otherwise ``calibrator_error``
  says why).

Example:
    >>> meta = quality_meta([0, 1, 1, 0], [0, 1, 0, 0], None)
    >>> meta["task"], meta["classes"], meta["quality"]["accuracy"]
    ('classification', ['0', '1'], 0.75)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sketches.categorical import category_name
from sketches.classification import ClassificationQuality
from sketches.estimation import Calibrator
from sketches.regression import RegressionQuality
from stream.label_config import MAX_CLASSES

__all__ = ["QUALITY_KEYS", "classes_of", "quality_meta"]

#: the training metrics kept in the baseline (the rest of ``metrics()`` is not)
QUALITY_KEYS = (
    "n",
    "accuracy",
    "macro",
    "weighted",
    "log_loss",
    "roc_auc",
    "pr_auc",
    "ece",
    "mae",
    "mse",
    "rmse",
    "r2",
    "mape",
)


def classes_of(labels: Sequence[Any] | np.ndarray) -> list[str] | None:
    """Sorted class names when ``labels`` look like classes (see the module docstring)."""
    names: set[str] = set()
    for v in labels.tolist() if isinstance(labels, np.ndarray) else labels:
        if isinstance(v, float) and not (math.isnan(v) or v.is_integer()):
            return None
        name = category_name(v)
        if name is not None:
            names.add(name)
            if len(names) > MAX_CLASSES:
                return None
    return sorted(names) if len(names) >= 2 else None


def quality_meta(
    labels: Sequence[Any] | np.ndarray,
    predictions: Sequence[Any] | np.ndarray | None,
    proba: Sequence[float] | np.ndarray | None,
    positive_class: str | None = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Metadata entries for a baseline with labels (see the module docstring).

    Args:
        labels: the label column.
        predictions: the prediction column, or ``None``.
        proba: the positive class's probability, or ``None``.
        positive_class: of a binary classification (default: the last class).
        threshold: a binary prediction from ``proba`` is positive at or above it
            (used when there is no prediction column).
    """
    classes = classes_of(labels)
    y = np.asarray(labels, dtype=object)
    if classes is None:
        reg = RegressionQuality()
        if predictions is not None:
            reg.update_many(np.asarray(labels, dtype=float), np.asarray(predictions, dtype=float))
        out: dict[str, Any] = {"task": "regression"}
        if reg.count:
            out["quality"] = {k: v for k, v in reg.metrics().items() if k in QUALITY_KEYS}
        return out
    out = {"task": "classification", "classes": classes}
    binary = len(classes) == 2
    positive = positive_class if binary and positive_class in classes else classes[-1]
    order = [c for c in classes if c != positive] + [positive] if binary else classes
    p = None if proba is None else np.asarray(proba, dtype=float)
    yhat: Any = predictions
    if yhat is None and p is not None and binary:
        yhat = np.where(p >= threshold, positive, order[0])
    if yhat is not None:
        q = ClassificationQuality(order)
        q.update_many(y, np.asarray(yhat, dtype=object), p if binary else None)
        out["quality"] = {k: v for k, v in q.metrics().items() if k in QUALITY_KEYS}
    if p is not None and binary:
        truth = np.array([category_name(v) == positive for v in y.tolist()], dtype=int)
        try:
            out["calibrator"] = Calibrator.fit(p, truth).to_dict()
        except ValueError as exc:
            out["calibrator_error"] = str(exc)
    return out

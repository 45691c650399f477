"""Precision, recall and F1 from a confusion matrix, as scikit-learn computes them.

The matrix is ``(k + 1) × (k + 1)``: rows are true labels, columns predictions,
the last row and column "other" (labels outside the ``k`` classes). For class
``c``: ``precision = tp / predicted``, ``recall = tp / support`` and
``F1 = 2 tp / (predicted + support)``, 0 where the denominator is 0 — scikit-learn's
``precision_recall_fscore_support(..., zero_division=0)``. Predictions of ``c``
for rows whose label is "other" are false positives of ``c``, as scikit-learn
counts them.

Averages run over the *present* classes: those in the true labels or the
predictions. A class absent from both has no defined precision or recall; it is
reported as ``None`` and left out, which is scikit-learn's default (it averages
over ``unique_labels(y_true, y_pred)``). So the macro and weighted averages equal
scikit-learn's with ``labels=`` the present classes, and equal its default call
whenever no label falls outside the classes. "Other" itself is never averaged:
it may hold many labels that scikit-learn would score one by one.

Example:
    >>> cm = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]], dtype=float)
    >>> s = class_scores(cm)
    >>> s["precision"].tolist(), s["recall"].tolist()
    ([1.0, 0.6666666666666666], [0.75, 1.0])
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["averages", "class_scores"]

Array = NDArray[np.float64]


def _divide(num: Array, den: Array) -> Array:
    out: Array = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return out


def class_scores(cm: Array) -> dict[str, Array]:
    """Per class (the first ``k`` rows): ``tp``, ``support``, ``predicted``,
    ``precision``, ``recall``, ``f1`` and ``present``."""
    k = cm.shape[0] - 1
    tp = np.diagonal(cm)[:k].astype(np.float64)
    support = cm.sum(axis=1)[:k]
    predicted = cm.sum(axis=0)[:k]
    return {
        "tp": tp,
        "support": support,
        "predicted": predicted,
        "precision": _divide(tp, predicted),
        "recall": _divide(tp, support),
        "f1": _divide(2.0 * tp, predicted + support),
        "present": (support + predicted) > 0,
    }


def averages(scores: dict[str, Array]) -> dict[str, dict[str, float | None]]:
    """``macro`` and ``weighted`` precision, recall and F1 over the present classes
    (``None`` with no present class; weighted averages are 0 when no present class
    has support, like scikit-learn's ``zero_division=0``)."""
    present = scores["present"]
    w = scores["support"][present]
    out: dict[str, dict[str, float | None]] = {"macro": {}, "weighted": {}}
    for name in ("precision", "recall", "f1"):
        values = scores[name][present]
        if values.size == 0:
            out["macro"][name] = out["weighted"][name] = None
            continue
        out["macro"][name] = float(np.mean(values))
        total = float(w.sum())
        out["weighted"][name] = float(np.dot(values, w) / total) if total else 0.0
    return out

"""Reliability bins and expected calibration error (ECE) from additive sums.

Per bin of confidence (``bins`` uniform bins on [0, 1], bin ``i`` holding
``(i/bins, (i+1)/bins]`` and the first one including 0 — the binning of
scikit-learn's ``calibration_curve(strategy="uniform")``) the state keeps the
row count, the sum of confidences and the count of correct rows. Then

    ECE = Σ_b (n_b / N) · |mean confidence_b − accuracy_b|

over the non-empty bins. Confidence and "correct" are, for a binary model, the
probability of the positive class and whether the label is the positive class
(so the bins are exactly ``calibration_curve``'s); for a multiclass model, the
top-label probability ``max_j p_j`` and whether ``argmax_j p_j`` (the first on
ties) is the label. Exact up to float rounding: nothing is approximated.

Example:
    >>> conf = np.array([0.1, 0.15, 0.8, 0.9])
    >>> correct = np.array([0.0, 1.0, 1.0, 1.0])
    >>> n, s, c = bin_sums(conf, correct, bins=10)
    >>> round(expected_calibration_error(n, s, c), 6)
    0.3125
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sketches.ranking import snap

__all__ = ["bin_sums", "calibration_index", "expected_calibration_error", "reliability"]

Array = NDArray[np.float64]


def calibration_index(conf: Array, bins: int) -> NDArray[np.intp]:
    """Bin of every confidence in [0, 1], as ``calibration_curve`` bins it."""
    return snap(np.ceil(conf * bins) - 1.0, conf, np.linspace(0.0, 1.0, bins + 1))


def bin_sums(conf: Array, correct: Array, bins: int) -> tuple[Array, Array, Array]:
    """Row counts, confidence sums and correct counts per bin."""
    idx = calibration_index(conf, bins)
    return (
        np.bincount(idx, minlength=bins).astype(np.float64),
        np.bincount(idx, weights=conf, minlength=bins).astype(np.float64),
        np.bincount(idx, weights=correct, minlength=bins).astype(np.float64),
    )


def expected_calibration_error(count: Array, conf_sum: Array, correct: Array) -> float | None:
    """ECE from the bin sums; ``None`` when no row was scored."""
    total = float(count.sum())
    if total == 0:
        return None
    full = count > 0
    return float(np.abs(conf_sum[full] - correct[full]).sum() / total)


def reliability(count: Array, conf_sum: Array, correct: Array) -> list[dict[str, float | None]]:
    """The reliability diagram: per bin its edges, row count, mean confidence and
    accuracy (``None`` for an empty bin)."""
    bins = count.size
    edges = np.linspace(0.0, 1.0, bins + 1)
    out: list[dict[str, float | None]] = []
    for i in range(bins):
        n = float(count[i])
        out.append(
            {
                "lo": float(edges[i]),
                "hi": float(edges[i + 1]),
                "count": n,
                "confidence": float(conf_sum[i] / n) if n else None,
                "accuracy": float(correct[i] / n) if n else None,
            }
        )
    return out

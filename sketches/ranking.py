"""ROC-AUC and average precision (PR-AUC) from binned scores, with their error bounds.

Scores in [0, 1] are counted into the bins of a fixed :class:`ScoreGrid`: per bin
the rows, the positives among them, and the sums of ``d = score - ref`` and
``d²`` (``ref`` is the bin centre, or 0 and 1 for the two end bins, so that
confident scores keep their relative precision). Everything is additive, so a
window's state merges by addition.

* Bins are uniform in log-odds by default: ``bins - 2`` equal steps of
  ``logit(p)`` between ``±logit_max``, plus ``[0, σ(-logit_max)]`` and
  ``(σ(logit_max), 1]``. Confident models put most scores within 10^-3 of 0 or
  1, where uniform bins cannot separate them: on a gradient-boosting model with
  1 % positives, 160 uniform bins were off by 0.0074 in ROC-AUC (bound 0.11),
  160 log-odds bins by 0.0005 (bound 0.011); on a more confident one even 1,000
  uniform bins were off by 0.026. ``scale="uniform"`` gives equal bins on [0, 1].
* ROC-AUC counts the pairs within a bin as one half. Its exact worst case over
  the orders that binning hides is ``½ Σ_b P(pos in b) · P(neg in b)`` over the
  bins whose scores are not all equal; equal scores are ties for scikit-learn
  too, worth exactly one half.
* Average precision (scikit-learn's ``average_precision_score``, the step-wise
  area) takes in each bin the expected precision at each positive when
  positives and negatives are randomly interleaved, moved toward the value of
  one tied threshold in proportion as the bin's scores spread less than evenly
  spread ones would (standard deviation ``s`` below ``w / √12``, weight
  ``s √12 / w``): a bin holding one or a few distinct values (a tree's leaves,
  isotonic steps) then behaves like scikit-learn's ties. The bound is the exact
  worst case: every positive of each non-tied bin after, or before, its
  negatives.
* "All equal" means a standard deviation below :data:`TIE_REL` (10^-5) of the
  root mean square of ``d``. Distinct scores closer than that, sharing a bin, are
  the one case where a bound can fail. Rounding in ``Σd²`` makes more than about
  10^6 equal scores in one bin look spread: their bound is then looser, never
  wrong, and the estimate barely moves.

Measured against scikit-learn on held-out scores of logistic-regression,
naive-Bayes, depth-6 tree, isotonic-calibrated, gradient-boosting and
random-forest models (0.1–50 % positives, 20,000 rows each) at the defaults (160
bins, ``logit_max = 14``): with 250 or more positives ROC-AUC was within 0.0020
and average precision within 0.0025 (the tests check 0.005); with about 100
positives, within 0.0051 — there the AUC's own sampling error is about 0.03. The
bounds are often much looser than the error (0.005–0.1).

Example:
    >>> pos = np.array([0, 1, 0, 2.0])  # positives per bin, ascending score
    >>> neg = np.array([2, 1, 1, 0.0])
    >>> auc, bound = roc_auc(pos, neg, tied=np.array([True, False, True, True]))
    >>> float(auc), round(float(bound), 4)
    (0.875, 0.0417)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.special import digamma, expit

__all__ = ["TIE_REL", "ScoreGrid", "average_precision", "bin_shape", "roc_auc", "snap"]

SCALES = ("logit", "uniform")
TIE_REL = 1e-5
"""A bin is a tie when the standard deviation of its scores is below this share of
the root mean square of ``d``."""

Array = NDArray[np.float64]


@dataclass(frozen=True)
class ScoreGrid:
    """Fixed bins on [0, 1] for scores (probabilities).

    Bin ``i`` holds ``(edges[i], edges[i + 1]]`` (the first one includes 0), the
    rule of ``numpy.searchsorted(..., side="left")`` that scikit-learn's
    ``calibration_curve`` uses.

    Example:
        >>> ScoreGrid(bins=4, scale="uniform").index(np.array([0.0, 0.25, 0.3, 1.0])).tolist()
        [0, 0, 1, 3]
    """

    bins: int = 160
    scale: str = "logit"
    logit_max: float = 14.0
    edges: Array = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        b = self.bins
        if not (isinstance(b, int) and not isinstance(b, bool) and 2 <= b <= 1 << 16):
            raise ValueError(f"score bins must be an integer in [2, 65536], got {b!r}")
        if self.scale not in SCALES:
            raise ValueError(f"score scale must be one of {SCALES}, got {self.scale!r}")
        lm = self.logit_max
        if not (isinstance(lm, float | int) and 0.0 < lm <= 30.0):
            raise ValueError(f"logit_max must be in (0, 30], got {lm!r}")
        if self.scale == "uniform" or b == 2:  # two log-odds bins split at 0.5 too
            edges = np.linspace(0.0, 1.0, b + 1)
        else:
            edges = np.concatenate([[0.0], expit(np.linspace(-lm, lm, b - 1)), [1.0]])
        object.__setattr__(self, "edges", edges)

    @property
    def widths(self) -> Array:
        return np.diff(self.edges)

    @property
    def refs(self) -> Array:
        """The reference of each bin that ``d = score - ref`` is taken from: its
        centre, but 0 for the first bin and 1 for the last."""
        out: Array = 0.5 * (self.edges[1:] + self.edges[:-1])
        out[0], out[-1] = 0.0, 1.0
        return out

    def index(self, scores: Array) -> NDArray[np.intp]:
        """Bin of every score (scores must lie in [0, 1]); equal to
        ``searchsorted(edges[1:-1], scores, side="left")``, computed in closed form
        and corrected at the edges (about twice as fast)."""
        b = self.bins
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.scale == "uniform" or b == 2:
                x = np.ceil(scores * b) - 1.0
            else:
                x = np.log(scores / (1.0 - scores))
                x += self.logit_max
                x *= (b - 2) / (2.0 * self.logit_max)
                x += 1.0
        return snap(x, scores, self.edges)


def snap(guess: Array, values: Array, edges: Array) -> NDArray[np.intp]:
    """Bins ``i`` with ``edges[i] < v <= edges[i + 1]`` (the first bin closed) from
    a guess that is off by at most one bin; ``guess`` is overwritten."""
    nb = edges.size - 1
    np.clip(guess, 0.0, nb - 1, out=guess)
    i = guess.astype(np.intp)
    i -= (values <= edges[i]) & (i > 0)
    i += values > edges[np.minimum(i + 1, nb)]
    return i


def bin_shape(
    count: Array, sum_d: Array, sum_d2: Array, widths: Array
) -> tuple[Array, NDArray[np.bool_]]:
    """From the count and the sums of ``d`` and ``d²`` per bin (any shape; ``widths``
    broadcast along the last axis):

    * the spread: standard deviation of the bin's scores over ``w / √12``, that of
      scores spread evenly across it — 0 for equal scores, about 1 for smooth ones;
    * the ties: bins whose standard deviation is below :data:`TIE_REL` of the
      root mean square of ``d``, or that hold at most one row.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sum_d / count
        mean_sq = sum_d2 / count
        var = np.maximum(mean_sq - mean * mean, 0.0)
        one = count <= 1
        spread: Array = np.where(one, 0.0, np.sqrt(var) * math.sqrt(12.0) / widths)
        tied: NDArray[np.bool_] = one | (var <= TIE_REL * TIE_REL * mean_sq)
    return spread, tied


def roc_auc(pos: Array, neg: Array, tied: NDArray[np.bool_]) -> tuple[Array, Array]:
    """ROC-AUC and its worst-case error from per-bin positive and negative counts and
    the tied bins of :func:`bin_shape` (last axis: bins by ascending score). NaN where
    a row lacks positives or negatives."""
    p, n = pos.sum(axis=-1), neg.sum(axis=-1)
    below = np.cumsum(neg, axis=-1) - neg
    within = pos * neg
    with np.errstate(invalid="ignore", divide="ignore"):
        pairs = p * n
        auc = ((pos * below).sum(axis=-1) + 0.5 * within.sum(axis=-1)) / pairs
        bound = 0.5 * np.where(tied, 0.0, within).sum(axis=-1) / pairs
    bad = pairs == 0
    out = np.where(bad, math.nan, np.minimum(auc, 1.0)), np.where(bad, math.nan, bound)
    return out


def _precision_sum(a: Array, x: Array, m: Array) -> Array:
    """``Σ_{j=1..m} (a + j) / (x + j)``, in closed form."""
    out: Array = m - (x - a) * (digamma(x + m + 1.0) - digamma(x + 1.0))
    return out


def average_precision(
    pos: Array, neg: Array, spread: Array, tied: NDArray[np.bool_]
) -> tuple[Array, Array]:
    """Average precision and its worst-case error from per-bin counts and the spread
    and ties of :func:`bin_shape` (last axis: bins by ascending score). NaN where a
    row has no positives."""
    tp, fp = pos[..., ::-1], neg[..., ::-1]
    weight = np.minimum(spread[..., ::-1], 1.0)  # 0: one tied threshold, 1: interleaved
    tie = tied[..., ::-1]
    a = np.cumsum(tp, axis=-1) - tp  # positives ranked above the bin
    c = np.cumsum(tp + fp, axis=-1) - (tp + fp)  # rows ranked above the bin
    with np.errstate(invalid="ignore", divide="ignore"):
        step = tp * (a + tp) / (c + tp + fp)  # the bin as one tied threshold
        r = 1.0 + fp / (tp + 1.0)  # expected rows per positive, randomly interleaved
        mid = _precision_sum(a, c / r, tp) / r
        lo = _precision_sum(a, c + fp, tp)  # negatives of the bin first
        hi = _precision_sum(a, c, tp)  # positives first
    has = tp > 0
    est = np.where(has, np.where(tie, step, step + (mid - step) * weight), 0.0)
    lo = np.where(has & ~tie, lo, est)
    hi = np.where(has & ~tie, hi, est)
    p = pos.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = est.sum(axis=-1) / p
        err = np.maximum(hi.sum(axis=-1) - est.sum(axis=-1), est.sum(axis=-1) - lo.sum(axis=-1))
        bound = np.maximum(err, 0.0) / p
    bad = p == 0
    return np.where(bad, math.nan, np.clip(ap, 0.0, 1.0)), np.where(bad, math.nan, bound)

"""Distances between binned distributions: PSI, KL, Jensen–Shannon, Hellinger,
chi-square.

Both sketches are first laid on the same bins: reference-binned histograms
share their bins, and their missing-value bin is one more bin; categorical
counters are laid on the union of both sides' categories, plus ``__other__``
and a missing bin, so a category unseen in the reference is a bin of its own
with reference mass 0. Nothing is dropped.

On those bins the results are exact: they equal the same formula applied to the
raw data binned the same way, up to floating-point rounding (tests assert
1e-9 absolute). Conventions, as in the
field (Evidently, NannyML):

* PSI = Σ (c - r) · ln(c / r) and KL = Σ r · ln(r / c) (reference first), with
  every proportion floored at ``EPS = 1e-4`` so that empty bins give a finite
  value.
* Jensen–Shannon *distance* (square root of the divergence), natural log, as
  ``scipy.spatial.distance.jensenshannon``; range [0, √ln 2].
* Hellinger distance ``sqrt(1 - Σ sqrt(r c))``; range [0, 1].
* Chi-square test of homogeneity on the 2 × k table of counts
  (``scipy.stats.chi2_contingency`` without continuity correction), bins empty
  on both sides left out.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import special

from sketches.categorical import CategoricalCounter
from sketches.histogram import ReferenceHistogram
from sketches.result import DriftResult

__all__ = [
    "EPS",
    "BinnedSketch",
    "aligned_counts",
    "chi_square",
    "hellinger",
    "jensen_shannon",
    "kl_divergence",
    "psi",
]

EPS = 1e-4
BinnedSketch = ReferenceHistogram | CategoricalCounter


def aligned_counts(
    reference: BinnedSketch, current: BinnedSketch
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Counts of both sketches on common bins (missing bin last)."""
    if isinstance(reference, ReferenceHistogram) and isinstance(current, ReferenceHistogram):
        reference.check_same_bins(current)
        return (
            reference.bin_counts().astype(np.float64),
            current.bin_counts().astype(np.float64),
        )
    if isinstance(reference, CategoricalCounter) and isinstance(current, CategoricalCounter):
        rf, cf = reference.frequencies(), current.frequencies()
        names = sorted(rf.keys() | cf.keys())
        r = np.array([rf.get(k, 0) for k in names] + [reference.missing], dtype=np.float64)
        c = np.array([cf.get(k, 0) for k in names] + [current.missing], dtype=np.float64)
        return r, c
    raise TypeError(
        "reference and current must both be ReferenceHistogram or both CategoricalCounter, "
        f"got {type(reference).__name__} and {type(current).__name__}"
    )


def _proportions(
    method: str, reference: BinnedSketch, current: BinnedSketch, threshold: float, test: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64]] | DriftResult:
    r, c = aligned_counts(reference, current)
    nr, nc = int(r.sum()), int(c.sum())
    if nr == 0 or nc == 0:
        side = "reference" if nr == 0 else "current"
        return DriftResult.undefined(method, threshold, nr, nc, f"empty {side}", test)
    return r / nr, c / nc


def _distance(
    method: str, value: float, threshold: float, r: BinnedSketch, c: BinnedSketch
) -> DriftResult:
    return DriftResult(method, value, threshold, bool(value >= threshold), r.total, c.total)


def psi(reference: BinnedSketch, current: BinnedSketch, threshold: float = 0.1) -> DriftResult:
    """Population stability index (tiers: 0.1 moderate, 0.25 significant)."""
    pq = _proportions("psi", reference, current, threshold, False)
    if isinstance(pq, DriftResult):
        return pq
    p, q = np.maximum(pq[0], EPS), np.maximum(pq[1], EPS)
    return _distance("psi", float(np.sum((q - p) * np.log(q / p))), threshold, reference, current)


def kl_divergence(
    reference: BinnedSketch, current: BinnedSketch, threshold: float = 0.1
) -> DriftResult:
    """Kullback–Leibler divergence KL(reference ‖ current), natural log."""
    pq = _proportions("kl", reference, current, threshold, False)
    if isinstance(pq, DriftResult):
        return pq
    p, q = np.maximum(pq[0], EPS), np.maximum(pq[1], EPS)
    return _distance("kl", float(np.sum(p * np.log(p / q))), threshold, reference, current)


def jensen_shannon(
    reference: BinnedSketch, current: BinnedSketch, threshold: float = 0.1
) -> DriftResult:
    """Jensen–Shannon distance (natural log), as scipy's ``jensenshannon``."""
    pq = _proportions("js", reference, current, threshold, False)
    if isinstance(pq, DriftResult):
        return pq
    p, q = pq
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_pm = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_qm = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    value = math.sqrt(max(0.5 * (kl_pm + kl_qm), 0.0))
    return _distance("js", value, threshold, reference, current)


def hellinger(
    reference: BinnedSketch, current: BinnedSketch, threshold: float = 0.1
) -> DriftResult:
    """Hellinger distance ``sqrt(1 - Σ sqrt(r·c))`` in [0, 1]."""
    pq = _proportions("hellinger", reference, current, threshold, False)
    if isinstance(pq, DriftResult):
        return pq
    p, q = pq
    value = float(np.linalg.norm(np.sqrt(p) - np.sqrt(q)) / math.sqrt(2.0))
    return _distance("hellinger", value, threshold, reference, current)


def chi_square(
    reference: BinnedSketch, current: BinnedSketch, threshold: float = 0.05
) -> DriftResult:
    """Chi-square test of homogeneity; drifted when ``p_value < threshold``."""
    r, c = aligned_counts(reference, current)
    nr, nc = int(r.sum()), int(c.sum())
    if nr == 0 or nc == 0:
        side = "reference" if nr == 0 else "current"
        return DriftResult.undefined("chi2", threshold, nr, nc, f"empty {side}", True)
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    if r.size < 2:
        return DriftResult("chi2", 0.0, threshold, False, nr, nc, p_value=1.0)
    # chi-square test of homogeneity on the 2 x k table (chi2_contingency's
    # statistic without continuity correction), in closed form: it is faster
    col = r + c
    n = nr + nc
    er, ec = col * (nr / n), col * (nc / n)
    stat = float(np.sum((r - er) ** 2 / er) + np.sum((c - ec) ** 2 / ec))
    p_value = float(special.chdtrc(r.size - 1, stat))
    return DriftResult("chi2", stat, threshold, bool(p_value < threshold), nr, nc, p_value=p_value)

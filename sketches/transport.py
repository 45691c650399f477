"""Distances on the real line from two reference-binned histograms:
Kolmogorov–Smirnov, Wasserstein-1 and energy distance.

**Model.** A histogram knows, per bin, the count and the mean of its values. In
each bin a sample is modelled as uniform on the widest sub-interval of the bin
with that mean (``[lo, 2m - lo]`` or ``[2m - hi, hi]``); a point bin is a
point mass; an open outer bin is ``[2m - b_0, b_0]`` or ``[b_K, 2m - b_K]``.
Both cumulative distributions are then piecewise linear with knots shared on
one grid, and ``D = F_ref - F_cur`` is linear between knots, so the integrals
below are computed in closed form, with no sampling.

**Bounds** (``pm_i = max(r_i, c_i)``, the larger of the two bin masses):

* KS: within a bin ``D`` moves by at most ``pm_i``, and the model agrees with the
  data at every bin edge, so ``|KS_sketch - KS_exact| <= max_i pm_i`` over
  non-point inner bins (outer bins: both sides are monotone there, exact).
  At 100 equal-mass reference bins that is 0.01 plus whatever extra mass the
  current sample puts into one bin; measured error on continuous data is far
  below it (see the tests). Reported as ``error_bound``.
* Wasserstein-1: the model has the exact ``∫ D`` over every bin (it keeps each
  bin's mean), so it is exact wherever ``D`` keeps its sign over a bin, which
  includes the outer bins beyond the reference range: tails are counted
  exactly. ``D`` can change sign only in a bin where ``|D(lo)| <= pm_i``, and
  there it errs by at most ``2 · width_i · pm_i``; the sum over such bins is
  the reported ``error_bound``. Exact on discrete data (point bins have width 0).
* Energy distance ``sqrt(2 ∫ D²)`` (``scipy.stats.energy_distance``): exact
  where the data are discrete; otherwise no closed-form bound is reported
  (``error_bound`` is NaN); measured within 0.02 of the exact value in units
  of ``sqrt(σ_ref)`` from 1,000 values per side.

**Missing values** count as drift mass, never dropped. KS runs on the line
extended by one point after +inf that holds the missing values (so a change of
missing rate alone moves KS by that change). Wasserstein and energy treat a
missing value as one unit from every value (σ_ref for W, sqrt(σ_ref) for
energy): ``W = (1 - max(m_r, m_c)) · W_present + |m_r - m_c| · σ_ref``; with no
missing values this is plain W1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from sketches.histogram import ReferenceHistogram
from sketches.result import DriftResult

__all__ = ["energy_distance", "ks_test", "wasserstein", "wasserstein_normalized"]


@dataclass(frozen=True)
class _Pieces:
    """A sample as uniform pieces ``[a_i, b_i]`` with masses ``p_i`` (sum 1)."""

    a: NDArray[np.float64]
    b: NDArray[np.float64]
    p: NDArray[np.float64]
    before: NDArray[np.float64]  # mass of all earlier pieces

    def cdf(self, x: NDArray[np.float64], side: str) -> NDArray[np.float64]:
        """F(x) (``side="right"``) or F(x⁻) (``side="left"``)."""
        j = np.searchsorted(self.a, x, side=side) - 1  # type: ignore[call-overload]
        jj = np.maximum(j, 0)
        a, b, p = self.a[jj], self.b[jj], self.p[jj]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(b > a, (x - a) / (b - a), 1.0)
        out: NDArray[np.float64] = np.where(
            j >= 0, self.before[jj] + p * np.clip(frac, 0.0, 1.0), 0.0
        )
        return out


def _pieces(
    h: ReferenceHistogram,
    lo_edge: NDArray[np.float64],
    hi_edge: NDArray[np.float64],
    point: NDArray[np.bool_],
) -> _Pieces:
    counts = h.counts
    keep = counts > 0
    lo, hi, c = lo_edge[keep], hi_edge[keep], counts[keep].astype(np.float64)
    m = h.bin_means()[keep]
    pt = point[keep]
    # clip the mean into its bin (rounding of shifted sums)
    m = np.clip(m, lo, hi)
    flo, fhi = np.isfinite(lo), np.isfinite(hi)
    mid = np.where(flo & fhi, 0.5 * (np.where(flo, lo, 0.0) + np.where(fhi, hi, 0.0)), 0.0)
    # uniform from the lower edge when the mean is in the lower half (or the bin
    # is the open top bin), else up to the upper edge (or the open bottom bin)
    from_lo = np.where(flo & fhi, m <= mid, flo)
    a = np.where(pt, lo, np.where(from_lo, lo, 2 * m - hi))
    b = np.where(pt, lo, np.where(from_lo, 2 * m - lo, hi))
    p = c / c.sum()
    before = np.concatenate([[0.0], np.cumsum(p)[:-1]])
    return _Pieces(a, b, p, before)


@dataclass(frozen=True)
class _Comparison:
    grid: NDArray[np.float64]
    d_right: NDArray[np.float64]  # D just right of each grid point
    d_left: NDArray[np.float64]  # D just left of each grid point
    pm: NDArray[np.float64]  # per value bin: larger bin mass of the two (present values)
    widths: NDArray[np.float64]  # per value bin: finite width of the data it may hold
    d_at_lo: NDArray[np.float64]  # per value bin: D at its lower edge


def _compare(ref: ReferenceHistogram, cur: ReferenceHistogram) -> _Comparison:
    lo, hi = ref.binning.bin_edges()
    point = ref.binning.point_bins()
    pr, pc = _pieces(ref, lo, hi, point), _pieces(cur, lo, hi, point)
    grid = np.unique(np.concatenate([pr.a, pr.b, pc.a, pc.b]))
    d_right = pr.cdf(grid, "right") - pc.cdf(grid, "right")
    d_left = pr.cdf(grid, "left") - pc.cdf(grid, "left")
    # per-bin envelope used by the error bounds
    rmass = ref.counts / max(ref.count, 1)
    cmass = cur.counts / max(cur.count, 1)
    pm = np.maximum(rmass, cmass)
    data_lo = min(ref.min, cur.min)
    data_hi = max(ref.max, cur.max)
    widths = np.minimum(hi, data_hi) - np.maximum(lo, data_lo)
    widths = np.where(point | (widths < 0), 0.0, widths)
    cum_r = np.concatenate([[0.0], np.cumsum(rmass)[:-1]])
    cum_c = np.concatenate([[0.0], np.cumsum(cmass)[:-1]])
    return _Comparison(grid, d_right, d_left, pm, widths, cum_r - cum_c)


def _linear_abs_integral(
    d0: NDArray[np.float64], d1: NDArray[np.float64], w: NDArray[np.float64]
) -> float:
    """Σ ∫ |D| over intervals where D is linear from d0 to d1."""
    same = d0 * d1 >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = (d0 * d0 + d1 * d1) / (2 * (np.abs(d0) + np.abs(d1)))
    per = np.where(same, 0.5 * (np.abs(d0) + np.abs(d1)), np.nan_to_num(cross))
    return float(np.sum(w * per))


def _present_w1_energy(
    ref: ReferenceHistogram, cur: ReferenceHistogram
) -> tuple[float, float, float]:
    """W1, ∫D² and the W1 error bound on present values only."""
    cmp = _compare(ref, cur)
    g = cmp.grid
    if g.size < 2:
        return 0.0, 0.0, 0.0
    w = np.diff(g)
    d0, d1 = cmp.d_right[:-1], cmp.d_left[1:]
    w1 = _linear_abs_integral(d0, d1, w)
    sq = float(np.sum(w * (d0 * d0 + d0 * d1 + d1 * d1) / 3.0))
    may_cross = np.abs(cmp.d_at_lo) <= cmp.pm
    bound = float(np.sum(np.where(may_cross, 2.0 * cmp.widths * cmp.pm, 0.0)))
    return w1, sq, bound


def _missing_share(h: ReferenceHistogram) -> float:
    return h.missing / h.total if h.total else math.nan


def _undefined_reason(ref: ReferenceHistogram, cur: ReferenceHistogram) -> str | None:
    ref.check_same_bins(cur)
    if ref.total == 0:
        return "empty reference"
    if cur.total == 0:
        return "empty current"
    if ref.count == 0:
        return "reference has no non-missing values"
    return None


def _raw_distance(
    ref: ReferenceHistogram, cur: ReferenceHistogram, energy: bool
) -> tuple[float, float, float]:
    """Missing-aware W1 or energy distance in feature units, its bound, and the
    unit that normalises it: σ_ref for W1, sqrt(σ_ref) for energy."""
    sigma = ref.std if ref.count > 1 else 0.0
    mr, mc = _missing_share(ref), _missing_share(cur)
    w1 = sq = bound = 0.0
    if cur.count:
        w1, sq, bound = _present_w1_energy(ref, cur)
    weight = 1.0 - max(mr, mc)
    present = math.sqrt(2.0 * sq) if energy else w1
    unit = math.sqrt(sigma) if energy else sigma  # energy distance scales as sqrt(x)
    value = weight * present + abs(mr - mc) * unit
    return value, (math.nan if energy else weight * bound), unit


def _normalised(
    method: str, ref: ReferenceHistogram, cur: ReferenceHistogram, threshold: float, energy: bool
) -> DriftResult:
    reason = _undefined_reason(ref, cur)
    if reason is not None:
        return DriftResult.undefined(method, threshold, ref.total, cur.total, reason, False)
    value, bound, sigma = _raw_distance(ref, cur, energy)
    if sigma > 0.0:
        value, bound = value / sigma, bound / sigma
    else:
        reason = "constant reference: any change is infinitely many standard deviations"
        value, bound = (0.0 if value == 0.0 else math.inf), 0.0
    return DriftResult(
        method,
        value,
        threshold,
        bool(value >= threshold),
        ref.total,
        cur.total,
        error_bound=bound,
        reason=reason,
    )


def wasserstein(
    reference: ReferenceHistogram, current: ReferenceHistogram, threshold: float | None = None
) -> DriftResult:
    """Wasserstein-1 distance in the feature's units (missing-aware, see above).

    Default threshold: 0.1 reference standard deviations, in the feature's units.
    """
    reason = _undefined_reason(reference, current)
    sigma = reference.std if reference.count > 1 else 0.0
    if threshold is None:
        threshold = 0.1 * sigma if sigma > 0 else 0.0
    if reason is not None:
        return DriftResult.undefined(
            "wasserstein", threshold, reference.total, current.total, reason, False
        )
    value, bound, _ = _raw_distance(reference, current, energy=False)
    drifted = value >= threshold if threshold > 0 else value > 0
    return DriftResult(
        "wasserstein",
        value,
        threshold,
        bool(drifted),
        reference.total,
        current.total,
        error_bound=bound,
    )


def wasserstein_normalized(
    reference: ReferenceHistogram, current: ReferenceHistogram, threshold: float = 0.1
) -> DriftResult:
    """Wasserstein-1 divided by the reference standard deviation (default 0.1)."""
    return _normalised("wasserstein_norm", reference, current, threshold, energy=False)


def energy_distance(
    reference: ReferenceHistogram, current: ReferenceHistogram, threshold: float = 0.1
) -> DriftResult:
    """Energy distance (scipy's definition) divided by ``sqrt(σ_ref)``.

    ``sqrt(2 ∫ (F - G)²)`` grows as the square root of the feature's scale, so
    dividing by ``sqrt(σ_ref)`` makes it scale-free (a shift of 0.3 σ between
    two normals gives about 0.23). Missing values weigh ``|m_r - m_c|``.
    Measured within 0.02 of the exact value from 1,000 values per side.
    """
    return _normalised("energy", reference, current, threshold, energy=True)


def ks_test(
    reference: ReferenceHistogram, current: ReferenceHistogram, threshold: float = 0.05
) -> DriftResult:
    """Two-sample Kolmogorov–Smirnov statistic with its asymptotic p-value
    (``scipy.stats.kstwo`` at ``n·m/(n+m)``, as ``ks_2samp(method="asymp")``);
    drifted when ``p_value < threshold``."""
    reason = _undefined_reason(reference, current)
    nr, nc = reference.total, current.total
    if reason is not None:
        return DriftResult.undefined("ks", threshold, nr, nc, reason, True)
    mr, mc = _missing_share(reference), _missing_share(current)
    stat, bound = abs(mr - mc), 0.0
    if current.count:
        lo, hi = reference.binning.bin_edges()
        point = reference.binning.point_bins()
        pr = _pieces(reference, lo, hi, point)
        pc = _pieces(current, lo, hi, point)
        g = np.unique(np.concatenate([pr.a, pr.b, pc.a, pc.b]))
        # present-value CDFs scaled to the total: the missing mass sits after +inf
        for side in ("right", "left"):
            d = (1 - mr) * pr.cdf(g, side) - (1 - mc) * pc.cdf(g, side)
            stat = max(stat, float(np.abs(d).max()))
        inner = np.isfinite(lo) & np.isfinite(hi) & ~point
        pm = np.maximum(reference.counts / nr, current.counts / nc)
        bound = float(np.max(np.where(inner, pm, 0.0)))
    en = nr * nc / (nr + nc)
    p_value = float(stats.kstwo.sf(stat, np.round(en)))
    return DriftResult(
        "ks", stat, threshold, bool(p_value < threshold), nr, nc, p_value=p_value, error_bound=bound
    )

"""Kolmogorov–Smirnov and Wasserstein-1 for many feature pairs at once.

Pairs of reference-binned histograms are stacked into ``(features, bins)``
arrays (shorter ones padded with empty zero-width bins), so one numpy pass
serves a whole window's features. With ``D = F_ref - F_cur`` on present values:

* **Wasserstein-1.** Per bin, the mean of each side's values fixes ``∫ D``
  exactly (``∫_lo^hi (F(x) - F(lo)) dx = p · (hi - mean)``), outer bins
  included, so ``W = Σ_i |∫_i D|`` is exact wherever ``D`` keeps its sign over a
  bin — everywhere beyond the reference range, and everywhere on discrete data
  (point bins have no width) — and never too large. ``D`` moves by at most
  ``pm_i = max(r_i, c_i)`` (the larger bin mass) within bin ``i``, so it can
  change sign only where ``|D(lo_i)| <= pm_i``; there the value is low by at
  most ``2 · width_i · pm_i``. The sum over such bins is ``bound``:
  ``W_sketch <= W_exact <= W_sketch + bound``.
* **Kolmogorov–Smirnov.** ``D`` is known exactly at every bin edge; inside
  a bin it moves by at most ``pm_i``, so the statistic from the edges is at most
  ``max_i pm_i`` (over inner bins that are not point bins) below the exact one.
  Missing values sit after +inf, so ``|m_ref - m_cur|`` is the last edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sketches.histogram import ReferenceHistogram

__all__ = ["PairStack"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class PairStack:
    """Reference and current bin masses and means of many features, padded."""

    lo: Array  # lower bin edges (-inf for the bottom bin)
    hi: Array  # upper bin edges (inf for the top bin)
    point: NDArray[np.bool_]  # bins holding exactly one value
    pr: Array  # reference bin mass among present values
    pc: Array  # current bin mass among present values
    mr: Array  # reference bin means (the bin's upper edge where empty)
    mc: Array  # current bin means
    kr: Array  # reference present share (1 - missing share), per feature
    kc: Array  # current present share
    data_lo: Array  # smallest value on either side, per feature
    data_hi: Array  # largest value on either side, per feature

    @classmethod
    def build(
        cls, refs: Sequence[ReferenceHistogram], curs: Sequence[ReferenceHistogram]
    ) -> PairStack:
        """Stack pairs; each pair must share its bins (checked)."""
        for r, c in zip(refs, curs, strict=True):
            r.check_same_bins(c)
        width = max(r.binning.num_bins for r in refs)

        def rows(arrays: list[NDArray[Any]], fill: float = 0.0) -> NDArray[Any]:
            if all(a.size == width for a in arrays):
                return np.stack(arrays)
            out = np.full((len(arrays), width), fill, dtype=arrays[0].dtype)
            for i, a in enumerate(arrays):
                out[i, : a.size] = a
            return out

        edges = [r.binning.bin_edges() for r in refs]
        lo, hi = rows([e[0] for e in edges]), rows([e[1] for e in edges])
        point = rows([r.binning.point_bins() for r in refs])
        shift = np.array([r.binning.shift for r in refs])[:, None]
        cr, cc = rows([r.counts for r in refs]), rows([c.counts for c in curs])
        nr, nc = cr.sum(axis=1), cc.sum(axis=1)
        miss_r = np.array([r.missing for r in refs])
        miss_c = np.array([c.missing for c in curs])
        mr = rows([r.sums for r in refs]) / np.maximum(cr, 1) + shift
        mc = rows([c.sums for c in curs]) / np.maximum(cc, 1) + shift
        return cls(
            lo,
            hi,
            point,
            cr / np.maximum(nr, 1)[:, None],
            cc / np.maximum(nc, 1)[:, None],
            mr,
            mc,
            nr / np.maximum(nr + miss_r, 1),
            nc / np.maximum(nc + miss_c, 1),
            np.array([min(r.min, c.min) for r, c in zip(refs, curs, strict=True)]),
            np.array([max(r.max, c.max) for r, c in zip(refs, curs, strict=True)]),
        )

    def wasserstein(self) -> tuple[Array, Array]:
        """W1 between present values, and its bound, per feature (see module doc)."""
        lo, hi, pr, pc = self.lo, self.hi, self.pr, self.pc
        flo, fhi = np.isfinite(lo), np.isfinite(hi)
        d_lo = np.cumsum(pr - pc, axis=1) - (pr - pc)
        with np.errstate(invalid="ignore"):
            top = np.where(fhi, hi, 0.0)
            bottom = np.where(flo, lo, 0.0)
            mr = np.where(pr > 0, self.mr, np.where(fhi, top, bottom))
            mc = np.where(pc > 0, self.mc, np.where(fhi, top, bottom))
            inner = np.where(flo & fhi, (top - bottom) * d_lo, 0.0)
            below_top = inner + pr * (top - mr) - pc * (top - mc)
            above_lo = pc * (mc - bottom) - pr * (mr - bottom)
        integral = np.where(fhi, below_top, above_lo)
        w1 = np.abs(integral).sum(axis=1)
        pm = np.maximum(pr, pc)
        span_lo = np.maximum(lo, self.data_lo[:, None])
        span_hi = np.minimum(hi, self.data_hi[:, None])
        widths = np.where(self.point, 0.0, np.clip(span_hi - span_lo, 0.0, None))
        may_cross = np.abs(d_lo) <= pm
        bound = np.where(may_cross, 2.0 * widths * pm, 0.0).sum(axis=1)
        return w1, bound

    def ks(self) -> tuple[Array, Array]:
        """KS statistic over the line extended by the missing values, and its bound."""
        wr = self.kr[:, None] * self.pr
        wc = self.kc[:, None] * self.pc
        d = np.cumsum(wr - wc, axis=1)
        stat = np.maximum(np.abs(d).max(axis=1), np.abs(self.kr - self.kc))
        inner = np.isfinite(self.lo) & np.isfinite(self.hi) & ~self.point
        bound = np.where(inner, np.maximum(wr, wc), 0.0).max(axis=1)
        return stat, bound

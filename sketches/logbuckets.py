"""A fixed, signed layout of logarithmic buckets: quantiles from an additive count vector.

The buckets are those of :class:`~sketches.mapping.LogarithmicMapping` (relative
accuracy ``alpha``), restricted to the keys of magnitudes ``min_value`` to
``max_value`` for both signs, plus a zero bucket (magnitudes below ``min_value``,
to within one bucket) and an overflow bucket per sign. The layout depends only
on its three parameters, so counts are a fixed-length vector and merge by
addition. Slots are in ascending order of value::

    [-overflow, -v(hi) .. -v(lo), zero, +v(lo) .. +v(hi), +overflow]

Guarantee: ``quantiles(counts, q)`` is within ``alpha · |x_q| + min_value`` of
``x_q``, the sample value of rank ``floor(q · (n - 1))`` (numpy's
``method="lower"``), whenever ``|x_q| <= max_value``; it is ``None`` when ``x_q``
lies in an overflow bucket (beyond the bucket of ``max_value``). Defaults: 1 %
between 10^-6 and 10^9, 1,728 buckets per sign, 3,459 slots.

Example:
    >>> b = SignedLogBuckets()
    >>> counts = np.bincount(b.index(np.array([-2.0, 0.0, 1.0, 3.0, 5.0])), minlength=b.size)
    >>> [round(v, 1) for v in b.quantiles(counts, [0.0, 0.5, 1.0])]
    [-2.0, 1.0, 5.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sketches.mapping import LogarithmicMapping

__all__ = ["SignedLogBuckets"]

_MAX_SLOTS = 1 << 20


@dataclass(frozen=True)
class SignedLogBuckets:
    """Bucket layout for signed values with relative accuracy ``alpha``."""

    alpha: float = 0.01
    min_value: float = 1e-6
    max_value: float = 1e9
    mapping: LogarithmicMapping = field(init=False, repr=False, compare=False)
    lo: int = field(init=False, repr=False, compare=False)
    hi: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        m = LogarithmicMapping(self.alpha)
        lo_v, hi_v = self.min_value, self.max_value
        if not (isinstance(lo_v, float | int) and isinstance(hi_v, float | int)):
            raise ValueError(f"min_value and max_value must be numbers, got {lo_v!r}, {hi_v!r}")
        if not (m.min_indexable <= lo_v < hi_v <= m.max_indexable):
            raise ValueError(
                f"need {m.min_indexable:.3g} <= min_value < max_value <= {m.max_indexable:.3g}, "
                f"got min_value={lo_v!r}, max_value={hi_v!r}"
            )
        lo, hi = m.key(float(lo_v)), m.key(float(hi_v))
        if 2 * (hi - lo + 1) + 3 > _MAX_SLOTS:
            raise ValueError(
                f"alpha={self.alpha} from {lo_v} to {hi_v} needs {2 * (hi - lo + 1) + 3} "
                f"buckets, more than {_MAX_SLOTS}"
            )
        object.__setattr__(self, "mapping", m)
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    @property
    def per_sign(self) -> int:
        """Buckets per sign (overflow and zero excluded)."""
        return self.hi - self.lo + 1

    @property
    def size(self) -> int:
        """Length of the count vector."""
        return 2 * self.per_sign + 3

    @property
    def zero(self) -> int:
        """Slot of the zero bucket."""
        return self.per_sign + 1

    def _keys(self, a: NDArray[np.float64]) -> NDArray[np.int64]:
        """Keys of positive magnitudes, equal to ``mapping.key`` of each; values near a
        bucket edge are recomputed once per distinct value (integers hit edges often)."""
        k = np.log(a) * (self.mapping.multiplier / math.log(2))
        keys = np.ceil(k)
        near = np.abs(k - np.rint(k)) <= 1e-10 * (np.abs(k) + 1.0)
        if near.any():
            idx = np.flatnonzero(near)
            uniq, inv = np.unique(a[idx], return_inverse=True)
            keys[idx] = np.array([self.mapping.key(float(v)) for v in uniq], dtype=np.float64)[inv]
        return keys.astype(np.int64)

    def index(self, values: NDArray[np.float64]) -> NDArray[np.intp]:
        """Slot of every finite value."""
        x = np.asarray(values, dtype=np.float64)
        a = np.abs(x)
        out = np.full(x.shape, self.zero, dtype=np.intp)
        nz = np.flatnonzero(a > 0.0)
        if nz.size:
            k = self._keys(a[nz])
            over = k > self.hi
            kept = k >= self.lo
            off = (k - self.lo).astype(np.intp)
            neg = x[nz] < 0.0
            slot = np.where(neg, self.per_sign - off, self.zero + 1 + off)
            slot = np.where(over, np.where(neg, 0, self.size - 1), slot)
            out[nz] = np.where(kept, slot, self.zero)
        return out

    def magnitudes(self) -> NDArray[np.float64]:
        """Representative magnitude of the positive buckets, ascending."""
        return self.mapping.values(np.arange(self.lo, self.hi + 1, dtype=np.int64))

    def values(self) -> NDArray[np.float64]:
        """Representative value of every slot (NaN for the overflow slots)."""
        mags = self.magnitudes()
        return np.concatenate([[math.nan], -mags[::-1], [0.0], mags, [math.nan]])

    def fold(self, counts: NDArray[np.float64]) -> NDArray[np.float64]:
        """Counts of magnitudes: ``[zero, v(lo) .. v(hi), overflow]`` from signed counts."""
        c = np.asarray(counts, dtype=np.float64)
        z, m = self.zero, self.per_sign
        mags = c[z + 1 : z + 1 + m] + c[1 : 1 + m][::-1]
        return np.concatenate([[c[z]], mags, [c[0] + c[-1]]])

    def quantiles(
        self, counts: NDArray[np.float64], qs: ArrayLike, absolute: bool = False
    ) -> list[float | None]:
        """Quantiles of the counted values (of their magnitudes with ``absolute``);
        ``None`` when empty or in an overflow bucket."""
        q = np.atleast_1d(np.asarray(qs, dtype=np.float64))
        if np.any(~((q >= 0.0) & (q <= 1.0))):
            raise ValueError(f"quantiles must be in [0, 1], got {qs!r}")
        if absolute:
            c = self.fold(counts)
            vals = np.concatenate([[0.0], self.magnitudes(), [math.nan]])
        else:
            c = np.asarray(counts, dtype=np.float64)
            vals = self.values()
        n = float(c.sum())
        if n == 0:
            return [None] * q.size
        cum = np.cumsum(c)
        slot = np.minimum(np.searchsorted(cum, np.floor(q * (n - 1)), side="right"), c.size - 1)
        return [None if math.isnan(v) else float(v) for v in vals[slot]]

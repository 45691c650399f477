"""Logarithmic value → bucket-key mapping with relative accuracy α.

A positive value ``v`` goes to key ``ceil(log_γ v)`` with
``γ = (1 + α) / (1 - α)``, and a key ``k`` is represented by
``2 γ^k / (1 + γ)``, which lies within ``α·v`` of every value of that bucket.
This is the ``LogarithmicMapping`` of DDSketch (Masson, Rim, Lee, VLDB 2019)
and of the ``ddsketch`` package, computed the same way so that both put the
same value in the same bucket; here it is vectorised over numpy arrays.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["LogarithmicMapping"]


@dataclass(frozen=True)
class LogarithmicMapping:
    """Maps positive magnitudes to integer keys with relative accuracy ``alpha``.

    Example:
        >>> m = LogarithmicMapping(0.01)
        >>> k = m.key(100.0)
        >>> abs(m.value(k) - 100.0) <= 0.01 * 100.0
        True
    """

    alpha: float
    gamma: float = field(init=False)
    multiplier: float = field(init=False)
    min_indexable: float = field(init=False)
    max_indexable: float = field(init=False)

    def __post_init__(self) -> None:
        a = self.alpha
        if not (isinstance(a, float | int) and 0.0 < a < 1.0):
            raise ValueError(f"relative accuracy alpha must be in (0, 1), got {a!r}")
        mantissa = 2.0 * a / (1.0 - a)
        gamma = 1.0 + mantissa
        multiplier = math.log(2) / math.log1p(mantissa)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "multiplier", multiplier)
        # keys are stored as int32 in the byte encoding: keep them in range
        span = (2**31 - 2) / multiplier  # in powers of two
        lo = (
            sys.float_info.min * gamma
            if span > 1021
            else max(sys.float_info.min * gamma, 2.0**-span)
        )
        hi = (
            sys.float_info.max / gamma
            if span > 1023
            else min(sys.float_info.max / gamma, 2.0**span)
        )
        object.__setattr__(self, "min_indexable", lo)
        object.__setattr__(self, "max_indexable", hi)

    def key(self, value: float) -> int:
        """Key of one positive value (``min_indexable <= value``)."""
        return math.ceil(math.log(value) / math.log(2) * self.multiplier)

    def keys(self, values: NDArray[np.float64]) -> NDArray[np.int64]:
        """Keys of an array of positive values, without a Python loop.

        numpy's vectorised ``log`` may differ from ``math.log`` in the last
        bit, which matters only for a value within rounding of a bucket edge:
        those few (``|k - round(k)|`` below 1e-10 relative) are recomputed
        with ``math.log``, so every key equals :meth:`key` and ddsketch's.
        """
        k = np.log(values) * (self.multiplier / math.log(2))
        keys = np.ceil(k)
        near = np.abs(k - np.rint(k)) <= 1e-10 * (np.abs(k) + 1.0)
        if near.any():
            idx = np.flatnonzero(near)
            keys[idx] = [self.key(float(v)) for v in values[idx]]
        return keys.astype(np.int64)

    def value(self, key: int) -> float:
        """Representative value of a key: within ``alpha`` of every value in it."""
        return float(2.0 ** (key / self.multiplier) * (2.0 / (1.0 + self.gamma)))

    def values(self, keys: NDArray[np.int64]) -> NDArray[np.float64]:
        """Representative values of an array of keys."""
        out: NDArray[np.float64] = np.exp2(keys / self.multiplier) * (2.0 / (1.0 + self.gamma))
        return out

    def lower_bound(self, key: int) -> float:
        """Smallest value that maps to ``key`` (bucket ``(γ^(k-1), γ^k]``)."""
        return float(2.0 ** ((key - 1) / self.multiplier))

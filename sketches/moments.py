"""Moments: count, missing, mean, variance, min and max, mergeable.

Mean and variance are kept as ``(n, mean, M2)`` and merged with the parallel
update of Chan, Golub and LeVeque (1979), which stays accurate for data with a
large offset and small spread (values of 10^9 ± 1 keep a variance accurate to
about 1e-6 relative, where the textbook ``Σx² - (Σx)²/n`` loses every digit).
Merge is commutative, and associative up to floating-point rounding.

Example:
    >>> import numpy as np
    >>> m = Moments()
    >>> m.update_many(np.array([1.0, 2.0, 3.0, np.nan]))
    >>> m.count, m.missing, m.mean, m.variance
    (3, 1, 2.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sketches.codec import Reader, Writer, check, field_float, field_int

__all__ = ["Moments"]

_KIND = 5
_VERSION = 1


class Moments:
    """Count, missing, mean, variance (Chan's merge), min, max."""

    __slots__ = ("count", "m2", "max", "mean", "min", "missing", "rejected")

    def __init__(self) -> None:
        self.count = 0
        self.missing = 0
        self.rejected = 0
        self.mean = math.nan
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    @property
    def is_empty(self) -> bool:
        return self.count == 0

    @property
    def variance(self) -> float:
        """Sample variance (``ddof=1``); NaN below two values."""
        return self.m2 / (self.count - 1) if self.count > 1 else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    def update(self, value: float) -> None:
        self.update_many(np.array([value], dtype=np.float64))

    def update_many(self, values: ArrayLike) -> None:
        """Fold an array in: NaN → missing, ±inf → rejected (both counted)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if x.size == 0:
            return
        finite = np.isfinite(x)
        if not finite.all():
            n_nan = int(np.isnan(x).sum())
            self.missing += n_nan
            self.rejected += int(x.size - finite.sum()) - n_nan
            x = x[finite]
            if x.size == 0:
                return
        mean = float(x.mean())
        d = x - mean
        self._combine(int(x.size), mean, float(np.dot(d, d)), float(x.min()), float(x.max()))

    def _combine(self, n: int, mean: float, m2: float, lo: float, hi: float) -> None:
        if n == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = n, mean, m2
        else:
            total = self.count + n
            delta = mean - self.mean
            self.mean += delta * n / total
            self.m2 += m2 + delta * delta * self.count * n / total
            self.count = total
        self.min = min(self.min, lo)
        self.max = max(self.max, hi)

    def merge(self, other: Moments) -> None:
        """Add ``other`` into these moments; ``other`` is left untouched."""
        if not isinstance(other, Moments):
            raise TypeError(f"cannot merge {type(other).__name__} into Moments")
        self.missing += other.missing
        self.rejected += other.rejected
        self._combine(other.count, other.mean, other.m2, other.min, other.max)

    def copy(self) -> Moments:
        out = Moments()
        out.merge(self)
        return out

    # -- encodings -------------------------------------------------------
    def to_fields(self) -> dict[str, int | float]:
        """Flat mapping ``n, na, ni, mu, m2, lo, hi``. ``na``/``ni`` add, ``lo``/``hi``
        take min/max, and ``n``/``mu``/``m2`` merge together by Chan's update
        (:meth:`merge`), not field by field."""
        out: dict[str, int | float] = {"n": self.count, "na": self.missing, "ni": self.rejected}
        if self.count:
            out.update(mu=self.mean, m2=self.m2, lo=self.min, hi=self.max)
        return out

    @staticmethod
    def field_op(name: str) -> str:
        """``"add"``, ``"min"``, ``"max"``, or ``"chan"`` for ``n``/``mu``/``m2``."""
        return {"lo": "min", "hi": "max", "n": "chan", "mu": "chan", "m2": "chan"}.get(name, "add")

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any]) -> Moments:
        name = "Moments"
        f = {k.decode() if isinstance(k, bytes) else str(k): v for k, v in fields.items()}
        m = cls()
        m.count = field_int(f, "n", name, 0)
        m.missing = field_int(f, "na", name, 0)
        m.rejected = field_int(f, "ni", name, 0)
        check(min(m.count, m.missing, m.rejected) >= 0, name, "negative count")
        if m.count:
            m.mean = field_float(f, "mu", name)
            m.m2 = field_float(f, "m2", name)
            m.min = field_float(f, "lo", name)
            m.max = field_float(f, "hi", name)
            check(m.m2 >= 0 and m.min <= m.max, name, "inconsistent moments")
        return m

    def to_bytes(self) -> bytes:
        """Compact versioned encoding (kind 5)."""
        w = Writer(_KIND, _VERSION)
        w.pack(
            "qqqdddd",
            self.count,
            self.missing,
            self.rejected,
            self.mean,
            self.m2,
            self.min,
            self.max,
        )
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Moments:
        r = Reader(data, _KIND, "Moments", (_VERSION,))
        m = cls()
        m.count, m.missing, m.rejected = r.read_int(), r.read_int(), r.read_int()
        m.mean, m.m2, m.min, m.max = r.read_float(), r.read_float(), r.read_float(), r.read_float()
        r.done()
        check(min(m.count, m.missing, m.rejected) >= 0, r.name, "negative count")
        if m.count:
            check(m.m2 >= 0 and m.min <= m.max, r.name, "inconsistent moments")
        else:
            check(m.min == math.inf and m.max == -math.inf, r.name, "min/max of empty moments")
        return m

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Moments):
            return NotImplemented
        if (self.count, self.missing, self.rejected, self.min, self.max) != (
            other.count,
            other.missing,
            other.rejected,
            other.min,
            other.max,
        ):
            return False
        if self.count == 0:
            return True
        return math.isclose(self.mean, other.mean, rel_tol=1e-9, abs_tol=1e-12) and math.isclose(
            self.m2, other.m2, rel_tol=1e-9, abs_tol=1e-9
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Moments(count={self.count}, missing={self.missing}, mean={self.mean:.6g})"

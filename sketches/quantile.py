"""Relative-error quantile sketch (DDSketch with a logarithmic mapping).

Guarantee: for every ``q``, ``quantile(q)`` is within ``alpha · |x_q|`` of
``x_q``, the sample value of rank ``floor(q · (n - 1))`` (numpy's
``method="lower"``), as long as no bucket it depends on was collapsed (see
below). Default ``alpha = 0.01``: a quantile is within 1 % of the true value.

* Positive, negative and zero values (``|x| < min_indexable`` counts as zero).
* ``NaN`` is counted as missing; ``±inf`` is rejected and counted, never
  folded into the statistics.
* Size: one bucket per factor ``γ = (1 + α)/(1 - α)`` of range, so about
  ``ln(max/min) / 0.02`` buckets at 1 %; 10^6 lognormal(0, 1) values use about
  550 buckets and encode to about 1.2 kB.
* Bounded: at most ``max_buckets`` (default 2,048) buckets per sign. When more
  would be needed the lowest keys are folded into the lowest kept one, so the
  guarantee holds for the largest magnitudes, which cover a range of
  ``γ^max_buckets`` ≈ 10^17 at the defaults.

``merge`` is bucket-wise addition: commutative, associative, it leaves its
argument untouched, and ``merge`` of sketches of ``a`` and ``b`` equals the
sketch of ``a + b`` (the float ``sum`` up to rounding).

Example:
    >>> import numpy as np
    >>> s = QuantileSketch(alpha=0.01)
    >>> s.update_many(np.arange(1.0, 1001.0))
    >>> abs(s.quantile(0.5) - 500.0) <= 0.01 * 500.0
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sketches.codec import Reader, Writer, check, field_float, field_int, is_nonneg
from sketches.exceptions import DecodeError, IncompatibleSketchError
from sketches.mapping import LogarithmicMapping
from sketches.store import DenseStore

__all__ = ["QuantileSketch"]

_KIND = 1
_VERSION = 1
_MAX_BUCKETS_LIMIT = 1 << 20


class QuantileSketch:
    """Mergeable quantile sketch with relative accuracy ``alpha``."""

    __slots__ = (
        "mapping",
        "max",
        "max_buckets",
        "min",
        "missing",
        "negative",
        "positive",
        "rejected",
        "sum",
        "zero_count",
    )

    def __init__(self, alpha: float = 0.01, max_buckets: int = 2048) -> None:
        self.mapping = LogarithmicMapping(alpha)
        if not (isinstance(max_buckets, int) and 2 <= max_buckets <= _MAX_BUCKETS_LIMIT):
            raise ValueError(
                f"max_buckets must be an integer in [2, {_MAX_BUCKETS_LIMIT}], got {max_buckets!r}"
            )
        self.max_buckets = max_buckets
        self.positive = DenseStore(max_buckets)
        self.negative = DenseStore(max_buckets)
        self.zero_count = 0
        self.missing = 0
        self.rejected = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    # -- parameters and counts -------------------------------------------
    @property
    def alpha(self) -> float:
        return self.mapping.alpha

    @property
    def count(self) -> int:
        """Number of finite values seen (missing and rejected excluded)."""
        return self.zero_count + self.positive.total + self.negative.total

    @property
    def is_empty(self) -> bool:
        return self.count == 0

    @property
    def mean(self) -> float:
        n = self.count
        return self.sum / n if n else math.nan

    @property
    def num_buckets(self) -> int:
        return int(np.count_nonzero(self.positive.counts) + np.count_nonzero(self.negative.counts))

    # -- updates ---------------------------------------------------------
    def update(self, value: float) -> None:
        """Add one value (``NaN`` → missing, ``±inf`` → rejected)."""
        self.update_many(np.array([value], dtype=np.float64))

    def update_many(self, values: ArrayLike) -> None:
        """Add every value of an array, vectorised (no per-value Python loop)."""
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
        lo = float(x.min())
        hi = float(x.max())
        m = self.mapping
        if lo >= m.min_indexable and hi <= m.max_indexable:
            self.positive.add_keys(m.keys(x))
        else:
            too_big = np.abs(x) > m.max_indexable
            if too_big.any():
                self.rejected += int(too_big.sum())
                x = x[~too_big]
                if x.size == 0:
                    return
                lo, hi = float(x.min()), float(x.max())
            pos = x >= m.min_indexable
            neg = x <= -m.min_indexable
            self.positive.add_keys(m.keys(x[pos]))
            self.negative.add_keys(m.keys(-x[neg]))
            self.zero_count += int(x.size - pos.sum() - neg.sum())
        self.sum += float(x.sum())
        self.min = min(self.min, lo)
        self.max = max(self.max, hi)

    def merge(self, other: QuantileSketch) -> None:
        """Add ``other`` into this sketch; ``other`` is left untouched."""
        if not isinstance(other, QuantileSketch):
            raise TypeError(f"cannot merge {type(other).__name__} into QuantileSketch")
        if (self.alpha, self.max_buckets) != (other.alpha, other.max_buckets):
            raise IncompatibleSketchError(
                "cannot merge quantile sketches with different parameters: "
                f"alpha={self.alpha}, max_buckets={self.max_buckets} vs "
                f"alpha={other.alpha}, max_buckets={other.max_buckets}"
            )
        self.positive.merge(other.positive)
        self.negative.merge(other.negative)
        self.zero_count += other.zero_count
        self.missing += other.missing
        self.rejected += other.rejected
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def copy(self) -> QuantileSketch:
        out = QuantileSketch(self.alpha, self.max_buckets)
        out.merge(self)
        return out

    # -- queries ---------------------------------------------------------
    def _sorted_buckets(self) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Representative values ascending and their counts."""
        nk, nc = self.negative.nonzero()
        pk, pc = self.positive.nonzero()
        values = np.concatenate(
            [-self.mapping.values(nk[::-1]), np.zeros(1), self.mapping.values(pk)]
        )
        counts = np.concatenate([nc[::-1], np.array([self.zero_count], np.int64), pc])
        return values, counts

    def quantiles(self, qs: ArrayLike) -> NDArray[np.float64]:
        """Values at quantiles ``qs`` (each in [0, 1]); NaN for an empty sketch."""
        q = np.asarray(qs, dtype=np.float64)
        if np.any(~((q >= 0.0) & (q <= 1.0))):
            raise ValueError(f"quantiles must be in [0, 1], got {qs!r}")
        n = self.count
        if n == 0:
            return np.full(q.shape, np.nan)
        values, counts = self._sorted_buckets()
        cum = np.cumsum(counts)
        idx = np.searchsorted(cum, q * (n - 1), side="right")
        out: NDArray[np.float64] = np.clip(values[idx], self.min, self.max)
        return out

    def quantile(self, q: float) -> float:
        """Value at quantile ``q`` within ``alpha`` relative error; NaN if empty."""
        return float(self.quantiles(np.array([q]))[0])

    def cdf(self, x: float) -> float:
        """Share of values ``<= x``; off by at most the count of ``x``'s bucket.

        NaN for an empty sketch.
        """
        n = self.count
        if n == 0 or math.isnan(x):
            return math.nan
        if x < self.min:
            return 0.0
        if x >= self.max:
            return 1.0
        values, counts = self._sorted_buckets()
        return float(counts[: np.searchsorted(values, x, side="right")].sum() / n)

    def rank(self, x: float) -> float:
        """Alias of :meth:`cdf` (the Apache DataSketches name)."""
        return self.cdf(x)

    # -- encodings -------------------------------------------------------
    def to_fields(self) -> dict[str, int | float]:
        """Flat mapping for a Redis hash: ``p<key>``/``m<key>`` hold positive and
        negative bucket counts, ``z`` zeros, ``na`` missing, ``ni`` rejected,
        ``s`` the sum, ``lo``/``hi`` min and max; ``a``/``b`` the parameters.
        See :meth:`field_op` for how each field merges."""
        out: dict[str, int | float] = {"a": self.alpha, "b": self.max_buckets}
        out.update(z=self.zero_count, na=self.missing, ni=self.rejected, s=self.sum)
        if not self.is_empty:
            out.update(lo=self.min, hi=self.max)
        for prefix, store in (("p", self.positive), ("m", self.negative)):
            keys, counts = store.nonzero()
            out.update({f"{prefix}{k}": int(c) for k, c in zip(keys, counts, strict=True)})
        return out

    @staticmethod
    def field_op(name: str) -> str:
        """How a flat field merges: ``"add"``, ``"min"``, ``"max"`` or ``"const"``."""
        return {"a": "const", "b": "const", "lo": "min", "hi": "max"}.get(name, "add")

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> QuantileSketch:
        """Inverse of :meth:`to_fields`; accepts Redis' ``bytes``/``str`` values."""
        name = "QuantileSketch"
        f = {k.decode() if isinstance(k, bytes) else str(k): v for k, v in fields.items()}
        try:
            sk = cls(field_float(f, "a", name), field_int(f, "b", name))
        except ValueError as exc:
            if isinstance(exc, DecodeError):
                raise
            raise DecodeError(f"{name}: bad parameters: {exc}") from exc
        sk.zero_count = field_int(f, "z", name, 0)
        sk.missing = field_int(f, "na", name, 0)
        sk.rejected = field_int(f, "ni", name, 0)
        sk.sum = field_float(f, "s", name, 0.0)
        for prefix, store in (("p", sk.positive), ("m", sk.negative)):
            items = []
            for k in f:
                if k[:1] == prefix and k[1:].lstrip("-").isdecimal():
                    items.append((int(k[1:]), field_int(f, k, name)))
            if items:
                keys = np.array([k for k, _ in items], dtype=np.int64)
                counts = np.array([c for _, c in items], dtype=np.int64)
                check(is_nonneg(counts), name, "negative bucket count")
                lo = int(keys.min())
                dense = np.zeros(int(keys.max()) - lo + 1, dtype=np.int64)
                np.add.at(dense, keys - lo, counts)
                store.add_counts(lo, dense)
        check(min(sk.zero_count, sk.missing, sk.rejected) >= 0, name, "negative count")
        if not sk.is_empty:
            sk.min = field_float(f, "lo", name)
            sk.max = field_float(f, "hi", name)
        return sk

    def to_bytes(self) -> bytes:
        """Compact versioned encoding (kind 1, version 1)."""
        w = Writer(_KIND, _VERSION)
        w.pack("dI", self.alpha, self.max_buckets)
        w.pack("qqq", self.zero_count, self.missing, self.rejected)
        w.pack("ddd", self.sum, self.min, self.max)
        for store in (self.positive, self.negative):
            w.pack("i", store.offset)
            w.counts(store.counts)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> QuantileSketch:
        """Decode :meth:`to_bytes`; raises :class:`DecodeError` on bad input."""
        name = "QuantileSketch"
        r = Reader(data, _KIND, name, (_VERSION,))
        alpha = r.read_float()
        max_buckets = r.read_int("I")
        check(0.0 < alpha < 1.0, name, f"bad alpha {alpha!r}")
        check(2 <= max_buckets <= _MAX_BUCKETS_LIMIT, name, f"bad max_buckets {max_buckets}")
        sk = cls(alpha, max_buckets)
        sk.zero_count, sk.missing, sk.rejected = (r.read_int() for _ in range(3))
        sk.sum, sk.min, sk.max = (r.read_float() for _ in range(3))
        check(min(sk.zero_count, sk.missing, sk.rejected) >= 0, name, "negative count")
        for store in (sk.positive, sk.negative):
            store.offset = r.read_int("i")
            store.counts = r.counts(max_buckets)
            check(is_nonneg(store.counts), name, "negative bucket count")
        r.done()
        if sk.is_empty:
            check(sk.min == math.inf and sk.max == -math.inf, name, "min/max of an empty sketch")
        else:
            check(sk.min <= sk.max, name, f"min {sk.min} > max {sk.max}")
        return sk

    # -- comparison ------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        return (
            self.alpha == other.alpha
            and self.max_buckets == other.max_buckets
            and self.positive == other.positive
            and self.negative == other.negative
            and (self.zero_count, self.missing, self.rejected)
            == (other.zero_count, other.missing, other.rejected)
            and (self.min, self.max) == (other.min, other.max)
            and math.isclose(self.sum, other.sum, rel_tol=1e-9, abs_tol=1e-9)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"QuantileSketch(alpha={self.alpha}, count={self.count}, missing={self.missing}, "
            f"buckets={self.num_buckets})"
        )

"""Reference-binned histogram: the sketch drift is computed on.

Counts values into the bins of a :class:`~sketches.binning.Binning` taken from
the reference (training) sample, keeping for every bin its count and the sum of
``x - shift`` over its values, plus a missing-value bin, the count of rejected
``±inf``, the total of ``(x - shift)^2``, and min/max. Counts, sums and the
squared total are additive, so ``merge`` is addition and a Redis hash can hold
them as ``HINCRBY``/``HINCRBYFLOAT`` increments; only ``lo``/``hi`` merge by
min/max.

State is bounded by the bin count (default about 100 bins, 2 outer bins and a
missing bin), never by the number of values. Statistics computed from two
histograms on the same bins are exact for bin-based measures (PSI, KL, JS,
Hellinger, chi-square) and bounded for the others (see :mod:`sketches.transport`).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = ReferenceHistogram.from_reference(rng.normal(size=10_000))
    >>> cur = ref.empty_like()
    >>> cur.update_many(rng.normal(size=5_000))
    >>> cur.count, ref.binning.num_bins
    (5000, 102)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sketches.binning import Binning
from sketches.codec import Reader, Writer, check, field_float, field_int, is_nonneg
from sketches.exceptions import IncompatibleSketchError

__all__ = ["ReferenceHistogram"]

_KIND = 3
_VERSION = 1


class ReferenceHistogram:
    """Per-bin counts and sums on reference-derived bins, plus a missing bin."""

    __slots__ = ("binning", "counts", "max", "min", "missing", "rejected", "sums", "sumsq")

    def __init__(self, binning: Binning) -> None:
        self.binning = binning
        nb = binning.num_bins
        self.counts: NDArray[np.int64] = np.zeros(nb, dtype=np.int64)
        self.sums: NDArray[np.float64] = np.zeros(nb, dtype=np.float64)
        self.sumsq = 0.0
        self.missing = 0
        self.rejected = 0
        self.min = math.inf
        self.max = -math.inf

    @classmethod
    def from_reference(
        cls, values: ArrayLike, bins: int = 100, max_discrete: int | None = None
    ) -> ReferenceHistogram:
        """Bins from ``values`` (see :meth:`Binning.from_reference`), then counts them."""
        x = np.asarray(values, dtype=np.float64).ravel()
        hist = cls(Binning.from_reference(x, bins=bins, max_discrete=max_discrete))
        hist.update_many(x)
        return hist

    def empty_like(self) -> ReferenceHistogram:
        """An empty histogram on the same bins."""
        return ReferenceHistogram(self.binning)

    # -- counts ----------------------------------------------------------
    @property
    def count(self) -> int:
        """Present (finite) values counted; missing and rejected excluded."""
        return int(self.counts.sum())

    @property
    def total(self) -> int:
        """Present plus missing values: the denominator of bin proportions."""
        return self.count + self.missing

    @property
    def is_empty(self) -> bool:
        return self.total == 0

    @property
    def mean(self) -> float:
        n = self.count
        return self.binning.shift + float(self.sums.sum()) / n if n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance (``ddof=1``) from shifted sums; NaN below two values."""
        n = self.count
        if n < 2:
            return math.nan
        s1 = float(self.sums.sum())
        return max(self.sumsq - s1 * s1 / n, 0.0) / (n - 1)

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    def bin_counts(self) -> NDArray[np.int64]:
        """Counts of every value bin followed by the missing bin."""
        return np.append(self.counts, self.missing)

    def bin_means(self) -> NDArray[np.float64]:
        """Mean value in each value bin (NaN where empty)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            out: NDArray[np.float64] = self.binning.shift + self.sums / self.counts
        return out

    # -- updates ---------------------------------------------------------
    def update(self, value: float) -> None:
        self.update_many(np.array([value], dtype=np.float64))

    def update_many(self, values: ArrayLike) -> None:
        """Count an array of values, vectorised. NaN → missing, ±inf → rejected."""
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
        nb = self.binning.num_bins
        idx = self.binning.index(x)
        self.counts += np.bincount(idx, minlength=nb)
        xs = x - self.binning.shift
        self.sums += np.bincount(idx, weights=xs, minlength=nb)
        self.sumsq += float(np.dot(xs, xs))
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))

    def merge(self, other: ReferenceHistogram) -> None:
        """Add ``other`` into this histogram; ``other`` is left untouched."""
        if not isinstance(other, ReferenceHistogram):
            raise TypeError(f"cannot merge {type(other).__name__} into ReferenceHistogram")
        self.check_same_bins(other)
        self.counts += other.counts
        self.sums += other.sums
        self.sumsq += other.sumsq
        self.missing += other.missing
        self.rejected += other.rejected
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def check_same_bins(self, other: ReferenceHistogram) -> None:
        """Raise :class:`IncompatibleSketchError` unless both use the same bins."""
        if self.binning is not other.binning and self.binning != other.binning:
            raise IncompatibleSketchError(
                f"histograms use different bins: {self.binning!r} vs {other.binning!r}"
            )

    def copy(self) -> ReferenceHistogram:
        out = self.empty_like()
        out.merge(self)
        return out

    # -- encodings -------------------------------------------------------
    def to_fields(self) -> dict[str, int | float]:
        """Flat mapping for a Redis hash (the bins themselves are kept apart):
        ``c<i>``/``s<i>`` count and shifted sum of bin ``i`` (non-empty bins
        only), ``na`` missing, ``ni`` rejected, ``q`` the shifted sum of squares,
        ``lo``/``hi`` min and max. See :meth:`field_op`."""
        out: dict[str, int | float] = {"na": self.missing, "ni": self.rejected, "q": self.sumsq}
        if self.count:
            out.update(lo=self.min, hi=self.max)
        for i in np.flatnonzero(self.counts):
            out[f"c{i}"] = int(self.counts[i])
            out[f"s{i}"] = float(self.sums[i])
        return out

    @staticmethod
    def field_op(name: str) -> str:
        """How a flat field merges: ``"add"``, ``"min"`` or ``"max"``."""
        return {"lo": "min", "hi": "max"}.get(name, "add")

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any], binning: Binning) -> ReferenceHistogram:
        """Inverse of :meth:`to_fields` on the given bins."""
        name = "ReferenceHistogram"
        f = {k.decode() if isinstance(k, bytes) else str(k): v for k, v in fields.items()}
        h = cls(binning)
        h.missing = field_int(f, "na", name, 0)
        h.rejected = field_int(f, "ni", name, 0)
        h.sumsq = field_float(f, "q", name, 0.0)
        nb = binning.num_bins
        for key in f:
            if key[:1] in ("c", "s") and key[1:].isdecimal():
                i = int(key[1:])
                if i >= nb:  # the message is built only on failure (it hashes the bins)
                    check(False, name, f"field {key!r} beyond the {nb} bins of {binning!r}")
                if key[0] == "c":
                    h.counts[i] = field_int(f, key, name)
                else:
                    h.sums[i] = field_float(f, key, name)
        check(is_nonneg(h.counts) and min(h.missing, h.rejected) >= 0, name, "negative count")
        if h.count:
            h.min = field_float(f, "lo", name)
            h.max = field_float(f, "hi", name)
        return h

    def to_bytes(self) -> bytes:
        """Compact versioned encoding (kind 3), bins included."""
        w = Writer(_KIND, _VERSION)
        self.binning.write(w)
        w.pack("qqddd", self.missing, self.rejected, self.sumsq, self.min, self.max)
        w.counts(self.counts)
        w.floats(self.sums)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceHistogram:
        """Decode :meth:`to_bytes`; raises :class:`~sketches.DecodeError` on bad input."""
        r = Reader(data, _KIND, "ReferenceHistogram", (_VERSION,))
        h = cls(Binning.read(r))
        h.missing, h.rejected = r.read_int(), r.read_int()
        h.sumsq, h.min, h.max = r.read_float(), r.read_float(), r.read_float()
        nb = h.binning.num_bins
        counts = r.counts(nb)
        sums = r.floats(nb)
        r.done()
        check(counts.size == nb and sums.size == nb, r.name, f"expected {nb} bins")
        check(is_nonneg(counts) and min(h.missing, h.rejected) >= 0, r.name, "negative count")
        h.counts, h.sums = counts, sums
        if h.count:
            check(h.min <= h.max, r.name, f"min {h.min} > max {h.max}")
        return h

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReferenceHistogram):
            return NotImplemented
        return (
            self.binning == other.binning
            and np.array_equal(self.counts, other.counts)
            and (self.missing, self.rejected, self.min, self.max)
            == (other.missing, other.rejected, other.min, other.max)
            and bool(np.allclose(self.sums, other.sums, rtol=1e-9, atol=1e-9))
            and math.isclose(self.sumsq, other.sumsq, rel_tol=1e-9, abs_tol=1e-9)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"ReferenceHistogram(count={self.count}, missing={self.missing}, bins={self.binning!r})"
        )

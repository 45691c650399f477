"""Regression quality of one window, mergeable by adding one float64 vector.

:class:`RegressionQuality` keeps sums over labelled predictions — the count,
``Σe``, ``Σ|e|``, ``Σe²``, ``Σy'``, ``Σy'²`` and ``Σ|e| / max(|y|, ε)``, with
``e = y_pred - y_true`` (the signed error: positive when the model predicts too
high), ``y' = y_true - shift`` and ``ε = 2.2e-16`` — and a count per
:class:`~sketches.logbuckets.SignedLogBuckets` bucket of ``e``. From them:

* MAE, MSE, RMSE, MAPE and the mean error equal scikit-learn's
  ``mean_absolute_error``, ``mean_squared_error``, ``root_mean_squared_error``
  and ``mean_absolute_percentage_error`` up to float rounding (about 10^-12
  relative).
* R² is ``1 - Σe² / (Σy'² - (Σy')² / n)``, ``r2_score`` up to rounding that grows
  with ``(mean(y) - shift)² / var(y)``: set ``shift`` near the mean of y (say the
  baseline's) for targets with a large offset. When the spread of y is below 10^-9
  of ``Σy'²`` — a constant target included — y counts as constant and R² is 1.0
  for perfect predictions and 0.0 otherwise, ``r2_score(force_finite=True)``.
  ``None`` below two rows.
* Error quantiles (``p50``, ``p90``, ``p95``, ``p99``) of ``e`` and of ``|e|`` are
  within ``alpha · |x| + min_error`` of numpy's ``quantile(..., method="lower")``
  (1 % at the defaults), ``None`` beyond ``max_error`` (10^9).

Rows where either value is NaN are counted as ``missing``, ±inf as ``rejected``;
neither enters a statistic. The vector holds 3,468 values at the defaults
(:meth:`RegressionQuality.layout`).

Example:
    >>> r = RegressionQuality()
    >>> r.update_many([3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0])
    >>> m = r.metrics()
    >>> m["mae"], m["mse"], round(m["r2"], 4)
    (0.5, 0.375, 0.9486)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sketches.codec import Reader, Writer, check, check_state_vector, state_vector
from sketches.exceptions import DecodeError, IncompatibleSketchError
from sketches.logbuckets import SignedLogBuckets

__all__ = ["QUANTILES", "RegressionQuality"]

_KIND = 7
_VERSION = 1
QUANTILES = (0.5, 0.9, 0.95, 0.99)
MAPE_EPS = float(np.finfo(np.float64).eps)
_CONSTANT = 1e-9  # Σ(y' - mean)² below this share of Σy'² means a constant target

_COUNTS = ("missing", "rejected", "n")
_SUMS = ("e", "abs_e", "e2", "y", "y2", "ape")

Array = NDArray[np.float64]


class RegressionQuality:
    """Error sums and a fixed-layout error histogram of one window."""

    __slots__ = ("buckets", "shift", "vector")

    def __init__(
        self,
        shift: float = 0.0,
        *,
        alpha: float = 0.01,
        min_error: float = 1e-6,
        max_error: float = 1e9,
    ) -> None:
        if not (isinstance(shift, float | int) and math.isfinite(shift)):
            raise ValueError(f"shift must be a finite number, got {shift!r}")
        self.shift = float(shift)
        self.buckets = SignedLogBuckets(alpha, min_error, max_error)
        self.vector: Array = np.zeros(len(_COUNTS) + len(_SUMS) + self.buckets.size)

    # -- configuration -----------------------------------------------------
    def params(self) -> dict[str, float]:
        b = self.buckets
        return {
            "shift": self.shift,
            "alpha": float(b.alpha),
            "min_error": float(b.min_value),
            "max_error": float(b.max_value),
        }

    def layout(self) -> dict[str, tuple[int, tuple[int, ...]]]:
        """Offset and shape of every part of :meth:`to_vector`: counts ``missing``,
        ``rejected``, ``n``; sums ``e``, ``abs_e``, ``e2``, ``y``, ``y2`` (of
        ``y - shift``), ``ape`` (``|e| / max(|y|, ε)``); then ``buckets``, the
        error counts in the slot order of :class:`SignedLogBuckets`."""
        out: dict[str, tuple[int, tuple[int, ...]]] = {
            name: (i, (1,)) for i, name in enumerate(_COUNTS + _SUMS)
        }
        out["buckets"] = (len(_COUNTS) + len(_SUMS), (self.buckets.size,))
        return out

    def _value(self, name: str) -> float:
        return float(self.vector[(_COUNTS + _SUMS).index(name)])

    @property
    def counts(self) -> Array:
        """The error-bucket counts (a view)."""
        return self.vector[len(_COUNTS) + len(_SUMS) :]

    def empty_like(self) -> RegressionQuality:
        p = self.params()
        return RegressionQuality(
            p["shift"], alpha=p["alpha"], min_error=p["min_error"], max_error=p["max_error"]
        )

    def copy(self) -> RegressionQuality:
        out = self.empty_like()
        out.vector[:] = self.vector
        return out

    @property
    def count(self) -> int:
        """Rows counted (both values finite)."""
        return round(self._value("n"))

    @property
    def is_empty(self) -> bool:
        return self.count == 0 and self._value("missing") == 0 and self._value("rejected") == 0

    # -- updates -----------------------------------------------------------
    def update(self, y_true: float, y_pred: float) -> None:
        self.update_many(np.array([y_true], dtype=np.float64), np.array([y_pred], dtype=np.float64))

    def update_many(self, y_true: ArrayLike, y_pred: ArrayLike) -> None:
        """Add labelled predictions, vectorised; NaN → missing, ±inf → rejected.

        Raises:
            ValueError: if the lengths differ (the state is then unchanged).
        """
        y = np.asarray(y_true, dtype=np.float64).ravel()
        p = np.asarray(y_pred, dtype=np.float64).ravel()
        if y.size != p.size:
            raise ValueError(f"y_true has {y.size} values but y_pred has {p.size}")
        if y.size == 0:
            return
        v = self.vector
        with np.errstate(invalid="ignore", over="ignore"):
            e = p - y
        finite = np.isfinite(e)
        if not finite.all():
            nan = np.isnan(y) | np.isnan(p)
            v[0] += np.count_nonzero(nan)
            v[1] += np.count_nonzero(~finite & ~nan)  # ±inf, or inf - inf
            y, e = y[finite], e[finite]
            if y.size == 0:
                return
        a = np.abs(e)
        ys = y - self.shift
        v[2] += y.size
        v[3] += e.sum()
        v[4] += a.sum()
        v[5] += np.dot(e, e)
        v[6] += ys.sum()
        v[7] += np.dot(ys, ys)
        v[8] += (a / np.maximum(np.abs(y), MAPE_EPS)).sum()
        self.counts[...] += np.bincount(self.buckets.index(e), minlength=self.buckets.size)

    def merge(self, other: RegressionQuality) -> None:
        """Add ``other`` into this state; ``other`` is left untouched."""
        if not isinstance(other, RegressionQuality):
            raise TypeError(f"cannot merge {type(other).__name__} into RegressionQuality")
        if self.params() != other.params():
            raise IncompatibleSketchError(
                "cannot merge regression quality with different parameters: "
                f"{self.params()} vs {other.params()}"
            )
        self.vector += other.vector

    # -- metrics -----------------------------------------------------------
    def r2(self) -> float | None:
        """Coefficient of determination (see the module docstring); ``None`` below 2 rows."""
        n = self._value("n")
        if n < 2:
            return None
        sy, sy2, ss_res = self._value("y"), self._value("y2"), self._value("e2")
        ss_tot = sy2 - sy * sy / n
        if ss_tot <= _CONSTANT * sy2:
            return 1.0 if ss_res == 0 else 0.0
        return 1.0 - ss_res / ss_tot

    def quantiles(self, qs: ArrayLike, absolute: bool = False) -> list[float | None]:
        """Quantiles of the error ``e`` (of ``|e|`` with ``absolute``)."""
        return self.buckets.quantiles(self.counts, qs, absolute=absolute)

    def quantile(self, q: float, absolute: bool = False) -> float | None:
        return self.quantiles([q], absolute=absolute)[0]

    def metrics(self) -> dict[str, Any]:
        """Every metric as a plain dict; undefined values are ``None``.

        Keys: ``n``, ``missing``, ``rejected``, ``mean_error``, ``mae``, ``mse``,
        ``rmse``, ``r2``, ``mape``, ``error_quantiles`` and
        ``abs_error_quantiles`` (``p50``, ``p90``, ``p95``, ``p99``).
        """
        n = self._value("n")
        names = [f"p{round(q * 100)}" for q in QUANTILES]
        mse = self._value("e2") / n if n else None
        return {
            "n": round(n),
            "missing": round(self._value("missing")),
            "rejected": round(self._value("rejected")),
            "mean_error": self._value("e") / n if n else None,
            "mae": self._value("abs_e") / n if n else None,
            "mse": mse,
            "rmse": math.sqrt(mse) if mse is not None else None,
            "r2": self.r2(),
            "mape": self._value("ape") / n if n else None,
            "error_quantiles": dict(zip(names, self.quantiles(QUANTILES), strict=True)),
            "abs_error_quantiles": dict(
                zip(names, self.quantiles(QUANTILES, absolute=True), strict=True)
            ),
        }

    # -- vector and bytes --------------------------------------------------
    def to_vector(self) -> Array:
        """The whole state as one float64 vector (a copy); see :meth:`layout`."""
        return self.vector.copy()

    @classmethod
    def from_vector(
        cls,
        vector: ArrayLike | bytes,
        shift: float = 0.0,
        *,
        alpha: float = 0.01,
        min_error: float = 1e-6,
        max_error: float = 1e9,
    ) -> RegressionQuality:
        """State from :meth:`to_vector` (or its little-endian bytes) and the
        configuration; raises :class:`DecodeError` if the vector does not fit it."""
        r = cls(shift, alpha=alpha, min_error=min_error, max_error=max_error)
        r._load(state_vector(vector, "RegressionQuality"))
        return r

    def _load(self, v: Array) -> None:
        name = "RegressionQuality"
        counts = np.concatenate([v[: len(_COUNTS)], v[len(_COUNTS) + len(_SUMS) :]])
        check_state_vector(v, self.vector.size, counts, name)
        check(float(counts[3:].sum()) == v[2], name, "bucket counts do not add up to n")
        check(min(v[4], v[5], v[7], v[8]) >= 0, name, "negative sum of non-negative terms")
        self.vector = v.copy()

    def to_bytes(self) -> bytes:
        """Compact versioned encoding (kind 7): parameters, counts, sums, then the
        bucket counts from the first to the last non-empty one."""
        w = Writer(_KIND, _VERSION)
        w.pack("dddd", *self.params().values())
        head = len(_COUNTS) + len(_SUMS)
        w.counts(np.rint(self.vector[: len(_COUNTS)]).astype(np.int64))
        w.floats(self.vector[len(_COUNTS) : head])
        nz = np.flatnonzero(self.counts)
        lo = int(nz[0]) if nz.size else 0
        hi = int(nz[-1]) + 1 if nz.size else 0
        w.pack("I", lo)
        w.counts(np.rint(self.counts[lo:hi]).astype(np.int64))
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> RegressionQuality:
        """Decode :meth:`to_bytes`; raises :class:`DecodeError` on bad input."""
        name = "RegressionQuality"
        rd = Reader(data, _KIND, name, (_VERSION,))
        shift, alpha, lo_e, hi_e = (rd.read_float() for _ in range(4))
        try:
            r = cls(shift, alpha=alpha, min_error=lo_e, max_error=hi_e)
        except ValueError as exc:
            raise DecodeError(f"{name}: bad parameters: {exc}") from exc
        head = rd.counts(len(_COUNTS))
        sums = rd.floats(len(_SUMS))
        lo = rd.read_int("I")
        size = r.buckets.size
        span = rd.counts(size)
        rd.done()
        check(head.size == len(_COUNTS) and sums.size == len(_SUMS), name, "bad lengths")
        check(lo + span.size <= size, name, f"buckets beyond the {size} of the layout")
        v = np.zeros(r.vector.size)
        v[: len(_COUNTS)], v[len(_COUNTS) : len(_COUNTS) + len(_SUMS)] = head, sums
        start = len(_COUNTS) + len(_SUMS) + lo
        v[start : start + span.size] = span
        r._load(v)
        return r

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegressionQuality):
            return NotImplemented
        head = len(_COUNTS)
        sums = slice(head, head + len(_SUMS))
        return (
            self.params() == other.params()
            and bool(np.array_equal(self.vector[:head], other.vector[:head]))
            and bool(np.array_equal(self.counts, other.counts))
            and bool(np.allclose(self.vector[sums], other.vector[sums], rtol=1e-9, atol=1e-9))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RegressionQuality(n={self.count}, {self.params()})"

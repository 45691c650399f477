"""Bin boundaries taken from a reference sample, and a fast vectorised lookup.

A :class:`Binning` is a strictly increasing array of finite boundaries
``b_0 < … < b_K``. Bin ``0`` is ``(-inf, b_0)``, bin ``i`` is
``[b_{i-1}, b_i)`` and bin ``K + 1`` is ``[b_K, inf)``; the histograms keep
one more bin for missing values. Built from a reference sample:

* **Continuous data**: the boundaries are the reference's quantiles at
  ``0, 1/B, …, 1`` (default ``B = 100`` equal-mass bins), the last one moved
  just above the maximum, so the reference fills bins ``1..B`` and bins ``0``
  and ``K + 1`` hold only what falls outside the reference range.
* **Point masses** (ties): a value holding at least one bin's share of the
  reference gets a bin of its own, ``[v, nextafter(v))``, which holds exactly
  ``v``; quantile edges that tied on it are dropped. Zero-inflated and mixed
  data keep their resolution.
* **Discrete data** (at most ``max_discrete`` distinct values, default ``B``):
  every distinct value gets its own point bin, with gap bins between them, so
  counts are exact per value.

Lookup is a uniform grid over the boundaries: each grid cell knows how many
boundaries lie below it and the (at most two) that fall inside it, so most
values are placed with two comparisons; cells with more boundaries fall back to
binary search. The result always equals ``searchsorted(boundaries, x, "right")``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sketches.codec import Reader, Writer, check

__all__ = ["Binning"]

_KIND = 2
_VERSION = 1
_GRID = 8192
_MAX_BOUNDARIES = 1 << 16


@dataclass(frozen=True, eq=False)
class Binning:
    """Reference-derived bin boundaries (see the module docstring)."""

    boundaries: NDArray[np.float64]
    shift: float = 0.0
    _lut: tuple[float, float, NDArray[np.int32], NDArray[np.float64], NDArray[np.float64], bool] = (
        field(init=False, repr=False)
    )
    _edges: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]] = field(
        init=False, repr=False
    )

    def __post_init__(self) -> None:
        b = np.ascontiguousarray(self.boundaries, dtype=np.float64).ravel()
        if b.size > _MAX_BOUNDARIES:
            raise ValueError(f"at most {_MAX_BOUNDARIES} boundaries, got {b.size}")
        if b.size and not np.isfinite(b).all():
            raise ValueError("bin boundaries must be finite")
        if b.size > 1 and not (np.diff(b) > 0).all():
            raise ValueError("bin boundaries must be strictly increasing")
        if not math.isfinite(self.shift):
            raise ValueError(f"shift must be finite, got {self.shift!r}")
        b.setflags(write=False)
        object.__setattr__(self, "boundaries", b)
        object.__setattr__(self, "_lut", _build_lut(b))
        lo, hi = np.concatenate([[-np.inf], b]), np.concatenate([b, [np.inf]])
        point = np.isfinite(lo) & (np.nextafter(lo, np.inf) == hi)
        for arr in (lo, hi, point):
            arr.setflags(write=False)
        object.__setattr__(self, "_edges", (lo, hi, point))

    # -- construction ----------------------------------------------------
    @classmethod
    def from_reference(
        cls, values: ArrayLike, bins: int = 100, max_discrete: int | None = None
    ) -> Binning:
        """Boundaries from a reference sample; NaN and ±inf are ignored.

        Args:
            values: the reference sample.
            bins: number of equal-mass bins for continuous data.
            max_discrete: at most this many distinct values → one bin per value
                (default ``bins``).
        """
        if not (isinstance(bins, int) and 1 <= bins <= 10_000):
            raise ValueError(f"bins must be an integer in [1, 10000], got {bins!r}")
        max_discrete = bins if max_discrete is None else max_discrete
        x = np.asarray(values, dtype=np.float64).ravel()
        x = x[np.isfinite(x)]
        if x.size == 0:
            return cls(np.zeros(0), 0.0)
        uniq, counts = np.unique(x, return_counts=True)
        shift = float(np.median(x))
        up = np.nextafter(uniq, np.inf)
        if uniq.size <= max_discrete:
            return cls(np.unique(np.concatenate([uniq, up])), shift)
        atoms = counts >= x.size / bins
        edges = np.quantile(x, np.linspace(0.0, 1.0, bins + 1))
        edges[0] = uniq[0]
        edges[-1] = up[-1]
        # an atom's own bin replaces every quantile edge that tied on it
        edges = edges[~np.isin(edges, uniq[atoms])]
        bounds = np.concatenate([edges, uniq[atoms], up[atoms]])
        return cls(np.unique(bounds), shift)

    # -- queries ---------------------------------------------------------
    @property
    def num_bins(self) -> int:
        """Number of value bins (the two outer bins included, missing excluded)."""
        return int(self.boundaries.size) + 1

    @property
    def is_empty(self) -> bool:
        return self.boundaries.size == 0

    def bin_edges(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Lower and upper edge of every value bin (``-inf``/``inf`` outside)."""
        return self._edges[0], self._edges[1]

    def point_bins(self) -> NDArray[np.bool_]:
        """True for bins ``[v, nextafter(v))`` that hold exactly one value."""
        return self._edges[2]

    def index(self, values: NDArray[np.float64]) -> NDArray[np.intp]:
        """Bin of every finite value: ``searchsorted(boundaries, values, "right")``."""
        b = self.boundaries
        if b.size == 0:
            return np.zeros(values.shape, dtype=np.intp)
        origin, inv_width, base, t1, t2, has_multi = self._lut
        with np.errstate(over="ignore", invalid="ignore"):
            cell = ((values - origin) * inv_width).clip(0.0, _GRID + 1).astype(np.intp)
        out = base[cell] + (values >= t1[cell]) + (values >= t2[cell])
        if has_multi:
            slow = np.isnan(t2[cell])
            if slow.any():
                out[slow] = np.searchsorted(b, values[slow], side="right")
        return out.astype(np.intp, copy=False)

    @property
    def fingerprint(self) -> str:
        """Short hash naming these boundaries (used in error messages and keys)."""
        h = hashlib.blake2b(self.boundaries.tobytes(), digest_size=6)
        h.update(np.float64(self.shift).tobytes())
        return h.hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Binning):
            return NotImplemented
        return self.shift == other.shift and np.array_equal(self.boundaries, other.boundaries)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Binning({self.num_bins} bins, id={self.fingerprint})"

    # -- encoding --------------------------------------------------------
    def to_bytes(self) -> bytes:
        w = Writer(_KIND, _VERSION)
        w.pack("d", self.shift)
        w.floats(self.boundaries)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Binning:
        r = Reader(data, _KIND, "Binning", (_VERSION,))
        binning = cls.read(r)
        r.done()
        return binning

    @classmethod
    def read(cls, r: Reader) -> Binning:
        shift = r.read_float()
        b = r.floats(_MAX_BOUNDARIES)
        check(math.isfinite(shift), r.name, "non-finite shift")
        check(bool(np.isfinite(b).all()), r.name, "non-finite boundary")
        check(b.size < 2 or bool((np.diff(b) > 0).all()), r.name, "boundaries not increasing")
        return cls(b, shift)

    def write(self, w: Writer) -> None:
        w.pack("d", self.shift)
        w.floats(self.boundaries)


def _build_lut(
    b: NDArray[np.float64],
) -> tuple[float, float, NDArray[np.int32], NDArray[np.float64], NDArray[np.float64], bool]:
    """Grid cells over ``[b_0, b_K]``; see :meth:`Binning.index`.

    Cell ``c`` receives the values with ``c <= (x - origin) / width < c + 1``
    (clipped to ``0 .. GRID + 1``). Allowing for rounding in that arithmetic, its
    values lie in ``[origin + c·width - δ, origin + (c+1)·width + δ)``: ``base``
    counts the boundaries below that window, ``t1``/``t2`` are the first two
    inside it (``inf`` if none) and ``t2`` is NaN where more than two are.
    """
    if b.size == 0:
        empty = np.zeros(0)
        return 0.0, 0.0, np.zeros(0, np.int32), empty, empty, False
    lo, hi = float(b[0]), float(b[-1])
    width = (hi - lo) / _GRID if hi > lo else 1.0
    origin = lo - width
    cells = np.arange(_GRID + 2, dtype=np.float64)
    delta = 1e-9 * (hi - lo + width) + 8 * float(np.spacing(max(abs(lo), abs(hi), width)))
    win_lo = origin + cells * width - delta
    win_hi = origin + (cells + 1) * width + delta
    win_lo[0] = -np.inf
    win_hi[-1] = np.inf
    base = np.searchsorted(b, win_lo, side="left")
    n_in = np.searchsorted(b, win_hi, side="left") - base
    padded = np.concatenate([b, [np.inf, np.inf]])
    t1 = np.where(n_in >= 1, padded[base], np.inf)
    t2 = np.where(n_in >= 2, padded[np.minimum(base + 1, b.size + 1)], np.inf)
    multi = n_in > 2
    t2[multi] = np.nan
    return origin, 1.0 / width, base.astype(np.int32), t1, t2, bool(multi.any())

"""Dense bucket store with a bounded number of buckets.

Counts live in one contiguous ``int64`` array covering keys
``offset .. offset + len(counts) - 1``. When the keys seen span more than
``max_buckets``, the lowest keys are folded into the lowest key that is kept
(``max_key - max_buckets + 1``), as DDSketch's "collapsing lowest" store does.
For a store of positive magnitudes that keeps the relative-accuracy guarantee
for the largest values (the latency tail) and gives it up only for values more
than ``γ^max_buckets`` times smaller than the largest (about 10^17 at the
defaults α = 1 %, 2,048 buckets). Because the fold point only ever moves up
with the largest key, merging stores stays commutative and associative.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["DenseStore"]


class DenseStore:
    """Counts per integer key, at most ``max_buckets`` contiguous keys."""

    __slots__ = ("counts", "max_buckets", "offset")

    def __init__(self, max_buckets: int) -> None:
        if not (isinstance(max_buckets, int) and max_buckets >= 2):
            raise ValueError(f"max_buckets must be an integer >= 2, got {max_buckets!r}")
        self.max_buckets = max_buckets
        self.offset = 0
        self.counts: NDArray[np.int64] = np.zeros(0, dtype=np.int64)

    # -- queries ---------------------------------------------------------
    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def is_empty(self) -> bool:
        return self.counts.size == 0

    def nonzero(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Keys and counts of the non-empty buckets, ascending by key."""
        idx = np.flatnonzero(self.counts)
        return idx.astype(np.int64) + self.offset, self.counts[idx]

    def copy(self) -> DenseStore:
        out = DenseStore(self.max_buckets)
        out.offset = self.offset
        out.counts = self.counts.copy()
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DenseStore):
            return NotImplemented
        ka, ca = self.nonzero()
        kb, cb = other.nonzero()
        return (
            self.max_buckets == other.max_buckets
            and np.array_equal(ka, kb)
            and np.array_equal(ca, cb)
        )

    __hash__ = None  # type: ignore[assignment]

    # -- updates ---------------------------------------------------------
    def add_keys(self, keys: NDArray[np.int64]) -> None:
        """Count every key of ``keys`` once (vectorised)."""
        if keys.size == 0:
            return
        lo = int(keys.min())
        hi = int(keys.max())
        self.add_counts(lo, np.bincount(keys - lo, minlength=hi - lo + 1).astype(np.int64))

    def add_counts(self, lo: int, counts: NDArray[np.int64]) -> None:
        """Add ``counts[i]`` to key ``lo + i``; folds the lowest keys if needed."""
        if counts.size == 0:
            return
        hi = lo + counts.size - 1
        if self.counts.size:
            lo_all = min(lo, self.offset)
            hi_all = max(hi, self.offset + self.counts.size - 1)
        else:
            lo_all, hi_all = lo, hi
        floor = hi_all - self.max_buckets + 1
        if lo_all < floor:
            counts, lo = _fold(counts, lo, floor)
            if self.counts.size:
                self.counts, self.offset = _fold(self.counts, self.offset, floor)
            lo_all = floor
        out = np.zeros(hi_all - lo_all + 1, dtype=np.int64)
        if self.counts.size:
            start = self.offset - lo_all
            out[start : start + self.counts.size] += self.counts
        out[lo - lo_all : lo - lo_all + counts.size] += counts
        self.offset = lo_all
        self.counts = out

    def merge(self, other: DenseStore) -> None:
        """Add every count of ``other`` (left untouched) into this store."""
        if other.counts.size:
            self.add_counts(other.offset, other.counts)


def _fold(counts: NDArray[np.int64], lo: int, floor: int) -> tuple[NDArray[np.int64], int]:
    """Fold every key below ``floor`` into ``floor``."""
    if lo >= floor:
        return counts, lo
    cut = floor - lo
    if cut >= counts.size:
        return np.array([counts.sum()], dtype=np.int64), floor
    out = counts[cut:].copy()
    out[0] += counts[:cut].sum()
    return out, floor

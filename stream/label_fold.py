"""One label partition's pending state: quality deltas per window, labelled ids, counters.

The label join (:mod:`stream.label_join`) folds each joined label into the
quality state of its *prediction's* window — a classification or regression
quality sketch, the label count and the label delay — and remembers its id, so
that a later copy of the same label is a ``duplicate_label``. Everything is
additive: :meth:`LabelFold.writes` turns it into store writes (packed float64
vectors added element-wise, counters, set-once ids) that the flush applies
with the partition's offset, atomically (:class:`~stream.store.StateStore`).

Quality fields of a window's label delta hash: ``q|v`` the quality sketch's
vector, ``q|n|n`` labels joined, ``q|d|v`` the label delay counts
(:data:`DELAY_BUCKETS`, seconds), ``q|d|s`` their sum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sketches.logbuckets import SignedLogBuckets
from stream.store import Op, WindowWrite

__all__ = ["DELAY_BUCKETS", "LabelFold", "WindowLabels", "delay_quantiles"]

#: label delays, seconds: 2 % relative accuracy from 1 ms to 10 years
DELAY_BUCKETS = SignedLogBuckets(alpha=0.02, min_value=1e-3, max_value=3.2e8)
Array = NDArray[np.float64]


def delay_quantiles(counts: Array, qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> list[float | None]:
    """Quantiles of label delays from :data:`DELAY_BUCKETS` counts (``None`` if none)."""
    if counts.sum() <= 0:
        return [None] * len(qs)
    return [None if v is None else max(0.0, float(v)) for v in DELAY_BUCKETS.quantiles(counts, qs)]


@dataclass
class WindowLabels:
    """Joined labels of one (model, window) in this partition since the last flush."""

    quality: Any  # ClassificationQuality | RegressionQuality
    n: int = 0
    delays: Array = field(default_factory=lambda: np.zeros(DELAY_BUCKETS.size))
    delay_sum: float = 0.0

    def add(self, y_true: Any, y_pred: Any, proba: Array | None, delay: Array) -> None:
        if proba is None:
            self.quality.update_many(y_true, y_pred)
        else:
            self.quality.update_many(y_true, y_pred, proba)
        self.n += len(delay)
        d = np.maximum(delay, 0.0)
        self.delays += np.bincount(DELAY_BUCKETS.index(d), minlength=DELAY_BUCKETS.size)
        self.delay_sum += float(d.sum())

    def ops(self) -> list[Op]:
        return [
            ("v", "q|v", self.quality.to_vector().astype("<f8").tobytes()),
            ("i", "q|n|n", str(self.n)),
            ("v", "q|d|v", self.delays.astype("<f8").tobytes()),
            ("f", "q|d|s", repr(self.delay_sum)),
        ]


@dataclass
class LabelFold:
    """Pending label state of one partition (see the module docstring)."""

    size: int  # window length, seconds
    windows: dict[tuple[str, int], WindowLabels] = field(default_factory=dict)
    seen: dict[tuple[str, int], set[str]] = field(default_factory=dict)  # (model, bucket)
    counters: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    labels: int = 0  # labels in the messages folded (joined or dead-lettered)

    @property
    def empty(self) -> bool:
        return not self.windows and not self.counters and not self.messages

    def window(self, model: str, start: int, new: Callable[[], Any]) -> WindowLabels:
        w = self.windows.get((model, start))
        if w is None:
            w = self.windows[(model, start)] = WindowLabels(new())
        return w

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def writes(
        self, seen_key: Callable[[str, int], str], ttl_s: Callable[[str], float]
    ) -> list[WindowWrite]:
        """Store writes: each window's deltas, then each bucket's labelled ids."""
        out = [
            WindowWrite(model, start, start + self.size, w.ops(), ttl_s=math.ceil(ttl_s(model)))
            for (model, start), w in sorted(self.windows.items())
        ]
        for (model, bucket), ids in sorted(self.seen.items()):
            ops: list[Op] = [("=", ident, "1") for ident in sorted(ids)]
            out.append(
                WindowWrite(
                    model,
                    bucket,
                    bucket,
                    ops,
                    key=seen_key(model, bucket),
                    ttl_s=math.ceil(ttl_s(model)),
                )
            )
        return out

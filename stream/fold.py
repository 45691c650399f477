"""Folding decoded events into per-window sketch deltas, in memory.

A worker keeps one :class:`PartitionFold` per assigned partition: for every
(model, window) it has seen since its last flush, a :class:`WindowFold` of
sketches (histograms on the baseline's bins for numeric features and a numeric
prediction, category counts for categorical and boolean ones, a quantile
sketch of latency, counters for volume and confidence). ``ops()`` turns them
into the additive Redis field operations :class:`~stream.store.StateStore`
applies with the offsets.

Window fields are ``<feature>|<sketch>|<field>`` with the feature name
percent-encoded (:func:`~stream.keys.quote_name`) and reserved names starting
with ``@`` (which encoding never produces): ``@n`` (events), ``@prediction``,
``@latency``, ``@conf`` (``n`` with a probability, ``s`` sum of top
probabilities, ``lt`` below the confidence threshold), ``@dlq``
(``<reason>`` → dead letters of this model and window) and ``@score|v|v``
(binary classifiers whose labels are joined: counts of the positive class's
probability in the uniform bins of :mod:`sketches.estimation`, from which the
quality is estimated before labels arrive).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sketches import CategoricalCounter, QuantileSketch, ReferenceHistogram
from sketches.estimation import DEFAULT_BINS as SCORE_BINS
from sketches.estimation import score_counts
from stream.baseline import PREDICTION, Baseline
from stream.event_types import proba_matrix
from stream.keys import SEP, quote_name, unquote_name
from stream.store import Op, WindowWrite, format_number

__all__ = [
    "CONF",
    "COUNT",
    "DLQ",
    "LATENCY",
    "PartitionFold",
    "WindowFold",
    "WindowSketches",
    "histogram_from_vector",
    "histogram_vector",
    "sketch_ops",
    "window_start",
]

COUNT, LATENCY, CONF, DLQ, SCORE = "@n", "@latency", "@conf", "@dlq", "@score"
_OPS = {"add": "i", "min": "<", "max": ">", "const": "="}


def window_start(ts: NDArray[np.float64], size: int) -> NDArray[np.int64]:
    """Start (epoch seconds) of the tumbling window holding each event time.

    Example:
        >>> window_start(np.array([0.0, 59.9, 60.0, -0.5]), 60).tolist()
        [0, 0, 60, -60]
    """
    return (np.floor(ts / size) * size).astype(np.int64)


def histogram_vector(h: ReferenceHistogram) -> bytes:
    """A histogram's additive state as one little-endian float64 vector:
    bin counts, bin sums, then missing, rejected and the sum of squares."""
    head = np.array([h.missing, h.rejected, h.sumsq], dtype="<f8")
    return np.concatenate([h.counts.astype("<f8"), h.sums.astype("<f8"), head]).tobytes()


def histogram_from_vector(
    blob: bytes, binning: Any, lo: bytes | None, hi: bytes | None
) -> ReferenceHistogram:
    """Inverse of :func:`histogram_vector` (with the window's min and max)."""
    h = ReferenceHistogram(binning)
    nb = binning.num_bins
    v = np.frombuffer(blob, dtype="<f8")
    if v.size != 2 * nb + 3:
        raise ValueError(f"histogram vector of {v.size} values does not fit {nb} bins")
    h.counts = np.rint(v[:nb]).astype(np.int64)
    h.sums = v[nb : 2 * nb].astype(np.float64)
    h.missing, h.rejected, h.sumsq = round(float(v[-3])), round(float(v[-2])), float(v[-1])
    if h.count:
        h.min = float(lo) if lo is not None else math.inf
        h.max = float(hi) if hi is not None else -math.inf
    return h


def sketch_ops(prefix: str, sketch: Any) -> list[Op]:
    """Redis ops adding ``sketch``'s flat fields under ``prefix`` (``name|kind|``).

    A histogram is one packed vector (``name|h|v``, added element-wise by the
    store) plus ``lo``/``hi``: two fields per feature instead of two per bin.
    """
    out: list[Op] = []
    if isinstance(sketch, ReferenceHistogram):
        if sketch.is_empty:
            return out
        out.append(("v", prefix + "v", histogram_vector(sketch)))
        if sketch.count:
            out.append(("<", prefix + "lo", format_number(sketch.min)))
            out.append((">", prefix + "hi", format_number(sketch.max)))
        return out
    categorical = isinstance(sketch, CategoricalCounter)
    for name, value in sketch.to_fields().items():
        op = sketch.field_op(name)
        if value == 0 and op == "add":
            continue
        if categorical and name.startswith("k:"):
            out.append(("k", prefix + name, str(int(value))))
            continue
        code = _OPS[op]
        if code == "i" and isinstance(value, float):
            code = "f"
        out.append((code, prefix + name, format_number(value)))
    return out


class WindowFold:
    """The sketches of one (model, window) accumulated since the last flush."""

    def __init__(
        self,
        baseline: Baseline,
        confidence_threshold: float = 0.5,
        score_classes: tuple[str, ...] | None = None,
    ) -> None:
        self.baseline = baseline
        self.confidence_threshold = confidence_threshold
        # a binary classifier's classes, positive last: its probabilities are binned (``@score``)
        self.score_classes = score_classes
        self.scores = np.zeros(SCORE_BINS) if score_classes is not None else None
        self.n = 0
        self.hist: dict[str, ReferenceHistogram] = {}
        self.cats: dict[str, CategoricalCounter] = {}
        for name, fb in baseline.features.items():
            if fb.histogram is not None:
                self.hist[name] = fb.histogram.empty_like()
            else:
                self.cats[name] = CategoricalCounter()
        pred = baseline.prediction
        self.pred_hist = pred.histogram.empty_like() if pred and pred.histogram else None
        self.pred_cats = CategoricalCounter() if self.pred_hist is None else None
        self.latency = QuantileSketch()
        self.conf_n = 0
        self.conf_sum = 0.0
        self.conf_below = 0
        self.dlq: dict[str, int] = {}

    def add(self, batch: Any, rows: NDArray[np.intp] | slice) -> None:
        """Fold the given rows of a decoded :class:`~stream.events.ModelBatch`."""
        idx = np.arange(len(batch))[rows] if isinstance(rows, slice) else rows
        self.n += int(idx.size)
        for name, h in self.hist.items():
            h.update_many(batch.numeric[name][idx])
        for name, c in self.cats.items():
            col = batch.categorical[name]
            c.update_many([col[i] for i in idx.tolist()])
        if self.pred_hist is not None:
            p = batch.prediction[idx]
            self.pred_hist.update_many(p)
            # string predictions against a numeric reference still count (as missing)
        elif self.pred_cats is not None:
            labels = batch.prediction_label
            nums = batch.prediction
            vals = [labels[i] if labels[i] is not None else nums[i] for i in idx.tolist()]
            self.pred_cats.update_many(vals)
        lat = batch.latency_ms[idx]
        lat = lat[~np.isnan(lat)]
        if lat.size:
            self.latency.update_many(lat)
        conf = batch.proba_top[idx]
        conf = conf[~np.isnan(conf)]
        if conf.size:
            self.conf_n += int(conf.size)
            self.conf_sum += float(conf.sum())
            self.conf_below += int((conf < self.confidence_threshold).sum())
        if self.scores is not None and self.score_classes is not None and conf.size:
            score = proba_matrix(batch, self.score_classes)[idx, -1]
            score = score[~np.isnan(score)]
            if score.size:
                self.scores += score_counts(np.clip(score, 0.0, 1.0), SCORE_BINS)

    def dead_letter(self, reason: str, n: int = 1) -> None:
        """Count dead letters attributed to this model and window."""
        self.dlq[reason] = self.dlq.get(reason, 0) + n

    def ops(self) -> list[Op]:
        """Every non-zero delta as a Redis op."""
        out: list[Op] = []
        if self.n:
            out.append(("i", f"{COUNT}{SEP}n{SEP}n", str(self.n)))
        for name, h in self.hist.items():
            out += sketch_ops(f"{quote_name(name)}{SEP}h{SEP}", h)
        for name, c in self.cats.items():
            out += sketch_ops(f"{quote_name(name)}{SEP}c{SEP}", c)
        if self.pred_hist is not None:
            out += sketch_ops(f"{PREDICTION}{SEP}h{SEP}", self.pred_hist)
        if self.pred_cats is not None:
            out += sketch_ops(f"{PREDICTION}{SEP}c{SEP}", self.pred_cats)
        if not self.latency.is_empty:
            out += sketch_ops(f"{LATENCY}{SEP}q{SEP}", self.latency)
        if self.conf_n:
            out.append(("i", f"{CONF}{SEP}n{SEP}n", str(self.conf_n)))
            out.append(("f", f"{CONF}{SEP}n{SEP}s", format_number(self.conf_sum)))
            out.append(("i", f"{CONF}{SEP}n{SEP}lt", str(self.conf_below)))
        for reason, n in self.dlq.items():
            out.append(("i", f"{DLQ}{SEP}n{SEP}{reason}", str(n)))
        if self.scores is not None and self.scores.any():
            out.append(("v", f"{SCORE}{SEP}v{SEP}v", self.scores.astype("<f8").tobytes()))
        return out


@dataclass
class PartitionFold:
    """One partition's unflushed deltas, by (model, window start)."""

    window_size: int
    windows: dict[tuple[str, int], WindowFold] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    max_event_time: float | None = None
    messages: int = 0
    # the label join's prediction records, by model: ids, times, packed records
    records: dict[str, tuple[list[str], list[NDArray[np.float64]], list[bytes]]] = field(
        default_factory=dict
    )

    def window(
        self,
        baseline: Baseline,
        start: int,
        threshold: float = 0.5,
        score_classes: tuple[str, ...] | None = None,
    ) -> WindowFold:
        key = (baseline.model, start)
        w = self.windows.get(key)
        if w is None:
            w = self.windows[key] = WindowFold(baseline, threshold, score_classes)
        return w

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def remember(
        self, model: str, ids: list[str], ts: NDArray[np.float64], records: list[bytes]
    ) -> None:
        """Keep prediction records for the label join (written before the flush)."""
        held = self.records.setdefault(model, ([], [], []))
        held[0].extend(ids)
        held[1].append(ts)
        held[2].extend(records)

    def saw(self, max_ts: float) -> None:
        if self.max_event_time is None or max_ts > self.max_event_time:
            self.max_event_time = max_ts

    def writes(self) -> list[WindowWrite]:
        return [
            WindowWrite(model, start, start + self.window_size, w.ops(), w.baseline.version)
            for (model, start), w in sorted(self.windows.items())
        ]

    @property
    def empty(self) -> bool:
        return not self.windows and not self.counters and self.messages == 0


@dataclass
class WindowSketches:
    """A window's state merged over partitions, read back from Redis fields."""

    n: int = 0
    hist: dict[str, ReferenceHistogram] = field(default_factory=dict)
    cats: dict[str, CategoricalCounter] = field(default_factory=dict)
    prediction: ReferenceHistogram | CategoricalCounter | None = None
    latency: QuantileSketch = field(default_factory=QuantileSketch)
    conf_n: int = 0
    conf_sum: float = 0.0
    conf_below: int = 0
    dlq: dict[str, int] = field(default_factory=dict)
    scores: NDArray[np.float64] | None = None  # ``@score`` counts, when kept

    @classmethod
    def from_deltas(
        cls, deltas: Iterable[Mapping[str, bytes | str]], baseline: Baseline
    ) -> WindowSketches:
        """Merge partition delta hashes (``field -> value``) on ``baseline``'s bins."""
        out = cls()
        for fb in baseline.features.values():
            if fb.histogram is not None:
                out.hist[fb.name] = fb.histogram.empty_like()
            else:
                out.cats[fb.name] = CategoricalCounter()
        pred = baseline.prediction
        if pred is not None:
            out.prediction = pred.histogram.empty_like() if pred.histogram else CategoricalCounter()
        for delta in deltas:
            groups: dict[tuple[str, str], dict[str, Any]] = {}
            for key, value in delta.items():
                name, kind, fld = key.split(SEP, 2)
                groups.setdefault((name, kind), {})[fld] = value
            for (name, kind), fields in groups.items():
                out._absorb(name, kind, fields)
        return out

    def _absorb(self, name: str, kind: str, fields: dict[str, Any]) -> None:
        if name == COUNT:
            self.n += int(fields.get("n", 0))
        elif name == CONF:
            self.conf_n += int(fields.get("n", 0))
            self.conf_sum += float(fields.get("s", 0.0))
            self.conf_below += int(fields.get("lt", 0))
        elif name == DLQ:
            for reason, n in fields.items():
                self.dlq[reason] = self.dlq.get(reason, 0) + int(n)
        elif name == LATENCY:
            self.latency.merge(QuantileSketch.from_fields(fields))
        elif name == SCORE:
            v = np.frombuffer(fields["v"], dtype="<f8").astype(np.float64)
            self.scores = v if self.scores is None else self.scores + v
        elif name == PREDICTION:
            self._merge_into(self.prediction, kind, fields)
        else:
            feature = unquote_name(name)
            target = self.hist.get(feature) if kind == "h" else self.cats.get(feature)
            self._merge_into(target, kind, fields)

    @staticmethod
    def _merge_into(
        target: ReferenceHistogram | CategoricalCounter | None, kind: str, fields: dict[str, Any]
    ) -> None:
        if target is None:
            return  # a feature no longer in the baseline: ignored at close
        if kind == "h" and isinstance(target, ReferenceHistogram):
            part = histogram_from_vector(
                fields["v"], target.binning, fields.get("lo"), fields.get("hi")
            )
            target.merge(part)
        elif kind == "c" and isinstance(target, CategoricalCounter):
            fields = {k: v for k, v in fields.items() if k != "#"}
            fields.setdefault("mc", str(target.max_categories))
            fields.setdefault("ml", str(target.max_length))
            target.merge(CategoricalCounter.from_fields(fields))

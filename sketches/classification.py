"""Classification quality of one window, mergeable by adding one float64 vector.

:class:`ClassificationQuality` counts labelled predictions of a model with a
known, bounded list of classes (at most ``max_classes``, 64 by default) and
answers, at window close, what scikit-learn would on the same rows:

* **Counts** (exact): confusion matrix with an "other" row and column for labels
  outside the classes (counted, never dropped), accuracy, per-class
  precision / recall / F1 / support and their macro and weighted averages
  (``zero_division=0``; see :mod:`sketches.confusion` for which classes are
  averaged).
* **Log loss** (exact up to float rounding): mean of ``-log(clip(p, ε, 1 - ε))``
  of the true class, ``ε = 2.2e-16`` (float64 machine epsilon), as
  ``sklearn.metrics.log_loss`` since 1.5 computes it in float64.
* **ROC-AUC and PR-AUC** (binned, :mod:`sketches.ranking`): binary on the
  probability of the second class, scikit-learn's positive label for sorted
  labels; multiclass one-vs-rest, macro-averaged over the classes that have both
  positives and negatives (ROC-AUC) or positives (PR-AUC). Each comes with its
  exact worst-case error bound (``roc_auc_bound``, ``pr_auc_bound``). At the
  default 160 log-odds bins both are within 0.005 of scikit-learn's on the
  scores of real models with 250 or more positives (measured: 0.0025), about
  0.005 with 100; see :mod:`sketches.ranking`.
* **Calibration** (exact): reliability bins and ECE, :mod:`sketches.calibration`.

Probabilistic metrics use the rows that carry a valid ``proba`` row and a true
label among the classes (``scored``). A proba row that is entirely NaN means "no
probabilities" and is simply not scored. Any other row with a value outside
[0, 1], a NaN, or (for an ``n × k`` matrix) a sum off 1 by more than 10^-5 is
rejected, not normalised, and counted in ``bad_proba``; its labels still count.
A row whose true or predicted label is missing (``None``, NaN) is counted in
``missing`` and not otherwise.

The whole state is one float64 vector whose length depends only on the
configuration (:meth:`ClassificationQuality.layout`), so Redis can merge deltas
by element-wise addition: 685 values for a binary model and 6,557 for 10 classes
at the defaults (64 classes: about 59,000 values, 470 KB per window and label
partition: lower ``score_bins`` for many classes, 0 keeps no score histograms).
Redis' Lua ``struct.unpack`` returns at most about 7,990 values at once, so
:class:`stream.store.StateStore` adds vectors in chunks.

Example:
    >>> q = ClassificationQuality(["0", "1"])
    >>> q.update_many([0, 1, 1, 0], [0, 1, 0, 0], np.array([0.2, 0.9, 0.4, 0.1]))
    >>> m = q.metrics()
    >>> m["accuracy"], m["roc_auc"], round(m["log_loss"], 4)
    (0.75, 1.0, 0.3375)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sketches.calibration import bin_sums, expected_calibration_error, reliability
from sketches.categorical import OTHER
from sketches.codec import Reader, Writer, check, check_state_vector, state_vector
from sketches.confusion import averages, class_scores
from sketches.exceptions import DecodeError, IncompatibleSketchError
from sketches.labels import LabelIndex
from sketches.ranking import SCALES, ScoreGrid, average_precision, bin_shape, roc_auc

__all__ = ["LOG_LOSS_EPS", "MAX_CLASSES", "PROBA_TOLERANCE", "ClassificationQuality"]

_KIND = 6
_VERSION = 1
MAX_CLASSES = 64
_CLASS_LIMIT = 4096  # what a decoder accepts
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)
PROBA_TOLERANCE = 1e-5
"""A probability row may sum to 1 ± (1e-8 + 1e-5), ``numpy.isclose``'s default, the
check scikit-learn's multiclass ``roc_auc_score`` makes."""

_SCALARS = ("missing", "bad_proba", "unscored", "other_agree", "scored", "log_loss")
_FLOAT_PARTS = frozenset({"log_loss", "cal_conf", "score_d", "score_d2"})

Array = NDArray[np.float64]


def _none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


class ClassificationQuality:
    """Confusion matrix, log loss, binned ranking and calibration sums of one window."""

    __slots__ = ("_parts", "calibration_bins", "grid", "index", "max_classes", "vector")

    def __init__(
        self,
        classes: Sequence[str],
        *,
        max_classes: int = MAX_CLASSES,
        score_bins: int = 160,
        score_scale: str = "logit",
        logit_max: float = 14.0,
        calibration_bins: int = 10,
    ) -> None:
        if not (isinstance(max_classes, int) and max_classes >= 2):
            raise ValueError(f"max_classes must be an integer >= 2, got {max_classes!r}")
        self.index = LabelIndex(classes)
        k = len(self.index.classes)
        if not 2 <= k <= max_classes:
            raise ValueError(f"need 2 to max_classes={max_classes} classes, got {k}")
        if not (isinstance(calibration_bins, int) and 0 <= calibration_bins <= 1 << 16):
            raise ValueError(
                f"calibration_bins must be an integer in [0, 65536], got {calibration_bins!r}"
            )
        if score_bins == 0:
            self.grid: ScoreGrid | None = None
            if score_scale not in SCALES:
                raise ValueError(f"score scale must be one of {SCALES}, got {score_scale!r}")
        else:
            self.grid = ScoreGrid(score_bins, score_scale, logit_max)
        self.max_classes = max_classes
        self.calibration_bins = calibration_bins
        self._parts: dict[str, tuple[int, tuple[int, ...]]] = {}
        offset = 0
        for name, shape in self._shapes():
            self._parts[name] = (offset, shape)
            offset += math.prod(shape)
        self.vector: Array = np.zeros(offset, dtype=np.float64)

    # -- configuration -----------------------------------------------------
    @property
    def classes(self) -> tuple[str, ...]:
        return self.index.classes

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2

    @property
    def score_bins(self) -> int:
        return 0 if self.grid is None else self.grid.bins

    def params(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this configuration (with ``classes``)."""
        g = self.grid
        return {
            "score_bins": self.score_bins,
            "score_scale": "logit" if g is None else g.scale,
            "logit_max": 14.0 if g is None else float(g.logit_max),
            "calibration_bins": self.calibration_bins,
        }

    def _shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        k1 = len(self.classes) + 1
        m = 1 if self.binary else len(self.classes)
        c, b = self.calibration_bins, self.score_bins
        out: list[tuple[str, tuple[int, ...]]] = [(name, (1,)) for name in _SCALARS]
        out += [("confusion", (k1, k1))]
        out += [(name, (c,)) for name in ("cal_count", "cal_conf", "cal_correct")]
        out += [(name, (m, b)) for name in ("score_count", "score_pos", "score_d", "score_d2")]
        return out

    def layout(self) -> dict[str, tuple[int, tuple[int, ...]]]:
        """Offset and shape of every part of :meth:`to_vector` (row-major):

        ``missing``, ``bad_proba``, ``unscored`` (valid proba, true label "other"),
        ``other_agree`` (both labels "other" and equal), ``scored`` and
        ``log_loss`` (the sum) are single values; ``confusion`` is
        ``(k+1, k+1)``, true labels by row, "other" last; ``cal_count``,
        ``cal_conf`` (confidence sum) and ``cal_correct`` have one value per
        calibration bin; ``score_count``, ``score_pos``, ``score_d`` and
        ``score_d2`` (sums of ``score - ref`` and its square, see
        :attr:`~sketches.ranking.ScoreGrid.refs`) are
        ``(m, score_bins)`` with ``m = 1`` for a binary model (the second class)
        and ``m = k`` otherwise.
        """
        return dict(self._parts)

    def _part(self, name: str) -> Array:
        offset, shape = self._parts[name]
        return self.vector[offset : offset + math.prod(shape)].reshape(shape)

    def _add(self, name: str, values: float | NDArray[Any]) -> None:
        self._part(name)[...] += values

    def _value(self, name: str) -> float:
        return float(self.vector[self._parts[name][0]])

    def empty_like(self) -> ClassificationQuality:
        """An empty state with the same configuration."""
        return ClassificationQuality(self.classes, max_classes=self.max_classes, **self.params())

    def copy(self) -> ClassificationQuality:
        out = self.empty_like()
        out.vector[:] = self.vector
        return out

    # -- counts ------------------------------------------------------------
    @property
    def count(self) -> int:
        """Rows counted (both labels present)."""
        return int(self._part("confusion").sum())

    @property
    def is_empty(self) -> bool:
        return self.count == 0 and self._value("missing") == 0

    # -- updates -----------------------------------------------------------
    def update(self, y_true: object, y_pred: object, proba: object = None) -> None:
        """Add one row; ``proba`` a probability, a ``k``-vector, a mapping class →
        probability (absent classes 0), or ``None``."""
        p: NDArray[np.float64] | None = None
        if isinstance(proba, Mapping):
            p = self.proba_matrix([proba])
        elif proba is not None:
            p = np.asarray(proba, dtype=np.float64)[np.newaxis, ...]
        self.update_many(np.array([y_true], dtype=object), np.array([y_pred], dtype=object), p)

    def proba_matrix(self, rows: Sequence[Mapping[str, float] | None]) -> Array:
        """An ``n × k`` matrix from per-row mappings class → probability, in class
        order; a class a mapping lacks gets 0, a ``None`` row NaN (not scored)."""
        k = len(self.classes)
        out = np.zeros((len(rows), k), dtype=np.float64)
        for i, row in enumerate(rows):
            if row is None:
                out[i] = math.nan
                continue
            for j, name in enumerate(self.classes):
                v = row.get(name)
                if v is not None:
                    out[i, j] = v
        return out

    def _check_proba(self, proba: ArrayLike, n: int) -> Array:
        p = np.asarray(proba, dtype=np.float64)
        k = len(self.classes)
        want = f"({n},) or ({n}, 2)" if self.binary else f"({n}, {k})"
        if p.ndim == 1 and self.binary and p.shape[0] == n:
            return p
        if p.ndim == 2 and p.shape == (n, k):
            return p
        raise ValueError(f"proba has shape {p.shape}; expected {want} for classes {self.classes}")

    def update_many(
        self, y_true: ArrayLike, y_pred: ArrayLike, proba: ArrayLike | None = None
    ) -> None:
        """Add labelled predictions, vectorised.

        Args:
            y_true: True labels (strings, numbers or booleans; see :mod:`sketches.labels`).
            y_pred: Predicted labels, same length.
            proba: Optional probabilities: ``n × k`` in class order, or for a binary
                model the probability of the second class (length ``n``).

        Raises:
            ValueError: if the lengths or the shape of ``proba`` do not fit (the
                state is then unchanged).
        """
        t = self.index.codes(y_true)
        p = self.index.codes(y_pred)
        n = t.size
        if p.size != n:
            raise ValueError(f"y_true has {n} labels but y_pred has {p.size}")
        probs = None if proba is None else self._check_proba(proba, n)
        if n == 0:
            return
        k = len(self.classes)
        ok = (t >= 0) & (p >= 0)
        n_ok = int(np.count_nonzero(ok))
        if n_ok < n:
            self._add("missing", n - n_ok)
        tk, pk = (t, p) if n_ok == n else (t[ok], p[ok])
        cm = np.bincount(tk * (k + 1) + pk, minlength=(k + 1) ** 2)
        self._add("confusion", cm.reshape(k + 1, k + 1))
        if cm[-1]:
            both_other = np.flatnonzero(ok & (t == k) & (p == k))
            self._add("other_agree", self.index.same_labels(y_true, y_pred, both_other))
        if probs is not None:
            self._update_proba(t, ok, probs)

    def _update_proba(self, t: NDArray[np.int64], ok: NDArray[np.bool_], probs: Array) -> None:
        k = len(self.classes)
        absent: NDArray[np.bool_]
        good: NDArray[np.bool_]
        with np.errstate(invalid="ignore"):
            if probs.ndim == 1:
                absent = np.isnan(probs)
                good = (probs >= 0.0) & (probs <= 1.0)
            else:
                absent = np.all(np.isnan(probs), axis=1)
                good = np.all((probs >= 0.0) & (probs <= 1.0), axis=1)
                good &= np.abs(probs.sum(axis=1) - 1.0) <= 1e-8 + PROBA_TOLERANCE
        bad = int(np.count_nonzero(ok & ~good & ~absent))
        if bad:
            self._add("bad_proba", bad)
        use = ok & good
        unscored = int(np.count_nonzero(use & (t == k)))
        if unscored:
            self._add("unscored", unscored)
        rows = np.flatnonzero(use & (t < k))
        if rows.size:
            self._score(t[rows], probs[rows])

    def _score(self, t: NDArray[np.int64], probs: Array) -> None:
        n = t.size
        if self.binary:
            if probs.ndim == 1:
                p1 = probs
                p_true = np.where(t == 1, p1, 1.0 - p1)
            else:
                p1 = probs[:, 1]
                p_true = probs[np.arange(n), t]
            conf, correct = p1, (t == 1).astype(np.float64)
            scores = p1[:, np.newaxis]
        else:
            p_true = probs[np.arange(n), t]
            conf = probs.max(axis=1)
            correct = (probs.argmax(axis=1) == t).astype(np.float64)
            scores = probs
        eps = LOG_LOSS_EPS
        self._add("scored", n)
        self._add("log_loss", -float(np.log(np.clip(p_true, eps, 1.0 - eps)).sum()))
        if self.calibration_bins:
            cn, cs, cc = bin_sums(conf, correct, self.calibration_bins)
            self._add("cal_count", cn)
            self._add("cal_conf", cs)
            self._add("cal_correct", cc)
        if self.grid is not None:
            self._bin_scores(t, scores)

    def _bin_scores(self, t: NDArray[np.int64], scores: Array) -> None:
        grid = self.grid
        assert grid is not None
        b, m = grid.bins, scores.shape[1]
        flat_scores = scores.ravel()
        idx = grid.index(flat_scores)
        d = flat_scores - grid.refs[idx]
        if m > 1:
            idx = idx + np.tile(np.arange(m) * b, t.size)
            pos = idx.reshape(t.size, m)[np.arange(t.size), t]
        else:
            pos = idx[t == 1]
        size = m * b
        self._add("score_count", np.bincount(idx, minlength=size).reshape(m, b))
        self._add("score_pos", np.bincount(pos, minlength=size).reshape(m, b))
        self._add("score_d", np.bincount(idx, weights=d, minlength=size).reshape(m, b))
        self._add("score_d2", np.bincount(idx, weights=d * d, minlength=size).reshape(m, b))

    def merge(self, other: ClassificationQuality) -> None:
        """Add ``other`` into this state; ``other`` is left untouched."""
        if not isinstance(other, ClassificationQuality):
            raise TypeError(f"cannot merge {type(other).__name__} into ClassificationQuality")
        self.check_compatible(other)
        self.vector += other.vector

    def check_compatible(self, other: ClassificationQuality) -> None:
        """Raise :class:`IncompatibleSketchError` unless both have the same layout."""
        mine = (self.classes, self.params())
        theirs = (other.classes, other.params())
        if mine != theirs:
            raise IncompatibleSketchError(
                "cannot merge classification quality with different configurations: "
                f"classes={list(mine[0])}, {mine[1]} vs classes={list(theirs[0])}, {theirs[1]}"
            )

    # -- metrics -----------------------------------------------------------
    def confusion_matrix(self) -> NDArray[np.int64]:
        """``(k+1) × (k+1)`` counts, true labels by row, "other" last."""
        return np.rint(self._part("confusion")).astype(np.int64)

    def ranking(self) -> dict[str, Array]:
        """Per scored class (binary: the second class only): ``roc_auc``,
        ``roc_auc_bound``, ``pr_auc``, ``pr_auc_bound`` (NaN where undefined)."""
        grid = self.grid
        if grid is None:
            nan = np.full(1 if self.binary else len(self.classes), math.nan)
            return {"roc_auc": nan, "roc_auc_bound": nan, "pr_auc": nan, "pr_auc_bound": nan}
        count, pos = self._part("score_count"), self._part("score_pos")
        neg = np.maximum(count - pos, 0.0)
        spread, tied = bin_shape(count, self._part("score_d"), self._part("score_d2"), grid.widths)
        auc, auc_bound = roc_auc(pos, neg, tied)
        ap, ap_bound = average_precision(pos, neg, spread, tied)
        return {"roc_auc": auc, "roc_auc_bound": auc_bound, "pr_auc": ap, "pr_auc_bound": ap_bound}

    def metrics(self) -> dict[str, Any]:
        """Every metric as a plain dict (JSON-ready); undefined values are ``None``.

        Keys: ``n``, ``missing``, ``scored``, ``unscored``, ``bad_proba``,
        ``accuracy``, ``classes`` (per class: ``support``, ``predicted``,
        ``precision``, ``recall``, ``f1``, and for a multiclass model ``roc_auc``,
        ``pr_auc`` and their bounds), ``other`` (``support``, ``predicted``,
        ``agree``), ``macro`` and ``weighted`` (``precision``, ``recall``,
        ``f1``), ``log_loss``, ``roc_auc``, ``roc_auc_bound``, ``pr_auc``,
        ``pr_auc_bound``, ``ece``, ``calibration`` (the reliability bins),
        ``labels`` (the classes, then ``"__other__"``) and ``confusion_matrix``.
        """
        cm = self.confusion_matrix()
        n = int(cm.sum())
        k = len(self.classes)
        scores = class_scores(cm.astype(np.float64))
        other_agree = round(self._value("other_agree"))
        scored = round(self._value("scored"))
        rank = self.ranking()
        per_class: dict[str, dict[str, Any]] = {}
        for i, name in enumerate(self.classes):
            present = bool(scores["present"][i])
            entry: dict[str, Any] = {
                "support": int(scores["support"][i]),
                "predicted": int(scores["predicted"][i]),
            }
            for metric in ("precision", "recall", "f1"):
                entry[metric] = float(scores[metric][i]) if present else None
            if not self.binary:
                for key, values in rank.items():
                    entry[key] = _none(float(values[i]))
            per_class[name] = entry
        summary = {key: _macro(values) for key, values in rank.items()}
        out: dict[str, Any] = {
            "n": n,
            "missing": round(self._value("missing")),
            "scored": scored,
            "unscored": round(self._value("unscored")),
            "bad_proba": round(self._value("bad_proba")),
            "accuracy": (int(np.trace(cm[:k, :k])) + other_agree) / n if n else None,
            "classes": per_class,
            "other": {
                "support": int(cm[k].sum()),
                "predicted": int(cm[:, k].sum()),
                "agree": other_agree,
            },
            **averages(scores),
            "log_loss": self._value("log_loss") / scored if scored else None,
            **summary,
            "ece": None,
            "calibration": [],
            "labels": [*self.classes, OTHER],
            "confusion_matrix": cm.tolist(),
        }
        if self.calibration_bins:
            parts = [self._part(name) for name in ("cal_count", "cal_conf", "cal_correct")]
            out["ece"] = expected_calibration_error(*parts)
            out["calibration"] = reliability(*parts)
        return out

    # -- vector and bytes --------------------------------------------------
    def to_vector(self) -> Array:
        """The whole state as one float64 vector (a copy); see :meth:`layout`.
        ``to_vector().astype("<f8").tobytes()`` is what a store adds element-wise."""
        return self.vector.copy()

    @classmethod
    def from_vector(
        cls,
        classes: Sequence[str],
        vector: ArrayLike | bytes,
        *,
        max_classes: int = MAX_CLASSES,
        score_bins: int = 160,
        score_scale: str = "logit",
        logit_max: float = 14.0,
        calibration_bins: int = 10,
    ) -> ClassificationQuality:
        """State from :meth:`to_vector` (or its little-endian bytes) and the
        configuration; raises :class:`DecodeError` if the vector does not fit it."""
        q = cls(
            classes,
            max_classes=max_classes,
            score_bins=score_bins,
            score_scale=score_scale,
            logit_max=logit_max,
            calibration_bins=calibration_bins,
        )
        q._load(state_vector(vector, "ClassificationQuality"))
        return q

    def _count_mask(self) -> NDArray[np.bool_]:
        mask = np.ones(self.vector.size, dtype=bool)
        for name, (offset, shape) in self._parts.items():
            if name in _FLOAT_PARTS:
                mask[offset : offset + math.prod(shape)] = False
        return mask

    def _load(self, v: Array) -> None:
        name = "ClassificationQuality"
        size = self.vector.size
        counts = v[self._count_mask()] if v.size == size else v
        check_state_vector(v, size, counts, name)
        self.vector = v.copy()
        check(self._value("log_loss") >= 0, name, "negative log-loss sum")
        check(
            bool((self._part("cal_correct") <= self._part("cal_count")).all())
            and bool((self._part("score_pos") <= self._part("score_count")).all()),
            name,
            "more positives than rows in a bin",
        )

    def to_bytes(self) -> bytes:
        """Compact versioned encoding (kind 6): configuration, counts in the
        narrowest integer width, then the float sums."""
        w = Writer(_KIND, _VERSION)
        w.pack("H", len(self.classes))
        for c in self.classes:
            w.raw(c.encode("utf-8"))
        g = self.grid
        scale = 0 if g is None or g.scale == "logit" else 1
        w.pack("IBdI", self.score_bins, scale, self.params()["logit_max"], self.calibration_bins)
        mask = self._count_mask()
        w.counts(np.rint(self.vector[mask]).astype(np.int64))
        w.floats(self.vector[~mask])
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ClassificationQuality:
        """Decode :meth:`to_bytes`; raises :class:`DecodeError` on bad input."""
        name = "ClassificationQuality"
        r = Reader(data, _KIND, name, (_VERSION,))
        k = r.read_int("H")
        check(2 <= k <= _CLASS_LIMIT, name, f"bad class count {k}")
        classes = []
        for _ in range(k):
            try:
                classes.append(r.raw(4096).decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise DecodeError(f"{name}: class name is not UTF-8") from exc
        bins, scale = r.read_int("I"), r.read_int("B")
        logit_max, cal_bins = r.read_float(), r.read_int("I")
        check(scale in (0, 1), name, f"bad score scale {scale}")
        try:
            q = cls(
                classes,
                max_classes=max(k, MAX_CLASSES),
                score_bins=bins,
                score_scale=SCALES[scale],
                logit_max=logit_max,
                calibration_bins=cal_bins,
            )
        except ValueError as exc:
            raise DecodeError(f"{name}: bad parameters: {exc}") from exc
        mask = q._count_mask()
        counts = r.counts(int(mask.sum()))
        floats = r.floats(int((~mask).sum()))
        r.done()
        check(counts.size == mask.sum() and floats.size == (~mask).sum(), name, "bad lengths")
        v = np.empty(mask.size, dtype=np.float64)
        v[mask], v[~mask] = counts, floats
        q._load(v)
        return q

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassificationQuality):
            return NotImplemented
        if (self.classes, self.params()) != (other.classes, other.params()):
            return False
        mask = self._count_mask()
        return bool(np.array_equal(self.vector[mask], other.vector[mask])) and bool(
            np.allclose(self.vector, other.vector, rtol=1e-9, atol=1e-9)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"ClassificationQuality(classes={list(self.classes)!r}, n={self.count}, "
            f"score_bins={self.score_bins}, calibration_bins={self.calibration_bins})"
        )


def _macro(values: Array) -> float | None:
    """Mean over the defined (non-NaN) entries; ``None`` if there is none."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else None

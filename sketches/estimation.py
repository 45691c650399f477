"""Estimated quality without labels for a binary classifier with probabilities.

When a window closes its labels are usually still missing, but the histogram
of the predicted positive-class probability is there. If the scores are
*calibrated* (a share ``p_b`` of the events scored in bin ``b`` is positive),
the labels will show, per bin of ``n_b`` events, about ``n_b·p_b`` positives
and ``n_b·(1 - p_b)`` negatives, and every quality metric follows from those
masses (confidence-based performance estimation). ``p_b`` comes from a
:class:`Calibrator` fitted once on the baseline's labelled rows, so models
whose raw scores are not calibrated are estimated too.

**Bins.** ``bins`` uniform bins on ``[0, 1]`` (default :data:`DEFAULT_BINS` =
200); bin ``i`` is ``[i/bins, (i+1)/bins)``, the last one closed at 1
(:func:`score_counts`). The decision threshold must be a bin edge
(``threshold × bins`` an integer — any threshold in steps of 0.005 at 200
bins; ``ValueError`` otherwise), so the predicted class, ``score >=
threshold``, is exact for every event: nothing is rounded.

**Calibrator.** Per-bin positive rates of the labelled baseline, with 0.05
pseudo-rows at the bin centre (so an empty bin means "the score is the
probability"), made non-decreasing by isotonic regression and interpolated
linearly between the isotonic blocks' centres. It needs :data:`MIN_ROWS` =
1,000 labelled rows and 50 of each class (``ValueError`` otherwise;
:meth:`Calibrator.identity` assumes calibrated scores and flags the estimate
``calibrated=False``). Its error in the estimated accuracy has a standard
deviation of about 0.01 at 1,000 rows, 0.007 at 2,000 and 0.003 at 20,000.
200 bins: 2.0 kB as bytes, 4.9 kB as JSON.

**What is computed** (:func:`estimate`). Expected TP, FP, TN, FN (``E[TP] =
Σ n_b p_b`` over the bins at or above the threshold, …); accuracy; precision,
recall and F1 as ratios of those expectations (precision is exact in
expectation, the predicted positives being known; recall and F1 are off by
``O(1/n)``); ROC-AUC of the expected positive and negative masses, bins in
score order, pairs within a bin counted half. Undefined values are ``None``,
never NaN. Standard errors say how far the realised value falls from the
estimate when the assumptions hold: label noise given the scores (delta
method) plus the calibrator's per-bin binomial noise; :func:`compare` turns
realised values into errors and z-scores. ``binning_bound`` bounds how much the
events' unknown positions inside their bins can move the accuracy.

**Assumptions, and when the estimate is wrong.** Right under *covariate
shift*: inputs move, ``P(y | x)`` stays, so ``P(y | score)`` stays as on the
baseline. Wrong, with no sign in the predictions, whenever ``P(y | score)``
changes: concept drift, label (prior) shift, a retrained model read with the
old calibrator, a changed label definition. Also wrong where the baseline had
no labels (``unsupported``: the share of the window in bins with fewer than
:data:`SPARSE_ROWS` labelled baseline rows) and where scores crowd into a
few uniform bins (strongly over-confident or distorted models:
``binning_bound`` is large). Isotonic calibration assumes a higher score never
means a lower chance of a positive.

**Accuracy (measured, tests/sketches/test_estimation.py).** Logistic ground
truth, 20,000 labelled baseline rows, windows of 5,000 events with the inputs
shifted by −1 to +1.5 σ, for a calibrated model, ``score = p²`` and an
over-confident ``score = σ(2·logit p)``: over 2,400 windows (40 seeds) the
estimated accuracy was within 0.02 of the realised (scikit-learn on sampled
labels) in all but 2 (worst 0.021), precision within 0.082, recall 0.050, F1
0.049 and ROC-AUC 0.048 (realised on the raw scores), with ``|z| <= 4.3``
(ROC-AUC of the distorted models 4.95). Under concept drift the estimated
accuracy is off by 0.17 (logit slope cut to a quarter) to 0.65 (slope
flipped), ``|z| > 25``. One estimate takes about 50 µs.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=20_000)
    >>> y = rng.random(20_000) < 1 / (1 + np.exp(-2 * x))
    >>> scores = (1 / (1 + np.exp(-2 * x))) ** 2  # monotone, not calibrated
    >>> cal = Calibrator.fit(scores, y)
    >>> x = rng.normal(1.0, 1.0, size=5_000)  # covariate shift
    >>> y = rng.random(5_000) < 1 / (1 + np.exp(-2 * x))
    >>> scores = (1 / (1 + np.exp(-2 * x))) ** 2
    >>> est = estimate(score_counts(scores), cal, threshold=0.5)
    >>> realised = float(np.mean((scores >= 0.5) == y))
    >>> abs(est.accuracy - realised) < 0.02, est.calibrated
    (True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sketches.codec import Reader, Writer, check, is_nonneg
from sketches.exceptions import DecodeError, IncompatibleSketchError

__all__ = [
    "DEFAULT_BINS",
    "METRICS",
    "MIN_CLASS_ROWS",
    "MIN_ROWS",
    "SPARSE_ROWS",
    "Calibrator",
    "Gap",
    "QualityEstimate",
    "bin_index",
    "compare",
    "estimate",
    "score_counts",
]

Array = NDArray[np.float64]

#: uniform probability bins on [0, 1]
DEFAULT_BINS = 200
#: labelled baseline rows :meth:`Calibrator.fit` needs, and rows of each class
MIN_ROWS = 1000
MIN_CLASS_ROWS = 50
#: a bin with fewer labelled baseline rows counts as unsupported
SPARSE_ROWS = 20
#: the metrics estimated, in order
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")

_PRIOR = 0.05  # pseudo-rows per bin at the bin centre: the identity where data is thin
_MAX_BINS = 1 << 16
_KIND = 10
_VERSION = 1
_FORMAT = 1


# -- bins ----------------------------------------------------------------------


def _check_bins(bins: int) -> int:
    if (
        isinstance(bins, bool)
        or not isinstance(bins, int | np.integer)
        or not 2 <= bins <= _MAX_BINS
    ):
        raise ValueError(f"bins must be an integer in [2, {_MAX_BINS}], got {bins!r}")
    return int(bins)


def _centres(bins: int) -> Array:
    out: Array = (np.arange(bins, dtype=np.float64) + 0.5) / bins
    return out


def bin_index(scores: ArrayLike, bins: int = DEFAULT_BINS) -> NDArray[np.intp]:
    """Bin of each probability: ``i`` such that ``i/bins <= score < (i+1)/bins``
    (1.0 in the last bin). Raises ``ValueError`` naming the first score that is
    not a number in ``[0, 1]``.

    Edges are the correctly rounded ``i/bins``, so ``score >= threshold`` holds
    exactly when the bin is at or above the threshold's edge (``floor(score ×
    bins)`` would misplace e.g. 0.57 at 100 bins).
    """
    b = _check_bins(bins)
    s = np.asarray(scores, dtype=np.float64).ravel()
    bad = ~((s >= 0.0) & (s <= 1.0))
    if bad.any():
        raise ValueError(
            f"scores must be probabilities in [0, 1], got {float(s[np.argmax(bad)])!r}"
        )
    edges = np.arange(b + 1, dtype=np.float64) / b
    out: NDArray[np.intp] = np.minimum(np.searchsorted(edges, s, side="right") - 1, b - 1)
    return out


def score_counts(scores: ArrayLike, bins: int = DEFAULT_BINS) -> NDArray[np.int64]:
    """Histogram of probabilities on ``bins`` uniform bins (see :func:`bin_index`)."""
    out: NDArray[np.int64] = np.bincount(bin_index(scores, bins), minlength=bins).astype(np.int64)
    return out


def _threshold_bin(threshold: float, bins: int) -> int:
    """First bin predicted positive; ``ValueError`` unless the threshold is an edge."""
    t = float(threshold)
    if not 0.0 < t < 1.0:
        raise ValueError(f"threshold must be inside (0, 1), got {threshold!r}")
    k = round(t * bins)
    if k / bins != t:
        raise ValueError(
            f"threshold {threshold!r} is not an edge of {bins} uniform bins on [0, 1] "
            f"(nearest {k}/{bins}); choose bins so that threshold × bins is an integer"
        )
    return k


# -- calibration -----------------------------------------------------------------


def _pav(y: Array, w: Array) -> tuple[Array, Array, NDArray[np.intp]]:
    """Weighted isotonic (non-decreasing) fit by pool-adjacent-violators: the
    blocks' values (strictly increasing), weights and first indices."""
    vals: list[float] = []
    wts: list[float] = []
    starts: list[int] = []
    for i, (yi, wi) in enumerate(zip(y.tolist(), w.tolist(), strict=True)):
        vals.append(yi)
        wts.append(wi)
        starts.append(i)
        while len(vals) > 1 and vals[-2] >= vals[-1]:
            wsum = wts[-2] + wts[-1]
            vals[-2] = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum
            wts[-2] = wsum
            del vals[-1], wts[-1], starts[-1]
    return np.array(vals), np.array(wts), np.array(starts, dtype=np.intp)


def _smooth(totals: Array, positives: Array) -> Array:
    """Calibrated P(y = 1 | bin): per-bin rates with :data:`_PRIOR` pseudo-rows at
    the bin centre, made non-decreasing by isotonic regression, then linear
    between the blocks' weighted centres (centred isotonic regression: no steps
    for a shifted window to fall off)."""
    c = _centres(totals.size)
    w = totals + _PRIOR
    vals, wts, starts = _pav((positives + _PRIOR * c) / w, w)
    block = np.repeat(np.arange(vals.size), np.diff(np.append(starts, totals.size)))
    where = np.bincount(block, weights=w * c) / wts
    out: Array = np.clip(np.interp(c, where, vals), 0.0, 1.0)
    return out


@dataclass(frozen=True)
class Calibrator:
    """Calibrated ``P(y = 1 | bin)`` per uniform score bin, fitted on labelled
    baseline rows (or the identity, which assumes the scores are calibrated).

    Attributes:
        p: calibrated probability per bin, non-decreasing.
        counts: labelled baseline rows per bin (all zero for the identity).
        positives: positive labelled rows among them.

    About 2.0 kB as bytes (:meth:`to_bytes`) and 4.9 kB as JSON (:meth:`to_dict`)
    at 200 bins.
    """

    p: tuple[float, ...]
    counts: tuple[int, ...]
    positives: int = 0
    _arrays: tuple[Array, Array] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        b = _check_bins(len(self.p))
        if len(self.counts) != b:
            raise ValueError(f"calibrator has {b} probabilities but {len(self.counts)} counts")
        p = np.asarray(self.p, dtype=np.float64)
        if not bool(np.all((p >= 0.0) & (p <= 1.0))) or bool(np.any(np.diff(p) < 0.0)):
            raise ValueError("calibrator probabilities must be non-decreasing in [0, 1]")
        if min(self.counts) < 0 or not 0 <= self.positives <= sum(self.counts):
            raise ValueError(
                f"calibrator counts must be >= 0 with 0 <= positives <= rows, "
                f"got positives={self.positives} of {sum(self.counts)} rows"
            )
        counts = np.asarray(self.counts, dtype=np.float64)
        object.__setattr__(self, "_arrays", (p, counts))  # what estimate() reads

    @classmethod
    def identity(cls, bins: int = DEFAULT_BINS) -> Calibrator:
        """``P(y = 1 | bin)`` = the bin centre: for scores known to be calibrated,
        or too few labels. Estimates with it are flagged ``calibrated=False``."""
        b = _check_bins(bins)
        return cls(tuple(_centres(b).tolist()), (0,) * b)

    @classmethod
    def fit(
        cls,
        scores: ArrayLike,
        labels: ArrayLike,
        bins: int = DEFAULT_BINS,
        *,
        min_rows: int = MIN_ROWS,
        min_class_rows: int = MIN_CLASS_ROWS,
    ) -> Calibrator:
        """Fit on the baseline's raw positive-class probabilities and 0/1 labels.

        Raises ``ValueError`` on scores outside ``[0, 1]``, labels other than 0/1,
        different lengths, or fewer than ``min_rows`` rows or ``min_class_rows``
        of either class (then use :meth:`identity`, flagged as uncalibrated).
        """
        s = np.asarray(scores, dtype=np.float64).ravel()
        y = np.asarray(labels).ravel()
        if s.size != y.size:
            raise ValueError(f"{s.size} scores but {y.size} labels")
        numeric = y.dtype.kind in "biuf"
        if not numeric or not bool(np.all((y == 0) | (y == 1))):
            bad = y[~((y == 0) | (y == 1))] if numeric else y
            raise ValueError(f"labels must be 0/1 or booleans, got {bad.flat[0].item()!r}")
        idx = bin_index(s, bins)
        totals = np.bincount(idx, minlength=bins)
        positives = np.bincount(idx, weights=y.astype(np.float64), minlength=bins)
        return cls.from_counts(totals, positives, min_rows=min_rows, min_class_rows=min_class_rows)

    @classmethod
    def from_counts(
        cls,
        totals: ArrayLike,
        positives: ArrayLike,
        *,
        min_rows: int = MIN_ROWS,
        min_class_rows: int = MIN_CLASS_ROWS,
    ) -> Calibrator:
        """Fit on per-bin labelled rows and positives (uniform bins, as
        :func:`score_counts`); same checks as :meth:`fit`."""
        t = np.asarray(totals, dtype=np.float64).ravel()
        k = np.asarray(positives, dtype=np.float64).ravel()
        b = _check_bins(t.size)
        if k.size != b:
            raise ValueError(f"{b} bin totals but {k.size} bin positives")
        if not bool(np.all((k >= 0) & (k <= t) & (k == np.round(k)) & (t == np.round(t)))):
            raise ValueError(
                "bin totals and positives must be integers with 0 <= positives <= totals"
            )
        rows, pos = int(t.sum()), int(k.sum())
        if rows < min_rows:
            raise ValueError(
                f"calibration needs at least {min_rows} labelled rows, got {rows}; "
                f"Calibrator.identity({b}) assumes the scores are calibrated instead"
            )
        if min(pos, rows - pos) < min_class_rows:
            raise ValueError(
                f"calibration needs at least {min_class_rows} labelled rows of each class, "
                f"got {pos} positive and {rows - pos} negative"
            )
        return cls(tuple(_smooth(t, k).tolist()), tuple(int(v) for v in t), pos)

    @property
    def bins(self) -> int:
        return len(self.p)

    @property
    def rows(self) -> int:
        """Labelled rows fitted on (0 for the identity)."""
        return sum(self.counts)

    @property
    def calibrated(self) -> bool:
        """Fitted on labels (``False`` for the identity)."""
        return self.rows > 0

    def probability(self, scores: ArrayLike) -> Array:
        """Calibrated probability of raw scores (their bin's ``p``)."""
        out: Array = self._arrays[0][bin_index(scores, self.bins)]
        return out

    # -- encodings ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain dict."""
        return {
            "format": _FORMAT,
            "p": list(self.p),
            "counts": list(self.counts),
            "positives": self.positives,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibrator:
        """Inverse of :meth:`to_dict`; ``ValueError`` on malformed input."""
        try:
            if data.get("format", _FORMAT) != _FORMAT:
                raise ValueError(f"unsupported calibrator format {data.get('format')!r}")
            return cls(
                tuple(float(v) for v in data["p"]),
                tuple(int(v) for v in data["counts"]),
                int(data["positives"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed calibrator: {exc!r}") from exc

    def to_bytes(self) -> bytes:
        """Compact versioned encoding (kind 10)."""
        w = Writer(_KIND, _VERSION)
        w.pack("q", self.positives)
        w.counts(np.asarray(self.counts, dtype=np.int64))
        w.floats(np.asarray(self.p, dtype=np.float64))
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Calibrator:
        """Decode :meth:`to_bytes`; raises :class:`~sketches.DecodeError` on bad input."""
        r = Reader(data, _KIND, "Calibrator", (_VERSION,))
        positives = r.read_int()
        counts = r.counts(_MAX_BINS)
        p = r.floats(_MAX_BINS)
        r.done()
        check(is_nonneg(counts), r.name, "negative count")
        try:
            return cls(tuple(p.tolist()), tuple(counts.tolist()), positives)
        except ValueError as exc:
            raise DecodeError(f"{r.name}: {exc}") from exc


# -- the estimate ------------------------------------------------------------------


@dataclass(frozen=True)
class QualityEstimate:
    """Expected quality of one window (see the module docstring).

    Attributes:
        n: events in the window.
        threshold: the decision threshold (a bin edge).
        tp, fp, tn, fn: expected confusion counts.
        accuracy, precision, recall, f1, roc_auc: expected metrics, ``None``
            where undefined.
        accuracy_se, …, roc_auc_se: standard error of the realised value
            around the estimate when the assumptions hold (``None`` where the
            metric is undefined).
        calibrated: the calibrator was fitted on labels (not the identity).
        unsupported: share of the window's events in bins with fewer than
            :data:`SPARSE_ROWS` labelled baseline rows (``None`` when empty).
        binning_bound: how far the expected accuracy could move if the events
            sat anywhere inside their bins, the calibrated probability taken
            linear between bin centres (and 0, 1 at the ends): about
            ``1/bins`` for calibrated scores, large where scores crowd into a
            few bins (``None`` when empty).
    """

    n: int
    threshold: float
    tp: float
    fp: float
    tn: float
    fn: float
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    roc_auc: float | None
    accuracy_se: float | None
    precision_se: float | None
    recall_se: float | None
    f1_se: float | None
    roc_auc_se: float | None
    calibrated: bool
    unsupported: float | None
    binning_bound: float | None

    def metrics(self) -> dict[str, float | None]:
        """Metric name (:data:`METRICS`) → expected value."""
        return {m: getattr(self, m) for m in METRICS}

    def standard_error(self, metric: str) -> float | None:
        """The standard error of ``metric``; ``ValueError`` for an unknown name."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
        se: float | None = getattr(self, f"{metric}_se")
        return se

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0.0 else None


def _sqrt(var: float, den: float) -> float | None:
    return math.sqrt(max(var, 0.0)) / den if den > 0.0 else None


def estimate(counts: ArrayLike, calibrator: Calibrator, threshold: float = 0.5) -> QualityEstimate:
    """Expected quality of a window from its score histogram.

    Args:
        counts: events per uniform score bin (:func:`score_counts`), one per
            bin of ``calibrator``.
        calibrator: fitted on the baseline (or :meth:`Calibrator.identity`).
        threshold: the decision threshold; an event is predicted positive when
            its score is ``>= threshold``. Must be a bin edge.

    Raises :class:`~sketches.IncompatibleSketchError` when the histogram and
    the calibrator have different bin counts, ``ValueError`` on negative or
    fractional counts or a threshold that is not an edge. An empty window gives
    zero counts and ``None`` metrics.
    """
    n_b = np.asarray(counts, dtype=np.float64).ravel()
    b = calibrator.bins
    if n_b.size != b:
        raise IncompatibleSketchError(f"histogram has {n_b.size} bins but the calibrator {b}")
    bad = ~((n_b >= 0.0) & (n_b == np.floor(n_b)))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"bin counts must be non-negative integers, got {float(n_b[i])!r} in bin {i}"
        )
    k = _threshold_bin(threshold, b)
    p, rows = calibrator._arrays
    pos, neg = n_b * p, n_b * (1.0 - p)
    n = float(n_b.sum())
    tp, fn = float(pos[k:].sum()), float(pos[:k].sum())
    fp, tn = float(neg[k:].sum()), float(neg[:k].sum())
    # variance of each bin's positives: labelling noise plus the calibrator's
    var = n_b * p * (1.0 - p)
    if calibrator.calibrated:
        var = var + n_b**2 * p * (1.0 - p) / np.maximum(rows, 1.0)
    v_tp, v_fn = float(var[k:].sum()), float(var[:k].sum())
    pp, actual = tp + fp, tp + fn
    f1_den = pp + actual
    f1_var = (
        (2.0 * (pp + fn) / f1_den**2) ** 2 * v_tp + (2.0 * tp / f1_den**2) ** 2 * v_fn
        if f1_den > 0.0
        else 0.0
    )
    p_tot, n_tot = float(pos.sum()), float(neg.sum())
    auc = auc_se = None
    if p_tot > 0.0 and n_tot > 0.0:
        # pairs (positive, negative) ranked right, ties within a bin half
        below = np.cumsum(neg) - neg
        auc = float(np.dot(pos, below + 0.5 * neg)) / (p_tot * n_tot)
        # delta method: d AUC / d (positives of bin b), the bins independent
        above = p_tot - np.cumsum(pos)
        grad = (below + 0.5 * (neg - pos) - above - auc * (n_tot - p_tot)) / (p_tot * n_tot)
        auc_se = math.sqrt(float(np.dot(grad**2, var)))
    sparse = rows < SPARSE_ROWS
    # calibrated probability at the bin edges (0 and 1 at the ends): how far the
    # expected accuracy moves if the events sit anywhere within their bins
    edges = np.concatenate(([0.0], 0.5 * (p[1:] + p[:-1]), [1.0]))
    spread = float(np.dot(n_b, np.diff(edges)))
    return QualityEstimate(
        n=int(n),
        threshold=float(threshold),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        accuracy=_ratio(tp + tn, n),
        precision=_ratio(tp, pp),
        recall=_ratio(tp, actual),
        f1=_ratio(2.0 * tp, f1_den),
        roc_auc=auc,
        accuracy_se=_sqrt(v_tp + v_fn, n),
        precision_se=_sqrt(v_tp, pp),
        recall_se=_sqrt(fn**2 * v_tp + tp**2 * v_fn, actual**2),
        f1_se=math.sqrt(f1_var) if f1_den > 0.0 else None,
        roc_auc_se=auc_se,
        calibrated=calibrator.calibrated,
        unsupported=_ratio(float(n_b[sparse].sum()), n),
        binning_bound=_ratio(spread, n),
    )


# -- against the realised values -----------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """An estimate against the value the labels showed.

    Attributes:
        metric: name from :data:`METRICS`.
        estimated, realised: the two values (``None`` where undefined).
        error: ``realised - estimated``.
        z: ``error`` over the estimate's standard error; ``|z| > 3`` in window
            after window says the assumptions broke (concept drift, label
            shift, a changed model).
    """

    metric: str
    estimated: float | None
    realised: float | None
    error: float | None
    z: float | None


def compare(estimate: QualityEstimate, realised: Mapping[str, float | None]) -> dict[str, Gap]:
    """Errors of ``estimate`` against realised metrics (any of :data:`METRICS`;
    ``None`` or NaN for undefined); ``ValueError`` on an unknown name.

    The standard errors assume the realised metrics cover the whole window; on
    a random share ``f`` of it the label noise grows by ``1/sqrt(f)``, and so
    does ``|z|`` under no drift. Labels that arrive for a biased subset (say,
    only the disputed transactions) make any comparison meaningless.
    """
    out: dict[str, Gap] = {}
    for metric, value in realised.items():
        se = estimate.standard_error(metric)  # raises on an unknown name
        est: float | None = getattr(estimate, metric)
        real = None if value is None or math.isnan(value) else float(value)
        error = z = None
        if est is not None and real is not None:
            error = real - est
            z = error / se if se else None
        out[metric] = Gap(metric, est, real, error, z)
    return out

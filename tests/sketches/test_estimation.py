"""Estimated quality without labels (sketches.estimation): right under covariate
shift, for calibrated and miscalibrated models, against sklearn on sampled
labels; wrong by a wide margin under concept drift, and saying so."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from functools import cache

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from sketches.estimation import (
    DEFAULT_BINS,
    METRICS,
    Calibrator,
    QualityEstimate,
    bin_index,
    compare,
    estimate,
    score_counts,
)
from sketches.exceptions import DecodeError, IncompatibleSketchError

Array = NDArray[np.float64]
SLOPE, INTERCEPT = 2.0, -0.5  # ground truth: P(y = 1 | x) = sigmoid(2x - 0.5)
BASELINE = 20_000
WINDOW = 5_000
SHIFTS = (-1.0, -0.5, 0.5, 1.0, 1.5)  # covariate shift: x ~ N(mu, 1)
REPEATS = 4
# per-window bounds on |estimated - realised|; the accuracy one is the issue's.
# Measured worst over 40 other seeds x 3 models x 20 windows (2,400 windows):
# accuracy 0.021 (2 windows above 0.02), precision 0.082, recall 0.050, F1 0.049,
# ROC-AUC 0.048 (realised on the raw scores); |z| <= 4.3, ROC-AUC of the
# distorted models 4.95 (their binning loss is not in the standard error)
TOLERANCE = {"accuracy": 0.02, "precision": 0.1, "recall": 0.06, "f1": 0.06, "roc_auc": 0.06}
Z_MAX = 5.5


def _sigmoid(z: Array) -> Array:
    out: Array = 1.0 / (1.0 + np.exp(-z))
    return out


def _logit(x: Array) -> Array:
    return SLOPE * x + INTERCEPT


# model scores from the true logit: calibrated, and two monotone distortions
MODELS: dict[str, Callable[[Array], Array]] = {
    "calibrated": _sigmoid,
    "squared": lambda z: _sigmoid(z) ** 2,  # under-predicts positives
    "overconfident": lambda z: _sigmoid(2.0 * z),  # temperature 0.5
}


def _draw(
    rng: np.random.Generator, mu: float, n: int, truth: Callable[[Array], Array] = _logit
) -> tuple[Array, NDArray[np.int64]]:
    x = rng.normal(mu, 1.0, n)
    y = (rng.random(n) < _sigmoid(truth(x))).astype(np.int64)
    return x, y


def _realised(y: NDArray[np.int64], scores: Array, threshold: float = 0.5) -> dict[str, float]:
    pred = (scores >= threshold).astype(np.int64)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=np.nan)),
        "recall": float(recall_score(y, pred, zero_division=np.nan)),
        "f1": float(f1_score(y, pred, zero_division=np.nan)),
        "roc_auc": float(roc_auc_score(y, scores)),
    }


@cache
def _calibrator(model: str, seed: int = 11) -> Calibrator:
    x, y = _draw(np.random.default_rng(seed), 0.0, BASELINE)
    return Calibrator.fit(MODELS[model](_logit(x)), y)


@cache
def _shifted_windows(model: str) -> list[tuple[float, QualityEstimate, dict[str, float]]]:
    """(shift, estimate, realised) for REPEATS windows at each covariate shift."""
    rng = np.random.default_rng(2024)
    cal = _calibrator(model)
    out = []
    for mu in SHIFTS:
        for _ in range(REPEATS):
            x, y = _draw(rng, mu, WINDOW)
            scores = MODELS[model](_logit(x))
            out.append((mu, estimate(score_counts(scores), cal), _realised(y, scores)))
    return out


# -- under covariate shift the estimate tracks the realised value ----------------


@pytest.mark.parametrize("model", list(MODELS))
def test_accuracy_tracks_realised_under_covariate_shift(model: str) -> None:
    windows = _shifted_windows(model)
    errors = [est.accuracy - real["accuracy"] for _, est, real in windows]  # type: ignore[operator]
    print(f"{model}: accuracy max |error| {max(map(abs, errors)):.4f}")
    for (mu, est, real), err in zip(windows, errors, strict=True):
        assert abs(err) <= 0.02, (model, mu, est.accuracy, real["accuracy"])
    assert abs(float(np.mean(errors))) < 0.01  # no systematic bias (calibrator noise: sd 0.003)


@pytest.mark.parametrize("model", list(MODELS))
def test_every_metric_close_under_covariate_shift(model: str) -> None:
    worst = dict.fromkeys(METRICS, 0.0)
    for mu, est, real in _shifted_windows(model):
        for metric, gap in compare(est, real).items():
            assert gap.error is not None and gap.z is not None, (metric, mu)
            worst[metric] = max(worst[metric], abs(gap.error))
            assert abs(gap.error) <= TOLERANCE[metric], (model, mu, metric, gap)
            assert abs(gap.z) < Z_MAX, (model, mu, metric, gap)
        assert est.calibrated and est.unsupported is not None and est.unsupported < 0.2
    print(model, {m: round(v, 4) for m, v in worst.items()})


def test_calibrator_is_what_fixes_a_miscalibrated_model() -> None:
    rng = np.random.default_rng(5)
    identity = Calibrator.identity()
    for model in ("squared", "overconfident"):
        x, y = _draw(rng, 0.5, WINDOW)
        scores = MODELS[model](_logit(x))
        counts = score_counts(scores)
        real = _realised(y, scores)["accuracy"]
        naive = estimate(counts, identity)
        fitted = estimate(counts, _calibrator(model))
        assert naive.accuracy is not None and fitted.accuracy is not None
        print(f"{model}: realised {real:.3f} fitted {fitted.accuracy:.3f} raw {naive.accuracy:.3f}")
        assert abs(naive.accuracy - real) > 0.04
        assert abs(fitted.accuracy - real) < 0.02
        assert not naive.calibrated and naive.unsupported == 1.0 and fitted.calibrated


def test_calibrator_recovers_the_true_probability() -> None:
    z = _logit(np.linspace(-1.5, 1.5, 301))  # the baseline's bulk
    for model, f in MODELS.items():
        p = np.asarray(_calibrator(model).p)
        assert np.all(np.diff(p) >= 0.0)
        error = np.abs(_calibrator(model).probability(f(z)) - _sigmoid(z))
        # measured over 30 baselines: mean at most 0.016, max 0.054
        assert float(error.mean()) < 0.025 and float(error.max()) < 0.08, model


# -- under concept drift it is wrong, and compare() says so -----------------------

DRIFTS: dict[str, Callable[[Array], Array]] = {
    "flipped": lambda x: -SLOPE * x + INTERCEPT,  # the relation reverses
    "flattened": lambda x: SLOPE / 4.0 * x + INTERCEPT,  # the inputs say less
}


@pytest.mark.parametrize("drift", list(DRIFTS))
@pytest.mark.parametrize("mu", [0.0, 1.0])
def test_concept_drift_breaks_the_estimate(drift: str, mu: float) -> None:
    rng = np.random.default_rng(99)
    cal = _calibrator("calibrated")
    for _ in range(3):
        x, y = _draw(rng, mu, WINDOW, truth=DRIFTS[drift])
        scores = _sigmoid(_logit(x))
        gaps = compare(estimate(score_counts(scores), cal), _realised(y, scores))
        acc = gaps["accuracy"]
        assert acc.error is not None and acc.z is not None
        print(f"{drift} mu={mu}: estimated {acc.estimated:.3f} realised {acc.realised:.3f}")
        assert acc.error < -0.1 and acc.z < -10.0


def test_label_shift_hides_in_accuracy_but_not_in_precision() -> None:
    rng = np.random.default_rng(3)
    x, y = _draw(rng, 0.0, 4 * WINDOW)
    keep = np.flatnonzero((y == 0) | (rng.random(y.size) < 0.3))[:WINDOW]  # positives x0.3
    scores = _sigmoid(_logit(x[keep]))
    gaps = compare(
        estimate(score_counts(scores), _calibrator("calibrated")), _realised(y[keep], scores)
    )
    print({m: (round(g.error or 0.0, 3), round(g.z or 0.0, 1)) for m, g in gaps.items()})
    assert abs(gaps["accuracy"].error or 0.0) < 0.045  # 0.021 on average (sd 0.006), 100 seeds
    assert (gaps["precision"].error or 0.0) < -0.15 and (gaps["precision"].z or 0.0) < -10.0


# -- the arithmetic ---------------------------------------------------------------


def test_metrics_are_exact_when_the_calibrator_holds_the_window_rates() -> None:
    """With p_b = the window's own positive rate per bin, the expected confusion
    matrix is the realised one and ROC-AUC is sklearn's on the binned scores
    (ties count half)."""
    rng = np.random.default_rng(1)
    bins = 20
    n_b = rng.choice([0, 40, 40, 40], bins)
    k_b = np.zeros(bins, dtype=np.int64)
    k_b[n_b > 0] = np.sort(rng.integers(0, 41, int(np.sum(n_b > 0))))
    p = np.maximum.accumulate(k_b / 40)  # monotone; empty bins take their left neighbour's
    cal = Calibrator(tuple(p.tolist()), tuple(int(v) for v in n_b), int(k_b.sum()))
    scores = np.repeat((np.arange(bins) + 0.5) / bins, n_b)
    y = np.concatenate([np.r_[np.ones(k), np.zeros(n - k)] for n, k in zip(n_b, k_b, strict=True)])
    for threshold in (0.05, 0.3, 0.5, 0.85):
        est = estimate(n_b, cal, threshold)
        for metric, real in _realised(y.astype(np.int64), scores, threshold).items():
            assert getattr(est, metric) == pytest.approx(real, abs=1e-12), (threshold, metric)
        pred = scores >= threshold
        assert est.tp == pytest.approx(float(np.sum(pred & (y == 1))))
        assert est.tn == pytest.approx(float(np.sum(~pred & (y == 0))))


def test_standard_errors_match_the_spread_of_sampled_labels() -> None:
    """Labels drawn per bin from p_b: the realised metrics average to the estimate
    and spread by its standard errors (identity calibrator: labelling noise only)."""
    rng = np.random.default_rng(8)
    bins = 40
    cal = Calibrator.identity(bins)
    scores = _sigmoid(rng.normal(-0.3, 1.5, 3_000))
    n_b = score_counts(scores, bins)
    est = estimate(n_b, cal)
    p = np.asarray(cal.p)
    draws = 4_000
    pos = rng.binomial(n_b, p, size=(draws, bins)).astype(np.float64)
    neg = n_b - pos
    k = bins // 2
    tp, fn, fp, tn = (a.sum(axis=1) for a in (pos[:, k:], pos[:, :k], neg[:, k:], neg[:, :k]))
    below = np.cumsum(neg, axis=1) - neg
    auc = (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))
    sampled = {
        "accuracy": (tp + tn) / n_b.sum(),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "roc_auc": auc,
    }
    for metric, values in sampled.items():
        value, se = getattr(est, metric), est.standard_error(metric)
        assert se is not None
        assert abs(float(values.mean()) - value) < 0.1 * se, metric
        assert float(values.std()) == pytest.approx(se, rel=0.1), metric


def test_predicted_class_is_exact_at_any_edge() -> None:
    rng = np.random.default_rng(4)
    edges = np.arange(DEFAULT_BINS + 1) / DEFAULT_BINS
    scores = np.concatenate([rng.random(10_000), edges, np.nextafter(edges, -1.0)[1:]])
    counts = score_counts(scores)
    for threshold in (0.005, 0.3, 0.5, 0.57, 0.8, 0.995):
        est = estimate(counts, Calibrator.identity(), threshold)
        assert est.tp + est.fp == pytest.approx(float(np.sum(scores >= threshold)), abs=1e-9)
    assert list(bin_index([0.0, 0.57, 1.0], 100)) == [0, 57, 99]
    assert bin_index([np.nextafter(0.57, 0.0)], 100)[0] == 56  # floor(0.57 * 100) is 56 too


@pytest.mark.parametrize("threshold", [0.333, 0.0, 1.0, math.nan, -0.5])
def test_a_threshold_off_the_edges_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match=f"threshold.*{threshold!r}"):
        estimate(np.ones(DEFAULT_BINS), Calibrator.identity(), threshold)


@pytest.mark.parametrize("bad", [-0.01, 1.5, math.nan, math.inf])
def test_scores_outside_0_1_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match=f"probabilities in \\[0, 1\\], got {bad!r}"):
        score_counts([0.2, bad])


def test_empty_and_one_sided_windows_give_none_not_nan() -> None:
    cal = _calibrator("calibrated")
    empty = estimate(np.zeros(DEFAULT_BINS), cal)
    assert empty.n == 0 and empty.tp == 0.0 and empty.unsupported is None
    assert all(v is None for v in empty.metrics().values())
    assert all(empty.standard_error(m) is None for m in METRICS)
    json.dumps(empty.to_dict(), allow_nan=False)
    low = estimate(score_counts(np.full(100, 0.1)), cal)  # nothing predicted positive
    assert low.precision is None and low.precision_se is None and low.accuracy is not None
    assert low.f1 is not None and low.f1 == 0.0 and low.roc_auc == 0.5  # one bin: all ties
    json.dumps(low.to_dict(), allow_nan=False)


def test_bad_counts_are_refused() -> None:
    cal = Calibrator.identity()
    with pytest.raises(IncompatibleSketchError, match="100 bins but the calibrator 200"):
        estimate(np.ones(100), cal)
    with pytest.raises(ValueError, match=r"-1\.0 in bin 3"):
        estimate(np.r_[np.ones(3), -1.0, np.ones(196)], cal)
    with pytest.raises(ValueError, match=r"0\.5 in bin 0"):
        estimate(np.r_[0.5, np.ones(199)], cal)


def test_compare_handles_undefined_and_unknown_metrics() -> None:
    est = estimate(score_counts(np.full(100, 0.1)), _calibrator("calibrated"))
    gaps = compare(est, {"precision": math.nan, "accuracy": 0.9})
    assert gaps["precision"].error is None and gaps["precision"].estimated is None
    assert gaps["accuracy"].error == pytest.approx(0.9 - est.accuracy)  # type: ignore[operator]
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        compare(est, {"auc": 0.5})


# -- the calibrator ----------------------------------------------------------------


def test_calibrator_needs_enough_labels_of_both_classes() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(5_000)
    with pytest.raises(ValueError, match=r"at least 1000 labelled rows, got 999.*identity"):
        Calibrator.fit(scores[:999], scores[:999] > 0.5)
    with pytest.raises(ValueError, match="of each class, got 0 positive and 5000 negative"):
        Calibrator.fit(scores, np.zeros(5_000))
    with pytest.raises(ValueError, match="got 2"):
        Calibrator.fit(scores, np.r_[np.zeros(4_999), 2])
    with pytest.raises(ValueError, match="got 'yes'"):
        Calibrator.fit(scores[:2], ["yes", "no"])
    with pytest.raises(ValueError, match="5000 scores but 10 labels"):
        Calibrator.fit(scores, np.zeros(10))
    small = Calibrator.fit(scores[:200], scores[:200] > 0.5, min_rows=100, min_class_rows=10)
    assert small.rows == 200 and small.calibrated


def test_calibrator_round_trips_and_is_small() -> None:
    cal = _calibrator("overconfident")
    text = json.dumps(cal.to_dict(), allow_nan=False)
    data = cal.to_bytes()
    print(f"calibrator for {cal.bins} bins: {len(data)} bytes, JSON {len(text)} bytes")
    assert Calibrator.from_dict(json.loads(text)) == cal
    assert Calibrator.from_bytes(data) == cal
    assert len(data) < 2_200 and len(text) < 6_000
    ident = Calibrator.identity(50)
    assert Calibrator.from_bytes(ident.to_bytes()) == ident and not ident.calibrated


def test_calibrator_decoding_rejects_bad_input() -> None:
    data = _calibrator("calibrated").to_bytes()
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            Calibrator.from_bytes(data[:cut])
    rng = np.random.default_rng(0)
    for _ in range(200):
        with pytest.raises(DecodeError):
            Calibrator.from_bytes(rng.bytes(int(rng.integers(0, 64))))
    with pytest.raises(DecodeError):
        Calibrator.from_bytes(data + b"\0")
    broken = bytearray(data)
    broken[-8:] = np.float64(math.nan).tobytes()  # last probability
    with pytest.raises(DecodeError, match="non-decreasing"):
        Calibrator.from_bytes(bytes(broken))
    good = _calibrator("calibrated").to_dict()
    for bad in ({**good, "p": good["p"][:-1]}, {**good, "format": 2}, {"p": [0.5, 0.6]}):
        with pytest.raises(ValueError):
            Calibrator.from_dict(bad)


def test_estimate_is_fast() -> None:
    cal = _calibrator("calibrated")
    counts = score_counts(_sigmoid(np.random.default_rng(0).normal(size=WINDOW)))
    runs = 2_000
    start = time.perf_counter()
    for _ in range(runs):
        estimate(counts, cal)
    us = (time.perf_counter() - start) / runs * 1e6
    print(f"estimate on {DEFAULT_BINS} bins: {us:.0f} µs")
    assert us < 1_000

"""Binned ROC-AUC and average precision against scikit-learn on real models' scores.

The stated accuracy (within 0.005 at the default 160 log-odds bins) is checked on
held-out scores of several model families, class balances and separations; the
returned worst-case bounds are checked to hold everywhere, including on data built
to be hard for binning.
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier

from sketches import ClassificationQuality, ScoreGrid
from sketches.ranking import average_precision, bin_shape, roc_auc

settings.register_profile("ranking", max_examples=60, deadline=None, database=None)
settings.load_profile("ranking")

Array = NDArray[np.float64]
STATED = 0.005  # the accuracy the docstrings promise at the default binning ...
FEW = 250  # ... with this many positives; 2 × with fewer (~100)
MODELS = ["logistic", "naive_bayes", "tree6", "isotonic", "boosting", "forest"]
DATASETS = [(0.5, 0.5), (1.0, 0.9), (2.0, 0.99), (0.3, 0.95), (2.0, 0.999)]


@cache
def held_out(model: str, sep: float, weight: float) -> tuple[NDArray[np.int64], Array]:
    """Labels and positive-class scores of a model fitted on one half, scored on the other."""
    x, y = make_classification(
        40_000,
        20,
        n_informative=8,
        class_sep=sep,
        weights=[weight],
        flip_y=0.01,
        random_state=int(sep * 10 + weight * 1000),
    )
    est = {
        "logistic": LogisticRegression(max_iter=1000),
        "naive_bayes": GaussianNB(),
        "tree6": DecisionTreeClassifier(max_depth=6, random_state=0),
        "isotonic": CalibratedClassifierCV(GaussianNB(), method="isotonic"),
        "boosting": HistGradientBoostingClassifier(max_iter=60, random_state=0),
        "forest": RandomForestClassifier(30, max_depth=10, n_jobs=1, random_state=0),
    }[model]
    est.fit(x[::2], y[::2])
    return y[1::2], est.predict_proba(x[1::2])[:, 1]


def binned(y: NDArray[np.int64], scores: Array, **kw: object) -> dict[str, object]:
    q = ClassificationQuality(["0", "1"], **kw)  # type: ignore[arg-type]
    q.update_many(y, (scores > 0.5).astype(np.int64), scores)
    return q.metrics()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("sep", "weight"), DATASETS)
def test_binary_auc_and_ap_within_stated_accuracy(model: str, sep: float, weight: float) -> None:
    y, s = held_out(model, sep, weight)
    m = binned(y, s)
    auc, ap = roc_auc_score(y, s), average_precision_score(y, s)
    tol = STATED if y.sum() >= FEW else 2 * STATED
    assert abs(m["roc_auc"] - auc) <= tol, (m["roc_auc"], auc)  # type: ignore[operator]
    assert abs(m["pr_auc"] - ap) <= tol, (m["pr_auc"], ap)  # type: ignore[operator]
    assert abs(m["roc_auc"] - auc) <= m["roc_auc_bound"] + 1e-12  # type: ignore[operator]
    assert abs(m["pr_auc"] - ap) <= m["pr_auc_bound"] + 1e-12  # type: ignore[operator]


def test_uniform_bins_miss_confident_scores_that_log_odds_bins_resolve() -> None:
    """Why the default is log-odds: a confident model's negatives sit below 1e-3."""
    y, s = held_out("boosting", 2.0, 0.99)
    auc = roc_auc_score(y, s)
    uniform = binned(y, s, score_bins=160, score_scale="uniform")
    logit = binned(y, s)
    assert abs(uniform["roc_auc"] - auc) > 5 * abs(logit["roc_auc"] - auc)  # type: ignore[operator]
    assert uniform["roc_auc_bound"] > logit["roc_auc_bound"]  # type: ignore[operator]


def test_scores_on_few_values_are_exact() -> None:
    """One distinct score per bin is a tie, exactly as scikit-learn counts it."""
    rng = np.random.default_rng(3)
    s = rng.choice([0.0, 0.02, 0.1, 0.5, 0.77, 0.9, 1.0], 5000)
    y = (rng.random(5000) < s * 0.8 + 0.1).astype(np.int64)
    m = binned(y, s)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert m["roc_auc_bound"] == 0.0 and m["pr_auc_bound"] == 0.0


@given(
    n=st.integers(2, 400),
    seed=st.integers(0, 2**32 - 1),
    shape=st.sampled_from(["uniform", "extreme", "clustered", "discrete"]),
    bins=st.sampled_from([2, 3, 16, 160]),
    scale=st.sampled_from(["logit", "uniform"]),
)
def test_bounds_always_hold(n: int, seed: int, shape: str, bins: int, scale: str) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    if shape == "uniform":
        s = rng.random(n)
    elif shape == "extreme":
        s = expit(rng.normal(0.0, 15.0, n) + 3.0 * y)
    elif shape == "clustered":
        s = np.clip(0.3 + 1e-3 * rng.normal(size=n) + 1e-3 * y, 0.0, 1.0)
    else:
        s = rng.choice([0.0, 0.25, 0.26, 1.0], n)
    m = binned(y, s, score_bins=bins, score_scale=scale)
    if y.min() == y.max():
        assert m["roc_auc"] is None and m["roc_auc_bound"] is None
        if y.max() == 0:
            assert m["pr_auc"] is None
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auc, ap = roc_auc_score(y, s), average_precision_score(y, s)
    assert abs(m["roc_auc"] - auc) <= m["roc_auc_bound"] + 1e-9  # type: ignore[operator]
    assert abs(m["pr_auc"] - ap) <= m["pr_auc_bound"] + 1e-9  # type: ignore[operator]


def test_scores_closer_than_the_tie_tolerance_count_as_tied() -> None:
    """The documented exception to the bounds: distinct scores within a relative 10^-5
    of their distance to the bin reference, alone in their bin, are taken for a tie."""
    y = np.array([0, 1, 0, 1])
    s = np.array([1e-9, 1e-9 * (1 + 1e-7), 1e-9, 1e-9 * (1 + 1e-7)])
    m = binned(y, s)
    assert m["roc_auc"] == 0.5 and m["roc_auc_bound"] == 0.0
    assert roc_auc_score(y, s) == 1.0


@given(
    scores=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=50),
    bins=st.integers(2, 300),
    scale=st.sampled_from(["logit", "uniform"]),
    logit_max=st.sampled_from([1.0, 14.0, 30.0]),
)
def test_grid_index_equals_searchsorted(
    scores: list[float], bins: int, scale: str, logit_max: float
) -> None:
    grid = ScoreGrid(bins, scale, logit_max)
    s = np.concatenate(
        [scores, grid.edges, np.nextafter(grid.edges, 2.0), np.nextafter(grid.edges, -1.0)]
    )
    s = np.clip(s, 0.0, 1.0)
    expected = np.searchsorted(grid.edges[1:-1], s, side="left")
    assert np.array_equal(grid.index(s), expected)


def test_grid_rejects_bad_parameters() -> None:
    for kw, word in (
        ({"bins": 1}, "1"),
        ({"bins": 2.5}, "2.5"),
        ({"scale": "log"}, "'log'"),
        ({"logit_max": 0.0}, "0.0"),
    ):
        with pytest.raises(ValueError, match=word):
            ScoreGrid(**kw)  # type: ignore[arg-type]


def test_ranking_functions_are_vectorised_over_rows() -> None:
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 5, (3, 8)).astype(np.float64)
    neg = rng.integers(0, 5, (3, 8)).astype(np.float64)
    pos[2] = 0.0
    spread = np.full((3, 8), 0.5)
    tied = np.zeros((3, 8), dtype=bool)
    auc, auc_b = roc_auc(pos, neg, tied)
    ap, ap_b = average_precision(pos, neg, spread, tied)
    for i in range(2):
        assert auc[i] == roc_auc(pos[i], neg[i], tied[i])[0]
        row = average_precision(pos[i], neg[i], spread[i], tied[i])[0]
        assert ap[i] == pytest.approx(float(row))
    assert np.isnan(auc[2]) and np.isnan(ap[2]) and np.isnan(auc_b[2]) and np.isnan(ap_b[2])
    count = np.array([1.0, 3.0, 3.0, 2.0])
    sum_d = np.array([0.1, 0.3, 0.0, 0.2])
    sum_d2 = np.array([0.01, 0.03, 0.02, 0.02])
    spread, tied = bin_shape(count, sum_d, sum_d2, np.full(4, 0.2))
    assert tied.tolist() == [True, True, False, True]
    assert spread[0] == 0.0
    assert spread[2] == pytest.approx(np.sqrt(0.02 / 3) * np.sqrt(12) / 0.2)

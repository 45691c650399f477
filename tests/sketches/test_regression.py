"""RegressionQuality against scikit-learn and numpy on the same rows.

Sum-based metrics must equal scikit-learn's to float rounding; error quantiles must
be within the stated ``alpha · |x| + min_error`` of ``numpy.quantile(...,
method="lower")`` on many data shapes; merges of random splits and vector addition
must equal the whole; the encodings round trip and reject bad input.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    r2_score,
    root_mean_squared_error,
)

from sketches import DecodeError, IncompatibleSketchError, RegressionQuality, SignedLogBuckets

settings.register_profile("regression", max_examples=60, deadline=None, database=None)
settings.load_profile("regression")

Array = NDArray[np.float64]
QS = [0.0, 0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0]
SHAPES = ["normal", "heavy", "skewed", "offset", "integer", "exact", "tiny", "mixed"]


def sample(shape: str, n: int, seed: int) -> tuple[Array, Array]:
    rng = np.random.default_rng(seed)
    y = rng.normal(50.0, 10.0, n)
    if shape == "normal":
        e = rng.normal(0.0, 2.0, n)
    elif shape == "heavy":
        e = rng.standard_t(2, n) * 5.0
    elif shape == "skewed":
        e = rng.lognormal(0.0, 2.0, n) - 1.0
    elif shape == "offset":
        y = 1e4 + rng.normal(0.0, 1.0, n)
        e = rng.normal(0.0, 0.3, n)
    elif shape == "integer":
        y = rng.poisson(20.0, n).astype(np.float64)
        e = rng.integers(-3, 4, n).astype(np.float64)
    elif shape == "exact":
        e = np.zeros(n)
    elif shape == "tiny":
        y = rng.normal(0.0, 1e-3, n)
        e = rng.normal(0.0, 1e-5, n)
    else:
        e = np.concatenate([np.zeros(n // 4), rng.normal(0, 1e-8, n // 4), rng.normal(0, 1e3, n)])
        e = rng.permutation(e)[:n]
    return y, y + e


@pytest.mark.parametrize("shape", SHAPES)
def test_metrics_equal_sklearn(shape: str) -> None:
    y, p = sample(shape, 20_000, SHAPES.index(shape))
    r = RegressionQuality()
    r.update_many(y, p)
    m = r.metrics()
    assert m["n"] == y.size and m["missing"] == m["rejected"] == 0
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-12, abs=1e-300)
    assert m["mse"] == pytest.approx(mean_squared_error(y, p), rel=1e-12, abs=1e-300)
    assert m["rmse"] == pytest.approx(root_mean_squared_error(y, p), rel=1e-12, abs=1e-300)
    assert m["mape"] == pytest.approx(mean_absolute_percentage_error(y, p), rel=1e-12, abs=1e-300)
    assert m["mean_error"] == pytest.approx(float(np.mean(p - y)), rel=1e-9, abs=1e-12)
    # R² from sums loses digits with the offset of y: (mean / std)² · 1e-16 relative
    y_scale = float(np.mean(y) ** 2 / np.var(y))
    assert m["r2"] == pytest.approx(r2_score(y, p), abs=1e-12 * (1.0 + y_scale))


def test_r2_with_a_shift_near_the_mean_is_accurate_for_offset_targets() -> None:
    rng = np.random.default_rng(1)
    y = 1e8 + rng.normal(0.0, 1.0, 10_000)
    p = y + rng.normal(0.0, 0.5, 10_000)
    unshifted, shifted = RegressionQuality(), RegressionQuality(shift=1e8)
    for r in (unshifted, shifted):
        r.update_many(y, p)
    assert shifted.r2() == pytest.approx(r2_score(y, p), abs=1e-9)
    assert unshifted.r2() == 0.0  # the spread is below what Σy² can resolve: "constant"


@pytest.mark.parametrize(
    ("y", "p", "expected"),
    [
        ([3.0, 3.0, 3.0], [3.0, 3.0, 3.0], 1.0),
        ([3.0, 3.0, 3.0], [3.0, 2.0, 3.0], 0.0),
        ([0.1] * 1000, [0.1] * 1000, 1.0),
        ([0.1] * 1000, [0.2] * 1000, 0.0),
        ([1.0], [2.0], None),
    ],
)
def test_r2_of_a_constant_target_is_sklearns(y: list[float], p: list[float], expected: Any) -> None:
    r = RegressionQuality()
    r.update_many(y, p)
    assert r.r2() == expected
    if expected is not None and np.var(y) == 0.0:
        assert r2_score(y, p) == expected
    # for 1000 × 0.1 scikit-learn's own mean rounds off 0.1 and its R² is about -5e31


@pytest.mark.parametrize("shape", SHAPES)
def test_error_quantiles_within_stated_accuracy(shape: str) -> None:
    y, p = sample(shape, 20_000, 10 + SHAPES.index(shape))
    r = RegressionQuality()
    r.update_many(y, p)
    e = p - y
    b = r.buckets
    for absolute, values in ((False, e), (True, np.abs(e))):
        got = r.quantiles(QS, absolute=absolute)
        want = np.quantile(values, QS, method="lower")
        for g, w in zip(got, want, strict=True):
            assert g is not None
            assert abs(g - w) <= b.alpha * abs(w) + b.min_value, (absolute, g, w)
    m = r.metrics()
    assert m["abs_error_quantiles"]["p90"] == r.quantile(0.9, absolute=True)
    assert list(m["error_quantiles"]) == ["p50", "p90", "p95", "p99"]


@given(
    values=st.lists(
        st.one_of(
            st.floats(-1e12, 1e12),
            st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-7, 5e-324, 1e9, 2e9]),
        ),
        min_size=1,
        max_size=80,
    ),
    params=st.sampled_from([(0.01, 1e-6, 1e9), (0.05, 1e-3, 1e3), (0.2, 1.0, 2.0)]),
)
def test_log_buckets_hold_their_guarantee(
    values: list[float], params: tuple[float, float, float]
) -> None:
    b = SignedLogBuckets(*params)
    x = np.array(values)
    counts = np.bincount(b.index(x), minlength=b.size).astype(np.float64)
    assert counts.size == b.size and counts.sum() == x.size
    for absolute, v in ((False, x), (True, np.abs(x))):
        got = b.quantiles(counts, QS, absolute=absolute)
        for g, w in zip(got, np.quantile(v, QS, method="lower"), strict=True):
            if g is None:  # overflow starts at the top of max_value's bucket
                assert abs(w) > b.max_value
            else:
                assert abs(g - w) <= b.alpha * abs(w) + b.min_value


def test_log_bucket_slots_are_in_ascending_order_of_value() -> None:
    b = SignedLogBuckets(0.05, 1e-3, 1e3)
    x = np.sort(np.concatenate([[-1e6, -1e3, -1.0, -1e-4, 0.0, 1e-4, 1.0, 1e3, 1e6]]))
    slots = b.index(x)
    assert np.all(np.diff(slots) >= 0)
    assert slots[0] == 0 and slots[-1] == b.size - 1 and slots[4] == b.zero
    assert b.quantiles(np.zeros(b.size), [0.5]) == [None]
    with pytest.raises(ValueError, match=r"1\.5"):
        b.quantiles(np.ones(b.size), [1.5])
    for kw, word in (
        ({"alpha": 0.0}, "alpha"),
        ({"min_value": 5.0, "max_value": 1.0}, "min_value=5.0"),
        ({"alpha": 1e-6}, "buckets"),
    ):
        with pytest.raises(ValueError, match=word):
            SignedLogBuckets(**kw)  # type: ignore[arg-type]


def test_default_layout_length() -> None:
    b = SignedLogBuckets()
    assert (b.per_sign, b.size) == (1728, 3459)
    r = RegressionQuality()
    assert r.to_vector().size == 3468
    layout = r.layout()
    assert layout["buckets"] == (9, (3459,)) and layout["n"] == (2, (1,))


def test_missing_and_infinite_rows_are_counted_and_left_out() -> None:
    r = RegressionQuality()
    r.update_many(
        [1.0, np.nan, 2.0, np.inf, 3.0, np.inf, 4.0], [1.5, 1.0, np.nan, 1.0, -np.inf, np.inf, 4.0]
    )
    m = r.metrics()
    assert (m["n"], m["missing"], m["rejected"]) == (2, 2, 3)
    assert m["mae"] == 0.25
    with pytest.raises(ValueError, match="3 values but y_pred has 2"):
        r.update_many([1.0, 2.0, 3.0], [1.0, 2.0])


def test_empty_state_answers_none_everywhere() -> None:
    m = RegressionQuality().metrics()
    assert m["n"] == 0
    for key in ("mean_error", "mae", "mse", "rmse", "r2", "mape"):
        assert m[key] is None
    assert set(m["error_quantiles"].values()) == {None}
    assert set(m["abs_error_quantiles"].values()) == {None}


def test_errors_beyond_max_error_give_none_quantiles() -> None:
    r = RegressionQuality(max_error=10.0)
    r.update_many(np.zeros(100), np.concatenate([np.ones(90), np.full(10, 1e6)]))
    assert r.quantile(0.5) == pytest.approx(1.0, rel=0.01)
    assert r.quantile(0.99) is None and r.quantile(0.99, absolute=True) is None


# -- merge, vectors, encodings ----------------------------------------------------------
@given(
    cuts=st.lists(st.integers(0, 2000), max_size=6),
    shape=st.sampled_from(SHAPES),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=30)
def test_merge_and_vector_addition_equal_the_whole(cuts: list[int], shape: str, seed: int) -> None:
    y, p = sample(shape, 2000, seed)
    p[::97] = np.nan
    whole = RegressionQuality(shift=40.0)
    whole.update_many(y, p)
    bounds = [0, *sorted(cuts), y.size]
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        part = RegressionQuality(shift=40.0)
        part.update_many(y[lo:hi], p[lo:hi])
        parts.append(part)
    merged = RegressionQuality(shift=40.0)
    for part in parts:
        before = part.to_bytes()
        merged.merge(part)
        assert part.to_bytes() == before
    added = sum((q.to_vector() for q in parts), np.zeros(whole.to_vector().size))
    for state in (merged, RegressionQuality.from_vector(added, 40.0)):
        assert state == whole
        got, want = state.metrics(), whole.metrics()
        for key in ("n", "missing", "error_quantiles", "abs_error_quantiles"):
            assert got[key] == want[key]
        for key in ("mae", "mse", "rmse", "mape", "mean_error"):
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12)
        y_ok = y[~np.isnan(p)]
        y_scale = float((np.mean(y_ok) - 40.0) ** 2 / np.var(y_ok))
        assert got["r2"] == pytest.approx(want["r2"], rel=1e-9, abs=1e-12 * (1.0 + y_scale))


def test_merge_refuses_other_parameters() -> None:
    a = RegressionQuality()
    for other in (RegressionQuality(1.0), RegressionQuality(alpha=0.02)):
        with pytest.raises(IncompatibleSketchError, match="shift") as info:
            a.merge(other)
        assert "'alpha': 0.01" in str(info.value)
    with pytest.raises(TypeError):
        a.merge(object())  # type: ignore[arg-type]


def sample_state() -> RegressionQuality:
    y, p = sample("mixed", 3000, 9)
    p[:5] = np.nan
    p[5:7] = np.inf
    r = RegressionQuality(shift=50.0, alpha=0.02, min_error=1e-4, max_error=1e4)
    r.update_many(y, p)
    return r


def test_round_trips_through_bytes_and_vectors() -> None:
    for r in (sample_state(), RegressionQuality()):
        data = r.to_bytes()
        back = RegressionQuality.from_bytes(data)
        assert back == r and back.to_bytes() == data and back.metrics() == r.metrics()
        v = r.to_vector()
        for form in (v, v.astype("<f8").tobytes()):
            assert RegressionQuality.from_vector(form, **r.params()) == r
    assert len(RegressionQuality().to_bytes()) < 120
    assert len(sample_state().to_bytes()) < 8 * sample_state().to_vector().size / 4


def test_bad_vectors_and_bytes_raise_decode_error() -> None:
    r = sample_state()
    v = r.to_vector()
    bad: list[Any] = [v[:-1], np.append(v, 1.0), v.tobytes()[:-1]]
    for i, value in ((0, -1.0), (2, 1.5), (4, math.nan), (2, v[2] + 1), (20, 0.5)):
        w = v.copy()
        w[i] = value
        bad.append(w)
    for vec in bad:
        with pytest.raises(DecodeError):
            RegressionQuality.from_vector(vec, **r.params())
    data = r.to_bytes()
    for n in range(len(data)):
        with pytest.raises(DecodeError):
            RegressionQuality.from_bytes(data[:n])
    rng = np.random.default_rng(1)
    for i in range(1500):
        noise = rng.integers(0, 256, int(rng.integers(0, 120))).astype(np.uint8).tobytes()
        try:
            back = RegressionQuality.from_bytes(data[:4] + noise if i % 2 else noise)
        except DecodeError:
            continue
        assert RegressionQuality.from_bytes(back.to_bytes()) == back


def test_single_updates_equal_update_many() -> None:
    y, p = sample("normal", 30, 2)
    one, many = RegressionQuality(), RegressionQuality()
    many.update_many(y, p)
    for a, b in zip(y, p, strict=True):
        one.update(float(a), float(b))
    assert one == many
    assert one.copy() == one and one.empty_like().is_empty
    assert "RegressionQuality(n=30" in repr(one)
    with pytest.raises(ValueError, match="nan"):
        RegressionQuality(shift=math.nan)

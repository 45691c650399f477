"""QuantileSketch: bucket mapping vs ``ddsketch``, accuracy, bounded stores, merge, vectorising.

Every expected value is computed here, from the raw data with numpy or with the
reference ``ddsketch`` package.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from ddsketch import DDSketch, LogCollapsingLowestDenseDDSketch
from ddsketch.mapping import LogarithmicMapping as DDMapping
from numpy.typing import NDArray

import sketches
from sketches import LogarithmicMapping, QuantileSketch

Array = NDArray[np.float64]
ALPHAS = (0.005, 0.01, 0.02, 0.05)
QS = np.concatenate([np.linspace(0.0, 1.0, 201), [0.0001, 0.001, 0.999, 0.9999]])
KINDS = ("positive", "negative", "mixed", "zeros")


def log_uniform(rng: np.random.Generator, n: int, lo: float = -9, hi: float = 9) -> Array:
    return 10.0 ** rng.uniform(lo, hi, n)


def make_data(kind: str, seed: int = 0, n: int = 20_000) -> Array:
    rng = np.random.default_rng(seed)
    if kind == "positive":
        return rng.lognormal(0.0, 2.0, n)
    if kind == "negative":
        return -rng.lognormal(0.0, 2.0, n)
    if kind == "mixed":
        return rng.normal(size=n) * log_uniform(rng, n, -3, 3)
    assert kind == "zeros"
    return np.where(rng.random(n) < 0.3, 0.0, rng.normal(size=n))


def assert_within_alpha(sketch: QuantileSketch, x: Array, qs: Array, alpha: float) -> None:
    exact = np.quantile(x, qs, method="lower")
    est = sketch.quantiles(qs)
    bad = np.abs(est - exact) > alpha * np.abs(exact) * (1 + 1e-9)
    assert not bad.any(), f"q={qs[bad]} est={est[bad]} exact={exact[bad]}"


# -- mapping agrees with ddsketch ----------------------------------------------------------
@pytest.mark.parametrize("alpha", ALPHAS)
def test_keys_agree_with_ddsketch(alpha: float) -> None:
    arr = log_uniform(np.random.default_rng(1), 10_000)
    ours, ref = LogarithmicMapping(alpha), DDMapping(alpha)
    expected = [ref.key(v) for v in arr]
    assert ours.keys(arr).tolist() == expected
    assert [ours.key(v) for v in arr] == expected
    assert ours.gamma == ref.gamma


@pytest.mark.parametrize("alpha", ALPHAS)
def test_keys_agree_with_ddsketch_on_bucket_edges(alpha: float) -> None:
    """The mapping promises ddsketch's bucket for every value, so also on bucket edges."""
    ref = DDMapping(alpha)
    edges = np.array([ref._pow_gamma(k) for k in range(ref.key(1e-9), ref.key(1e9) + 1)])
    arr = np.concatenate([edges, np.nextafter(edges, 0.0), np.nextafter(edges, np.inf)])
    expected = np.array([ref.key(v) for v in arr])
    got = LogarithmicMapping(alpha).keys(arr)
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, f"{bad.size} of {arr.size} differ, e.g. {arr[bad[:3]].tolist()}"


@pytest.mark.parametrize("max_buckets", [None, 64, 2048])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_buckets_equal_ddsketch(alpha: float, max_buckets: int | None) -> None:
    """Same non-empty buckets and counts as ``DDSketch`` (unbounded: nothing collapses)
    and as ``LogCollapsingLowestDenseDDSketch`` with the same bucket limit."""
    rng = np.random.default_rng(2)
    x = log_uniform(rng, 10_000) * rng.choice([-1.0, 1.0], 10_000)
    x[rng.random(x.size) < 0.05] = 0.0
    x[:3] = 1e-310  # below the smallest indexable magnitude: a zero for both
    if max_buckets is None:
        ours, dd = QuantileSketch(alpha, max_buckets=1 << 14), DDSketch(alpha)
    else:
        ours, dd = (
            QuantileSketch(alpha, max_buckets),
            LogCollapsingLowestDenseDDSketch(alpha, max_buckets),
        )
    ours.update_many(x)
    for v in x:
        dd.add(float(v))
    for mine, theirs in ((ours.positive, dd._store), (ours.negative, dd._negative_store)):
        keys, counts = mine.nonzero()
        dd_keys = [theirs.offset + i for i, c in enumerate(theirs.bins) if c > 0]
        dd_counts = [int(c) for c in theirs.bins if c > 0]
        assert (keys.tolist(), counts.tolist()) == (dd_keys, dd_counts)
    assert ours.zero_count == dd._zero_count and ours.count == dd.count


# -- accuracy ------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("kind", KINDS)
def test_quantiles_within_alpha(kind: str, alpha: float) -> None:
    x = make_data(kind)
    s = QuantileSketch(alpha)
    s.update_many(x)
    assert s.count == x.size
    assert_within_alpha(s, x, QS, alpha)
    exact = np.quantile(x, 0.37, method="lower")
    assert abs(s.quantile(0.37) - exact) <= alpha * abs(exact) * (1 + 1e-9)


def test_nan_is_missing_and_inf_is_rejected() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=1000)
    dirty = np.concatenate([x, [np.nan] * 3, [np.inf] * 2, [-np.inf]])
    rng.shuffle(dirty)
    s = QuantileSketch()
    s.update_many(dirty)
    s.update(math.nan)
    s.update(-math.inf)
    assert (s.count, s.missing, s.rejected) == (1000, 4, 4)
    assert math.isclose(s.sum, float(x.sum()), rel_tol=1e-12, abs_tol=1e-9)
    assert (s.min, s.max) == (float(x.min()), float(x.max()))
    assert math.isclose(s.mean, float(x.mean()), rel_tol=1e-9, abs_tol=1e-12)
    assert_within_alpha(s, x, QS, s.alpha)


def test_empty_sketch() -> None:
    s = QuantileSketch()
    assert s.is_empty and s.count == 0
    assert math.isnan(s.quantile(0.5)) and math.isnan(s.cdf(0.0)) and math.isnan(s.mean)
    assert np.isnan(s.quantiles([0.0, 0.5, 1.0])).all()
    s.update_many([math.nan, math.inf])
    assert s.is_empty and (s.missing, s.rejected) == (1, 1)
    assert math.isnan(s.quantile(0.0)) and math.isnan(s.cdf(1.0)) and math.isnan(s.mean)


def numbers_in(msg: str) -> list[float]:
    return [float(t) for t in re.findall(r"[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf)", msg)]


@pytest.mark.parametrize("q", [-0.1, 1.5, 2.0, -1e-12, math.nan])
@pytest.mark.parametrize("filled", [False, True])
def test_quantile_outside_unit_interval_raises(q: float, filled: bool) -> None:
    """The error names the offending value (in whatever float spelling)."""
    s = QuantileSketch()
    if filled:
        s.update_many([1.0, 2.0, 3.0])
    for call in (lambda: s.quantile(q), lambda: s.quantiles([0.5, q])):
        with pytest.raises(ValueError) as info:
            call()
        got = numbers_in(str(info.value))
        assert any(v == q or (math.isnan(v) and math.isnan(q)) for v in got), str(info.value)


@pytest.mark.parametrize("kind", KINDS)
def test_cdf_within_one_bucket_of_exact(kind: str) -> None:
    alpha = 0.01
    x = make_data(kind, seed=4, n=5000)
    s = QuantileSketch(alpha)
    s.update_many(x)
    ref = DDMapping(alpha)

    def bucket(v: float) -> tuple[int, int]:  # ddsketch's bucket of one value
        if v > ref.min_possible:
            return 1, ref.key(v)
        return (-1, ref.key(-v)) if v < -ref.min_possible else (0, 0)

    buckets = [bucket(float(v)) for v in x]
    rng = np.random.default_rng(5)
    xs = np.sort(x)
    edges = [xs[0] - 1.0, xs[-1] + 1.0, 0.0, -1e-3, 1e-3, float(np.median(x))]
    probes = np.concatenate([rng.choice(x, 150), (xs[:-1] + xs[1:])[::50] / 2, edges])
    for p in probes:
        exact = float(np.mean(x <= p))
        slack = sum(b == bucket(float(p)) for b in buckets) / x.size
        got = s.cdf(float(p))
        assert abs(got - exact) <= slack + 1e-12, (p, got, exact, slack)
        assert s.rank(float(p)) == got


# -- bounded number of buckets -------------------------------------------------------------
def test_bounded_buckets_keep_high_quantiles() -> None:
    alpha, limit = 0.01, 64
    rng, n = np.random.default_rng(6), 100_000
    # 20 % spanning 1e-6..1e6 (the lowest keys collapse), 10 % negative with the same
    # span, 70 % within the top 64 buckets (so every quantile q >= 0.5 lands there)
    spread, top = log_uniform(rng, 30_000, -6, 6), log_uniform(rng, 70_000, 5.7, 6)
    x = np.concatenate([spread[:20_000], -spread[20_000:], top])
    rng.shuffle(x)
    s = QuantileSketch(alpha, max_buckets=limit)
    chunks = [QuantileSketch(alpha, max_buckets=limit) for _ in range(4)]
    for i, chunk in enumerate(np.array_split(x, 50)):
        s.update_many(chunk)
        chunks[i % 4].update_many(chunk)
        for sk in (s, chunks[i % 4]):
            assert sk.positive.counts.size <= limit and sk.negative.counts.size <= limit
    merged = chunks[0]
    for other in chunks[1:]:
        merged.merge(other)
    for sk in (s, merged):
        assert sk.positive.counts.size <= limit and sk.negative.counts.size <= limit
        assert sk.count == n
        assert sk.positive.total == (x > 0).sum() and sk.negative.total == (x < 0).sum()
        high = QS[QS >= 0.5]
        assert_within_alpha(sk, x, high, alpha)
    # the lowest keys did collapse: a low quantile is far off
    low = float(np.quantile(x, 0.2, method="lower"))
    assert abs(s.quantile(0.2) - low) > 10 * alpha * abs(low)


# -- merge ---------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [(0.02, 2048), (0.01, 64), (0.05, 128)])
def test_merge_incompatible_raises(params: tuple[float, int]) -> None:
    a, b = QuantileSketch(0.01, 2048), QuantileSketch(*params)
    a.update_many(make_data("mixed", 7, 500))
    b.update_many(make_data("mixed", 8, 500))
    before_a, before_b = a.to_bytes(), b.to_bytes()
    with pytest.raises(sketches.IncompatibleSketchError) as info:
        a.merge(b)
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    for value in (0.01, 2048, *params):
        assert str(value) in msg, (value, msg)
    assert a.to_bytes() == before_a and b.to_bytes() == before_b


def test_merge_leaves_argument_untouched() -> None:
    a, b = QuantileSketch(), QuantileSketch()
    a.update_many(make_data("mixed", 9, 1000))
    b.update_many(make_data("zeros", 10, 1000))
    before = b.to_bytes()
    a.merge(b)
    assert b.to_bytes() == before
    assert a.count == 2000


# -- vectorised updates --------------------------------------------------------------------
def test_update_many_accepts_2d_array_and_list() -> None:
    x = np.random.default_rng(11).lognormal(size=(100, 50))
    flat, two_d, as_list = QuantileSketch(), QuantileSketch(), QuantileSketch()
    flat.update_many(x.ravel())
    two_d.update_many(x)
    as_list.update_many(x.ravel().tolist())
    assert two_d == flat and as_list == flat
    assert flat.count == x.size


def test_update_many_is_vectorised(monkeypatch: pytest.MonkeyPatch) -> None:
    """No per-value Python work: the scalar ``key`` is never called, ``keys`` a few times."""
    sizes: list[int] = []
    keys = LogarithmicMapping.keys

    def no_scalar_key(self: LogarithmicMapping, value: float) -> int:
        raise AssertionError("update_many called the per-value key()")

    def counting_keys(self: LogarithmicMapping, values: Array) -> NDArray[np.int64]:
        sizes.append(int(values.size))
        return keys(self, values)

    monkeypatch.setattr(LogarithmicMapping, "key", no_scalar_key)
    monkeypatch.setattr(LogarithmicMapping, "keys", counting_keys)
    x = np.random.default_rng(12).normal(size=1_000_000)
    s = QuantileSketch()
    s.update_many(x)  # 10^6 values: a smoke check, well under a second when vectorised
    assert s.count == x.size
    assert len(sizes) <= 3 and sum(sizes) == x.size - s.zero_count

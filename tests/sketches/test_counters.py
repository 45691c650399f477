"""CategoricalCounter, Moments, Binning and ReferenceHistogram against exact computation."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from numpy.typing import NDArray

import sketches
from sketches import OTHER, Binning, CategoricalCounter, Moments, ReferenceHistogram

Array = NDArray[np.float64]


# -- CategoricalCounter ---------------------------------------------------------------------
def test_categorical_counts_are_exact() -> None:
    rng = np.random.default_rng(0)
    names = [f"cat{i}" for i in range(50)]
    values = rng.choice(names, 20_000, p=rng.dirichlet(np.ones(50))).tolist()
    c = CategoricalCounter()
    c.update_many(values[:7000])
    c.update_many(np.array(values[7000:]))  # a numpy string array too
    assert c.counts == dict(Counter(values))
    assert (c.count, c.missing, c.other) == (len(values), 0, 0)


def test_categorical_missing_and_booleans() -> None:
    c = CategoricalCounter()
    c.update_many([None, float("nan"), np.nan, np.float64("nan"), "a", True, False, True])
    c.update(None)
    c.update(np.bool_(False))
    assert c.missing == 5
    assert c.counts == {"a": 1, "true": 2, "false": 2}
    assert c.total == 10 and c.count == 5


def test_categorical_cap_folds_new_categories_into_other() -> None:
    c = CategoricalCounter(max_categories=3)
    c.update_many(["a", "b", "c", "a"])
    c.update("d")
    c.update_many(["e", "a", None])
    assert c.counts == {"a": 3, "b": 1, "c": 1}
    assert c.other == 2 and c.missing == 1
    assert c.total == 8
    assert c.frequencies() == {"a": 3, "b": 1, "c": 1, OTHER: 2}
    assert OTHER == "__other__"


def test_categorical_long_names_go_to_other() -> None:
    c = CategoricalCounter(max_length=5)
    c.update_many(["short", "toolong", "x" * 6, "abc"])
    assert c.counts == {"short": 1, "abc": 1}
    assert c.other == 2
    assert c.frequencies()[OTHER] == 2


def test_frequencies_omit_other_when_zero() -> None:
    c = CategoricalCounter()
    c.update_many(["a", "b", "a"])
    assert c.frequencies() == {"a": 2, "b": 1}


@pytest.mark.parametrize(
    "kwargs",
    [{"max_categories": 0}, {"max_categories": -3}, {"max_length": 0}, {"max_length": 2.5}],
)
def test_categorical_bad_parameters_name_the_value(kwargs: dict[str, float]) -> None:
    (value,) = kwargs.values()
    with pytest.raises(ValueError, match=repr(value)):
        CategoricalCounter(**kwargs)  # type: ignore[arg-type]


# -- Moments ------------------------------------------------------------------------------
def test_moments_match_numpy() -> None:
    x = np.random.default_rng(1).normal(3.0, 2.0, 10_000)
    m = Moments()
    for chunk in np.array_split(x, 7):
        m.update_many(chunk)
    assert m.count == x.size
    assert math.isclose(m.mean, float(np.mean(x)), rel_tol=1e-12)
    assert math.isclose(m.variance, float(np.var(x, ddof=1)), rel_tol=1e-10)
    assert math.isclose(m.std, float(np.std(x, ddof=1)), rel_tol=1e-10)
    assert (m.min, m.max) == (float(x.min()), float(x.max()))


def test_moments_nan_is_missing_inf_is_rejected() -> None:
    m = Moments()
    m.update_many([1.0, np.nan, np.inf, 2.0, -np.inf, 3.0, np.nan])
    assert (m.count, m.missing, m.rejected) == (3, 2, 2)
    assert (m.mean, m.variance, m.min, m.max) == (2.0, 1.0, 1.0, 3.0)


def test_moments_empty() -> None:
    m = Moments()
    assert m.is_empty and math.isnan(m.mean) and math.isnan(m.variance)
    m.update_many([np.nan, np.inf])
    assert m.is_empty and math.isnan(m.mean) and math.isnan(m.variance)


def test_moments_stable_for_large_offset() -> None:
    x = 1e9 + np.random.default_rng(2).normal(0.0, 1.0, 1_000_000)
    parts = []
    for chunk in np.array_split(x, 37):
        part = Moments()
        part.update_many(chunk)
        parts.append(part)
    m = Moments()
    for part in parts:
        m.merge(part)
    exact = float(np.var(x - 1e9, ddof=1))  # exact in float64: x is within 2^30 of 1e9
    assert m.count == x.size
    assert abs(m.variance - exact) <= 1e-6 * exact
    assert abs(m.mean - 1e9 - float(np.mean(x - 1e9))) <= 1e-6
    # contrast: the textbook sum-of-squares formula loses every digit here
    naive = (float(np.sum(x * x)) - float(np.sum(x)) ** 2 / x.size) / (x.size - 1)
    assert abs(naive - exact) > 0.5 * exact


# -- Binning ------------------------------------------------------------------------------
def test_discrete_reference_gets_one_point_bin_per_value() -> None:
    rng = np.random.default_rng(3)
    ref = rng.poisson(6.0, 50_000).astype(np.float64)
    binning = Binning.from_reference(ref)
    uniq = np.unique(ref)
    lo, _ = binning.bin_edges()
    points = binning.point_bins()
    assert points.sum() == uniq.size <= 100
    assert np.array_equal(lo[points], uniq)
    cur = rng.poisson(6.5, 20_000).astype(np.float64)
    h = ReferenceHistogram(binning)
    h.update_many(cur)
    for v in uniq:
        assert h.counts[binning.index(np.array([v]))[0]] == np.sum(cur == v)
    assert h.counts[points].sum() == np.isin(cur, uniq).sum()


def test_zero_inflated_reference_keeps_a_point_bin_at_zero() -> None:
    rng = np.random.default_rng(4)
    n = 100_000
    ref = np.where(rng.random(n) < 0.5, 0.0, rng.exponential(size=n))
    h = ReferenceHistogram.from_reference(ref)
    lo, _ = h.binning.bin_edges()
    points = h.binning.point_bins()
    zero_bin = int(np.flatnonzero(points & (lo == 0.0))[0])
    assert h.counts[zero_bin] == np.sum(ref == 0.0)
    share = h.counts[~points] / n
    filled = share[share > 0.001]  # gap bins left by the tie at 0 may be (near) empty
    assert 45 <= filled.size <= 51
    assert np.all(np.abs(filled - 0.01) <= 0.002), filled


def test_continuous_reference_gives_equal_mass_bins() -> None:
    ref = np.random.default_rng(5).lognormal(size=100_000)
    h = ReferenceHistogram.from_reference(ref)
    assert h.binning.num_bins == 102 and not h.binning.point_bins().any()
    assert h.counts[0] == 0 and h.counts[-1] == 0
    assert np.all(np.abs(h.counts[1:-1] / ref.size - 0.01) <= 0.002)


def _references() -> dict[str, Array]:
    rng = np.random.default_rng(6)
    return {
        "normal": rng.normal(size=5000),
        "pareto_0.5": rng.pareto(0.5, 5000),
        "pareto_0.1": rng.pareto(0.1, 5000),
        "offset": 1e9 + 1e-3 * rng.normal(size=5000),
        "poisson": rng.poisson(4.0, 5000).astype(np.float64),
        "zero_inflated": np.where(rng.random(5000) < 0.4, 0.0, rng.exponential(size=5000)),
        "tiny": 1e-300 * rng.normal(size=5000),
    }


@pytest.mark.parametrize(("name", "ref"), list(_references().items()))
def test_index_equals_searchsorted(name: str, ref: Array) -> None:
    rng = np.random.default_rng(7)
    b = Binning.from_reference(ref).boundaries
    span = float(b[-1] - b[0]) or 1.0
    big = np.finfo(np.float64).max
    probes = np.concatenate(
        [
            rng.choice(ref, 20_000),
            rng.uniform(b[0] - 0.1 * span, b[-1] + 0.1 * span, 20_000),
            b,
            np.nextafter(b, np.inf),
            np.nextafter(b, -np.inf),
            b[0] - rng.pareto(0.5, 1000) * span,
            b[-1] + rng.pareto(0.5, 1000) * span,
            [1e300, -1e300, big, -big, 0.0, -0.0, 5e-324],
        ]
    )
    with np.errstate(over="ignore"):  # far-outside values may overflow in the lookup grid
        got = Binning(b).index(probes)
    assert np.array_equal(got, np.searchsorted(b, probes, side="right"))


@pytest.mark.parametrize(
    "bounds",
    [[1.0, 1.0], [2.0, 1.0], [0.0, 2.0, 1.0], [0.0, np.nan], [0.0, np.inf], [-np.inf, 0.0]],
)
def test_bad_boundaries_raise(bounds: list[float]) -> None:
    with pytest.raises(ValueError):
        Binning(np.array(bounds))


def test_non_finite_shift_raises() -> None:
    with pytest.raises(ValueError, match="inf"):
        Binning(np.array([0.0, 1.0]), shift=math.inf)


# -- ReferenceHistogram -------------------------------------------------------------------
def test_histogram_merge_with_other_bins_raises_naming_both() -> None:
    rng = np.random.default_rng(8)
    a = ReferenceHistogram.from_reference(rng.normal(size=1000))
    b = ReferenceHistogram.from_reference(rng.normal(size=1000))
    before = b.to_bytes()
    with pytest.raises(sketches.IncompatibleSketchError) as info:
        a.merge(b)
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    assert a.binning.fingerprint in msg and b.binning.fingerprint in msg
    assert a.binning.fingerprint != b.binning.fingerprint
    assert b.to_bytes() == before
    same = ReferenceHistogram(Binning(a.binning.boundaries.copy(), a.binning.shift))
    same.update_many(rng.normal(size=10))
    a.merge(same)  # equal bins held by another object merge fine
    assert a.count == 1010


def test_histogram_missing_rejected_mean_std() -> None:
    rng = np.random.default_rng(9)
    ref = rng.normal(10.0, 3.0, 5000)
    h = ReferenceHistogram.from_reference(ref)
    x = rng.normal(11.0, 2.0, 20_000)
    dirty = np.concatenate([x, [np.nan] * 7, [np.inf] * 2, [-np.inf] * 3])
    rng.shuffle(dirty)
    cur = h.empty_like()
    cur.update_many(dirty)
    assert cur.missing == 7 and cur.rejected == 5
    assert cur.bin_counts()[-1] == 7 and cur.bin_counts().sum() == x.size + 7
    assert cur.count == x.size and cur.total == x.size + 7
    assert math.isclose(cur.mean, float(np.mean(x)), rel_tol=1e-12)
    assert math.isclose(cur.std, float(np.std(x, ddof=1)), rel_tol=1e-9)
    assert (cur.min, cur.max) == (float(x.min()), float(x.max()))
    expected = np.bincount(np.searchsorted(h.binning.boundaries, x, side="right"), minlength=102)
    assert np.array_equal(cur.counts, expected)

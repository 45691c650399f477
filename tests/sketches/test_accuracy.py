"""Accuracy of the sketches against exact computation on the raw data.

Every bound stated in the docstrings of ``sketches`` is checked against numpy/scipy on
the raw arrays, over data shapes × kinds of drift. Nothing is hard-coded: each expected
value is computed here from the raw samples.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import cache

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

import sketches
from sketches import ReferenceHistogram
from sketches.binned import EPS

Array = NDArray[np.float64]
N = 20_000
CONTINUOUS = ["normal", "lognormal", "pareto", "bimodal", "offset"]
SHAPES = [*CONTINUOUS, "poisson", "constant", "mostly_missing", "tiny"]
DRIFTS = ["none", "shift", "scale", "tail"]
QS = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0]
BINNED = {
    "psi": sketches.psi,
    "kl": sketches.kl_divergence,
    "js": sketches.jensen_shannon,
    "hellinger": sketches.hellinger,
    "chi2": sketches.chi_square,
}
TRANSPORT = {"ks", "wasserstein", "wasserstein_norm", "energy"}
every_case = pytest.mark.parametrize(("shape", "drift"), [(s, d) for s in SHAPES for d in DRIFTS])


# -- data ----------------------------------------------------------------------------
def _base(shape: str, rng: np.random.Generator, n: int) -> Array:
    """Draws of the underlying distribution (no missing values)."""
    if shape in ("normal", "tiny", "mostly_missing"):
        return rng.normal(size=n)
    if shape == "lognormal":
        return rng.lognormal(size=n)
    if shape == "pareto":
        return rng.pareto(3.0, size=n) + 1.0
    if shape == "bimodal":
        return np.where(rng.random(n) < 0.4, rng.normal(-2.0, 1.0, n), rng.normal(3.0, 0.5, n))
    if shape == "offset":
        return 1e6 + 0.001 * rng.normal(size=n)
    if shape == "poisson":
        return rng.poisson(3.0, size=n).astype(np.float64)
    assert shape == "constant"
    return np.full(n, 5.0)


def _sample(shape: str, rng: np.random.Generator, n: int) -> Array:
    x = _base(shape, rng, n)
    if shape == "mostly_missing":
        x[rng.random(n) < 0.9] = np.nan
    return x


@cache
def case(shape: str, drift: str) -> tuple[Array, Array]:
    """Seeded (reference, current) raw arrays; drift acts on present values only."""
    n_ref, n_cur = (8, 5) if shape == "tiny" else (N, N)
    ref = _sample(shape, np.random.default_rng([1, SHAPES.index(shape)]), n_ref)
    rng = np.random.default_rng([2, SHAPES.index(shape), DRIFTS.index(drift)])
    cur = _sample(shape, rng, n_cur)
    mu, sd = np.nanmean(ref), np.nanstd(ref, ddof=1)
    if drift == "shift":
        cur = cur + 0.5 * sd
    elif drift == "scale":
        cur = mu + 1.5 * (cur - mu)
    elif drift == "tail":  # 5 % of the present values replaced by draws with 5× the spread
        where = np.flatnonzero(~np.isnan(cur))
        idx = rng.choice(where, max(1, round(0.05 * where.size)), replace=False)
        cur[idx] = mu + 5.0 * (_base(shape, rng, idx.size) - mu)
    if shape == "poisson":
        cur = np.round(cur)  # integer data stays integer-valued
    ref.setflags(write=False)
    cur.setflags(write=False)
    return ref, cur


def histograms(ref: Array, cur: Array) -> tuple[ReferenceHistogram, ReferenceHistogram]:
    r = ReferenceHistogram.from_reference(ref)
    c = r.empty_like()
    c.update_many(cur)
    return r, c


# -- exact computations on the raw data ------------------------------------------------
def present(x: Array) -> Array:
    return x[~np.isnan(x)]


def exact_bin_counts(boundaries: Array, x: Array) -> Array:
    """Counts per bin, searchsorted(side="right"), plus a last missing bin."""
    p = present(x)
    counts = np.bincount(
        np.searchsorted(boundaries, p, side="right"), minlength=boundaries.size + 1
    )
    return np.append(counts, x.size - p.size).astype(np.float64)


def exact_binned(r: Array, c: Array) -> dict[str, tuple[float, float | None]]:
    """(value, p-value) of every binned measure from the two count vectors."""
    p, q = r / r.sum(), c / c.sum()
    pf, qf = np.maximum(p, EPS), np.maximum(q, EPS)
    keep = (r + c) > 0
    chi = stats.chi2_contingency(np.vstack([r, c])[:, keep], correction=False)
    return {
        "psi": (float(np.sum((qf - pf) * np.log(qf / pf))), None),
        "kl": (float(np.sum(pf * np.log(pf / qf))), None),
        "js": (float(jensenshannon(p, q)), None),
        "hellinger": (math.sqrt(max(1.0 - float(np.sum(np.sqrt(p * q))), 0.0)), None),
        "chi2": (float(chi.statistic), float(chi.pvalue)),
    }


def exact_ks(ref: Array, cur: Array) -> float:
    """KS on the line extended by a point after +inf holding the missing values."""
    return float(
        stats.ks_2samp(
            np.where(np.isnan(ref), np.inf, ref), np.where(np.isnan(cur), np.inf, cur)
        ).statistic
    )


def exact_scaled(ref: Array, cur: Array, energy: bool) -> float:
    """Missing-aware W1 (or energy distance) in units of σ_ref (or sqrt(σ_ref))."""
    rp, cp = present(ref), present(cur)
    m_r, m_c = 1.0 - rp.size / ref.size, 1.0 - cp.size / cur.size
    unit = float(np.std(rp, ddof=1)) ** (0.5 if energy else 1.0)
    dist = stats.energy_distance if energy else stats.wasserstein_distance
    between = float(dist(rp, cp)) if cp.size else 0.0
    return ((1.0 - max(m_r, m_c)) * between + abs(m_r - m_c) * unit) / unit


def float_slack(ref: Array, cur: Array) -> float:
    """Float resolution of the data in units of σ_ref (matters for 1e6 + 0.001·normal)."""
    big = max(float(np.nanmax(np.abs(ref))), float(np.nanmax(np.abs(cur))))
    return 1e-9 + 16 * float(np.spacing(big)) / float(np.nanstd(ref, ddof=1))


def assert_binned_exact(ref_sk: object, cur_sk: object, r: Array, c: Array) -> None:
    for name, (value, p_value) in exact_binned(r, c).items():
        res = BINNED[name](ref_sk, cur_sk)
        assert res.value == pytest.approx(value, abs=1e-9), name
        if p_value is not None:
            assert res.p_value == pytest.approx(p_value, abs=1e-12), name


# -- 1. quantiles ------------------------------------------------------------------------
@every_case
def test_quantile_sketch_relative_error(shape: str, drift: str) -> None:
    for raw in case(shape, drift):
        sk = sketches.QuantileSketch(alpha=0.01)
        sk.update_many(raw)
        values = present(raw)
        for q in QS:
            exact = float(np.quantile(values, q, method="lower"))
            assert abs(sk.quantile(q) - exact) <= 0.01 * abs(exact) + 1e-12, q


# -- 2. binned measures ------------------------------------------------------------------
@every_case
def test_binned_measures_equal_exact(shape: str, drift: str) -> None:
    ref, cur = case(shape, drift)
    r_sk, c_sk = histograms(ref, cur)
    b = r_sk.binning.boundaries
    r, c = exact_bin_counts(b, ref), exact_bin_counts(b, cur)
    assert np.array_equal(r_sk.bin_counts(), r) and np.array_equal(c_sk.bin_counts(), c)
    assert_binned_exact(r_sk, c_sk, r, c)


def categorical(rng: np.random.Generator, n: int, drift: str) -> list[str | None]:
    names = [f"c{i}" for i in range(12)]
    weights = 1.0 / np.arange(1, 13)
    miss = 0.05
    if drift == "shift":
        weights = weights[::-1]
    elif drift == "new":  # categories unseen in the reference and more missing values
        names += ["new_a", "new_b"]
        weights, miss = np.append(weights, [0.3, 0.05]), 0.15
    values = rng.choice(names, size=n, p=weights / weights.sum()).tolist()
    return [None if u < miss else v for u, v in zip(rng.random(n), values, strict=True)]


@pytest.mark.parametrize("n", [N, 300])
@pytest.mark.parametrize("drift", ["none", "shift", "new"])
def test_categorical_binned_measures_equal_exact(n: int, drift: str) -> None:
    rng = np.random.default_rng([3, n, len(drift)])
    ref, cur = categorical(rng, n, "none"), categorical(rng, n // 2, drift)
    r_sk, c_sk = sketches.CategoricalCounter(), sketches.CategoricalCounter()
    r_sk.update_many(ref)
    c_sk.update_many(cur)
    cr, cc = Counter(ref), Counter(cur)
    names = sorted((cr.keys() | cc.keys()) - {None})
    r = np.array([cr[k] for k in names] + [cr[None]], dtype=np.float64)
    c = np.array([cc[k] for k in names] + [cc[None]], dtype=np.float64)
    assert_binned_exact(r_sk, c_sk, r, c)


# -- 3. Kolmogorov–Smirnov --------------------------------------------------------------
@every_case
def test_ks_within_error_bound(shape: str, drift: str) -> None:
    ref, cur = case(shape, drift)
    res = sketches.ks_test(*histograms(ref, cur))
    exact = exact_ks(ref, cur)
    # KS_exact - error_bound <= KS_sketch <= KS_exact
    assert exact - res.error_bound - 1e-9 <= res.value <= exact + 1e-9
    if shape in CONTINUOUS:
        assert abs(res.value - exact) <= 0.02
    en = ref.size * cur.size / (ref.size + cur.size)
    # documented p-value: the limiting Kolmogorov distribution at sqrt(en)·D
    assert res.p_value == pytest.approx(special.kolmogorov(math.sqrt(en) * res.value), abs=1e-12)
    # the statistic is never too large, so neither is the evidence of drift
    assert res.p_value >= special.kolmogorov(math.sqrt(en) * exact) - 1e-12


# -- 4. Wasserstein ----------------------------------------------------------------------
@every_case
def test_wasserstein_within_error_bound(shape: str, drift: str) -> None:
    if shape == "constant":
        pytest.skip("σ_ref = 0: see test_constant_reference")
    ref, cur = case(shape, drift)
    r_sk, c_sk = histograms(ref, cur)
    res = sketches.wasserstein_normalized(r_sk, c_sk)
    exact = exact_scaled(ref, cur, energy=False)
    # W_sketch <= W_exact <= W_sketch + error_bound
    slack = float_slack(ref, cur)
    assert res.value - slack <= exact <= res.value + res.error_bound + slack
    if shape != "tiny":
        assert abs(res.value - exact) <= 0.02
    raw = sketches.wasserstein(r_sk, c_sk)
    assert raw.value == pytest.approx(res.value * np.std(present(ref), ddof=1), rel=1e-9)


# -- 5. energy distance ------------------------------------------------------------------
@every_case
def test_energy_distance_close_to_exact(shape: str, drift: str) -> None:
    if shape in ("constant", "tiny"):
        pytest.skip("σ_ref = 0 (see test_constant_reference) or fewer than 1,000 values")
    ref, cur = case(shape, drift)
    res = sketches.energy_distance(*histograms(ref, cur))
    assert abs(res.value - exact_scaled(ref, cur, energy=True)) <= 0.02


@pytest.mark.parametrize("drift", DRIFTS)
def test_integer_data_within_reference_range_is_exact(drift: str) -> None:
    ref, cur = case("poisson", drift)
    cur = np.clip(cur, ref.min(), ref.max())
    r_sk, c_sk = histograms(ref, cur)
    ks = sketches.ks_test(r_sk, c_sk)
    assert ks.value == pytest.approx(exact_ks(ref, cur), abs=1e-9) and ks.error_bound == 0
    w = sketches.wasserstein_normalized(r_sk, c_sk)
    assert w.value == pytest.approx(exact_scaled(ref, cur, energy=False), abs=1e-9)
    assert w.error_bound == 0
    e = sketches.energy_distance(r_sk, c_sk)
    assert e.value == pytest.approx(exact_scaled(ref, cur, energy=True), abs=1e-9)


def test_constant_reference() -> None:
    ref = np.full(2000, 5.0)
    for other, expected in ((5.0, 0.0), (6.0, math.inf)):
        r_sk, c_sk = histograms(ref, np.full(2000, other))
        for name in ("wasserstein_norm", "energy"):
            res = sketches.drift(r_sk, c_sk, method=name)
            assert res.value == expected and res.drifted == (expected > 0), name
            assert expected == 0 or res.reason, name
        ks = sketches.ks_test(r_sk, c_sk)
        assert ks.value == pytest.approx(exact_ks(ref, np.full(2000, other)), abs=1e-12)


def test_constant_reference_unchanged_has_no_reason() -> None:
    # DriftResult.reason: "why value is NaN or infinite, else None"
    r_sk, c_sk = histograms(np.full(2000, 5.0), np.full(2000, 5.0))
    for name in ("wasserstein_norm", "energy"):
        res = sketches.drift(r_sk, c_sk, method=name)
        assert res.value == 0.0 and res.reason is None, name


# -- 6. empty and all-missing sides ----------------------------------------------------
@pytest.mark.parametrize("method", sorted(sketches.METHODS))
def test_empty_side_gives_nan_with_reason(method: str) -> None:
    values = np.random.default_rng(4).normal(size=2000)
    full = ReferenceHistogram.from_reference(values)
    empty_ref = ReferenceHistogram.from_reference(np.zeros(0))
    cur_on_empty = empty_ref.empty_like()
    cur_on_empty.update_many(values)
    pairs: list[tuple[object, object]] = [
        (full, full.empty_like()),
        (empty_ref, cur_on_empty),
        (empty_ref, empty_ref.empty_like()),
    ]
    if sketches.METHODS[method].categorical:
        cats = sketches.CategoricalCounter()
        cats.update_many(["a", "b", None])
        pairs += [(cats, sketches.CategoricalCounter()), (sketches.CategoricalCounter(), cats)]
    for ref_sk, cur_sk in pairs:
        res = sketches.drift(ref_sk, cur_sk, method=method)  # type: ignore[arg-type]
        assert math.isnan(res.value) and res.reason and not res.drifted


def test_all_missing_reference() -> None:
    ref = np.full(3000, np.nan)
    cur = np.random.default_rng(5).normal(size=3000)
    cur[:300] = np.nan
    r_sk, c_sk = histograms(ref, cur)
    for name in TRANSPORT:
        res = sketches.drift(r_sk, c_sk, method=name)
        assert math.isnan(res.value) and res.reason and not res.drifted, name
    b = r_sk.binning.boundaries
    assert_binned_exact(r_sk, c_sk, exact_bin_counts(b, ref), exact_bin_counts(b, cur))


def test_all_missing_current_counts_as_drift_mass() -> None:
    ref = np.random.default_rng(6).normal(size=3000)
    cur = np.full(1000, np.nan)
    r_sk, c_sk = histograms(ref, cur)
    assert sketches.ks_test(r_sk, c_sk).value == pytest.approx(exact_ks(ref, cur), abs=1e-12)
    w = sketches.wasserstein_normalized(r_sk, c_sk)
    assert w.value == pytest.approx(exact_scaled(ref, cur, energy=False), abs=1e-9)


# -- 7. detection of known change points -------------------------------------------------
@pytest.mark.parametrize("n", [N, 500])
def test_default_method_detects_shift_only(n: int) -> None:
    rng = np.random.default_rng([7, n])
    ref_sk = ReferenceHistogram.from_reference(rng.normal(size=n))
    same, shifted = ref_sk.empty_like(), ref_sk.empty_like()
    same.update_many(rng.normal(size=n))
    shifted.update_many(rng.normal(size=n) + 0.5)
    expected = "wasserstein_norm" if n > sketches.LARGE_SAMPLE else "ks"
    assert sketches.drift(ref_sk, shifted).method == expected
    assert sketches.drift(ref_sk, shifted).drifted
    assert not sketches.drift(ref_sk, same).drifted
    cats = [sketches.CategoricalCounter() for _ in range(3)]
    for counter, drift in zip(cats, ["none", "none", "shift"], strict=True):
        counter.update_many(categorical(rng, n, drift))
    assert sketches.drift(cats[0], cats[2]).method == (
        "js" if n > sketches.LARGE_SAMPLE else "chi2"
    )
    assert sketches.drift(cats[0], cats[2]).drifted
    assert not sketches.drift(cats[0], cats[1]).drifted

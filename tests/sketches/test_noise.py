"""Sample-size-aware thresholds (sketches.noise): quiet on stationary streams at
any volume, catching a 0.5-σ shift and a categorical mix change at each."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from sketches.categorical import CategoricalCounter
from sketches.histogram import ReferenceHistogram
from sketches.noise import NULL_METHODS, NullModel, _distances, effective_threshold
from sketches.registry import drift

SIZES = (400, 2000, 20_000)
WINDOWS = 50
EFFECT = {"wasserstein_norm": 0.1, "js": 0.1, "psi": 0.1}
CATS = np.array(list("abcdefgh"))
MIX = np.array([0.30, 0.20, 0.15, 0.10, 0.10, 0.08, 0.05, 0.02])
SHIFTED = np.array([0.14, 0.20, 0.15, 0.10, 0.10, 0.08, 0.05, 0.18])

Gen = Callable[[np.random.Generator, int], np.ndarray]
NUMERIC: dict[str, Gen] = {
    "normal": lambda rng, n: rng.normal(size=n),
    "lognormal": lambda rng, n: rng.lognormal(size=n),
}


def _hist(ref: ReferenceHistogram, values: np.ndarray) -> ReferenceHistogram:
    h = ref.empty_like()
    h.update_many(values)
    return h


def _cat(values: np.ndarray) -> CategoricalCounter:
    c = CategoricalCounter()
    c.update_many(values)
    return c


@pytest.fixture(scope="module")
def numeric_refs() -> dict[str, ReferenceHistogram]:
    rng = np.random.default_rng(20_000)
    return {k: ReferenceHistogram.from_reference(g(rng, 20_000)) for k, g in NUMERIC.items()}


@pytest.fixture(scope="module")
def cat_ref() -> CategoricalCounter:
    return _cat(np.random.default_rng(8).choice(CATS, p=MIX, size=20_000))


def _build(ref: ReferenceHistogram | CategoricalCounter, method: str) -> NullModel:
    t = time.perf_counter()
    model = NullModel.build(ref, method)
    ms = (time.perf_counter() - t) * 1e3
    floors = " ".join(f"{model.floor(n):.4f}" for n in SIZES)
    print(f"null model {method}: {ms:.1f} ms, b={model.b:.3f}, floors@{SIZES}: {floors}")
    return model


@pytest.mark.parametrize("shape", sorted(NUMERIC))
@pytest.mark.parametrize("method", ["wasserstein_norm", "js", "psi"])
def test_numeric_stationary_is_quiet(
    numeric_refs: dict[str, ReferenceHistogram], shape: str, method: str
) -> None:
    ref = numeric_refs[shape]
    model = _build(ref, method)
    rng = np.random.default_rng(7)
    for n in SIZES:
        limit = model.threshold(EFFECT[method], n)
        worst = max(
            drift(ref, _hist(ref, NUMERIC[shape](rng, n)), method, limit).value
            for _ in range(WINDOWS)
        )
        assert worst < limit, (shape, method, n, worst, limit)


@pytest.mark.parametrize("shape", sorted(NUMERIC))
def test_half_sigma_shift_caught_at_every_volume(
    numeric_refs: dict[str, ReferenceHistogram], shape: str
) -> None:
    ref = numeric_refs[shape]
    model = _build(ref, "wasserstein_norm")
    rng = np.random.default_rng(11)
    shift = 0.5 * ref.std
    for n in SIZES:
        limit = model.threshold(EFFECT["wasserstein_norm"], n)
        for _ in range(WINDOWS):
            result = drift(
                ref, _hist(ref, NUMERIC[shape](rng, n) + shift), "wasserstein_norm", limit
            )
            assert result.drifted and result.threshold == limit, (shape, n, result)


@pytest.mark.parametrize("method", ["js", "psi"])
def test_categorical_stationary_quiet_and_mix_change_caught(
    cat_ref: CategoricalCounter, method: str
) -> None:
    assert jensenshannon(MIX, SHIFTED) > 0.2  # the change tested (≈ 0.21)
    model = _build(cat_ref, method)
    rng = np.random.default_rng(3)
    for n in SIZES:
        limit = model.threshold(EFFECT[method], n)
        for _ in range(WINDOWS):
            quiet = drift(cat_ref, _cat(rng.choice(CATS, p=MIX, size=n)), method, limit)
            moved = drift(cat_ref, _cat(rng.choice(CATS, p=SHIFTED, size=n)), method, limit)
            assert not quiet.drifted, (method, n, quiet)
            assert moved.drifted, (method, n, moved)


@pytest.mark.parametrize("method", ["wasserstein_norm", "js", "hellinger", "energy"])
def test_floor_scales_as_inverse_sqrt_n(
    numeric_refs: dict[str, ReferenceHistogram], method: str
) -> None:
    model = NullModel.build(numeric_refs["normal"], method)
    assert 0.4 < model.b < 0.6
    n_ref = model.n_ref
    for small, large in ((400, 2000), (1000, 5000)):
        expected = math.sqrt((1 / small + 1 / n_ref) / (1 / large + 1 / n_ref))
        ratio = model.floor(small) / model.floor(large)
        assert ratio == pytest.approx(expected, rel=0.2)
    floors = [model.floor(n) for n in (10, 50, 300, 400, 7000, 10**6)]
    assert all(a >= b for a, b in itertools.pairwise(floors))


def test_divergences_scale_as_inverse_n(numeric_refs: dict[str, ReferenceHistogram]) -> None:
    for method in ("psi", "kl"):
        assert 0.9 < NullModel.build(numeric_refs["normal"], method).b < 1.3


@pytest.mark.parametrize("method", sorted(NULL_METHODS))
def test_vectorised_distance_equals_production(
    numeric_refs: dict[str, ReferenceHistogram], method: str
) -> None:
    ref = numeric_refs["lognormal"]
    r = ref.bin_counts().astype(np.float64)
    counts = np.random.default_rng(5).multinomial(700, r / r.sum(), size=4).astype(np.float64)
    fast = _distances(ref, method, counts)
    shifted_means = np.nan_to_num(ref.bin_means()) - ref.binning.shift
    for row, value in zip(counts, fast, strict=True):
        h = ref.empty_like()
        h.counts = row[:-1].astype(np.int64)
        h.missing = int(row[-1])
        h.sums = h.counts * shifted_means
        assert drift(ref, h, method).value == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_round_trip_and_validation(cat_ref: CategoricalCounter) -> None:
    model = NullModel.build(cat_ref, "js")
    data = model.to_dict()
    assert NullModel.from_dict(data) == model
    assert len(str(data)) < 1000
    with pytest.raises(ValueError):
        NullModel.from_dict({**data, "floors": data["floors"][:-1]})
    with pytest.raises(ValueError):
        NullModel.from_dict({k: v for k, v in data.items() if k != "grid"})
    for bad in ("ks", "chi2", "nope", "wasserstein_norm"):
        with pytest.raises(ValueError):
            NullModel.build(cat_ref, bad)
    assert effective_threshold(0.1, 0.05) == pytest.approx(0.15)
    with pytest.raises(ValueError):
        effective_threshold(-0.1, 0.0)
    assert model.floor(0) == math.inf


def test_deterministic_and_constant_reference() -> None:
    ref = ReferenceHistogram.from_reference(np.full(5000, 3.0))
    model = NullModel.build(ref, "wasserstein_norm")
    assert model.floor(400) == 0.0
    c = _cat(np.array(["x"] * 1000))
    assert NullModel.build(c, "psi").floor(100) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(1)
    h = ReferenceHistogram.from_reference(rng.normal(size=3000))
    assert NullModel.build(h, "js", seed=4) == NullModel.build(h, "js", seed=4)

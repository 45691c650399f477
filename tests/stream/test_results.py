"""Window results against exact computation on the raw window data."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest

from sketches import (
    METHODS,
    CategoricalCounter,
    DriftResult,
    ReferenceHistogram,
    default_method,
    drift,
)
from sketches.noise import NULL_METHODS, NullModel
from stream.baseline import Baseline, build_baseline
from stream.fold import WindowSketches
from stream.results import QUANTILES, drift_dict, severity, window_result

ROWS = 5000
NUMERIC = ("income", "age", "zeros", "kids")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: str = "numeric"
    method: str | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str = "churn"
    features: tuple[FeatureSpec, ...] = ()
    drift_method: str | None = None
    drift_threshold: float | None = None
    confidence_threshold: float = 0.5
    latency_slo_ms: float | None = None

    def feature(self, name: str) -> FeatureSpec | None:
        return next((f for f in self.features if f.name == name), None)


def columns(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, Any]:
    """A seeded table; ``shift`` moves every numeric column by that many σ."""
    zeros = np.where(rng.random(n) < 0.4, 0.0, rng.exponential(2.0, n))
    return {
        "income": rng.lognormal(10.0 + 0.5 * shift, 0.5, n),
        "age": rng.normal(40.0 + 12.0 * shift, 12.0, n),
        "zeros": zeros + 2.0 * shift,
        "kids": rng.integers(0, 5, n).astype(float) + np.round(shift),
        "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]).tolist(),
        "flag": (rng.random(n) < 0.3).tolist(),
        "score": rng.random(n),
    }


@pytest.fixture(scope="module")
def baseline() -> Baseline:
    data = columns(np.random.default_rng(1), ROWS)
    return build_baseline("churn", data, prediction_column="score", version="v1")


def sketches(b: Baseline, data: Mapping[str, Any], n: int | None = None) -> WindowSketches:
    """A window's merged state from raw columns (missing columns stay absent)."""
    w = WindowSketches(n=n if n is not None else len(next(iter(data.values()))))
    for name, fb in b.features.items():
        if name not in data:
            continue
        if fb.histogram is not None:
            h = fb.histogram.empty_like()
            h.update_many(np.asarray(data[name], dtype=float))
            w.hist[name] = h
        else:
            c = CategoricalCounter()
            c.update_many(data[name])
            w.cats[name] = c
    if "score" in data and b.prediction is not None and b.prediction.histogram is not None:
        p = b.prediction.histogram.empty_like()
        p.update_many(np.asarray(data["score"]))
        w.prediction = p
    return w


def result(
    b: Baseline,
    cur: WindowSketches,
    prev: WindowSketches | None = None,
    spec: ModelSpec | None = None,
    recent: Sequence[int] = (),
) -> dict[str, Any]:
    return window_result("churn", 600, 660, cur, b, prev, spec or ModelSpec(), recent, 700.5)


def assert_json_ready(obj: Any) -> None:
    if isinstance(obj, dict):
        assert all(isinstance(k, str) for k in obj)
        for v in obj.values():
            assert_json_ready(v)
    elif isinstance(obj, list):
        for v in obj:
            assert_json_ready(v)
    else:
        assert obj is None or type(obj) in (str, int, float, bool), obj
        assert not (isinstance(obj, float) and not math.isfinite(obj))


def assert_same(got: Any, want: Any) -> None:
    """Equal, floats to 1e-12 relative (stacked numpy sums round differently)."""
    assert got.keys() == want.keys()
    for k, v in want.items():
        if isinstance(v, float):
            assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-15), k
        else:
            assert got[k] == v, k


def test_numeric_statistics_match_numpy(baseline: Baseline) -> None:
    data = columns(np.random.default_rng(2), 3000, shift=0.3)
    data["age"] = np.where(np.random.default_rng(3).random(3000) < 0.1, np.nan, data["age"])
    res = result(baseline, sketches(baseline, data))
    assert res["schema"] == 1 and res["count"] == 3000 and res["baseline"] == "v1"
    assert res["window"] == {"start": 600, "end": 660}
    for name in NUMERIC:
        x = np.asarray(data[name])
        present = x[~np.isnan(x)]
        f = res["features"][name]
        assert f["kind"] == "numeric"
        assert f["count"] == present.size and f["missing"] == x.size - present.size
        assert f["missing_rate"] == pytest.approx(1 - present.size / x.size, abs=1e-12)
        assert f["mean"] == pytest.approx(present.mean(), rel=1e-9)
        assert f["std"] == pytest.approx(present.std(ddof=1), rel=1e-9)
        assert (f["min"], f["max"]) == (present.min(), present.max())
        fb = baseline.features[name]
        ref = np.asarray(columns(np.random.default_rng(1), ROWS)[name])
        outside = ((present < ref.min()) | (present > ref.max())).mean()
        assert f["out_of_range_share"] == pytest.approx(outside, abs=1e-12)
        assert fb.histogram is not None


@pytest.mark.parametrize("shift", [0.0, 0.5, 3.0])
def test_quantiles_within_their_bin_and_rank_bound(baseline: Baseline, shift: float) -> None:
    data = columns(np.random.default_rng(4), 4000, shift=shift)
    res = result(baseline, sketches(baseline, data))
    for name in NUMERIC:
        x = np.asarray(data[name])
        fb = baseline.features[name]
        assert fb.histogram is not None
        binning = fb.histogram.binning
        counts = np.bincount(binning.index(x), minlength=binning.num_bins)
        lo, hi = binning.bin_edges()
        for key, q in QUANTILES.items():
            est = res["features"][name]["quantiles"][key]
            true = np.quantile(x, q, method="inverted_cdf")
            i = int(binning.index(np.array([true]))[0])
            assert max(lo[i], x.min()) <= est <= min(hi[i], x.max()), (name, key)
            rank_error = abs((x < est).mean() - q)
            assert rank_error <= counts[i] / x.size + 1e-12, (name, key)
            if shift == 0.0 and name in ("income", "age"):
                assert rank_error <= 0.02


def by_count(kv: tuple[str, int]) -> tuple[int, str]:
    return -kv[1], kv[0]


def test_categorical_and_boolean_summaries(baseline: Baseline) -> None:
    rng = np.random.default_rng(5)
    plan = rng.choice(["basic", "plus", "gold", "free", "pro"], 2000).tolist() + [None] * 50
    flag = [True, False, None] * 100
    res = result(baseline, sketches(baseline, {"plan": plan, "flag": flag}, n=2050))
    f = res["features"]["plan"]
    present = [v for v in plan if v is not None]
    assert f["kind"] == "categorical" and f["count"] == len(present) and f["missing"] == 50
    unseen = {k: present.count(k) for k in ("gold", "free")}
    assert f["unseen_categories"] == [[k, n] for k, n in sorted(unseen.items(), key=by_count)]
    assert f["unseen_share"] == pytest.approx(sum(unseen.values()) / len(present))
    counts = {k: present.count(k) for k in set(present)}
    assert f["top"] == [[k, n] for k, n in sorted(counts.items(), key=by_count)]
    b = res["features"]["flag"]
    assert b["kind"] == "boolean" and b["top"] == [["false", 100], ["true", 100]]
    assert b["unseen_categories"] == [] and b["missing_rate"] == pytest.approx(1 / 3)
    assert b["drift"]["method"] == default_method("boolean", ROWS)


def noise_aware(
    fb: Any, method: str, thr: float | None, n: int
) -> tuple[float | None, float | None]:
    """The threshold applied vs the baseline (effect + the null model's floor at n)
    and the floor; the null model built here from the reference, independently
    of the one registered or cached with the baseline."""
    if method not in NULL_METHODS:
        return thr, None
    ref = fb.histogram if fb.histogram is not None else fb.categories
    floor = NullModel.build(ref, method).floor(n)
    effect = thr if thr is not None else METHODS[method].threshold
    return effect + floor, floor


def test_noise_floor_raises_the_threshold_most_for_small_windows(baseline: Baseline) -> None:
    fb = baseline.features["age"]
    method = default_method("numeric", ROWS)
    assert method in fb.null
    small = noise_aware(fb, method, None, 400)[0]
    large = noise_aware(fb, method, None, 20_000)[0]
    assert small is not None and large is not None and small > large > 0.1


def test_drift_equals_direct_computation(baseline: Baseline) -> None:
    cur = sketches(baseline, columns(np.random.default_rng(6), 3000, shift=0.2))
    prev = sketches(baseline, columns(np.random.default_rng(7), 3000))
    configured = ModelSpec(
        features=(
            FeatureSpec("income", method="ks", threshold=1e-30),
            FeatureSpec("age", threshold=0.5),
            FeatureSpec("plan", "categorical", method="psi"),
            FeatureSpec("flag", "boolean", method="chi2", threshold=0.01),
        ),
        drift_method="wasserstein_norm",
        drift_threshold=0.05,
    )
    expected: dict[str, tuple[str, float | None]] = {
        "income": ("ks", 1e-30),  # batched, then re-thresholded
        "age": ("wasserstein_norm", 0.5),  # model method, feature threshold
        "zeros": ("wasserstein_norm", 0.05),
        "kids": ("wasserstein_norm", 0.05),
        "plan": ("psi", None),  # the registry default
        "flag": ("chi2", 0.01),
    }
    defaults = {n: (default_method(fb.kind, ROWS), None) for n, fb in baseline.features.items()}
    for spec, methods in ((ModelSpec(), defaults), (configured, expected)):
        res = result(baseline, cur, prev, spec)
        for name, fb in baseline.features.items():
            ref = fb.histogram if fb.histogram is not None else fb.categories
            now = cur.hist.get(name) or cur.cats.get(name)
            before = prev.hist.get(name) or prev.cats.get(name)
            assert ref is not None and now is not None and before is not None
            method, thr = methods[name]
            feat = res["features"][name]
            applied, floor = noise_aware(fb, method, thr, now.total)
            assert_same(feat["drift"], drift_dict(drift(ref, now, method, applied), floor))
            assert_same(feat["drift_previous"], drift_dict(drift(before, now, method, thr)))
    assert res["features"]["income"]["drift"]["threshold"] == 1e-30
    assert baseline.prediction is not None and baseline.prediction.histogram is not None
    assert isinstance(cur.prediction, ReferenceHistogram)
    method = default_method("numeric", ROWS)
    thr, floor = noise_aware(baseline.prediction, method, None, cur.prediction.total)
    direct = drift(baseline.prediction.histogram, cur.prediction, method, thr)
    assert_same(res["prediction"]["drift"], drift_dict(direct, floor))
    assert res["prediction"]["count"] == 3000


def test_unusable_methods_give_reasons_not_exceptions(baseline: Baseline) -> None:
    spec = ModelSpec(
        features=(FeatureSpec("plan", "categorical", method="ks"), FeatureSpec("age", method="?"))
    )
    res = result(baseline, sketches(baseline, columns(np.random.default_rng(8), 500)), spec=spec)
    for name in ("plan", "age"):
        d = res["features"][name]["drift"]
        assert d["value"] is None and not d["drifted"] and d["reason"]


def test_model_method_applies_only_where_it_can(baseline: Baseline) -> None:
    spec = ModelSpec(drift_method="ks", drift_threshold=0.01)
    res = result(baseline, sketches(baseline, columns(np.random.default_rng(8), 500)), spec=spec)
    for name, fb in baseline.features.items():
        d = res["features"][name]["drift"]
        method = "ks" if fb.kind == "numeric" else default_method(fb.kind, ROWS)
        thr = 0.01 if fb.kind == "numeric" else noise_aware(fb, method, None, 500)[0]
        assert (d["method"], d["threshold"]) == (method, thr) and d["reason"] is None


def test_config_model_spec_decides_methods(baseline: Baseline) -> None:
    config = pytest.importorskip("stream.config")
    spec = config.ModelSpec("churn", drift_method="psi", drift_overrides=(("income", "ks", 0.01),))
    res = result(baseline, sketches(baseline, columns(np.random.default_rng(8), 500)), spec=spec)
    methods = {
        n: (f["drift"]["method"], f["drift"]["threshold"]) for n, f in res["features"].items()
    }
    assert methods["income"] == ("ks", 0.01)
    # PSI is not the default method: its null model is built on first use
    for name in ("age", "plan"):
        d = res["features"][name]["drift"]
        fb = baseline.features[name]
        assert (d["method"], d["effect"]) == ("psi", pytest.approx(0.1))
        assert (d["threshold"], d["floor"]) == pytest.approx(noise_aware(fb, "psi", None, 500))
        assert d["floor"] > 0 and "psi" in fb.null
    assert res["features"]["income"]["drift"]["floor"] is None  # tests need no floor


def test_injected_drift_is_found_exactly() -> None:
    rng = np.random.default_rng(9)
    names = [f"x{i}" for i in range(12)]
    b = build_baseline("m", {n: rng.normal(size=ROWS) for n in names}, version="v")
    shifted = {"x1", "x5", "x9"}
    data = {n: rng.normal(0.6 if n in shifted else 0.0, 1.0, 3000) for n in names}
    res = window_result("m", 0, 60, sketches(b, data), b, None, ModelSpec(), [], 0.0)
    assert res["drifted_features"] == sorted(shifted)
    assert res["drift_share"] == pytest.approx(3 / 12)
    calm = {n: rng.normal(size=3000) for n in names}
    res = window_result("m", 0, 60, sketches(b, calm), b, None, ModelSpec(), [], 0.0)
    assert res["drifted_features"] == [] and res["drift_share"] == 0.0


def test_edge_cases_never_raise(baseline: Baseline) -> None:
    empty = result(baseline, WindowSketches(), WindowSketches())
    assert_json_ready(empty)
    assert empty["count"] == 0 and empty["dead_letter_rate"] is None
    for f in empty["features"].values():
        assert f["count"] == 0 and f["missing_rate"] is None and f["drift_previous"] is None
        assert f["drift"]["value"] is None and f["drift"]["reason"]
    assert empty["drifted_features"] == [] and empty["drift_share"] is None
    assert set(empty["latency_ms"].values()) == {0, None}
    assert empty["confidence"] == {"n": 0, "mean_top": None, "share_below": None, "threshold": 0.5}

    data = columns(np.random.default_rng(10), 200)
    data["age"] = np.full(200, np.nan)
    del data["income"]
    res = result(baseline, sketches(baseline, data))
    age, income = res["features"]["age"], res["features"]["income"]
    assert age["count"] == 0 and age["missing"] == 200 and age["missing_rate"] == 1.0
    assert age["mean"] is None and set(age["quantiles"].values()) == {None}
    assert income["count"] == 0 and income["drift"]["reason"] == "empty current"

    rng = np.random.default_rng(11)
    cols = {"a": np.full(300, np.nan), "b": rng.normal(size=300)}
    odd = build_baseline("m", cols, kinds={"a": "numeric", "b": "numeric"}, version="v")
    cur = sketches(odd, {"a": rng.normal(size=100), "b": rng.normal(size=100)})
    res = window_result("m", 0, 60, cur, odd, None, ModelSpec(), [], 0.0)
    a = res["features"]["a"]
    assert a["drift"]["value"] is None and a["drift"]["reason"]
    assert a["out_of_range_share"] is None and a["quantiles"]["p50"] is not None
    assert_json_ready(res)


def test_previous_window_on_other_bins_is_skipped(baseline: Baseline) -> None:
    rng = np.random.default_rng(12)
    other = build_baseline("churn", columns(rng, 500), prediction_column="score", version="v0")
    prev = sketches(other, columns(rng, 300))
    res = result(baseline, sketches(baseline, columns(rng, 300)), prev)
    skipped = [n for n in NUMERIC if res["features"][n]["drift_previous"] is None]
    assert skipped == ["income", "age", "zeros"]  # "kids" is discrete: the same bins
    assert res["features"]["plan"]["drift_previous"] is not None


def test_volume_dead_letters_confidence_latency(baseline: Baseline) -> None:
    rng = np.random.default_rng(13)
    cur = sketches(baseline, columns(rng, 300))
    cur.dlq = {"bad_type": 3, "too_late": 7}
    lat = rng.lognormal(3.0, 1.0, 5000)
    cur.latency.update_many(lat)
    conf = rng.random(300)
    cur.conf_n, cur.conf_sum, cur.conf_below = 300, float(conf.sum()), int((conf < 0.5).sum())
    res = result(baseline, cur, recent=[200, 400, 300])
    assert res["volume"] == {"count": 300, "recent_mean": 300.0, "ratio": 1.0, "history": 3}
    assert res["dead_letters"] == {"bad_type": 3, "too_late": 7}
    assert res["dead_letter_rate"] == pytest.approx(10 / 310)
    c = res["confidence"]
    assert c["mean_top"] == pytest.approx(conf.mean()) and c["threshold"] == 0.5
    assert c["share_below"] == pytest.approx((conf < 0.5).mean())
    L = res["latency_ms"]
    assert L["count"] == 5000 and L["max"] == lat.max()
    for key, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
        assert L[key] == pytest.approx(np.quantile(lat, q, method="lower"), rel=0.01)
    assert_json_ready(res)
    assert orjson.loads(orjson.dumps(res)) == res


def test_severity_tiers() -> None:
    def r(method: str, value: float, thr: float, p: float | None = None) -> DriftResult:
        drifted = p < thr if p is not None else value >= thr
        return DriftResult(method, value, thr, drifted, 10, 10, p_value=p)

    assert severity(r("psi", 0.3, 0.1)) == "high"
    assert severity(r("psi", 0.12, 0.1)) == "medium"
    assert severity(r("psi", 0.05, 0.1)) is None
    assert severity(r("ks", 0.2, 0.05, p=0.0009)) == "high"
    assert severity(r("ks", 0.2, 0.05, p=0.01)) == "medium"
    assert severity(r("js", 0.2, 0.1)) == "high"
    assert severity(r("js", 0.19, 0.1)) == "medium"

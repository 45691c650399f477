"""The Redis state store: fenced, compare-and-set flushes of deltas with offsets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stream.baseline import build_baseline
from stream.exceptions import FencedError, OffsetMismatchError
from stream.fold import PartitionFold, WindowSketches
from stream.keys import Keys
from stream.store import StateStore

pytestmark = pytest.mark.integration


class Rows:
    """The columns a WindowFold reads, as a decoded batch would hold them."""

    def __init__(self, rng: np.random.Generator, n: int, plans: list[str]) -> None:
        self.n = n
        self.numeric = {"age": rng.normal(40, 10, n)}
        self.categorical: dict[str, list[str | None]] = {
            "plan": [plans[i % len(plans)] for i in range(n)]
        }
        self.prediction = rng.integers(0, 2, n).astype(float)
        self.prediction_label: list[str | None] = [None] * n
        self.latency_ms = rng.gamma(2.0, 10.0, n)
        self.proba_top = rng.random(n)

    def __len__(self) -> int:
        return self.n


@pytest.fixture
def baseline() -> Any:
    rng = np.random.default_rng(0)
    cols: dict[str, Any] = {
        "age": rng.normal(40, 10, 2000),
        "plan": ["a", "b"] * 1000,
        "y": rng.integers(0, 2, 2000),
    }
    return build_baseline("m", cols, label_column="y")


@pytest.fixture
def store(redis_client: Any, key_prefix: str) -> StateStore:
    return StateStore(redis_client, Keys(key_prefix), 3600, max_categories=3)


def fold_of(baseline: Any, rows: Rows, start: int = 0) -> PartitionFold:
    pf = PartitionFold(60)
    pf.window(baseline, start).add(rows, slice(None))
    pf.saw(float(start + 30))
    return pf


def test_flush_merges_exactly_what_was_folded(store: StateStore, baseline: Any) -> None:
    rng = np.random.default_rng(1)
    a, b = Rows(rng, 300, ["a", "b"]), Rows(rng, 200, ["a", "b"])
    assert store.claim("t", 0, "w1") is None
    assert store.claim("t", 1, "w2") is None
    assert store.flush("t", 0, "w1", None, 10, fold_of(baseline, a).writes(), 30.0, 1.0).ok
    assert store.flush("t", 1, "w2", None, 7, fold_of(baseline, b).writes(), 30.0, 1.0).ok
    merged = WindowSketches.from_deltas(store.window_deltas("t", [0, 1], "m", 0), baseline)
    ages = np.concatenate([a.numeric["age"], b.numeric["age"]])
    exact = baseline.features["age"].histogram.empty_like()
    exact.update_many(ages)
    assert merged.n == 500
    assert np.array_equal(merged.hist["age"].counts, exact.counts)
    assert merged.hist["age"].min == ages.min() and merged.hist["age"].max == ages.max()
    assert merged.hist["age"].mean == pytest.approx(ages.mean(), rel=1e-12)
    assert merged.cats["plan"].frequencies() == {"a": 250, "b": 250}
    assert merged.latency.count == 500 and merged.conf_n == 500
    states = {s.partition: s for s in store.partition_states("t", [0, 1, 2])}
    assert (states[0].offset, states[1].offset, states[2].offset) == (10, 7, None)
    assert states[0].watermark == 30.0 and states[2].watermark is None
    assert store.open_windows("t", [0, 1]) == {("m", 0): 60}


def test_replayed_flush_is_refused_and_applies_nothing(store: StateStore, baseline: Any) -> None:
    rows = Rows(np.random.default_rng(2), 100, ["a"])
    store.claim("t", 0, "w1")
    writes = fold_of(baseline, rows).writes()
    assert store.flush("t", 0, "w1", None, 10, writes, 30.0, 1.0).ok
    with pytest.raises(OffsetMismatchError, match="stored offset is 10") as err:
        store.flush("t", 0, "w1", None, 10, writes, 30.0, 1.0)
    assert err.value.stored == 10 and not err.value.owner_lost
    merged = WindowSketches.from_deltas(store.window_deltas("t", [0], "m", 0), baseline)
    assert merged.n == 100


def test_stale_owner_is_fenced(store: StateStore, baseline: Any) -> None:
    rows = Rows(np.random.default_rng(3), 50, ["a"])
    store.claim("t", 0, "old")
    assert store.flush("t", 0, "old", None, 5, fold_of(baseline, rows).writes(), 1.0, 1.0).ok
    assert store.claim("t", 0, "new") == 5
    with pytest.raises(FencedError, match="owned by 'new'"):
        store.flush("t", 0, "old", 5, 9, fold_of(baseline, rows).writes(), 1.0, 1.0)
    assert store.partition_states("t", [0])[0].offset == 5


def test_closed_window_refuses_the_whole_write(store: StateStore, baseline: Any) -> None:
    rows = Rows(np.random.default_rng(4), 40, ["a"])
    store.claim("t", 0, "w")
    store.fence_window("t", [0], "m", 60)
    writes = fold_of(baseline, rows, 0).writes() + fold_of(baseline, rows, 60).writes()
    res = store.flush("t", 0, "w", None, 3, writes, 90.0, 1.0)
    assert not res.ok and res.closed_model == "m" and res.closed_upto == 60.0
    assert store.window_deltas("t", [0], "m", 60) == []
    assert store.partition_states("t", [0])[0].offset is None
    assert store.flush("t", 0, "w", None, 3, fold_of(baseline, rows, 60).writes(), 90.0, 1.0).ok


def test_category_cap_folds_the_rest_into_other(store: StateStore, baseline: Any) -> None:
    store.claim("t", 0, "w")
    rows = Rows(np.random.default_rng(5), 50, ["a", "b", "c", "d", "e"])
    assert store.flush("t", 0, "w", None, 1, fold_of(baseline, rows).writes(), 1.0, 1.0).ok
    assert store.flush("t", 0, "w", 1, 2, fold_of(baseline, rows).writes(), 1.0, 1.0).ok
    merged = WindowSketches.from_deltas(store.window_deltas("t", [0], "m", 0), baseline)
    assert merged.cats["plan"].frequencies() == {"a": 20, "b": 20, "c": 20, "__other__": 40}
    assert merged.cats["plan"].total == 100


def test_names_that_look_like_separators_keep_their_own_fields(
    store: StateStore, redis_client: Any
) -> None:
    rng = np.random.default_rng(6)
    cols: dict[str, Any] = {"a|h|c0": rng.normal(size=500), "x:y %z": ["p|c|q", "r"] * 250}
    base = build_baseline("m", cols)

    class Two:
        def __init__(self) -> None:
            self.numeric = {"a|h|c0": np.array([0.0, 1.0])}
            self.categorical: dict[str, list[str | None]] = {"x:y %z": ["p|c|q", "weird|c|#"]}
            self.prediction = np.array([np.nan, np.nan])
            self.prediction_label: list[str | None] = [None, None]
            self.latency_ms = np.array([np.nan, np.nan])
            self.proba_top = np.array([np.nan, np.nan])

        def __len__(self) -> int:
            return 2

    pf = PartitionFold(60)
    pf.window(base, 0).add(Two(), slice(None))
    store.claim("t", 0, "w")
    assert store.flush("t", 0, "w", None, 1, pf.writes(), 1.0, 1.0).ok
    merged = WindowSketches.from_deltas(store.window_deltas("t", [0], "m", 0), base)
    assert merged.hist["a|h|c0"].count == 2
    assert merged.cats["x:y %z"].frequencies() == {"p|c|q": 1, "weird|c|#": 1}


def test_lost_claim_is_reported_as_such(
    store: StateStore, baseline: Any, redis_client: Any
) -> None:
    rows = Rows(np.random.default_rng(8), 10, ["a"])
    store.claim("t", 0, "w")
    redis_client.delete(store.keys.offsets("t", 0))  # what a Redis that lost data looks like
    with pytest.raises(OffsetMismatchError) as err:
        store.flush("t", 0, "w", 5, 9, fold_of(baseline, rows).writes(), 1.0, 1.0)
    assert err.value.owner_lost and err.value.stored is None


def test_store_works_over_a_unix_socket_url(embedded_redis: Any, baseline: Any) -> None:
    from stream.config import RedisSettings
    from stream.redis_client import connect

    if embedded_redis.socket_path is None:
        pytest.skip("the temporary directory is too long for a unix socket path")
    client = connect(RedisSettings(url=f"unix://{embedded_redis.socket_path}"))
    store = StateStore(client, Keys("u"), 3600)
    rows = Rows(np.random.default_rng(9), 20, ["a"])
    store.claim("t", 0, "w")
    assert store.flush("t", 0, "w", None, 1, fold_of(baseline, rows).writes(), 1.0, 1.0).ok
    merged = WindowSketches.from_deltas(store.window_deltas("t", [0], "m", 0), baseline)
    assert merged.n == 20


def test_a_window_stays_on_one_baseline_version(store: StateStore, baseline: Any) -> None:
    rng = np.random.default_rng(10)
    rows = Rows(rng, 30, ["a"])
    other = build_baseline(
        "m",
        {"age": rng.normal(0, 1, 2000), "plan": ["a"] * 2000, "y": rng.integers(0, 2, 2000)},
        label_column="y",
        version="v-other",
    )
    store.claim("t", 0, "w")
    assert store.flush("t", 0, "w", None, 1, fold_of(baseline, rows).writes(), 1.0, 1.0).ok
    res = store.flush("t", 0, "w", 1, 2, fold_of(other, rows).writes(), 1.0, 1.0)
    assert not res.ok and res.version_conflict == ("m", 0, baseline.version)
    assert store.partition_states("t", [0])[0].offset == 1  # nothing applied
    # the next window may use the new version
    assert store.flush("t", 0, "w", 1, 2, fold_of(other, rows, 60).writes(), 1.0, 1.0).ok


def test_long_vectors_add_and_side_hashes_keep_their_own_expiry(
    store: StateStore, redis_client: Any, key_prefix: str
) -> None:
    from stream.store import WindowWrite

    rng = np.random.default_rng(5)
    a, b = rng.random(20_000), rng.random(20_000)  # more values than Lua unpacks at once
    side = f"{key_prefix}:{{p:t:0}}:seen:m:7"
    assert store.claim("t", 0, "w") is None

    def write(vec: np.ndarray, ident: str) -> list[WindowWrite]:
        return [
            WindowWrite("m", 0, 60, [("v", "q|v", vec.astype("<f8").tobytes())], ttl_s=90_000),
            WindowWrite("m", 7, 8, [("=", ident, "1")], key=side, ttl_s=500),
        ]

    assert store.flush("t", 0, "w", None, 1, write(a, "x"), None, 1.0).ok
    assert store.flush("t", 0, "w", 1, 2, write(b, "y"), None, 1.0).ok
    (delta,) = store.window_deltas("t", [0], "m", 0)
    assert np.array_equal(np.frombuffer(delta["q|v"], "<f8"), a + b)
    assert redis_client.hgetall(side) == {b"x": b"1", b"y": b"1"}
    assert 400 < redis_client.ttl(side) <= 500
    assert redis_client.ttl(Keys(key_prefix).window_delta("t", 0, "m", 0)) > 80_000
    assert store.open_windows("t", [0]) == {("m", 0): 60}  # the side hash is no window

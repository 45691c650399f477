"""Property tests: merge is the sketch of the concatenation and order-free; encodings round trip."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sketches
from sketches import CategoricalCounter, Moments, QuantileSketch, ReferenceHistogram

settings.register_profile("sketches", max_examples=60, deadline=None, database=None)
settings.load_profile("sketches")

# finite values of moderate size (so float sums agree to 1e-9 in any order), zeros,
# magnitudes below the indexable minimum, NaN and ±inf
SPECIAL = [0.0, -0.0, 5e-324, -1e-310, math.nan, math.inf, -math.inf]
FLOATS = st.one_of(st.floats(min_value=-1e3, max_value=1e3), st.sampled_from(SPECIAL))
NUMBERS = st.lists(FLOATS, max_size=40)
CATEGORIES = st.lists(st.one_of(st.none(), st.text(max_size=4), st.just(math.nan)), max_size=40)
NO_PARAMS = st.just(None)
QUANTILE_PARAMS = st.sampled_from([(0.01, 2048), (0.05, 8), (0.2, 2)])

_rng = np.random.default_rng(0)
BINNING = sketches.Binning.from_reference(
    np.concatenate([_rng.normal(0.0, 300.0, 2000), np.zeros(300)]), bins=20
)


class Kind:
    """How to build, compare and decode one sketch type."""

    def __init__(
        self,
        name: str,
        values: st.SearchStrategy[list[Any]],
        new: Callable[[Any], Any],
        params: st.SearchStrategy[Any] = NO_PARAMS,
    ) -> None:
        self.name, self.values, self.new, self.params = name, values, new, params

    def build(self, params: Any, values: list[Any]) -> Any:
        s = self.new(params)
        s.update_many(values)
        return s

    def __repr__(self) -> str:
        return self.name


KINDS = [
    Kind("quantile", NUMBERS, lambda p: QuantileSketch(*p), QUANTILE_PARAMS),
    Kind("histogram", NUMBERS, lambda p: ReferenceHistogram(BINNING)),
    Kind("categorical", CATEGORIES, lambda p: CategoricalCounter()),
    Kind("moments", NUMBERS, lambda p: Moments()),
]


def same(a: Any, b: Any, values: list[Any]) -> bool:
    """``==`` of the sketches; for Moments exact counts and min/max, and mean/variance
    within float rounding relative to the scale of the data."""
    if not isinstance(a, Moments):
        return bool(a == b)
    if (a.count, a.missing, a.rejected, a.min, a.max) != (
        b.count,
        b.missing,
        b.rejected,
        b.min,
        b.max,
    ):
        return False
    finite = [abs(v) for v in values if math.isfinite(v)]
    scale = max(finite, default=0.0)
    tiny = 1e-300  # subnormal results round to a multiple of 5e-324
    mean_ok = a.count == 0 or math.isclose(
        a.mean, b.mean, rel_tol=1e-9, abs_tol=1e-12 * scale + tiny
    )
    var_ok = a.count < 2 or math.isclose(
        a.variance, b.variance, rel_tol=1e-9, abs_tol=1e-9 * scale * scale + tiny
    )
    return mean_ok and var_ok


def merged(*parts: Any) -> Any:
    out = parts[0].copy()
    for p in parts[1:]:
        out.merge(p)
    return out


@pytest.mark.parametrize("kind", KINDS, ids=repr)
@given(data=st.data())
def test_merge_equals_sketch_of_concatenation(kind: Kind, data: st.DataObject) -> None:
    p = data.draw(kind.params)
    a, b = data.draw(kind.values), data.draw(kind.values)
    sa, sb = kind.build(p, a), kind.build(p, b)
    before = sb.to_bytes()
    sa.merge(sb)
    assert same(sa, kind.build(p, a + b), a + b)
    assert sb.to_bytes() == before  # the argument is left untouched


@pytest.mark.parametrize("kind", KINDS, ids=repr)
@given(data=st.data())
def test_merge_is_commutative_and_associative(kind: Kind, data: st.DataObject) -> None:
    p = data.draw(kind.params)
    a, b, c = (data.draw(kind.values) for _ in range(3))
    sa, sb, sc = (kind.build(p, v) for v in (a, b, c))
    encoded = [s.to_bytes() for s in (sa, sb, sc)]
    assert same(merged(sa, sb), merged(sb, sa), a + b)
    assert same(merged(merged(sa, sb), sc), merged(sa, merged(sb, sc)), a + b + c)
    assert [s.to_bytes() for s in (sa, sb, sc)] == encoded


# -- encodings -----------------------------------------------------------------------------
def from_fields(sketch: Any, fields: dict[Any, Any]) -> Any:
    if isinstance(sketch, ReferenceHistogram):
        return ReferenceHistogram.from_fields(fields, sketch.binning)
    return type(sketch).from_fields(fields)


def as_redis(fields: dict[str, Any]) -> dict[bytes, bytes]:
    """What a Redis hash hands back: byte keys and byte strings (floats spelled by repr)."""
    return {
        k.encode(): (repr(float(v)) if isinstance(v, float) else str(int(v))).encode()
        for k, v in fields.items()
    }


@pytest.mark.parametrize("kind", KINDS, ids=repr)
@given(data=st.data())
def test_encodings_round_trip(kind: Kind, data: st.DataObject) -> None:
    values = data.draw(kind.values)
    s = kind.build(data.draw(kind.params), values)
    decoded = type(s).from_bytes(s.to_bytes())
    assert same(decoded, s, values) and decoded.to_bytes() == s.to_bytes()
    fields = s.to_fields()
    for mapping in (fields, as_redis(fields)):
        back = from_fields(s, mapping)
        assert same(back, s, values)
        assert back.to_fields() == fields


# -- categorical beyond the cap ------------------------------------------------------------
@given(
    chunks=st.lists(
        st.lists(st.one_of(st.none(), st.sampled_from("abcdefgh")), max_size=20),
        min_size=1,
        max_size=6,
    ),
    data=st.data(),
)
def test_categorical_totals_exact_beyond_cap(chunks: list[list[Any]], data: st.DataObject) -> None:
    counters = []
    for chunk in chunks:
        c = CategoricalCounter(max_categories=3)
        c.update_many(chunk)
        counters.append(c)
    order = data.draw(st.permutations(range(len(counters))))
    total = CategoricalCounter(max_categories=3)
    for i in order:
        total.merge(counters[i])
    flat = [v for chunk in chunks for v in chunk]
    n_missing = sum(v is None for v in flat)
    assert (total.total, total.missing, total.count) == (
        len(flat),
        n_missing,
        len(flat) - n_missing,
    )
    assert sum(total.frequencies().values()) == total.count
    assert len(total.counts) <= 3

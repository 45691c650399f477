"""Byte and field encodings: every bad input raises DecodeError and nothing else; size."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import sketches
from sketches import (
    Binning,
    CategoricalCounter,
    DecodeError,
    Moments,
    QuantileSketch,
    ReferenceHistogram,
)


def _samples() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.lognormal(size=2000), -rng.lognormal(size=300), np.zeros(50)])
    x[:5], x[5:8] = np.nan, np.inf
    q = QuantileSketch()
    q.update_many(x)
    h = ReferenceHistogram.from_reference(rng.normal(size=1000), bins=20)
    h.update_many(x)
    c = CategoricalCounter(max_categories=5, max_length=8)
    c.update_many(["a", "b", "ü", "日本", None, "a", True, 3, "much too long", "x", "y"])
    m = Moments()
    m.update_many(x)
    b = Binning.from_reference(np.concatenate([rng.normal(size=500), np.zeros(100)]), bins=10)
    return {"quantile": q, "histogram": h, "categorical": c, "moments": m, "binning": b}


SAMPLES = _samples()
NAMES = list(SAMPLES)


def decoder(name: str) -> Callable[[bytes], Any]:
    return type(SAMPLES[name]).from_bytes  # type: ignore[no-any-return]


def check_decodes_or_raises(decode: Callable[[bytes], Any], data: bytes) -> bool:
    """Decode ``data``: either DecodeError or a sketch that re-encodes and decodes again."""
    try:
        obj = decode(data)
    except DecodeError:
        return False
    encoded = obj.to_bytes()
    again = decode(encoded)
    assert again.to_bytes() == encoded
    for attr in ("count", "missing", "rejected", "other"):
        assert getattr(obj, attr, 0) >= 0
    return True


def test_decode_error_hierarchy() -> None:
    assert issubclass(DecodeError, sketches.SketchError) and issubclass(DecodeError, ValueError)
    assert issubclass(sketches.IncompatibleSketchError, sketches.SketchError)
    assert issubclass(sketches.IncompatibleSketchError, ValueError)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_and_every_truncation_raises(name: str) -> None:
    data = SAMPLES[name].to_bytes()
    decode = decoder(name)
    assert decode(data) == SAMPLES[name]
    for n in range(len(data)):
        with pytest.raises(DecodeError):
            decode(data[:n])


@pytest.mark.parametrize("name", NAMES)
def test_trailing_garbage_raises(name: str) -> None:
    data = SAMPLES[name].to_bytes()
    for tail in (b"\x00", b"garbage", data):
        with pytest.raises(DecodeError):
            decoder(name)(data + tail)


@pytest.mark.parametrize("name", NAMES)
def test_random_bytes_raise_only_decode_error(name: str) -> None:
    rng = np.random.default_rng(sorted(SAMPLES).index(name))
    decode = decoder(name)
    header = SAMPLES[name].to_bytes()[:4]  # magic, kind, version: lets the noise reach further
    for i in range(2000):
        noise = rng.integers(0, 256, int(rng.integers(0, 120))).astype(np.uint8).tobytes()
        check_decodes_or_raises(decode, noise if i % 2 else header + noise)


@pytest.mark.parametrize("name", NAMES)
def test_single_byte_corruptions_raise_only_decode_error(name: str) -> None:
    rng = np.random.default_rng(100 + sorted(SAMPLES).index(name))
    data = SAMPLES[name].to_bytes()
    decode = decoder(name)
    decoded = 0
    for pos in range(len(data)):
        for shift in rng.choice(np.arange(1, 256), 3, replace=False):
            corrupt = bytearray(data)
            corrupt[pos] = (corrupt[pos] + int(shift)) % 256
            decoded += check_decodes_or_raises(decode, bytes(corrupt))
    print(f"{name}: {decoded} of {3 * len(data)} corruptions still decode")


@pytest.mark.parametrize("source", NAMES)
@pytest.mark.parametrize("target", NAMES)
def test_wrong_kind_raises_naming_the_kind(source: str, target: str) -> None:
    if source == target:
        return
    data = SAMPLES[source].to_bytes()
    with pytest.raises(DecodeError) as info:
        decoder(target)(data)
    msg = str(info.value)
    assert "kind" in msg and str(data[2]) in msg, msg


def test_bad_magic_and_non_bytes_raise() -> None:
    data = SAMPLES["quantile"].to_bytes()
    for bad in (b"XX" + data[2:], b"", None, "DL", 123):
        with pytest.raises(DecodeError):
            QuantileSketch.from_bytes(bad)  # type: ignore[arg-type]


def test_quantile_sketch_of_a_million_lognormals_is_small() -> None:
    x = np.random.default_rng(8).lognormal(0.0, 1.0, 1_000_000)
    s = QuantileSketch(alpha=0.01)
    s.update_many(x)
    data = s.to_bytes()
    print(f"QuantileSketch(alpha=0.01), 10^6 lognormal(0, 1): {len(data)} bytes")
    assert len(data) <= 4096
    assert QuantileSketch.from_bytes(data) == s


# -- field mappings ------------------------------------------------------------------------
def from_fields(name: str, fields: dict[Any, Any]) -> Any:
    if name == "histogram":
        return ReferenceHistogram.from_fields(fields, SAMPLES[name].binning)
    return type(SAMPLES[name]).from_fields(fields)


@pytest.mark.parametrize("name", ["quantile", "histogram", "categorical", "moments"])
@pytest.mark.parametrize("bad", ["abc", b"12x", b"\xff\xfe", "", "1.5.2"])
def test_from_fields_non_numeric_value_names_the_field(name: str, bad: Any) -> None:
    good = SAMPLES[name].to_fields()
    assert from_fields(name, good) == SAMPLES[name]
    for key in good:  # every field, parameters and bucket counts included
        fields: dict[Any, Any] = {**good, key: bad}
        redis = {k.encode(): str(v).encode() for k, v in good.items()}
        redis[key.encode()] = bad if isinstance(bad, bytes) else bad.encode()
        for mapping in (fields, redis):
            with pytest.raises(DecodeError) as info:
                from_fields(name, mapping)
            assert repr(key) in str(info.value), (key, str(info.value))


def test_from_fields_float_spellings() -> None:
    """``inf`` and ``nan`` spellings are numbers, not errors (a sum may overflow)."""
    fields = dict(SAMPLES["quantile"].to_fields())
    fields["s"] = "inf"
    assert math.isinf(QuantileSketch.from_fields(fields).sum)

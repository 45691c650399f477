"""Columnar batches: check the shape, convert whole columns at once, or fall back to rows.

The shape is documented in ``stream.events``. ``check_shape`` rejects what makes
the whole message unusable (a field that is not an array, arrays of different
lengths). ``vectorise`` then checks each column's element types in one pass and
converts it with one numpy call; if any column holds a value the contract
refuses, it returns ``None`` and the caller validates the batch row by row
(``rows``), so that only the bad rows are dead-lettered, with exactly the reasons
the same events would get one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream.event_rows import Plan
from stream.event_types import ModelBatch
from stream.event_values import (
    BOOL_NONE,
    BOOL_STR,
    CAT_OK,
    ID_MAX,
    NUM,
    NUM_NONE,
    STR,
    STR_NONE,
    TS_MAX,
    Reject,
    Types,
    cat_str,
    field,
    iso_seconds,
)

__all__ = ["check_shape", "row", "rows", "vectorise"]

Array = NDArray[np.float64]
_OPTIONAL_COLUMNS = ("latency_ms", "version")
_NESTED = ("proba", "segment")  # an array of objects, or an object of arrays


def _array(msg: dict[str, Any], key: str, lengths: dict[str, int], required: bool) -> None:
    v = msg.get(key)
    if type(v) is list:
        lengths[key] = len(v)
    elif v is None and required:
        raise Reject("missing_field", f"{key}: missing")
    elif key == "version" and type(v) is not str and v is not None:
        raise Reject("bad_type", "version: expected a string or an array in a columnar batch")
    elif key != "version" and v is not None:
        raise Reject("bad_type", f"{key}: expected an array in a columnar batch")


def check_shape(msg: dict[str, Any]) -> int:
    """The number of events of a columnar batch ``msg`` (whose ``id`` is a list).

    Raises:
        Reject: a field is missing or of the wrong type, or arrays differ in length.
    """
    lengths = {"id": len(msg["id"])}
    _array(msg, "ts", lengths, required=True)
    feats = msg.get("features")
    if type(feats) is not dict:
        if feats is None:
            raise Reject("missing_field", "features: missing")
        raise Reject("bad_type", "features: expected an object of arrays")
    for name, col in feats.items():
        if type(col) is not list:
            raise Reject("bad_type", f"features.{field(name)}: expected an array")
        lengths[f"features.{field(name)}"] = len(col)
    _array(msg, "prediction", lengths, required=True)
    for key in _OPTIONAL_COLUMNS:
        _array(msg, key, lengths, required=False)
    for key in _NESTED:
        v = msg.get(key)
        if type(v) is dict:
            for sub, col in v.items():
                if type(col) is not list:
                    raise Reject("bad_type", f"{key}.{field(sub)}: expected an array")
                lengths[f"{key}.{field(sub)}"] = len(col)
        elif type(v) is list:
            lengths[key] = len(v)
        elif v is not None:
            raise Reject("bad_type", f"{key}: expected an array or an object of arrays")
    n = lengths["id"]
    odd = [f"{k}={v}" for k, v in lengths.items() if v != n]
    if odd:
        shown = ", ".join(odd[:5]) + (f" and {len(odd) - 5} more" if len(odd) > 5 else "")
        raise Reject("bad_type", f"columnar arrays differ in length: id={n}, {shown}")
    return n


def _only(col: list[Any], types: Types) -> bool:
    return types.issuperset(map(type, col))


def _floats(col: list[Any]) -> Array | None:
    return np.array(col, dtype=np.float64) if _only(col, NUM_NONE) else None


def _ts(col: list[Any]) -> Array | None:
    if _only(col, NUM):
        ts = np.array(col, dtype=np.float64)
    else:
        values = [iso_seconds(v) if type(v) is str else v for v in col]
        if not _only(values, NUM):
            return None
        ts = np.array(values, dtype=np.float64)
    return ts if bool(((ts >= 0.0) & (ts < TS_MAX)).all()) else None


def _categorical(col: list[Any]) -> list[str | None] | None:
    if _only(col, STR_NONE):
        return col
    return [cat_str(v) for v in col] if _only(col, CAT_OK) else None


def _boolean(col: list[Any]) -> list[str | None] | None:
    if not _only(col, BOOL_NONE) and not (
        _only(col, BOOL_NONE | STR) and all(type(v) is not str or v in BOOL_STR for v in col)
    ):
        return None
    return list(map(BOOL_STR.get, col))


def _prediction(col: list[Any], plan: Plan) -> tuple[Array, list[str | None]] | None:
    n = len(col)
    if plan.number_ok and _only(col, NUM):
        return np.array(col, dtype=np.float64), [None] * n
    if plan.label_ok and _only(col, STR):
        return np.full(n, np.nan), col
    if plan.number_ok and plan.label_ok and _only(col, NUM | STR):
        values = [np.nan if type(v) is str else v for v in col]
        return np.array(values, dtype=np.float64), [v if type(v) is str else None for v in col]
    return None


def _proba_top(proba: Any, n: int) -> Array | None:
    if proba is None:
        return np.full(n, np.nan)
    if type(proba) is dict:
        if not proba:
            return np.full(n, np.nan)
        cols = list(proba.values())
        if not all(_only(c, NUM_NONE) for c in cols):
            return None
        m = np.array(cols, dtype=np.float64)
        given = m[~np.isnan(m)]
        if given.size and (given.min() < 0.0 or given.max() > 1.0):
            return None
        top: Array = np.fmax.reduce(m, axis=0)
        return top
    tops = np.full(n, np.nan)
    for i, p in enumerate(proba):
        if p is None or p == {}:
            continue
        if type(p) is not dict or not _only(list(p.values()), NUM):
            return None
        hi, lo = max(p.values()), min(p.values())
        if lo < 0.0 or hi > 1.0:
            return None
        tops[i] = hi
    return tops


def _segment_ok(segment: Any) -> bool:
    if segment is None:
        return True
    if type(segment) is dict:
        return all(_only(c, STR_NONE) for c in segment.values())
    return all(
        s is None or (type(s) is dict and all(type(v) is str for v in s.values())) for s in segment
    )


def vectorise(msg: dict[str, Any], n: int, plan: Plan, k: int) -> ModelBatch | None:
    """The columnar batch ``msg`` (message ``k``) of ``n`` events as one ``ModelBatch``,
    or ``None`` if a column holds a value the contract refuses (then validate ``rows``)."""
    ids = msg["id"]
    if not _only(ids, STR) or (n and (max(map(len, ids)) > ID_MAX or "" in ids)):
        return None
    ts = _ts(msg["ts"])
    if ts is None:
        return None
    feats = msg["features"]
    numeric: dict[str, Array] = {}
    for name in plan.numeric:
        col = feats.get(name)
        arr = np.full(n, np.nan) if col is None else _floats(col)
        if arr is None:
            return None
        numeric[name] = arr
    categorical: dict[str, list[str | None]] = {}
    for names, convert in ((plan.categorical, _categorical), (plan.boolean, _boolean)):
        for name in names:
            col = feats.get(name)
            values: list[str | None] | None = [None] * n if col is None else convert(col)
            if values is None:
                return None
            categorical[name] = values
    predicted = _prediction(msg["prediction"], plan)
    proba_top = _proba_top(msg.get("proba"), n)
    latency = msg.get("latency_ms")
    latency_ms = np.full(n, np.nan) if latency is None else _floats(latency)
    version = msg.get("version")
    versions = version if type(version) is list else [version] * n
    if (
        predicted is None
        or proba_top is None
        or latency_ms is None
        or bool((latency_ms < 0.0).any())
        or not _only(versions, STR_NONE)
        or not _segment_ok(msg.get("segment"))
    ):
        return None
    return ModelBatch(
        model=msg["model"],
        ts=ts,
        ids=ids,
        numeric=numeric,
        categorical=categorical,
        prediction=predicted[0],
        prediction_label=predicted[1],
        proba_top=proba_top,
        latency_ms=latency_ms,
        versions=versions,
        msg_index=[k] * n,
        positions=list(range(n)),
        proba=[(n, msg.get("proba"))],
    )


def _pick(v: Any, i: int) -> Any:
    """Row ``i`` of a nested column (an array, or an object of arrays; nulls dropped)."""
    if type(v) is list:
        return v[i]
    picked = {k: col[i] for k, col in v.items() if col[i] is not None}
    return picked or None


def row(msg: dict[str, Any], i: int) -> dict[str, Any]:
    """Row ``i`` of a (shape-checked) columnar batch as a single event object."""
    ev: dict[str, Any] = {"model": msg["model"]}
    version = msg.get("version")
    v = version[i] if type(version) is list else version
    if v is not None:
        ev["version"] = v
    ev["id"] = msg["id"][i]
    ev["ts"] = msg["ts"][i]
    ev["features"] = {k: col[i] for k, col in msg["features"].items()}
    ev["prediction"] = msg["prediction"][i]
    for key in ("proba", "latency_ms", "segment"):
        value = msg.get(key)
        if value is not None:
            v = value[i] if type(value) is list else _pick(value, i)
            if v is not None:
                ev[key] = v
    return ev


def rows(msg: dict[str, Any], n: int) -> Iterator[dict[str, Any]]:
    """The events of a (shape-checked) columnar batch, one object per row."""
    return (row(msg, i) for i in range(n))

"""Baselines: reference sketches of a model's training data, versioned in Redis.

A baseline holds, per feature, what drift is measured against: a
reference-binned histogram (its bins are the windows' bins), a quantile sketch
and moments for numeric features; category counts for categorical and boolean
ones. The prediction's reference (``@prediction``) comes from a prediction
column when the file has one, else from the label column.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson

from sketches import CategoricalCounter, Moments, QuantileSketch, ReferenceHistogram
from sketches.noise import NULL_METHODS, NullModel
from sketches.registry import default_method
from stream.exceptions import DriftlineError
from stream.keys import Keys

__all__ = [
    "PREDICTION",
    "Baseline",
    "BaselineError",
    "BaselineStore",
    "FeatureBaseline",
    "build_baseline",
    "infer_kind",
]

Kind = Literal["numeric", "categorical", "boolean"]
#: ``(feature, kind, reference rows) -> drift method`` configured for a feature
MethodFor = Callable[[str, Kind, int], str]
PREDICTION = "@prediction"
_BOOL_WORDS = {"true", "false", "True", "False", "TRUE", "FALSE"}


class BaselineError(DriftlineError, ValueError):
    """A training file or baseline cannot be used; the message says why."""


@dataclass
class FeatureBaseline:
    """Reference sketches of one feature (or of the prediction)."""

    name: str
    kind: Kind
    histogram: ReferenceHistogram | None = None
    quantiles: QuantileSketch | None = None
    moments: Moments | None = None
    categories: CategoricalCounter | None = None
    # drift method -> NullModel.to_dict(): the method's noise floor by window size
    null: dict[str, Any] = field(default_factory=dict)
    _models: dict[str, NullModel | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def null_model(self, method: str) -> NullModel | None:
        """The noise floor of ``method`` against this reference (``None`` for tests,
        unknown methods or a reference without one).

        Stored ones (built at registration) are read once; others are built here
        on first use (deterministic, 3–40 ms) and kept in memory with the baseline.
        """
        if method in self._models:
            return self._models[method]
        model: NullModel | None = None
        if method in self.null:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                model = NullModel.from_dict(self.null[method])
        else:
            ref = self.histogram if self.histogram is not None else self.categories
            if ref is not None and method in NULL_METHODS and ref.count:
                with contextlib.suppress(ValueError):  # e.g. a constant reference
                    model = NullModel.build(ref, method)
                    self.null[method] = model.to_dict()
        self._models[method] = model
        return model

    @property
    def numeric(self) -> bool:
        return self.kind == "numeric"

    def to_bytes(self) -> bytes:
        parts: list[bytes] = [self.kind.encode()]
        for sk in (self.histogram, self.quantiles, self.moments, self.categories):
            parts.append(b"" if sk is None else sk.to_bytes())
        return orjson.dumps([p.hex() for p in parts])

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> FeatureBaseline:
        kind, h, q, m, c = (bytes.fromhex(p) for p in orjson.loads(data))
        return cls(
            name,
            kind.decode(),  # type: ignore[arg-type]
            ReferenceHistogram.from_bytes(h) if h else None,
            QuantileSketch.from_bytes(q) if q else None,
            Moments.from_bytes(m) if m else None,
            CategoricalCounter.from_bytes(c) if c else None,
        )


@dataclass
class Baseline:
    """A model's registered reference: features, prediction, metadata."""

    model: str
    version: str
    rows: int
    features: dict[str, FeatureBaseline]
    prediction: FeatureBaseline | None = None
    created_at: float = 0.0
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def kinds(self) -> dict[str, Kind]:
        """Feature name → kind."""
        return {name: fb.kind for name, fb in self.features.items()}


def infer_kind(values: Sequence[Any] | np.ndarray) -> Kind:
    """``boolean`` for true/false columns, ``numeric`` for numbers, else ``categorical``.

    Example:
        >>> infer_kind([1.5, 2, None]), infer_kind(["a", "b"]), infer_kind([True, False])
        ('numeric', 'categorical', 'boolean')
    """
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.dtype.kind == "b":
        return "boolean"
    if arr.dtype.kind in "iuf":
        return "numeric"
    present = [v for v in arr.tolist() if v is not None and v == v]
    if present and all(isinstance(v, bool | np.bool_) for v in present):
        return "boolean"
    if present and all(isinstance(v, str) and v in _BOOL_WORDS for v in present):
        return "boolean"
    if all(isinstance(v, int | float | np.integer | np.floating) for v in present):
        return "numeric"
    return "categorical"


def _numeric(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    return arr


def _with_null(fb: FeatureBaseline, rows: int, methods: MethodFor | None) -> FeatureBaseline:
    """Add the noise floors of the feature's default distance method and of the
    method configured for it (none for tests)."""
    numeric = fb.histogram is not None
    wanted = {default_method("numeric" if numeric else "categorical", rows)}
    if methods is not None:
        kind: Kind = "numeric" if numeric else "categorical" if fb.kind == "numeric" else fb.kind
        with contextlib.suppress(ValueError, KeyError):
            wanted.add(methods(fb.name, kind, rows))
    for method in sorted(wanted):
        fb.null_model(method)
    return fb


def _feature(name: str, kind: Kind, values: Sequence[Any] | np.ndarray) -> FeatureBaseline:
    if kind == "numeric":
        try:
            x = _numeric(values)
        except (TypeError, ValueError) as exc:
            raise BaselineError(f"column {name!r} is declared numeric but holds {exc}") from exc
        q = QuantileSketch()
        q.update_many(x)
        m = Moments()
        m.update_many(x)
        return FeatureBaseline(name, kind, ReferenceHistogram.from_reference(x), q, m)
    c = CategoricalCounter()
    vals = list(values)
    if kind == "boolean":
        vals = [v.lower() if isinstance(v, str) else v for v in vals]
    c.update_many(vals)
    return FeatureBaseline(name, kind, categories=c)


def build_baseline(
    model: str,
    columns: Mapping[str, Sequence[Any] | np.ndarray],
    kinds: Mapping[str, Kind] | None = None,
    label_column: str | None = None,
    prediction_column: str | None = None,
    version: str | None = None,
    progress: Callable[[str], None] | None = None,
    methods: MethodFor | None = None,
    now: Callable[[], float] = time.time,
    proba_column: str | None = None,
    positive_class: str | None = None,
) -> Baseline:
    """Reference sketches for every feature column and the prediction.

    Args:
        columns: column name → values (a training table).
        kinds: declared feature kinds; the file's feature columns must match
            them exactly (else :class:`BaselineError` listing both). ``None``
            infers the kinds from the data.
        label_column: ground-truth column, used as the prediction reference
            when there is no ``prediction_column``; not a feature.
        prediction_column: the model's predictions on the training set.
        progress: called with each feature name as it is summarised.
        methods: the drift method configured for a feature; its noise floor is
            stored besides the default method's (see :mod:`sketches.noise`).
        proba_column: the model's probability of the positive class on the
            training set (binary classifiers; not a feature).
        positive_class: the class ``proba_column`` refers to (default: the last).

    With ``label_column`` the metadata also gets the task, classes, training
    quality and calibrator (:func:`stream.quality_baseline.quality_meta`).
    """
    reserved = {c for c in (label_column, prediction_column, proba_column) if c}
    missing_cols = sorted(c for c in reserved if c not in columns)
    if missing_cols:
        raise BaselineError(
            f"column(s) {missing_cols} not in the file; its columns are {sorted(columns)}"
        )
    feature_cols = [c for c in columns if c not in reserved]
    if kinds is not None:
        want, have = set(kinds), set(feature_cols)
        if want != have:
            raise BaselineError(
                f"the file's feature columns do not match model {model!r}: "
                f"missing {sorted(want - have)}, unexpected {sorted(have - want)} "
                f"(model features: {sorted(want)})"
            )
    if not feature_cols:
        raise BaselineError("the file has no feature columns")
    lengths = {len(columns[c]) for c in columns}
    if len(lengths) != 1:
        raise BaselineError(f"columns have different lengths: {sorted(lengths)}")
    rows = lengths.pop()
    if rows == 0:
        raise BaselineError("the file has no rows")
    features: dict[str, FeatureBaseline] = {}
    for name in feature_cols:
        if progress:
            progress(name)
        kind = kinds[name] if kinds is not None else infer_kind(columns[name])
        features[name] = _with_null(_feature(name, kind, columns[name]), rows, methods)
    pred = None
    pcol = prediction_column or label_column
    if pcol:
        pvals = columns[pcol]
        pkind: Kind = "numeric" if infer_kind(pvals) == "numeric" else "categorical"
        pred = _with_null(_feature(PREDICTION, pkind, pvals), rows, None)
    created = now()
    meta: dict[str, Any] = {"label_column": label_column, "prediction_column": prediction_column}
    if proba_column:
        meta["proba_column"] = proba_column
    if label_column:
        from stream.quality_baseline import quality_meta  # scikit-free, but not needed otherwise

        meta.update(
            quality_meta(
                columns[label_column],
                columns[prediction_column] if prediction_column else None,
                columns[proba_column] if proba_column else None,
                positive_class,
            )
        )
    return Baseline(
        model,
        version or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created)),
        rows,
        features,
        pred,
        created,
        meta=meta,
    )


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class BaselineStore:
    """Baselines in Redis: one hash per version, an index with the current one."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def save(self, baseline: Baseline, make_current: bool = True) -> str:
        """Store a baseline under its version (and make it current)."""
        key = self.keys.baseline(baseline.model, baseline.version)
        meta = {
            "model": baseline.model,
            "version": baseline.version,
            "rows": baseline.rows,
            "created_at": baseline.created_at,
            "source": baseline.source,
            "features": list(baseline.features),
            **baseline.meta,
        }
        fields: dict[str, bytes] = {"@meta": orjson.dumps(meta)}
        for name, fb in baseline.features.items():
            fields[f"f:{name}"] = fb.to_bytes()
            if fb.null:
                fields[f"n:{name}"] = orjson.dumps(fb.null)
        if baseline.prediction is not None:
            fields["p"] = baseline.prediction.to_bytes()
            if baseline.prediction.null:
                fields["pn"] = orjson.dumps(baseline.prediction.null)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=fields)
        idx = self.keys.baseline_index(baseline.model)
        pipe.hset(idx, f"v:{baseline.version}", repr(baseline.created_at))
        if make_current:
            pipe.hset(idx, "current", baseline.version)
        pipe.sadd(self.keys.models(), baseline.model)
        pipe.execute()
        return baseline.version

    def current_version(self, model: str) -> str | None:
        v = self.client.hget(self.keys.baseline_index(model), "current")
        return None if v is None else _s(v)

    def versions(self, model: str) -> list[str]:
        raw = self.client.hgetall(self.keys.baseline_index(model))
        return sorted(_s(k)[2:] for k in raw if _s(k).startswith("v:"))

    def load(self, model: str, version: str | None = None) -> Baseline | None:
        """The given (or current) baseline of a model, or ``None``."""
        version = version or self.current_version(model)
        if version is None:
            return None
        raw = self.client.hgetall(self.keys.baseline(model, version))
        if not raw:
            return None
        f = {_s(k): v for k, v in raw.items()}
        meta = orjson.loads(f.pop("@meta"))
        nulls = {k[2:]: orjson.loads(v) for k, v in f.items() if k.startswith("n:")}
        pred_null = orjson.loads(f.pop("pn")) if "pn" in f else {}
        pred = FeatureBaseline.from_bytes("@prediction", f.pop("p")) if "p" in f else None
        if pred is not None:
            pred.null = pred_null
        features = {
            k[2:]: FeatureBaseline.from_bytes(k[2:], v) for k, v in f.items() if k.startswith("f:")
        }
        for name, null in nulls.items():
            if name in features:
                features[name].null = null
        ordered = {n: features[n] for n in meta.get("features", features) if n in features}
        own = ("model", "version", "rows", "created_at", "source", "features")
        extra = {k: v for k, v in meta.items() if k not in own}
        return Baseline(
            model,
            version,
            int(meta["rows"]),
            ordered,
            pred,
            float(meta["created_at"]),
            str(meta.get("source", "")),
            extra,
        )

"""The records of event decoding: model schema, dead letter, per-model batch.

Defined apart from the decoder (``stream.events``, which re-exports them) so the
row and columnar paths can share them without an import cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from stream.exceptions import ConfigError

__all__ = [
    "REASONS",
    "DeadLetter",
    "FeatureKind",
    "ModelBatch",
    "ModelSchema",
    "concat",
    "proba_matrix",
]

FeatureKind = Literal["numeric", "categorical", "boolean"]

REASONS: tuple[str, ...] = (
    "malformed_json",
    "not_utf8",
    "missing_field",
    "bad_type",
    "bad_value",
    "non_finite",
    "unknown_model",
    "too_large",
    "too_late",
    "no_baseline",
    # labels (stream.labels): the join could not use a well-formed label
    "labels_off",
    "unknown_id",
    "expired",
    "duplicate_label",
)

_KINDS = ("numeric", "categorical", "boolean")
_PREDICTION_KINDS = (None, "numeric", "categorical")


@dataclass(frozen=True)
class ModelSchema:
    """The features (and optionally the prediction kind) of one model.

    ``features`` is copied into a read-only mapping on construction, so a schema
    cannot change after the decoder compiled it.

    Raises:
        ConfigError: a feature kind or the prediction kind is not one of the allowed values.
    """

    name: str
    features: Mapping[str, FeatureKind]
    prediction: Literal["numeric", "categorical"] | None = None

    def __post_init__(self) -> None:
        frozen = MappingProxyType(dict(self.features))
        for feature, kind in frozen.items():
            if not isinstance(feature, str) or kind not in _KINDS:
                raise ConfigError(
                    f"model {self.name!r}: feature {feature!r} has kind {kind!r}, "
                    f"expected one of {_KINDS}"
                )
        if self.prediction not in _PREDICTION_KINDS:
            raise ConfigError(
                f"model {self.name!r}: prediction kind {self.prediction!r}, "
                "expected 'numeric', 'categorical' or None"
            )
        object.__setattr__(self, "features", frozen)


@dataclass(frozen=True)
class DeadLetter:
    """One message, or one event of a message, that could not be decoded.

    Attributes:
        reason: one of ``REASONS``.
        detail: one line naming the field and the bad value.
        payload: the original message bytes when the whole message is bad or it
            held a single event; for one bad event of an array or columnar batch,
            that event alone as JSON.
        index: position of the event inside its array or columnar message; ``None``
            when the dead letter stands for the whole message.
    """

    reason: str
    detail: str
    payload: bytes
    index: int | None = None


@dataclass
class ModelBatch:
    """The good events of one model, column by column (row ``i`` is one event).

    ``numeric`` holds every numeric feature of the schema (NaN = missing);
    ``categorical`` every categorical and boolean feature (``None`` = missing,
    booleans as ``"true"``/``"false"``, ints as ``str(int)``, floats as ``repr``).
    """

    model: str
    ts: NDArray[np.float64]
    ids: list[str]
    numeric: dict[str, NDArray[np.float64]]
    categorical: dict[str, list[str | None]]
    prediction: NDArray[np.float64]
    prediction_label: list[str | None]
    proba_top: NDArray[np.float64]
    latency_ms: NDArray[np.float64]
    versions: list[str | None]
    # where each row came from (set by the decoder): the message's index in the
    # decode call, and the row's position inside it (-1: a single-event message);
    # plain lists, which cost nothing to build for one-event messages
    msg_index: list[int] | None = None
    positions: list[int] | None = None
    # class probabilities as decoded, in chunks of consecutive rows: ``(rows,
    # proba)`` with ``proba`` a list of per-row ``{class: p}`` (or ``None``),
    # an object of per-class arrays, or ``None``; read with :func:`proba_matrix`
    proba: list[tuple[int, Any]] = field(default_factory=list)
    # proba_matrix results by classes (the join's records and the score histogram share one)
    proba_cache: dict[tuple[str, ...], NDArray[np.float64]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __len__(self) -> int:
        return len(self.ids)

    def row_in_message(self, i: int) -> int | None:
        """Position of row ``i`` inside its message; ``None`` if the message was that event."""
        if self.positions is None:
            return None
        position = self.positions[i]
        return None if position < 0 else position

    def row_payload(self, i: int, value: bytes) -> bytes:
        """The dead-letter payload of row ``i``, given its message's bytes ``value``.

        The message itself for a single-event message, else that event alone as
        JSON (as ``decode_message`` writes it for a bad event), e.g. for rows the
        worker dead-letters as ``too_late`` after decoding.
        """
        position = self.row_in_message(i)
        if position is None:
            return value
        from stream.events import event_payload  # here: stream.events imports this module

        return event_payload(value, position)


def concat(parts: Sequence[ModelBatch]) -> ModelBatch:
    """Join batches of one model in order; a single part is returned as is.

    Raises:
        ValueError: ``parts`` is empty or mixes models.
    """
    if not parts:
        raise ValueError("concat needs at least one batch")
    first = parts[0]
    if len(parts) == 1:
        return first
    if any(p.model != first.model for p in parts):
        raise ValueError(f"concat mixes models: {sorted({p.model for p in parts})}")

    def cat_arrays(arrays: list[NDArray[np.float64]]) -> NDArray[np.float64]:
        return np.concatenate(arrays)

    def cat_lists(lists: list[list[str | None]]) -> list[str | None]:
        out: list[str | None] = []
        for lst in lists:
            out += lst
        return out

    ids: list[str] = []
    for p in parts:
        ids += p.ids
    msg_index: list[int] | None = None
    positions: list[int] | None = None
    if all(p.msg_index is not None and p.positions is not None for p in parts):
        msg_index, positions = [], []
        for p in parts:
            msg_index += p.msg_index or []
            positions += p.positions or []
    return ModelBatch(
        model=first.model,
        ts=cat_arrays([p.ts for p in parts]),
        ids=ids,
        numeric={k: cat_arrays([p.numeric[k] for p in parts]) for k in first.numeric},
        categorical={k: cat_lists([p.categorical[k] for p in parts]) for k in first.categorical},
        prediction=cat_arrays([p.prediction for p in parts]),
        prediction_label=cat_lists([p.prediction_label for p in parts]),
        proba_top=cat_arrays([p.proba_top for p in parts]),
        latency_ms=cat_arrays([p.latency_ms for p in parts]),
        versions=cat_lists([p.versions for p in parts]),
        msg_index=msg_index,
        positions=positions,
        proba=[chunk for p in parts for chunk in p.proba],
    )


def proba_matrix(batch: ModelBatch, classes: Sequence[str]) -> NDArray[np.float64]:
    """The ``len(batch) × len(classes)`` class probabilities (NaN where not given).

    Classes an event gives that are not in ``classes`` are ignored. Example:
        >>> b = ModelBatch("m", np.zeros(3), ["a", "b", "c"], {}, {}, np.zeros(3),
        ...     [None] * 3, np.zeros(3), np.zeros(3), [None] * 3,
        ...     proba=[(2, [{"0": 0.2, "1": 0.8}, None]), (1, {"1": [0.3]})])
        >>> proba_matrix(b, ["0", "1"]).tolist()
        [[0.2, 0.8], [nan, nan], [nan, 0.3]]
    """
    key = tuple(classes)
    cached = batch.proba_cache.get(key)
    if cached is not None:
        return cached
    out = np.full((len(batch), len(classes)), np.nan)
    batch.proba_cache[key] = out
    col = {c: j for j, c in enumerate(classes)}
    row = 0
    for n, proba in batch.proba:
        if isinstance(proba, dict):  # an object of per-class arrays (nulls allowed)
            for cls, values in proba.items():
                j = col.get(cls)
                if j is not None:
                    v = np.array([np.nan if x is None else x for x in values], dtype=np.float64)
                    out[row : row + n, j] = v
        elif proba is not None:  # one object (or None) per row
            for i, p in enumerate(proba):
                if p:
                    for cls, v in p.items():
                        j = col.get(cls)
                        if j is not None and v is not None:
                            out[row + i, j] = v
        row += n
    return out

"""What the label join keeps of each prediction, in Redis, for the label horizon.

For a model with ``[models.<m>.labels]`` the worker writes one record per
prediction id before it flushes the window state the prediction went into
(so a crash can only write a record twice, with the same bytes, never lose
one whose offset was stored). A record is packed little-endian: the
prediction's time (float64), the prediction (float64: the value of a
regression, or the class's index in ``classes``, ``-1`` for a class not in
it, NaN without one) and, for a classification, one float32 probability per
class (NaN where not given): ``16 + 4 k`` bytes.

Records live in hashes ``P:{pr:<model>:<shard>}:<bucket>`` (:mod:`stream.keys`):
16 shards by CRC-32 of the id, so one model's records spread over the
cluster's slots, and buckets of one horizon of prediction time, so a label at
time ``L`` finds its prediction in the buckets of ``L - 2 horizons`` to ``L``
(and one more for clock skew). A bucket expires 1.05 horizons (at least an
hour) after its last write, so every record is kept at least one horizon
after it was written, and at most about two (on average 1.5: memory is rate × 1.5 ×
horizon × the record's size in Redis, about 75 bytes for a binary
classifier with 12-character ids, 87 with UUIDs). A label found for a
prediction older than the horizon is ``expired``, one not found at all is
``unknown_id`` (a prediction more than a horizon old may already be gone). An
id logged twice keeps its last record.

Example:
    >>> lay = RecordLayout("classification", ("0", "1"))
    >>> raw = lay.pack(np.array([10.0]), np.array([1.0]), np.array([[0.3, 0.7]]))
    >>> ts, pred, proba = lay.unpack(raw)
    >>> len(raw[0]), ts.tolist(), pred.tolist(), proba.round(3).tolist()
    (24, [10.0], [1.0], [[0.3, 0.7]])
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import redis
from numpy.typing import NDArray

from stream.event_types import ModelBatch, proba_matrix
from stream.exceptions import StoreError
from stream.keys import Keys
from stream.label_config import class_name

__all__ = ["SHARDS", "TTL_FACTOR", "PredictionStore", "RecordLayout", "shard_of"]

SHARDS = 16
TTL_FACTOR = 1.05  # a bucket lives this many horizons after its last write
Array = NDArray[np.float64]


def shard_of(ident: str) -> int:
    """The shard of a prediction id (CRC-32 of its UTF-8 bytes mod :data:`SHARDS`)."""
    return zlib.crc32(ident.encode("utf-8", "surrogatepass")) % SHARDS


@dataclass(frozen=True)
class RecordLayout:
    """The record format of one model (see the module docstring)."""

    task: Literal["classification", "regression"]
    classes: tuple[str, ...] = ()

    @property
    def k(self) -> int:
        return len(self.classes) if self.task == "classification" else 0

    @property
    def width(self) -> int:
        return 16 + 4 * self.k

    def predictions(self, batch: ModelBatch, rows: NDArray[np.intp]) -> Array:
        """The prediction column of ``rows``: values, or class indices (-1: other)."""
        if self.task == "regression":
            return np.asarray(batch.prediction[rows], dtype=np.float64)
        index = {c: float(j) for j, c in enumerate(self.classes)}
        nums = np.asarray(batch.prediction[rows], dtype=np.float64)
        out = np.full(rows.size, np.nan)
        labels = batch.prediction_label
        named = [(j, labels[i]) for j, i in enumerate(rows.tolist()) if labels[i] is not None]
        for j, label in named:
            out[j] = index.get(label, -1.0)
        numeric = ~np.isnan(nums)
        if named:
            numeric[[j for j, _ in named]] = False
        if numeric.any():  # numbers as class names (1.0 → "1"), one lookup per distinct value
            values, inverse = np.unique(nums[numeric], return_inverse=True)
            codes = np.array([index.get(class_name(float(v)), -1.0) for v in values.tolist()])
            out[numeric] = codes[inverse]
        return out

    def records(self, batch: ModelBatch, rows: NDArray[np.intp]) -> list[bytes]:
        """The packed records of ``rows`` of a decoded batch."""
        proba = np.empty((rows.size, 0))
        if self.k:
            proba = proba_matrix(batch, self.classes)[rows]
        return self.pack(batch.ts[rows], self.predictions(batch, rows), proba)

    def pack(self, ts: Array, pred: Array, proba: Array) -> list[bytes]:
        """Records of ``n`` predictions (``proba``: ``n × k``)."""
        n = len(ts)
        dt = np.dtype([("ts", "<f8"), ("pred", "<f8"), ("p", "<f4", (self.k,))])
        arr = np.empty(n, dtype=dt)
        arr["ts"], arr["pred"] = ts, pred
        if self.k:
            arr["p"] = proba
        raw = arr.tobytes()
        w = self.width
        return [raw[i * w : (i + 1) * w] for i in range(n)]

    def unpack(self, records: Sequence[bytes]) -> tuple[Array, Array, Array]:
        """``ts``, ``pred`` and ``proba`` (``n × k``, float64) of packed records."""
        dt = np.dtype([("ts", "<f8"), ("pred", "<f8"), ("p", "<f4", (self.k,))])
        arr = np.frombuffer(b"".join(records), dtype=dt)
        proba = arr["p"].astype(np.float64).reshape(len(arr), self.k)
        return arr["ts"].astype(np.float64), arr["pred"].astype(np.float64), proba


class PredictionStore:
    """Prediction records of the label join, on one Redis (or Redis Cluster)."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    @staticmethod
    def _bucket(t: float, horizon_s: float) -> int:
        return math.floor(t / horizon_s)

    def put(
        self, model: str, horizon_s: float, ids: Sequence[str], ts: Array, records: Sequence[bytes]
    ) -> None:
        """Store records (idempotent: the same record twice is one).

        Raises:
            StoreError: Redis failed; retry (nothing that was written is wrong).
        """
        if not ids:
            return
        shards = np.fromiter((shard_of(i) for i in ids), dtype=np.int64, count=len(ids))
        buckets = np.floor(np.asarray(ts) / horizon_s).astype(np.int64)
        order = np.lexsort((shards, buckets))
        ks, kb = shards[order], buckets[order]
        cuts = np.flatnonzero((np.diff(ks) != 0) | (np.diff(kb) != 0)) + 1
        groups: dict[str, dict[str, bytes]] = {}
        for part in np.split(order, cuts):
            j = int(part[0])
            key = self.keys.predictions(model, int(shards[j]), int(buckets[j]))
            sel = part.tolist()
            groups[key] = dict(zip([ids[i] for i in sel], [records[i] for i in sel], strict=True))
        ttl = max(3600, math.ceil(TTL_FACTOR * horizon_s + 60))
        pipe = self.client.pipeline(transaction=False)
        for key, mapping in groups.items():
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, ttl)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise StoreError(
                f"prediction records not stored ({type(exc).__name__}): {exc}"
            ) from exc

    def get(
        self, model: str, horizon_s: float, ids: Sequence[str], label_ts: Array
    ) -> list[bytes | None]:
        """The record of each id, looked up around its label's time (``None``: not found).

        Of an id found in several buckets, the newest prediction not after
        the label wins (the first found when all are after it).
        """
        probes_of: list[list[tuple[str, int]]] = []  # per label: (key, slot in the reply)
        fields: dict[str, list[str]] = {}
        for ident, t in zip(ids, label_ts.tolist(), strict=True):
            b, s = self._bucket(t, horizon_s), shard_of(ident)
            probes = []
            for bucket in (b, b - 1, b - 2, b + 1):
                key = self.keys.predictions(model, s, bucket)
                got = fields.setdefault(key, [])
                probes.append((key, len(got)))
                got.append(ident)
            probes_of.append(probes)
        pipe = self.client.pipeline(transaction=False)
        keys = list(fields)
        for key in keys:
            pipe.hmget(key, fields[key])
        try:
            replies = dict(zip(keys, pipe.execute(), strict=True))
        except redis.RedisError as exc:
            raise StoreError(f"prediction records not read ({type(exc).__name__}): {exc}") from exc
        out: list[bytes | None] = []
        for probes, t in zip(probes_of, label_ts.tolist(), strict=True):
            found = [v for key, slot in probes if (v := replies[key][slot]) is not None]
            if len(found) > 1:
                before = [v for v in found if np.frombuffer(v[:8], "<f8")[0] <= t]
                found = sorted(before, key=lambda v: -np.frombuffer(v[:8], "<f8")[0]) or found
            out.append(found[0] if found else None)
        return out

"""Exactly-once window state in Redis: deltas and offsets written together.

Every write of a partition's state goes through one Lua script that, in one
atomic step on one hash slot:

1. checks that the caller still owns the partition (``own`` equals its token;
   a worker that is assigned a partition *claims* it, replacing the token, so
   a stale worker's next write is refused: :class:`FencedError`);
2. checks that the stored offset is the one the caller started from (a
   compare-and-set: a replayed or concurrent write is refused);
3. checks that none of the windows written to has been closed for this
   partition (``cu:<model>``, set by the window closer before it reads the
   deltas), so no event can land in a window after it closed;
4. applies the sketch deltas (``HINCRBY`` / ``HINCRBYFLOAT`` / min / max /
   set-once / capped category counts), indexes the windows as open, refreshes
   their expiry, and stores the new offset, the partition's max event time
   and the wall time of its last event.

The consumed offsets therefore never run ahead of, or behind, the state they
produced: a worker killed at any instant resumes from the stored offset and
neither loses nor counts an event twice.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from stream.exceptions import FencedError, OffsetMismatchError, StoreError
from stream.keys import Keys

__all__ = [
    "FlushResult",
    "PartitionState",
    "StateStore",
    "WindowWrite",
    "format_number",
    "patiently",
]

T = TypeVar("T")
log = logging.getLogger("driftline.store")


def patiently(call: Callable[[], T], what: str, stopping: Callable[[], bool]) -> T:
    """``call()``, retried with backoff (0.1 s doubling to 2 s) while Redis is
    unreachable, unless ``stopping()``: then the error is raised."""
    delay = 0.1
    while True:
        try:
            return call()
        except (StoreError, redis.RedisError) as exc:
            if stopping():
                raise
            log.warning("cannot %s yet: %s", what, exc)
            time.sleep(delay)
            delay = min(2.0, delay * 2)


# One op is (code, field, value). Codes: "i" HINCRBY, "f" HINCRBYFLOAT,
# "<" keep the minimum, ">" keep the maximum, "=" set once (HSETNX),
# "v" element-wise addition of little-endian float64 vectors (bytes),
# "k" capped category count: value is the count; the field's feature prefix
# (up to and including "|c|") names the per-feature "#" (categories held) and
# "o" (other) fields.
Op = tuple[str, str, str | bytes]

_FLUSH = """
local off = KEYS[1]
local openk = KEYS[2]
local own = redis.call('HGET', off, 'own')
if own ~= ARGV[1] then return {'fenced', own or ''} end
local cur = redis.call('HGET', off, 'off') or ''
if cur ~= ARGV[2] then return {'offset', cur} end
local ttl = tonumber(ARGV[4])
local cap = tonumber(ARGV[7])
local nwin = tonumber(ARGV[8])
-- pass 1: refuse the whole write if any window is closed for this partition
local a = 9
for w = 1, nwin do
  local model, wend, nops = ARGV[a], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 4])
  local cu = tonumber(redis.call('HGET', off, 'cu:' .. model) or '-1e300')
  if wend <= cu then return {'closed', model, tostring(cu)} end
  -- a window's deltas are all binned on one baseline version
  local bv = ARGV[a + 5]
  local held = redis.call('HGET', KEYS[2 + w], '@n|n|bv')
  if bv ~= '' and held and held ~= bv then return {'version', model, ARGV[a + 1], held} end
  a = a + 7 + 3 * nops
end
-- pass 2: apply
a = 9
for w = 1, nwin do
  local k = KEYS[2 + w]
  local member, score, nops = ARGV[a + 3], ARGV[a + 2], tonumber(ARGV[a + 4])
  if ARGV[a + 5] ~= '' then redis.call('HSETNX', k, '@n|n|bv', ARGV[a + 5]) end
  local wttl = tonumber(ARGV[a + 6]) or ttl
  a = a + 7
  for i = 1, nops do
    local code, f, v = ARGV[a], ARGV[a + 1], ARGV[a + 2]
    a = a + 3
    if code == 'i' then
      redis.call('HINCRBY', k, f, v)
    elseif code == 'f' then
      redis.call('HINCRBYFLOAT', k, f, v)
    elseif code == '<' then
      local old = redis.call('HGET', k, f)
      if (not old) or tonumber(v) < tonumber(old) then redis.call('HSET', k, f, v) end
    elseif code == '>' then
      local old = redis.call('HGET', k, f)
      if (not old) or tonumber(v) > tonumber(old) then redis.call('HSET', k, f, v) end
    elseif code == '=' then
      redis.call('HSETNX', k, f, v)
    elseif code == 'v' then
      local old = redis.call('HGET', k, f)
      if not old then
        redis.call('HSET', k, f, v)
      else
        if #old ~= #v then return redis.error_reply('vector length differs for ' .. f) end
        -- in chunks: Lua unpacks at most a few thousand values at once
        local out = {}
        for c = 1, #v, 8 * 512 do
          local piece = math.min(8 * 512, #v - c + 1)
          local fmt = '<' .. string.rep('d', piece / 8)
          local x = {struct.unpack(fmt, string.sub(old, c, c + piece - 1))}
          local y = {struct.unpack(fmt, string.sub(v, c, c + piece - 1))}
          for j = 1, piece / 8 do x[j] = x[j] + y[j] end
          out[#out + 1] = struct.pack(fmt, unpack(x, 1, piece / 8))
        end
        redis.call('HSET', k, f, table.concat(out))
      end
    elseif code == 'k' then
      local cut = string.find(f, '|c|', 1, true)
      local base = string.sub(f, 1, cut + 2)
      if redis.call('HEXISTS', k, f) == 1 then
        redis.call('HINCRBY', k, f, v)
      elseif tonumber(redis.call('HGET', k, base .. '#') or '0') < cap then
        redis.call('HINCRBY', k, f, v)
        redis.call('HINCRBY', k, base .. '#', 1)
      else
        redis.call('HINCRBY', k, base .. 'o', v)
      end
    end
  end
  redis.call('EXPIRE', k, wttl)
  if member ~= '' then redis.call('ZADD', openk, score, member) end
end
local nparts = tonumber(ARGV[a])
a = a + 1
for i = 1, nparts do
  redis.call('HINCRBY', off, ARGV[a], ARGV[a + 1])
  a = a + 2
end
redis.call('HSET', off, 'off', ARGV[3])
if ARGV[5] ~= '' then
  local wm = tonumber(redis.call('HGET', off, 'wm') or '-1e300')
  if tonumber(ARGV[5]) > wm then redis.call('HSET', off, 'wm', ARGV[5]) end
  redis.call('HSET', off, 'act', ARGV[6])
end
return {'ok'}
"""

_CLAIM = """
redis.call('HSET', KEYS[1], 'own', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'gen', 1)
return redis.call('HGET', KEYS[1], 'off')
"""

_FENCE_CLOSE = """
local cu = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1e300')
if tonumber(ARGV[2]) > cu then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""


def format_number(value: float | int) -> str:
    """A number as Redis and Lua read it back exactly (``repr`` of a float).

    Example:
        >>> format_number(3), format_number(0.1), format_number(2.0)
        ('3', '0.1', '2.0')
    """
    if isinstance(value, int | bool):
        return str(int(value))
    if not math.isfinite(value):
        raise ValueError(f"cannot store a non-finite number in Redis: {value!r}")
    return repr(float(value))


@dataclass
class WindowWrite:
    """Deltas for one (model, window) from one partition."""

    model: str
    start: int
    end: int
    ops: list[Op] = field(default_factory=list)
    version: str = ""  # the baseline version the deltas are binned on
    # another hash of the partition's slot instead of the window's delta hash
    # (not indexed as an open window), e.g. the label join's labelled ids
    key: str | None = None
    ttl_s: int | None = None  # expiry of this hash (default: the store's retention)


@dataclass(frozen=True)
class FlushResult:
    """Outcome of a flush: ``ok``, or the window closer got there first."""

    ok: bool
    closed_model: str | None = None
    closed_upto: float | None = None
    # refused because the window holds deltas binned on another baseline version
    version_conflict: tuple[str, int, str] | None = None  # (model, start, held version)


@dataclass(frozen=True)
class PartitionState:
    """What Redis holds about one partition."""

    partition: int
    offset: int | None
    watermark: float | None
    active_at: float | None
    closed_upto: Mapping[str, float]


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class StateStore:
    """Partition claims, atomic flushes and window-close fences on one Redis.

    Args:
        client: a redis-py client (``redis.Redis`` or ``redis.RedisCluster``).
        keys: the key schema (prefix).
        retention_s: expiry of window state, refreshed on every write.
        max_categories: categories kept per categorical feature and window;
            the rest are counted in ``__other__``.
    """

    def __init__(
        self,
        client: Any,
        keys: Keys,
        retention_s: float = 7 * 86400.0,
        max_categories: int = 1000,
    ) -> None:
        self.client = client
        self.keys = keys
        self.retention_s = max(1, math.ceil(retention_s))
        self.max_categories = max_categories
        self._flush = client.register_script(_FLUSH)
        self._claim = client.register_script(_CLAIM)
        self._fence = client.register_script(_FENCE_CLOSE)

    def claim(self, topic: str, partition: int, token: str) -> int | None:
        """Take ownership of a partition; returns the stored next offset, if any.

        From now on only writes carrying ``token`` are accepted for it.
        """
        raw = self._call(self._claim, [self.keys.offsets(topic, partition)], [token])
        return None if raw is None else int(_s(raw))

    def flush(
        self,
        topic: str,
        partition: int,
        token: str,
        expected: int | None,
        new_offset: int,
        windows: Sequence[WindowWrite],
        max_event_time: float | None,
        now: float,
        counters: Mapping[str, int] | None = None,
    ) -> FlushResult:
        """Apply a batch's deltas and advance the stored offset, atomically.

        Args:
            expected: the stored offset this batch started from (``None`` if
                nothing was stored when the partition was claimed).
            new_offset: the next offset to consume after this batch.
            windows: the deltas, one entry per (model, window).
            max_event_time: largest event time in the batch (or ``None``).
            now: wall time, for idle-partition detection.
            counters: partition-level counters to add (dead letters with no
                model, by reason).

        Raises:
            FencedError: another worker claimed the partition: drop it.
            OffsetMismatchError: the stored offset is not ``expected`` (or the
                claim is gone): nothing was applied; re-read from the stored
                offset.
            StoreError: Redis failed; nothing was applied, retry.
        """
        keys = [self.keys.offsets(topic, partition), self.keys.open_windows(topic, partition)]
        args: list[str | bytes] = [
            token,
            "" if expected is None else str(expected),
            str(new_offset),
            str(self.retention_s),
            "" if max_event_time is None else format_number(max_event_time),
            format_number(now),
            str(self.max_categories),
            str(len(windows)),
        ]
        for w in windows:
            keys.append(w.key or self.keys.window_delta(topic, partition, w.model, w.start))
            member = "" if w.key else f"{w.model}|{w.start}"
            args += [w.model, str(w.start), str(w.end), member, str(len(w.ops)), w.version]
            args.append("" if w.ttl_s is None else str(max(1, int(w.ttl_s))))
            for op in w.ops:
                args.extend(op)
        items = list((counters or {}).items())
        args.append(str(len(items)))
        for name, n in items:
            args += [name, str(int(n))]
        reply = self._call(self._flush, keys, args)
        status = _s(reply[0])
        if status == "ok":
            return FlushResult(True)
        if status == "closed":
            return FlushResult(False, _s(reply[1]), float(_s(reply[2])))
        if status == "version":
            conflict = (_s(reply[1]), int(_s(reply[2])), _s(reply[3]))
            return FlushResult(False, version_conflict=conflict)
        other = _s(reply[1])
        where = f"partition {topic}[{partition}]"
        if status == "fenced" and other:
            raise FencedError(f"{where} is now owned by {other!r}, not {token!r}")
        if status == "fenced":  # the claim itself is gone: Redis lost data
            raise OffsetMismatchError(f"{where}: the claim is gone from Redis", None, True)
        stored = int(other) if other else None
        raise OffsetMismatchError(
            f"{where}: stored offset is {other or 'none'}, expected {expected}", stored
        )

    def fence_window(self, topic: str, partitions: Iterable[int], model: str, end: int) -> None:
        """Refuse further deltas for ``model``'s windows ending at or before ``end``."""
        for p in partitions:
            self._call(self._fence, [self.keys.offsets(topic, p)], [f"cu:{model}", str(end)])

    def partition_states(self, topic: str, partitions: Iterable[int]) -> list[PartitionState]:
        """Stored offset, watermark, activity and close fences of each partition."""
        parts = list(partitions)
        pipe = self.client.pipeline(transaction=False)
        for p in parts:
            pipe.hgetall(self.keys.offsets(topic, p))
        out = []
        for p, raw in zip(parts, self._run(pipe), strict=True):
            h = {_s(k): _s(v) for k, v in raw.items()}
            cu = {k[3:]: float(v) for k, v in h.items() if k.startswith("cu:")}
            out.append(
                PartitionState(
                    p,
                    int(h["off"]) if "off" in h else None,
                    float(h["wm"]) if "wm" in h else None,
                    float(h["act"]) if "act" in h else None,
                    cu,
                )
            )
        return out

    def open_windows(self, topic: str, partitions: Iterable[int]) -> dict[tuple[str, int], int]:
        """``(model, start) -> end`` of every window holding deltas on these partitions."""
        parts = list(partitions)
        pipe = self.client.pipeline(transaction=False)
        for p in parts:
            pipe.zrange(self.keys.open_windows(topic, p), 0, -1, withscores=True)
        out: dict[tuple[str, int], int] = {}
        for rows in self._run(pipe):
            for member, score in rows:
                model, _, start = _s(member).rpartition("|")
                out[(model, int(start))] = int(score)
        return out

    def window_deltas(
        self, topic: str, partitions: Iterable[int], model: str, start: int
    ) -> list[dict[str, bytes]]:
        """Every partition's delta hash for one window (empty ones left out).

        Field names are decoded; values stay bytes (packed vectors are binary).
        """
        parts = list(partitions)
        pipe = self.client.pipeline(transaction=False)
        for p in parts:
            pipe.hgetall(self.keys.window_delta(topic, p, model, start))
        return [
            {_s(k): v if isinstance(v, bytes) else str(v).encode() for k, v in raw.items()}
            for raw in self._run(pipe)
            if raw
        ]

    def drop_window(self, topic: str, partitions: Iterable[int], model: str, start: int) -> None:
        """Delete a closed window's deltas and open-index entries."""
        pipe = self.client.pipeline(transaction=False)
        for p in partitions:
            pipe.delete(self.keys.window_delta(topic, p, model, start))
            pipe.zrem(self.keys.open_windows(topic, p), f"{model}|{start}")
        self._run(pipe)

    # -- plumbing --------------------------------------------------------
    def _call(self, script: Any, keys: list[str], args: list[str] | list[str | bytes]) -> Any:
        try:
            return script(keys=keys, args=args)
        except redis.RedisError as exc:
            raise StoreError(f"Redis write failed ({type(exc).__name__}): {exc}") from exc

    def _run(self, pipe: Any) -> list[Any]:
        try:
            return list(pipe.execute())
        except redis.RedisError as exc:
            raise StoreError(f"Redis read failed ({type(exc).__name__}): {exc}") from exc

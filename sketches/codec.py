"""Helpers for the compact byte encoding shared by every sketch.

Every encoding starts with the magic ``b"DL"``, a kind byte and a version byte,
then fixed little-endian fields written with :class:`Writer` and read back
with :class:`Reader`. Any short, long or malformed input raises
:class:`~sketches.exceptions.DecodeError`, never ``struct.error`` or
``IndexError``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sketches.exceptions import DecodeError

__all__ = [
    "MAGIC",
    "Reader",
    "Writer",
    "check_state_vector",
    "field_float",
    "field_int",
    "state_vector",
]

MAGIC = b"DL"
_WIDTHS: dict[int, np.dtype[Any]] = {
    1: np.dtype("<u1"),
    2: np.dtype("<u2"),
    4: np.dtype("<u4"),
    8: np.dtype("<u8"),
}


class Writer:
    """Appends fixed-width little-endian fields to a byte buffer."""

    def __init__(self, kind: int, version: int) -> None:
        self._parts: list[bytes] = [MAGIC, struct.pack("<BB", kind, version)]

    def pack(self, fmt: str, *values: object) -> None:
        self._parts.append(struct.pack("<" + fmt, *values))

    def raw(self, data: bytes) -> None:
        self.pack("I", len(data))
        self._parts.append(data)

    def counts(self, counts: NDArray[np.int64]) -> None:
        """Non-negative integer array in the narrowest of 1, 2, 4 or 8 bytes."""
        top = int(counts.max()) if counts.size else 0
        width = 1 if top < 2**8 else 2 if top < 2**16 else 4 if top < 2**32 else 8
        self.pack("IB", counts.size, width)
        self._parts.append(counts.astype(_WIDTHS[width]).tobytes())

    def floats(self, values: NDArray[np.float64]) -> None:
        self.pack("I", values.size)
        self._parts.append(values.astype("<f8").tobytes())

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads what :class:`Writer` wrote, raising :class:`DecodeError` on bad input."""

    def __init__(self, data: bytes, kind: int, name: str, versions: tuple[int, ...]) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(f"{name}: expected bytes, got {type(data).__name__}")
        self._data = bytes(data)
        self._pos = 0
        self.name = name
        if self._take(2) != MAGIC:
            raise DecodeError(f"{name}: not a driftline sketch (bad magic)")
        got_kind, version = self.unpack("BB")
        if got_kind != kind:
            raise DecodeError(f"{name}: encoded kind {got_kind}, expected {kind}")
        if version not in versions:
            raise DecodeError(f"{name}: unsupported encoding version {version}")
        self.version = version

    def _take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise DecodeError(
                f"{self.name}: truncated input ({len(self._data)} bytes, needed {self._pos + n})"
            )
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def unpack(self, fmt: str) -> tuple[object, ...]:
        fmt = "<" + fmt
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))

    def read_int(self, fmt: str = "q") -> int:
        (v,) = self.unpack(fmt)
        assert isinstance(v, int)
        return v

    def read_float(self) -> float:
        (v,) = self.unpack("d")
        assert isinstance(v, float)
        return v

    def raw(self, limit: int = 1 << 20) -> bytes:
        n = self.read_int("I")
        if n > limit:
            raise DecodeError(f"{self.name}: field of {n} bytes exceeds the limit {limit}")
        return self._take(n)

    def counts(self, limit: int) -> NDArray[np.int64]:
        n, width = self.unpack("IB")
        assert isinstance(n, int) and isinstance(width, int)
        if width not in _WIDTHS:
            raise DecodeError(f"{self.name}: bad count width {width}")
        if n > limit:
            raise DecodeError(f"{self.name}: {n} counts exceed the limit {limit}")
        arr: NDArray[Any] = np.frombuffer(self._take(n * width), dtype=_WIDTHS[width])
        if width == 8 and arr.size and int(arr.max()) >= 2**63:
            raise DecodeError(f"{self.name}: count out of range")
        out: NDArray[np.int64] = arr.astype(np.int64)
        return out

    def floats(self, limit: int) -> NDArray[np.float64]:
        n = self.read_int("I")
        if n > limit:
            raise DecodeError(f"{self.name}: {n} values exceed the limit {limit}")
        return np.frombuffer(self._take(n * 8), dtype="<f8").astype(np.float64)

    def done(self) -> None:
        if self._pos != len(self._data):
            raise DecodeError(
                f"{self.name}: {len(self._data) - self._pos} unexpected trailing bytes"
            )


def field_int(fields: Mapping[str, object], key: str, name: str, default: int | None = None) -> int:
    """An integer field of a flat mapping (Redis returns strings or bytes)."""
    raw = fields.get(key, default)
    if raw is None:
        raise DecodeError(f"{name}: missing field {key!r}")
    try:
        if isinstance(raw, bytes):
            raw = raw.decode()
        value: int = int(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"{name}: field {key!r} is not an integer: {raw!r}") from exc
    return value


def field_float(
    fields: Mapping[str, object], key: str, name: str, default: float | None = None
) -> float:
    """A float field of a flat mapping; ``inf``/``nan`` spellings are accepted."""
    raw = fields.get(key, default)
    if raw is None:
        raise DecodeError(f"{name}: missing field {key!r}")
    try:
        if isinstance(raw, bytes):
            raw = raw.decode()
        value: float = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"{name}: field {key!r} is not a number: {raw!r}") from exc
    return value


def check(cond: bool, name: str, what: str) -> None:
    """Raise :class:`DecodeError` naming the sketch unless ``cond`` holds."""
    if not cond:
        raise DecodeError(f"{name}: {what}")


def is_nonneg(values: NDArray[np.int64]) -> bool:
    return bool(values.size == 0 or int(values.min()) >= 0)


def finite_or_nan(x: float) -> bool:
    return math.isfinite(x) or math.isnan(x)


def state_vector(data: Any, name: str) -> NDArray[np.float64]:
    """A sketch's state vector from its little-endian float64 bytes (what a store
    adds element-wise) or from an array; :class:`DecodeError` naming ``name``
    when the bytes are not whole float64s."""
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) % 8:
            raise DecodeError(f"{name}: {len(data)} bytes is not float64s")
        return np.frombuffer(data, dtype="<f8").astype(np.float64)
    return np.asarray(data, dtype=np.float64).ravel()


def check_state_vector(
    v: NDArray[np.float64], size: int, counts: NDArray[np.float64], name: str
) -> None:
    """The checks every state vector passes: ``size`` values, all finite, and its
    ``counts`` (the count entries of ``v``) non-negative integers."""
    check(
        v.size == size,
        name,
        f"vector of {v.size} values does not fit this configuration ({size})",
    )
    check(bool(np.isfinite(v).all()), name, "non-finite value in the vector")
    check(bool((counts >= 0).all()), name, "negative count")
    check(bool((counts == np.rint(counts)).all()), name, "non-integer count")

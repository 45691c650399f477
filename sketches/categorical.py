"""Categorical counter with bounded cardinality.

Exact counts per category up to ``max_categories`` (default 1,000) distinct
categories; values of further new categories are folded into the ``__other__``
bucket and counted there, so the total is always exact. ``None`` and float NaN
are counted as missing. Categories are strings: booleans become ``"true"`` /
``"false"``, integers and other values their ``str()``; a name longer than
``max_length`` (default 256) characters is folded into ``__other__`` too.

``merge`` adds counts. It is commutative and associative, and merge of the
counters of ``a`` and ``b`` equals the counter of ``a + b``, as long as the
union of categories fits in ``max_categories``; past that, totals stay exact
and the categories kept are the most frequent (ties by name).

Example:
    >>> c = CategoricalCounter()
    >>> c.update_many(["a", "b", "a", None])
    >>> c.counts, c.missing
    ({'a': 2, 'b': 1}, 1)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from sketches.codec import Reader, Writer, check, field_int
from sketches.exceptions import DecodeError, IncompatibleSketchError

__all__ = ["OTHER", "CategoricalCounter", "category_name"]

OTHER = "__other__"
_KIND = 4
_VERSION = 1


def category_name(value: object) -> str | None:
    """The category a value counts under, or ``None`` for a missing value."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class CategoricalCounter:
    """Exact category counts up to a cap, an ``__other__`` bucket and a missing count."""

    __slots__ = ("counts", "max_categories", "max_length", "missing", "other")

    def __init__(self, max_categories: int = 1000, max_length: int = 256) -> None:
        if not (isinstance(max_categories, int) and max_categories >= 1):
            raise ValueError(f"max_categories must be an integer >= 1, got {max_categories!r}")
        if not (isinstance(max_length, int) and max_length >= 1):
            raise ValueError(f"max_length must be an integer >= 1, got {max_length!r}")
        self.max_categories = max_categories
        self.max_length = max_length
        self.counts: dict[str, int] = {}
        self.other = 0
        self.missing = 0

    @property
    def count(self) -> int:
        """Present values (named categories plus ``__other__``)."""
        return sum(self.counts.values()) + self.other

    @property
    def total(self) -> int:
        """Present plus missing values."""
        return self.count + self.missing

    @property
    def is_empty(self) -> bool:
        return self.total == 0

    def update(self, value: object) -> None:
        self.update_many([value])

    def update_many(self, values: Iterable[object]) -> None:
        """Count every value; strings are counted by C-level ``Counter``."""
        if isinstance(values, np.ndarray) and values.dtype.kind in "US":
            tally = Counter(values.astype(str).tolist())
        else:
            tally = Counter(values)
        named: dict[str, int] = {}
        for value, n in tally.items():
            name = category_name(value)
            if name is None:
                self.missing += n
            elif name == OTHER or len(name) > self.max_length:
                self.other += n
            else:
                named[name] = named.get(name, 0) + n
        self._add(named)

    def _add(self, named: Mapping[str, int]) -> None:
        counts = self.counts
        for name, n in named.items():
            if name in counts:
                counts[name] += n
            elif len(counts) < self.max_categories:
                counts[name] = n
            else:
                self.other += n

    def merge(self, other: CategoricalCounter) -> None:
        """Add ``other`` into this counter; ``other`` is left untouched."""
        if not isinstance(other, CategoricalCounter):
            raise TypeError(f"cannot merge {type(other).__name__} into CategoricalCounter")
        if (self.max_categories, self.max_length) != (other.max_categories, other.max_length):
            raise IncompatibleSketchError(
                "cannot merge categorical counters with different parameters: "
                f"max_categories={self.max_categories}, max_length={self.max_length} vs "
                f"max_categories={other.max_categories}, max_length={other.max_length}"
            )
        merged = Counter(self.counts)
        merged.update(other.counts)
        self.missing += other.missing
        self.other += other.other
        if len(merged) <= self.max_categories:
            self.counts = dict(merged)
            return
        ranked = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
        self.counts = dict(ranked[: self.max_categories])
        self.other += sum(n for _, n in ranked[self.max_categories :])

    def copy(self) -> CategoricalCounter:
        out = CategoricalCounter(self.max_categories, self.max_length)
        out.counts = dict(self.counts)
        out.other, out.missing = self.other, self.missing
        return out

    def frequencies(self) -> dict[str, int]:
        """Counts with ``__other__`` included when non-zero."""
        out = dict(self.counts)
        if self.other:
            out[OTHER] = self.other
        return out

    # -- encodings -------------------------------------------------------
    def to_fields(self) -> dict[str, int]:
        """Flat mapping: ``k:<name>`` per category, ``o`` other, ``na`` missing,
        ``mc``/``ml`` the parameters. Every count field merges by addition."""
        out = {"mc": self.max_categories, "ml": self.max_length, "o": self.other}
        out["na"] = self.missing
        out.update({f"k:{name}": n for name, n in self.counts.items()})
        return out

    @staticmethod
    def field_op(name: str) -> str:
        """How a flat field merges: ``"add"`` or ``"const"`` (parameters)."""
        return "const" if name in ("mc", "ml") else "add"

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any]) -> CategoricalCounter:
        """Inverse of :meth:`to_fields`; names beyond the cap fold into other."""
        name = "CategoricalCounter"
        f: dict[str, Any] = {}
        for k, v in fields.items():
            try:
                f[k.decode() if isinstance(k, bytes) else str(k)] = v
            except UnicodeDecodeError as exc:
                raise DecodeError(f"{name}: field name is not UTF-8: {k!r}") from exc
        try:
            c = cls(field_int(f, "mc", name, 1000), field_int(f, "ml", name, 256))
        except DecodeError:
            raise
        except ValueError as exc:
            raise DecodeError(f"{name}: bad parameters: {exc}") from exc
        c.other = field_int(f, "o", name, 0)
        c.missing = field_int(f, "na", name, 0)
        named = {k[2:]: field_int(f, k, name) for k in f if k.startswith("k:")}
        check(min([c.other, c.missing, *named.values()]) >= 0, name, "negative count")
        for cat, n in sorted(named.items(), key=lambda kv: (-kv[1], kv[0])):
            if len(cat) > c.max_length:
                c.other += n
            else:
                c._add({cat: n})
        return c

    def to_bytes(self) -> bytes:
        """Compact versioned encoding (kind 4)."""
        w = Writer(_KIND, _VERSION)
        w.pack(
            "IIqqI",
            self.max_categories,
            self.max_length,
            self.other,
            self.missing,
            len(self.counts),
        )
        for cat, n in self.counts.items():
            w.raw(cat.encode("utf-8", "surrogatepass"))
            w.pack("q", n)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> CategoricalCounter:
        """Decode :meth:`to_bytes`; raises :class:`DecodeError` on bad input."""
        r = Reader(data, _KIND, "CategoricalCounter", (_VERSION,))
        max_categories, max_length, other, missing, n = (
            r.read_int("I"),
            r.read_int("I"),
            r.read_int(),
            r.read_int(),
            r.read_int("I"),
        )
        check(max_categories >= 1 and max_length >= 1, r.name, "bad parameters")
        check(n <= max_categories, r.name, f"{n} categories exceed the cap {max_categories}")
        c = cls(max_categories, max_length)
        check(other >= 0 and missing >= 0, r.name, "negative count")
        c.other, c.missing = other, missing
        for _ in range(n):
            raw = r.raw(4 * max_length)
            try:
                cat = raw.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                raise DecodeError(f"{r.name}: category name is not UTF-8") from exc
            count = r.read_int()
            check(count >= 0, r.name, "negative count")
            check(cat not in c.counts, r.name, f"duplicate category {cat!r}")
            c.counts[cat] = count
        r.done()
        return c

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoricalCounter):
            return NotImplemented
        return (self.max_categories, self.max_length, self.other, self.missing) == (
            other.max_categories,
            other.max_length,
            other.other,
            other.missing,
        ) and {k: v for k, v in self.counts.items() if v} == {
            k: v for k, v in other.counts.items() if v
        }

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"CategoricalCounter({len(self.counts)} categories, count={self.count}, "
            f"other={self.other}, missing={self.missing})"
        )

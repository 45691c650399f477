"""Class labels → integer codes, vectorised: the index a quality sketch counts under.

A label matches a class when its category name (the rule of
:func:`~sketches.categorical.category_name`: strings as they are, ``True`` →
``"true"``, ``3`` and ``3.0`` → ``"3"``, ``0.5`` → ``"0.5"``) equals the class.
Labels of no class get the code ``len(classes)`` ("other"); ``None`` and NaN get
:data:`MISSING`. Integer arrays are coded by table lookup when the classes are
integers in a short range (about 5 ms for 10^6 labels), string and other numeric
arrays with ``searchsorted`` on the sorted classes (about 40 ms for 10^6 short
strings); object arrays and mixed lists take a per-value path.

Example:
    >>> ix = LabelIndex(["cat", "dog"])
    >>> ix.codes(["dog", "cat", "cow", None]).tolist()
    [1, 0, 2, -1]
    >>> LabelIndex(["0", "1"]).codes(np.array([1.0, 0.0, 2.0])).tolist()
    [1, 0, 2]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sketches.categorical import category_name

__all__ = ["MISSING", "LabelIndex", "as_labels"]

MISSING = -1


def as_labels(values: ArrayLike) -> NDArray[Any]:
    """A 1-D array of labels; a list mixing strings with other values stays ``object``
    (``np.asarray(["a", 1.0])`` would spell ``1.0`` as ``"1.0"``, not ``"1"``)."""
    if isinstance(values, np.ndarray):
        arr = values
    else:
        arr = np.asarray(values)
        if arr.dtype.kind == "U" and not all(isinstance(v, str) for v in values):  # type: ignore[union-attr]
            arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {arr.shape}")
    return arr


class LabelIndex:
    """Codes ``0 .. k-1`` for the classes, ``k`` for any other label, -1 for missing."""

    __slots__ = (
        "_by_name",
        "_int_base",
        "_int_table",
        "_num_codes",
        "_num_values",
        "_str_codes",
        "_str_sorted",
        "classes",
    )

    def __init__(self, classes: Sequence[str]) -> None:
        if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"classes must be a sequence of strings, got {classes!r}")
        names = tuple(classes)
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"class {name!r} is listed twice in {list(names)!r}")
            seen.add(name)
        self.classes = names
        self._by_name = {name: i for i, name in enumerate(names)}
        order = sorted(range(len(names)), key=names.__getitem__)
        self._str_sorted = np.array([names[i] for i in order], dtype=str)
        self._str_codes = np.array(order, dtype=np.int64)
        numeric = []
        for i, name in enumerate(names):
            try:
                v = float(name)
            except ValueError:
                continue
            if category_name(v) == name:  # the spelling a number of that value gets
                numeric.append((v, i))
        numeric.sort()
        self._num_values = np.array([v for v, _ in numeric], dtype=np.float64)
        self._num_codes = np.array([i for _, i in numeric], dtype=np.int64)
        # integer labels in a short range (0 .. k-1, say) are coded by table lookup
        ints = [(int(v), i) for v, i in numeric if v.is_integer() and abs(v) < 2**53]
        self._int_base = 0
        self._int_table: NDArray[np.int64] | None = None
        if ints and max(v for v, _ in ints) - min(v for v, _ in ints) < 1 << 16:
            self._int_base = min(v for v, _ in ints)
            table = np.full(max(v for v, _ in ints) - self._int_base + 1, len(names), np.int64)
            for v, i in ints:
                table[v - self._int_base] = i
            self._int_table = table

    @property
    def other(self) -> int:
        """The code of labels outside the classes."""
        return len(self.classes)

    def codes(self, values: ArrayLike) -> NDArray[np.int64]:
        """Code of every label (see the module docstring)."""
        arr = as_labels(values)
        kind = arr.dtype.kind
        if kind == "b":
            return self._lookup_str(np.where(arr, "true", "false"))
        if kind in "iu" and self._int_table is not None:
            return self._lookup_int(arr)
        if kind in "iuf":
            return self._lookup_num(arr.astype(np.float64))
        if kind == "U":
            return self._lookup_str(arr)
        if kind == "S":
            return self._lookup_str(np.char.decode(arr, "utf-8", "replace"))
        other, by_name = self.other, self._by_name
        out = np.empty(arr.size, dtype=np.int64)
        for i, value in enumerate(arr.tolist()):
            name = category_name(value)
            out[i] = MISSING if name is None else by_name.get(name, other)
        return out

    def _lookup_str(self, arr: NDArray[Any]) -> NDArray[np.int64]:
        out = np.full(arr.size, self.other, dtype=np.int64)
        keys = self._str_sorted
        if keys.size and arr.size:
            pos = np.minimum(np.searchsorted(keys, arr), keys.size - 1)
            hit = keys[pos] == arr
            out[hit] = self._str_codes[pos[hit]]
        return out

    def _lookup_int(self, x: NDArray[Any]) -> NDArray[np.int64]:
        table = self._int_table
        assert table is not None
        x = x.astype(np.int64, copy=False)
        out = np.full(x.size, self.other, dtype=np.int64)
        if x.size == 0:
            return out
        lo, hi = int(x.min()), int(x.max())
        base, top = self._int_base, self._int_base + table.size - 1
        if lo >= base and hi <= top:
            coded: NDArray[np.int64] = table[x - base]
            return coded
        inside = np.flatnonzero((x >= base) & (x <= top))
        out[inside] = table[x[inside] - base]
        return out

    def _lookup_num(self, x: NDArray[np.float64]) -> NDArray[np.int64]:
        out = np.full(x.size, self.other, dtype=np.int64)
        keys = self._num_values
        if keys.size and x.size:
            pos = np.minimum(np.searchsorted(keys, x), keys.size - 1)
            hit = keys[pos] == x
            out[hit] = self._num_codes[pos[hit]]
        out[np.isnan(x)] = MISSING
        return out

    def same_labels(self, a: ArrayLike, b: ArrayLike, rows: NDArray[np.intp]) -> int:
        """How many of ``rows`` carry the same label in ``a`` and ``b`` (by category
        name). Used for rows where both labels are outside the classes."""
        if rows.size == 0:
            return 0
        x, y = as_labels(a)[rows], as_labels(b)[rows]
        if x.dtype.kind in "iuf" and y.dtype.kind in "iuf":
            return int(np.count_nonzero(x.astype(np.float64) == y.astype(np.float64)))
        if x.dtype.kind == "U" and y.dtype.kind == "U":
            return int(np.count_nonzero(x == y))
        return sum(
            1
            for u, v in zip(x.tolist(), y.tolist(), strict=True)
            if (n := category_name(u)) is not None and n == category_name(v)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelIndex):
            return NotImplemented
        return self.classes == other.classes

    def __hash__(self) -> int:
        return hash(self.classes)

    def __repr__(self) -> str:
        return f"LabelIndex({list(self.classes)!r})"

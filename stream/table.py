"""Reading a training table (CSV or Parquet) into columns."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from stream.baseline import BaselineError

__all__ = ["read_table"]


def read_table(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Column name → values of a ``.csv`` or ``.parquet`` file.

    Numeric columns come as float64 arrays (nulls as NaN), others as lists
    (nulls as ``None``).

    Raises:
        BaselineError: the file is missing, of another type, or unreadable.
    """
    p = Path(path)
    if not p.is_file():
        raise BaselineError(f"training file not found: {str(p)!r}")
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            from pyarrow import csv

            opts = csv.ConvertOptions(strings_can_be_null=True)
            table = csv.read_csv(p, convert_options=opts)
        elif suffix in (".parquet", ".pq"):
            from pyarrow import parquet

            table = parquet.read_table(p)
        else:
            raise BaselineError(f"expected a .csv or .parquet file, got {str(p)!r}")
    except ImportError as exc:
        raise BaselineError("reading training files needs pyarrow: pip install pyarrow") from exc
    except BaselineError:
        raise
    except Exception as exc:  # pyarrow raises several error types
        raise BaselineError(f"cannot read {str(p)!r}: {exc}") from exc
    import pyarrow.types as pat

    out: dict[str, Any] = {}
    for name in table.column_names:
        col = table.column(name)
        if pat.is_integer(col.type) or pat.is_floating(col.type):
            out[name] = col.to_numpy(zero_copy_only=False).astype("float64")
        else:
            out[name] = col.to_pylist()
    return out

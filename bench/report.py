"""The results table every benchmark prints: figures over repeats, ratios, targets.

Rows are markdown (``| # | measurement | median | min … max | unit | note |``),
followed by a ``## targets`` table with PASS/FAIL per target.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Report", "Row", "Stat", "Target", "TimedParts", "fmt", "one_blas_thread"]


@dataclass
class Stat:
    """One figure over the repeats (NaN when there are none)."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def lo(self) -> float:
        return min(self.samples) if self.samples else math.nan

    @property
    def hi(self) -> float:
        return max(self.samples) if self.samples else math.nan


@dataclass(frozen=True)
class Row:
    """A table row: a figure over repeats (``stat``) or a single figure."""

    section: str
    name: str
    stat: Stat | None
    value: float
    unit: str
    note: str = ""


@dataclass(frozen=True)
class Target:
    """A target line: what was measured against the goal."""

    name: str
    measured: str
    goal: str
    passed: bool


class Report:
    """Rows and targets, rendered as markdown."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.targets: list[Target] = []
        self.notes: list[str] = []

    def stat(self, section: str, name: str, stat: Stat, unit: str, note: str = "") -> float:
        """Add a row for ``stat``; returns its median."""
        self.rows.append(Row(section, name, stat, stat.median, unit, note))
        return stat.median

    def timing(
        self, section: str, name: str, stat: Stat, scale: float, unit: str, note: str = ""
    ) -> float:
        """Add a row for ``stat`` multiplied by ``scale``; returns its median."""
        return self.stat(section, name, Stat([s * scale for s in stat.samples]), unit, note)

    def figure(self, section: str, name: str, value: float, unit: str, note: str = "") -> None:
        """Add a row for a single figure (a ratio, bytes)."""
        self.rows.append(Row(section, name, None, value, unit, note))

    def target(self, name: str, measured: str, goal: str, passed: bool) -> None:
        """Add a target line."""
        self.targets.append(Target(name, measured, goal, passed))

    def render(self, quick: bool = False) -> str:
        """The table, then the targets."""
        lines = [
            "| # | measurement | median | min … max | unit | note |",
            "|---|---|---:|---:|---|---|",
        ]
        for r in self.rows:
            spread = f"{fmt(r.stat.lo)} … {fmt(r.stat.hi)}" if r.stat else ""
            lines.append(
                f"| {r.section} | {r.name} | {fmt(r.value)} | {spread} | {r.unit} | {r.note} |"
            )
        lines += ["", "## targets", ""]
        if quick:
            lines += ["(quick mode: small sizes, so the verdicts below are indicative only)", ""]
        lines.append("| target | measured | goal | result |")
        lines.append("|---|---:|---|---|")
        for t in self.targets:
            verdict = "PASS" if t.passed else "FAIL"
            lines.append(f"| {t.name} | {t.measured} | {t.goal} | {verdict} |")
        if self.notes:
            lines += ["", *self.notes]
        return "\n".join(lines)


def fmt(x: float) -> str:
    """Three significant digits, thousands separated; ``n/a`` for NaN.

    Example:
        >>> fmt(0.012345), fmt(1234.5), fmt(float("nan"))
        ('0.0123', '1,234', 'n/a')
    """
    if math.isnan(x):
        return "n/a"
    if x == 0 or 0.01 <= abs(x) < 1e7:
        return f"{x:,.3g}" if abs(x) < 100 else f"{x:,.0f}"
    return f"{x:.3g}"


def one_blas_thread() -> None:
    """One thread for every BLAS/OpenMP pool; call before numpy is imported."""
    for var in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    ):
        os.environ[var] = "1"


class TimedParts:
    """Wall time per named part of a run, counted between ``t_first`` and ``t_end``
    (both ``time.perf_counter()``; set by the run)."""

    def __init__(self, parts: Iterable[str]) -> None:
        self.split: dict[str, float] = dict.fromkeys(parts, 0.0)
        self.t_first: float | None = None
        self.t_end: float | None = None

    def _timed(self, fn: Callable[..., Any], part: str) -> Callable[..., Any]:
        """``fn`` wrapped to add its time to ``split[part]`` while the clock runs."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.t_first is None or self.t_end is not None:
                return fn(*args, **kwargs)
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.split[part] = self.split.get(part, 0.0) + time.perf_counter() - t

        return timed

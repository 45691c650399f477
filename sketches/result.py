"""The result of one distance or test between a reference and a current sketch."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DriftResult"]


@dataclass(frozen=True)
class DriftResult:
    """One drift measurement.

    Attributes:
        method: registry name (``"psi"``, ``"ks"``, …).
        value: the distance or test statistic (NaN when it cannot be computed).
        threshold: for a distance, ``drifted`` means ``value >= threshold``; for a
            test (``p_value`` set), ``drifted`` means ``p_value < threshold``.
        drifted: the decision.
        n_ref: reference values counted (missing included).
        n_cur: current values counted (missing included).
        p_value: for tests (KS, chi-square); ``None`` for distances.
        error_bound: largest possible difference between ``value`` and the same
            statistic computed exactly on the raw data (0 where exact).
        reason: why ``value`` is NaN or infinite, else ``None``.
    """

    method: str
    value: float
    threshold: float
    drifted: bool
    n_ref: int
    n_cur: int
    p_value: float | None = None
    error_bound: float = 0.0
    reason: str | None = None

    @property
    def is_test(self) -> bool:
        return self.p_value is not None

    @property
    def score(self) -> float:
        """The number compared with ``threshold``: the p-value for tests."""
        return self.p_value if self.p_value is not None else self.value

    def to_dict(self) -> dict[str, Any]:
        """Plain dict; non-finite floats become ``None`` so JSON stays valid."""
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, float) and not math.isfinite(v):
                out[k] = None
        return out

    @classmethod
    def undefined(
        cls, method: str, threshold: float, n_ref: int, n_cur: int, reason: str, test: bool
    ) -> DriftResult:
        """A NaN result that says why, never an exception."""
        return cls(
            method,
            math.nan,
            threshold,
            False,
            n_ref,
            n_cur,
            p_value=math.nan if test else None,
            error_bound=math.nan,
            reason=reason,
        )

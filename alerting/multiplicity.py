"""Multiple-testing control: the Benjamini–Hochberg step-up procedure.

With hundreds of features tested every window, a per-feature level of 0.05
flags about 5 % of the features of a stationary stream. Benjamini–Hochberg
keeps the expected share of false discoveries among the flagged features at
most ``q`` (for independent or positively dependent tests): sort the
``m`` p-values, find the largest ``k`` with ``p_(k) ≤ k · q / m``, and reject
the ``k`` smallest.

Example:
    >>> rejected, cutoff = benjamini_hochberg([0.001, 0.008, 0.039, 0.041, 0.9], 0.05)
    >>> rejected, cutoff
    ([True, True, False, False, False], 0.02)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["benjamini_hochberg"]


def benjamini_hochberg(p_values: Sequence[float], q: float) -> tuple[list[bool], float]:
    """Which hypotheses are rejected at false-discovery rate ``q``, and the cutoff.

    Args:
        p_values: one p-value per test, in ``[0, 1]``.
        q: the false-discovery rate, in ``(0, 1)``.

    Returns:
        ``rejected`` (aligned with ``p_values``) and the critical value
        ``k · q / m`` that applied (``q / m`` when nothing is rejected: the
        level the smallest p-value would have had to pass).
    """
    if not 0 < q < 1:
        raise ValueError(f"the false-discovery rate must be in (0, 1), got {q!r}")
    m = len(p_values)
    if m == 0:
        return [], q
    order = sorted(range(m), key=lambda i: p_values[i])
    k = 0
    for rank, i in enumerate(order, start=1):
        if p_values[i] <= rank * q / m:
            k = rank
    rejected = [False] * m
    for i in order[:k]:
        rejected[i] = True
    return rejected, max(k, 1) * q / m

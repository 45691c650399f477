"""Registry of drift methods: name → function, default threshold, kind.

An explicit table, no import-time self-registration. Defaults follow the
field's conventions (Evidently's defaults for tabular drift):

* numeric feature: normalised Wasserstein ≥ 0.1 when the reference has more
  than 1,000 values, else Kolmogorov–Smirnov with p < 0.05;
* categorical (and boolean) feature: Jensen–Shannon distance ≥ 0.1 above
  1,000 reference values, else chi-square with p < 0.05;
* PSI tiers: 0.1 (moderate) and 0.25 (significant).

Example:
    >>> from sketches import CategoricalCounter
    >>> ref, cur = CategoricalCounter(), CategoricalCounter()
    >>> ref.update_many(["a"] * 50 + ["b"] * 50)
    >>> cur.update_many(["a"] * 90 + ["b"] * 10)
    >>> result = drift(ref, cur)
    >>> result.method, result.drifted
    ('chi2', True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from sketches.binned import chi_square, hellinger, jensen_shannon, kl_divergence, psi
from sketches.categorical import CategoricalCounter
from sketches.histogram import ReferenceHistogram
from sketches.result import DriftResult
from sketches.transport import (
    energy_distance,
    ks_test,
    ks_test_many,
    wasserstein,
    wasserstein_normalized,
    wasserstein_normalized_many,
)

__all__ = [
    "LARGE_SAMPLE",
    "METHODS",
    "PSI_TIERS",
    "DriftMethod",
    "FeatureKind",
    "default_method",
    "drift",
    "drift_many",
]

FeatureKind = Literal["numeric", "categorical", "boolean"]
PSI_TIERS = (0.1, 0.25)
LARGE_SAMPLE = 1000  # above this many reference values: distances, else tests


@dataclass(frozen=True)
class DriftMethod:
    """One registered method.

    Attributes:
        name: registry key.
        func: ``(reference, current, threshold) -> DriftResult``.
        threshold: default threshold (``None``: derived from the reference).
        is_test: True when ``threshold`` is a p-value level.
        numeric: applies to reference-binned histograms.
        categorical: applies to categorical counters.
    """

    name: str
    func: Callable[..., DriftResult]
    threshold: float | None
    is_test: bool
    numeric: bool
    categorical: bool


METHODS: Mapping[str, DriftMethod] = MappingProxyType(
    {
        m.name: m
        for m in (
            DriftMethod("psi", psi, PSI_TIERS[0], False, True, True),
            DriftMethod("kl", kl_divergence, 0.1, False, True, True),
            DriftMethod("js", jensen_shannon, 0.1, False, True, True),
            DriftMethod("hellinger", hellinger, 0.1, False, True, True),
            DriftMethod("chi2", chi_square, 0.05, True, True, True),
            DriftMethod("ks", ks_test, 0.05, True, True, False),
            DriftMethod("wasserstein", wasserstein, None, False, True, False),
            DriftMethod("wasserstein_norm", wasserstein_normalized, 0.1, False, True, False),
            DriftMethod("energy", energy_distance, 0.1, False, True, False),
        )
    }
)


def default_method(kind: FeatureKind, n_reference: int) -> str:
    """The conventional method for a feature kind and reference size."""
    large = n_reference > LARGE_SAMPLE
    if kind == "numeric":
        return "wasserstein_norm" if large else "ks"
    if kind in ("categorical", "boolean"):
        return "js" if large else "chi2"
    raise ValueError(f"unknown feature kind {kind!r}; expected numeric, categorical or boolean")


def drift(
    reference: ReferenceHistogram | CategoricalCounter,
    current: ReferenceHistogram | CategoricalCounter,
    method: str | None = None,
    threshold: float | None = None,
) -> DriftResult:
    """Compute one drift method (default: :func:`default_method`) between sketches."""
    numeric = isinstance(reference, ReferenceHistogram)
    if method is None:
        method = default_method("numeric" if numeric else "categorical", reference.total)
    spec = METHODS.get(method)
    if spec is None:
        raise ValueError(f"unknown drift method {method!r}; known: {', '.join(sorted(METHODS))}")
    if not (spec.numeric if numeric else spec.categorical):
        kind = "numeric" if numeric else "categorical"
        raise ValueError(f"drift method {method!r} does not apply to {kind} features")
    kwargs: dict[str, Any] = {}
    if threshold is not None:
        kwargs["threshold"] = threshold
    elif spec.threshold is not None:
        kwargs["threshold"] = spec.threshold
    return spec.func(reference, current, **kwargs)


_MANY: Mapping[str, Callable[..., list[DriftResult]]] = MappingProxyType(
    {"ks": ks_test_many, "wasserstein_norm": wasserstein_normalized_many}
)


def drift_many(
    references: Sequence[ReferenceHistogram | CategoricalCounter],
    currents: Sequence[ReferenceHistogram | CategoricalCounter],
    method: str | None = None,
) -> list[DriftResult]:
    """:func:`drift` for many features at once, with the same results.

    KS and normalised Wasserstein between histograms run for all features in
    one stacked numpy pass (:class:`~sketches.linestack.PairStack`); the other
    methods run one by one.
    """
    if len(references) != len(currents):
        raise ValueError(f"{len(references)} references but {len(currents)} current sketches")
    methods = [
        method
        or default_method(
            "numeric" if isinstance(ref, ReferenceHistogram) else "categorical", ref.total
        )
        for ref in references
    ]
    out: dict[int, DriftResult] = {}
    for name, many in _MANY.items():
        idx = [
            i
            for i, m in enumerate(methods)
            if m == name
            and isinstance(references[i], ReferenceHistogram)
            and isinstance(currents[i], ReferenceHistogram)
        ]
        if idx:
            results = many([references[i] for i in idx], [currents[i] for i in idx])
            out.update(zip(idx, results, strict=True))
    return [
        out[i] if i in out else drift(references[i], currents[i], methods[i])
        for i in range(len(references))
    ]

"""driftline's sketches: mergeable summaries of a stream and drift between them.

Pure numpy/scipy; nothing here talks to Kafka or Redis.

* :class:`QuantileSketch` — relative-error quantiles (α = 1 % by default).
* :class:`ReferenceHistogram` on a :class:`Binning` — counts and sums on bins
  cut at the reference's quantiles; what drift is computed on.
* :class:`CategoricalCounter` — bounded exact category counts.
* :class:`Moments` — count, missing, mean, variance, min, max.
* Drift methods (:data:`METHODS`, :func:`drift`) returning :class:`DriftResult`.
"""

from sketches.binned import chi_square, hellinger, jensen_shannon, kl_divergence, psi
from sketches.binning import Binning
from sketches.categorical import OTHER, CategoricalCounter
from sketches.exceptions import DecodeError, IncompatibleSketchError, SketchError
from sketches.histogram import ReferenceHistogram
from sketches.mapping import LogarithmicMapping
from sketches.moments import Moments
from sketches.quantile import QuantileSketch
from sketches.registry import (
    LARGE_SAMPLE,
    METHODS,
    PSI_TIERS,
    DriftMethod,
    FeatureKind,
    default_method,
    drift,
    drift_many,
)
from sketches.result import DriftResult
from sketches.transport import energy_distance, ks_test, wasserstein, wasserstein_normalized

__all__ = [
    "LARGE_SAMPLE",
    "METHODS",
    "OTHER",
    "PSI_TIERS",
    "Binning",
    "CategoricalCounter",
    "DecodeError",
    "DriftMethod",
    "DriftResult",
    "FeatureKind",
    "IncompatibleSketchError",
    "LogarithmicMapping",
    "Moments",
    "QuantileSketch",
    "ReferenceHistogram",
    "SketchError",
    "chi_square",
    "default_method",
    "drift",
    "drift_many",
    "energy_distance",
    "hellinger",
    "jensen_shannon",
    "kl_divergence",
    "ks_test",
    "psi",
    "wasserstein",
    "wasserstein_normalized",
]

"""driftline's sketches: mergeable summaries of a stream and drift between them.

Pure numpy/scipy; nothing here talks to Kafka or Redis.

* :class:`QuantileSketch` — relative-error quantiles (α = 1 % by default).
* :class:`ReferenceHistogram` on a :class:`Binning` — counts and sums on bins
  cut at the reference's quantiles; what drift is computed on.
* :class:`CategoricalCounter` — bounded exact category counts.
* :class:`Moments` — count, missing, mean, variance, min, max.
* Drift methods (:data:`METHODS`, :func:`drift`) returning :class:`DriftResult`.
* :class:`ClassificationQuality` and :class:`RegressionQuality` — model quality
  from labelled predictions, each one fixed-length float64 vector that merges
  by addition.
* :func:`estimate` with a :class:`Calibrator` — a binary classifier's quality
  estimated from its score histogram before labels arrive.
"""

from sketches.binned import chi_square, hellinger, jensen_shannon, kl_divergence, psi
from sketches.binning import Binning
from sketches.categorical import OTHER, CategoricalCounter
from sketches.classification import ClassificationQuality
from sketches.estimation import Calibrator, QualityEstimate, estimate, score_counts
from sketches.exceptions import DecodeError, IncompatibleSketchError, SketchError
from sketches.histogram import ReferenceHistogram
from sketches.logbuckets import SignedLogBuckets
from sketches.mapping import LogarithmicMapping
from sketches.moments import Moments
from sketches.quantile import QuantileSketch
from sketches.ranking import ScoreGrid
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
from sketches.regression import RegressionQuality
from sketches.result import DriftResult
from sketches.transport import energy_distance, ks_test, wasserstein, wasserstein_normalized

__all__ = [
    "LARGE_SAMPLE",
    "METHODS",
    "OTHER",
    "PSI_TIERS",
    "Binning",
    "Calibrator",
    "CategoricalCounter",
    "ClassificationQuality",
    "DecodeError",
    "DriftMethod",
    "DriftResult",
    "FeatureKind",
    "IncompatibleSketchError",
    "LogarithmicMapping",
    "Moments",
    "QualityEstimate",
    "QuantileSketch",
    "ReferenceHistogram",
    "RegressionQuality",
    "ScoreGrid",
    "SignedLogBuckets",
    "SketchError",
    "chi_square",
    "default_method",
    "drift",
    "drift_many",
    "energy_distance",
    "estimate",
    "hellinger",
    "jensen_shannon",
    "kl_divergence",
    "ks_test",
    "psi",
    "score_counts",
    "wasserstein",
    "wasserstein_normalized",
]

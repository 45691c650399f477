"""Sample-size-aware drift thresholds: the null distribution of each distance.

A distance between a window and the reference is never zero on a stationary
stream: sampling noise alone gives it a *floor* that grows as the window
shrinks, roughly ``c · sqrt(1/n + 1/n_ref)`` for the metrics (Wasserstein,
energy, Jensen–Shannon and Hellinger distances) and ``c · (1/n + 1/n_ref)``
for the divergences (PSI, KL), which are squared-distance-like. A fixed
threshold that is silent at 2,000 events per window therefore fires on most
features at 400. :class:`NullModel` estimates that floor once per feature and
method, from the reference sketch alone, and :func:`effective_threshold` adds
it to the configured effect size.

**How the floor is estimated (parametric bootstrap on the sketch).** The
reference's bin proportions ``p`` (value bins plus the missing bin; for a
categorical counter, its categories plus the missing bin) are taken as the
population. Each draw first resamples a "true" distribution ``p* ~
Multinomial(n_ref, p) / n_ref`` — the reference's own sampling noise, so the
floor is that of the two-sample comparison the monitor actually makes — then a
window ``Multinomial(n, p*)``, and computes the distance between that window
and the reference exactly as :mod:`sketches.binned` and
:mod:`sketches.transport` do (within a bin, the window's values sit at the
reference's bin mean; for Wasserstein the window's bin means are also drawn,
normal with the bin's within-bin spread over ``sqrt(k)``, the spread being the
uniform piece's plus, in the two extreme bins, whatever within-bin variance
the reference's sum of squares shows beyond that). This is done for ``draws``
(default 256) windows at each size of a grid (default 50 … 100,000). The upper
``q`` quantile per size comes from a gamma distribution fitted by moments to
``D²`` (metrics) or ``D`` (divergences) — a Satterthwaite-style fit, since
those are close to quadratic forms of the binned noise — because 256 draws
cannot resolve a 0.999 quantile empirically. Floors are made non-increasing in
``n`` and the power law ``floor = c · (1/n + 1/n_ref)^b`` is fitted to the
grid (least squares in log-log). Metrics use the fitted law (it averages the
Monte Carlo noise); divergences interpolate linearly in ``log floor`` against
``log(1/n + 1/n_ref)`` and follow the law beyond the grid.

**Threshold.** ``effective_threshold(effect, floor) = effect + floor``. For the
metrics the triangle inequality gives ``D_obs <= D_true + D_noise``, so an
observation ``>= effect + floor`` means, with confidence about ``q``, that the
*true* distance exceeds ``effect``: the configured effect size keeps its
meaning at every volume, and a stationary stream (``D_true = 0``) must produce
noise ``effect`` above its own ``q`` quantile (a wide margin for light
tails; for heavy tails at small windows see *Accuracy*). ``max(effect,
floor)`` was rejected: with it a
stationary window alarms with probability ``1 - q`` whenever the floor
exceeds the effect (small windows), i.e. about 144 alarms a day for 100
features at one window a minute and ``q = 0.999``. The additive form costs
power only at very small windows, where the floor is comparable to the
effect.

**Why q = 0.999.** ``q`` bounds the alarm rate when the true distance sits
*at* the effect size (per window and feature about ``1 - q``, i.e. about 0.1
false alarms a day per feature at one window a minute); with the effect
added, the stationary false-alarm rate is far below ``1 - q``. Higher ``q``
would rest on the gamma tail far beyond what 256 draws see, and costs power
at small windows (the 0.999 floor is about 1.2–1.3 times the 0.99 floor).

**Accuracy (measured against 2,000 real stationary windows per size, fixed
20,000-value reference).** JS and PSI floors are within about 5 % of the
real 0.999 quantile at 400, 2,000 and 20,000 events. The Wasserstein floor
matches the real 0.99 quantile but is low in the extreme tail of heavy-tailed
data at small windows (lognormal, 400 events: floor ≈ 0.16, real 0.999
quantile ≈ 0.21, real maximum 0.24), because a single extreme value or one
beyond the reference's range (never drawn here) moves W by ``x / n``; the
added effect (0.1) covers that: ``effect + floor ≈ 0.26``. The floor's own
Monte Carlo error at 256 draws is about ±10 %.

**Guarantee, in numbers (tests).** With the default effects (0.1 for
``wasserstein_norm``, ``js`` and ``psi``), ``q = 0.999`` and a 20,000-value
reference, 50 stationary windows each of 400, 2,000 and 20,000 events
(normal, lognormal and categorical references) never cross the effective
threshold, and a 0.5-σ mean shift (``wasserstein_norm``) or a categorical
mix change of Jensen–Shannon distance ≈ 0.21 is caught in every window at
each of those sizes. Building one model takes about 3 ms (8 categories) to 25–40 ms
(100-bin histogram) (printed by the tests).

**P-value methods** (``ks``, ``chi2``) need no null model: their p-values
already account for both sample sizes; :meth:`NullModel.build` rejects them.
The raw ``wasserstein`` (feature units) is supported.

Example:
    >>> import numpy as np
    >>> from sketches.histogram import ReferenceHistogram
    >>> ref = ReferenceHistogram.from_reference(np.random.default_rng(0).normal(size=20_000))
    >>> model = NullModel.build(ref, "wasserstein_norm")
    >>> 0.1 < model.floor(400) < 0.25 and model.floor(20_000) < 0.04
    True
    >>> round(effective_threshold(0.1, 0.02), 3)
    0.12
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special

from sketches.binned import EPS, aligned_counts
from sketches.categorical import CategoricalCounter
from sketches.histogram import ReferenceHistogram
from sketches.transport import _uniform_piece

__all__ = [
    "DEFAULT_DRAWS",
    "DEFAULT_GRID",
    "DEFAULT_Q",
    "NULL_METHODS",
    "NullModel",
    "effective_threshold",
]

Array = NDArray[np.float64]

DEFAULT_Q = 0.999
DEFAULT_DRAWS = 256
DEFAULT_GRID: tuple[int, ...] = (50, 100, 200, 400, 1000, 2000, 5000, 20_000, 100_000)

#: methods with a null model → the power the gamma tail is fitted to
#: (2 for metrics, whose square is close to a quadratic form; 1 for divergences)
NULL_METHODS: Mapping[str, int] = {
    "psi": 1,
    "kl": 1,
    "js": 2,
    "hellinger": 2,
    "wasserstein": 2,
    "wasserstein_norm": 2,
    "energy": 2,
}
_NUMERIC_ONLY = frozenset({"wasserstein", "wasserstein_norm", "energy"})
_FORMAT = 1


def effective_threshold(effect: float, floor: float) -> float:
    """The threshold a distance is compared with: ``effect + floor``.

    ``effect`` is the configured effect size (the registry's threshold, e.g. 0.1
    for ``wasserstein_norm``); ``floor`` the null quantile at the window's size
    (:meth:`NullModel.floor`). See the module docstring for why the sum rather
    than ``max(effect, floor)``.
    """
    if not (math.isfinite(effect) and effect >= 0.0):
        raise ValueError(f"effect must be finite and >= 0, got {effect!r}")
    if not floor >= 0.0:
        raise ValueError(f"floor must be >= 0, got {floor!r}")
    return effect + floor


# -- the distances, vectorised over draws -------------------------------------


def _binned(method: str, p: Array, c: Array) -> Array:
    """PSI, KL, JS or Hellinger of each row of proportions ``c`` against ``p``
    (the formulas of :mod:`sketches.binned`)."""
    if method in ("psi", "kl"):
        pf, qf = np.maximum(p, EPS), np.maximum(c, EPS)
        if method == "psi":
            out: Array = np.sum((qf - pf) * np.log(qf / pf), axis=-1)
        else:
            out = np.sum(pf * np.log(pf / qf), axis=-1)
        return out
    if method == "js":
        m = 0.5 * (p + c)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_pm = np.where(p > 0, p * np.log(p / m), 0.0).sum(axis=-1)
            kl_qm = np.where(c > 0, c * np.log(c / m), 0.0).sum(axis=-1)
        out = np.sqrt(np.maximum(0.5 * (kl_pm + kl_qm), 0.0))
        return out
    out = np.sqrt(np.sum((np.sqrt(p) - np.sqrt(c)) ** 2, axis=-1) / 2.0)
    return out


@dataclass(frozen=True)
class _Line:
    """A reference histogram's geometry for W1 and energy with shared bin means."""

    top: Array  # upper edge, or 0 for the open top bin
    bottom: Array  # lower edge, or 0 for the open bottom bin
    fhi: NDArray[np.bool_]
    inner_width: Array  # hi - lo for inner bins, else 0
    mean: Array  # reference bin means (edge where empty)
    w_left: Array  # energy: length before the uniform piece
    w_piece: Array  # energy: length of the uniform piece
    w_right: Array  # energy: length after it
    spread: Array  # W1: within-bin standard deviation of one value
    sigma: float

    @classmethod
    def of(cls, h: ReferenceHistogram) -> _Line:
        lo, hi = h.binning.bin_edges()
        point = h.binning.point_bins()
        flo, fhi = np.isfinite(lo), np.isfinite(hi)
        top, bottom = np.where(fhi, hi, 0.0), np.where(flo, lo, 0.0)
        full = h.counts > 0
        mean = np.where(full, h.bin_means(), np.where(fhi, top, bottom))
        a, b = _uniform_piece(h, lo, hi)
        left = np.where(flo, lo, a)
        right = np.where(point, left, np.where(fhi, hi, b))
        left, right = np.nan_to_num(left), np.nan_to_num(right)
        a, b = np.where(full, a, left), np.where(full, b, left)
        piece = np.clip(b - a, 0.0, None)
        return cls(
            top,
            bottom,
            fhi,
            np.where(flo & fhi, hi - lo, 0.0),
            mean,
            np.clip(a - left, 0.0, None),
            piece,
            np.clip(right - b, 0.0, None),
            _spread(h, piece, point),
            h.std if h.count > 1 else 0.0,
        )


def _spread(h: ReferenceHistogram, piece: Array, point: NDArray[np.bool_]) -> Array:
    """Within-bin standard deviation per bin: the uniform piece's (``width/√12``),
    with whatever within-bin variance the reference's sum of squares shows
    beyond that given to its two extreme non-point bins (heavy tails live
    there), in proportion to their uniform variance."""
    counts = h.counts.astype(np.float64)
    var = np.where(point, 0.0, piece**2 / 12.0)
    full = np.flatnonzero((counts > 0) & ~point)
    if full.size == 0:
        return np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = np.where(counts > 0, h.sums**2 / counts, 0.0).sum()
    excess = (h.sumsq - float(between)) - float(np.dot(counts, var))
    ends = np.unique(full[[0, -1]])
    weight = counts[ends] * var[ends]
    if excess > 0.0 and weight.sum() > 0.0:
        var[ends] += excess * weight / weight.sum() / counts[ends]
    return np.sqrt(var)


def _line(
    method: str,
    ref: ReferenceHistogram,
    line: _Line,
    counts: Array,
    rng: np.random.Generator | None = None,
) -> Array:
    """W1 (raw or normalised) or normalised energy distance of each row of
    ``counts`` (value bins then the missing bin) against ``ref``, with the
    window's values at the reference's bin means (the formulas of
    :mod:`sketches.transport` and :mod:`sketches.linestack`)."""
    n_r = ref.count
    pr = ref.counts / max(n_r, 1)
    present = counts[:, :-1]
    n_c = present.sum(axis=1)
    pc = present / np.maximum(n_c, 1.0)[:, None]
    diff = pr - pc
    d_lo = np.cumsum(diff, axis=1) - diff
    if method == "energy":
        d_hi = d_lo + diff
        sq = (
            line.w_left * d_lo**2
            + line.w_piece * (d_lo**2 + d_lo * d_hi + d_hi**2) / 3.0
            + line.w_right * d_hi**2
        )
        value = np.sqrt(2.0 * np.maximum(sq.sum(axis=1), 0.0))
        unit = math.sqrt(line.sigma)
    else:
        below_top = line.inner_width * d_lo + diff * (line.top - line.mean)
        above_lo = -diff * (line.mean - line.bottom)
        integral = np.where(line.fhi, below_top, above_lo)
        if rng is not None:
            # the window's bin means are noisy too: the mean of k values moves
            # by spread/sqrt(k), and the reference's by spread/sqrt(k_ref)
            k = present
            k_ref = np.asarray(ref.counts, dtype=np.float64)
            ok = (k > 0) & (k_ref > 0)
            inv = np.divide(1.0, k, out=np.zeros_like(k), where=ok)
            inv_ref = np.divide(1.0, k_ref, out=np.zeros_like(k_ref), where=k_ref > 0)
            var = np.where(ok, line.spread**2 * (inv + inv_ref), 0.0)
            integral = integral + pc * np.sqrt(var) * rng.standard_normal(k.shape)
        value = np.abs(integral).sum(axis=1)
        unit = line.sigma
    value = np.where(n_c > 0, value, 0.0)
    mr = ref.missing / max(ref.total, 1)
    mc = counts[:, -1] / np.maximum(counts.sum(axis=1), 1.0)
    out: Array = (1.0 - np.maximum(mr, mc)) * value + np.abs(mr - mc) * unit
    if method == "wasserstein":
        return out
    return out / unit if unit > 0.0 else np.zeros_like(out)


def _distances(
    reference: ReferenceHistogram | CategoricalCounter,
    method: str,
    counts: Array,
    line: _Line | None = None,
    rng: np.random.Generator | None = None,
) -> Array:
    """The ``method`` distance of each row of ``counts`` (on ``reference``'s
    aligned bins, missing bin last) against ``reference``; with ``rng``, W1
    also draws the window's within-bin means (else they equal the reference's)."""
    if method in _NUMERIC_ONLY:
        if not isinstance(reference, ReferenceHistogram):
            raise ValueError(f"drift method {method!r} does not apply to categorical features")
        return _line(method, reference, line or _Line.of(reference), counts, rng)
    r, _ = aligned_counts(reference, reference)
    p = r / max(r.sum(), 1.0)
    c = counts / np.maximum(counts.sum(axis=1), 1.0)[:, None]
    return _binned(method, p, c)


def _tail_quantile(d: Array, q: float, power: int) -> float:
    """Upper ``q`` quantile of ``d`` from a gamma fitted by moments to ``d**power``."""
    s = d.astype(np.float64) ** power
    mu, var = float(s.mean()), float(s.var(ddof=1))
    if not (mu > 0.0 and var > 0.0):
        return float(d.max())
    shape, scale = mu * mu / var, var / mu
    return float((special.gammaincinv(shape, q) * scale) ** (1.0 / power))


# -- the model -----------------------------------------------------------------


@dataclass(frozen=True)
class NullModel:
    """Upper ``q`` quantile of one method's null distance, as a function of the
    window's size ``n`` (events, missing included), for one reference.

    Attributes:
        method: registry name of the distance.
        q: the quantile (default 0.999).
        n_ref: the reference's total (missing included) the model was built for.
        grid: window sizes at which the floor was estimated.
        floors: the floor at each grid size (non-increasing).
        c, b: the power law ``floor ≈ c · (1/n + 1/n_ref)^b`` fitted to the grid
            (``b`` ≈ 0.5 for metrics, ≈ 1 for PSI/KL), used beyond the grid.
        draws: resampled windows per grid size.
    """

    method: str
    q: float
    n_ref: int
    grid: tuple[int, ...]
    floors: tuple[float, ...]
    c: float
    b: float
    draws: int

    @classmethod
    def build(
        cls,
        reference: ReferenceHistogram | CategoricalCounter,
        method: str,
        q: float = DEFAULT_Q,
        grid: Sequence[int] = DEFAULT_GRID,
        draws: int = DEFAULT_DRAWS,
        seed: int = 0,
    ) -> NullModel:
        """Estimate the null floor of ``method`` against ``reference`` by
        resampling (see the module docstring); deterministic for a given seed.

        Raises ``ValueError`` for p-value methods (``ks``, ``chi2``: their
        p-values already account for sample sizes), unknown methods, methods
        that do not apply to the sketch, an empty reference, or bad arguments.
        """
        if method in ("ks", "chi2"):
            raise ValueError(
                f"{method!r} is a test whose p-value already accounts for sample sizes; "
                "it needs no null model"
            )
        power = NULL_METHODS.get(method)
        if power is None:
            raise ValueError(
                f"no null model for drift method {method!r}; known: {', '.join(NULL_METHODS)}"
            )
        if not 0.5 < q < 1.0:
            raise ValueError(f"q must be in (0.5, 1), got {q!r}")
        if draws < 20:
            raise ValueError(f"draws must be >= 20, got {draws!r}")
        sizes = sorted({int(n) for n in grid})
        if len(sizes) < 2 or sizes[0] < 1:
            raise ValueError(f"grid needs at least two positive sizes, got {list(grid)!r}")
        if method in _NUMERIC_ONLY and not isinstance(reference, ReferenceHistogram):
            raise ValueError(f"drift method {method!r} does not apply to categorical features")
        r, _ = aligned_counts(reference, reference)
        n_ref = int(r.sum())
        if n_ref == 0:
            raise ValueError("empty reference: no null model")
        p = r / n_ref
        rng = np.random.default_rng(seed)
        line = _Line.of(reference) if isinstance(reference, ReferenceHistogram) else None
        # the reference's own noise: a "true" distribution per draw, shared by all sizes
        keep = p > 0  # bins the reference never saw stay empty under the null
        truth = np.zeros((draws, p.size))
        truth[:, keep] = rng.multinomial(n_ref, p[keep], size=draws) / n_ref
        floors = []
        for n in sizes:
            counts = np.zeros((draws, p.size))
            counts[:, keep] = rng.multinomial(n, truth[:, keep])
            d = _distances(reference, method, counts, line, rng)
            floors.append(_tail_quantile(d, q, power))
        # non-increasing in n (sampling noise of the estimate only ever raises it)
        mono = np.maximum.accumulate(np.asarray(floors)[::-1])[::-1]
        x = np.log(1.0 / np.asarray(sizes, dtype=np.float64) + 1.0 / n_ref)
        pos = mono > 0
        if pos.sum() >= 2:
            b, log_c = np.polyfit(x[pos], np.log(mono[pos]), 1)
            c, b = float(np.exp(log_c)), float(b)
        else:
            c, b = 0.0, 0.5
        return cls(method, q, n_ref, tuple(sizes), tuple(float(f) for f in mono), c, b, draws)

    def floor(self, n: int) -> float:
        """The null distance's ``q`` quantile for a window of ``n`` events.

        Metrics: the fitted power law ``c · (1/n + 1/n_ref)^b``. Divergences
        (PSI, KL, whose floor bends at small windows where empty bins hit the
        ``EPS`` floor): interpolated in log-log between grid sizes, and beyond
        them the grid's end value moved along the power law. ``n <= 0`` gives
        ``inf``.
        """
        if n <= 0:
            return math.inf
        if NULL_METHODS[self.method] == 2 and self.c > 0.0:
            # metrics follow the power law closely: the fit averages the grid's
            # Monte Carlo noise
            return float(self.c * (1.0 / n + 1.0 / self.n_ref) ** self.b)
        grid = np.asarray(self.grid, dtype=np.float64)
        floors = np.asarray(self.floors)
        if not floors.any():
            return 0.0
        floors = np.maximum(floors, 1e-300)
        x = math.log(1.0 / n + 1.0 / self.n_ref)
        xs = np.log(1.0 / grid + 1.0 / self.n_ref)[::-1]  # increasing
        ys = np.log(floors)[::-1]
        if x < xs[0]:
            y = ys[0] + self.b * (x - xs[0])
        elif x > xs[-1]:
            y = ys[-1] + self.b * (x - xs[-1])
        else:
            y = float(np.interp(x, xs, ys))
        return float(math.exp(y))

    def threshold(self, effect: float, n: int) -> float:
        """:func:`effective_threshold` of ``effect`` at a window of ``n`` events."""
        return effective_threshold(effect, self.floor(n))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain dict (a few hundred bytes)."""
        return {
            "format": _FORMAT,
            "method": self.method,
            "q": self.q,
            "n_ref": self.n_ref,
            "grid": list(self.grid),
            "floors": list(self.floors),
            "c": self.c,
            "b": self.b,
            "draws": self.draws,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NullModel:
        """Inverse of :meth:`to_dict`; ``ValueError`` on malformed input."""
        try:
            if data.get("format", _FORMAT) != _FORMAT:
                raise ValueError(f"unsupported null model format {data.get('format')!r}")
            model = cls(
                str(data["method"]),
                float(data["q"]),
                int(data["n_ref"]),
                tuple(int(n) for n in data["grid"]),
                tuple(float(f) for f in data["floors"]),
                float(data["c"]),
                float(data["b"]),
                int(data["draws"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed null model: {exc!r}") from exc
        if model.method not in NULL_METHODS:
            raise ValueError(f"malformed null model: unknown method {model.method!r}")
        if len(model.grid) != len(model.floors) or len(model.grid) < 2:
            raise ValueError("malformed null model: grid and floors differ in length")
        if list(model.grid) != sorted(set(model.grid)) or model.grid[0] < 1 or model.n_ref < 1:
            raise ValueError("malformed null model: grid must be increasing positive sizes")
        if not all(math.isfinite(f) and f >= 0.0 for f in model.floors):
            raise ValueError("malformed null model: floors must be finite and >= 0")
        return model

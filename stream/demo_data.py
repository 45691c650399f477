"""The simulated models and traffic of ``driftline demo``: training sets and production windows.

Three models, all synthetic and reproducible from one seed:

* ``churn`` — a binary classifier (prediction ``0``/``1`` with class
  probabilities) on ``age``, ``income``, ``tenure`` (numeric), ``plan``,
  ``region`` (categorical) and ``is_mobile`` (boolean). Injected drift:
  ``income`` rises by about 0.6 standard deviations and the ``plan`` mix moves
  from basic towards premium. Its labels are joined; its baseline has the
  training quality and the calibrator of the estimated accuracy.
* ``fraud`` — a fraud score (numeric prediction) on ``amount``, ``hour``
  (numeric) and ``merchant_type`` (categorical). Injected drift: ``amount`` is
  scaled by 1.6.
* ``pricing`` — a price regression on ``sqft``, ``rooms`` (numeric) and
  ``city`` (categorical). No drift; injected latency regression: its serving
  latency more than doubles for a few windows (its p99 SLO is 80 ms), then recovers.
  Its labels (the sale prices) are joined.

Each model is perfectly calibrated: a label is drawn from the model's own
probability (churn, fraud) or as the prediction plus noise (pricing), so the
realised quality only moves with the feature mix (churn: accuracy about 0.71
on the training mix, 0.70 once drifted).

:func:`window_batch` draws one model's events of one window (sorted by event
time); :func:`training_set` draws a training table with a ``label`` and a
``prediction`` column. Every stationary feature is drawn from exactly the
training distribution, so only the injected changes can drift.
:func:`demo_config` is the worker configuration for them;
:func:`register_baselines` stores a baseline per model built from a training
set; :func:`send_traffic` is the simulated model server: it logs every
window's events with :class:`~stream.sdk.PredictionLogger` in event-time
order, ``speed`` event seconds per wall second, as the demo's options say, and
the ground truth of :data:`LABEL_SHARE` of the predictions of models with
labels with :class:`~stream.sdk.LabelLogger`, each :data:`LABEL_DELAY_WINDOWS`
windows after its prediction (the label's ``ts``), interleaved with the traffic.

Example:
    >>> import numpy as np
    >>> b = window_batch(MODELS["fraud"], np.random.default_rng(1), 1000.0, 5.0, 100, drift=True)
    >>> len(b), sorted(b.features), bool(np.all(np.diff(b.ts) >= 0))
    (100, ['amount', 'hour', 'merchant_type'], True)
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from stream.baseline import BaselineStore, build_baseline
from stream.config import Config, parse_config
from stream.keys import Keys
from stream.redis_client import connect
from stream.sdk import LabelLogger, PredictionLogger

if TYPE_CHECKING:
    from stream.demo import DemoOptions

__all__ = [
    "LABEL_DELAY_WINDOWS",
    "LABEL_SHARE",
    "LABEL_WAIT",
    "MODELS",
    "TICK_S",
    "Sent",
    "SimModel",
    "WindowBatch",
    "demo_config",
    "register_baselines",
    "send_traffic",
    "training_set",
    "window_batch",
]

TICK_S = 0.5  # event time sent per step; keep it below the allowed lateness
LABEL_SHARE = 0.8  # share of the predictions of a model with labels whose label is sent
LABEL_DELAY_WINDOWS = (1.0, 2.0)  # a label comes uniformly this many windows after its prediction
LABEL_WAIT = "1s"  # the join's wait for the predictions up to a label's time (default 60 s)
Kind = Literal["numeric", "categorical", "boolean"]
Columns = dict[str, NDArray[Any]]
F64 = NDArray[np.float64]

_PLANS = np.array(["basic", "standard", "premium", "family"])
_PLAN_P = (0.45, 0.30, 0.15, 0.10)
_PLAN_P_DRIFTED = (0.20, 0.30, 0.35, 0.15)
_REGIONS = np.array(["north", "south", "east", "west"])
_REGION_P = (0.30, 0.25, 0.25, 0.20)
_MERCHANTS = np.array(["grocery", "fuel", "restaurant", "online", "electronics", "travel"])
_MERCHANT_P = (0.30, 0.15, 0.20, 0.20, 0.10, 0.05)
_CITIES = np.array(["lisbon", "porto", "braga", "faro"])
_CITY_P = (0.40, 0.30, 0.20, 0.10)
_CITY_PRICE = {"lisbon": 90_000.0, "porto": 50_000.0, "braga": 10_000.0, "faro": 40_000.0}
_INCOME_SHIFT = 12_000.0  # about 0.6 σ of the training income
_AMOUNT_SCALE = 1.6
_HOUR_P = np.array([1, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 7, 8, 7, 7, 6, 6, 6, 7, 7, 6, 4, 3, 2], float)


def _sigmoid(x: F64) -> F64:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


@dataclass(frozen=True)
class SimModel:
    """One simulated model: its features, how it is fed and how it answers.

    Attributes:
        name: model id.
        kinds: feature name → ``"numeric"``, ``"categorical"`` or ``"boolean"``.
        description: one line for the terminal.
        latency_slo_ms: the p99 latency SLO configured for it, or ``None``.
        drifts: the features whose distribution the demo changes.
        sample: ``(rng, n, drift) -> feature columns``.
        predict: ``(features, rng) -> (prediction, P(class 1) or None, label)``.
        latency_ms: median and log-normal sigma of the serving latency.
        slow_median_ms: the median during the injected latency regression, if any.
        labels: its ``[models.<m>.labels]`` table, or ``None`` (no labels sent).
    """

    name: str
    kinds: Mapping[str, Kind]
    description: str
    latency_slo_ms: float | None
    drifts: tuple[str, ...]
    sample: Callable[[np.random.Generator, int, bool], Columns]
    predict: Callable[[Columns, np.random.Generator], tuple[NDArray[Any], F64 | None, NDArray[Any]]]
    latency_ms: tuple[float, float]
    slow_median_ms: float | None = None
    labels: Mapping[str, Any] | None = None

    @property
    def slows_down(self) -> bool:
        """Whether the demo injects a latency regression into this model."""
        return self.slow_median_ms is not None

    def latency(self, rng: np.random.Generator, n: int, slow: bool) -> F64:
        """``n`` serving latencies in ms (regressed if ``slow`` and the model slows down)."""
        median, sigma = self.latency_ms
        if slow and self.slow_median_ms is not None:
            median = self.slow_median_ms
        return np.asarray(rng.lognormal(np.log(median), sigma, n).round(2), dtype=np.float64)


# -- churn -------------------------------------------------------------------------------


def _churn_sample(rng: np.random.Generator, n: int, drift: bool) -> Columns:
    income = rng.lognormal(10.6, 0.45, n) + (_INCOME_SHIFT if drift else 0.0)
    return {
        "age": np.clip(rng.normal(42.0, 12.0, n), 18.0, 90.0).round(),
        "income": income.round(2),
        "tenure": rng.gamma(2.0, 12.0, n).round(1),
        "plan": rng.choice(_PLANS, n, p=_PLAN_P_DRIFTED if drift else _PLAN_P),
        "region": rng.choice(_REGIONS, n, p=_REGION_P),
        "is_mobile": rng.random(n) < 0.6,
    }


def _churn_predict(f: Columns, rng: np.random.Generator) -> tuple[NDArray[Any], F64, NDArray[Any]]:
    plan = f["plan"]
    logit = (
        -0.2
        + 1.2 * (plan == "basic")
        - 0.8 * (plan == "premium")
        - 0.04 * (f["tenure"] - 24.0)
        - 0.00003 * (f["income"] - 44_000.0)
        + 0.3 * f["is_mobile"]
    )
    p = _sigmoid(logit.astype(np.float64))
    return (p >= 0.5).astype(np.int64), p, (rng.random(p.size) < p).astype(np.int64)


# -- fraud -------------------------------------------------------------------------------


def _fraud_sample(rng: np.random.Generator, n: int, drift: bool) -> Columns:
    amount = rng.lognormal(3.8, 0.8, n) * (_AMOUNT_SCALE if drift else 1.0)
    return {
        "amount": amount.round(2),
        "hour": rng.choice(24, n, p=_HOUR_P / _HOUR_P.sum()).astype(np.float64),
        "merchant_type": rng.choice(_MERCHANTS, n, p=_MERCHANT_P),
    }


def _fraud_predict(f: Columns, rng: np.random.Generator) -> tuple[NDArray[Any], None, NDArray[Any]]:
    risky = np.isin(f["merchant_type"], ["online", "electronics", "travel"])
    logit = -4.0 + 1.2 * (np.log(f["amount"]) - 3.8) + 1.5 * risky + 1.0 * (f["hour"] < 6)
    score = _sigmoid(logit.astype(np.float64))
    return score.round(4), None, (rng.random(score.size) < score).astype(np.int64)


# -- pricing -----------------------------------------------------------------------------


def _pricing_sample(rng: np.random.Generator, n: int, drift: bool) -> Columns:
    return {
        "sqft": np.clip(rng.normal(1100.0, 350.0, n), 250.0, None).round(),
        "rooms": rng.choice([1, 2, 3, 4, 5], n, p=[0.15, 0.35, 0.30, 0.15, 0.05]).astype(float),
        "city": rng.choice(_CITIES, n, p=_CITY_P),
    }


def _pricing_predict(
    f: Columns, rng: np.random.Generator
) -> tuple[NDArray[Any], None, NDArray[Any]]:
    city = np.array([_CITY_PRICE[c] for c in f["city"].tolist()])
    price = 40_000.0 + 180.0 * f["sqft"] + 9_000.0 * f["rooms"] + city
    return price.round(-2), None, (price + rng.normal(0.0, 25_000.0, price.size)).round(-2)


MODELS: Mapping[str, SimModel] = {
    "churn": SimModel(
        "churn",
        {
            "age": "numeric",
            "income": "numeric",
            "tenure": "numeric",
            "plan": "categorical",
            "region": "categorical",
            "is_mobile": "boolean",
        },
        "binary churn classifier (class + probabilities)",
        150.0,
        ("income", "plan"),
        _churn_sample,
        _churn_predict,
        (30.0, 0.3),
        labels={"horizon": "1h", "classes": ["0", "1"], "positive_class": "1"},
    ),
    "fraud": SimModel(
        "fraud",
        {"amount": "numeric", "hour": "numeric", "merchant_type": "categorical"},
        "fraud score (numeric)",
        None,
        ("amount",),
        _fraud_sample,
        _fraud_predict,
        (12.0, 0.4),
    ),
    "pricing": SimModel(
        "pricing",
        {"sqft": "numeric", "rooms": "numeric", "city": "categorical"},
        "house-price regression (numeric)",
        80.0,
        (),
        _pricing_sample,
        _pricing_predict,
        (25.0, 0.35),
        slow_median_ms=70.0,
        labels={"horizon": "1h", "task": "regression"},
    ),
}


def training_set(model: SimModel, rng: np.random.Generator, rows: int) -> Columns:
    """A training table: the feature columns, ``label``, ``prediction`` and, for a
    classifier with probabilities, ``proba`` (the probability of class ``1``)."""
    features = model.sample(rng, rows, False)
    prediction, p1, label = model.predict(features, rng)
    proba = {} if p1 is None else {"proba": p1}
    return {**features, "label": label, "prediction": prediction, **proba}


@dataclass(frozen=True)
class WindowBatch:
    """One model's events of one window, sorted by event time (JSON-ready columns)."""

    model: str
    ts: F64
    features: dict[str, list[Any]]
    prediction: list[Any]
    proba: list[dict[str, float]] | None
    latency_ms: list[float]
    label: list[Any]  # the ground truth of each prediction

    def __len__(self) -> int:
        return int(self.ts.size)


def window_batch(
    model: SimModel,
    rng: np.random.Generator,
    start: float,
    size_s: float,
    n: int,
    drift: bool = False,
    slow: bool = False,
) -> WindowBatch:
    """``n`` events of ``model`` with event times in ``[start, start + size_s)``.

    Args:
        drift: change the distribution of ``model.drifts`` (if any).
        slow: draw the regressed serving latency (if ``model.slows_down``).
    """
    ts = np.sort(start + rng.uniform(0.0, size_s, n))
    features = model.sample(rng, n, drift)
    prediction, p1, label = model.predict(features, rng)
    proba = None
    if p1 is not None:
        proba = [{"0": round(1.0 - p, 4), "1": round(p, 4)} for p in p1.tolist()]
    return WindowBatch(
        model.name,
        ts,
        {name: col.tolist() for name, col in features.items()},
        prediction.tolist(),
        proba,
        model.latency(rng, n, slow).tolist(),
        label.tolist(),
    )


def demo_config(bootstrap: str, redis_url: str, window_s: int, lateness_s: float) -> Config:
    """The demo's worker configuration: every model of :data:`MODELS`, short windows.

    The join holds a label back until the predictions up to its time are
    stored; :func:`send_traffic` sends predictions past the last label, so that
    is soon. ``label_wait`` (:data:`LABEL_WAIT`) bounds the wait in case.
    """
    models: dict[str, Any] = {}
    for m in MODELS.values():
        slo = {} if m.latency_slo_ms is None else {"latency_slo_ms": m.latency_slo_ms}
        labels = {} if m.labels is None else {"labels": dict(m.labels)}
        models[m.name] = {"features": dict(m.kinds), **slo, **labels}
    return parse_config(
        {
            "kafka": {
                "bootstrap.servers": bootstrap,
                "session.timeout.ms": 6000,  # the embedded broker holds a join for half of it
                "heartbeat.interval.ms": 500,
                "log.connection.close": False,  # quiet when the servers stop at the end
            },
            "redis": {"url": redis_url},
            "windows": {
                "size": window_s,
                "allowed_lateness": lateness_s,
                "idle_timeout": "3s",
                "retention": "1h",
            },
            "worker": {
                "group_id": "driftline-demo",
                "flush_interval": "200ms",
                "poll_timeout": "100ms",
                "label_wait": LABEL_WAIT,
            },
            "models": models,
        },
        source="<demo>",
        env={},
    )


def register_baselines(
    cfg: Config, seed: int, rows: int, say: Callable[[str], None], bar: bool = False
) -> None:
    """Build a baseline (version ``demo-v1``) per model from a training set; save it in Redis.

    ``bar`` draws a progress bar on the terminal while the features are summarised.
    """
    store = BaselineStore(connect(cfg.redis), Keys(cfg.redis.prefix))
    rng = np.random.default_rng([seed, 0])
    for m in MODELS.values():
        began, done = time.monotonic(), list[str]()

        def progress(name: str, m: SimModel = m, done: list[str] = done) -> None:
            done.append(name)
            if bar:
                shown = "#" * len(done) + "." * (len(m.kinds) - len(done))
                print(f"\r  {m.name:<8} [{shown}] {name:<14}", end="", flush=True)

        cols = training_set(m, rng, rows)
        base = build_baseline(
            m.name,
            cols,
            dict(m.kinds),
            "label",
            "prediction",
            "demo-v1",
            progress,
            proba_column="proba" if "proba" in cols else None,
        )
        store.save(base)
        print("\r" if bar else "", end="", flush=True)
        say(
            f"  {m.name:<8} [{'#' * len(done)}] {base.rows:,} rows in "
            f"{time.monotonic() - began:.1f} s: "
            + ", ".join(f"{n} ({k})" for n, k in m.kinds.items())
        )


@dataclass
class Sent:
    """What the simulated model server sent, per ``(model, window)``, filled in as it goes.

    Attributes:
        events: predictions logged.
        labels: labels logged so far.
        planned: labels it will log for the window (known from the window's start).
    """

    events: Counter[tuple[str, int]] = field(default_factory=Counter)
    labels: Counter[tuple[str, int]] = field(default_factory=Counter)
    planned: Counter[tuple[str, int]] = field(default_factory=Counter)


@dataclass
class _Due:
    """The labels of one model's window, in label-time order, and how many went out."""

    model: str
    window: int
    ts: F64
    ids: list[str]
    labels: list[Any]
    next: int = 0


def _plan_labels(b: WindowBatch, w: int, rng: np.random.Generator, size_s: float) -> _Due:
    """Pick :data:`LABEL_SHARE` of a window's predictions and their label times."""
    rows = np.flatnonzero(rng.random(len(b)) < LABEL_SHARE)
    lo, hi = LABEL_DELAY_WINDOWS
    ts = b.ts[rows] + rng.uniform(lo * size_s, hi * size_s, rows.size)
    order = np.argsort(ts, kind="stable")
    picked = rows[order].tolist()
    return _Due(
        b.model, w, ts[order], [f"{b.model}-{w}-{i}" for i in picked], [b.label[i] for i in picked]
    )


def _log_predictions(
    logger: PredictionLogger, b: WindowBatch, ts: list[float], w: int, lo: float, hi: float
) -> int:
    """Log the events of ``b`` with event times in ``[lo, hi)``; how many were queued."""
    n = 0
    i0, i1 = np.searchsorted(b.ts, [lo, hi]).tolist()
    for i in range(i0, i1):
        n += logger.log(
            {f: col[i] for f, col in b.features.items()},
            b.prediction[i],
            model=b.model,
            id=f"{b.model}-{w}-{i}",
            ts=ts[i],
            proba=b.proba[i] if b.proba is not None else None,
            latency_ms=b.latency_ms[i],
        )
    return n


def _log_labels(labels: LabelLogger, due: list[_Due], hi: float, sent: Sent) -> list[_Due]:
    """Log every due label with a label time before ``hi``; the windows with labels left."""
    for d in due:
        upto = int(np.searchsorted(d.ts, hi))
        for i in range(d.next, upto):
            sent.labels[d.model, d.window] += labels.log(
                d.ids[i], d.labels[i], model=d.model, ts=float(d.ts[i])
            )
        d.next = max(d.next, upto)
    return [d for d in due if d.next < len(d.ids)]


def send_traffic(
    plan: DemoOptions,
    logger: PredictionLogger,
    labels: LabelLogger | None,
    t0: int,
    lateness_s: float,
    wait_until: Callable[[float], None],
    say: Callable[[str], None],
    sent: Sent | None = None,
) -> Sent:
    """Send ``plan.windows`` windows of every model from event time ``t0``, then a little more.

    Events go out in event-time order, ``TICK_S`` of event time per step, each
    step flushed; after each step ``wait_until(monotonic deadline)`` paces the
    stream (and may print). The traffic continues past the last planned window
    until the watermark has passed its end plus the lateness, so every planned
    window closes (the windows after it are not planned: nothing checks them).

    With a ``labels`` logger, the labels of the planned windows of models with
    labels go out in the step their label time falls in, after that step's
    predictions; the traffic goes on until one step after the last label, so
    the stored event time passes every label's (the join waits for that).
    Fills in and returns ``sent``.
    """
    rng = np.random.default_rng([plan.seed, 1])
    label_rng = np.random.default_rng([plan.seed, 2])  # keeps the traffic's draws as they were
    sent = Sent() if sent is None else sent
    size = plan.window_seconds
    steps = int(size / TICK_S)
    stop_at = t0 + plan.windows * size + lateness_s + TICK_S
    batches: list[WindowBatch] = []
    times: list[list[float]] = []
    due: list[_Due] = []
    began = time.monotonic()
    step, spare = 0, int(labels is not None)
    while True:
        w, k = divmod(step, steps)
        w += 1
        lo, hi = t0 + (w - 1) * size + k * TICK_S, t0 + (w - 1) * size + (k + 1) * TICK_S
        if lo >= stop_at and not due:
            if not spare:
                return sent
            spare -= 1
        if k == 0:
            drift, slow = w >= plan.drift_from, w in plan.slow_windows
            if w == plan.drift_from:
                say(
                    f"  >> model server: from window {w} on, churn.income +12k, churn.plan mix "
                    f"to premium, fraud.amount x1.6; pricing latency x2.8 in windows "
                    f"{plan.slow_windows[0]}-{plan.slow_windows[-1]}"
                )
            batches = [
                window_batch(m, rng, lo, size, int(rng.poisson(plan.events)), drift, slow)
                for m in MODELS.values()
            ]
            times = [b.ts.tolist() for b in batches]
            if labels is not None and w <= plan.windows:
                for b in batches:
                    if MODELS[b.model].labels is not None:
                        due.append(_plan_labels(b, w, label_rng, size))
                        sent.planned[b.model, w] += len(due[-1].ids)
        for b, ts in zip(batches, times, strict=True):
            sent.events[b.model, w] += _log_predictions(logger, b, ts, w, lo, hi)
        logger.flush()
        if labels is not None and due:
            due = _log_labels(labels, due, hi, sent)
            labels.flush()
        wait_until(began + (hi - t0) / plan.speed)
        step += 1

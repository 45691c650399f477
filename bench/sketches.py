"""Benchmarks of driftline's sketches against references run in the same process.

Run from the repository root::

    .venv/bin/python bench/sketches.py              # full run, 7 repeats
    .venv/bin/python bench/sketches.py --repeat 11
    .venv/bin/python bench/sketches.py --quick      # tiny sizes: a smoke run for tests

The process is pinned to one core and BLAS/OpenMP pools to one thread, every
measurement is warmed up once and the figure reported is the median over the
repeats (with the min…max spread). References (the ``ddsketch`` package,
Apache DataSketches KLL, ``np.histogram``, ``scipy.stats.wasserstein_distance``)
are timed in the same run on the same data, so ratios do not depend on how
busy the machine was at another time. Prints one markdown table, then a
"targets" section with PASS/FAIL per target; the exit status is 0 either way
(a benchmark reports, it does not gate).

The sketches are imported by submodule (``sketches.quantile``, …): this file is
itself named ``sketches.py``, and without a ``bench/__init__.py`` a bare
``import sketches`` would name this file, both for Python (when ``bench/`` is
``sys.path[0]``, which is fixed below) and for mypy.
"""

import os
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
# Run as a script, sys.path[0] is bench/, where this very file would shadow the
# sketches package: drop it and put the repository root first.
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

if __name__ == "__main__":
    from bench.report import one_blas_thread

    one_blas_thread()  # before numpy is imported

import argparse  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
from numpy.typing import NDArray  # noqa: E402
from scipy import stats  # noqa: E402

from bench.report import Report, Stat  # noqa: E402
from sketches.categorical import CategoricalCounter  # noqa: E402
from sketches.histogram import ReferenceHistogram  # noqa: E402
from sketches.moments import Moments  # noqa: E402
from sketches.quantile import QuantileSketch  # noqa: E402
from sketches.registry import METHODS, default_method, drift, drift_many  # noqa: E402

Array = NDArray[np.float64]
Timed = Callable[[], object]


# -- sizes -------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    quantile_values: int  # values per QuantileSketch / KLL update
    ddsketch_values: int  # values added one by one to ddsketch's DDSketch
    reference_values: int  # values the benchmark histogram's bins come from
    histogram_values: int  # values per ReferenceHistogram update
    features: int  # features in the drift benchmark
    feature_values: int  # values per feature and side in the drift benchmark
    merge_blocks: int  # timed blocks per merge benchmark (and repeat)
    merges_per_block: int
    categories: int = 100
    bins: int = 100


FULL = Sizes(10**6, 10**5, 10**5, 10**6, 100, 10**4, 40, 25)
# feature_values > LARGE_SAMPLE (1000) so the default method is the same as in full mode
QUICK = Sizes(10**4, 10**3, 10**4, 10**4, 10, 2000, 3, 5)


# -- timing ------------------------------------------------------------------
def _timed_once(fn: Timed) -> float:
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        gc.enable()


def measure(make: Callable[[], Timed], repeat: int, per: int = 1) -> Stat:
    """Time ``make()()`` ``repeat`` times after one warm-up; ``make`` runs untimed
    (fresh state per repeat) and the timed call does ``per`` operations."""
    _timed_once(make())  # warm-up
    return Stat([_timed_once(make()) / per for _ in range(repeat)])


def rate(stat: Stat, n: int) -> Stat:
    """Values per second from seconds per run (``lo``/``hi`` swap meaning)."""
    return Stat([n / s for s in stat.samples])


# -- report ------------------------------------------------------------------
# -- 1. quantile sketch ------------------------------------------------------
def bench_quantile(rep: Report, sz: Sizes, repeat: int, rng: np.random.Generator) -> None:
    import datasketches
    from ddsketch import DDSketch

    x = rng.lognormal(0.0, 1.0, sz.quantile_values)
    x_dd = x[: sz.ddsketch_values].tolist()  # Python floats: ddsketch's fastest input

    def ours() -> Timed:
        sk = QuantileSketch(alpha=0.01)
        return lambda: sk.update_many(x)

    def kll() -> Timed:
        sk = datasketches.kll_doubles_sketch(200)
        return lambda: sk.update(x)  # vectorised numpy overload (datasketches >= 5)

    def dd_add() -> Timed:
        sk = DDSketch(0.01)

        def run() -> None:
            add = sk.add
            for v in x_dd:
                add(v)

        return run

    n, n_dd = sz.quantile_values, sz.ddsketch_values
    s = "1"
    v_ours = rep.timing(
        s,
        f"QuantileSketch(0.01).update_many, {n:,} lognormal",
        rate(measure(ours, repeat), n),
        1e-6,
        "M values/s",
    )
    v_kll = rep.timing(
        s,
        f"KLL kll_doubles_sketch(k=200).update(ndarray), {n:,}",
        rate(measure(kll, repeat), n),
        1e-6,
        "M values/s",
        f"datasketches {datasketches_version()}",
    )
    v_dd = rep.timing(
        s,
        f"ddsketch DDSketch(0.01).add per value, {n_dd:,}",
        rate(measure(dd_add, repeat), n_dd),
        1e-6,
        "M values/s",
        "loop over a Python list",
    )
    rep.figure(s, "ours / KLL", v_ours / v_kll, "×")
    rep.figure(s, "ours / ddsketch add", v_ours / v_dd, "×")
    rep.target("quantile update ≥ 1.0× KLL", f"{v_ours / v_kll:.2f}×", "≥ 1.0×", v_ours >= v_kll)
    rep.target(
        "quantile update ≥ 20× ddsketch add",
        f"{v_ours / v_dd:.1f}×",
        "≥ 20×",
        v_ours >= 20 * v_dd,
    )


def datasketches_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("datasketches")
    except metadata.PackageNotFoundError:
        return "?"


# -- 2. reference histogram --------------------------------------------------
def bench_histogram(rep: Report, sz: Sizes, repeat: int, rng: np.random.Generator) -> None:
    ref = ReferenceHistogram.from_reference(rng.normal(size=sz.reference_values), bins=sz.bins)
    x = rng.normal(size=sz.histogram_values)
    bounds = ref.binning.boundaries

    def ours() -> Timed:
        h = ref.empty_like()
        return lambda: h.update_many(x)

    def np_hist() -> Timed:
        return lambda: np.histogram(x, bins=bounds)

    n = sz.histogram_values
    s = "2"
    nb = ref.binning.num_bins
    v_ours = rep.timing(
        s,
        f"ReferenceHistogram.update_many ({nb} bins), {n:,} normal",
        rate(measure(ours, repeat), n),
        1e-6,
        "M values/s",
        "counts + sums + Σx² + min/max",
    )
    v_np = rep.timing(
        s,
        "np.histogram(x, bins=ref.binning.boundaries)",
        rate(measure(np_hist, repeat), n),
        1e-6,
        "M values/s",
        "counts only",
    )
    rep.figure(s, "ours / np.histogram", v_ours / v_np, "×")
    rep.target("histogram update ≥ 30 M values/s", f"{v_ours:.1f} M/s", "≥ 30 M/s", v_ours >= 30)


# -- 3. merges ---------------------------------------------------------------
def bench_merge(rep: Report, sz: Sizes, repeat: int, rng: np.random.Generator) -> None:
    a, b = QuantileSketch(0.01), QuantileSketch(0.01)
    a.update_many(rng.lognormal(size=sz.quantile_values))
    b.update_many(rng.lognormal(size=sz.quantile_values))
    ref = ReferenceHistogram.from_reference(rng.normal(size=sz.reference_values), bins=sz.bins)
    ha, hb = ref.empty_like(), ref.empty_like()
    ha.update_many(rng.normal(size=sz.histogram_values))
    hb.update_many(rng.normal(size=sz.histogram_values))
    names = np.array([f"category_{i:03d}" for i in range(sz.categories)])
    ca, cb = CategoricalCounter(), CategoricalCounter()
    ca.update_many(rng.choice(names, 10_000))
    cb.update_many(rng.choice(names, 10_000))

    k = sz.merges_per_block
    blocks = sz.merge_blocks * repeat

    def per_merge(target: Callable[[], Callable[[], None]]) -> Stat:
        def make() -> Timed:
            merge_once = target()

            def run() -> None:
                for _ in range(k):
                    merge_once()

            return run

        # each target accumulates across a block: every merge still adds a
        # sketch of the same shape, so each costs the same
        return measure(make, blocks, per=k)

    def q_merge() -> Callable[[], None]:
        t = a.copy()
        return lambda: t.merge(b)

    def h_merge() -> Callable[[], None]:
        t = ha.copy()
        return lambda: t.merge(hb)

    def c_merge() -> Callable[[], None]:
        t = ca.copy()
        return lambda: t.merge(cb)

    s = "3"
    note = f"median of {blocks} blocks of {k}"
    n = sz.quantile_values
    rep.timing(
        s,
        f"QuantileSketch merge ({n:,} + {n:,} values, {a.num_buckets} buckets)",
        per_merge(q_merge),
        1e6,
        "µs/merge",
        note,
    )
    rep.timing(
        s,
        f"ReferenceHistogram merge ({ref.binning.num_bins} bins)",
        per_merge(h_merge),
        1e6,
        "µs/merge",
        note,
    )
    rep.timing(
        s,
        f"CategoricalCounter merge ({len(ca.counts)} categories)",
        per_merge(c_merge),
        1e6,
        "µs/merge",
        note,
    )


# -- 4. drift for many features ----------------------------------------------
def feature_pair(i: int, n: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """Reference and current sample of feature ``i``: mixed shapes, every third drifted."""
    shift = 0.25 if i % 3 == 0 else 0.0
    kind = i % 10
    if kind == 0:
        ref, cur = rng.normal(size=n), rng.normal(shift, 1.0, n)
    elif kind == 1:
        ref, cur = rng.lognormal(size=n), rng.lognormal(shift, 1.0, n)
    elif kind == 2:
        ref, cur = rng.exponential(size=n), rng.exponential(1.0 + shift, n)
    elif kind == 3:
        ref, cur = rng.uniform(size=n), rng.uniform(shift, 1.0 + shift, n)
    elif kind == 4:
        ref, cur = rng.standard_t(3, n), rng.standard_t(3, n) + shift
    elif kind == 5:  # bimodal
        ref = np.concatenate([rng.normal(-2, 0.5, n // 2), rng.normal(2, 0.5, n - n // 2)])
        cur = np.concatenate([rng.normal(-2, 0.5, n // 2), rng.normal(2 + shift, 0.5, n - n // 2)])
    elif kind == 6:  # zero-inflated: a point-mass bin
        ref = np.where(rng.random(n) < 0.4, 0.0, rng.gamma(2.0, size=n))
        cur = np.where(rng.random(n) < 0.4 + shift, 0.0, rng.gamma(2.0, size=n))
    elif kind == 7:  # small integers: discrete binning
        ref, cur = rng.poisson(4.0, n).astype(float), rng.poisson(4.0 + 4 * shift, n).astype(float)
    elif kind == 8:
        ref, cur = rng.gamma(0.5, size=n), rng.gamma(0.5 + shift, size=n)
    else:  # large offset, small spread
        ref, cur = 1e6 + rng.normal(size=n), 1e6 + rng.normal(shift, 1.0, n)
    return ref, cur


def bench_drift(rep: Report, sz: Sizes, repeat: int, rng: np.random.Generator) -> None:
    raws = [feature_pair(i, sz.feature_values, rng) for i in range(sz.features)]
    refs = [ReferenceHistogram.from_reference(r, bins=sz.bins) for r, _ in raws]
    curs = [r.empty_like() for r in refs]
    for c, (_, x) in zip(curs, raws, strict=True):
        c.update_many(x)
    default = default_method("numeric", refs[0].total)
    numeric = [m.name for m in METHODS.values() if m.numeric]

    def one_by_one(method: str | None) -> Callable[[], Timed]:
        return lambda: lambda: [drift(r, c, method) for r, c in zip(refs, curs, strict=True)]

    def stacked() -> Timed:
        return lambda: drift_many(refs, curs)

    def all_methods() -> Timed:
        return lambda: [drift(r, c, m) for m in numeric for r, c in zip(refs, curs, strict=True)]

    def exact() -> Timed:
        return lambda: [stats.wasserstein_distance(r, c) for r, c in raws]

    s = "4"
    nf, nv = sz.features, sz.feature_values
    t_default = rep.timing(
        s,
        f"drift(ref, cur) default ({default}), {nf} features × {nv:,} values",
        measure(one_by_one(None), repeat),
        1e3,
        "ms total",
        "one call per feature",
    )
    one = [drift(r, c) for r, c in zip(refs, curs, strict=True)]
    same = all(
        a.method == b.method and math.isclose(a.value, b.value, rel_tol=1e-9, abs_tol=1e-12)
        for a, b in zip(one, drift_many(refs, curs), strict=True)
    )
    t_many = rep.timing(
        s,
        f"drift_many(refs, curs) default, {nf} features",
        measure(stacked, repeat),
        1e3,
        "ms total",
        "one stacked pass; " + ("same results (checked)" if same else "RESULTS DIFFER"),
    )
    for m in numeric:
        rep.timing(
            s,
            f"drift(ref, cur, {m!r}), {nf} features",
            measure(one_by_one(m), repeat),
            1e3,
            "ms total",
            "info",
        )
    rep.timing(
        s,
        f"all {len(numeric)} numeric methods, {nf} features",
        measure(all_methods, repeat),
        1e3,
        "ms total",
        "info",
    )
    t_exact = rep.timing(
        s,
        f"scipy.stats.wasserstein_distance on raw arrays, {nf} features",
        measure(exact, repeat),
        1e3,
        "ms total",
        f"exact, {nv:,} + {nv:,} values each",
    )
    rep.figure(s, "scipy exact / drift_many default (speed-up)", t_exact / t_many, "×")
    rep.figure(s, "scipy exact / per-call drift default (speed-up)", t_exact / t_default, "×")
    # accuracy, for information: the sketch's normalised W1 against the exact one
    errs = [
        abs(drift(r, c, "wasserstein_norm").value - stats.wasserstein_distance(x, y) / np.std(x))
        for r, c, (x, y) in zip(refs, curs, raws, strict=True)
    ]
    rep.figure(s, "max abs(W_norm sketch - W_norm exact) over features", max(errs), "σ_ref", "info")
    rep.target(
        f"default drift via drift_many, {nf} features < 5 ms",
        f"{t_many:.2f} ms",
        "< 5 ms",
        t_many < 5.0 and same,
    )
    rep.target(
        f"(info) default drift one call per feature, {nf} features",
        f"{t_default:.2f} ms",
        "info",
        True,
    )


# -- 5. encoded sizes --------------------------------------------------------
def ddsketch_proto_size(values: Sequence[float]) -> int | None:
    """Size of the ``ddsketch`` package's protobuf encoding, if protobuf is installed."""
    try:
        from ddsketch import DDSketch
        from ddsketch.pb.proto import DDSketchProto
    except ImportError:
        return None
    sk = DDSketch(0.01)
    for v in values:
        sk.add(v)
    return len(DDSketchProto.to_proto(sk).SerializeToString())  # type: ignore[no-untyped-call]


def bench_bytes(rep: Report, sz: Sizes, rng: np.random.Generator) -> None:
    import datasketches

    x = rng.lognormal(size=sz.quantile_values)
    q = QuantileSketch(0.01)
    q.update_many(x)
    ref = ReferenceHistogram.from_reference(rng.normal(size=sz.reference_values), bins=sz.bins)
    names = np.array([f"category_{i:03d}" for i in range(sz.categories)])
    cat = CategoricalCounter()
    cat.update_many(rng.choice(names, 10_000))
    mom = Moments()
    mom.update_many(x)
    kll = datasketches.kll_doubles_sketch(200)
    kll.update(x)

    s = "5"
    n = sz.quantile_values
    q_bytes = len(q.to_bytes())
    rep.figure(
        s,
        f"QuantileSketch(0.01), {n:,} lognormal",
        q_bytes,
        "bytes",
        f"{q.num_buckets} non-empty buckets",
    )
    rep.figure(
        s,
        f"ReferenceHistogram ({ref.binning.num_bins} bins) to_bytes",
        len(ref.to_bytes()),
        "bytes",
        "bins included",
    )
    rep.figure(
        s,
        f"CategoricalCounter ({len(cat.counts)} categories)",
        len(cat.to_bytes()),
        "bytes",
        "names like 'category_042'",
    )
    rep.figure(s, "Moments", len(mom.to_bytes()), "bytes")
    rep.figure(s, f"KLL k=200 serialize, {n:,} lognormal", len(kll.serialize()), "bytes", "info")
    proto = ddsketch_proto_size(x[: min(n, sz.ddsketch_values)].tolist())
    if proto is None:
        rep.figure(s, "ddsketch protobuf", math.nan, "bytes", "skipped: protobuf not installed")
    else:
        rep.figure(s, f"ddsketch protobuf, {min(n, sz.ddsketch_values):,} values", proto, "bytes")
    rep.target("QuantileSketch(0.01) ≤ 4096 bytes", f"{q_bytes:,} B", "≤ 4096 B", q_bytes <= 4096)


# -- main --------------------------------------------------------------------
def pin_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = min(os.sched_getaffinity(0))
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        return f"not pinned ({exc})"
    return f"pinned to cpu {cpu}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=None, help="timed repeats (default 7)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a fast smoke run")
    args = parser.parse_args(argv)
    sz = QUICK if args.quick else FULL
    repeat = args.repeat if args.repeat is not None else (2 if args.quick else 7)
    if repeat < 1:
        parser.error("--repeat must be at least 1")

    pinned = pin_one_core()
    rng = np.random.default_rng(20240601)
    rep = Report()
    t0 = time.perf_counter()
    bench_quantile(rep, sz, repeat, rng)
    bench_histogram(rep, sz, repeat, rng)
    bench_merge(rep, sz, repeat, rng)
    bench_drift(rep, sz, repeat, rng)
    bench_bytes(rep, sz, rng)
    elapsed = time.perf_counter() - t0

    mode = "quick (tiny sizes: figures are not representative)" if args.quick else "full"
    print("# driftline sketches benchmark\n")
    print(
        f"mode {mode}; median of {repeat} repeats after one warm-up; {pinned}; "
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}; "
        f"{elapsed:.1f} s\n"
    )
    print(rep.render(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())

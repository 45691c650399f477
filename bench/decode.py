"""Benchmark of event decoding (``stream.events``) against a raw orjson baseline.

Run from the repository root::

    .venv/bin/python bench/decode.py            # full run: 5 repeats, about 30 s
    .venv/bin/python bench/decode.py --quick    # tiny sizes: a smoke run

Every event has 20 numeric and 2 categorical features. The baselines are timed
in the same run on the same bytes: ``orjson.loads`` of each message, the 22
features pulled into per-feature Python lists, ``np.array`` of the numeric ones
at the end (for columnar messages: ``np.array`` of each numeric column). The
process is pinned to one core; each figure is the median of the repeats after one
warm-up, with the min … max spread. Prints one markdown table, then the targets
with PASS/FAIL; the exit status is 0 either way (a benchmark reports, it does not
gate).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import gc  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from stream.events import ModelSchema, decode_message, decode_messages  # noqa: E402

NUMERIC = [f"f{i}" for i in range(20)]
CATEGORICAL = ["plan", "country"]
SCHEMAS = {
    "churn": ModelSchema(
        "churn",
        {**dict.fromkeys(NUMERIC, "numeric"), **dict.fromkeys(CATEGORICAL, "categorical")},
    )
}
PLANS = ["free", "basic", "pro", "enterprise"]
COUNTRIES = ["DE", "FR", "US", "JP", "BR", "IN", "NG"]


@dataclass(frozen=True)
class Sizes:
    singles: int  # single-event messages
    columnar_messages: int
    columnar_rows: int  # events per columnar (and array) message
    consumer_batch: int  # messages per decode_messages call


FULL = Sizes(100_000, 200, 500, 1000)
QUICK = Sizes(2_000, 8, 500, 500)


def make_events(n: int, rng: np.random.Generator) -> list[dict[str, object]]:
    """Realistic events: floats with 6 decimals, 2 % nulls, ints in one feature."""
    values = np.round(rng.normal(50.0, 15.0, size=(n, len(NUMERIC))), 6)
    nulls = rng.random((n, len(NUMERIC))) < 0.02
    plans = rng.integers(0, len(PLANS), n)
    countries = rng.integers(0, len(COUNTRIES), n)
    events: list[dict[str, object]] = []
    for i in range(n):
        feats: dict[str, object] = {
            name: (None if nulls[i, j] else float(values[i, j])) for j, name in enumerate(NUMERIC)
        }
        feats["f0"] = int(values[i, 0])
        feats["plan"] = PLANS[plans[i]]
        feats["country"] = COUNTRIES[countries[i]]
        events.append(
            {
                "model": "churn",
                "version": "v3",
                "id": f"req-{i:08d}",
                "ts": 1_717_000_000.0 + i * 0.01,
                "features": feats,
                "prediction": round(float(values[i, 1]) / 100.0, 6),
                "latency_ms": round(abs(float(values[i, 2])) / 10.0, 3),
            }
        )
    return events


def columnar(events: Sequence[dict[str, object]]) -> bytes:
    """The events as one columnar batch."""
    feats = [e["features"] for e in events]
    return orjson.dumps(
        {
            "model": "churn",
            "version": "v3",
            "id": [e["id"] for e in events],
            "ts": [e["ts"] for e in events],
            "features": {
                k: [f[k] for f in feats]  # type: ignore[index]
                for k in NUMERIC + CATEGORICAL
            },
            "prediction": [e["prediction"] for e in events],
            "latency_ms": [e["latency_ms"] for e in events],
        }
    )


# -- the baselines -------------------------------------------------------------
def baseline_singles(messages: Sequence[bytes]) -> object:
    """orjson.loads + the 22 features into per-feature lists + np.array at the end."""
    lists: dict[str, list[object]] = {k: [] for k in NUMERIC + CATEGORICAL}
    appends = [(k, lists[k].append) for k in NUMERIC + CATEGORICAL]
    loads = orjson.loads
    for m in messages:
        feats = loads(m)["features"]
        get = feats.get
        for k, app in appends:
            app(get(k))
    return {k: np.array(lists[k], dtype=np.float64) for k in NUMERIC}


def batched_baseline(messages: Sequence[bytes], size: int) -> object:
    """``baseline_singles`` per consumer batch, as ``decode_messages`` is called."""
    for start in range(0, len(messages), size):
        baseline_singles(messages[start : start + size])
    return None


def baseline_columnar(messages: Sequence[bytes]) -> object:
    """orjson.loads + np.array of each numeric column."""
    out = []
    for m in messages:
        feats = orjson.loads(m)["features"]
        out.append({k: np.array(feats[k], dtype=np.float64) for k in NUMERIC})
    return out


def per_message(messages: Sequence[bytes]) -> object:
    for m in messages:
        decode_message(m, SCHEMAS)
    return None


def batched(messages: Sequence[bytes], size: int) -> object:
    for start in range(0, len(messages), size):
        decode_messages(messages[start : start + size], SCHEMAS)
    return None


# -- timing and report -----------------------------------------------------------
def measure(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds per call of ``fn``, ``repeat`` times after one warm-up (GC left on)."""
    fn()
    samples = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def pin_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="timed repeats (default 5)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a fast smoke run")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    sz = QUICK if args.quick else FULL
    pinned = pin_one_core()
    rng = np.random.default_rng(20240601)
    t_start = time.perf_counter()

    events = make_events(max(sz.singles, sz.columnar_messages * sz.columnar_rows), rng)
    singles = [orjson.dumps(e) for e in events[: sz.singles]]
    r = sz.columnar_rows
    chunks = [events[i * r : (i + 1) * r] for i in range(sz.columnar_messages)]
    col_msgs = [columnar(c) for c in chunks]
    arr_msgs = [orjson.dumps(c) for c in chunks]
    col_events = sz.columnar_messages * r
    bad_msgs = []  # columnar, one bad row each: the per-row fallback
    for c in chunks:
        bad = [dict(e) for e in c]
        bad[r // 2] = {**bad[r // 2], "latency_ms": -1.0}
        bad_msgs.append(columnar(bad))

    # sanity: everything decodes to the expected number of rows
    good, dead = decode_messages(singles + col_msgs + arr_msgs + bad_msgs, SCHEMAS)
    expected = sz.singles + 3 * col_events
    assert sum(map(len, good)) + len(dead) == expected, "rows + dead letters != events"
    assert len(dead) == sz.columnar_messages, dead[:3]

    rows: list[tuple[str, list[float], str, str]] = []  # name, rates, unit, note
    rates: dict[str, float] = {}

    def run(key: str, name: str, fn: Callable[[], object], n: int, note: str = "") -> None:
        samples = [n / s for s in measure(fn, args.repeat)]
        rates[key] = statistics.median(samples)
        rows.append((name, samples, "events/s", note))

    n1 = sz.singles
    b = sz.consumer_batch
    run(
        "base1",
        "baseline: orjson.loads + 22 lists + np.array",
        lambda: baseline_singles(singles),
        n1,
    )
    run(
        "base1b",
        f"baseline, per {b}-message batch",
        lambda: batched_baseline(singles, b),
        n1,
        "lists stay short: less GC work",
    )
    run("msg1", "decode_message, one call per message", lambda: per_message(singles), n1)
    run(f"batch{b}", f"decode_messages, {b} messages per call", lambda: batched(singles, b), n1)
    run("batch100", "decode_messages, 100 messages per call", lambda: batched(singles, 100), n1)
    run(
        "basecol",
        f"baseline: columnar ({r} rows), loads + np.array",
        lambda: baseline_columnar(col_msgs),
        col_events,
    )
    run("col", f"decode_message, columnar ({r} rows)", lambda: per_message(col_msgs), col_events)
    run(
        "colbatch",
        f"decode_messages, columnar ({r} rows)",
        lambda: batched(col_msgs, 20),
        col_events,
        "20 messages per call",
    )
    run(
        "colbad",
        f"decode_message, columnar ({r} rows, 1 bad row)",
        lambda: per_message(bad_msgs),
        col_events,
        "per-row fallback",
    )
    run("arr", f"decode_message, array of {r} events", lambda: per_message(arr_msgs), col_events)
    elapsed = time.perf_counter() - t_start

    mode = "quick (tiny sizes: figures are not representative)" if args.quick else "full"
    print("# driftline event decoding benchmark\n")
    print(
        f"mode {mode}; median of {args.repeat} repeats after one warm-up; {pinned}; "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"orjson {orjson.__version__}; {elapsed:.1f} s\n"
    )
    print("| measurement | median | min … max | unit | vs baseline | note |")
    print("|---|---:|---:|---|---:|---|")
    for name, samples, unit, note in rows:
        med = statistics.median(samples)
        base = rates["basecol"] if "columnar" in name else rates["base1"]
        if name.startswith("baseline,"):
            base = rates["base1"]
        versus = "" if name.startswith("baseline:") else f"{med / base:.0%}"
        spread = f"{min(samples):,.0f} … {max(samples):,.0f}"
        print(f"| {name} | {med:,.0f} | {spread} | {unit} | {versus} | {note} |")

    print("\n## targets\n")
    print("| target | measured | goal | result |")
    print("|---|---:|---|---|")
    targets = [
        ("decode_message, single events", rates["msg1"] / rates["base1"], 0.6),
        (f"decode_messages ({b}/call), single events", rates[f"batch{b}"] / rates["base1"], 0.6),
        (
            f"decode_messages ({b}/call) vs baseline per {b}-message batch",
            rates[f"batch{b}"] / rates["base1b"],
            0.6,
        ),
    ]
    for name, ratio, goal in targets:
        verdict = "PASS" if ratio >= goal else "FAIL"
        print(f"| {name} | {ratio:.0%} of baseline | ≥ {goal:.0%} of baseline | {verdict} |")
    col = rates["col"]
    verdict = "PASS" if col >= 300_000 else "FAIL"
    print(f"| columnar {r}-event messages | {col:,.0f} events/s | ≥ 300,000 events/s | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

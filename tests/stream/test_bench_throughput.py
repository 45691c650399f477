"""``bench/throughput.py --quick`` runs end to end and prints every section and target.

The benchmark is run as a subprocess (it pins its own process to one CPU and
starts its own broker and Redis, or uses ``$KAFKA_BOOTSTRAP``/``$REDIS_URL``
like the other integration tests). Only the shape of the report is checked:
whether the targets pass is for the benchmark's reader, not for the test suite.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "throughput.py"

ROWS = [
    ("1", "raw loop, one event per message: consume + orjson + 22 features to numpy"),
    ("1", "worker, one event per message"),
    ("1", "worker / raw loop, one event per message"),
    ("1", "raw loop, columnar, 500 events per message: consume + orjson + 22 features to numpy"),
    ("1", "worker, columnar, 500 events per message"),
    ("1", "worker / raw loop, columnar, 500 events per message"),
    ("1", "worker, columnar, 500 events per message, default batch_size"),
    ("1", "  worker time in Kafka consume(), one event per message"),
    ("1", "  worker time in decode (Worker._decode), columnar, 500 events per message"),
    ("1", "  worker time in flush to Redis (flush_all), one event per message"),
    ("2", "WindowCloser.close, 100 numeric features, 2,000 events per window"),
    ("2", "WindowCloser.close, 100 numeric features, 20,000 events per window"),
    ("2", "  of which: read the delta hashes (StateStore.window_deltas)"),
    ("2", "  of which: merge them (WindowSketches.from_deltas)"),
    ("3", "Redis per closed (model, window, feature), 2,000 events per window"),
    ("3", "Redis per closed (model, window, feature), 20,000 events per window"),
    ("3", "Redis live deltas per (model, window, feature), 2,000 events per window"),
    ("3", "Redis live deltas per (model, window, feature), 20,000 events per window"),
    ("3", "closed memory, 10× events / 1× events"),
]

TARGETS = [
    "worker, one event per message ≥ 60% of the raw loop",
    "worker, columnar, 500 events per message ≥ 250,000 events/s",
    "window close, 100 features < 50 ms",
    "Redis per closed (model, window, feature) ≤ 16 KiB",
    "Redis per closed (model, window, feature) flat at 10× events",
]

NUMBER = r"-?[\d,]+(?:\.\d+)?(?:e[+-]?\d+)?"


@pytest.fixture(scope="module")
def report() -> str:
    """The printed report of one quick run."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def test_every_section_row_is_printed_with_a_number(report: str) -> None:
    assert report.startswith("# driftline worker throughput benchmark")
    for section, name in ROWS:
        pattern = rf"^\| {section} \| {re.escape(name)} \| {NUMBER} \|"
        assert re.search(pattern, report, re.MULTILINE), f"no row {section} {name!r}:\n{report}"


def test_every_target_is_printed_with_a_verdict(report: str) -> None:
    targets = report.split("## targets", 1)
    assert len(targets) == 2, report
    for name in TARGETS:
        pattern = rf"^\| {re.escape(name)} \| [^|]+ \| [^|]+ \| (PASS|FAIL) \|$"
        assert re.search(pattern, targets[1], re.MULTILINE), f"no target {name!r}:\n{report}"


def test_the_worker_folded_every_event(report: str) -> None:
    # a warning means the measured runs lost or dead-lettered events: figures invalid
    assert "WARNING" not in report, report

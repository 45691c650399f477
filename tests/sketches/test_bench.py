"""The sketches benchmark runs end to end (tiny sizes) and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_prints_every_section_and_target() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sketches.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=True,
    ).stdout
    for section in ("| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 5 |"):
        assert section in out, f"section {section} missing from the benchmark table"
    assert "## targets" in out
    for target in ("KLL", "ddsketch add", "histogram update", "drift_many", "4096"):
        assert target in out, f"target {target!r} missing"
    assert "RESULTS DIFFER" not in out

"""The watermark rules (pure): idle partitions, partitions that never reported."""

from __future__ import annotations

import math

from stream.closer import watermark
from stream.store import PartitionState


def part(p: int, wm: float | None, active_at: float | None) -> PartitionState:
    return PartitionState(p, None if wm is None else 1, wm, active_at, {})


def test_smallest_active_partition_minus_lateness() -> None:
    states = [part(0, 100.0, 99.0), part(1, 70.0, 99.0), part(2, 130.0, 99.0)]
    assert watermark(states, now=100.0, idle_timeout_s=30.0, lateness_s=5.0) == 65.0


def test_idle_partition_stops_holding_the_watermark_back() -> None:
    states = [part(0, 100.0, 99.0), part(1, 70.0, 60.0)]  # partition 1 silent for 40 s
    assert watermark(states, now=100.0, idle_timeout_s=30.0, lateness_s=5.0) == 95.0
    # within the timeout it still holds it back
    assert watermark(states, now=100.0, idle_timeout_s=45.0, lateness_s=5.0) == 65.0


def test_every_partition_idle_uses_the_largest() -> None:
    states = [part(0, 100.0, 10.0), part(1, 70.0, 10.0)]
    assert watermark(states, now=100.0, idle_timeout_s=30.0, lateness_s=5.0) == 95.0


def test_a_partition_that_never_reported_holds_back_for_the_idle_timeout() -> None:
    states = [part(0, 100.0, 99.0), part(1, None, None)]
    kw = {"idle_timeout_s": 30.0, "lateness_s": 5.0, "started_at": 80.0}
    assert watermark(states, now=100.0, **kw) is None  # 20 s after start: wait
    assert watermark(states, now=111.0, **kw) == 95.0  # 31 s after start: excluded


def test_nothing_reported_means_no_watermark() -> None:
    assert watermark([part(0, None, None)], 1e9, 30.0, 5.0, -math.inf) is None

"""``driftline demo`` end to end: the embedded servers, a worker and the simulated models
detect exactly the injected drift and latency regression, count every window exactly,
and leave nothing running."""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any

import pytest

from stream import demo
from stream.cli import build_parser
from stream.exceptions import ConfigError

INJECTED = {"churn": {"income", "plan"}, "fraud": {"amount"}, "pricing": set()}
FEATURES = {
    "churn": {"age", "income", "tenure", "plan", "region", "is_mobile"},
    "fraud": {"amount", "hour", "merchant_type"},
    "pricing": {"sqft", "rooms", "city"},
}


@pytest.mark.integration
def test_demo_detects_exactly_the_injected_changes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    summaries: list[demo.DemoSummary] = []
    run = demo.run_demo

    def keep(opts: demo.DemoOptions | None = None) -> demo.DemoSummary:
        summaries.append(run(opts))
        return summaries[-1]

    monkeypatch.setattr(demo, "run_demo", keep)
    threads_before = set(threading.enumerate())
    began = time.monotonic()
    status = demo.main(["--windows", "6", "--seed", "7"])
    took = time.monotonic() - began
    out = capsys.readouterr().out
    [summary] = summaries

    assert status == 0, summary.problems
    assert summary.problems == []
    assert took < 120, f"the demo took {took:.0f} s"
    windows, k = 6, summary.options.drift_from
    assert k == 4 and list(summary.options.slow_windows) == [4, 5, 6]

    # exactly the injected features, each from the injection window on
    assert summary.drifted == {m: dict.fromkeys(fs, k) for m, fs in INJECTED.items()}
    for name, report in summary.models.items():
        assert report.windows == list(range(1, windows + 1)), name
        assert {f: ws for f, ws in report.flagged.items() if ws} == {
            f: list(range(k, windows + 1)) for f in INJECTED[name]
        }
        assert set(report.stable) == FEATURES[name] - INJECTED[name]
        assert report.alerts[("feature_drift", "firing")] == len(INJECTED[name]) * (windows - k + 1)

    # the latency regression alerts on pricing only, in the slow windows
    assert summary.models["pricing"].latency_alert_windows == [4, 5, 6]
    assert summary.models["pricing"].alerts[("latency_p99", "firing")] == 3
    for name in ("churn", "fraud"):
        assert summary.models[name].latency_alert_windows == []
        assert not any(rule == "latency_p99" for rule, _ in summary.models[name].alerts)

    # what the terminal shows: one line per window and model, one per alert, a summary
    assert len(re.findall(r"^w +\d+ .* events +p99 ", out, re.M)) == 3 * windows
    assert re.search(r"^w +4 .*churn .*drifted: income, plan$", out, re.M)
    assert re.search(r"^w +3 .*churn .*drifted: -$", out, re.M)
    assert re.search(r"ALERT high +firing +latency_p99 +pricing +latency_p99_ms \d+ vs 80", out)
    assert re.search(r"ALERT high +firing +feature_drift +fraud\.amount +wasserstein_norm", out)
    assert "churn    drifted: income (from window 4), plan (from window 4)" in out
    assert "stable:  sqft, rooms, city" in out
    assert "OK: exactly the injected drift and latency regression were detected" in out

    # nothing left running: the worker and logger threads ended, both servers exited
    left = [t.name for t in threading.enumerate() if t not in threads_before]
    assert left == []
    pids = [int(p) for p in re.findall(r"\(embedded \w+, pid (\d+)\)", out)]
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_demo_is_a_driftline_command_with_checked_options() -> None:
    args: Any = build_parser().parse_args(["demo", "--windows", "3", "--window-seconds", "2"])
    assert args.run is demo.run_command
    assert (args.windows, args.window_seconds, args.seed, args.quiet) == (3, 2, 7, False)
    for bad in (["--windows", "1"], ["--window-seconds", "0"], ["--events", "10"]):
        with pytest.raises(ConfigError):
            demo.run_command(build_parser().parse_args(["demo", *bad]))


def test_options_place_the_changes_after_clean_windows() -> None:
    assert demo.DemoOptions(windows=16).drift_from == 6
    assert list(demo.DemoOptions(windows=16).slow_windows) == [6, 7, 8]
    assert demo.DemoOptions(windows=6).drift_from == 4
    assert list(demo.DemoOptions(windows=2).slow_windows) == [2]

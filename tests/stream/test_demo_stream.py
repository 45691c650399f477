"""``driftline demo`` end to end: the embedded servers, a worker and the simulated models
detect exactly the injected drift and latency regression, count every window exactly,
join exactly the labels sent as the windows mature, and leave nothing running."""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any

import pytest

from stream import demo, demo_view
from stream.cli import build_parser
from stream.demo_data import LABEL_SHARE, MODELS, Sent, send_traffic
from stream.exceptions import ConfigError

INJECTED = {"churn": {"income", "plan"}, "fraud": {"amount"}, "pricing": set()}
LABELLED = ("churn", "pricing")
NUM = r"[\d,]+"
SHARE = r"0\.\d{3}"
QUALITY_TEXT = {
    "churn": rf"accuracy {SHARE} \(estimated {SHARE}, baseline {SHARE}\)",
    "pricing": rf"RMSE {NUM}, MAE {NUM} \(baseline {NUM}, {NUM}\)",
}
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

    # labels: 80 % of churn's and pricing's predictions, each joined exactly once
    for name in LABELLED:
        r = summary.models[name]
        assert sorted(r.labels_sent) == list(range(1, windows + 1)), name
        assert r.labelled == r.labels_sent, name
        assert abs(sum(r.labels_sent.values()) / r.events - LABEL_SHARE) < 0.02, name
    assert summary.models["fraud"].labels_sent == summary.models["fraud"].labelled == {}
    assert not any(
        rule.startswith("quality_") for r in summary.models.values() for rule, _ in r.alerts
    )
    churn, pricing = summary.models["churn"], summary.models["pricing"]
    assert churn.baseline_quality is not None and pricing.baseline_quality is not None
    assert sorted(churn.estimated) == list(range(1, windows + 1))  # the calibrated estimate
    realised, estimated = churn.realised("accuracy"), churn.estimated_accuracy
    assert realised is not None and estimated is not None
    assert (
        abs(realised - estimated) < 0.02 and abs(churn.baseline_quality["accuracy"] - 0.71) < 0.01
    )
    mse = pricing.realised("mse")
    assert mse is not None and abs(mse**0.5 / pricing.baseline_quality["rmse"] - 1) < 0.05

    # quality lines as windows mature: once half the labels are in (mostly seen), once final
    line = r"^w +(\d+) (churn|pricing) +quality: +({n}) labels \((\d+) %\)( final|      )  (.*)$"
    shown = [
        (m.start(), int(m[1]), m[2], int(m[3].replace(",", "")), m[5] == " final", m[6])
        for m in re.finditer(line.format(n=NUM), out, re.M)
    ]
    final = {(w, name): (at, n) for at, w, name, n, last, _ in shown if last}
    halfway = {(w, name): (at, n) for at, w, name, n, last, _ in shown if not last}
    assert len(final) + len(halfway) == len(shown)  # at most one of each per window
    assert sorted(final) == [(w, name) for w in range(1, windows + 1) for name in LABELLED]
    assert len(halfway) >= windows
    for (w, name), (at, n) in final.items():
        assert n == summary.models[name].labels_sent[w]
        assert out.rfind(f"w{w:>3} ", 0, at) > out.find(f"w{w:>3} ")  # after the window's line
        if (w, name) in halfway:
            assert halfway[w, name][0] < at and n / 2 <= halfway[w, name][1] < n
    for _, _, name, _, _, text in shown:
        assert re.fullmatch(QUALITY_TEXT[name], text), text
    assert re.search(
        rf"^ +quality: {NUM} labels \(80 % of the predictions\); accuracy {SHARE} realised vs "
        rf"{SHARE} estimated \(baseline {SHARE}\)$",
        out,
        re.M,
    )
    assert re.search(rf"^ +quality: {NUM} labels \(80 % of the predictions\); RMSE ", out, re.M)
    assert "every window joined exactly the labels sent (no loss, no double count)" in out

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


class _Recorder:
    """Stands in for the SDK's loggers: keeps what is logged, in order."""

    def __init__(self, log: list[tuple[str, dict[str, Any]]], kind: str) -> None:
        self.records, self.kind = log, kind

    def log(self, *args: Any, **kwargs: Any) -> bool:
        self.records.append((self.kind, {"args": args, **kwargs}))
        return True

    def flush(self) -> int:
        return 0


def test_traffic_sends_a_share_of_labels_a_window_or_two_after_their_predictions() -> None:
    opts = demo.DemoOptions(seed=3, windows=4, window_seconds=5, events=600)
    records: list[tuple[str, dict[str, Any]]] = []
    t0, deadlines = 1_000_000, list[float]()
    sent = send_traffic(
        opts,
        _Recorder(records, "prediction"),  # type: ignore[arg-type]
        _Recorder(records, "label"),  # type: ignore[arg-type]
        t0,
        1.0,
        deadlines.append,
        lambda _: None,
        Sent(),
    )
    predicted = {
        r["id"]: (k, r["ts"]) for k, (kind, r) in enumerate(records) if kind == "prediction"
    }
    labels = [(k, r) for k, (kind, r) in enumerate(records) if kind == "label"]
    per_window: dict[tuple[str, int], int] = {}
    for k, r in labels:
        ident, label = r["args"]
        at, ts = predicted[ident]
        assert at < k and 5.0 <= r["ts"] - ts < 10.0  # after it was logged, 1-2 windows later
        w = int((ts - t0) // 5) + 1
        per_window[r["model"], w] = per_window.get((r["model"], w), 0) + 1
        assert isinstance(label, int if r["model"] == "churn" else float)
    # labels for the planned windows of the models with a labels table, about 80 % of each
    want = [(m, w) for m in MODELS if MODELS[m].labels for w in range(1, 5)]
    assert sorted(per_window) == sorted(want)
    assert per_window == dict(sent.labels) == dict(sent.planned)
    for (m, w), n in per_window.items():
        assert abs(n / sent.events[m, w] - LABEL_SHARE) < 0.06
    # the predictions go on past the last label (so the join's stored event time reaches it)
    last_label = max(r["ts"] for _, r in labels)
    assert max(ts for _, ts in predicted.values()) > last_label
    assert records[-1][0] == "prediction"
    assert deadlines == sorted(deadlines)


def test_quality_text_shows_accuracy_against_the_estimate_or_the_errors() -> None:
    at_close = {"estimated": {"accuracy": 0.7012}, "baseline": {"accuracy": 0.71, "rmse": 25012.3}}
    text = demo_view.quality_text("classification", {"accuracy": 0.69}, at_close)
    assert text == "accuracy 0.690 (estimated 0.701, baseline 0.710)"
    text = demo_view.quality_text("regression", {"rmse": 24733.0, "mae": 19530.2}, at_close)
    assert text == "RMSE 24,733, MAE 19,530 (baseline 25,012, n/a)"
    assert demo_view.quality_text("classification", {}, {}) == (
        "accuracy n/a (estimated n/a, baseline n/a)"
    )

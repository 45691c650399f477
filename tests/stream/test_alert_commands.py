"""``driftline alerts tail`` and ``alerts history``: filters, colours, time arguments,
and history read back from window results in the real Redis (tail from the real broker).

History fixtures store window results as :class:`~stream.closer.WindowCloser`
does (the result JSON under :meth:`~stream.keys.Keys.result`, its start in
:meth:`~stream.keys.Keys.closed_windows`), with ``alerts`` holding
:meth:`~alerting.events.AlertEvent.to_dict` of each published event.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerting import events as alert_events
from alerting.events import AlertEvent, Window, alert_id
from stream.alert_commands import (
    COLORS,
    RESET,
    RESOLVED_COLOR,
    SEVERITIES,
    STATUSES,
    AlertFilter,
    alert_line,
    colorize,
    use_color,
)
from stream.cli import build_parser, main
from stream.keys import Keys
from stream.query_commands import time_arg
from stream.reader import StateReader
from tests.conftest import KAFKA_TEST_CONF

T0 = 1_795_514_400  # 2026-11-24T10:00:00Z
W = 60
ESC = "\x1b["


def event(
    model: str,
    w: int,
    rule: str,
    feature: str | None,
    severity: str,
    status: str = "firing",
) -> dict[str, Any]:
    """An alert event of window ``w`` (start ``T0 + w * W``) as the closer stores it."""
    start = T0 + w * W
    return AlertEvent(
        alert_id=alert_id(
            model, rule, feature, start, "resolved" if status == "resolved" else "firing"
        ),
        model=model,
        version="v1",
        window=Window(start, start + W),
        rule=rule,
        metric="psi" if feature else rule,
        feature=feature,
        value=0.31,
        threshold=0.2,
        severity=severity,
        status=status,
        baseline="v1",
        message=f"{model}: {rule} on {feature or 'the model'}",
        emitted_at=float(start + W + 2),
    ).to_dict()


CHURN = [
    event("churn", 0, "feature_drift", "income", "high"),
    event("churn", 0, "volume", None, "medium"),
    event("churn", 1, "feature_drift", "income", "critical"),
    event("churn", 1, "missing_rate", "age", "low"),
    event("churn", 2, "feature_drift", "income", "high", "resolved"),
    event("churn", 2, "volume", None, "medium", "resolved"),
    event("churn", 3, "latency_p99", None, "high"),
]
FRAUD = [
    event("fraud", 0, "feature_drift", "amount", "low"),
    event("fraud", 2, "drift_share", None, "critical"),
]
SAMPLES = CHURN + FRAUD
LEGACY_START = T0 - 10 * W  # a result whose alerts are stored as bare ids


def ids(alerts: list[dict[str, Any]]) -> list[str]:
    return [a["alert_id"] for a in alerts]


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["alerts", *argv])


# -- pure: filters, colours, lines, arguments -----------------------------------------------


def test_severities_and_statuses_are_those_of_the_alert_event() -> None:
    assert SEVERITIES == alert_events.SEVERITIES
    assert STATUSES == alert_events.STATUSES


@pytest.mark.parametrize(
    ("flags", "want"),
    [
        ([], SAMPLES),
        (["--model", "fraud"], FRAUD),
        (["--model", "fraud", "--model", "churn"], SAMPLES),
        (["--severity", "low"], SAMPLES),
        (["--severity", "medium"], [a for a in SAMPLES if a["severity"] != "low"]),
        (["--severity", "high"], [a for a in SAMPLES if a["severity"] in ("high", "critical")]),
        (["--severity", "critical"], [CHURN[2], FRAUD[1]]),
        (["--rule", "volume"], [CHURN[1], CHURN[5]]),
        (["--rule", "volume", "--rule", "latency_p99"], [CHURN[1], CHURN[5], CHURN[6]]),
        (["--feature", "income"], [CHURN[0], CHURN[2], CHURN[4]]),
        (["--feature", "age", "--feature", "amount"], [CHURN[3], FRAUD[0]]),
        (["--status", "resolved"], [CHURN[4], CHURN[5]]),
        (["--status", "firing", "--feature", "income", "--severity", "critical"], [CHURN[2]]),
        (["--model", "churn", "--rule", "drift_share"], []),
    ],
)
def test_filters(flags: list[str], want: list[dict[str, Any]]) -> None:
    keep = AlertFilter.from_args(parse("tail", "-c", "x.toml", *flags))
    assert ids([a for a in SAMPLES if keep.matches(a)]) == ids(want)


def test_filters_drop_alerts_that_lack_the_filtered_field() -> None:
    broken = {"model": "churn", "rule": "volume", "severity": "urgent", "status": "firing"}
    assert AlertFilter().matches(broken) and AlertFilter().matches({})
    assert not AlertFilter(min_severity="low").matches(broken)
    assert not AlertFilter(features=frozenset({"income"})).matches(broken)
    assert not AlertFilter(status="firing").matches({})
    with pytest.raises(ValueError, match="min_severity must be one of"):
        AlertFilter(min_severity="urgent")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--severity", "urgent"], "argument --severity: invalid choice: 'urgent'"),
        (["--status", "open"], "argument --status: invalid choice: 'open'"),
        (["--color", "yes"], "argument --color: invalid choice: 'yes'"),
        (["--since", "yesterday"], "expected epoch seconds or an ISO-8601 UTC time"),
        (["--until", "nan"], "expected a finite time"),
        (["--limit", "-1"], "expected a count (0: no limit), got '-1'"),
    ],
)
def test_bad_arguments_are_usage_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["alerts", "history", "-c", "x.toml", "--model", "churn", *flags])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_history_requires_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["alerts", "history", "-c", "x.toml"])
    assert "the following arguments are required: --model" in capsys.readouterr().err


def test_time_arguments() -> None:
    assert time_arg("1795514400") == time_arg("1795514400.9") == T0
    assert time_arg("2026-11-24T10:00") == time_arg("2026-11-24 10:00:00") == T0
    assert time_arg("2026-11-24T10:00Z") == time_arg("2026-11-24T11:00+01:00") == T0
    assert time_arg("2026-11-24") == T0 - 10 * 3600
    args = parse("history", "-c", "x", "--model", "m", "--since", "2026-11-24T10:01")
    assert args.since == T0 + 60 and args.until is None and args.limit == 100
    window = build_parser().parse_args(
        ["show", "-c", "x", "--model", "m", "--window", "2026-11-24T10:00"]
    )
    assert window.window == T0


def test_colours_by_severity_and_status() -> None:
    want = {"critical": "\x1b[1;31m", "high": "\x1b[31m", "medium": "\x1b[33m", "low": "\x1b[36m"}
    assert want == COLORS and RESOLVED_COLOR == "\x1b[32m" and RESET == "\x1b[0m"
    for severity, code in want.items():
        firing = {"severity": severity, "status": "firing"}
        assert colorize("line", firing) == f"{code}line\x1b[0m"
        resolved = {"severity": severity, "status": "resolved"}
        assert colorize("line", resolved) == "\x1b[32mline\x1b[0m"
    assert colorize("line", {"severity": "urgent"}) == "line"


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("choice", "tty", "env", "want"),
    [
        ("auto", True, {}, True),
        ("auto", False, {}, False),
        ("auto", True, {"NO_COLOR": "1"}, False),
        ("auto", True, {"NO_COLOR": ""}, True),  # no-color.org: set *and* non-empty
        ("auto", True, {"TERM": "dumb"}, False),
        ("always", False, {"NO_COLOR": "1"}, True),  # an explicit flag wins
        ("never", True, {}, False),
    ],
)
def test_when_to_colour(choice: str, tty: bool, env: dict[str, str], want: bool) -> None:
    assert use_color(choice, Stream(tty), env) is want


def test_alert_line_escapes_control_characters_and_survives_bad_fields() -> None:
    line = alert_line({**CHURN[0], "feature": "in\x1b]0;pwned\x07come", "message": "a\nb"})
    assert "\x1b" not in line and "\n" not in line and "in\\x1b]0;pwned\\x07come" in line
    odd = alert_line({"emitted_at": "soon", "severity": None, "value": "big", "threshold": 1e400})
    assert odd == "-  -         -         -  -  -  big/inf  "
    assert alert_line({"emitted_at": 1e300}).startswith("-  ")


# -- history from the real Redis ----------------------------------------------------------------


def store_result(client: Any, keys: Keys, model: str, start: int, alerts: list[Any]) -> None:
    """Store a closed window's result as the closer does (result key + closed-window index)."""
    result = {
        "schema": 1,
        "model": model,
        "window": {"start": start, "end": start + W},
        "count": 100,
        "firing": [],
        "alerts": alerts,
    }
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.result(model, start), orjson.dumps(result), ex=3600)
    pipe.zadd(keys.closed_windows(model), {str(start): start})
    pipe.execute()


def write_config(path: Path, redis_url: str, prefix: str, bootstrap: str = "127.0.0.1:1") -> str:
    kafka = {"bootstrap.servers": bootstrap, **KAFKA_TEST_CONF}
    lines = ["[kafka]", *(f'"{k}" = "{v}"' for k, v in kafka.items())]
    lines += ["[redis]", f'url = "{redis_url}"', f'prefix = "{prefix}"']
    lines += ["[topics]", f'alerts = "alerts.{prefix}"']
    lines += ["[models.churn]", "[models.fraud]", "[models.pricing]"]
    lines += ["[[models.pricing.alerts.trend]]", 'metric = "latency_p99"', "slope = 5"]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def history(
    redis_client: Any, redis_url: str, key_prefix: str, tmp_path: Path
) -> Iterator[Callable[..., tuple[int, list[str], str]]]:
    """Stored windows of churn and fraud; a function running ``alerts history`` on them."""
    keys = Keys(key_prefix)
    for model, alerts in (("churn", CHURN), ("fraud", FRAUD)):
        by_start: dict[int, list[dict[str, Any]]] = {}
        for a in alerts:
            by_start.setdefault(a["window"]["start"], []).append(a)
        for start, published in by_start.items():
            store_result(redis_client, keys, model, start, published)
    store_result(redis_client, keys, "churn", T0 + 4 * W, [])  # a quiet window
    legacy = alert_id("churn", "volume", None, LEGACY_START)
    store_result(redis_client, keys, "churn", LEGACY_START, [legacy])
    path = write_config(tmp_path / "c.toml", redis_url, key_prefix)

    def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
        code = main(["alerts", "history", "-c", path, *argv])
        out, err = capsys.readouterr()
        return code, out.splitlines(), err

    yield run


@pytest.mark.integration
def test_history_prints_stored_alerts_oldest_first(
    history: Callable[..., tuple[int, list[str], str]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = history("--model", "churn", capsys=capsys)
    assert code == 0 and lines == [alert_line(a) for a in CHURN]
    assert (
        "2026-11-24 10:01:02  high      firing    churn  feature_drift  income  0.31/0.2"
        in lines[0]
    )
    assert not any(ESC in line for line in lines)  # not a terminal: no colour
    assert "1 alerts in these windows are stored by id only" in err  # the legacy window

    code, lines, err = history("--model", "churn", "--json", "--since", str(T0), capsys=capsys)
    assert code == 0 and [orjson.loads(line) for line in lines] == CHURN and err == ""


@pytest.mark.integration
@pytest.mark.parametrize(
    ("flags", "want"),
    [
        (["--model", "churn", "--severity", "high"], [CHURN[0], CHURN[2], CHURN[4], CHURN[6]]),
        (["--model", "churn", "--rule", "volume"], [CHURN[1], CHURN[5]]),
        (["--model", "churn", "--feature", "income", "--status", "resolved"], [CHURN[4]]),
        (
            ["--model", "churn", "--since", "2026-11-24T10:01", "--until", "2026-11-24T10:03"],
            CHURN[2:6],
        ),
        (["--model", "churn", "--since", str(T0 + 3 * W)], [CHURN[6]]),
        (["--model", "churn", "--until", str(T0 + W)], CHURN[:2]),
        (["--model", "churn", "--limit", "3"], CHURN[-3:]),
        (["--model", "churn", "--severity", "high", "--limit", "2"], [CHURN[4], CHURN[6]]),
        (
            ["--model", "churn", "--model", "fraud", "--severity", "low"],
            [*CHURN[:2], FRAUD[0], *CHURN[2:6], FRAUD[1], CHURN[6]],
        ),
        (["--model", "fraud", "--model", "churn", "--feature", "amount"], [FRAUD[0]]),
        (["--model", "pricing"], []),
    ],
)
def test_history_filters(
    flags: list[str],
    want: list[dict[str, Any]],
    history: Callable[..., tuple[int, list[str], str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, lines, err = history("--json", *flags, capsys=capsys)
    assert code == 0
    assert [orjson.loads(line)["alert_id"] for line in lines] == ids(want)
    if "--limit" in flags:
        assert "the newest" in err and "--limit 0 shows all" in err
    if not want:
        assert "no alerts for pricing" in err


@pytest.mark.integration
def test_history_colours_only_when_asked(
    history: Callable[..., tuple[int, list[str], str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, lines, _ = history("--model", "churn", "--color", "always", capsys=capsys)
    assert code == 0 and lines == [colorize(alert_line(a), a) for a in CHURN]
    assert lines[2].startswith("\x1b[1;31m") and lines[4].startswith("\x1b[32m")
    assert all(line.endswith(RESET) for line in lines)
    monkeypatch.setenv("NO_COLOR", "1")
    _, lines, _ = history("--model", "churn", "--color", "never", capsys=capsys)
    assert lines == [alert_line(a) for a in CHURN]
    _, lines, _ = history("--model", "churn", capsys=capsys)  # auto, NO_COLOR set
    assert not any(ESC in line for line in lines)


@pytest.mark.integration
def test_history_errors(
    history: Callable[..., tuple[int, list[str], str]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = history("--model", "churm", capsys=capsys)
    assert code == 2 and lines == []
    assert (
        "driftline alerts: error: unknown model 'churm'; known models: churn, fraud, pricing" in err
    )
    code, _, err = history("--model", "churn", "--rule", "feature_drfit", capsys=capsys)
    assert code == 2 and "unknown rule 'feature_drfit'; rules: feature_drift, " in err
    assert err.rstrip().endswith(", quality_mape, latency_p99_trend")  # configured rules too
    code, _, _ = history("--model", "pricing", "--rule", "latency_p99_trend", capsys=capsys)
    assert code == 0
    code, _, err = history(
        "--model", "churn", "--since", str(T0), "--until", str(T0), capsys=capsys
    )
    assert code == 2 and f"--since ({T0}) must be before --until ({T0})" in err


@pytest.mark.integration
def test_reader_alerts_pages_through_many_windows(redis_client: Any, key_prefix: str) -> None:
    keys, n = Keys(key_prefix), 250  # more windows than one page of 100
    for w in range(n):
        store_result(redis_client, keys, "m", T0 + w * W, [event("m", w, "volume", None, "low")])
        if w % 50 == 0:  # an expired result whose start is still indexed
            redis_client.delete(keys.result("m", T0 + w * W))
    reader = StateReader(redis_client, keys)
    kept = [w for w in range(n) if w % 50]
    assert [a["window"]["start"] for a in reader.alerts("m")] == [T0 + w * W for w in kept]
    newest = reader.alerts("m", limit=150)
    assert [a["window"]["start"] for a in newest] == [T0 + w * W for w in kept[-150:]]
    odd = reader.alerts(
        "m",
        since=T0 + 10 * W,
        until=T0 + 20 * W,
        where=lambda a: a["window"]["start"] % 120 == T0 % 120,
    )
    assert [a["window"]["start"] for a in odd] == [T0 + w * W for w in range(10, 20, 2)]
    assert reader.alerts("m", limit=0) == [] and reader.alerts("nope") == []


# -- tail from the real broker ------------------------------------------------------------------


@pytest.mark.integration
def test_tail_filters_and_colours(
    kafka_bootstrap: str,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from confluent_kafka import Producer

    from stream.embedded import create_topics

    path = write_config(tmp_path / "c.toml", redis_url, key_prefix, kafka_bootstrap)
    create_topics(kafka_bootstrap, {f"alerts.{key_prefix}": 1})
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for a in SAMPLES:
        producer.produce(f"alerts.{key_prefix}", key=a["model"].encode(), value=orjson.dumps(a))
    producer.produce(f"alerts.{key_prefix}", value=b"not json")
    assert producer.flush(10) == 0
    tail = ["alerts", "tail", "-c", path, "--from-beginning", "--timeout", "20"]

    # the last match is the last message: stopping at --max N has read past every other one
    want = [CHURN[0], CHURN[2], CHURN[4], CHURN[6], FRAUD[1]]
    began = time.monotonic()
    assert main([*tail, "--severity", "high", "--max", "5", "--color", "always"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [colorize(alert_line(a), a) for a in want]
    assert "skipped a malformed alert" not in err  # stopped at the 5th match, before it
    assert time.monotonic() - began < 15

    flags = ["--model", "fraud", "--rule", "drift_share", "--status", "firing", "--json"]
    assert main([*tail, *flags, "--max", "1"]) == 0
    assert [orjson.loads(line) for line in capsys.readouterr().out.splitlines()] == [FRAUD[1]]

    quick = ["alerts", "tail", "-c", path, "--from-beginning", "--timeout", "3"]
    assert main([*quick, "--feature", "income", "--status", "resolved"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [alert_line(CHURN[4])]  # not a terminal: plain
    assert "skipped a malformed alert" in err


@pytest.mark.integration
def test_history_into_a_closed_pipe_stops_quietly(
    redis_client: Any, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    keys = Keys(key_prefix)
    for w in range(400):  # about 160 kB of JSON lines: more than a pipe holds
        store_result(
            redis_client, keys, "churn", T0 + w * W, [event("churn", w, "volume", None, "low")]
        )
    path = write_config(tmp_path / "c.toml", redis_url, key_prefix)
    argv = ["alerts", "history", "-c", path, "--model", "churn", "--limit", "0", "--json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert orjson.loads(proc.stdout.readline())["window"]["start"] == T0  # like `| head -1`
    proc.stdout.close()
    assert proc.wait(30) == 141
    assert proc.stderr.read() == b""  # no "Broken pipe" error, no traceback
    proc.stderr.close()

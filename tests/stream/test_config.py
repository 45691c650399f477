"""The worker configuration: the example file, each validation rule, env fallbacks, client confs."""

# The expected messages are long on purpose: each names the key and the value.
# ruff: noqa: E501

from __future__ import annotations

import copy
import dataclasses
import importlib.resources
import math
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sketches import METHODS
from stream.config import (
    Config,
    FeatureSpec,
    ModelSpec,
    RedisSettings,
    Topics,
    Windows,
    WorkerSettings,
    load_config,
    parse_config,
)
from stream.durations import format_duration, parse_duration
from stream.exceptions import ConfigError

EXAMPLE = importlib.resources.files("stream").joinpath("example.toml")
MINIMAL: dict[str, Any] = {"kafka": {"bootstrap.servers": "k1:9092"}, "models": {"m": {}}}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallbacks must not leak in from the machine running the tests."""
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)


def merged(patch: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``base`` (default MINIMAL) with ``patch`` merged in, table by table; ``{}`` replaces."""
    out = copy.deepcopy(MINIMAL if base is None else base)
    for key, value in patch.items():
        if isinstance(value, dict) and value and isinstance(out.get(key), dict):
            out[key] = merged(value, out[key])
        else:
            out[key] = value
    return out


def errors(patch: dict[str, Any]) -> list[str]:
    """The error lines for MINIMAL + patch (fails if the config is valid)."""
    with pytest.raises(ConfigError) as info:
        parse_config(merged(patch))
    head, *lines = str(info.value).split("\n")
    assert head.startswith("invalid configuration in <config>")
    return [line.strip() for line in lines]


def one_error(patch: dict[str, Any]) -> str:
    found = errors(patch)
    assert len(found) == 1, found
    return found[0]


# -- the example file and defaults ---------------------------------------------------------


def test_example_file_loads() -> None:
    with importlib.resources.as_file(EXAMPLE) as path:
        cfg = load_config(path)
    assert cfg.kafka["bootstrap.servers"] == "127.0.0.1:9092"
    assert cfg.windows == Windows()
    assert cfg.worker == WorkerSettings()
    assert cfg.topics == Topics()
    assert cfg.redis == RedisSettings()
    churn = cfg.models["churn"]
    assert churn.prediction == "numeric" and churn.latency_slo_ms == 250.0
    assert churn.feature("age") == FeatureSpec("age", "numeric", "ks", 0.01)
    assert churn.feature("plan") == FeatureSpec("plan", "categorical")
    assert churn.feature("missing") is None
    assert (churn.drift_method, churn.drift_threshold) == ("psi", 0.2)
    assert cfg.models["fraud"].features == ()


def test_example_file_sets_every_key() -> None:
    """A complete example: every key of every fixed section appears in it."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    cfg = load_config(EXAMPLE)
    assert set(data["redis"]) == {"url", "prefix", "cluster"}
    assert set(data["topics"]) == {f.name for f in dataclasses.fields(Topics)}
    assert {f"{k}_s" if k != "history" else k for k in data["windows"]} == {
        f.name for f in dataclasses.fields(Windows)
    }
    assert {
        k if k in ("group_id", "batch_size", "max_message_bytes", "max_categories") else f"{k}_s"
        for k in data["worker"]
    } == {f.name for f in dataclasses.fields(WorkerSettings)}
    churn = data["models"]["churn"]
    assert set(churn) == {
        "prediction",
        "latency_slo_ms",
        "latency_p95_slo_ms",
        "confidence_threshold",
        "features",
        "drift",
        "alerts",
        "labels",
    }
    from stream.label_config import LABEL_KEYS

    assert set(churn["labels"]) == set(LABEL_KEYS)
    from stream.alert_config import ALERT_KEYS, FEATURE_KEYS

    commented = {"low_confidence_share", "fdr"}
    assert set(data["alerts"]) == set(ALERT_KEYS) - commented - {"features"}
    assert set(churn["alerts"]) == {"for", "k_of_m", "features"}
    assert set(churn["alerts"]["features"]["monthly_spend"]) == set(FEATURE_KEYS) - {
        "missing_increase",
        "out_of_range_share",
        "unseen_share",
    }
    assert cfg.alerts_for("churn").lifecycle.for_windows == 2
    assert [r.sink for r in cfg.routes] == ["webhook", "log"]


def test_minimal_config_takes_the_defaults() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.redis == RedisSettings() and cfg.topics == Topics()
    assert cfg.windows == Windows() and cfg.worker == WorkerSettings()
    assert cfg.models == {"m": ModelSpec("m")}
    assert dict(cfg.kafka) == {"bootstrap.servers": "k1:9092"}


def test_config_is_frozen_and_its_mappings_read_only() -> None:
    cfg = parse_config(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.windows = Windows()  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.kafka["x"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.models["n"] = ModelSpec("n")  # type: ignore[index]


# -- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        (0, 0.0),
        ("30", 30.0),
        ("2.5", 2.5),
        ("30s", 30.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("7d", 604800.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1h30m", 5400.0),
        ("1m 30s", 90.0),
        (" 2 m ", 120.0),
        ("1d2h3m4s5ms", 93784.005),
    ],
)
def test_parse_duration(value: float | str, seconds: float) -> None:
    assert parse_duration(value, "k") == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("soon", 'expected a duration like "60s" or a number of seconds, got "soon"'),
        ("", 'got ""'),
        ("5x", 'got "5x" (units: ms, s, m, h, d)'),
        ("m", 'got "m"'),
        ("-5s", 'got "-5s"'),
        ("1e3s", 'got "1e3s"'),
        (True, "got true"),
        (None, "got None"),
        ([1], "got [1]"),
        (-1, "a duration cannot be negative, got -1"),
        (math.inf, "a duration must be finite, got inf"),
        (math.nan, "a duration must be finite, got nan"),
    ],
)
def test_parse_duration_errors_name_key_and_value(value: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(value, "windows.size")
    assert str(info.value).startswith("windows.size: ")
    assert problem in str(info.value)


@pytest.mark.parametrize(
    "seconds", [0.0, 0.001, 0.5, 1.0, 1.5, 59.0, 90.0, 3600.0, 93784.0, 7 * 86400.0]
)
def test_format_duration_parses_back(seconds: float) -> None:
    assert parse_duration(format_duration(seconds), "k") == pytest.approx(seconds)


def test_format_duration_spelling() -> None:
    assert [format_duration(s) for s in (0, 0.5, 1.5, 90, 3600, 604800)] == [
        "0s",
        "500ms",
        "1.5s",
        "1m30s",
        "1h",
        "7d",
    ]


def test_durations_in_config() -> None:
    cfg = parse_config(
        merged(
            {
                "windows": {
                    "size": "5m",
                    "allowed_lateness": 0,
                    "idle_timeout": 2.5,
                    "retention": "1d",
                },
                "worker": {"poll_timeout": "100ms", "flush_interval": "2s"},
            }
        )
    )
    assert cfg.windows == Windows(300.0, 0.0, 2.5, 86400.0, 12)
    assert (cfg.worker.poll_timeout_s, cfg.worker.flush_interval_s) == (0.1, 2.0)


# -- validation: one rule at a time --------------------------------------------------------

RULES = [
    # unknown keys, with the allowed list and the closest one
    ({"windws": {}}, 'windws: unknown key; allowed: kafka, redis, topics, windows, worker, alerts, models, routes; did you mean "windows"?'),
    ({"windows": {"sise": "1m"}}, 'windows.sise: unknown key; allowed: size, allowed_lateness, idle_timeout, retention, history; did you mean "size"?'),
    ({"windows": {"size_s": 60}}, 'windows.size_s: unknown key; allowed: size, allowed_lateness, idle_timeout, retention, history; did you mean "size"?'),
    ({"worker": {"batchsize": 5}}, 'worker.batchsize: unknown key; allowed: group_id, batch_size, poll_timeout, flush_interval, max_message_bytes, max_categories, label_wait; did you mean "batch_size"?'),
    ({"redis": {"urll": "redis://h"}}, 'redis.urll: unknown key; allowed: url, prefix, cluster; did you mean "url"?'),
    ({"topics": {"alert": "a"}}, 'topics.alert: unknown key; allowed: predictions, labels, dlq, windows, alerts; did you mean "alerts"?'),
    ({"models": {"m": {"latency_slo": 5}}}, 'models.m.latency_slo: unknown key; allowed: prediction, latency_slo_ms, latency_p95_slo_ms, confidence_threshold, features, drift, alerts, labels; did you mean "latency_slo_ms"?'),
    ({"models": {"m": {"drift": {"default": {"methd": "psi"}}}}}, 'models.m.drift.default.methd: unknown key; allowed: method, threshold; did you mean "method"?'),
    # tables
    ({"windows": 5}, "windows: expected a table, got 5"),
    ({"models": {"m": "x"}}, 'models.m: expected a table, got "x"'),
    # redis
    ({"redis": {"url": "http://h:6379"}}, 'redis.url: expected a redis://, rediss:// or unix:// URL, got "http://h:6379"'),
    ({"redis": {"url": "redis://:hunter2@:6379"}}, 'redis.url: expected redis://host[:port][/db], got "redis://:***@:6379"'),
    ({"redis": {"url": "redis://h:99999/0"}}, 'redis.url: not a valid URL (Port out of range 0-65535), got "redis://h:99999/0"'),
    ({"redis": {"url": "redis://h/db1"}}, 'redis.url: the path must be a database number, as in redis://host:6379/0, got "redis://h/db1"'),
    ({"redis": {"url": "unix://"}}, 'redis.url: expected unix:///path/to/redis.sock, got "unix://"'),
    ({"redis": {"url": "unix:///tmp/r.sock", "cluster": True}}, 'redis.url: redis.cluster = true needs a redis:// or rediss:// URL, not unix://, got "unix:///tmp/r.sock"'),
    ({"redis": {"url": "redis://h:7000/3", "cluster": True}}, 'redis.url: Redis Cluster has database 0 only, got "redis://h:7000/3"'),
    ({"redis": {"url": 5}}, "redis.url: expected a URL, got 5"),
    ({"redis": {"cluster": "yes"}}, 'redis.cluster: expected true or false, got "yes"'),
    ({"redis": {"prefix": ""}}, 'redis.prefix: expected a non-empty string of [A-Za-z0-9_.-], got ""'),
    ({"redis": {"prefix": "d l"}}, 'redis.prefix: expected a non-empty string of [A-Za-z0-9_.-], got "d l"'),
    ({"redis": {"prefix": "{dl}"}}, 'redis.prefix: expected a non-empty string of [A-Za-z0-9_.-], got "{dl}"'),
    # topics
    ({"topics": {"dlq": "dead letters"}}, 'topics.dlq: expected a Kafka topic name: 1 to 249 of [A-Za-z0-9._-], not . or .., got "dead letters"'),
    ({"topics": {"dlq": "x" * 250}}, "topics.dlq: expected a Kafka topic name"),
    ({"topics": {"dlq": ".."}}, 'topics.dlq: expected a Kafka topic name: 1 to 249 of [A-Za-z0-9._-], not . or .., got ".."'),
    ({"topics": {"alerts": "driftline.windows"}}, 'topics.alerts: "driftline.windows" is also topics.windows; the five topics must differ'),
    ({"topics": {"predictions": "in", "labels": "in"}}, 'topics.labels: "in" is also topics.predictions; the five topics must differ'),
    # windows
    ({"windows": {"size": "soon"}}, 'windows.size: expected a duration like "60s" or a number of seconds, got "soon"'),
    ({"windows": {"size": "500ms"}}, 'windows.size: must be at least 1s, got "500ms"'),
    ({"windows": {"allowed_lateness": -1}}, "windows.allowed_lateness: a duration cannot be negative, got -1"),
    ({"windows": {"idle_timeout": 0}}, "windows.idle_timeout: must be longer than 0s, got 0"),
    ({"windows": {"retention": "0s"}}, 'windows.retention: must be longer than 0s, got "0s"'),
    ({"windows": {"retention": "5s", "allowed_lateness": "10s", "size": 1}}, 'windows.retention: must be longer than windows.size + windows.allowed_lateness (11s) so that a window\'s state outlives its close, got "5s"'),
    ({"windows": {"retention": "1m"}}, 'windows.retention: must be longer than windows.size + windows.allowed_lateness (1m10s) so that a window\'s state outlives its close, got "1m"'),
    ({"windows": {"history": 0}}, "windows.history: expected an integer ≥ 1, got 0"),
    ({"windows": {"history": 2.0}}, "windows.history: expected an integer ≥ 1, got 2.0"),
    # worker
    ({"worker": {"batch_size": 0}}, "worker.batch_size: expected an integer ≥ 1, got 0"),
    ({"worker": {"batch_size": True}}, "worker.batch_size: expected an integer ≥ 1, got true"),
    ({"worker": {"group_id": ""}}, 'worker.group_id: expected a non-empty string, got ""'),
    ({"worker": {"poll_timeout": 0}}, "worker.poll_timeout: must be longer than 0s, got 0"),
    ({"worker": {"flush_interval": "often"}}, 'worker.flush_interval: expected a duration like "60s" or a number of seconds, got "often"'),
    ({"worker": {"max_message_bytes": "1MiB"}}, 'worker.max_message_bytes: expected an integer ≥ 1, got "1MiB"'),
    ({"worker": {"max_categories": -3}}, "worker.max_categories: expected an integer ≥ 1, got -3"),
    # models
    ({"models": {}}, "models: no model declared; add at least one table such as [models.churn]"),
    ({"models": {"m": {}, "bad name": {}}}, 'models."bad name": a model name is 1 to 64 of [A-Za-z0-9_.-], got "bad name"'),
    ({"models": {"m": {}, "x" * 65: {}}}, "a model name is 1 to 64 of [A-Za-z0-9_.-]"),
    ({"models": {"m": {"prediction": "float"}}}, 'models.m.prediction: expected "numeric" or "categorical" (omit it to use the baseline\'s), got "float"'),
    ({"models": {"m": {"latency_slo_ms": 0}}}, "models.m.latency_slo_ms: expected a number of milliseconds > 0, got 0"),
    ({"models": {"m": {"latency_slo_ms": math.inf}}}, "models.m.latency_slo_ms: expected a number of milliseconds > 0, got inf"),
    ({"models": {"m": {"confidence_threshold": 1.5}}}, "models.m.confidence_threshold: expected a number from 0 to 1, got 1.5"),
    ({"models": {"m": {"features": {"age": "integer"}}}}, 'models.m.features.age: expected one of "numeric", "categorical", "boolean", got "integer"'),
    ({"models": {"m": {"features": {"age": {"kind": "numeric"}}}}}, 'models.m.features.age: expected one of "numeric", "categorical", "boolean", got a table; drift settings go in [models.m.drift]'),
    ({"models": {"m": {"features": ["age"]}}}, "models.m.features: expected a table, got [\"age\"]"),
    ({"models": {"m": {"features": {"": "numeric"}}}}, 'models.m.features: keys must be non-empty strings, got ""'),
    ({"models": {"m": {"drift": {"age": {"method": "kss"}}}}}, 'models.m.drift.age.method: unknown drift method "kss"; known: ' + ", ".join(METHODS) + '; did you mean "ks"?'),
    ({"models": {"m": {"drift": {"age": {"method": 3}}}}}, "models.m.drift.age.method: unknown drift method 3"),
    ({"models": {"m": {"features": {"plan": "categorical"}, "drift": {"plan": {"method": "ks"}}}}}, 'models.m.drift.plan.method: drift method "ks" does not apply to categorical feature "plan"; methods for categorical features: psi, kl, js, hellinger, chi2'),
    ({"models": {"m": {"features": {"flag": "boolean"}, "drift": {"flag": {"method": "wasserstein"}}}}}, 'models.m.drift.flag.method: drift method "wasserstein" does not apply to boolean feature "flag"; methods for boolean features: psi, kl, js, hellinger, chi2'),
    ({"models": {"m": {"features": {"age": "numeric", "plan": "categorical"}, "drift": {"default": {"method": "energy"}}}}}, 'models.m.drift.default.method: drift method "energy" does not apply to categorical feature "plan"; methods for categorical features: psi, kl, js, hellinger, chi2 (or give it its own method)'),
    ({"models": {"m": {"drift": {"age": {"method": "psi", "threshold": "high"}}}}}, 'models.m.drift.age.threshold: expected a finite number, got "high"'),
    ({"models": {"m": {"drift": {"age": {"method": "psi", "threshold": math.nan}}}}}, "models.m.drift.age.threshold: expected a finite number, got nan"),
    ({"models": {"m": {"drift": {"age": {"method": "psi", "threshold": True}}}}}, "models.m.drift.age.threshold: expected a finite number, got true"),
    ({"models": {"m": {"drift": {"age": {"method": "ks", "threshold": 5}}}}}, "models.m.drift.age.threshold: ks is a test: its threshold is a p-value level in (0, 1), got 5"),
    ({"models": {"m": {"drift": {"age": {"method": "psi", "threshold": -0.1}}}}}, "models.m.drift.age.threshold: psi is a distance: its threshold must be > 0, got -0.1"),
    ({"models": {"m": {"drift": {"age": {"threshold": 0.1}}}}}, "models.m.drift.age.threshold: 0.1 needs a method (in this entry or in drift.default)"),
    ({"models": {"m": {"drift": {"default": {"threshold": 0.3}}}}}, "models.m.drift.default.threshold: 0.3 needs a method"),
    ({"models": {"m": {"drift": {"default": {"method": "chi2"}, "age": {"threshold": 2}}}}}, "models.m.drift.age.threshold: chi2 is a test: its threshold is a p-value level in (0, 1), got 2"),
    ({"models": {"m": {"features": {"age": "numeric"}, "drift": {"agee": {"method": "ks"}}}}}, 'models.m.drift.agee: not a declared feature (age) nor default; did you mean "age"?'),
    ({"models": {"m": {"drift": {"age": "ks"}}}}, 'models.m.drift.age: expected a table, got "ks"'),
    ({"models": {"churn.v2": {"features": {"a b": "text"}}}}, 'models."churn.v2".features."a b": expected one of "numeric", "categorical", "boolean", got "text"'),
]  # fmt: skip


@pytest.mark.parametrize(("patch", "message"), RULES, ids=[r[1].split(":")[0] for r in RULES])
def test_each_rule_names_key_and_value(patch: dict[str, Any], message: str) -> None:
    found = one_error(patch)
    assert found.startswith(message) or message in found, found


def test_all_errors_are_reported_together() -> None:
    data = merged(
        {
            "windows": {"size": "soon", "history": 0},
            "worker": {"batch_size": 0},
            "redis": {"url": "http://h"},
            "topics": {"dlq": "bad topic"},
            "models": {
                "m": {"features": {"plan": "categorical"}, "drift": {"plan": {"method": "ks"}}}
            },
            "extra": True,
        }
    )
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="worker.toml")
    lines = str(info.value).split("\n")
    assert lines[0] == "invalid configuration in worker.toml (7 errors):"
    keys = [line.strip().split(":")[0] for line in lines[1:]]
    assert keys == [
        "extra",
        "redis.url",
        "topics.dlq",
        "windows.size",
        "windows.history",
        "worker.batch_size",
        "models.m.drift.plan.method",
    ]


def test_a_rejected_method_causes_no_follow_up_error() -> None:
    found = one_error({"models": {"m": {"drift": {"age": {"method": "nope", "threshold": 0.2}}}}})
    assert found.startswith('models.m.drift.age.method: unknown drift method "nope"')


def test_drift_entries_are_free_when_features_are_inferred() -> None:
    cfg = parse_config(merged({"models": {"m": {"drift": {"amount": {"method": "ks"}}}}}))
    assert cfg.models["m"].drift_overrides == (("amount", "ks", None),)


def test_yaml_style_non_string_keys_are_errors() -> None:
    found = one_error({"models": {"m": {"features": {1: "numeric"}}}})
    assert found == "models.m.features: keys must be non-empty strings, got 1"


# -- drift resolution ----------------------------------------------------------------------


def test_drift_for_resolution_order() -> None:
    cfg = parse_config(
        merged(
            {
                "models": {
                    "m": {
                        "features": {
                            "age": "numeric",
                            "plan": "categorical",
                            "flag": "boolean",
                            "x": "numeric",
                        },
                        "drift": {
                            "default": {"method": "psi", "threshold": 0.2},
                            "age": {"method": "ks"},
                            "flag": {"threshold": 0.3},
                        },
                    }
                }
            }
        )
    )
    m = cfg.models["m"]
    assert m.drift_for("age", "numeric", 10) == ("ks", METHODS["ks"].threshold)  # own method
    assert m.drift_for("flag", "boolean", 10) == ("psi", 0.3)  # model method, own threshold
    assert m.drift_for("plan", "categorical", 10) == ("psi", 0.2)  # the model's
    assert m.drift_for("new", "numeric", 10) == ("psi", 0.2)  # not declared: the model's


def test_drift_for_registry_default() -> None:
    m = ModelSpec("m")
    assert m.drift_for("a", "numeric", 10) == ("ks", None)
    assert m.drift_for("a", "numeric", 10_000) == ("wasserstein_norm", None)
    assert m.drift_for("a", "categorical", 10_000) == ("js", None)
    assert m.drift_for("a", "boolean", 10) == ("chi2", None)


def test_drift_for_checks_inferred_kinds() -> None:
    cfg = parse_config(
        merged({"models": {"m": {"drift": {"amount": {"method": "ks", "threshold": 0.01}}}}})
    )
    m = cfg.models["m"]
    assert m.drift_for("amount", "numeric", 10) == ("ks", 0.01)
    with pytest.raises(
        ConfigError,
        match=r'models\.m\.drift\.amount\.method: drift method "ks" '
        r'does not apply to categorical feature "amount"',
    ):
        m.drift_for("amount", "categorical", 10)


# -- Kafka ---------------------------------------------------------------------------------


def test_kafka_values_become_librdkafka_strings() -> None:
    cfg = parse_config(
        merged(
            {
                "kafka": {
                    "enable.idempotence": True,
                    "socket.keepalive.enable": False,
                    "linger.ms": 5,
                    "session.timeout.ms": 6000.0,
                    "retry.backoff.ms": 250,
                    "client.id": "w1",
                    "bootstrap.servers": ["a:9092", "b:9092"],
                }
            }
        )
    )
    assert dict(cfg.kafka) == {
        "bootstrap.servers": "a:9092,b:9092",
        "enable.idempotence": "true",
        "socket.keepalive.enable": "false",
        "linger.ms": "5",
        "session.timeout.ms": "6000",
        "retry.backoff.ms": "250",
        "client.id": "w1",
    }
    assert all(isinstance(v, str) for v in cfg.kafka.values())


def test_unquoted_dotted_kafka_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[kafka]\nbootstrap.servers = "h:1"\n"client.id" = "w"\n[models.m]\n')
    assert dict(load_config(path).kafka) == {"bootstrap.servers": "h:1", "client.id": "w"}


def test_kafka_key_set_twice(tmp_path: Path) -> None:
    found = one_error({"kafka": {"client.id": "a", "client": {"id": "b"}}})
    assert found == 'kafka."client.id": set twice (quoted and as dotted keys)'


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        (
            {"bootstrap.server": "x"},
            'kafka."bootstrap.server": not a librdkafka property; did you mean "bootstrap.servers"?',
        ),
        (
            {"sesion.timeout.ms": 6000},
            'kafka."sesion.timeout.ms": not a librdkafka property; did you mean "session.timeout.ms"?',
        ),
        (
            {"security.protocol": "TLS"},
            'kafka."security.protocol": Invalid value "TLS" for configuration property "security.protocol", got "TLS"',
        ),
        (
            {"acks": "most"},
            'kafka.acks: Invalid value for configuration property "request.required.acks", got "most"',
        ),
        (
            {"linger.ms": 10**7},
            'kafka."linger.ms": Configuration property "queue.buffering.max.ms" value 1e+07 is outside allowed range 0..900000, got 10000000',
        ),
        ({"group.id": "mine"}, 'kafka."group.id": set worker.group_id instead, got "mine"'),
        (
            {"metadata.broker.list": "h:1"},
            'kafka."metadata.broker.list": use "bootstrap.servers", got "h:1"',
        ),
        (
            {"enable.auto.commit": True},
            'kafka."enable.auto.commit": must stay false (offsets are stored in Redis), got true',
        ),
        (
            {"error_cb": "handler"},
            "kafka.error_cb: a Python callback; pass it to consumer_conf() or producer_conf() in code",
        ),
        (
            {"client.id": [[1]]},
            'kafka."client.id": expected a string, number, boolean or a list of them, got [[1]]',
        ),
        (
            {"client": {"id": {"a": "x"}}},
            'kafka."client.id.a": not a librdkafka property; did you mean "client.id"?',
        ),
        (
            {"client.id": math.inf},
            'kafka."client.id": expected a string, number, boolean or a list of them, got inf',
        ),
        (
            {"bootstrap.servers": ""},
            'kafka."bootstrap.servers": expected "host:port[,host:port...]", got ""',
        ),
    ],
)
def test_kafka_rules(kafka: dict[str, Any], message: str) -> None:
    assert one_error({"kafka": kafka}) == message


def test_kafka_properties_of_either_client_are_accepted() -> None:
    kafka = {
        "session.timeout.ms": 6000,  # consumer only
        "heartbeat.interval.ms": 500,  # consumer only
        "compression.type": "zstd",  # producer only
        "enable.idempotence": True,  # producer only
        "security.protocol": "SASL_SSL",  # both; fails alone without a SASL mechanism: not judged
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": "p",
        "enable.auto.commit": False,
        "debug": "broker",
    }
    assert parse_config(merged({"kafka": kafka})).kafka["compression.type"] == "zstd"


def test_kafka_secrets_are_masked() -> None:
    found = one_error({"kafka": {"sasl.password": ["hunter2", {"y": 1}]}})
    assert (
        found
        == 'kafka."sasl.password": expected a string, number, boolean or a list of them, got ***'
    )
    found = one_error({"kafka": {"ssl.key.passwrd": "hunter2"}})  # a misspelt secret
    assert (
        found
        == 'kafka."ssl.key.passwrd": not a librdkafka property; did you mean "ssl.key.password"?'
    )
    cfg = parse_config(
        merged(
            {"kafka": {"sasl.password": "hunter2"}, "redis": {"url": "redis://u:hunter2@h:6379/0"}}
        )
    )
    assert "hunter2" not in repr(cfg)
    assert "redis://u:***@h:6379/0" in repr(cfg)
    assert cfg.kafka["sasl.password"] == "hunter2"
    assert cfg.redis.url == "redis://u:hunter2@h:6379/0"


def test_bootstrap_is_required() -> None:
    found = one_error({"kafka": {"bootstrap.servers": None}})
    assert found == 'kafka."bootstrap.servers": required; set it in [kafka] or in $KAFKA_BOOTSTRAP'


# -- environment fallbacks -------------------------------------------------------------------


def test_kafka_bootstrap_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "env-broker:9092")
    assert parse_config({"models": {"m": {}}}).kafka["bootstrap.servers"] == "env-broker:9092"
    assert parse_config(MINIMAL).kafka["bootstrap.servers"] == "k1:9092"  # the file wins


def test_empty_kafka_bootstrap_env_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "")
    with pytest.raises(ConfigError, match=r"required; set it in \[kafka\] or in \$KAFKA_BOOTSTRAP"):
        parse_config({"models": {"m": {}}})


def test_redis_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "rediss://cache:6380/2")
    assert parse_config(MINIMAL).redis.url == "rediss://cache:6380/2"
    in_file = merged({"redis": {"url": "redis://file:6379/0"}})
    assert parse_config(in_file).redis.url == "redis://file:6379/0"  # the file wins


def test_redis_url_from_environment_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "unix:///run/redis.sock")
    found = one_error({"redis": {"cluster": True}})
    assert found.startswith("redis.url (from $REDIS_URL): redis.cluster = true needs a redis://")


def test_env_mapping_can_be_passed_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "ignored:1")
    cfg = parse_config(
        {"models": {"m": {}}}, env={"KAFKA_BOOTSTRAP": "given:1", "REDIS_URL": "unix:///s"}
    )
    assert (cfg.kafka["bootstrap.servers"], cfg.redis.url) == ("given:1", "unix:///s")


def test_redis_url_forms() -> None:
    for url in (
        "redis://h",
        "redis://h:6379",
        "redis://:pw@h:6379/15",
        "rediss://u:pw@h:6380/0",
        "unix:///var/run/redis.sock",
        "redis://[::1]:6379/0",
    ):
        assert parse_config(merged({"redis": {"url": url}})).redis.url == url
    assert parse_config(
        merged({"redis": {"url": "rediss://h:7000", "cluster": True}})
    ).redis.cluster


# -- client configurations -----------------------------------------------------------------


def full_kafka() -> Config:
    return parse_config(
        merged(
            {
                "kafka": {
                    "security.protocol": "SASL_SSL",
                    "sasl.mechanism": "PLAIN",
                    "sasl.username": "u",
                    "sasl.password": "p",
                    "session.timeout.ms": 6000,
                    "acks": "all",
                },
                "worker": {"group_id": "workers-a"},
            }
        )
    )


def test_consumer_conf() -> None:
    conf = full_kafka().consumer_conf()
    assert conf == {
        "bootstrap.servers": "k1:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "u",
        "sasl.password": "p",
        "session.timeout.ms": "6000",
        "group.id": "workers-a",
        "enable.auto.commit": "false",
        "auto.offset.reset": "earliest",
        "fetch.queue.backoff.ms": "50",
    }  # no "acks": producer only


def test_consumer_conf_overrides() -> None:
    cfg = parse_config(
        merged({"kafka": {"auto.offset.reset": "latest", "fetch.queue.backoff.ms": 1000}})
    )
    assert cfg.consumer_conf()["auto.offset.reset"] == "latest"  # [kafka] may set it
    assert cfg.consumer_conf()["fetch.queue.backoff.ms"] == "1000"

    def on_error(err: object) -> None: ...

    conf = cfg.consumer_conf(
        **{"group.id": "alert-router", "auto.offset.reset": "earliest"}, error_cb=on_error
    )
    assert conf["group.id"] == "alert-router" and conf["auto.offset.reset"] == "earliest"
    assert conf["error_cb"] is on_error


def test_producer_conf() -> None:
    conf = full_kafka().producer_conf()
    assert conf == {
        "bootstrap.servers": "k1:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "u",
        "sasl.password": "p",
        "acks": "all",
        "linger.ms": "20",
        "compression.type": "lz4",
    }  # no session.timeout.ms, group.id or auto-commit: consumer only


@pytest.mark.parametrize(
    ("kafka", "overrides", "expected"),
    [
        ({"compression.codec": "zstd"}, {}, {"compression.codec": "zstd", "linger.ms": "20"}),
        (
            {"queue.buffering.max.ms": 1},
            {},
            {"queue.buffering.max.ms": "1", "compression.type": "lz4"},
        ),
        (
            {},
            {"linger.ms": 0, "compression.type": "none"},
            {"linger.ms": "0", "compression.type": "none"},
        ),
        (
            {},
            {"enable.idempotence": True},
            {"enable.idempotence": "true", "linger.ms": "20", "compression.type": "lz4"},
        ),
    ],
)
def test_producer_defaults_only_when_unset(
    kafka: dict[str, Any], overrides: dict[str, Any], expected: dict[str, str]
) -> None:
    conf = parse_config(merged({"kafka": {"bootstrap.servers": "k1:9092", **kafka}})).producer_conf(
        **overrides
    )
    conf.pop("bootstrap.servers")
    assert conf == expected


def test_confs_build_real_clients() -> None:
    """librdkafka takes both dicts as they are (built without brokers: nothing connects)."""
    from confluent_kafka import Consumer, Producer

    cfg = parse_config(merged({"kafka": {"session.timeout.ms": 6000, "acks": "all"}}))
    for client, conf in ((Consumer, cfg.consumer_conf()), (Producer, cfg.producer_conf())):
        del conf["bootstrap.servers"]
        handle = client({**conf, "log_level": "0"})
        if client is Consumer:
            handle.close()


# -- with_overrides ------------------------------------------------------------------------


def test_with_overrides() -> None:
    cfg = parse_config(MINIMAL)
    other = cfg.with_overrides(
        windows={"size_s": 5.0},
        worker=WorkerSettings(batch_size=7),
        models=[ModelSpec("a"), ModelSpec("b")],
    )
    assert other.windows == Windows(size_s=5.0)
    assert other.worker.batch_size == 7
    assert list(other.models) == ["a", "b"]
    assert cfg.windows == Windows() and list(cfg.models) == ["m"]  # the original is untouched
    with pytest.raises(TypeError):
        cfg.with_overrides(nope=1)


# -- files -----------------------------------------------------------------------------------


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported configuration file type"):
        load_config(tmp_path / "c.ini")
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[windows\nsize = 1")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        load_config(bad)


def test_load_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "worker.toml"
    path.write_text('[kafka]\n"bootstrap.servers" = "h:1"\n[windows]\nsize = "soon"\n[models.m]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"invalid configuration in {path} (1 error):\n"
        '  windows.size: expected a duration like "60s" or a number of seconds, got "soon" '
        "(units: ms, s, m, h, d)"
    )


def test_yaml_without_pyyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError
    path = tmp_path / "c.yaml"
    path.write_text("models: {m: {}}\n")
    with pytest.raises(ConfigError, match=r"reading YAML needs PyYAML \(pip install pyyaml\)"):
        load_config(path)


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_yaml(tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / f"c{suffix}"
    path.write_text(
        "kafka:\n  bootstrap.servers: h:1\n  enable.idempotence: true\n"
        "windows:\n  size: 5m\n  retention: 1d\n"
        "models:\n  churn:\n    features: {age: numeric, plan: categorical}\n"
        "    drift:\n      age: {method: ks}\n"
    )
    cfg = load_config(path)
    assert dict(cfg.kafka) == {"bootstrap.servers": "h:1", "enable.idempotence": "true"}
    assert (cfg.windows.size_s, cfg.windows.retention_s) == (300.0, 86400.0)
    assert cfg.models["churn"].feature("age") == FeatureSpec("age", "numeric", "ks")
    path.write_text("windows:\n  size: soon\nmodels:\n  m:\n")
    with pytest.raises(ConfigError, match=r'windows\.size: expected a duration .* got "soon"'):
        load_config(path)


def test_alerts_defaults_and_per_model_overrides() -> None:
    cfg = parse_config(
        merged(
            {
                "alerts": {"for": 2, "dead_letter_rate": 0.1, "repeat_every": 0},
                "models": {"m": {"alerts": {"resolve_after": 3}}, "n": {}},
            }
        )
    )
    m, n = cfg.alerts_for("m"), cfg.alerts_for("n")
    assert (m.lifecycle.for_windows, m.lifecycle.resolve_after, m.lifecycle.repeat_every) == (
        2,
        3,
        0,
    )
    assert (n.lifecycle.for_windows, n.lifecycle.resolve_after) == (2, 1)
    assert m.rules.dlq_rate == n.rules.dlq_rate == 0.1
    assert cfg.alerts_for("unknown") == cfg.alerts


def test_alerts_errors_name_key_and_value() -> None:
    bad = {"alerts": {"for": 0, "drift_share": 1.5, "volume_low": 3}, "models": {"m": {}}}
    with pytest.raises(ConfigError) as err:
        parse_config(merged(bad))
    msg = str(err.value)
    assert "alerts.for: expected an integer ≥ 1, got 0" in msg
    assert "alerts.drift_share: expected a share in (0, 1], got 1.5" in msg
    assert "alerts.volume_low: must be below volume_high (2.0), got 3" in msg
    assert msg.count("volume_low") == 1  # not repeated for each model


def test_rule_language_parses_and_merges_model_over_defaults() -> None:
    from alerting.settings import FeatureOverride, KOfM, TrendRule

    feats = {"a": "numeric", "b": "numeric", "c": "categorical"}
    cfg = parse_config(
        merged(
            {
                "alerts": {
                    "fdr": 0.1,
                    "off": ["volume"],
                    "severity": {"psi": {"medium": 0.1, "high": 0.3}, "ks": {"high": 0.01}},
                    "trend": [{"metric": "latency_p99", "slope": 5, "direction": "either"}],
                    "k_of_m": [{"k": 3}],
                },
                "models": {
                    "m": {
                        "features": feats,
                        "latency_p95_slo_ms": 80,
                        "alerts": {
                            "severity": {"js": {"medium": 0.2}},
                            "trend": [{"metric": "feature_drift", "feature": "a", "slope": 0.01}],
                            "k_of_m": [{"name": "ab", "k": 2, "features": ["a", "b"]}],
                            "off": ["ab", "feature_drift_trend"],
                            "features": {"c": {"min_samples": 9, "off": ["unseen_categories"]}},
                        },
                    },
                    "n": {},
                },
            }
        )
    )
    m, n = cfg.alerts_for("m").rules, cfg.alerts_for("n").rules
    assert n.fdr == m.fdr == 0.1 and n.off == {"volume"}
    assert n.trends == (TrendRule("latency_p99", 6, 5.0, "either"),)
    assert n.k_of_m == (KOfM("k_of_m", 3),)
    assert m.trends == (TrendRule("feature_drift", 6, 0.01, feature="a"),)
    assert m.k_of_m == (KOfM("ab", 2, ("a", "b")),)
    assert m.off == {"ab", "feature_drift_trend"}
    assert dict(m.severity) == {
        "psi": {"medium": 0.1, "high": 0.3},
        "ks": {"high": 0.01},
        "js": {"medium": 0.2},
    }
    assert m.features == {"c": FeatureOverride(min_samples=9, off=frozenset({"unseen_categories"}))}
    assert cfg.models["m"].latency_slos == {"p95": 80.0}


RULE_LANGUAGE_ERRORS = [
    ({"severity": {"psy": {"high": 0.3}}}, 'alerts.severity.psy: unknown drift method; known: psi, kl, js, hellinger, chi2, ks, wasserstein, wasserstein_norm, energy; did you mean "psi"?'),
    ({"severity": {"psi": {"medium": 0.3, "high": 0.2}}}, "alerts.severity.psi: psi is a distance: its tiers must grow with severity, got medium = 0.3, high = 0.2"),
    ({"severity": {"ks": {"medium": 0.01, "high": 0.05}}}, "alerts.severity.ks: ks is a test: its tiers are p-value levels in (0, 1), smaller for higher severity, got medium = 0.01, high = 0.05"),
    ({"severity": {"psi": {"severe": 0.3}}}, "alerts.severity.psi.severe: unknown key; allowed: low, medium, high, critical"),
    ({"severity": {"psi": {"high": -1}}}, "alerts.severity.psi.high: expected a number > 0, got -1"),
    ({"fdr": 1}, "alerts.fdr: expected a false-discovery rate in (0, 1), got 1"),
    ({"off": ["volumes"]}, 'alerts.off: unknown rule "volumes"; known: feature_drift, prediction_drift, drift_share, latency_p95, latency_p99, volume, dead_letter_rate, low_confidence, missing_rate, out_of_range, unseen_categories, quality_accuracy, quality_precision, quality_recall, quality_f1, quality_roc_auc, quality_pr_auc, quality_r2, quality_log_loss, quality_ece, quality_mae, quality_mse, quality_rmse, quality_mape; did you mean "volume"?'),
    ({"quality": {"accuracy": {"high": 0.05, "critical": 0.03}}}, "alerts.quality.accuracy: margins must grow with severity, got high = 0.05, critical = 0.03"),
    ({"quality": {"acuracy": {"high": 0.05}}}, 'alerts.quality.acuracy: unknown key; allowed: min_labels, accuracy,'),
    ({"quality": {"min_labels": 0}}, "alerts.quality.min_labels: expected an integer ≥ 1, got 0"),
    ({"quality": {"rmse": {"high": -1}}}, "alerts.quality.rmse.high: expected a margin > 0, got -1"),
    ({"trend": {"metric": "volume"}}, "alerts.trend: expected an array of tables ([[alerts.trend]]), got a table"),
    ({"trend": [{"metric": "latency", "slope": 1}]}, 'alerts.trend[0].metric: expected one of volume, latency_p95, latency_p99, dead_letter_rate, drift_share, prediction_drift, prediction_mean, low_confidence, feature_drift, missing_rate, mean, out_of_range_share, unseen_share, accuracy, precision, recall, f1, roc_auc, pr_auc, r2, log_loss, ece, mae, mse, rmse, mape, got "latency"; did you mean "latency_p99"?'),
    ({"trend": [{"metric": "volume"}]}, "alerts.trend[0].slope: required: the slope per window that fires, a number > 0"),
    ({"trend": [{"metric": "volume", "slope": "1"}]}, 'alerts.trend[0].slope: expected the slope per window that fires, a number > 0, got "1"'),
    ({"trend": [{"metric": "volume", "slope": 1, "windows": 2}]}, "alerts.trend[0].windows: expected an integer ≥ 3 (a slope needs 3 points to mean anything), got 2"),
    ({"trend": [{"metric": "volume", "slope": 1, "direction": "up"}]}, 'alerts.trend[0].direction: expected "rising", "falling" or "either", got "up"'),
    ({"trend": [{"metric": "volume", "slope": 1, "feature": "a"}]}, "alerts.trend[0].feature: volume is a model metric, not a feature's; remove feature"),
    ({"trend": [{"metric": "volume", "slope": 1}, {"metric": "volume", "slope": 2}]}, 'alerts.trend[1]: a second volume_trend rule for the model; use direction = "either" for both ways'),
    ({"k_of_m": [{"k": 0}]}, "alerts.k_of_m[0].k: expected how many drifted features fire, an integer ≥ 1, got 0"),
    ({"k_of_m": [{"name": "x"}]}, "alerts.k_of_m[0].k: required: how many drifted features fire, an integer ≥ 1"),
    ({"k_of_m": [{"k": 3, "features": ["a", "b"]}]}, "alerts.k_of_m[0].k: 3 is more than the group's 2 features"),
    ({"k_of_m": [{"k": 1, "name": "volume"}]}, 'alerts.k_of_m[0].name: "volume" is already a rule\'s name; give each group its own'),
    ({"k_of_m": [{"k": 1, "severity": "urgent"}]}, 'alerts.k_of_m[0].severity: expected "low" or "medium" or "high" or "critical", got "urgent"'),
    ({"features": {"a": {"off": ["volume"]}}}, 'alerts.features.a.off: unknown rule "volume"; known: feature_drift, missing_rate, out_of_range, unseen_categories'),
    ({"features": {"a": {"min_sample": 3}}}, 'alerts.features.a.min_sample: unknown key; allowed: min_samples, missing_increase, out_of_range_share, unseen_share, severity, off; did you mean "min_samples"?'),
]  # fmt: skip


@pytest.mark.parametrize(("alerts", "message"), RULE_LANGUAGE_ERRORS)
def test_rule_language_errors_name_key_and_value(alerts: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(merged({"alerts": alerts, "models": {"m": {}}}))
    assert message in str(err.value), str(err.value)


def test_rule_language_checks_feature_names_of_declared_models() -> None:
    model = {
        "features": {"age": "numeric", "plan": "categorical"},
        "alerts": {
            "k_of_m": [{"k": 1, "features": ["age", "plans"]}],
            "trend": [{"metric": "missing_rate", "feature": "agee", "slope": 0.1}],
            "features": {"plam": {"min_samples": 5}},
        },
    }
    with pytest.raises(ConfigError) as err:
        parse_config(merged({"models": {"m": model}}))
    msg = str(err.value)
    assert (
        'models.m.alerts.k_of_m[0].features: not a feature of the model (age, plan), got "plans"; did you mean "plan"?'
        in msg
    )
    assert (
        'models.m.alerts.trend[0].feature: not a feature of the model (age, plan), got "agee"; did you mean "age"?'
        in msg
    )
    assert (
        'models.m.alerts.features.plam: not a feature of the model (age, plan), got "plam"; did you mean "plan"?'
        in msg
    )


def test_labels_table_parses() -> None:
    from stream.label_config import LabelSpec

    labels = {"horizon": "2d", "classes": ["no", "yes"], "positive_class": "no"}
    cfg = parse_config(merged({"models": {"m": {"labels": labels}, "n": {}}}))
    assert cfg.models["m"].labels == LabelSpec(2 * 86400.0, None, ("no", "yes"), "no")
    assert cfg.models["n"].labels is None
    assert LabelSpec(60.0, classes=("a", "b")).positive(("a", "b")) == "b"


LABEL_ERRORS = [
    ({}, 'models.m.labels.horizon: required: how long a prediction waits for its label, e.g. "7d"'),
    ({"horizon": "soon"}, "models.m.labels.horizon"),
    ({"horizon": "1d", "task": "ranking"}, 'models.m.labels.task: expected "classification" or "regression", got "ranking"'),
    ({"horizon": "1d", "classes": ["a"]}, "models.m.labels.classes: expected 2 to 64 classes, got 1"),
    ({"horizon": "1d", "classes": ["a", "a"]}, 'models.m.labels.classes: expected a list of distinct class names (strings), got ["a", "a"]'),
    ({"horizon": "1d", "classes": [str(i) for i in range(65)]}, "models.m.labels.classes: expected 2 to 64 classes, got 65"),
    ({"horizon": "1d", "classes": ["a", "b"], "positive_class": "c"}, 'models.m.labels.positive_class: "c" is not one of classes ["a", "b"]'),
    ({"horizon": "1d", "classes": ["a", "b"], "task": "regression"}, "models.m.labels.classes: a regression has no classes; remove them or set task"),
    ({"horizon": "1d", "window": 3}, "models.m.labels.window: unknown key; allowed: horizon, task, classes, positive_class"),
]  # fmt: skip


@pytest.mark.parametrize(("labels", "message"), LABEL_ERRORS)
def test_labels_errors_name_key_and_value(labels: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(merged({"models": {"m": {"labels": labels}}}))
    assert message in str(err.value), str(err.value)

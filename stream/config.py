"""The worker configuration: one TOML file (or YAML, if PyYAML is installed), validated at start.

:func:`load_config` reads a file, :func:`parse_config` a mapping already read.
Every problem found is collected and raised as one :class:`~stream.exceptions.ConfigError`
listing each on its own line, as ``<dotted.key>: <problem>, got <value>``.
``stream/example.toml`` is a complete, commented example.

Shape::

    [kafka]                        # librdkafka properties, passed through
    "bootstrap.servers" = "127.0.0.1:9092"

    [redis]
    url = "redis://127.0.0.1:6379/0"

    [windows]
    size = "1m"

    [models.churn]
    prediction = "numeric"
    features = { age = "numeric", plan = "categorical", is_new = "boolean" }

    [models.churn.drift]
    default = { method = "psi", threshold = 0.2 }
    age = { method = "ks" }

Configuration reference (durations are seconds or strings such as ``"500ms"``,
``"30s"``, ``"5m"``, ``"1h"``, ``"7d"``, ``"1h30m"``):

| key | default | meaning |
|---|---|---|
| `kafka."bootstrap.servers"` | `$KAFKA_BOOTSTRAP` | Kafka brokers, `host:port[,host:port…]`; required, from the file or the environment variable |
| `kafka."<property>"` | — | any librdkafka property (`"security.protocol"`, `"sasl.mechanism"`, `"sasl.username"`, `"ssl.ca.location"`, …), checked against librdkafka; booleans and numbers become strings; producer-only properties go to producers only and consumer-only ones to consumers only |
| `kafka."auto.offset.reset"` | `"earliest"` | where the consumer starts when it has no valid offset; it also gets `group.id` = `worker.group_id` and `enable.auto.commit` = `false` (offsets live in Redis), which `[kafka]` cannot set |
| `kafka."linger.ms"`, `kafka."compression.type"` | `"20"`, `"lz4"` | producer defaults, used unless set (or their aliases `queue.buffering.max.ms`, `compression.codec`) |
| `redis.url` | `$REDIS_URL`, else `"redis://127.0.0.1:6379/0"` | `redis://`, `rediss://` (TLS) or `unix:///path/redis.sock` |
| `redis.prefix` | `"dl"` | first part of every Redis key; `[A-Za-z0-9_.-]` |
| `redis.cluster` | `false` | connect to a Redis Cluster (not with `unix://`; database 0 only) |
| `topics.predictions` | `"driftline.predictions"` | prediction events in |
| `topics.labels` | `"driftline.labels"` | label events in |
| `topics.dlq` | `"driftline.dlq"` | dead letters out |
| `topics.windows` | `"driftline.windows"` | window summaries out |
| `topics.alerts` | `"driftline.alerts"` | alert events out (the five topics must differ) |
| `windows.size` | `"60s"` | window length, ≥ 1 s |
| `windows.allowed_lateness` | `"10s"` | a window closes once the watermark passes its end plus this; later events are dead-lettered as `too_late` |
| `windows.idle_timeout` | `"30s"` | a partition without events for this long stops holding the watermark back |
| `windows.retention` | `"7d"` | how long window state and results stay in Redis; > `size` + `allowed_lateness` |
| `windows.history` | `12` | recent windows that form the volume baseline |
| `worker.group_id` | `"driftline-workers"` | Kafka consumer group of the workers |
| `worker.batch_size` | `10000` | most messages taken per poll |
| `worker.poll_timeout` | `"500ms"` | longest wait for messages in one poll |
| `worker.flush_interval` | `"1s"` | how often sketch deltas and offsets are written to Redis |
| `worker.max_message_bytes` | `1048576` | larger messages are dead-lettered as `too_large` |
| `worker.max_categories` | `1000` | distinct values kept per categorical feature and window; the rest count as other |
| `models.<name>` | — | one table per monitored model (at least one); name `[A-Za-z0-9_.-]{1,64}` |
| `models.<name>.prediction` | from the baseline | `"numeric"` or `"categorical"` |
| `models.<name>.latency_slo_ms` | none | p99 serving latency above this fires the latency rule |
| `models.<name>.confidence_threshold` | `0.5` | the share of predictions whose top class probability is below this is reported |
| `models.<name>.features` | from the baseline | inline table feature → `"numeric"`, `"categorical"` or `"boolean"` |
| `models.<name>.drift.default` | registry default | `{ method = "psi", threshold = 0.2 }`: method and threshold for every feature of the model |
| `models.<name>.drift.<feature>` | `drift.default` | `{ method = "ks", threshold = 0.01 }` for one feature |

Drift methods are the names in :data:`sketches.METHODS`; without one, a feature
gets :func:`sketches.default_method` for its kind and reference size. A
threshold without a method (in the entry or in ``drift.default``) is an error,
since the default method, and so the threshold's meaning, depends on the
reference size. Unquoted dotted keys in ``[kafka]`` (``bootstrap.servers = …``)
mean the same as quoted ones.
"""  # noqa: E501

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import logging
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from sketches.registry import METHODS, default_method
from stream.durations import format_duration, parse_duration
from stream.exceptions import ConfigError

__all__ = [
    "FEATURE_KINDS",
    "Config",
    "FeatureSpec",
    "ModelSpec",
    "RedisSettings",
    "Topics",
    "Windows",
    "WorkerSettings",
    "load_config",
    "parse_config",
    "parse_duration",
]

FeatureKind = Literal["numeric", "categorical", "boolean"]
PredictionKind = Literal["numeric", "categorical"]
FEATURE_KINDS: tuple[FeatureKind, ...] = ("numeric", "categorical", "boolean")


@dataclass(frozen=True)
class FeatureSpec:
    """One declared model input and its drift settings.

    Attributes:
        name: feature name as it appears in events.
        kind: ``"numeric"``, ``"categorical"`` or ``"boolean"``.
        method: drift method from :data:`sketches.METHODS`; ``None``: the model's
            ``drift_method``, else the registry default for the kind and sample size.
        threshold: ``None``: the model's ``drift_threshold`` (when the model's
            method is used), else the method's default threshold.
    """

    name: str
    kind: FeatureKind
    method: str | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One monitored model.

    Attributes:
        name: model id, ``[A-Za-z0-9_.-]{1,64}``.
        features: declared inputs; empty: inferred from the registered baseline.
        prediction: ``"numeric"`` or ``"categorical"``; ``None``: from the baseline.
        latency_slo_ms: p99 latency above this fires the latency rule.
        confidence_threshold: the share of predictions whose top probability is
            below this is reported.
        drift_method: model-wide drift method (``[models.X.drift] default``).
        drift_threshold: threshold of ``drift_method``.
        drift_overrides: ``(feature, method, threshold)`` for features that are
            not declared (``features`` empty); see :meth:`drift_for`.
    """

    name: str
    features: tuple[FeatureSpec, ...] = ()
    prediction: PredictionKind | None = None
    latency_slo_ms: float | None = None
    confidence_threshold: float = 0.5
    drift_method: str | None = None
    drift_threshold: float | None = None
    drift_overrides: tuple[tuple[str, str | None, float | None], ...] = ()

    @functools.cached_property
    def _by_name(self) -> dict[str, FeatureSpec]:
        return {f.name: f for f in self.features}

    def feature(self, name: str) -> FeatureSpec | None:
        """The declared feature called ``name``, or ``None``."""
        return self._by_name.get(name)

    def drift_for(self, name: str, kind: FeatureKind, n_reference: int) -> tuple[str, float | None]:
        """The drift method and threshold of one feature.

        The feature's own method, else the model's, else
        :func:`sketches.default_method`; the threshold given with that method,
        else the method's default (``None`` for ``wasserstein``: derived from
        the reference).

        Raises:
            ConfigError: the configured method does not apply to ``kind`` (only
                possible for features inferred from the baseline).
        """
        spec = self.feature(name)
        method, threshold = (spec.method, spec.threshold) if spec else (None, None)
        for feature, m, t in () if spec else self.drift_overrides:
            if feature == name:
                method, threshold = m, t
        key = _key("models", self.name, "drift", name if method else "default", "method")
        if method is None and self.drift_method is not None:
            method = self.drift_method
            threshold = self.drift_threshold if threshold is None else threshold
        if method is None:
            return default_method(kind, n_reference), threshold
        if not _applies(method, kind):
            raise ConfigError(f"{key}: {_not_applicable(method, kind, name)}")
        return method, METHODS[method].threshold if threshold is None else threshold


@dataclass(frozen=True)
class Topics:
    """Kafka topic names."""

    predictions: str = "driftline.predictions"
    labels: str = "driftline.labels"
    dlq: str = "driftline.dlq"
    windows: str = "driftline.windows"
    alerts: str = "driftline.alerts"


@dataclass(frozen=True)
class Windows:
    """Windowing: sizes and timeouts in seconds."""

    size_s: float = 60.0
    allowed_lateness_s: float = 10.0
    idle_timeout_s: float = 30.0
    retention_s: float = 7 * 86400.0
    history: int = 12  # recent windows for the volume baseline


@dataclass(frozen=True)
class WorkerSettings:
    """Consumer loop settings."""

    group_id: str = "driftline-workers"
    batch_size: int = 10_000
    poll_timeout_s: float = 0.5
    flush_interval_s: float = 1.0
    max_message_bytes: int = 1_048_576
    max_categories: int = 1000


@dataclass(frozen=True)
class RedisSettings:
    """Where the state lives; ``repr`` hides the password of ``url``."""

    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "dl"
    cluster: bool = False

    def __repr__(self) -> str:
        url = _mask_url(self.url)
        return f"RedisSettings(url={url!r}, prefix={self.prefix!r}, cluster={self.cluster})"


@dataclass(frozen=True)
class Config:
    """The validated configuration; build it with :func:`load_config` or :func:`parse_config`.

    ``repr`` hides passwords and secrets.
    """

    kafka: Mapping[str, str]
    redis: RedisSettings
    topics: Topics
    windows: Windows
    worker: WorkerSettings
    models: Mapping[str, ModelSpec]

    def __post_init__(self) -> None:
        object.__setattr__(self, "kafka", MappingProxyType(dict(self.kafka)))
        object.__setattr__(self, "models", MappingProxyType(dict(self.models)))

    def __repr__(self) -> str:
        kafka = {k: "***" if _is_secret(k) else v for k, v in self.kafka.items()}
        return (
            f"Config(kafka={kafka!r}, redis={self.redis!r}, topics={self.topics!r}, "
            f"windows={self.windows!r}, worker={self.worker!r}, models={dict(self.models)!r})"
        )

    def consumer_conf(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka consumer settings: ``[kafka]`` without producer-only properties.

        Adds ``group.id`` (``worker.group_id``), ``enable.auto.commit=false`` (offsets
        live in Redis with the state), and ``auto.offset.reset=earliest`` and
        ``fetch.queue.backoff.ms=50`` unless ``[kafka]`` sets them. ``overrides`` win; dotted names go in a dict, e.g.
        ``cfg.consumer_conf(**{"group.id": "alerts"}, error_cb=on_error)``.
        """
        # librdkafka waits 1 s before refetching once its prefetch queue is full,
        # which leaves a busy worker idle; 50 ms keeps it fed (bench/throughput.py)
        conf: dict[str, Any] = {"auto.offset.reset": "earliest", "fetch.queue.backoff.ms": "50"}
        conf.update((k, v) for k, v in self.kafka.items() if k not in _PRODUCER_ONLY)
        conf.update({"group.id": self.worker.group_id, "enable.auto.commit": "false"})
        conf.update((k, _client_value(v)) for k, v in overrides.items())
        return conf

    def producer_conf(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka producer settings: ``[kafka]`` without consumer-only properties.

        Adds ``linger.ms=20`` and ``compression.type=lz4`` unless ``[kafka]`` or
        ``overrides`` set them (or their aliases). ``overrides`` win.
        """
        conf = {k: v for k, v in self.kafka.items() if k not in _CONSUMER_ONLY}
        for names, value in _PRODUCER_DEFAULTS:
            if not any(n in conf or n in overrides for n in names):
                conf[names[0]] = value
        conf.update((k, _client_value(v)) for k, v in overrides.items())
        return conf

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with fields replaced, for tests; nothing is validated.

        A mapping given for a settings field replaces some of its fields
        (``windows={"size_s": 5.0}``); ``models`` may be a list of specs.
        """
        for name, value in list(changes.items()):
            current = getattr(self, name, None)
            if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
                changes[name] = dataclasses.replace(cast(Any, current), **value)
            elif name == "models" and not isinstance(value, Mapping):
                changes[name] = {m.name: m for m in cast(Iterable[ModelSpec], value)}
        return dataclasses.replace(self, **changes)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a ``.toml`` (or, with PyYAML installed, ``.yaml``/``.yml``) file.

    Raises:
        ConfigError: the file cannot be read or parsed, or its content is invalid.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"{p}: unsupported configuration file type; use .toml, .yaml or .yml")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the configuration file: {exc}") from exc
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from exc
    else:
        try:
            import yaml  # type: ignore[import-untyped, unused-ignore]
        except ImportError:
            raise ConfigError(
                f"{p}: reading YAML needs PyYAML (pip install pyyaml), or use a .toml file"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
    return parse_config(data if data is not None else {}, source=str(p))


def parse_config(
    data: Mapping[str, Any], source: str = "<config>", *, env: Mapping[str, str] | None = None
) -> Config:
    """Validate configuration data (a parsed TOML/YAML document) into a :class:`Config`.

    Args:
        data: the document.
        source: named in the error message (usually the file path).
        env: environment for ``KAFKA_BOOTSTRAP`` and ``REDIS_URL``; default ``os.environ``.

    Raises:
        ConfigError: every problem found, one per line.

    Example:
        >>> cfg = parse_config({"kafka": {"bootstrap.servers": "k:9092"}, "models": {"m": {}}})
        >>> cfg.windows.size_s, cfg.models["m"].features
        (60.0, ())
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a table of settings, got {_show(data)}")
    env = os.environ if env is None else env
    errors: list[str] = []
    root = _Table(data, (), errors, _SECTIONS)
    kafka = _parse_kafka(root.sub("kafka"), env)
    redis = _parse_redis(root.sub("redis", ("url", "prefix", "cluster")), env)
    topics = _parse_topics(root.sub("topics", [f.name for f in dataclasses.fields(Topics)]))
    windows = _parse_windows(root.sub("windows", _WINDOWS_KEYS))
    worker = _parse_worker(root.sub("worker", _WORKER_KEYS))
    raw_models = root.sub("models")
    if not raw_models.data and raw_models.ok:
        root.error("models", _NO_MODELS)
    models = [_parse_model(raw_models.sub(name, _MODEL_KEYS)) for name in raw_models.data]
    if errors:
        head = f"invalid configuration in {source} ({len(errors)} error{'s' * (len(errors) > 1)}):"
        raise ConfigError("\n  ".join([head, *errors]))
    return Config(kafka, redis, topics, windows, worker, {m.name: m for m in models})


# -- reading and reporting ------------------------------------------------------------

_SECTIONS = ("kafka", "redis", "topics", "windows", "worker", "models")
_WINDOWS_KEYS = ("size", "allowed_lateness", "idle_timeout", "retention", "history")
_WORKER_KEYS = (
    "group_id",
    "batch_size",
    "poll_timeout",
    "flush_interval",
    "max_message_bytes",
    "max_categories",
)
_MODEL_KEYS = ("prediction", "latency_slo_ms", "confidence_threshold", "features", "drift")
_NO_MODELS = (
    "no model declared; add at least one table such as [models.churn] (it may be empty: "
    "features are then inferred from the registered baseline)"
)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_PREFIX = re.compile(r"[A-Za-z0-9_.-]+")
_ANY = re.compile(r"(?s).+")


def _key(*parts: str) -> str:
    """A dotted key as TOML spells it: ``models."churn.v2".features``."""
    return ".".join(p if _BARE_KEY.fullmatch(p) else json.dumps(p) for p in parts)


def _show(value: object) -> str:
    """A value as TOML would spell it, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return "a table" if isinstance(value, Mapping) else repr(value)


def _suggest(name: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1)
    return f'; did you mean "{close[0]}"?' if close else ""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: object) -> bool:
    return _is_number(value) and math.isfinite(cast(float, value))


class _Table:
    """A table of the document at a dotted path; reads report problems to ``errors``."""

    def __init__(
        self,
        raw: Any,
        parts: tuple[str, ...],
        errors: list[str],
        allowed: Iterable[str] | None = None,
    ) -> None:
        self.parts, self.errors, self.ok = parts, errors, True
        if raw is not None and not isinstance(raw, Mapping):
            self.error(None, f"expected a table, got {_show(raw)}")
            self.ok = False
        self.data: dict[str, Any] = {}
        for name, value in (raw if isinstance(raw, Mapping) else {}).items():
            if not isinstance(name, str) or not name:
                self.error(None, f"keys must be non-empty strings, got {_show(name)}")
            elif allowed is not None and name not in allowed:
                listed = ", ".join(allowed)
                self.error(name, f"unknown key; allowed: {listed}{_suggest(name, allowed)}")
            else:
                self.data[name] = value

    def key(self, *names: str) -> str:
        return _key(*self.parts, *names)

    def error(self, name: str | tuple[str, ...] | None, problem: str) -> None:
        names = () if name is None else (name,) if isinstance(name, str) else name
        self.errors.append(f"{self.key(*names)}: {problem}")

    def sub(self, name: str, allowed: Iterable[str] | None = None) -> _Table:
        allowed = None if allowed is None else tuple(allowed)
        return _Table(self.data.get(name), (*self.parts, name), self.errors, allowed)

    def get(self, name: str, default: Any, ok: Callable[[Any], bool], expected: str) -> Any:
        value = self.data.get(name)
        if value is None:
            return default
        if not ok(value):
            self.error(name, f"expected {expected}, got {_show(value)}")
            return default
        return value

    def string(
        self, name: str, default: str, pattern: re.Pattern[str] = _ANY, expected: str = ""
    ) -> str:
        def ok(v: object) -> bool:
            return isinstance(v, str) and bool(pattern.fullmatch(v))

        return cast(str, self.get(name, default, ok, expected or "a non-empty string"))

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        def ok(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= minimum

        return cast(int, self.get(name, default, ok, f"an integer ≥ {minimum}"))

    def duration(
        self, name: str, default: float, minimum: float = 0.0, strict: bool = True
    ) -> float:
        if self.data.get(name) is None:
            return default
        try:
            seconds = parse_duration(self.data[name], self.key(name))
        except ConfigError as exc:
            self.errors.append(str(exc))
            return default
        if seconds < minimum or (strict and seconds <= minimum):
            bound = f"{'longer than' if strict else 'at least'} {format_duration(minimum)}"
            self.error(name, f"must be {bound}, got {_show(self.data[name])}")
            return default
        return seconds


# -- sections ---------------------------------------------------------------------------


def _parse_redis(t: _Table, env: Mapping[str, str]) -> RedisSettings:
    cluster = t.get("cluster", False, lambda v: isinstance(v, bool), "true or false")
    prefix = t.string("prefix", "dl", _PREFIX, "a non-empty string of [A-Za-z0-9_.-]")
    url, key = t.data.get("url"), t.key("url")
    if url is None:
        url, key = env.get("REDIS_URL") or RedisSettings.url, f"{key} (from $REDIS_URL)"
    problem = _redis_url_problem(url, cluster) if isinstance(url, str) else "expected a URL"
    if problem:
        t.errors.append(
            f"{key}: {problem}, got {_show(_mask_url(url) if isinstance(url, str) else url)}"
        )
    return RedisSettings(url if isinstance(url, str) else RedisSettings.url, prefix, cluster)


def _redis_url_problem(url: str, cluster: bool) -> str | None:
    try:
        parts = urlsplit(url)
        db, _ = parts.path.strip("/"), parts.port  # the port raises ValueError when bad
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("redis", "rediss", "unix"):
        return "expected a redis://, rediss:// or unix:// URL"
    if parts.scheme == "unix":
        if cluster:
            return "redis.cluster = true needs a redis:// or rediss:// URL, not unix://"
        return None if parts.path else "expected unix:///path/to/redis.sock"
    if not parts.hostname:
        return f"expected {parts.scheme}://host[:port][/db]"
    if db and not db.isdigit():
        return "the path must be a database number, as in redis://host:6379/0"
    return "Redis Cluster has database 0 only" if cluster and db not in ("", "0") else None


def _parse_topics(t: _Table) -> Topics:
    expected = "a Kafka topic name: 1 to 249 of [A-Za-z0-9._-], not . or .."
    values: dict[str, str] = {}
    for name in t.data:
        value = t.string(name, getattr(Topics, name), _TOPIC, expected)
        if value in (".", ".."):
            t.error(name, f"expected {expected}, got {_show(value)}")
        values[name] = value
    topics = Topics(**values)
    seen: dict[str, str] = {}
    for name, value in dataclasses.asdict(topics).items():
        if value in seen:
            t.error(
                name, f"{_show(value)} is also topics.{seen[value]}; the five topics must differ"
            )
        seen.setdefault(value, name)
    return topics


def _parse_windows(t: _Table) -> Windows:
    d = Windows()
    size = t.duration("size", d.size_s, minimum=1.0, strict=False)
    lateness = t.duration("allowed_lateness", d.allowed_lateness_s, strict=False)
    idle = t.duration("idle_timeout", d.idle_timeout_s)
    retention = t.duration("retention", d.retention_s)
    if retention <= size + lateness:
        t.error(
            "retention",
            f"must be longer than windows.size + windows.allowed_lateness "
            f"({format_duration(size + lateness)}) so that a window's state outlives its "
            f"close, got {_show(t.data.get('retention', format_duration(retention)))}",
        )
    return Windows(size, lateness, idle, retention, t.integer("history", d.history))


def _parse_worker(t: _Table) -> WorkerSettings:
    d = WorkerSettings()
    return WorkerSettings(
        group_id=t.string("group_id", d.group_id),
        batch_size=t.integer("batch_size", d.batch_size),
        poll_timeout_s=t.duration("poll_timeout", d.poll_timeout_s),
        flush_interval_s=t.duration("flush_interval", d.flush_interval_s),
        max_message_bytes=t.integer("max_message_bytes", d.max_message_bytes),
        max_categories=t.integer("max_categories", d.max_categories),
    )


# -- models ------------------------------------------------------------------------------


def _applies(method: str, kind: str) -> bool:
    spec = METHODS[method]
    return spec.numeric if kind == "numeric" else spec.categorical


def _not_applicable(method: str, kind: str, feature: str) -> str:
    fits = ", ".join(m for m in METHODS if _applies(m, kind))
    return (
        f"drift method {_show(method)} does not apply to {kind} feature {_show(feature)}; "
        f"methods for {kind} features: {fits}"
    )


def _parse_model(t: _Table) -> ModelSpec:
    name = t.parts[-1]
    if not _NAME.fullmatch(name):
        t.error(None, f"a model name is 1 to 64 of [A-Za-z0-9_.-], got {_show(name)}")
    prediction = t.get(
        "prediction",
        None,
        lambda v: v in ("numeric", "categorical"),
        '"numeric" or "categorical" (omit it to use the baseline\'s)',
    )
    latency = t.get(
        "latency_slo_ms",
        None,
        lambda v: _is_number(v) and 0 < v < math.inf,
        "a number of milliseconds > 0",
    )
    confidence = t.get(
        "confidence_threshold", 0.5, lambda v: _is_number(v) and 0 <= v <= 1, "a number from 0 to 1"
    )
    kinds = t.sub("features").data
    for feature, kind in kinds.items():
        if kind not in FEATURE_KINDS:
            hint = f"; drift settings go in [{t.key('drift')}]" if isinstance(kind, Mapping) else ""
            listed = ", ".join(f'"{k}"' for k in FEATURE_KINDS)
            t.error(("features", feature), f"expected one of {listed}, got {_show(kind)}{hint}")
    entries = _parse_drift(t.sub("drift"), kinds)
    dm, dt = entries.pop("default", (None, None))
    features = tuple(
        FeatureSpec(f, k, *entries.get(f, (None, None)))
        for f, k in kinds.items()
        if k in FEATURE_KINDS
    )
    overrides = () if kinds else tuple((f, m, th) for f, (m, th) in entries.items())
    latency = None if latency is None else float(latency)
    return ModelSpec(name, features, prediction, latency, float(confidence), dm, dt, overrides)


def _parse_drift(t: _Table, kinds: Mapping[str, str]) -> dict[str, tuple[str | None, float | None]]:
    """Per-feature ``(method, threshold)`` and ``"default"``; invalid values become ``None``."""
    entries: dict[str, tuple[str | None, float | None]] = {}
    invalid: set[str] = set()  # a rejected method: no follow-up errors about its threshold
    for feature in t.data:
        if kinds and feature != "default" and feature not in kinds:
            declared = ", ".join(kinds)
            suggestion = _suggest(feature, [*kinds, "default"])
            t.error(feature, f"not a declared feature ({declared}) nor default{suggestion}")
            continue
        e = t.sub(feature, ("method", "threshold"))
        method = e.data.get("method")
        if method is not None and method not in METHODS:
            hint = _suggest(method, METHODS) if isinstance(method, str) else ""
            known = ", ".join(METHODS)
            e.error("method", f"unknown drift method {_show(method)}; known: {known}{hint}")
            method = None
            invalid.add(feature)
        threshold = e.get("threshold", None, _is_finite, "a finite number")
        entries[feature] = (method, None if threshold is None else float(threshold))
    dm = entries.get("default", (None, None))[0]
    for feature, (method, threshold) in entries.items():
        kind = kinds.get(feature)
        if method is not None and kind in FEATURE_KINDS and not _applies(method, kind):
            t.error((feature, "method"), _not_applicable(method, kind, feature))
        used = method or (dm if feature != "default" else None)
        problem = None if threshold is None else _threshold_problem(used, threshold)
        if problem and feature not in invalid:
            t.error((feature, "threshold"), problem)
    for feature, kind in kinds.items():
        own = entries.get(feature, (None, None))[0]
        if dm and own is None and kind in FEATURE_KINDS and not _applies(dm, kind):
            problem = _not_applicable(dm, kind, feature)
            t.error(("default", "method"), f"{problem} (or give it its own method)")
    return entries


def _threshold_problem(method: str | None, threshold: float) -> str | None:
    if method is None:
        return (
            f"{threshold:g} needs a method (in this entry or in drift.default): the default "
            "method, and so what a threshold means, depends on the reference size"
        )
    if METHODS[method].is_test and not 0 < threshold < 1:
        return f"{method} is a test: its threshold is a p-value level in (0, 1), got {threshold:g}"
    if not METHODS[method].is_test and threshold <= 0:
        return f"{method} is a distance: its threshold must be > 0, got {threshold:g}"
    return None


# -- Kafka --------------------------------------------------------------------------------

_CALLBACKS = {
    "error_cb",
    "throttle_cb",
    "stats_cb",
    "oauth_cb",
    "logger",
    "on_commit",
    "on_delivery",
}
_RESERVED = {
    "group.id": "set worker.group_id instead",
    "metadata.broker.list": 'use "bootstrap.servers"',
}
_NOT_PROBED = {"bootstrap.servers", "plugin.library.paths"}  # would connect / load code


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Scopes from librdkafka's CONFIGURATION.md ("C" and "P" rows); "*" properties go to both.
_CONSUMER_ONLY = _words(
    "group.id group.instance.id partition.assignment.strategy session.timeout.ms "
    "heartbeat.interval.ms group.protocol.type group.protocol group.remote.assignor "
    "coordinator.query.interval.ms max.poll.interval.ms enable.auto.commit "
    "auto.commit.interval.ms enable.auto.offset.store queued.min.messages "
    "queued.max.messages.kbytes fetch.wait.max.ms fetch.queue.backoff.ms "
    "fetch.message.max.bytes max.partition.fetch.bytes fetch.max.bytes fetch.min.bytes "
    "fetch.error.backoff.ms offset.store.method isolation.level enable.partition.eof "
    "check.crcs auto.offset.reset auto.commit.enable offset.store.path "
    "offset.store.sync.interval.ms consume.callback.max.messages on_commit"
)
_PRODUCER_ONLY = _words(
    "transactional.id transaction.timeout.ms enable.idempotence enable.gapless.guarantee "
    "queue.buffering.max.messages queue.buffering.max.kbytes queue.buffering.max.ms linger.ms "
    "message.send.max.retries retries queue.buffering.backpressure.threshold "
    "compression.codec compression.type compression.level batch.num.messages batch.size "
    "delivery.report.only.error sticky.partitioning.linger.ms request.required.acks acks "
    "request.timeout.ms message.timeout.ms delivery.timeout.ms queuing.strategy partitioner "
    "on_delivery"
)
_COMMON = _words(
    "bootstrap.servers client.id client.rack security.protocol sasl.mechanism sasl.username "
    "sasl.password ssl.ca.location ssl.certificate.location ssl.key.location ssl.key.password "
    "ssl.endpoint.identification.algorithm enable.ssl.certificate.verification "
    "socket.timeout.ms message.max.bytes statistics.interval.ms debug retry.backoff.ms "
    "reconnect.backoff.ms socket.keepalive.enable topic.metadata.refresh.interval.ms"
)
_PRODUCER_DEFAULTS = (
    (("linger.ms", "queue.buffering.max.ms"), "20"),
    (("compression.type", "compression.codec"), "lz4"),
)
_PROBE_LOG = logging.getLogger("driftline.config.librdkafka")
_PROBE_LOG.addHandler(logging.NullHandler())
_PROBE_LOG.propagate = False


def _is_secret(name: str) -> bool:
    return any(
        s in name for s in ("password", "secret", "passphrase", ".pem", "oauthbearer.config")
    )


def _mask_url(url: str) -> str:
    """``redis://user:secret@host`` → ``redis://user:***@host``."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _client_value(value: Any) -> Any:
    """A librdkafka string for a scalar; callables and other objects unchanged."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    return value


def _kafka_string(value: Any) -> str | None:
    """A librdkafka string for a scalar or a list of scalars (comma-joined), else ``None``."""
    items = [_client_value(v) for v in value] if isinstance(value, list) else [_client_value(value)]
    return ",".join(items) if all(isinstance(i, str) for i in items) else None


def _flatten(t: _Table, prefix: str, out: dict[str, Any]) -> None:
    """Unquoted dotted TOML keys: ``{"bootstrap": {"servers": x}}`` → ``"bootstrap.servers"``."""
    for name, value in t.data.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            _flatten(_Table(value, t.parts, t.errors), f"{prefix}{name}.", out)
        elif f"{prefix}{name}" in out:
            t.error(f"{prefix}{name}", "set twice (quoted and as dotted keys)")
        else:
            out[f"{prefix}{name}"] = value


def _parse_kafka(t: _Table, env: Mapping[str, str]) -> dict[str, str]:
    flat: dict[str, Any] = {}
    _flatten(t, "", flat)
    conf: dict[str, str] = {}
    shown = {k: "***" if _is_secret(k) else _show(v) for k, v in flat.items()}
    for name, value in flat.items():
        text = _kafka_string(value)
        if name in _CALLBACKS:
            t.error(
                name, "a Python callback; pass it to consumer_conf() or producer_conf() in code"
            )
        elif name in _RESERVED:
            t.error(name, f"{_RESERVED[name]}, got {shown[name]}")
        elif text is None:
            t.error(
                name, f"expected a string, number, boolean or a list of them, got {shown[name]}"
            )
        elif name == "enable.auto.commit" and text != "false":
            t.error(name, f"must stay false (offsets are stored in Redis), got {shown[name]}")
        else:
            conf[name] = text
    servers, key = flat.get("bootstrap.servers"), t.key("bootstrap.servers")
    if servers is None and env.get("KAFKA_BOOTSTRAP"):
        servers = conf["bootstrap.servers"] = env["KAFKA_BOOTSTRAP"]
        key = f"{key} (from $KAFKA_BOOTSTRAP)"
    if servers is None:
        t.errors.append(f"{key}: required; set it in [kafka] or in $KAFKA_BOOTSTRAP")
    elif not conf.get("bootstrap.servers", "x").strip(" ,"):
        t.errors.append(f'{key}: expected "host:port[,host:port...]", got {_show(servers)}')
    for name, text in conf.items():
        complaint = None if name in _NOT_PROBED else _librdkafka_complaint(name, text)
        if complaint and complaint.startswith("No such configuration property"):
            # No value shown: it may be a secret under a misspelt name.
            known = sorted(_CONSUMER_ONLY | _PRODUCER_ONLY | _COMMON)
            t.error(name, f"not a librdkafka property{_suggest(name, known)}")
        elif complaint:
            t.error(name, f"{complaint}, got {shown[name]}")
    return conf


@functools.lru_cache(maxsize=512)
def _librdkafka_complaint(name: str, value: str) -> str | None:
    """What librdkafka says about one property, or ``None`` if a producer or consumer takes it.

    Builds and drops a client without ``bootstrap.servers``, so nothing
    connects; errors that depend on other properties or on the machine
    (``Failed to create …``) are left to the worker's start.
    """
    from confluent_kafka import Consumer, KafkaException, Producer

    complaints: list[str] = []
    # Silent, and never GSSAPI: "security.protocol" = "SASL_*" alone would run kinit there.
    base = {"logger": _PROBE_LOG, "log_level": "0", "sasl.mechanism": "PLAIN"}
    for client, extra in ((Producer, {}), (Consumer, {"group.id": "driftline-config-check"})):
        try:
            handle = client({**base, **extra, name: value})
        except KafkaException as exc:
            text = str(exc.args[0].str()).strip()
            if text.startswith("Failed to create"):
                return None
            complaints.append(text)
        except (TypeError, ValueError) as exc:
            complaints.append(str(exc))
        else:
            if client is Consumer:
                handle.close()
            return None
    return sorted(complaints, key=lambda c: c.startswith("No such configuration property"))[0]

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

Durations are seconds or strings such as ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``,
``"7d"``, ``"1h30m"``. Every key, its default and its meaning: ``stream/example.toml``
and the README's configuration table; the ``[kafka]`` rules: :mod:`stream.kafka_conf`.

Drift methods are the names in :data:`sketches.METHODS`; without one, a feature
gets :func:`sketches.default_method` for its kind and reference size. A
threshold without a method (in the entry or in ``drift.default``) is an error,
since the default method, and so the threshold's meaning, depends on the
reference size. Unquoted dotted keys in ``[kafka]`` (``bootstrap.servers = …``)
mean the same as quoted ones.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from alerting.routes import Route, parse_routes
from sketches.registry import METHODS, default_method
from stream import kafka_conf
from stream.alert_config import ALERT_KEYS, AlertSettings, parse_alerts
from stream.config_table import Table, is_finite, is_number, show, suggest
from stream.config_table import key as dotted_key
from stream.durations import format_duration, parse_duration
from stream.exceptions import ConfigError
from stream.label_config import LABEL_KEYS, LabelSpec, parse_labels

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
        latency_slo_ms: p99 latency above this fires ``latency_p99``.
        latency_p95_slo_ms: p95 latency above this fires ``latency_p95``.
        confidence_threshold: the share of predictions whose top probability is
            below this is reported.
        drift_method: model-wide drift method (``[models.X.drift] default``).
        drift_threshold: threshold of ``drift_method``.
        drift_overrides: ``(feature, method, threshold)`` for features that are
            not declared (``features`` empty); see :meth:`drift_for`.
        labels: how delayed ground truth is joined (:mod:`stream.label_config`).
    """

    name: str
    features: tuple[FeatureSpec, ...] = ()
    prediction: PredictionKind | None = None
    latency_slo_ms: float | None = None
    confidence_threshold: float = 0.5
    drift_method: str | None = None
    drift_threshold: float | None = None
    drift_overrides: tuple[tuple[str, str | None, float | None], ...] = ()
    alerts: AlertSettings | None = None  # [models.<m>.alerts]; None: [alerts]
    latency_p95_slo_ms: float | None = None
    labels: LabelSpec | None = None  # [models.<m>.labels]; None: labels are not joined

    @property
    def latency_slos(self) -> dict[str, float]:
        """``{"p95": ms, "p99": ms}`` for the SLOs that are set."""
        slos = {"p95": self.latency_p95_slo_ms, "p99": self.latency_slo_ms}
        return {q: v for q, v in slos.items() if v is not None}

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
        key = dotted_key("models", self.name, "drift", name if method else "default", "method")
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
    label_wait_s: float = 60.0  # longest a label waits for its prediction to be stored


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
    alerts: AlertSettings = dataclasses.field(default_factory=AlertSettings)
    routes: tuple[Route, ...] = ()  # [[routes]] (alerting.routes); () means one log route

    def alerts_for(self, model: str) -> AlertSettings:
        """The model's ``[models.<m>.alerts]`` settings, else ``[alerts]``."""
        spec = self.models.get(model)
        return spec.alerts if spec is not None and spec.alerts is not None else self.alerts

    def __post_init__(self) -> None:
        object.__setattr__(self, "kafka", MappingProxyType(dict(self.kafka)))
        object.__setattr__(self, "models", MappingProxyType(dict(self.models)))

    def __repr__(self) -> str:
        kafka = {k: "***" if kafka_conf.is_secret(k) else v for k, v in self.kafka.items()}
        return (
            f"Config(kafka={kafka!r}, redis={self.redis!r}, topics={self.topics!r}, "
            f"windows={self.windows!r}, worker={self.worker!r}, models={dict(self.models)!r})"
        )

    def consumer_conf(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka consumer settings: ``[kafka]`` without producer-only properties.

        Adds ``group.id`` (``worker.group_id``), ``enable.auto.commit=false`` (offsets
        live in Redis with the state), and ``auto.offset.reset=earliest`` and
        ``fetch.queue.backoff.ms=50`` unless ``[kafka]`` sets them. ``overrides`` win;
        dotted names go in a dict, e.g.
        ``cfg.consumer_conf(**{"group.id": "alerts"}, error_cb=on_error)``.
        """
        return kafka_conf.consumer_conf(self.kafka, self.worker.group_id, overrides)

    def producer_conf(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka producer settings: ``[kafka]`` without consumer-only properties.

        Adds ``linger.ms=20`` and ``compression.type=lz4`` unless ``[kafka]`` or
        ``overrides`` set them (or their aliases). ``overrides`` win.
        """
        return kafka_conf.producer_conf(self.kafka, overrides)

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
        raise ConfigError(f"{source}: expected a table of settings, got {show(data)}")
    env = os.environ if env is None else env
    errors: list[str] = []
    root = Table(data, (), errors, _SECTIONS)
    kafka = _parse_kafka(root.sub("kafka"), env)
    redis = _parse_redis(root.sub("redis", ("url", "prefix", "cluster")), env)
    topics = _parse_topics(root.sub("topics", [f.name for f in dataclasses.fields(Topics)]))
    windows = _parse_windows(root.sub("windows", _WINDOWS_KEYS))
    worker = _parse_worker(root.sub("worker", _WORKER_KEYS))
    alerts = parse_alerts(root.sub("alerts", ALERT_KEYS), AlertSettings())
    raw_models = root.sub("models")
    if not raw_models.data and raw_models.ok:
        root.error("models", _NO_MODELS)
    models = [_parse_model(raw_models.sub(name, _MODEL_KEYS), alerts) for name in raw_models.data]
    routes = parse_routes(root.data.get("routes"), errors)
    if errors:
        head = f"invalid configuration in {source} ({len(errors)} error{'s' * (len(errors) > 1)}):"
        raise ConfigError("\n  ".join([head, *errors]))
    by_name = {m.name: m for m in models}
    return Config(kafka, redis, topics, windows, worker, by_name, alerts, routes)


# -- reading and reporting ------------------------------------------------------------

_SECTIONS = ("kafka", "redis", "topics", "windows", "worker", "alerts", "models", "routes")
_WINDOWS_KEYS = ("size", "allowed_lateness", "idle_timeout", "retention", "history")
_WORKER_KEYS = (
    "group_id",
    "batch_size",
    "poll_timeout",
    "flush_interval",
    "max_message_bytes",
    "max_categories",
    "label_wait",
)
_MODEL_KEYS = (
    "prediction",
    "latency_slo_ms",
    "latency_p95_slo_ms",
    "confidence_threshold",
    "features",
    "drift",
    "alerts",
    "labels",
)
_NO_MODELS = (
    "no model declared; add at least one table such as [models.churn] (it may be empty: "
    "features are then inferred from the registered baseline)"
)
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_PREFIX = re.compile(r"[A-Za-z0-9_.-]+")


# -- sections ---------------------------------------------------------------------------


def _mask_url(url: str) -> str:
    """``redis://user:secret@host`` → ``redis://user:***@host``."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _parse_redis(t: Table, env: Mapping[str, str]) -> RedisSettings:
    cluster = t.get("cluster", False, lambda v: isinstance(v, bool), "true or false")
    prefix = t.string("prefix", "dl", _PREFIX, "a non-empty string of [A-Za-z0-9_.-]")
    url, key = t.data.get("url"), t.key("url")
    if url is None:
        url, key = env.get("REDIS_URL") or RedisSettings.url, f"{key} (from $REDIS_URL)"
    problem = _redis_url_problem(url, cluster) if isinstance(url, str) else "expected a URL"
    if problem:
        t.errors.append(
            f"{key}: {problem}, got {show(_mask_url(url) if isinstance(url, str) else url)}"
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


def _parse_topics(t: Table) -> Topics:
    expected = "a Kafka topic name: 1 to 249 of [A-Za-z0-9._-], not . or .."
    values: dict[str, str] = {}
    for name in t.data:
        value = t.string(name, getattr(Topics, name), _TOPIC, expected)
        if value in (".", ".."):
            t.error(name, f"expected {expected}, got {show(value)}")
        values[name] = value
    topics = Topics(**values)
    seen: dict[str, str] = {}
    for name, value in dataclasses.asdict(topics).items():
        if value in seen:
            t.error(
                name, f"{show(value)} is also topics.{seen[value]}; the five topics must differ"
            )
        seen.setdefault(value, name)
    return topics


def _parse_windows(t: Table) -> Windows:
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
            f"close, got {show(t.data.get('retention', format_duration(retention)))}",
        )
    return Windows(size, lateness, idle, retention, t.integer("history", d.history))


def _parse_worker(t: Table) -> WorkerSettings:
    d = WorkerSettings()
    return WorkerSettings(
        group_id=t.string("group_id", d.group_id),
        batch_size=t.integer("batch_size", d.batch_size),
        poll_timeout_s=t.duration("poll_timeout", d.poll_timeout_s),
        flush_interval_s=t.duration("flush_interval", d.flush_interval_s),
        max_message_bytes=t.integer("max_message_bytes", d.max_message_bytes),
        max_categories=t.integer("max_categories", d.max_categories),
        label_wait_s=t.duration("label_wait", d.label_wait_s, strict=False),
    )


# -- models ------------------------------------------------------------------------------


def _applies(method: str, kind: str) -> bool:
    spec = METHODS[method]
    return spec.numeric if kind == "numeric" else spec.categorical


def _not_applicable(method: str, kind: str, feature: str) -> str:
    fits = ", ".join(m for m in METHODS if _applies(m, kind))
    return (
        f"drift method {show(method)} does not apply to {kind} feature {show(feature)}; "
        f"methods for {kind} features: {fits}"
    )


def _parse_model(t: Table, alerts: AlertSettings) -> ModelSpec:
    name = t.parts[-1]
    if not _NAME.fullmatch(name):
        t.error(None, f"a model name is 1 to 64 of [A-Za-z0-9_.-], got {show(name)}")
    prediction = t.get(
        "prediction",
        None,
        lambda v: v in ("numeric", "categorical"),
        '"numeric" or "categorical" (omit it to use the baseline\'s)',
    )
    latency, p95 = (
        t.get(
            name, None, lambda v: is_number(v) and 0 < v < math.inf, "a number of milliseconds > 0"
        )
        for name in ("latency_slo_ms", "latency_p95_slo_ms")
    )
    confidence = t.get(
        "confidence_threshold", 0.5, lambda v: is_number(v) and 0 <= v <= 1, "a number from 0 to 1"
    )
    kinds = t.sub("features").data
    for feature, kind in kinds.items():
        if kind not in FEATURE_KINDS:
            hint = f"; drift settings go in [{t.key('drift')}]" if isinstance(kind, Mapping) else ""
            listed = ", ".join(f'"{k}"' for k in FEATURE_KINDS)
            t.error(("features", feature), f"expected one of {listed}, got {show(kind)}{hint}")
    entries = _parse_drift(t.sub("drift"), kinds)
    dm, dt = entries.pop("default", (None, None))
    features = tuple(
        FeatureSpec(f, k, *entries.get(f, (None, None)))
        for f, k in kinds.items()
        if k in FEATURE_KINDS
    )
    overrides = () if kinds else tuple((f, m, th) for f, (m, th) in entries.items())
    latency = None if latency is None else float(latency)
    declared = [f for f, k in kinds.items() if k in FEATURE_KINDS]
    own = (
        parse_alerts(t.sub("alerts", ALERT_KEYS), alerts, declared) if "alerts" in t.data else None
    )
    return ModelSpec(
        name,
        features,
        prediction,
        latency,
        float(confidence),
        dm,
        dt,
        overrides,
        own,
        None if p95 is None else float(p95),
        parse_labels(t.sub("labels", LABEL_KEYS)) if "labels" in t.data else None,
    )


def _parse_drift(t: Table, kinds: Mapping[str, str]) -> dict[str, tuple[str | None, float | None]]:
    """Per-feature ``(method, threshold)`` and ``"default"``; invalid values become ``None``."""
    entries: dict[str, tuple[str | None, float | None]] = {}
    invalid: set[str] = set()  # a rejected method: no follow-up errors about its threshold
    for feature in t.data:
        if kinds and feature != "default" and feature not in kinds:
            declared = ", ".join(kinds)
            suggestion = suggest(feature, [*kinds, "default"])
            t.error(feature, f"not a declared feature ({declared}) nor default{suggestion}")
            continue
        e = t.sub(feature, ("method", "threshold"))
        method = e.data.get("method")
        if method is not None and method not in METHODS:
            hint = suggest(method, METHODS) if isinstance(method, str) else ""
            known = ", ".join(METHODS)
            e.error("method", f"unknown drift method {show(method)}; known: {known}{hint}")
            method = None
            invalid.add(feature)
        threshold = e.get("threshold", None, is_finite, "a finite number")
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


def _flatten(t: Table, prefix: str, out: dict[str, Any]) -> None:
    """Unquoted dotted TOML keys: ``{"bootstrap": {"servers": x}}`` → ``"bootstrap.servers"``."""
    for name, value in t.data.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            _flatten(Table(value, t.parts, t.errors), f"{prefix}{name}.", out)
        elif f"{prefix}{name}" in out:
            t.error(f"{prefix}{name}", "set twice (quoted and as dotted keys)")
        else:
            out[f"{prefix}{name}"] = value


def _parse_kafka(t: Table, env: Mapping[str, str]) -> dict[str, str]:
    flat: dict[str, Any] = {}
    _flatten(t, "", flat)
    shown = {k: "***" if kafka_conf.is_secret(k) else show(v) for k, v in flat.items()}
    conf, problems = kafka_conf.client_strings(flat, shown)
    for name, problem in problems:
        t.error(name, problem)
    servers, key = flat.get("bootstrap.servers"), t.key("bootstrap.servers")
    if servers is None and env.get("KAFKA_BOOTSTRAP"):
        servers = conf["bootstrap.servers"] = env["KAFKA_BOOTSTRAP"]
        key = f"{key} (from $KAFKA_BOOTSTRAP)"
    if servers is None:
        t.errors.append(f"{key}: required; set it in [kafka] or in $KAFKA_BOOTSTRAP")
    elif not conf.get("bootstrap.servers", "x").strip(" ,"):
        t.errors.append(f'{key}: expected "host:port[,host:port...]", got {show(servers)}')
    for name, problem in kafka_conf.librdkafka_problems(conf, shown):
        t.error(name, problem)
    return conf

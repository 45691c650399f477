"""docker-compose.yml, checked as a file (no Docker engine here): its services hang
together and its driftline configuration is valid."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from stream.config import parse_config

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
CONFIG_PATH = "/etc/driftline/driftline.toml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def test_services_depend_on_declared_services_volumes_and_configs(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "redis", "topics", "worker", "alert-router", "cli"} <= set(services)
    for name, svc in services.items():
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes") or []:
            source = vol.split(":")[0]
            if not source.startswith("."):
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"
        for cfg in svc.get("configs") or []:
            assert cfg["source"] in compose["configs"]
    # the workers and the router start after the topics exist and Redis answers
    for name in ("worker", "alert-router"):
        deps = services[name]["depends_on"]
        assert deps["topics"]["condition"] == "service_completed_successfully"
        assert deps["redis"]["condition"] == "service_healthy"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["worker"]["deploy"]["replicas"] >= 2


def test_embedded_configuration_is_valid_and_matches_the_services(compose: dict[str, Any]) -> None:
    text = compose["configs"]["driftline"]["content"]
    cfg = parse_config(tomllib.loads(text), source="docker-compose.yml", env={})
    services = compose["services"]
    # the broker and Redis the configuration names are the compose services
    host, port = cfg.kafka["bootstrap.servers"].split(":")
    kafka_env = services["kafka"]["environment"]
    assert f"INTERNAL://{host}:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert re.match(r"redis://redis:6379/", cfg.redis.url)
    # every topic of the configuration is created by the topics job, none auto-created
    created = re.findall(r"driftline\.\w+", " ".join(services["topics"]["command"]))
    t = cfg.topics
    assert set(created) == {t.predictions, t.labels, t.dlq, t.windows, t.alerts}
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # the worker and the router run driftline on the mounted configuration
    for name, cmd in (
        ("worker", "driftline worker -c "),
        ("alert-router", "driftline alerts route -c "),
    ):
        svc = services[name]
        assert svc["configs"][0]["target"] == CONFIG_PATH
        assert f"{cmd}{CONFIG_PATH}" in svc["command"][-1]
    assert cfg.models["churn"].labels is not None  # labels are joined in production too

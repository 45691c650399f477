"""Synthetic data shared by the stream tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from stream.config import Config, parse_config
from tests.conftest import KAFKA_TEST_CONF


def churn_training(rng: np.random.Generator, n: int = 5000) -> dict[str, Any]:
    """A churn model's training table: age, income, plan and the label ``y``."""
    return {
        "age": rng.normal(40, 10, n),
        "income": rng.lognormal(10, 0.5, n),
        "plan": rng.choice(["basic", "pro", "team"], n, p=[0.6, 0.3, 0.1]).tolist(),
        "y": rng.integers(0, 2, n),
    }


def worker_config(
    bootstrap: str,
    redis_url: str,
    prefix: str,
    topics: dict[str, str],
    models: dict[str, Any],
    window: int,
    **worker: Any,
) -> Config:
    """A test worker's configuration: fast flushes and idle closes, 1 day retention."""
    return parse_config(
        {
            "kafka": {"bootstrap.servers": bootstrap, **KAFKA_TEST_CONF},
            "redis": {"url": redis_url, "prefix": prefix},
            "topics": topics,
            "windows": {
                "size": window,
                "allowed_lateness": 2,
                "idle_timeout": "3s",
                "retention": "1d",
            },
            "worker": {
                "group_id": f"g-{prefix}",
                "flush_interval": "200ms",
                "poll_timeout": "100ms",
                **worker,
            },
            "models": models,
        },
        env={},
    )

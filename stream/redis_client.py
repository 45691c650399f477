"""Connecting to Redis from a URL: ``redis://``, ``rediss://``, ``unix://``, or a cluster."""

from __future__ import annotations

from typing import Any

import redis

__all__ = ["connect"]


def connect(settings: Any, **kwargs: Any) -> Any:
    """A redis-py client for ``settings.url`` (``RedisCluster`` when ``settings.cluster``).

    Responses are bytes (``decode_responses=False``): sketch fields and
    category names are decoded by the code that reads them.
    """
    url: str = settings.url
    opts: dict[str, Any] = {"socket_timeout": 30, "health_check_interval": 30, **kwargs}
    if getattr(settings, "cluster", False):
        return redis.RedisCluster.from_url(url, **opts)
    return redis.Redis.from_url(url, **opts)

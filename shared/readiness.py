"""Where worker processes report their readiness, and how the API reads it (see worker/readiness.py).

One Redis key per pool process, ``echodiary:worker:<node name>:<pid>``, holding a JSON record:
name, state (``loading``, ``ready`` or ``failed``), models folder, device, since when (Unix time).
Its TTL is three heartbeats, so a process that is gone drops out of the list by itself.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from shared.settings import Settings

PREFIX = "echodiary:worker:"
LOADING, READY, FAILED = "loading", "ready", "failed"


def client(settings: Settings) -> redis.Redis:
    """The broker's Redis with short timeouts: a health check must answer even when it is down."""
    return redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)


def key(name: str) -> str:
    return f"{PREFIX}{name}"


def ttl_s(settings: Settings) -> int:
    return max(1, int(3 * settings.worker_ready_heartbeat_s + 0.999))


def read_all(settings: Settings, node: str | None = None) -> list[dict[str, Any]]:
    """The records of every live worker process (of one Celery node when ``node`` is given)."""
    redis_client = client(settings)
    keys = sorted(redis_client.scan_iter(key(f"{node}:*" if node else "*"), count=100))
    values = redis_client.mget(keys) if keys else []
    return [json.loads(value) for value in values if value]

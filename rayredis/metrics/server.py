"""Serving the collector over HTTP with prometheus_client."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from rayredis.metrics.collector import RedisCollector
from rayredis.store.client import ShardedRedis


def serve(store: ShardedRedis, port: int, host: str = "127.0.0.1") -> tuple[Any, Any]:
    """Serve ``/metrics`` for ``store``'s cluster on ``host:port`` in a background thread; returns
    prometheus_client's (server, thread). Only this cluster's families: no process or GC metrics
    of the exporter itself."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(store))
    return start_http_server(port, addr=host, registry=registry)

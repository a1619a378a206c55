"""``rayredis status``'s text, from node tables in a real redis-server: Ray's layout and units."""

from __future__ import annotations

from types import SimpleNamespace

import redis

from rayredis.cli.status import render
from rayredis.store import keys
from rayredis.store.tables import NodeInfo, NodeLoad
from tests.unit.conftest import REDIS_PASSWORD


def test_memory_in_human_units_node_resources_hidden_dead_nodes_are_failures(redis_port: int) -> None:
    client = redis.Redis(port=redis_port, password=REDIS_PASSWORD)
    client.flushdb()
    try:
        res = {"CPU": 2.0, "memory": 2.0 * 2**30, "node:10.0.0.1": 1.0}
        for nid, ip, state in (("a" * 32, "10.0.0.1", "ALIVE"), ("b" * 32, "10.0.0.2", "DEAD")):
            client.hset(keys.nodes_key(), nid, NodeInfo(nid, "x:1", ip, res, object_store_memory=2**20).to_json())
            client.hset(keys.node_state_key(), nid, state)
        client.hset(keys.node_load_key(), "a" * 32, NodeLoad(
            available={"CPU": 1.0, "memory": 2**30, "node:10.0.0.1": 1.0}, total=res).to_json())
        out = render(SimpleNamespace(primary=client))  # type: ignore[arg-type]
    finally:
        client.flushdb()
        client.close()
    lines = out.splitlines()
    failures = lines[lines.index("Recent failures:") + 1]
    assert failures == f" node_{'b' * 32}: NodeTerminated (ip: 10.0.0.2)"
    usage = lines[lines.index("Usage:") + 1:lines.index("Demands:")]
    assert " 1.0/2.0 CPU" in usage and " 1.00GiB/2.00GiB memory" in usage
    assert not [u for u in usage if "node:" in u]

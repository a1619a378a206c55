"""The metric families built from one table snapshot (sans-I/O)."""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from rayredis.metrics.families import METRICS, ShardSample, Snapshot, families, parse_commandstats
from rayredis.store.tables import NodeInfo, NodeLoad, NodeRecord


class _Fixed(Collector):
    def __init__(self, snap: Snapshot):
        self.snap = snap

    def collect(self):  # type: ignore[no-untyped-def]
        return families(self.snap)


def _node(nid: str, state: str, used: float, t: float) -> NodeRecord:
    info = NodeInfo(node_id=nid, address="a", node_ip="1.2.3.4", resources={"CPU": 2.0})
    load = NodeLoad(available={"CPU": 2.0 - used, "node:1.2.3.4": 1.0}, total={"CPU": 2.0, "node:1.2.3.4": 1.0},
                    object_store_used=10, object_store_capacity=100, time=t)
    return NodeRecord(node_id=nid, state=state, info=info, load=load, heartbeats=7)


def test_a_snapshot_exposes_every_family_with_its_samples() -> None:
    snap = Snapshot(now=100.0, task_states=Counter(FINISHED=5, PENDING=1), tasks_retried=1,
                    actor_states=Counter(ALIVE=2, RESTARTING=1), actor_restarts=3,
                    nodes=[_node("n1", "ALIVE", 1.0, 99.5), _node("n2", "DEAD", 0.0, 50.0)], gcs_lease_held=True,
                    shards=[ShardSample("h:1", "primary+data", True, 0.001, 0.002, {"evalsha": (4, 2_000_000)}),
                            ShardSample("h:2", "data", False)])
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Fixed(snap))
    text = generate_latest(reg).decode()
    for name, (kind, _, _) in METRICS.items():
        # (prometheus_client names a counter's TYPE line with or without _total, by version)
        assert f"# TYPE rayredis_{name} {kind}" in text or f"# TYPE rayredis_{name}_total {kind}" in text
    lines = set(text.splitlines())
    assert 'rayredis_tasks{State="FINISHED"} 5.0' in lines
    assert 'rayredis_actors{State="RESTARTING"} 1.0' in lines and "rayredis_actor_restarts_total 3.0" in lines
    assert "rayredis_node_deaths_total 1.0" in lines and 'rayredis_nodes{State="ALIVE"} 1.0' in lines
    assert 'rayredis_resources{Name="CPU",NodeId="n1",State="USED"} 1.0' in lines
    assert not any("node:1.2.3.4" in line for line in lines)  # (Ray hides the node: resources too)
    assert 'rayredis_node_heartbeat_age_seconds{NodeId="n1"} 0.5' in lines
    assert not any('heartbeat_age_seconds{NodeId="n2"}' in line for line in lines)  # a dead node has no age
    assert 'rayredis_object_store_available_memory{NodeId="n1"} 90.0' in lines
    assert 'rayredis_redis_command_seconds_total{command="evalsha",role="primary+data",shard="h:1"} 2.0' in lines
    assert 'rayredis_redis_up{role="data",shard="h:2"} 0.0' in lines
    assert not any('ping_seconds{role="data"' in line for line in lines)


def test_commandstats_parsing() -> None:
    info = {"cmdstat_get": {"calls": 3, "usec": 30, "usec_per_call": 10.0}, "used_memory": 5}
    assert parse_commandstats(info) == {"get": (3, 30)}

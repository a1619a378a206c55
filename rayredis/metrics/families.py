"""The Prometheus metric families of a cluster, built from one snapshot of its Redis tables (sans-I/O).

Names follow Ray's (``ray_tasks``, ``ray_actors``, ``ray_resources``, ``ray_object_store_memory``,
...) under the ``rayredis_`` prefix; the rest are this project's own (Redis shards, pub/sub lag,
heartbeats, failures). :data:`METRICS` lists every family with its help text (the docs' table).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from rayredis.store.tables import NodeRecord

PREFIX = "rayredis_"

#: name (without the prefix) -> (type, labels, help). Counters are exposed with ``_total``.
METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "tasks": ("gauge", ("State",), "Tasks in the task table by state (Ray's ray_tasks; PENDING includes running "
                                   "tasks, ended ones stay until task_table_ttl_s)."),
    "tasks_retried": ("gauge", (), "Tasks in the task table on an attempt after their first (retries, rebuilds)."),
    "actors": ("gauge", ("State",), "Actors by state (Ray's ray_actors)."),
    "jobs": ("gauge", ("State",), "Jobs by state."),
    "placement_groups": ("gauge", ("State",), "Placement groups by state (Ray's ray_placement_groups)."),
    "nodes": ("gauge", ("State",), "Registered nodes by state (ALIVE, DEAD)."),
    "resources": ("gauge", ("Name", "State", "NodeId"),
                  "Logical resources per alive node, USED and AVAILABLE (Ray's ray_resources)."),
    "object_store_memory": ("gauge", ("Location", "NodeId"),
                            "Bytes of objects in a node's shared-memory store (Ray's ray_object_store_memory)."),
    "object_store_available_memory": ("gauge", ("NodeId",), "Bytes left in a node's object store."),
    "object_store_num_local_objects": ("gauge", ("NodeId",), "Objects in a node's store."),
    "scheduler_tasks": ("gauge", ("State", "NodeId"),
                        "Tasks a raylet holds: QUEUED or RUNNING (Ray's ray_scheduler_tasks)."),
    "node_workers": ("gauge", ("NodeId",), "Worker processes of a node."),
    "node_heartbeat_age_seconds": ("gauge", ("NodeId",),
                                   "Seconds since an alive node's last heartbeat report (its load's time; "
                                   "across hosts this includes their clock difference)."),
    "node_heartbeats": ("counter", ("NodeId",), "Heartbeats a node has sent."),
    "node_deaths": ("counter", (), "Nodes declared DEAD since the cluster started (failures detected)."),
    "actor_restarts": ("counter", (), "Actor restarts since the cluster started (recoveries of actors)."),
    "gcs_lease_held": ("gauge", (), "1 while a GCS holds the lease (an active GCS), else 0."),
    "redis_up": ("gauge", ("shard", "role"), "1 if the shard answered this scrape's PING."),
    "redis_ping_seconds": ("gauge", ("shard", "role"), "The exporter's PING round trip to the shard."),
    "redis_pubsub_lag_seconds": ("gauge", ("shard", "role"),
                                 "From PUBLISH to receipt on the exporter's own subscription, per shard."),
    "redis_commands": ("counter", ("shard", "role", "command"),
                       "Commands the shard has run since it started (INFO commandstats calls)."),
    "redis_command_seconds": ("counter", ("shard", "role", "command"),
                              "Seconds the shard spent in each command since it started (INFO commandstats usec)."),
    "redis_connected_clients": ("gauge", ("shard", "role"), "Clients connected to the shard."),
    "redis_used_memory_bytes": ("gauge", ("shard", "role"), "The shard's used_memory."),
}


@dataclass
class ShardSample:
    """One shard as the exporter saw it this scrape (``up`` False: nothing else is known)."""

    address: str
    role: str
    up: bool
    ping_s: float = 0.0
    pubsub_lag_s: float | None = None
    #: command -> (calls, usec), from INFO commandstats.
    commands: dict[str, tuple[int, int]] = field(default_factory=dict)
    connected_clients: int = 0
    used_memory: int = 0


@dataclass
class Snapshot:
    """What one scrape read: counts from the tables, the nodes, the shards."""

    now: float
    task_states: Counter[str] = field(default_factory=Counter)
    tasks_retried: int = 0
    actor_states: Counter[str] = field(default_factory=Counter)
    actor_restarts: int = 0
    job_states: Counter[str] = field(default_factory=Counter)
    pg_states: Counter[str] = field(default_factory=Counter)
    nodes: list[NodeRecord] = field(default_factory=list)
    gcs_lease_held: bool = False
    shards: list[ShardSample] = field(default_factory=list)


def _family(name: str) -> GaugeMetricFamily | CounterMetricFamily:
    kind, labels, doc = METRICS[name]
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(PREFIX + name, doc, labels=list(labels))


def families(s: Snapshot) -> Iterator[Metric]:
    """Every family of :data:`METRICS`, with the samples ``s`` has for it."""
    fam = {name: _family(name) for name in METRICS}

    def add(name: str, labels: list[str], value: float) -> None:
        fam[name].add_metric(labels, value)

    for name, counts in (("tasks", s.task_states), ("actors", s.actor_states), ("jobs", s.job_states),
                         ("placement_groups", s.pg_states)):
        for state, count in sorted(counts.items()):
            add(name, [state], count)
    add("tasks_retried", [], s.tasks_retried)
    add("actor_restarts", [], s.actor_restarts)
    add("gcs_lease_held", [], 1.0 if s.gcs_lease_held else 0.0)
    node_states = Counter(n.state for n in s.nodes)
    for state, count in sorted(node_states.items()):
        add("nodes", [state], count)
    add("node_deaths", [], node_states.get("DEAD", 0))
    for n in s.nodes:
        nid = n.node_id
        add("node_heartbeats", [nid], n.heartbeats)
        if not n.alive or n.load is None:
            continue
        ld = n.load
        for res in sorted(ld.total):
            if res.startswith("node:"):
                continue
            avail = ld.available.get(res, 0.0)
            add("resources", [res, "AVAILABLE", nid], avail)
            add("resources", [res, "USED", nid], max(ld.total[res] - avail, 0.0))
        add("object_store_memory", ["MMAP_SHM", nid], ld.object_store_used)
        add("object_store_available_memory", [nid], max(ld.object_store_capacity - ld.object_store_used, 0))
        add("object_store_num_local_objects", [nid], ld.num_objects)
        add("scheduler_tasks", ["QUEUED", nid], ld.queued)
        add("scheduler_tasks", ["RUNNING", nid], ld.running)
        add("node_workers", [nid], ld.workers)
        if ld.time:
            add("node_heartbeat_age_seconds", [nid], max(s.now - ld.time, 0.0))
    for sh in s.shards:
        lab = [sh.address, sh.role]
        add("redis_up", lab, 1.0 if sh.up else 0.0)
        if not sh.up:
            continue
        add("redis_ping_seconds", lab, sh.ping_s)
        if sh.pubsub_lag_s is not None:
            add("redis_pubsub_lag_seconds", lab, sh.pubsub_lag_s)
        for cmd, (calls, usec) in sorted(sh.commands.items()):
            add("redis_commands", [*lab, cmd], calls)
            add("redis_command_seconds", [*lab, cmd], usec / 1e6)
        add("redis_connected_clients", lab, sh.connected_clients)
        add("redis_used_memory_bytes", lab, sh.used_memory)
    yield from fam.values()


def parse_commandstats(info: dict[str, object]) -> dict[str, tuple[int, int]]:
    """INFO commandstats as redis-py parses it (``cmdstat_get: {calls, usec, ...}``) -> command -> (calls, usec)."""
    out = {}
    for k, v in info.items():
        if k.startswith("cmdstat_") and isinstance(v, dict):
            out[k[len("cmdstat_"):]] = (int(v.get("calls", 0)), int(v.get("usec", 0)))
    return out

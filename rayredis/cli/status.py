"""``rayredis status``: node liveness, resource usage and demand, read straight from Redis."""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from rayredis.cli.common import connect, format_memory, resolve_cluster
from rayredis.store import keys
from rayredis.store.client import ShardedRedis

_RULE = "-" * 63
_STORE = "object_store_memory"
#: Placement-group bundle resources (``CPU_group_0_<pg>``, ``bundle_group_<pg>``), hidden like ``ray status``.
_PG_RESOURCE = re.compile(r"_group_(\d+_)?[0-9a-f]{32}$")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("status", help="Show the cluster's nodes and resource usage.")
    p.add_argument("--address", help="host:port of the primary Redis shard (default: the local cluster)")
    p.add_argument("--redis-password", help="the cluster's Redis password (default: RAYREDIS_REDIS_PASSWORD "
                                            "or the local current-cluster file)")
    p.add_argument("-v", "--verbose", action="store_true", help="add per-node details")
    p.set_defaults(func=run)


@dataclass
class NodeView:
    """One node as the status report needs it."""

    node_id: str
    state: str
    info: dict[str, Any]
    load: dict[str, Any] = field(default_factory=dict)
    heartbeats: int = 0


def read_nodes(store: ShardedRedis) -> list[NodeView]:
    p = store.primary
    infos = p.hgetall(keys.nodes_key())
    states = p.hgetall(keys.node_state_key())
    loads = p.hgetall(keys.node_load_key())
    beats = p.hgetall(keys.node_heartbeat_key())
    out = []
    for nid in sorted(set(infos) | set(states)):
        out.append(NodeView(
            node_id=nid.decode(), state=(states.get(nid) or b"UNKNOWN").decode(),
            info=json.loads(infos[nid]) if nid in infos else {},
            load=json.loads(loads[nid]) if nid in loads else {},
            heartbeats=int(beats.get(nid) or 0)))
    return out


def _usage_lines(alive: list[NodeView]) -> list[str]:
    total: dict[str, float] = {}
    avail: dict[str, float] = {}
    store_used = store_cap = 0.0
    for n in alive:
        tot = n.load.get("total") or n.info.get("resources") or {}
        av = n.load.get("available", tot)
        for k, v in tot.items():
            if k == _STORE or _PG_RESOURCE.search(k):
                continue
            total[k] = total.get(k, 0.0) + float(v)
            avail[k] = avail.get(k, 0.0) + float(av.get(k, 0.0))
        store_used += float(n.load.get("object_store_used", 0))
        store_cap += float(n.load.get("object_store_capacity") or n.info.get("object_store_memory") or 0)
    order = sorted(total, key=lambda k: ({"CPU": 0, "GPU": 1}.get(k, 2), k))
    lines = [f" {max(0.0, total[k] - avail[k]):.1f}/{total[k]:.1f} {k}" for k in order]
    lines.append(f" {format_memory(store_used)}/{format_memory(store_cap)} {_STORE}")
    return lines


def render(store: ShardedRedis, verbose: bool = False) -> str:
    nodes = read_nodes(store)
    alive = [n for n in nodes if n.state == "ALIVE"]
    dead = [n for n in nodes if n.state != "ALIVE"]
    ts = time.strftime("%Y-%m-%d %H:%M:%S")
    out = [f"======== Cluster status: {ts} ========", "Node status", _RULE, "Active:"]
    out += [f" 1 node_{n.node_id}" for n in alive] or [
        " (no active nodes)"]
    if dead:
        out.append("Dead:")
        out += [f" 1 node_{n.node_id}" for n in dead]
    out += ["Pending:", " (no pending nodes)", "Recent failures:", " (no failures)", "", "Resources", _RULE,
            "Usage:", *_usage_lines(alive), "", "Demands:"]
    queued = sum(int(n.load.get("queued", 0)) for n in alive)
    if queued:
        busy = sum(1 for n in alive if n.load.get("queued"))
        out.append(f" {queued} pending tasks/actors queued on {busy} node(s)")
    else:
        out.append(" (no resource demands)")
    if verbose:
        out += ["", "Node details", _RULE]
        for n in nodes:
            i, ld = n.info, n.load
            age = f"{time.time() - float(ld['time']):.1f}s ago" if ld.get("time") else "never"
            out += [f"node_{n.node_id}: {n.state}{' (head)' if i.get('is_head') else ''}",
                    f"  address: {i.get('address', '?')}  ip: {i.get('node_ip', '?')}  pid: {i.get('pid', '?')}",
                    f"  resources: {json.dumps(i.get('resources', {}), sort_keys=True)}",
                    f"  available: {json.dumps(ld.get('available', {}), sort_keys=True)}",
                    f"  running: {ld.get('running', 0)}  queued: {ld.get('queued', 0)}  workers: "
                    f"{ld.get('workers', 0)}  objects: {ld.get('num_objects', 0)}",
                    f"  heartbeats: {n.heartbeats}  last load report: {age}",
                    f"  session_dir: {i.get('session_dir', '?')}"]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    address, password = resolve_cluster(args.address, args.redis_password)
    store = connect(address, password)
    try:
        print(render(store, args.verbose))
    finally:
        store.close()
    return 0

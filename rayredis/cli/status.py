"""``rayredis status``: node liveness, resource usage and demand, read straight from Redis."""

from __future__ import annotations

import argparse
import json
import re
import time
from typing import Any

from rayredis.cli.common import connect, format_memory, resolve_cluster
from rayredis.store import keys
from rayredis.store.client import ShardedRedis
from rayredis.store.tables import NodeLoad, NodeRecord, NodeState, read_nodes

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


def _usage_lines(alive: list[NodeRecord]) -> list[str]:
    total: dict[str, float] = {}
    avail: dict[str, float] = {}
    store_used = store_cap = 0.0
    for n in alive:
        tot = (n.load.total if n.load else {}) or (n.info.resources if n.info else {})
        av = n.load.available if n.load else tot
        for k, v in tot.items():
            if k == _STORE or k.startswith("node:") or _PG_RESOURCE.search(k):
                continue  # (Ray hides the per-node ``node:<ip>`` resources too)
            total[k] = total.get(k, 0.0) + float(v)
            avail[k] = avail.get(k, 0.0) + float(av.get(k, 0.0))
        store_used += float(n.load.object_store_used if n.load else 0)
        store_cap += float((n.load.object_store_capacity if n.load else 0)
                           or (n.info.object_store_memory if n.info else 0))
    order = sorted(total, key=lambda k: ({"CPU": 0, "GPU": 1}.get(k, 2), k))
    lines = [f" {format_memory(max(0.0, total[k] - avail[k]))}/{format_memory(total[k])} {k}" if k == "memory"
             else f" {max(0.0, total[k] - avail[k]):.1f}/{total[k]:.1f} {k}" for k in order]
    lines.append(f" {format_memory(store_used)}/{format_memory(store_cap)} {_STORE}")
    return lines


def _details(n: NodeRecord) -> list[str]:
    i, ld = n.info, n.load or NodeLoad(available={}, total={})
    age = f"{time.time() - ld.time:.1f}s ago" if ld.time else "never"
    head = " (head)" if i is not None and i.is_head else ""
    address, ip, pid = (i.address, i.node_ip, str(i.pid)) if i is not None else ("?", "?", "?")
    return [f"node_{n.node_id}: {n.state}{head}",
            f"  address: {address}  ip: {ip}  pid: {pid}",
            f"  resources: {json.dumps(i.resources if i else {}, sort_keys=True)}",
            f"  available: {json.dumps(ld.available, sort_keys=True)}",
            f"  running: {ld.running}  queued: {ld.queued}  workers: {ld.workers}  objects: {ld.num_objects}",
            f"  heartbeats: {n.heartbeats}  last load report: {age}",
            f"  session_dir: {i.session_dir if i else '?'}"]


def render(store: ShardedRedis, verbose: bool = False) -> str:
    nodes = read_nodes(store.primary)
    alive = [n for n in nodes if n.state == NodeState.ALIVE.value]
    dead = [n for n in nodes if n.state != NodeState.ALIVE.value]
    ts = time.strftime("%Y-%m-%d %H:%M:%S")
    out = [f"======== Cluster status: {ts} ========", "Node status", _RULE, "Active:"]
    out += [f" 1 node_{n.node_id}" for n in alive] or [
        " (no active nodes)"]
    if dead:
        out.append("Dead:")
        out += [f" 1 node_{n.node_id}" for n in dead]
    failures = [f" node_{n.node_id}: NodeTerminated (ip: {n.info.node_ip if n.info else '?'})" for n in dead]
    out += ["Pending:", " (no pending nodes)", "Recent failures:", *(failures or [" (no failures)"]), "",
            "Resources", _RULE,
            "Usage:", *_usage_lines(alive), "", "Demands:"]
    queued = sum(n.load.queued for n in alive if n.load)
    if queued:
        busy = sum(1 for n in alive if n.load and n.load.queued)
        out.append(f" {queued} pending tasks/actors queued on {busy} node(s)")
    else:
        out.append(" (no resource demands)")
    url = store.primary.hget(keys.dashboard_key(), "url")
    if url:
        out += ["", f"Dashboard: {url.decode()} (log in with the cluster's Redis password)"]
    if verbose:
        out += ["", "Node details", _RULE]
        for n in nodes:
            out += _details(n)
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    address, password = resolve_cluster(args.address, args.redis_password)
    store = connect(address, password)
    try:
        print(render(store, args.verbose))
    finally:
        store.close()
    return 0

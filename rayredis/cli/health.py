"""``rayredis health-check``: exit 0 when the cluster answers and this machine's nodes are ALIVE in it.

Made for container healthchecks (``ray health-check`` plays that part for Ray): a head is healthy
once its Redis answers, its GCS has registered and its raylet is ALIVE; a joined node once its
raylet is ALIVE. Nodes are the ones ``rayredis start`` recorded on this machine (the CLI session
registry); those the cluster has never heard of belong to another cluster and are not checked.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from rayredis._private import process
from rayredis.cli import sessions
from rayredis.cli.common import connect, resolve_cluster
from rayredis.store import keys
from rayredis.store.tables import NodeState, read_nodes


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "health-check", help="Exit 0 if the cluster answers and the nodes started on this machine are alive.")
    p.add_argument("--address", help="host:port of the primary Redis shard (default: the local cluster)")
    p.add_argument("--redis-password", help="the cluster's Redis password (default: RAYREDIS_REDIS_PASSWORD "
                                            "or the local current-cluster file)")
    p.set_defaults(func=run)


def problems(primary: Any, local: list[sessions.CliSession]) -> list[str]:
    """Why the cluster behind ``primary`` or one of the ``local`` nodes is not healthy (empty: healthy)."""
    out = []
    if not primary.hget(keys.cluster_key(), "gcs_address"):
        out.append("the GCS has not registered")
    nodes = read_nodes(primary)
    states = {n.node_id: n.state for n in nodes}
    # A raylet declared dead (a long pause) fences and execs itself under a new node ID, from the same
    # session: the node the CLI recorded is DEAD, its successor ALIVE with that raylet's PID (whose
    # command line, with the new ID, no longer matches the PID record), and the node is healthy.
    successor = {n.info.session_dir: n.info.pid for n in nodes if n.info is not None
                 and n.state == NodeState.ALIVE.value}
    for entry in local:
        if not entry.node_id:
            out.append(f"the node of {entry.session_dir} is still starting")
            continue
        if entry.node_id not in states:
            continue  # a node of another cluster
        pid = successor.get(entry.session_dir)
        if states[entry.node_id] != NodeState.ALIVE.value and pid and os.path.exists(f"/proc/{pid}"):
            continue
        if states[entry.node_id] != NodeState.ALIVE.value:
            out.append(f"node {entry.node_id} is {states[entry.node_id] or 'not registered'}")
        elif not any(r.role == "raylet" and process.is_alive(r) for r in process.recorded(entry.session_dir)):
            out.append(f"the raylet of node {entry.node_id} is not running")
    return out


def run(args: argparse.Namespace) -> int:
    address, password = resolve_cluster(args.address, args.redis_password)
    store = connect(address, password)
    try:
        found = problems(store.primary, sessions.registered())
    finally:
        store.close()
    if found:
        print(f"unhealthy: {'; '.join(found)}", file=sys.stderr)
        return 1
    return 0

"""``rayredis state dump``: every control table of a running cluster, read from Redis with SCAN.

Secrets (the cluster token, passwords) are redacted, and pickled payloads (task and actor specs,
function bodies) are shown by size only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any, cast

import redis

from rayredis.cli.common import connect, decode, resolve_cluster
from rayredis.store import keys
from rayredis.store.client import ShardedRedis
from rayredis.store.tables import JobInfo, ObjectEntry, read_nodes

_SECRET_FIELDS = ("token", "password", "redis_password")
_REDACTED = "<redacted>"
_SCAN_COUNT = 1000


def add_parser(sub: Any) -> None:
    state: argparse.ArgumentParser = sub.add_parser("state", help="Inspect the cluster's control state.")
    verbs = state.add_subparsers(dest="state_verb", metavar="{dump}")
    verbs.required = True
    p: argparse.ArgumentParser = verbs.add_parser("dump", help="Print every control table of the cluster.")
    p.add_argument("--address", help="host:port of the primary Redis shard (default: the local cluster)")
    p.add_argument("--redis-password", help="the cluster's Redis password (default: RAYREDIS_REDIS_PASSWORD "
                                            "or the local current-cluster file)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=run)


def _scan(client: redis.Redis, pattern: str) -> Iterator[str]:
    for k in client.scan_iter(match=pattern, count=_SCAN_COUNT):
        yield k.decode() if isinstance(k, bytes) else k


def _id_of(key: str, make_key: Any) -> str:
    return key[len(make_key("")):]


def _data_shards(store: ShardedRedis) -> list[tuple[str, redis.Redis]]:
    seen: dict[str, redis.Redis] = {}
    for addr, client in zip(store.shard_addresses, store.shards, strict=True):
        seen.setdefault(addr, client)
    return list(seen.items())


def collect(store: ShardedRedis) -> dict[str, Any]:
    """The whole control state as plain JSON-able data."""
    p = store.primary
    cluster = {k: (_REDACTED if k in _SECRET_FIELDS else v) for k, v in store.cluster_info().items()}
    for k in ("shards",):
        if k in cluster:
            cluster[k] = json.loads(cluster[k])
    nodes = []
    for n in read_nodes(p):
        info = dataclasses.asdict(n.info) if n.info else {}
        nodes.append({"node_id": n.node_id, "state": n.state, "heartbeat": n.heartbeats,
                      **{k: v for k, v in info.items() if k != "node_id"},
                      "load": dataclasses.asdict(n.load) if n.load else {}})
    job_states = {decode(k): decode(v) for k, v in p.hgetall(keys.job_state_key()).items()}
    jobs = []
    for jid, raw in sorted(p.hgetall(keys.jobs_key()).items(), key=lambda kv: int(kv[0])):
        job = dataclasses.asdict(JobInfo.from_json(raw))
        jobs.append({"job_id": decode(jid), "state": job_states.get(decode(jid), "UNKNOWN"),
                     **{k: v for k, v in job.items() if k != "job_id"}})
    actors = []
    for key in sorted(_scan(p, keys.ALL_TABLE_PREFIXES["actors"])):
        fields = {decode(k): v for k, v in p.hgetall(key).items()}
        entry: dict[str, Any] = {"actor_id": _id_of(key, keys.actor_key)}
        for k, v in sorted(fields.items()):
            if k == "spec":
                entry["spec_bytes"] = len(v)
            else:
                entry[k] = decode(v)
        actors.append(entry)
    pgs = []
    for key in sorted(_scan(p, keys.ALL_TABLE_PREFIXES["placement_groups"])):
        entry = {"placement_group_id": _id_of(key, keys.placement_group_key)}
        for k, v in sorted(p.hgetall(key).items()):
            text = decode(v)
            try:
                entry[decode(k)] = json.loads(text) if decode(k) in ("bundles", "node_of_bundle") else text
            except ValueError:
                entry[decode(k)] = text
        pgs.append(entry)
    functions = [{"function_id": _id_of(key, keys.function_key), "bytes": int(p.strlen(key))}
                 for key in sorted(_scan(p, keys.ALL_TABLE_PREFIXES["functions"]))]
    tasks: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    for addr, shard in _data_shards(store):
        for key in sorted(_scan(shard, keys.ALL_TABLE_PREFIXES["tasks"])):
            state, node, attempt, job = (decode(v) for v in shard.hmget(key, "state", "node", "attempt", "job"))
            if state is None and node is None:
                continue  # expired between SCAN and HMGET
            tasks.append({"task_id": _id_of(key, keys.task_key), "state": state, "node": node,
                          "attempt": attempt, "job": job, "spec_bytes": int(shard.hstrlen(key, "spec")),
                          "shard": addr})
        for key in sorted(_scan(shard, keys.ALL_TABLE_PREFIXES["objects"])):
            raw = cast("dict[bytes, bytes]", shard.hgetall(key))  # a client without decode_responses
            obj = ObjectEntry.from_redis(_id_of(key, keys.object_key), raw)
            if obj is None:
                continue  # expired between SCAN and HGETALL
            objects.append({"object_id": obj.object_id, "size": obj.size, "task": obj.task, "error": obj.error,
                            "locations": sorted(obj.locations), "shard": addr})
    return {"time": time.time(), "cluster": cluster, "nodes": nodes, "jobs": jobs, "actors": actors,
            "placement_groups": pgs, "functions": functions, "tasks": tasks, "objects": objects}


def _fmt(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def render_text(dump: dict[str, Any]) -> str:
    ts = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(dump["time"]))
    out = [f"======== State dump: {ts} ========", "", "Cluster", "-" * 63]
    out += [f"  {k}: {_fmt(v)}" for k, v in sorted(dump["cluster"].items())]
    sections = [("Nodes", "nodes", "node_id"), ("Jobs", "jobs", "job_id"), ("Actors", "actors", "actor_id"),
                ("Placement groups", "placement_groups", "placement_group_id"),
                ("Functions", "functions", "function_id"), ("Tasks", "tasks", "task_id"),
                ("Objects", "objects", "object_id")]
    for title, name, id_field in sections:
        rows = dump[name]
        out += ["", f"{title} ({len(rows)})", "-" * 63]
        if not rows:
            out.append("  (none)")
        for row in rows:
            rest = " ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k != id_field)
            out.append(f"  {row[id_field]}  {rest}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    address, password = resolve_cluster(args.address, args.redis_password)
    store = connect(address, password)
    try:
        dump = collect(store)
    finally:
        store.close()
    print(json.dumps(dump, indent=2, sort_keys=True) if args.json else render_text(dump))
    return 0

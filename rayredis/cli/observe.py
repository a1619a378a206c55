"""``rayredis list``, ``get``, ``summary`` and ``logs``: Ray's state CLI over the cluster's Redis tables."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from rayredis._private import events
from rayredis._private import state_reader as reader
from rayredis._private import state_records as sr
from rayredis.cli.common import CliError, connect, resolve_cluster
from rayredis.store.client import ShardedRedis

try:
    import yaml  # type: ignore[import-untyped]
except ImportError:  # pyyaml is optional: --format yaml says how to get it
    yaml = None

#: resource name (Ray's, singular forms accepted) -> (reader, id field, columns of the table format)
RESOURCES: dict[str, tuple[Callable[[ShardedRedis], list[Any]], str, tuple[str, ...]]] = {
    "nodes": (reader.nodes, "node_id", ("node_id", "node_ip", "is_head_node", "state", "resources_total")),
    "jobs": (reader.jobs, "job_id", ("job_id", "status", "driver_pid", "driver_node_id", "namespace")),
    "actors": (reader.actors, "actor_id", ("actor_id", "class_name", "state", "job_id", "name", "node_id", "pid")),
    "tasks": (reader.tasks, "task_id", ("task_id", "attempt_number", "name", "state", "job_id", "type",
                                        "node_id")),
    "objects": (reader.objects, "object_id", ("object_id", "object_size", "task_id", "is_error", "node_ids")),
    "placement-groups": (reader.placement_groups, "placement_group_id",
                         ("placement_group_id", "name", "creator_job_id", "state", "strategy")),
    "workers": (reader.workers, "worker_id", ("worker_id", "is_alive", "worker_type", "node_id", "pid")),
    "cluster-events": (events.newest_first, "event_id", ("time", "severity", "source_type", "label", "message")),
}
_ALIASES = {"node": "nodes", "job": "jobs", "actor": "actors", "task": "tasks", "object": "objects",
            "placement-group": "placement-groups", "placement_groups": "placement-groups",
            "placement_group": "placement-groups", "worker": "workers",
            "cluster_events": "cluster-events", "cluster-event": "cluster-events"}


def _connection_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="host:port of the primary Redis shard (default: the local cluster)")
    p.add_argument("--redis-password", help="the cluster's Redis password (default: RAYREDIS_REDIS_PASSWORD "
                                            "or the local current-cluster file)")


def add_parsers(sub: Any) -> None:
    names = sorted(RESOURCES) + sorted(_ALIASES)
    p: argparse.ArgumentParser = sub.add_parser("list", help="List a resource of the cluster (Ray's `ray list`).")
    p.add_argument("resource", choices=names, metavar="{" + ",".join(sorted(RESOURCES)) + "}")
    p.add_argument("--filter", "-f", action="append", default=[], help="key=value or key!=value (repeatable)")
    p.add_argument("--limit", type=int, default=sr.DEFAULT_LIMIT, help="at most this many entries (default 100)")
    p.add_argument("--format", choices=("table", "json", "yaml"), default="table")
    p.add_argument("--detail", action="store_true", help="every field (the table shows the main ones)")
    _connection_flags(p)
    p.set_defaults(func=run_list)

    g: argparse.ArgumentParser = sub.add_parser("get", help="One entry of a resource, by id (Ray's `ray get`).")
    g.add_argument("resource", choices=names, metavar="{" + ",".join(sorted(RESOURCES)) + "}")
    g.add_argument("id")
    g.add_argument("--format", choices=("json", "yaml"), default="yaml" if yaml is not None else "json")
    _connection_flags(g)
    g.set_defaults(func=run_get)

    s: argparse.ArgumentParser = sub.add_parser("summary", help="Counts by name and state (Ray's `ray summary`).")
    s.add_argument("resource", choices=("tasks", "actors", "objects"))
    s.add_argument("--format", choices=("table", "json", "yaml"), default="table")
    _connection_flags(s)
    s.set_defaults(func=run_summary)

    lg: argparse.ArgumentParser = sub.add_parser(
        "logs", help="List or print the log files of this host's nodes (Ray's `ray logs`).")
    lg.add_argument("filename", nargs="?",
                    help="a file name (without one, and without --actor-id/--task-id/--pid: list)")
    lg.add_argument("--node-id", help="only this node's files (a prefix of the id is enough)")
    lg.add_argument("--actor-id", help="the log of the worker that hosts this actor")
    lg.add_argument("--pid", type=int, help="the log of the worker process with this pid")
    lg.add_argument("--task-id", help="the log of the worker that ran this task (once it ended)")
    lg.add_argument("--err", action="store_true",
                    help="with --actor-id/--task-id/--pid: stderr (.err) instead of stdout")
    lg.add_argument("--tail", type=int, default=1000, help="print the last N lines (-1: all; default 1000)")
    lg.add_argument("--follow", action="store_true", help="keep printing lines as they are written")
    lg.add_argument("--glob", help="when listing: only file names matching this pattern")
    _connection_flags(lg)
    lg.set_defaults(func=run_logs)


def _store(args: argparse.Namespace) -> ShardedRedis:
    return connect(*resolve_cluster(args.address, args.redis_password))


def _resource(name: str) -> str:
    return _ALIASES.get(name, name)


def _cell(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return "" if v is None else str(v)


def render_table(title: str, rows: list[dict[str, Any]], columns: tuple[str, ...] | None,
                 stats: list[str] | None = None, table_title: str = "Table:") -> str:
    """Ray's ``ray list``/``ray summary`` layout: a header, ``Stats:`` (default: the total), then the table."""
    cols = list(columns) if columns else (list(rows[0]) if rows else [])
    grid = [[c.upper() for c in cols]] + [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(cols))]
    idx_w = len(str(max(len(rows) - 1, 0)))
    lines = [" " * idx_w + "  " + "  ".join(h.ljust(w) for h, w in zip(grid[0], widths))]
    for i, line in enumerate(grid[1:]):
        lines.append(str(i).rjust(idx_w) + "  " + "  ".join(c.ljust(w) for c, w in zip(line, widths)))
    ts = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    return "\n".join([f"======== {title}: {ts} ========", "Stats:", "-" * 30,
                      *(stats if stats is not None else [f"Total: {len(rows)}"]), "",
                      table_title, "-" * 30, *(line.rstrip() for line in lines)])


def _dump(data: Any, fmt: str) -> str:
    if fmt == "yaml":
        if yaml is None:
            raise CliError("--format yaml needs PyYAML (pip install pyyaml); use --format json")
        return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False)).rstrip()
    return json.dumps(data, indent=2)


def run_list(args: argparse.Namespace) -> int:
    name = _resource(args.resource)
    read, _, columns = RESOURCES[name]
    try:
        filters = [sr.parse_filter(f) for f in args.filter]
        store = _store(args)
        try:
            records = sr.apply_filters(read(store), filters, args.limit if args.limit >= 0 else None)
        finally:
            store.close()
    except sr.StateApiError as e:
        raise CliError(str(e)) from None
    rows = [sr.to_dict(r) for r in records]
    if args.format == "table":
        print(render_table("List", rows, None if args.detail else columns))
    else:
        print(_dump(rows, args.format))
    return 0


def run_get(args: argparse.Namespace) -> int:
    name = _resource(args.resource)
    read, id_field, _ = RESOURCES[name]
    store = _store(args)
    try:
        found = sr.apply_filters(read(store), [(id_field, "=", args.id)], None)
    finally:
        store.close()
    if not found:
        raise CliError(f"no {name[:-1].replace('-', ' ')} with id {args.id}")
    print(_dump(sr.to_dict(found[-1]), args.format))
    return 0


def _summary_rows(kind: str, summary: dict[str, Any]) -> list[dict[str, Any]]:
    key = {"tasks": "FUNC_OR_CLASS_NAME", "actors": "CLASS_NAME", "objects": "TASK"}[kind]
    rows = []
    for group, s in summary["cluster"]["summary"].items():
        counts = s.get("state_counts", s.get("task_state_counts", {}))
        row: dict[str, Any] = {key.lower(): group}
        if kind == "tasks":
            row["type"] = s["type"]
        if kind == "objects":
            row.update(total_objects=s["total_objects"], total_size_mb=round(s["total_size_mb"], 3))
        row["state_counts"] = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        rows.append(row)
    return rows


def run_summary(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        if args.resource == "tasks":
            summary = sr.summarize_task_records(reader.tasks(store))
        elif args.resource == "actors":
            summary = sr.summarize_actor_records(reader.actors(store))
        else:
            summary = sr.summarize_object_records(reader.objects(store), {t.task_id: t for t in reader.tasks(store)})
    finally:
        store.close()
    if args.format != "table":
        print(_dump(summary, args.format))
        return 0
    cluster = summary["cluster"]
    stats = [f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in sorted(cluster.items())
             if k.startswith("total_")]
    print(render_table(f"{args.resource.capitalize()} Summary", _summary_rows(args.resource, summary), None,
                       stats, f"Table (group by {cluster['summary_by']}):"))
    return 0


def run_logs(args: argparse.Namespace) -> int:
    address, password = resolve_cluster(args.address, args.redis_password)
    if args.filename is None and args.actor_id is None and args.pid is None and args.task_id is None:
        store = connect(address, password)
        try:
            files = reader.log_files(store, args.node_id)
        finally:
            store.close()
        if args.glob:
            files = [f for f in files if sr.fnmatch_name(f.name, args.glob)]
        if not files:
            raise CliError("no log files of this cluster's nodes on this host"
                           + (f" for node {args.node_id}" if args.node_id else ""))
        node = ""
        for f in files:
            if f.node_id != node:
                node = f.node_id
                print(f"Node ID: {node}")
            print(f"  {f.name}  ({f.size} bytes)  {f.path}")
        return 0
    store = connect(address, password)
    try:
        f = reader.resolve_log(store, args.node_id, args.filename, args.actor_id, args.pid,
                               "err" if args.err else "out", args.task_id)
    except sr.StateApiError as e:
        raise CliError(str(e)) from None
    finally:
        store.close()
    for line in reader.stream_log(f.path, args.tail, args.follow):
        sys.stdout.write(line)
        sys.stdout.flush()
    return 0

"""Thin reader of the state API: one pass over the Redis control tables, parsed by ``store.tables``.

Every call is a stateless read (pipelined HGETALLs after an index read, SCAN on the data shards
for tasks and objects); records are built by :mod:`rayredis._private.state_records`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from rayredis._private import state_records as sr
from rayredis.store import keys
from rayredis.store.client import ShardedRedis
from rayredis.store.tables import (
    ActorEntry,
    JobInfo,
    ObjectEntry,
    TaskEntry,
    read_nodes,
    read_placement_groups,
)

_SCAN_COUNT = 1000
_FOLLOW_POLL_S = 0.5


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _data_shards(store: ShardedRedis) -> list[redis.Redis]:
    seen: dict[str, redis.Redis] = {}
    for addr, client in zip(store.shard_addresses, store.shards, strict=True):
        seen.setdefault(addr, client)
    return list(seen.values())


def _scan_hashes(client: redis.Redis, prefix: str) -> Iterator[tuple[str, Any]]:
    """(id, raw hash) of every key under ``prefix`` on one shard; entries gone since the SCAN are left out."""
    ids = [_s(k)[len(prefix):] for k in client.scan_iter(match=prefix + "*", count=_SCAN_COUNT)]
    pipe = client.pipeline(transaction=False)
    for i in ids:
        pipe.hgetall(prefix + i)
    for i, raw in zip(ids, pipe.execute()):
        if raw:
            yield i, raw


def nodes(store: ShardedRedis) -> list[sr.NodeState]:
    return [sr.node_record(n) for n in read_nodes(store.primary)]


def jobs(store: ShardedRedis) -> list[sr.JobState]:
    p = store.primary
    pipe = p.pipeline(transaction=False)
    pipe.hgetall(keys.jobs_key())
    pipe.hgetall(keys.job_state_key())
    infos, states = pipe.execute()
    st = {_s(k): _s(v) for k, v in states.items()}
    out = [sr.job_record(j, st.get(str(j.job_id), "")) for j in (JobInfo.from_json(v) for v in infos.values())]
    return sorted(out, key=lambda j: int(j.job_id))


def actors(store: ShardedRedis) -> list[sr.ActorState]:
    p = store.primary
    ids = sorted(_s(a) for a in p.smembers(keys.actors_index_key()))
    pipe = p.pipeline(transaction=False)
    for aid in ids:
        pipe.hgetall(keys.actor_key(aid))
    return [sr.actor_record(e) for aid, raw in zip(ids, pipe.execute()) if (e := ActorEntry.from_redis(aid, raw))]


def placement_groups(store: ShardedRedis) -> list[sr.PlacementGroupState]:
    return [sr.placement_group_record(p) for p in read_placement_groups(store.primary)]


def tasks(store: ShardedRedis) -> list[sr.TaskState]:
    prefix = keys.task_key("")
    out = [sr.task_record(e) for shard in _data_shards(store) for tid, raw in _scan_hashes(shard, prefix)
           if (e := TaskEntry.from_redis(tid, raw))]
    return sorted(out, key=lambda t: t.task_id)


def objects(store: ShardedRedis) -> list[sr.ObjectState]:
    prefix = keys.object_key("")
    out = [sr.object_record(e) for shard in _data_shards(store) for oid, raw in _scan_hashes(shard, prefix)
           if (e := ObjectEntry.from_redis(oid, raw))]
    return sorted(out, key=lambda o: o.object_id)


def workers(store: ShardedRedis) -> list[sr.WorkerState]:
    """The worker processes recorded in the session dirs of this host's nodes (their ``pids/`` records)."""
    out = []
    for n in nodes(store):
        for rec in worker_processes(n.session_dir):
            out.append(sr.worker_record(n, rec, _pid_alive(int(rec["pid"]))))
    return sorted(out, key=lambda w: (w.node_id, w.pid))


# ---- logs on this host -------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFile:
    """One file of a node's ``<session>/logs``: which node, its name, full path and size."""

    node_id: str
    name: str
    path: str
    size: int


def worker_processes(session_dir: str) -> list[dict[str, Any]]:
    """The ``pids/<pid>`` records of worker processes still recorded in a session (this host only)."""
    d = os.path.join(session_dir, "pids")
    out = []
    try:
        names = os.listdir(d)
    except OSError:
        return []
    for name in names:
        rec = sr.parse_pid_record(_read_text(os.path.join(d, name)))
        if rec is not None and rec.get("role") == "worker":
            out.append(rec)
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def log_files(store: ShardedRedis, node_id: str | None = None) -> list[LogFile]:
    """The log files of the cluster's nodes whose session dir is on this host (``node_id``: that node's)."""
    out: list[LogFile] = []
    seen: set[str] = set()
    for n in nodes(store):
        if node_id and not n.node_id.startswith(node_id):
            continue
        d = os.path.join(n.session_dir, "logs") if n.session_dir else ""
        if not d or d in seen or not os.path.isdir(d):
            continue  # another host's node, or a session removed since
        seen.add(d)
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            try:
                out.append(LogFile(n.node_id, name, path, os.path.getsize(path)))
            except OSError:
                continue
    return out


def resolve_log(store: ShardedRedis, node_id: str | None, filename: str | None, actor_id: str | None,
                pid: int | None, suffix: str, task_id: str | None = None) -> LogFile:
    """The file to print: ``filename``, or the log of the worker hosting ``actor_id``, of worker ``pid``,
    or of the worker that ran ``task_id`` (known once the task ended: the whole log, not only its lines)."""
    files = log_files(store, node_id)
    if filename is not None:
        wanted = filename
    elif actor_id is not None:
        actor = next((a for a in actors(store) if a.actor_id == actor_id), None)
        if actor is None or not actor.worker_id:
            raise sr.StateApiError(f"actor {actor_id} not found, or it never had a worker")
        wanted = f"worker-{actor.worker_id[:12]}.{suffix}"
    elif task_id is not None:
        ran = [t for t in tasks(store) if t.task_id == task_id]
        if not ran or not ran[-1].worker_id:
            raise sr.StateApiError(f"task {task_id} is not in the task table, or has not ended on a worker yet")
        wanted = f"worker-{ran[-1].worker_id[:12]}.{suffix}"
    elif pid is not None:
        worker = next((w for w in workers(store) if w.pid == pid), None)
        if worker is None or not worker.log_name:
            raise sr.StateApiError(f"no worker process with pid {pid} is recorded by this host's nodes")
        wanted = f"{worker.log_name}.{suffix}"
    else:
        raise sr.StateApiError("give a file name, an actor id, a task id or a pid")
    match = [f for f in files if f.name == wanted]
    if not match:
        raise sr.StateApiError(f"no log file {wanted!r} on this host's nodes"
                               + (f" (node {node_id})" if node_id else ""))
    return match[0]


def stream_log(path: str, tail: int, follow: bool) -> Iterator[str]:
    """The last ``tail`` lines of ``path`` (-1: all), then with ``follow`` each line appended until the caller
    stops iterating or the file is removed. Lines keep their newline."""
    with open(path, errors="replace") as fh:
        for line in sr.tail_lines(fh.read(), tail):
            yield line + "\n"
        while follow:
            chunk = fh.readline()
            if chunk:
                yield chunk
            else:
                time.sleep(_FOLLOW_POLL_S)
                if not os.path.exists(path):
                    return

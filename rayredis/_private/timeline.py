"""Chrome trace-event JSON of task and actor-method executions, built from the Redis task table.

The builder (:func:`build_trace`) is sans-I/O: task entries, nodes and actor options in, a list of
trace events out. :func:`read_timeline` is the one read it needs (a SCAN of every data shard's task
entries, the node and actor tables). Each node is a process (``pid``), each worker a thread
(``tid``), named by ``M`` metadata events. Per ended task:

* ``task:submit`` — an instant event when its first raylet received it (``creation_time``), on the
  submitter's node;
* ``task:scheduling`` — an async span (``b``/``e``) on the node that ran it, from ``creation_time``
  until its execution began (waiting for arguments, resources, a worker, or earlier calls of its
  actor); to ``end_time`` for a task that never reached a worker;
* ``task::<name>`` — a complete event (``X``) on its worker's row, from when the raylet handed it to
  the worker (``start_time``) to its end (``end_time``), with the task's fields in ``args``.

A worker runs one call at a time unless it hosts a threaded or async actor, so on the other workers
a call handed over while the previous one ran starts when that one ended (the raylet pipelines
actor calls). Calls of concurrent actors that overlap go to extra rows of that worker.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from rayredis._private import state_reader, worker_context
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store import keys
from rayredis.store.client import ShardedRedis
from rayredis.store.tables import ActorEntry, TaskEntry, read_nodes

#: The row of a node's raylet (submissions and scheduling spans); workers get 1, 2, ...
RAYLET_TID = 0

_KINDS = {pb.NORMAL_TASK: "NORMAL_TASK", pb.ACTOR_CREATION: "ACTOR_CREATION_TASK", pb.ACTOR_TASK: "ACTOR_TASK"}
# Chrome's reserved colour names (Ray's timeline uses the same set).
_COLOURS = {"FINISHED": "rail_response", "FAILED": "terrible", "CANCELLED": "generic_work"}

Event = dict[str, object]


@dataclass(frozen=True)
class NodeLabel:
    """What the trace says of a node: its IP, and whether it is the head."""

    node_id: str
    ip: str
    is_head: bool = False


def _us(t: float) -> float:
    return round(t * 1e6, 3)


def _spec(raw: bytes) -> pb.TaskSpec:
    spec = pb.TaskSpec()
    if raw:
        try:
            spec.ParseFromString(raw)
        except Exception:  # noqa: BLE001 - a truncated or foreign spec: the entry without it
            spec = pb.TaskSpec()
    return spec


def concurrent_actors(actors: Iterable[ActorEntry]) -> set[str]:
    """Hex IDs of the actors that run several calls at once (async, or ``max_concurrency`` > 1)."""
    out = set()
    for a in actors:
        if a.is_async or _spec(a.spec).actor_options.max_concurrency > 1:
            out.add(a.actor_id)
    return out


def build_trace(tasks: Sequence[TaskEntry], nodes: Sequence[NodeLabel],
                concurrent: Collection[str] = ()) -> list[Event]:
    """The trace events of the ended tasks among ``tasks`` (pending ones have no end to draw)."""
    pids: dict[str, int] = {}
    names: list[Event] = []

    def pid_of(node_id: str) -> int:
        pid = pids.get(node_id)
        if pid is None:
            pid = pids[node_id] = len(pids) + 1
            label = labels.get(node_id)
            name = f"Node {label.ip} {node_id[:8]}" + (" (head)" if label and label.is_head else "") if label \
                else f"Node {node_id[:8] or 'unknown'}"
            names.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": name}})
            names.append({"name": "process_sort_index", "ph": "M", "pid": pid, "args": {"sort_index": pid}})
            names.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": RAYLET_TID,
                          "args": {"name": "raylet (submissions, scheduling)"}})
        return pid

    labels = {n.node_id: n for n in nodes}
    for n in sorted(nodes, key=lambda n: (not n.is_head, n.node_id)):
        pid_of(n.node_id)
    ended = sorted((t for t in tasks if t.state.terminal and t.end_time), key=lambda t: (t.start_time or t.end_time))
    events: list[Event] = []
    # Per (node, worker): the end of each row's last call, for the one-at-a-time clipping and lanes.
    rows: dict[tuple[str, str], list[float]] = {}
    tids: dict[tuple[str, str, int], int] = {}
    for t in ended:
        spec = _spec(t.spec)
        name = spec.name or spec.method_name or "<unknown>"
        actor = spec.actor_id.hex()
        pid = pid_of(t.node)
        args: dict[str, object] = {
            "task_id": t.task_id, "attempt_number": t.attempt, "state": t.state.value, "job_id": str(t.job),
            "type": _KINDS.get(spec.kind, "NORMAL_TASK"), "func_or_class_name": name, "node_id": t.node,
            "worker_id": t.worker or None, "actor_id": actor or None, "error_type": t.error_type or None}
        submitted = t.creation_time or t.start_time or t.end_time
        sub_node = spec.submitter_node.hex() or t.node
        events.append({"name": "task:submit", "cat": "submission", "ph": "i", "s": "t", "ts": _us(submitted),
                       "pid": pid_of(sub_node), "tid": RAYLET_TID, "args": {"task_id": t.task_id, "name": name}})
        start = t.start_time if t.start_time and t.worker else 0.0
        exec_start = start
        if start:
            lanes = rows.setdefault((t.node, t.worker), [])
            if actor in concurrent:
                lane = next((i for i, end in enumerate(lanes) if end <= start), len(lanes))
            else:
                lane = 0
                if lanes:
                    exec_start = min(max(start, lanes[0]), t.end_time)
            if lane == len(lanes):
                lanes.append(t.end_time)
            else:
                lanes[lane] = max(lanes[lane], t.end_time)
            tid = tids.get((t.node, t.worker, lane))
            if tid is None:
                tid = tids[(t.node, t.worker, lane)] = len(tids) + 1
                row = f"worker:{t.worker[:12]}" + (f" #{lane + 1}" if lane else "")
                names.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": row}})
            events.append({"name": f"task::{name}", "cat": "task", "ph": "X", "ts": _us(exec_start),
                           "dur": _us(t.end_time - exec_start), "pid": pid, "tid": tid,
                           "cname": _COLOURS.get(t.state.value, "generic_work"), "args": args})
        sched_end = exec_start or t.end_time
        sched_start = min(submitted, sched_end)
        common = {"name": "task:scheduling", "cat": "scheduling", "id": f"{t.task_id}:{t.attempt}",
                  "pid": pid, "tid": RAYLET_TID}
        events.append({**common, "ph": "b", "ts": _us(sched_start), "args": {"task_id": t.task_id, "name": name,
                                                                            "ran": bool(start)}})
        events.append({**common, "ph": "e", "ts": _us(sched_end)})
    return names + events


def node_labels(store: ShardedRedis) -> list[NodeLabel]:
    """Every registered node, as the trace names it."""
    return [NodeLabel(n.node_id, n.info.node_ip, n.info.is_head) for n in read_nodes(store.primary) if n.info]


def read_timeline(store: ShardedRedis) -> list[Event]:
    """The trace of every ended task still in the task table (entries expire ``task_table_ttl_s``
    after they end)."""
    prefix = keys.task_key("")
    tasks = [e for shard in state_reader._data_shards(store) for tid, raw in state_reader._scan_hashes(shard, prefix)
             if (e := TaskEntry.from_redis(tid, raw))]
    p = store.primary
    ids = sorted(a.decode() if isinstance(a, bytes) else a for a in p.smembers(keys.actors_index_key()))
    pipe = p.pipeline(transaction=False)
    for aid in ids:
        pipe.hgetall(keys.actor_key(aid))
    actors = [a for aid, raw in zip(ids, pipe.execute(), strict=True) if (a := ActorEntry.from_redis(aid, raw))]
    return build_trace(tasks, node_labels(store), concurrent_actors(actors))


def dump(events: Sequence[Mapping[str, object]], filename: str) -> None:
    """Write ``events`` as a JSON array (what chrome://tracing and Perfetto load)."""
    with open(filename, "w") as f:
        json.dump(list(events), f)


def timeline(filename: str | None = None) -> list[Event] | None:
    """Ray's ``ray.timeline``: the trace events of the connected cluster's ended tasks, or (with
    ``filename``) write them there as JSON for chrome://tracing or https://ui.perfetto.dev and
    return None. Raises ``RuntimeError`` before ``init()``."""
    cw = worker_context.global_worker
    if cw is None:
        raise RuntimeError("rayredis.timeline() needs a connected cluster: call rayredis.init() first.")
    events = read_timeline(cw.store)
    if filename is None:
        return events
    dump(events, filename)
    return None

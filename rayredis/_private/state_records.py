"""Sans-I/O core of the state API: Redis table entries in, Ray-shaped state records, filters and summaries out.

The records carry Ray's field names (``ray.util.state.common``: ``ActorState``, ``TaskState``, ...)
so that code and scripts written against ``ray.util.state`` read them unchanged. Nothing here
touches a socket: :mod:`rayredis._private.state_reader` reads the tables and passes the parsed
entries (:mod:`rayredis.store.tables`) to the ``*_record`` builders.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store.tables import (
    ActorEntry,
    JobInfo,
    NodeRecord,
    ObjectEntry,
    PlacementGroupEntry,
    TaskEntry,
)

#: One filter as Ray takes it: ``("state", "=", "ALIVE")``; predicates are ``=`` and ``!=``.
Filter = tuple[str, str, Any]

DEFAULT_LIMIT = 100
_TASK_TYPES = {pb.NORMAL_TASK: "NORMAL_TASK", pb.ACTOR_CREATION: "ACTOR_CREATION_TASK", pb.ACTOR_TASK: "ACTOR_TASK"}


class StateApiError(ValueError):
    """A malformed query: unknown resource, unknown filter key or predicate."""


@dataclass(frozen=True)
class NodeState:
    """A node, as ``ray.util.state.list_nodes`` returns it."""

    node_id: str
    node_ip: str
    is_head_node: bool
    state: str
    node_name: str
    resources_total: dict[str, float]
    start_time_ms: int | None = None
    #: rayredis additions: the raylet's gRPC address, its session directory and last load report.
    address: str = ""
    session_dir: str = ""
    resources_available: dict[str, float] = field(default_factory=dict)
    object_store_used: int = 0
    num_workers: int = 0
    heartbeats: int = 0


@dataclass(frozen=True)
class JobState:
    """A job (one driver), as ``list_jobs`` returns it (Ray's driver-job fields)."""

    job_id: str
    status: str
    type: str
    entrypoint: str
    driver_pid: int
    driver_node_id: str
    namespace: str
    start_time: int | None = None


@dataclass(frozen=True)
class ActorState:
    """An actor, as ``list_actors`` returns it."""

    actor_id: str
    class_name: str
    state: str
    job_id: str
    name: str
    node_id: str | None
    pid: int | None
    ray_namespace: str
    is_detached: bool = False
    num_restarts: int = 0
    max_restarts: int = 0
    death_cause: dict[str, Any] | None = None
    #: rayredis addition: the hosting worker's id (its log is ``worker-<worker_id[:12]>.*``).
    worker_id: str = ""


@dataclass(frozen=True)
class TaskState:
    """A task attempt, as ``list_tasks`` returns it.

    ``state`` is the task table's: PENDING (queued or running; RUNNING is known to the raylet only),
    FINISHED, FAILED or CANCELLED.
    """

    task_id: str
    attempt_number: int
    name: str
    state: str
    job_id: str
    actor_id: str | None
    type: str
    func_or_class_name: str
    parent_task_id: str
    node_id: str | None
    worker_id: str | None = None
    #: Ray's ``ErrorType`` name: TASK_EXECUTION_EXCEPTION, WORKER_DIED, ACTOR_DIED, NODE_DIED, ...
    error_type: str | None = None
    required_resources: dict[str, float] = field(default_factory=dict)
    #: When its first raylet received it, and when it ended (None: not recorded, or not ended).
    creation_time_ms: int | None = None
    end_time_ms: int | None = None
    #: When the raylet that ran it handed it to its worker (None: not recorded, or it never reached one).
    start_time_ms: int | None = None


@dataclass(frozen=True)
class ObjectState:
    """An object with at least one copy in a node's store, as ``list_objects`` returns it."""

    object_id: str
    object_size: int
    task_id: str
    is_error: bool
    node_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PlacementGroupState:
    """A placement group, as ``list_placement_groups`` returns it."""

    placement_group_id: str
    name: str
    creator_job_id: str
    state: str
    bundles: list[dict[str, Any]] = field(default_factory=list)
    is_detached: bool = False
    strategy: str = "PACK"


@dataclass(frozen=True)
class WorkerState:
    """A worker process of a node on this host, as ``list_workers`` returns it (from its pid record)."""

    worker_id: str
    is_alive: bool
    worker_type: str
    node_id: str
    ip: str
    pid: int
    #: rayredis addition: the base name of its log files in the session's ``logs/``.
    log_name: str = ""


# ---- records from table entries ----------------------------------------------------------------


def _ms(seconds: float) -> int | None:
    return int(seconds * 1000) if seconds else None


def node_record(n: NodeRecord) -> NodeState:
    info, load = n.info, n.load
    return NodeState(
        node_id=n.node_id, node_ip=info.node_ip if info else "", is_head_node=bool(info and info.is_head),
        state=n.state, node_name=info.node_ip if info else "",
        resources_total=dict(load.total if load else info.resources if info else {}),
        start_time_ms=_ms(info.start_time) if info else None, address=info.address if info else "",
        session_dir=info.session_dir if info else "", resources_available=dict(load.available) if load else {},
        object_store_used=load.object_store_used if load else 0, num_workers=load.workers if load else 0,
        heartbeats=n.heartbeats)


def job_record(job: JobInfo, state: str) -> JobState:
    return JobState(job_id=str(job.job_id), status=state or "UNKNOWN", type="DRIVER", entrypoint=job.entrypoint,
                    driver_pid=job.driver_pid, driver_node_id=job.node_id, namespace=job.namespace,
                    start_time=_ms(job.start_time))


def actor_record(a: ActorEntry) -> ActorState:
    placed = a.state.value in ("ALIVE", "RESTARTING", "SCHEDULED", "DEAD") and bool(a.node)
    return ActorState(
        actor_id=a.actor_id, class_name=a.class_name, state=a.state.value, job_id=str(a.job), name=a.name,
        node_id=a.node if placed else None, pid=a.pid or None, ray_namespace=a.namespace, is_detached=a.detached,
        num_restarts=a.num_restarts, max_restarts=a.max_restarts,
        death_cause={"error_message": a.death_cause} if a.death_cause else None, worker_id=a.worker)


def task_record(t: TaskEntry) -> TaskState:
    """The record of a task entry; its name, type and resources come from the stored TaskSpec."""
    spec = pb.TaskSpec()
    if t.spec:
        try:
            spec.ParseFromString(t.spec)
        except Exception:  # noqa: BLE001 - a truncated or foreign spec: show the entry without it
            spec = pb.TaskSpec()
    name = spec.name or spec.method_name or "<unknown>"
    kind = _TASK_TYPES.get(spec.kind, "NORMAL_TASK")
    if kind == "ACTOR_CREATION_TASK":
        func_or_class = name.split(".", 1)[0]
    else:
        func_or_class = name
    return TaskState(
        task_id=t.task_id, attempt_number=t.attempt, name=name, state=t.state.value, job_id=str(t.job),
        actor_id=spec.actor_id.hex() or None, type=kind, func_or_class_name=func_or_class,
        parent_task_id=spec.parent_task_id.hex(), node_id=t.node or None, worker_id=t.worker or None,
        error_type=t.error_type or None,
        required_resources=dict(spec.resources), creation_time_ms=_ms(t.creation_time), end_time_ms=_ms(t.end_time),
        start_time_ms=_ms(t.start_time))


def parse_pid_record(text: str) -> dict[str, Any] | None:
    """A session's ``pids/<pid>`` JSON record, with ``worker_id`` taken from a worker's command line."""
    try:
        rec = json.loads(text)
    except ValueError:
        return None
    if not isinstance(rec, dict) or "pid" not in rec:
        return None
    argv = [str(a) for a in rec.get("cmdline") or ()]
    if "--worker-id" in argv[:-1]:
        rec["worker_id"] = argv[argv.index("--worker-id") + 1]
    return rec


def worker_record(node: NodeState, rec: Mapping[str, Any], is_alive: bool) -> WorkerState:
    wid = str(rec.get("worker_id", ""))
    return WorkerState(worker_id=wid, is_alive=is_alive, worker_type="WORKER", node_id=node.node_id, ip=node.node_ip,
                       pid=int(rec["pid"]), log_name=f"worker-{wid[:12]}" if wid else "")


def object_record(o: ObjectEntry) -> ObjectState:
    return ObjectState(object_id=o.object_id, object_size=o.size, task_id=o.task, is_error=o.error,
                       node_ids=sorted(o.locations))


def placement_group_record(p: PlacementGroupEntry) -> PlacementGroupState:
    bundles = [{"bundle_id": i, "unit_resources": b, "node_id": p.nodes[i] if i < len(p.nodes) else None}
               for i, b in enumerate(p.bundles)]
    return PlacementGroupState(placement_group_id=p.pg_id, name=p.name, creator_job_id=str(p.job),
                               state=p.state.value, bundles=bundles, is_detached=p.detached, strategy=p.strategy)


# ---- filters and limits ------------------------------------------------------------------------


def parse_filter(text: str) -> Filter:
    """``key=value`` or ``key!=value`` (the CLI's ``--filter``) as a filter tuple."""
    for op in ("!=", "="):
        key, sep, value = text.partition(op)
        if sep and key.strip():
            return key.strip(), op, value.strip()
    raise StateApiError(f"invalid filter {text!r}: expected key=value or key!=value")


def _matches(value: Any, want: Any) -> bool:
    if isinstance(value, bool):
        return str(want).strip().lower() in (("true", "1") if value else ("false", "0"))
    if value is None:
        return str(want) in ("", "None", "null")
    text = str(want)
    return str(value) == text or (isinstance(value, str) and value.isupper() and value == text.upper())


def apply_filters(records: Iterable[Any], filters: Sequence[Filter] | None, limit: int | None) -> list[Any]:
    """The records passing every filter (Ray's ``=``/``!=``; state names match case-insensitively),
    at most ``limit`` of them (None: all). Unknown keys or predicates raise :class:`StateApiError`."""
    out: list[Any] = []
    checked = False
    for r in records:
        if not checked:
            names = {f.name for f in dataclasses.fields(r)}
            for key, op, _ in filters or ():
                if key not in names:
                    raise StateApiError(f"unknown filter key {key!r}; the keys are: {', '.join(sorted(names))}")
                if op not in ("=", "!="):
                    raise StateApiError(f"unsupported predicate {op!r}: use '=' or '!='")
            checked = True
        if all(_matches(getattr(r, k), v) == (op == "=") for k, op, v in filters or ()):
            out.append(r)
            if limit is not None and len(out) >= limit:
                break
    return out


def to_dict(record: Any) -> dict[str, Any]:
    return dataclasses.asdict(record)


def log_category(name: str) -> str:
    """The ``list_logs`` group of a log file: ``worker-ab12.out`` -> ``worker_out``, ``raylet.log`` -> ``raylet``."""
    base, _, ext = name.partition(".")
    if base.startswith("worker-"):
        return "worker_" + (ext.split(".")[0] or "log")
    for component in ("gcs_server", "raylet", "redis", "sentinel", "supervisor"):
        if base.startswith(component):
            return component
    return "misc"


def fnmatch_name(name: str, pattern: str) -> bool:
    """Whether a log file name matches a shell-style ``--glob`` pattern (case-sensitive)."""
    return fnmatch.fnmatchcase(name, pattern)


def tail_lines(text: str, tail: int) -> list[str]:
    """The last ``tail`` lines of ``text`` (all of them when ``tail`` < 0), without their newlines."""
    lines = text.splitlines()
    return lines if tail < 0 else lines[len(lines) - tail:] if tail else []


# ---- summaries (Ray's summarize_* shapes: {"cluster": {...}}) ----------------------------------


def summarize_task_records(tasks: Iterable[TaskState]) -> dict[str, Any]:
    summary: dict[str, dict[str, Any]] = {}
    total = total_actor = total_creation = 0
    for t in tasks:
        s = summary.setdefault(t.func_or_class_name, {"func_or_class_name": t.func_or_class_name, "type": t.type,
                                                      "state_counts": {}})
        s["state_counts"][t.state] = s["state_counts"].get(t.state, 0) + 1
        if t.type == "ACTOR_TASK":
            total_actor += 1
        elif t.type == "ACTOR_CREATION_TASK":
            total_creation += 1
        else:
            total += 1
    return {"cluster": {"summary": summary, "total_tasks": total, "total_actor_tasks": total_actor,
                        "total_actor_scheduled": total_creation, "summary_by": "func_name"}}


def summarize_actor_records(actors: Iterable[ActorState]) -> dict[str, Any]:
    summary: dict[str, dict[str, Any]] = {}
    total = 0
    for a in actors:
        s = summary.setdefault(a.class_name, {"class_name": a.class_name, "state_counts": {}})
        s["state_counts"][a.state] = s["state_counts"].get(a.state, 0) + 1
        total += 1
    return {"cluster": {"summary": summary, "total_actors": total, "summary_by": "class"}}


def summarize_object_records(objects: Iterable[ObjectState], tasks: Mapping[str, TaskState]) -> dict[str, Any]:
    """Objects grouped by the name of the task that made them (``ray.put`` objects: their own group)."""
    summary: dict[str, dict[str, Any]] = {}
    total, total_bytes = 0, 0
    for o in objects:
        t = tasks.get(o.task_id)
        key = t.func_or_class_name if t else "(ray.put or expired task)"
        s = summary.setdefault(key, {"total_objects": 0, "total_size_mb": 0.0, "total_num_nodes": 0,
                                     "task_state_counts": {}, "_nodes": set()})
        s["total_objects"] += 1
        s["total_size_mb"] += o.object_size / 2**20
        s["_nodes"].update(o.node_ids)
        state = t.state if t else "NIL"
        s["task_state_counts"][state] = s["task_state_counts"].get(state, 0) + 1
        total += 1
        total_bytes += o.object_size
    for s in summary.values():
        s["total_num_nodes"] = len(s.pop("_nodes"))
    return {"cluster": {"summary": summary, "total_objects": total, "total_size_mb": total_bytes / 2**20,
                        "callsite_enabled": False, "summary_by": "task"}}

"""Ray's state API (``ray.util.state``): stateless reads of the cluster's Redis tables, with Ray's names.

``address`` is ``None`` (the cluster this process is connected to, else ``RAYREDIS_ADDRESS`` or the
cluster ``rayredis start --head`` recorded), ``"auto"`` or ``host:port`` of the primary Redis
shard; the password is found as the CLI finds it (``RAYREDIS_REDIS_PASSWORD``, the current-cluster
file). Filters are Ray's: ``filters=[("state", "=", "ALIVE")]`` with ``=`` and ``!=``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from rayredis._private import events, worker_context
from rayredis._private import state_reader as reader
from rayredis._private.events import ClusterEventState
from rayredis._private.state_records import (
    DEFAULT_LIMIT,
    ActorState,
    Filter,
    JobState,
    NodeState,
    ObjectState,
    PlacementGroupState,
    StateApiError,
    TaskState,
    WorkerState,
    apply_filters,
    fnmatch_name,
    log_category,
    summarize_actor_records,
    summarize_object_records,
    summarize_task_records,
)
from rayredis.cli.common import CliError, connect, resolve_cluster
from rayredis.store.client import ShardedRedis

__all__ = ["ActorState", "ClusterEventState", "JobState", "NodeState", "ObjectState", "PlacementGroupState",
           "StateApiError", "TaskState", "WorkerState", "get_actor", "get_log", "get_node", "get_placement_group",
           "get_task", "list_actors", "list_cluster_events", "list_jobs", "list_logs", "list_nodes", "list_objects",
           "list_placement_groups", "list_tasks", "list_workers", "summarize_actors", "summarize_objects",
           "summarize_tasks"]

R = TypeVar("R")


@contextmanager
def _store(address: str | None) -> Iterator[ShardedRedis]:
    cw = worker_context.global_worker
    if address is None and cw is not None:
        yield cw.store  # this process's own connection: not ours to close
        return
    try:
        store = connect(*resolve_cluster(address, None))
    except CliError as e:  # no cluster found, wrong password, unreachable: Ray raises ConnectionError too
        raise ConnectionError(str(e)) from None
    try:
        yield store
    finally:
        store.close()


def _list(read: Callable[[ShardedRedis], list[R]], address: str | None, filters: Sequence[Filter] | None,
          limit: int | None) -> list[R]:
    with _store(address) as store:
        return apply_filters(read(store), filters, limit)


def list_nodes(address: str | None = None, filters: Sequence[Filter] | None = None, limit: int = DEFAULT_LIMIT,
               timeout: float = 30, detail: bool = False, **_: Any) -> list[NodeState]:
    """Every node that registered, alive or dead."""
    return _list(reader.nodes, address, filters, limit)


def list_jobs(address: str | None = None, filters: Sequence[Filter] | None = None, limit: int = DEFAULT_LIMIT,
              timeout: float = 30, detail: bool = False, **_: Any) -> list[JobState]:
    """Every job (driver) of the cluster, RUNNING or FINISHED."""
    return _list(reader.jobs, address, filters, limit)


def list_actors(address: str | None = None, filters: Sequence[Filter] | None = None, limit: int = DEFAULT_LIMIT,
                timeout: float = 30, detail: bool = False, **_: Any) -> list[ActorState]:
    """Every actor, in every state (DEAD ones included, as Ray lists them)."""
    return _list(reader.actors, address, filters, limit)


def list_tasks(address: str | None = None, filters: Sequence[Filter] | None = None, limit: int = DEFAULT_LIMIT,
               timeout: float = 30, detail: bool = False, **_: Any) -> list[TaskState]:
    """The tasks in the task table: pending ones, and ended ones until ``task_table_ttl_s`` expires them."""
    return _list(reader.tasks, address, filters, limit)


def list_objects(address: str | None = None, filters: Sequence[Filter] | None = None, limit: int = DEFAULT_LIMIT,
                 timeout: float = 30, detail: bool = False, **_: Any) -> list[ObjectState]:
    """The objects that have a copy in some node's store."""
    return _list(reader.objects, address, filters, limit)


def list_placement_groups(address: str | None = None, filters: Sequence[Filter] | None = None,
                          limit: int = DEFAULT_LIMIT, timeout: float = 30, detail: bool = False,
                          **_: Any) -> list[PlacementGroupState]:
    return _list(reader.placement_groups, address, filters, limit)


def list_workers(address: str | None = None, filters: Sequence[Filter] | None = None, limit: int = DEFAULT_LIMIT,
                 timeout: float = 30, detail: bool = False, **_: Any) -> list[WorkerState]:
    """The worker processes of the nodes on this host (other hosts' workers are not in Redis)."""
    return _list(reader.workers, address, filters, limit)


def list_cluster_events(address: str | None = None, filters: Sequence[Filter] | None = None,
                        limit: int = DEFAULT_LIMIT, timeout: float = 30, detail: bool = False,
                        **_: Any) -> list[ClusterEventState]:
    """The cluster's events (node deaths, actor restarts, GCS takeovers, restarts by supervisors...), newest
    first; the stream keeps the last ``events.MAXLEN``."""
    return _list(events.newest_first, address, filters, limit)


def _get(read: Callable[[ShardedRedis], list[R]], field: str, id: str, address: str | None) -> R | None:
    found = _list(read, address, [(field, "=", id)], None)
    return found[-1] if found else None


def get_actor(id: str, address: str | None = None, timeout: float = 30, **_: Any) -> ActorState | None:
    return _get(reader.actors, "actor_id", id, address)


def get_task(id: str, address: str | None = None, timeout: float = 30, **_: Any) -> TaskState | None:
    return _get(reader.tasks, "task_id", id, address)


def get_node(id: str, address: str | None = None, timeout: float = 30, **_: Any) -> NodeState | None:
    return _get(reader.nodes, "node_id", id, address)


def get_placement_group(id: str, address: str | None = None, timeout: float = 30,
                        **_: Any) -> PlacementGroupState | None:
    return _get(reader.placement_groups, "placement_group_id", id, address)


def summarize_tasks(address: str | None = None, timeout: float = 30, **_: Any) -> dict[str, Any]:
    """Ray's shape: ``{"cluster": {"summary": {func_or_class_name: {"state_counts": ...}}, "total_tasks": N}}``."""
    with _store(address) as store:
        return summarize_task_records(reader.tasks(store))


def summarize_actors(address: str | None = None, timeout: float = 30, **_: Any) -> dict[str, Any]:
    with _store(address) as store:
        return summarize_actor_records(reader.actors(store))


def summarize_objects(address: str | None = None, timeout: float = 30, **_: Any) -> dict[str, Any]:
    with _store(address) as store:
        return summarize_object_records(reader.objects(store), {t.task_id: t for t in reader.tasks(store)})


# ---- logs (files of this host's nodes) ----------------------------------------------------------


def list_logs(address: str | None = None, node_id: str | None = None, glob_filter: str | None = None,
              timeout: float = 30, **_: Any) -> dict[str, list[str]]:
    """``{category: [file names]}`` of a node's logs (all of this host's nodes when ``node_id`` is None)."""
    with _store(address) as store:
        files = reader.log_files(store, node_id)
    out: dict[str, list[str]] = {}
    for f in files:
        if glob_filter is None or fnmatch_name(f.name, glob_filter):
            out.setdefault(log_category(f.name), []).append(f.name)
    return out


def get_log(address: str | None = None, node_id: str | None = None, filename: str | None = None,
            actor_id: str | None = None, task_id: str | None = None, pid: int | None = None,
            follow: bool = False, tail: int = 1000, suffix: str = "out", **_: Any) -> Iterator[str]:
    """The last ``tail`` lines (-1: all) of one log file (by name, actor id, task id or worker pid), then, with
    ``follow``, every line appended to it until the caller stops iterating. Lines keep their newline."""
    with _store(address) as store:
        f = reader.resolve_log(store, node_id, filename, actor_id, pid, suffix, task_id)
    yield from reader.stream_log(f.path, tail, follow)

"""The raylet's local scheduler: a sans-I/O state machine, events in, dispatch decisions out."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rayredis.common.resources import GpuAllocator, ResourceSet


def _is_cpu(name: str) -> bool:
    """CPUs, including a placement-group bundle's (``CPU_group_...``): what a blocked task lends."""
    return name == "CPU" or name.startswith("CPU_group_")


def _cpus(held: ResourceSet) -> ResourceSet:
    return held.only(k for k in held.names() if _is_cpu(k))


@dataclass
class QueuedTask:
    """A normal task or actor creation waiting for its arguments, resources and a worker."""

    task_id: bytes
    demand: ResourceSet
    payload: Any = None  # the TaskSpec; opaque here
    missing: set[bytes] = field(default_factory=set)
    dedicated: bool = False  # actor creation: the worker leaves the pool


@dataclass
class Running:
    task: QueuedTask
    worker_id: bytes
    held: ResourceSet
    gpu_ids: list[int]
    blocked: bool = False


@dataclass(frozen=True)
class Dispatch:
    task: QueuedTask
    worker_id: bytes
    gpu_ids: list[int]


class LocalScheduler:
    """Tracks queued and running work on one node.

    Events: :meth:`submit`, :meth:`object_ready`, :meth:`worker_idle`, :meth:`worker_gone`,
    :meth:`finished`, :meth:`block`, :meth:`unblock`, :meth:`cancel`, resource changes.
    Decision: :meth:`schedule` returns the dispatches to perform and how many workers to start.
    It performs no I/O; the raylet shell turns decisions into messages and processes.
    """

    def __init__(self, total: ResourceSet, max_task_workers: int):
        self.total = total
        self.available = total
        self.max_task_workers = max_task_workers
        self.gpus = GpuAllocator(total.get("GPU") // 10_000)
        self.waiting: dict[bytes, QueuedTask] = {}
        self.dep_index: dict[bytes, set[bytes]] = {}
        self.ready: dict[tuple[Any, ...], deque[QueuedTask]] = {}
        self.ready_ids: set[bytes] = set()
        self.running: dict[bytes, Running] = {}
        self.idle: deque[bytes] = deque()
        self.idle_set: set[bytes] = set()
        self.num_task_workers = 0  # pooled workers alive or starting

    # ---- events ----------------------------------------------------------------------------

    def submit(self, task: QueuedTask) -> None:
        if task.missing:
            self.waiting[task.task_id] = task
            for oid in task.missing:
                self.dep_index.setdefault(oid, set()).add(task.task_id)
        else:
            self._make_ready(task)

    def object_ready(self, oid: bytes) -> None:
        for tid in self.dep_index.pop(oid, ()):
            task = self.waiting.get(tid)
            if task is None:
                continue
            task.missing.discard(oid)
            if not task.missing:
                del self.waiting[tid]
                self._make_ready(task)

    def worker_idle(self, wid: bytes) -> None:
        if wid not in self.idle_set:
            self.idle_set.add(wid)
            self.idle.append(wid)

    def worker_started(self, n: int = 1) -> None:
        self.num_task_workers += n

    def worker_gone(self, wid: bytes, pooled: bool = True) -> Running | None:
        """A worker exited; returns what it was running (resources already released)."""
        if wid in self.idle_set:
            self.idle_set.discard(wid)
            self.idle = deque(w for w in self.idle if w != wid)
        if pooled:
            self.num_task_workers = max(0, self.num_task_workers - 1)
        for tid, run in list(self.running.items()):
            if run.worker_id == wid:
                return self.finished(tid)
        return None

    def finished(self, tid: bytes) -> Running | None:
        """The task ended; give back its resources."""
        run = self.running.pop(tid, None)
        if run is None:
            return None
        if not run.blocked:
            self.available = self.available + run.held
        else:
            self.available = self.available + run.held.only(k for k in run.held.names() if not _is_cpu(k))
        if run.gpu_ids:
            self.gpus.release(run.gpu_ids, run.held.get("GPU"))
        return run

    def block(self, tid: bytes) -> None:
        """The task's worker waits in ``get``: lend its CPUs to others so nested tasks can run."""
        run = self.running.get(tid)
        if run is not None and not run.blocked:
            run.blocked = True
            self.available = self.available + _cpus(run.held)

    def unblock(self, tid: bytes) -> None:
        run = self.running.get(tid)
        if run is not None and run.blocked:
            run.blocked = False
            self.available = self.available - _cpus(run.held)

    def cancel(self, tid: bytes) -> QueuedTask | None:
        """Remove a not-yet-dispatched task; None if it is not queued here."""
        task = self.waiting.pop(tid, None)
        if task is not None:
            for oid in task.missing:
                self.dep_index.get(oid, set()).discard(tid)
            return task
        if tid in self.ready_ids:
            for q in self.ready.values():
                for t in q:
                    if t.task_id == tid:
                        q.remove(t)
                        self.ready_ids.discard(tid)
                        return t
        return None

    def add_resources(self, extra: ResourceSet) -> None:
        self.total = self.total + extra
        self.available = self.available + extra

    def remove_resources(self, gone: ResourceSet) -> None:
        self.total = self.total - gone
        self.available = self.available - gone

    def acquire(self, demand: ResourceSet) -> bool:
        """Take resources outside task dispatch (placement-group bundles)."""
        if not demand.fits_in(self.available):
            return False
        self.available = self.available - demand
        return True

    def release(self, demand: ResourceSet) -> None:
        self.available = self.available + demand

    # ---- decisions ---------------------------------------------------------------------------

    def schedule(self) -> tuple[list[Dispatch], int]:
        """Dispatch every ready task that fits and has an idle worker; say how many to start.

        Actor creations are served first and may start workers beyond the pool cap: their
        worker leaves the pool for good, so a busy task queue must not starve them.
        """
        out: list[Dispatch] = []
        want = {True: 0, False: 0}
        for shape, q in sorted(self.ready.items(), key=lambda kv: not kv[1][0].dedicated if kv[1] else True):
            while q:
                task = q[0]
                if not task.demand.fits_in(self.available) or not self.gpus.can_acquire(task.demand.get("GPU")):
                    break
                if not self.idle:
                    want[task.dedicated] += len(q)
                    break
                q.popleft()
                self.ready_ids.discard(task.task_id)
                wid = self.idle.popleft()
                self.idle_set.discard(wid)
                self.available = self.available - task.demand
                gpu_ids = self.gpus.acquire(task.demand.get("GPU"))
                self.running[task.task_id] = Running(task, wid, task.demand, gpu_ids)
                if task.dedicated:
                    self.num_task_workers = max(0, self.num_task_workers - 1)
                out.append(Dispatch(task, wid, gpu_ids))
            if not q:
                del self.ready[shape]
        blocked = sum(1 for r in self.running.values() if r.blocked)
        cap = self.max_task_workers + blocked
        busy = sum(1 for r in self.running.values() if not r.task.dedicated)
        starting = max(0, self.num_task_workers - busy - len(self.idle))
        for_actors = max(0, want[True] - starting)
        starting_for_tasks = max(0, starting - want[True])
        for_tasks = max(0, min(want[False] - starting_for_tasks, cap - self.num_task_workers - for_actors))
        return out, for_actors + for_tasks

    def spill_candidates(self) -> list[tuple[tuple[Any, ...], ResourceSet]]:
        """Shapes of ready, non-dedicated tasks that do not fit in what is available now."""
        return [(k, q[0].demand) for k, q in self.ready.items()
                if q and not q[0].dedicated and not q[0].demand.fits_in(self.available)]

    def head(self, key: tuple[Any, ...]) -> QueuedTask | None:
        q = self.ready.get(key)
        return q[0] if q else None

    def pop_head(self, key: tuple[Any, ...]) -> QueuedTask:
        """Take the first ready task of a shape out (it runs elsewhere)."""
        q = self.ready[key]
        task = q.popleft()
        self.ready_ids.discard(task.task_id)
        if not q:
            del self.ready[key]
        return task

    def infeasible(self) -> list[QueuedTask]:
        """Ready tasks whose demand exceeds this node's total resources."""
        return [t for q in self.ready.values() for t in q if not t.demand.fits_in(self.total)]

    def queue_length(self) -> int:
        return len(self.waiting) + len(self.ready_ids)

    def demands(self) -> Iterable[ResourceSet]:
        for q in self.ready.values():
            for t in q:
                yield t.demand

    def _make_ready(self, task: QueuedTask) -> None:
        self.ready.setdefault(task.demand.key() + ((task.dedicated,),), deque()).append(task)
        self.ready_ids.add(task.task_id)

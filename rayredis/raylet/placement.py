"""Where the raylet's tasks go: waiting for arguments, placement here or on another node, spillback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rayredis import exceptions
from rayredis.common.resources import ResourceSet
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.cluster_view import LOCAL, InfeasibleError, UnschedulableError
from rayredis.raylet.object_store import PENDING as OBJ_PENDING
from rayredis.raylet.object_store import READY, REMOTE
from rayredis.raylet.records import TaskRecord
from rayredis.raylet.scheduler import QueuedTask
from rayredis.store.tables import TaskState

if TYPE_CHECKING:
    from rayredis.raylet.node_manager import NodeManager

NORMAL, ACTOR_CREATION = pb.NORMAL_TASK, pb.ACTOR_CREATION
PENDING = TaskState.PENDING


class Placement:
    """The NodeManager's placement part (docs/scheduling.md): a task waits in ``deps_index`` until
    no argument is pending anywhere, is then queued here or forwarded (:meth:`place`), and tasks
    that wait here for resources are spilled to nodes with room (:meth:`spill`)."""

    def __init__(self, nm: NodeManager):
        self.nm = nm
        #: Tasks waiting for arguments that are not sealed anywhere yet, before they are placed.
        self.deps_index: dict[bytes, set[bytes]] = {}
        #: (job, resource shape) pairs already warned about as infeasible.
        self._warned: set[tuple[int, tuple[tuple[str, int], ...]]] = set()

    def enqueue(self, rec: TaskRecord) -> None:
        """Place the task once no argument is pending anywhere."""
        pending = self.pending_args(rec.spec)
        if pending:
            rec.deps = pending
            for oid in pending:
                self.deps_index.setdefault(oid, set()).add(rec.spec.task_id)
            return
        self.place(rec)

    def deps_ready(self, oid: bytes) -> None:
        tids = self.deps_index.pop(oid, None)
        if not tids:
            return
        for tid in tids:
            rec = self.nm.tasks.get(tid)
            if rec is None or oid not in rec.deps:
                continue
            rec.deps.discard(oid)
            if not rec.deps and rec.state is PENDING and not rec.forwarded_to:
                self.place(rec)

    def place(self, rec: TaskRecord) -> None:
        """Run the task here or forward it to another node (docs/scheduling.md)."""
        spec = rec.spec
        demand = ResourceSet.from_floats(dict(spec.resources))
        target = LOCAL
        if not rec.owner_node and spec.kind == NORMAL and self.nm.view.nodes:
            try:
                target = self.nm.view.place(demand, spec.strategy, self.nm.scheduler.total, self._arg_bytes(spec))
            except UnschedulableError as e:
                self.nm.fail_task(rec, exceptions.TaskUnschedulableError(str(e)))
                return
            except InfeasibleError:
                self._warn_infeasible(spec, demand)
        elif not demand.fits_in(self.nm.scheduler.total) and not rec.owner_node and spec.kind == NORMAL:
            self._warn_infeasible(spec, demand)
        if target != LOCAL:
            self.nm.peers.forward(rec, target, demand)
            return
        self.nm.scheduler.submit(QueuedTask(spec.task_id, demand, rec, self.nm.missing_args(spec),
                                         dedicated=spec.kind == ACTOR_CREATION))

    def _warn_infeasible(self, spec: pb.TaskSpec, demand: ResourceSet) -> None:
        if spec.strategy.kind == pb.STRATEGY_PLACEMENT_GROUP:
            return  # waits for its group's bundles
        key = (spec.job_id, demand.key())
        if key in self._warned:
            return
        self._warned.add(key)
        self.nm.warn_job(spec.job_id, (
            f"Warning: {spec.name!r} needs {demand.to_floats()}, more than any node of the cluster has "
            f"in total (this node: {self.nm.scheduler.total.to_floats()}); it waits until resources are added "
            "(a node that fits joins the cluster). Cancel it with rayredis.cancel."))

    def _arg_bytes(self, spec: pb.TaskSpec) -> dict[bytes, int] | None:
        out: dict[bytes, int] = {}
        for a in spec.args:
            if a.object_id:
                e = self.nm.objects.get(a.object_id)
                if e is None:
                    continue
                if e.state == READY and e.inline is None:
                    out[self.nm.node_id] = out.get(self.nm.node_id, 0) + e.size
                elif e.state == REMOTE and e.locations:
                    out[e.locations[0]] = out.get(e.locations[0], 0) + e.size
        return out or None

    def replace_infeasible(self) -> None:
        """Nodes joined or changed: tasks that fit nowhere before may fit somewhere now."""
        for t in self.nm.scheduler.infeasible():
            rec: TaskRecord = t.payload
            if rec.owner_node or rec.spec.kind != NORMAL:
                continue
            demand = t.demand
            try:
                target = self.nm.view.place(demand, rec.spec.strategy, self.nm.scheduler.total)
            except (InfeasibleError, UnschedulableError):
                continue
            if target != LOCAL and self.nm.scheduler.cancel(t.task_id) is not None:
                self.nm.peers.forward(rec, target, demand)

    def spill(self) -> None:
        """Tasks that wait here for resources go to nodes with room (the spillback of the paper)."""
        s = self.nm.scheduler
        for key, demand in s.spill_candidates():
            while True:
                t = s.head(key)
                if t is None:
                    break
                rec: TaskRecord = t.payload
                if rec.owner_node or rec.spec.kind != NORMAL or rec.spec.strategy.kind != pb.STRATEGY_DEFAULT:
                    break
                target = self.nm.view.spill_target(demand)
                if target is None:
                    return
                s.pop_head(key)
                self.nm.peers.forward(rec, target, demand)

    def pending_args(self, spec: pb.TaskSpec) -> set[bytes]:
        """Ref arguments sealed nowhere yet (as far as this node knows)."""
        out: set[bytes] = set()
        for a in spec.args:
            if a.object_id:
                e = self.nm.objects.get(a.object_id)
                if e is not None and e.state == OBJ_PENDING:
                    out.add(a.object_id)
        return out

    def drop_deps(self, rec: TaskRecord) -> None:
        for oid in rec.deps:
            tids = self.deps_index.get(oid)
            if tids is not None:
                tids.discard(rec.spec.task_id)
                if not tids:
                    del self.deps_index[oid]
        rec.deps.clear()

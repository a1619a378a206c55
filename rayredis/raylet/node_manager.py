"""The raylet's glue: turns client messages into scheduler, object-store and actor events."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable

from rayredis import exceptions, ids, serialization
from rayredis.common.resources import ResourceSet
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet import client_checks, invariants
from rayredis.raylet.actors import LocalActors
from rayredis.raylet.cluster_view import ClusterView
from rayredis.raylet.connection import Connection
from rayredis.raylet.connection_objects import disown_foreign_segments, received_put
from rayredis.raylet.lineage import Lineage
from rayredis.raylet.object_store import PENDING as OBJ_PENDING
from rayredis.raylet.object_store import READY, REMOTE, ObjectStore
from rayredis.raylet.object_waits import ObjectWaits, object_data
from rayredis.raylet.orphans import Orphans, TaskTable
from rayredis.raylet.peer_core import NoLinks, PeerCore, PeerLinks
from rayredis.raylet.placement import Placement
from rayredis.raylet.ports import ActorDirectory, TableWriter, Timers, WorkerProcesses
from rayredis.raylet.records import TaskRecord
from rayredis.raylet.scheduler import LocalScheduler
from rayredis.raylet.spill_pump import SpillPump
from rayredis.store.tables import NodeLoad, TaskState

logger = logging.getLogger(__name__)

NORMAL, ACTOR_CREATION, ACTOR_TASK = pb.NORMAL_TASK, pb.ACTOR_CREATION, pb.ACTOR_TASK
PENDING, RUNNING, FINISHED, FAILED, CANCELLED = (
    TaskState.PENDING, TaskState.RUNNING, TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELLED)


class NodeManager:
    """All per-node runtime state, driven by the I/O shell (``server.py``): events in, effects out
    through its collaborators (connections' outboxes, ``writer``, ``workers``, ``timers``)."""

    def __init__(self, node_id: bytes, node_ip: str, scheduler: LocalScheduler, objects: ObjectStore,
                 writer: TableWriter, workers: WorkerProcesses, timers: Timers, directory: ActorDirectory,
                 links: PeerLinks | None = None, view: ClusterView | None = None,
                 task_table: TaskTable | None = None):
        self.node_id = node_id
        self.node_ip = node_ip
        self.scheduler = scheduler
        self.objects = objects
        self.writer = writer
        self.workers = workers
        self.timers = timers
        self.conns: dict[bytes, Connection] = {}
        self.tasks: dict[bytes, TaskRecord] = {}
        self.waiters = ObjectWaits(objects, timers, self._need_local)
        #: Where spill and restore copies run off the event loop (None: inline, see use_spill_pump).
        self.spill_pump: SpillPump | None = None
        #: The other nodes (refreshed by the shell from their heartbeats) and the links to them.
        self.view = view if view is not None else ClusterView(node_id)
        self.peers = PeerCore(self, links if links is not None else NoLinks(), self.view)
        self.placement = Placement(self)
        self.lineage = Lineage(self)
        #: Objects whose owner died, rebuilt from the task table (none without ``task_table``).
        self.orphans = Orphans(self, task_table)
        self.deps_index = self.placement.deps_index
        #: References the store holds for return objects whose submitter was not connected (nobody
        #: will drop them): part of the refcount invariant that :meth:`validate` checks.
        self.unowned_refs: Counter[bytes] = Counter()
        #: The actors part of the core; it reaches the task side only through the ``TaskSide`` methods.
        self.actors = LocalActors(self, scheduler, workers, writer, directory, node_id)
        self._schedule_pending = False

    # ---- connections ---------------------------------------------------------------------------

    def connect(self, conn: Connection) -> None:
        self.conns[conn.worker_id] = conn
        if not conn.is_driver:
            self.workers.registered(conn.worker_id)
            if not conn.actor_id:
                self.scheduler.worker_idle(conn.worker_id)
                self.request_schedule()

    def disconnect(self, conn: Connection) -> None:
        conn.closed = True
        self.conns.pop(conn.worker_id, None)
        self.waiters.drop(conn.worker_id)
        if conn.is_driver:
            self.actors.job_finished(conn.job_id, driver_exit=True)
            self._drop_job_tasks(conn.job_id)
        elif conn.actor_id:
            self.actors.worker_died(conn)
        elif not conn.exiting:  # (an exiting worker already left the pool with its last result)
            run = self.scheduler.worker_gone(conn.worker_id)
            if run is not None:
                self._task_worker_died(run.task.task_id, f"worker pid={conn.pid} died")
        self.workers.exited(conn.worker_id)
        self.objects.release_all(conn.refs)
        self.drain_freed()
        self.request_schedule()

    # ---- inbound batches -----------------------------------------------------------------------

    def handle(self, conn: Connection, b: pb.ClientBatch) -> None:
        disown_foreign_segments(self.objects, b.puts)
        for r in b.results:
            disown_foreign_segments(self.objects, r.returns)
        for loc in b.resolves:  # (before add_refs: they count on an entry)
            self.resolve_remote(loc.object_id, loc.node_id)
        for c in b.creates:
            self._create(conn, c)
        for p in b.puts:
            self._put(conn, p)
        for oid in b.add_refs:
            conn.refs[oid] += 1
            self.objects.add_ref(oid)
        for spec in b.submit:
            problem = client_checks.spec_problem(spec)
            if problem is not None:  # (never made by the API: a broken or hostile client)
                logger.warning("dropping a task spec from client %s: %s", conn.worker_id.hex()[:8], problem)
                continue
            self.submit(conn.worker_id, spec)
        for r in b.results:
            self._result(conn, r)
        for g in b.gets:
            self.waiters.get(conn, g)
        for w in b.waits:
            self.waiters.wait(conn, w)
        for cr in b.cancels:
            self.cancel(cr.object_id, cr.force, cr.recursive)
        for k in b.kills:
            self.actors.kill_request(k)
        for rid in b.cancel_gets:
            self.waiters.forget_get(conn, rid)
        for lines in b.logs:
            for driver in self.conns.values():
                if driver.is_driver and driver.job_id == lines.job_id:
                    driver.out().logs.append(lines)
                    driver.flush()
        for tid in b.blocked:
            self.scheduler.block(tid)
        for tid in b.unblocked:
            self.scheduler.unblock(tid)
        for oid in b.remove_refs:
            if conn.refs[oid] > 0:
                conn.refs[oid] -= 1
                if conn.refs[oid] == 0:
                    del conn.refs[oid]
                self.objects.remove_ref(oid)
        self.drain_freed()
        self.request_schedule()

    # ---- objects -------------------------------------------------------------------------------

    def use_spill_pump(self, pump: SpillPump) -> None:
        """Run the spill and restore copies of creates and gets through ``pump`` (on a thread)."""
        self.spill_pump = pump
        self.waiters.restore = pump.restore

    def _create(self, conn: Connection, c: pb.CreateRequest) -> None:
        pump = self.spill_pump
        if pump is not None and c.size <= self.objects.capacity and not self.objects.fits(c.size):
            pump.need_room(c.size, c.object_id, lambda _ok: self._create_now(conn, c))
            return
        self._create_now(conn, c)

    def _create_now(self, conn: Connection, c: pb.CreateRequest) -> None:
        if conn.closed:
            return
        try:
            name = self.objects.reserve(c.object_id, c.size)
            conn.out().create_replies.add(req_id=c.req_id, shm_name=name)
        except exceptions.ObjectStoreFullError as e:
            conn.out().create_replies.add(req_id=c.req_id, error=str(e))
        conn.flush()

    def _put(self, conn: Connection, p: pb.PutObject) -> None:
        """A ``put`` from a client: it holds one reference to the new object."""
        self.objects.expect(p.object_id, refs=1)
        conn.refs[p.object_id] += 1
        if p.reclaim:  # a reconnecting driver's put it has no bytes of: what the last process left
            size = self.objects.reclaim(p.object_id, list(p.contained))
            if size >= 0:
                self.writer.object_sealed(p.object_id, size, False)
                self._object_ready(p.object_id)
                return
        if conn.objects_over_connection and p.shm_name:  # the bytes came along: write them into the segment
            p = received_put(self.objects, p)
        # Large puts reserved their room with a create request (which fails when full); small ones
        # travel inline and are accepted without a round trip, as Ray's in-memory store does.
        self.seal(p.object_id, p.inline_data if not p.shm_name else None, p.shm_name, p.size,
                  list(p.contained))

    def seal(self, oid: bytes, inline: bytes | None, shm_name: str, size: int,
             contained: list[bytes] | None = None) -> None:
        if not self.objects.seal(oid, inline, shm_name, size, contained):
            return
        is_error = inline is not None and serialization.blob_kind(inline) == serialization.KIND_ERROR
        self.writer.object_sealed(oid, size or len(inline or b""), is_error)
        self._object_ready(oid)

    def _object_ready(self, oid: bytes) -> None:
        self.placement.deps_ready(oid)
        self.scheduler.object_ready(oid)
        self.actors.object_ready(oid)
        self.waiters.object_ready(oid)
        if self.peers.watchers:
            self.peers.object_ready(oid)

    def object_available(self, oid: bytes) -> None:
        """``oid`` was sealed on other nodes (it is REMOTE here): place the tasks that waited for it,
        and pull it for the local readers that wait."""
        self.placement.deps_ready(oid)
        self.actors.object_ready(oid)
        self.waiters.object_available(oid)
        if oid in self.scheduler.dep_index:  # a task queued here waits for it (it was rebuilt, say)
            self.peers.need_local(oid)
        if self.peers.watchers:
            self.peers.object_ready(oid)

    def _need_local(self, oid: bytes) -> None:
        self.peers.need_local(oid)

    def drain_freed(self) -> None:
        objects = self.objects
        if self.lineage.records or self.lineage.asked:
            self.lineage.gone(objects.freed + [o for o, _ in objects.released])
        if self.orphans.active:
            self.orphans.sweep()
        if objects.freed:
            for oid in objects.freed:
                self.writer.object_freed(oid)
            objects.freed.clear()
        if objects.released:
            links, dead = self.peers.links, self.peers.dead
            # (Not to a node declared dead: its holds died with it, and a link to it would retry forever.)
            released = [(oid, node) for oid, node in objects.released if node not in dead]
            for oid, node in released:
                links.out(node).free.append(oid)
            for node in {n for _, n in released}:
                links.flush(node)
            objects.released.clear()

    # ---- tasks ---------------------------------------------------------------------------------

    def submit(self, submitter: bytes, spec: pb.TaskSpec, owner_node: bytes = b"") -> None:
        """A task from a client here (``submitter``), the GCS (an actor constructor) or another
        node that owns it (``owner_node``, which holds its return objects)."""
        tid = spec.task_id
        if tid in self.tasks:
            return  # duplicate delivery
        rec = TaskRecord(spec=spec, submitter=submitter, pinned=[], attempt=spec.attempt, owner_node=owner_node)
        conn = self.conns.get(submitter)
        rec.return_ids = [ids.object_id_for_return(tid, i + 1) for i in range(spec.num_returns)]
        if owner_node:
            for oid in rec.return_ids:
                self.objects.expect(oid, refs=0)
                self.objects.hold(oid, owner_node)
        else:
            if not spec.submitter_node:
                spec.submitter_node = self.node_id
            for oid in rec.return_ids:
                self.objects.expect(oid, refs=1)
                if conn is not None:
                    conn.refs[oid] += 1
                else:
                    self.unowned_refs[oid] += 1
            if spec.submitter_node != self.node_id and self.view.alive(spec.submitter_node):
                self._resolve_unknown(spec)  # an actor constructor placed here by the GCS
        for a in spec.args:
            if a.object_id:
                self.objects.pin(a.object_id)
                rec.pinned.append(a.object_id)
        for oid in spec.nested_refs:
            self.objects.pin(oid)
            rec.pinned.append(oid)
        self.tasks[tid] = rec
        if not owner_node:  # (a forwarded task's entry, spec included, was written by its owner)
            self.writer.task_submitted(tid, spec.SerializeToString(), spec.job_id, rec.attempt)
        if spec.kind == ACTOR_TASK:
            self.actors.submit_call(rec)  # ordered delivery checks the arguments itself
        else:
            self.placement.enqueue(rec)

    def submit_creation(self, spec: pb.TaskSpec) -> TaskRecord:
        """Queue an actor's constructor (from the GCS, no submitting client); returns its record."""
        self.tasks.pop(spec.task_id, None)
        self.submit(b"", spec)
        return self.tasks[spec.task_id]

    def submit_forwarded(self, sender: bytes, spec: pb.TaskSpec, attempt: int) -> None:
        spec.attempt = attempt
        self.submit(b"", spec, owner_node=sender)

    def resolve_remote(self, oid: bytes, node: bytes) -> None:
        """A client learnt of ``oid``, made on ``node``, out of band (a streamed generator item):
        ask that node about it unless this node knows it already."""
        if node and node != self.node_id and self.objects.get(oid) is None:
            self.objects.expect(oid, refs=0)
            self.peers.resolve(oid, node)

    def _resolve_unknown(self, spec: pb.TaskSpec) -> None:
        """Ask the submitter's node about ref arguments this node has never heard of."""
        for oid in [a.object_id for a in spec.args if a.object_id] + list(spec.nested_refs):
            if self.objects.get(oid) is None:
                self.objects.expect(oid, refs=0)
                self.peers.resolve(oid, spec.submitter_node)

    def request_schedule(self) -> None:
        if not self._schedule_pending:
            self._schedule_pending = True
            self.timers.call_soon(self._schedule)

    def _schedule(self) -> None:
        self._schedule_pending = False
        dispatches, to_start = self.scheduler.schedule()
        for d in dispatches:
            rec: TaskRecord = d.task.payload
            conn = self.conns.get(d.worker_id)
            if conn is None or conn.closed:
                self.scheduler.finished(rec.spec.task_id)
                self._requeue(rec)
                continue
            err = self._error_dep(rec)
            if err is not None:
                self.scheduler.finished(rec.spec.task_id)
                self.scheduler.worker_idle(d.worker_id)
                if rec.spec.kind == ACTOR_CREATION:
                    self.actors.creation_failed_before_start(rec, err)
                else:
                    self._complete_with_error_blob(rec, serialization.dependency_error_blob(
                        rec.spec.name or rec.spec.method_name, err), error_type="DEPENDENCY_RESOLUTION_FAILED")
                continue
            if rec.spec.kind == ACTOR_CREATION:
                self.actors.creation_dispatched(rec, conn)
            self.dispatch(rec, conn, d.gpu_ids)
        if to_start:
            self.workers.start(to_start)
            self.scheduler.worker_started(to_start)
        if dispatches and self.scheduler.idle and self.scheduler.ready_ids:
            self.request_schedule()
        if self.view.nodes and self.scheduler.ready_ids:
            self.placement.spill()

    def _error_dep(self, rec: TaskRecord) -> bytes | None:
        for a in rec.spec.args:
            if a.object_id:
                e = self.objects.get(a.object_id)
                if e is not None and e.inline is not None and \
                        serialization.blob_kind(e.inline) == serialization.KIND_ERROR:
                    return e.inline
        return None

    def dispatch(self, rec: TaskRecord, conn: Connection, gpu_ids: Iterable[int] = ()) -> None:
        rec.state = RUNNING
        rec.worker = conn.worker_id
        rec.dispatch_time = time.time()
        a = conn.out().assign.add()
        a.spec.CopyFrom(rec.spec)
        a.spec.attempt = rec.attempt
        seen: set[bytes] = set()
        for arg in rec.spec.args:
            if arg.object_id and arg.object_id not in seen:
                seen.add(arg.object_id)
                a.resolved.append(object_data(self.objects, arg.object_id))
        a.gpu_ids.extend(gpu_ids)
        conn.flush()

    def _result(self, conn: Connection, r: pb.TaskResult) -> None:
        rec = self.tasks.get(r.task_id)
        if rec is not None and rec.spec.kind == NORMAL and rec.worker != conn.worker_id:
            # A result for a task this worker was not given (a broken or hostile client).
            logger.warning("dropping a result from worker %s for task %s, which it was not running",
                           conn.worker_id.hex()[:8], r.task_id.hex()[:8])
            self._discard_returns(r)
            return
        if rec is None or rec.attempt != r.attempt:
            self._discard_returns(r)
            self._worker_free(conn)
            return
        if rec.spec.kind == ACTOR_CREATION:
            self.actors.creation_result(rec, conn, r)
            return
        if rec.spec.kind == ACTOR_TASK:
            self.actors.call_finished(rec, r)
            return
        self.scheduler.finished(r.task_id)
        if r.worker_exiting:
            self._worker_exiting(conn)
        self._worker_free(conn)
        if r.failed and r.retryable and not rec.cancelled and self._can_retry(rec):
            self._discard_returns(r)
            self._retry(rec)
            return
        self.finish(rec, r.returns, FAILED if r.failed else FINISHED,
                    error_type="TASK_EXECUTION_EXCEPTION" if r.failed else "")

    def _worker_free(self, conn: Connection) -> None:
        if not conn.actor_id and not conn.is_driver and not conn.closed and not conn.exiting:
            self.scheduler.worker_idle(conn.worker_id)

    def _worker_exiting(self, conn: Connection) -> None:
        """The worker ran its function ``max_calls`` times and exits: it gets no more work, and a
        new worker may start in its place right away."""
        if not conn.exiting and not conn.actor_id and not conn.is_driver:
            conn.exiting = True
            self.scheduler.worker_gone(conn.worker_id)

    def _notify_done(self, rec: TaskRecord) -> None:
        """Tell the submitting client that its task ended (specs with ``notify_done``: calls on
        an actor handle with ``max_pending_calls``)."""
        conn = self.conns.get(rec.submitter)
        if conn is not None and not conn.closed:
            conn.out().tasks_done.append(rec.spec.task_id)
            conn.flush()

    def _discard_returns(self, r: pb.TaskResult) -> None:
        for p in r.returns:
            if p.shm_name:
                self.objects.abort(p.object_id, p.shm_name)

    def finish(self, rec: TaskRecord, returns: Iterable[pb.PutObject], state: TaskState, error_type: str = "") -> None:
        """Seal the task's return objects, release its pins and record the terminal state (and Ray's
        ``error_type`` of a failure)."""
        tid = rec.spec.task_id
        self.tasks.pop(tid, None)
        rec.state = state
        returns = list(returns)
        if state is FAILED:  # (before the seals: the driver knows the error before a get of it returns)
            self._tell_driver_failed(rec, returns)
        for p in returns:
            self.seal(p.object_id, p.inline_data if not p.shm_name else None, p.shm_name, p.size,
                      list(p.contained))
        if rec.owner_node:
            self.peers.task_done(rec, state is not FINISHED)
        if rec.spec.notify_done:
            self._notify_done(rec)
        for oid in rec.pinned:
            self.objects.unpin(oid)
        self.writer.task_state(tid, state, rec.attempt, worker=rec.worker, error_type=error_type,
                               start_time=rec.dispatch_time)
        self.drain_freed()

    def _tell_driver_failed(self, rec: TaskRecord, returns: list[pb.PutObject]) -> None:
        """A driver's task failed: send it the error of each return, which it reports if it drops
        the ref without reading it (Ray's "Unhandled error")."""
        conn = self.conns.get(rec.submitter)
        if conn is None or not conn.is_driver or conn.closed:
            return
        errors = [p for p in returns if p.inline_data and not p.shm_name
                  and serialization.blob_kind(p.inline_data) == serialization.KIND_ERROR]
        for p in errors:
            conn.out().failed_returns.add(object_id=p.object_id, inline_data=p.inline_data)
        if errors:
            conn.flush()  # (the get replies the seals queue come after it)

    def forwarded_done(self, sender: bytes, d: pb.TaskDone) -> None:
        """A task this node forwarded ended there; its returns' infos were applied just before."""
        rec = self.tasks.get(d.task_id)
        if rec is None or rec.forwarded_to != sender:
            return
        self.view.returned(sender, rec.demand)
        del self.tasks[d.task_id]
        rec.state = FAILED if d.failed else FINISHED
        for oid in rec.return_ids:
            e = self.objects.get(oid)
            if e is not None and e.state == OBJ_PENDING:
                blob = serialization.serialize_error(exceptions.ObjectLostError(
                    oid.hex(), f"Task {rec.spec.name!r} ended on node {sender.hex()[:8]} without returning it."))
                self.seal(oid, blob.to_bytes(), "", 0)
        if d.failed:  # (its returns' error blobs came inline with the infos)
            self._tell_driver_failed(rec, [pb.PutObject(object_id=oid, inline_data=e.inline)
                                           for oid in rec.return_ids
                                           if (e := self.objects.get(oid)) is not None and e.inline])
        if rec.owner_node:
            # An actor call another node sent here, relayed to where the actor lives now.
            self.peers.task_done(rec, d.failed)
        if not self.lineage.keep(rec):  # (kept: its pins stay until its returns are gone)
            for oid in rec.pinned:
                self.objects.unpin(oid)
        if rec.spec.kind == ACTOR_TASK:
            self.actors.remote_call_done(rec)
        if rec.spec.notify_done:
            self._notify_done(rec)
        self.drain_freed()

    def forwarded_lost(self, rec: TaskRecord, why: str) -> None:
        """The node a task was forwarded to is gone: place it again, or fail it."""
        self.view.returned(rec.forwarded_to, rec.demand)
        rec.forwarded_to = b""
        if rec.spec.kind == ACTOR_TASK:
            self.actors.remote_call_done(rec)
            self.fail_task(rec, exceptions.ActorDiedError(
                f"The actor {rec.spec.actor_id.hex()} was on a node that died ({why}); method "
                f"{rec.spec.method_name!r} may or may not have run.", rec.spec.actor_id.hex()))
        elif not rec.cancelled and self._can_retry(rec):
            logger.info("retrying task %s (%s): %s", rec.spec.name, rec.spec.task_id.hex(), why)
            self._retry(rec)
        else:
            self.fail_task(rec, exceptions.NodeDiedError(
                f"Task {rec.spec.name!r} failed: the {why}, and it has no retries left "
                f"(max_retries={rec.spec.max_retries})."))

    def release(self, rec: TaskRecord, state: TaskState | None = None) -> None:
        """An actor's constructor ran, was cancelled or lost its worker: drop its record and pins
        once, and record ``state`` (if given) as its terminal state."""
        if self.tasks.pop(rec.spec.task_id, None) is not None:
            for oid in rec.pinned:
                self.objects.unpin(oid)
            if state is not None:
                self.writer.task_state(rec.spec.task_id, state, rec.attempt, worker=rec.worker,
                                       start_time=rec.dispatch_time)

    def _complete_with_error_blob(self, rec: TaskRecord, blob: bytes, state: TaskState = FAILED,
                                  error_type: str = "") -> None:
        self.finish(rec, [pb.PutObject(object_id=o, inline_data=blob) for o in rec.return_ids], state, error_type)

    def fail_task(self, rec: TaskRecord, exc: BaseException, state: TaskState = FAILED) -> None:
        self._complete_with_error_blob(rec, serialization.serialize_error(exc).to_bytes(), state,
                                       exceptions.ray_error_type(exc))

    def _can_retry(self, rec: TaskRecord) -> bool:
        m = rec.spec.max_retries
        return m == -1 or rec.retries_used < m

    def _retry(self, rec: TaskRecord) -> None:
        rec.retries_used += 1
        rec.attempt += 1
        rec.state = PENDING
        self.writer.task_state(rec.spec.task_id, PENDING, rec.attempt)
        self._requeue(rec)

    def pending_args(self, spec: pb.TaskSpec) -> set[bytes]:
        return self.placement.pending_args(spec)

    def node_alive(self, node: bytes) -> bool:
        """False for a node known to have left the cluster (one not seen yet counts as alive)."""
        return node not in self.view.gone

    def replace_infeasible(self) -> None:
        self.placement.replace_infeasible()

    def missing_args(self, spec: pb.TaskSpec) -> set[bytes]:
        """Ref arguments known here but not here yet (unknown ones are reported lost at run time);
        those sealed elsewhere are pulled."""
        out: set[bytes] = set()
        for a in spec.args:
            if a.object_id:
                e = self.objects.get(a.object_id)
                if e is not None and e.state != READY:
                    out.add(a.object_id)
                    if e.state == REMOTE:
                        self.peers.need_local(a.object_id)
        return out

    def _requeue(self, rec: TaskRecord) -> None:
        self.placement.enqueue(rec)
        self.request_schedule()

    def _task_worker_died(self, tid: bytes, why: str) -> None:
        rec = self.tasks.get(tid)
        if rec is None:
            return
        if rec.cancelled:
            self.fail_task(rec, exceptions.TaskCancelledError(tid.hex()), CANCELLED)
        elif self._can_retry(rec):
            logger.info("retrying task %s (%s): %s", rec.spec.name, tid.hex(), why)
            self._retry(rec)
        else:
            self.fail_task(rec, exceptions.WorkerCrashedError(
                f"The worker executing task {rec.spec.name!r} died ({why}) and the task has no "
                f"retries left (max_retries={rec.spec.max_retries})."))

    def cancel(self, oid: bytes, force: bool, recursive: bool = True) -> None:
        """Cancel the task making ``oid``; ``recursive`` (Ray's default) also cancels the unfinished
        tasks it submitted here (a forwarded task's node does that for its own children)."""
        tid = ids.task_of_object(oid)
        self._cancel_one(tid, oid, force)
        if not recursive:
            return
        todo, seen = [tid], {tid}
        while todo:
            parent = todo.pop()
            for child, rec in list(self.tasks.items()):
                if rec.spec.parent_task_id == parent and child not in seen and rec.state in (PENDING, RUNNING):
                    seen.add(child)
                    todo.append(child)
                    self._cancel_one(child, ids.object_id_for_return(child, 1), force)

    def _cancel_one(self, tid: bytes, oid: bytes, force: bool) -> None:
        rec = self.tasks.get(tid)
        if rec is None:
            return
        rec.cancelled = True
        if rec.spec.kind == ACTOR_TASK:
            if self.actors.cancel_queued(rec):
                self.fail_task(rec, exceptions.TaskCancelledError(tid.hex()), CANCELLED)
                return
            if rec.forwarded_to:  # the actor lives on another node: that node cancels the call
                self.peers.cancel(rec, oid, False)
                return
            running = self.conns.get(rec.worker) if rec.state is RUNNING else None
            if running is not None:  # the actor's worker cancels an async call, flags a sync one (Ray's)
                running.out().cancel_tasks.append(tid)
                running.flush()
            return
        if rec.forwarded_to:
            self.peers.cancel(rec, oid, force)
            return
        if self.scheduler.cancel(tid) is not None or rec.deps:
            self.placement.drop_deps(rec)
            self.fail_task(rec, exceptions.TaskCancelledError(tid.hex()), CANCELLED)
            return
        conn = self.conns.get(rec.worker)
        if conn is None:
            return
        if force:
            rec.force_cancelled = True
            self.workers.kill(conn.worker_id)
        else:
            conn.out().cancel_tasks.append(tid)
            conn.flush()

    def _drop_job_tasks(self, job_id: int) -> None:
        """The driver left: its queued tasks will never be read; running ones are left to finish."""
        for tid, rec in list(self.tasks.items()):
            if rec.spec.job_id == job_id and rec.state is PENDING and rec.spec.kind == NORMAL \
                    and not rec.forwarded_to:
                if self.scheduler.cancel(tid) is not None or rec.deps:
                    self.placement.drop_deps(rec)
                    rec.cancelled = True
                    self.fail_task(rec, exceptions.TaskCancelledError(tid.hex()), CANCELLED)

    def forward_call(self, rec: TaskRecord, node: bytes) -> None:
        """An actor call goes to the node hosting its actor (in submission order)."""
        rec.state = RUNNING
        self.peers.forward(rec, node, ResourceSet())

    def kill_remote_actor(self, node: bytes, actor_id: bytes, no_restart: bool, when_idle: bool) -> None:
        self.peers.kill_actor(node, actor_id, no_restart, when_idle)

    def warn_job(self, job_id: int, text: str) -> None:
        """Show ``text`` on the job's drivers (as Ray prints scheduling warnings there)."""
        for driver in self.conns.values():
            if driver.is_driver and driver.job_id == job_id:
                driver.out().logs.add(job_id=job_id, prefix=f"raylet, node={self.node_id.hex()[:8]}",
                                      lines=[text], is_err=True)
                driver.flush()

    # ---- reporting -----------------------------------------------------------------------------

    def load(self) -> NodeLoad:
        return NodeLoad(
            available=self.scheduler.available.to_floats(),
            total=self.scheduler.total.to_floats(),
            queued=self.scheduler.queue_length(),
            running=len(self.scheduler.running),
            object_store_used=self.objects.used,
            object_store_capacity=self.objects.capacity,
            num_objects=len(self.objects.entries),
            workers=len(self.conns),
            time=time.time(),
        )

    def workers_failed_to_start(self, wids: Iterable[bytes], reschedule: bool) -> None:
        """Workers exited before connecting: forget them, and start others if ``reschedule``."""
        for wid in wids:
            self.scheduler.worker_gone(wid)
            if reschedule:
                self.request_schedule()

    def validate(self) -> list[str]:
        """Violations of the core's invariants (empty when consistent); see :mod:`.invariants`."""
        return invariants.check(self)


"""Actors hosted on (or called from) this node: creation, ordered call delivery, death and restart."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from rayredis import exceptions, serialization
from rayredis._private import events
from rayredis.actor_state import ActorState, call_can_retry, on_actor_process_died
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.connection import Connection
from rayredis.raylet.ports import ActorDirectory, TableWriter, TaskSide, WorkerProcesses
from rayredis.raylet.records import TaskRecord
from rayredis.raylet.scheduler import LocalScheduler
from rayredis.store.tables import ActorEntry, TaskState

logger = logging.getLogger(__name__)


class LocalActorState(Enum):
    """This node's view of an actor (the actor table's ``ActorState`` is the cluster's)."""

    UNKNOWN = "UNKNOWN"  # only called from here; its table entry is being looked up
    CREATING = "CREATING"
    ALIVE = "ALIVE"
    RESTARTING = "RESTARTING"
    DEAD = "DEAD"
    REMOTE = "REMOTE"  # alive on another node (``node``): calls are forwarded there in order


UNKNOWN, CREATING, ALIVE, RESTARTING, DEAD, REMOTE = (
    LocalActorState.UNKNOWN, LocalActorState.CREATING, LocalActorState.ALIVE, LocalActorState.RESTARTING,
    LocalActorState.DEAD, LocalActorState.REMOTE)

#: The CAS source states of a hosted actor's ALIVE/RESTARTING/DEAD writes.
_PLACED = f"{ActorState.SCHEDULED.value},{ActorState.ALIVE.value}"
_NOT_DEAD = ",".join(s.value for s in ActorState if s != ActorState.DEAD)


@dataclass(slots=True)
class LocalActor:
    actor_id: bytes
    state: LocalActorState = UNKNOWN
    attempt: int = -1
    conn: Connection | None = None
    creation: TaskRecord | None = None
    queue: deque[TaskRecord] = field(default_factory=deque)
    inflight: dict[bytes, TaskRecord] = field(default_factory=dict)
    intentional: bool = False
    death_reason: str = ""
    job_id: int = 0
    detached: bool = False
    max_restarts: int = 0
    max_task_retries: int = 0
    num_restarts: int = 0
    lookup_started: bool = False
    #: The creator dropped its last handle: end the actor once its submitted calls are done.
    kill_when_idle: bool = False
    #: The node hosting the actor when it is REMOTE.
    node: bytes = b""
    kill_forwarded: bool = False


class LocalActors:
    """The node's view of actors: the ones it hosts and the ones its clients call.

    Task records stay with the task side (``tasks``); this class only queues and orders them.
    Actor-table writes are queued on ``writer``; an unknown actor is looked up through
    ``directory``, whose answer arrives through :meth:`apply_remote_state`.
    """

    def __init__(self, tasks: TaskSide, scheduler: LocalScheduler, workers: WorkerProcesses,
                 writer: TableWriter, directory: ActorDirectory, node_id: bytes):
        self.tasks = tasks
        self.scheduler = scheduler
        self.workers = workers
        self.writer = writer
        self.directory = directory
        self.node_id = node_id
        self.actors: dict[bytes, LocalActor] = {}
        #: Jobs whose driver left: their non-detached actors are not created here any more.
        self.finished_jobs: set[int] = set()

    def _get(self, aid: bytes) -> LocalActor:
        a = self.actors.get(aid)
        if a is None:
            a = self.actors[aid] = LocalActor(aid)
        return a

    def knows(self, aid: bytes) -> bool:
        return aid in self.actors

    def known_ids(self) -> list[bytes]:
        return list(self.actors)

    def records(self) -> Iterator[tuple[LocalActor, TaskRecord]]:
        """Every call record queued or in flight here (for consistency checks)."""
        for a in self.actors.values():
            for rec in a.queue:
                yield a, rec
            for rec in a.inflight.values():
                yield a, rec

    def hosts(self, aid: bytes) -> bool:
        """Whether the actor is being created or served by a worker of this node."""
        a = self.actors.get(aid)
        return a is not None and a.state in (CREATING, ALIVE)

    # ---- creation (from the GCS) ---------------------------------------------------------------

    def create(self, aid: bytes, attempt: int, spec: pb.TaskSpec) -> bool:
        a = self._get(aid)
        if a.attempt >= attempt and a.state in (CREATING, ALIVE):
            return True  # idempotent re-delivery after a GCS restart
        if a.state is DEAD or (spec.job_id in self.finished_jobs and not spec.actor_options.detached):
            return False
        if a.creation is not None:
            self.tasks.release(a.creation, TaskState.FAILED)
        opts = spec.actor_options
        a.attempt, a.state = attempt, CREATING
        a.job_id, a.detached = spec.job_id, opts.detached
        a.max_restarts, a.max_task_retries = opts.max_restarts, opts.max_task_retries
        spec = pb.TaskSpec.FromString(spec.SerializeToString())
        spec.attempt = attempt
        a.creation = self.tasks.submit_creation(spec)
        return True

    def creation_dispatched(self, rec: TaskRecord, conn: Connection) -> None:
        a = self._get(rec.spec.actor_id)
        conn.actor_id = rec.spec.actor_id
        a.conn = conn
        self.workers.dedicate(conn.worker_id, rec.spec.actor_id)

    def creation_result(self, rec: TaskRecord, conn: Connection, r: pb.TaskResult) -> None:
        a = self._get(rec.spec.actor_id)
        self.tasks.release(rec, TaskState.FAILED if r.failed else TaskState.FINISHED)
        if r.failed:
            blob = r.returns[0].inline_data if r.returns else b""
            a.intentional = True
            a.death_reason = f"The actor's constructor raised:\n{_describe(blob)}" if blob else \
                "The actor's constructor raised."
            self.workers.kill(conn.worker_id)
            return
        a.state = ALIVE
        if a.kill_when_idle and not a.queue:
            self._maybe_kill_idle(a)
            return
        self.writer.actor_transition(a.actor_id, _PLACED, str(a.attempt), {
            "state": ActorState.ALIVE.value, "node": self.node_id.hex(),
            "worker": conn.worker_id.hex(), "pid": conn.pid,
        })
        self._pump(a)

    def creation_failed_before_start(self, rec: TaskRecord, error_blob: bytes) -> None:
        """An argument of the constructor is an error: the constructor never runs, the actor dies of it."""
        a = self._get(rec.spec.actor_id)
        self.tasks.release(rec, TaskState.FAILED)
        a.intentional, a.death_reason = True, "An argument of the actor's constructor failed:\n" + _describe(error_blob)
        self._lost(a, a.death_reason)

    # ---- calls ---------------------------------------------------------------------------------

    def submit_call(self, rec: TaskRecord) -> None:
        a = self._get(rec.spec.actor_id)
        if a.state is DEAD:
            self._fail_call(rec, a)
            return
        a.queue.append(rec)
        if a.state is UNKNOWN and not a.lookup_started:
            a.lookup_started = True
            self.directory.lookup_actor(a.actor_id)
        self._pump(a)

    def _pump(self, a: LocalActor) -> None:
        if a.state is REMOTE:
            while a.queue:
                rec = a.queue[0]
                if self.tasks.pending_args(rec.spec):
                    return
                a.queue.popleft()
                a.inflight[rec.spec.task_id] = rec
                self.tasks.forward_call(rec, a.node)
            if a.kill_when_idle and not a.kill_forwarded:
                a.kill_forwarded = True
                self.tasks.kill_remote_actor(a.node, a.actor_id, no_restart=True, when_idle=True)
            return
        conn = a.conn
        if a.state is not ALIVE or conn is None or conn.closed:
            return
        while a.queue:
            rec = a.queue[0]
            if self.tasks.missing_args(rec.spec):
                return
            a.queue.popleft()
            a.inflight[rec.spec.task_id] = rec
            self.tasks.dispatch(rec, conn)

    def object_ready(self, oid: bytes) -> None:
        for a in self.actors.values():
            if a.queue and (a.state is ALIVE or a.state is REMOTE):
                self._pump(a)

    def remote_call_done(self, rec: TaskRecord) -> None:
        """A call forwarded to the actor's node ended there (its record is already released)."""
        a = self.actors.get(rec.spec.actor_id)
        if a is not None:
            a.inflight.pop(rec.spec.task_id, None)

    def node_gone(self, node: bytes) -> None:
        """The node hosting some actors called from here died: their calls wait here until the
        actor table says where they were restarted (or that they are dead)."""
        for a in self.actors.values():
            if a.state is REMOTE and a.node == node:
                a.state, a.node = UNKNOWN, b""
                self.directory.lookup_actor(a.actor_id)

    def can_resend(self, rec: TaskRecord) -> bool:
        """Whether a call lost with the raylet of the node it was forwarded to may be sent again."""
        a = self.actors.get(rec.spec.actor_id)
        return a is not None and call_can_retry(rec.retries_used, a.max_task_retries)

    def resend_lost_calls(self, recs: list[TaskRecord]) -> None:
        """Calls forwarded to a node whose raylet restarted (see :meth:`can_resend`) go back to
        the front of their actors' queues, in order, to reach the actor's new instance."""
        back: dict[bytes, list[TaskRecord]] = {}
        for rec in recs:
            a = self.actors[rec.spec.actor_id]
            a.inflight.pop(rec.spec.task_id, None)
            rec.forwarded_to, rec.retries_used = b"", rec.retries_used + 1
            back.setdefault(a.actor_id, []).append(rec)
        for aid, calls in back.items():
            a = self.actors[aid]
            a.queue.extendleft(reversed(calls))
            self._pump(a)

    def call_finished(self, rec: TaskRecord, r: pb.TaskResult) -> None:
        a = self._get(rec.spec.actor_id)
        a.inflight.pop(rec.spec.task_id, None)
        if r.actor_exited:
            a.intentional, a.death_reason = True, "The actor exited with exit_actor()."
        self.tasks.finish(rec, r.returns, TaskState.FAILED if r.failed else TaskState.FINISHED)
        self._maybe_kill_idle(a)

    def cancel_queued(self, rec: TaskRecord) -> bool:
        a = self.actors.get(rec.spec.actor_id)
        if a is not None and rec in a.queue:
            a.queue.remove(rec)
            return True
        return False

    def _fail_call(self, rec: TaskRecord, a: LocalActor) -> None:
        self.tasks.fail_task(rec, exceptions.ActorDiedError(
            f"The actor {a.actor_id.hex()} is dead; method {rec.spec.method_name!r} cannot run. "
            f"Cause: {a.death_reason or 'unknown'}", a.actor_id.hex()))

    # ---- death -----------------------------------------------------------------------------------

    def worker_died(self, conn: Connection) -> None:
        a = self.actors.get(conn.actor_id)
        if a is None or a.conn is not conn:
            return
        a.conn = None
        self.scheduler.worker_gone(conn.worker_id, pooled=False)
        if a.creation is not None:
            self.tasks.release(a.creation, TaskState.FAILED)
        self._lost(a, a.death_reason or f"The actor's worker process (pid={conn.pid}) died unexpectedly.")

    def _lost(self, a: LocalActor, reason: str) -> None:
        """The actor's process is gone (or its constructor will never run here): restart it if it
        may (queued and retryable in-flight calls wait for the new instance), else it is DEAD and its
        calls fail; either way the actor table records it (CAS on the placed attempt)."""
        d = on_actor_process_died(a.num_restarts, a.max_restarts, intentional=a.intentional, reason=reason)
        inflight = list(a.inflight.values())
        a.inflight.clear()
        if d.state == ActorState.RESTARTING:
            a.state, a.num_restarts = RESTARTING, d.num_restarts
            for rec in reversed(inflight):
                if call_can_retry(rec.retries_used, a.max_task_retries):
                    rec.retries_used += 1
                    a.queue.appendleft(rec)
                else:
                    self._fail_call(rec, a)
        else:
            a.state, a.death_reason = DEAD, d.cause
            for rec in inflight + list(a.queue):
                self._fail_call(rec, a)
            a.queue.clear()
        self.writer.actor_transition(a.actor_id, _PLACED, str(a.attempt), {
            "state": d.state.value, "num_restarts": d.num_restarts, "death_cause": d.cause,
        })
        restarting = d.state == ActorState.RESTARTING
        events.record(events.Kind.ACTOR_RESTARTED if restarting else events.Kind.ACTOR_DIED,
                      f"actor {a.actor_id.hex()} {'restarts' if restarting else 'died'}: {reason}",
                      "WARNING" if restarting else "ERROR", actor_id=a.actor_id.hex(), num_restarts=d.num_restarts)

    def kill(self, aid: bytes, no_restart: bool, reason: str = "The actor was killed by rayredis.kill().") -> None:
        a = self._get(aid)
        if a.state is DEAD:
            return
        if a.state is REMOTE:
            self.tasks.kill_remote_actor(a.node, aid, no_restart=no_restart, when_idle=False)
            return
        if no_restart:
            a.intentional, a.death_reason = True, reason
        if a.conn is not None:
            self.workers.kill(a.conn.worker_id)
            return
        if a.creation is not None and self.scheduler.cancel(a.creation.spec.task_id) is not None:
            self.tasks.release(a.creation, TaskState.CANCELLED)
            if not no_restart:  # as if its process died: it restarts if it may
                self._lost(a, "The actor was killed by rayredis.kill() before its constructor ran.")
                return
            a.state = DEAD
            for rec in list(a.queue):
                self._fail_call(rec, a)
            a.queue.clear()
        if no_restart:
            self.writer.actor_transition(aid, _NOT_DEAD, "", {
                "state": ActorState.DEAD.value, "death_cause": a.death_reason})

    def kill_request(self, k: pb.KillActorRequest) -> None:
        """A kill from a client of this node or from another node (``when_idle``: after its calls)."""
        if k.when_idle:
            self.kill_when_idle(k.actor_id)
        else:
            self.kill(k.actor_id, k.no_restart)

    def kill_when_idle(self, aid: bytes) -> None:
        a = self._get(aid)
        a.kill_when_idle = True
        if a.state is REMOTE:
            self._pump(a)  # forwards the kill after the calls queued before it
            return
        self._maybe_kill_idle(a)

    def _maybe_kill_idle(self, a: LocalActor) -> None:
        if a.kill_when_idle and a.state is ALIVE and not a.queue and not a.inflight:
            self.kill(a.actor_id, no_restart=True, reason="All handles to the actor went out of scope.")

    def job_finished(self, job_id: int, driver_exit: bool = False) -> None:
        self.finished_jobs.add(job_id)
        for a in list(self.actors.values()):
            if a.job_id == job_id and not a.detached and a.state in (CREATING, ALIVE, RESTARTING):
                a.max_restarts = 0
                self.kill(a.actor_id, no_restart=True,
                          reason="The actor's owner job exited (use lifetime='detached' to keep it).")
        if driver_exit:
            self.writer.job_finished(job_id)

    # ---- the actor table -------------------------------------------------------------------------

    def apply_remote_state(self, aid: bytes, entry: ActorEntry | None) -> None:
        """The actor's table entry (None: no such actor), read after a lookup, pub/sub or rescan."""
        a = self.actors.get(aid)
        if a is None:
            return
        if a.state in (ALIVE, CREATING):
            if entry is not None and entry.state == ActorState.DEAD:
                # Killed through another node (which only knew the table): end the instance here.
                self.kill(aid, no_restart=True, reason=entry.death_cause or "The actor was killed.")
            return
        if entry is not None:
            a.max_task_retries = entry.max_task_retries  # (a call lost with its node may be resent)
        if entry is not None and entry.state == ActorState.ALIVE and entry.node and \
                entry.node != self.node_id.hex() and self.tasks.node_alive(bytes.fromhex(entry.node)):
            a.state, a.node = REMOTE, bytes.fromhex(entry.node)
            self._pump(a)
            return
        if a.state is REMOTE and entry is not None and entry.state != ActorState.DEAD:
            a.state = UNKNOWN  # restarting: calls wait here for the new instance
            return
        if entry is None or entry.state == ActorState.DEAD:
            a.state = DEAD
            a.death_reason = (entry.death_cause if entry is not None else "") or \
                "The actor does not exist or is dead."
            for rec in list(a.queue):
                self._fail_call(rec, a)
            a.queue.clear()


def _describe(error_blob: bytes) -> str:
    """The text of a serialized error (a placeholder when it cannot be decoded here)."""
    try:
        return str(serialization.deserialize(error_blob))
    except Exception:  # noqa: BLE001 - an undecodable error still kills the actor
        return "(the error could not be decoded on the raylet)"

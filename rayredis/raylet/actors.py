"""Actors hosted on (or called from) this node: creation, ordered call delivery, death and restart."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rayredis import exceptions, serialization
from rayredis._private import retry
from rayredis.actor_state import ActorState, call_can_retry, on_actor_process_died
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store import keys

if TYPE_CHECKING:
    from rayredis.raylet.connection import Connection
    from rayredis.raylet.node_manager import NodeManager, TaskRecord

logger = logging.getLogger(__name__)


@dataclass
class LocalActor:
    actor_id: bytes
    state: str = "UNKNOWN"  # UNKNOWN, CREATING, ALIVE, RESTARTING, DEAD (local view)
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


class LocalActors:
    """The node's view of actors: the ones it hosts and the ones its clients call."""

    def __init__(self, nm: NodeManager):
        self.nm = nm
        self.actors: dict[bytes, LocalActor] = {}
        self.redis: Any = None  # AsyncShardedRedis, set by the server
        self.scripts: Any = None  # Scripts for the primary
        self._bg: set[asyncio.Task[Any]] = set()
        #: Jobs whose driver left: their non-detached actors are not created here any more.
        self.finished_jobs: set[int] = set()

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    def _get(self, aid: bytes) -> LocalActor:
        a = self.actors.get(aid)
        if a is None:
            a = self.actors[aid] = LocalActor(aid)
        return a

    # ---- creation (from the GCS) ---------------------------------------------------------------

    def create(self, aid: bytes, attempt: int, spec: pb.TaskSpec) -> bool:
        a = self._get(aid)
        if a.attempt >= attempt and a.state in ("CREATING", "ALIVE"):
            return True  # idempotent re-delivery after a GCS restart
        if a.state == "DEAD" or (spec.job_id in self.finished_jobs and not spec.actor_options.detached):
            return False
        if a.creation is not None:
            self._release_creation(a.creation, "FAILED")
        opts = spec.actor_options
        a.attempt, a.state = attempt, "CREATING"
        a.job_id, a.detached = spec.job_id, opts.detached
        a.max_restarts, a.max_task_retries = opts.max_restarts, opts.max_task_retries
        spec = pb.TaskSpec.FromString(spec.SerializeToString())
        spec.attempt = attempt
        self.nm.tasks.pop(spec.task_id, None)
        self.nm.submit(b"", spec)
        a.creation = self.nm.tasks.get(spec.task_id)
        return True

    def creation_dispatched(self, rec: TaskRecord, conn: Connection) -> None:
        a = self._get(rec.spec.actor_id)
        conn.actor_id = rec.spec.actor_id
        a.conn = conn
        self.nm.pool.dedicate(conn.worker_id, rec.spec.actor_id)

    def creation_result(self, rec: TaskRecord, conn: Connection, r: pb.TaskResult) -> None:
        a = self._get(rec.spec.actor_id)
        self._release_creation(rec, "FAILED" if r.failed else "FINISHED")
        if r.failed:
            blob = r.returns[0].inline_data if r.returns else b""
            reason = "The actor's constructor raised."
            if blob:
                try:
                    reason = f"The actor's constructor raised:\n{serialization.deserialize(blob)}"
                except Exception:  # noqa: BLE001
                    pass
            a.intentional, a.death_reason = True, reason
            self.nm.pool.kill(conn.worker_id)
            return
        a.state = "ALIVE"
        if a.kill_when_idle and not a.queue:
            self._maybe_kill_idle(a)
            return
        self._spawn(self._transition(a.actor_id, "SCHEDULED,ALIVE", str(a.attempt), {
            "state": ActorState.ALIVE.value, "node": self.nm.node_id.hex(),
            "worker": conn.worker_id.hex(), "pid": conn.pid,
        }))
        self._pump(a)

    def _release_creation(self, rec: TaskRecord, state: str = "") -> None:
        """The constructor ran, was cancelled or its worker died: unpin its arguments once, and
        record ``state`` as the creation task's terminal state."""
        if self.nm.tasks.pop(rec.spec.task_id, None) is not None:
            for oid in rec.pinned:
                self.nm.objects.unpin(oid)
            if state:
                self.nm.writer.task_state(rec.spec.task_id, state, rec.attempt)

    # ---- calls ---------------------------------------------------------------------------------

    def submit_call(self, rec: TaskRecord) -> None:
        a = self._get(rec.spec.actor_id)
        if a.state == "DEAD":
            self._fail_call(rec, a)
            return
        a.queue.append(rec)
        if a.state == "UNKNOWN" and not a.lookup_started:
            a.lookup_started = True
            self._spawn(self._lookup(a))
        self._pump(a)

    def _pump(self, a: LocalActor) -> None:
        if a.state != "ALIVE" or a.conn is None or a.conn.closed:
            return
        while a.queue:
            rec = a.queue[0]
            if self.nm.missing_args(rec.spec):
                return
            a.queue.popleft()
            a.inflight[rec.spec.task_id] = rec
            self.nm.dispatch(rec, a.conn)

    def object_ready(self, oid: bytes) -> None:
        for a in self.actors.values():
            if a.queue and a.state == "ALIVE":
                self._pump(a)

    def call_finished(self, rec: TaskRecord, conn: Connection, r: pb.TaskResult) -> None:
        a = self._get(rec.spec.actor_id)
        a.inflight.pop(rec.spec.task_id, None)
        if r.actor_exited:
            a.intentional, a.death_reason = True, "The actor exited with exit_actor()."
        self.nm.finish(rec, r.returns, "FAILED" if r.failed else "FINISHED")
        self._maybe_kill_idle(a)

    def cancel_queued(self, rec: TaskRecord) -> bool:
        a = self.actors.get(rec.spec.actor_id)
        if a is not None and rec in a.queue:
            a.queue.remove(rec)
            return True
        return False

    def _fail_call(self, rec: TaskRecord, a: LocalActor) -> None:
        self.nm.fail_task(rec, exceptions.ActorDiedError(
            f"The actor {a.actor_id.hex()} is dead; method {rec.spec.method_name!r} cannot run. "
            f"Cause: {a.death_reason or 'unknown'}", a.actor_id.hex()))

    # ---- death -----------------------------------------------------------------------------------

    def worker_died(self, conn: Connection) -> None:
        a = self.actors.get(conn.actor_id)
        if a is None or a.conn is not conn:
            return
        a.conn = None
        self.nm.scheduler.worker_gone(conn.worker_id, pooled=False)
        if a.creation is not None:
            self._release_creation(a.creation, "FAILED")
        reason = a.death_reason or f"The actor's worker process (pid={conn.pid}) died unexpectedly."
        d = on_actor_process_died(a.num_restarts, a.max_restarts, intentional=a.intentional, reason=reason)
        inflight = list(a.inflight.values())
        a.inflight.clear()
        if d.state == ActorState.RESTARTING:
            a.state, a.num_restarts = "RESTARTING", d.num_restarts
            for rec in reversed(inflight):
                if call_can_retry(rec.retries_used, a.max_task_retries):
                    rec.retries_used += 1
                    a.queue.appendleft(rec)
                else:
                    self._fail_call(rec, a)
        else:
            a.state, a.death_reason = "DEAD", d.cause
            for rec in inflight + list(a.queue):
                self._fail_call(rec, a)
            a.queue.clear()
        self._spawn(self._transition(a.actor_id, "SCHEDULED,ALIVE", str(a.attempt), {
            "state": d.state.value, "num_restarts": d.num_restarts, "death_cause": d.cause,
        }))

    def kill(self, aid: bytes, no_restart: bool, reason: str = "The actor was killed by rayredis.kill().") -> None:
        a = self._get(aid)
        if a.state == "DEAD":
            return
        if no_restart:
            a.intentional, a.death_reason = True, reason
        if a.conn is not None:
            self.nm.pool.kill(a.conn.worker_id)
            return
        if a.creation is not None and self.nm.scheduler.cancel(a.creation.spec.task_id) is not None:
            self._release_creation(a.creation, "CANCELLED")
            a.state = "DEAD"
            for rec in list(a.queue):
                self._fail_call(rec, a)
            a.queue.clear()
        if no_restart:
            self._spawn(self._transition(aid, ",".join(s.value for s in ActorState if s != ActorState.DEAD),
                                         "", {"state": ActorState.DEAD.value, "death_cause": a.death_reason}))

    def kill_when_idle(self, aid: bytes) -> None:
        a = self._get(aid)
        a.kill_when_idle = True
        self._maybe_kill_idle(a)

    def _maybe_kill_idle(self, a: LocalActor) -> None:
        if a.kill_when_idle and a.state == "ALIVE" and not a.queue and not a.inflight:
            self.kill(a.actor_id, no_restart=True, reason="All handles to the actor went out of scope.")

    def job_finished(self, job_id: int, driver_exit: bool = False) -> None:
        self.finished_jobs.add(job_id)
        for a in list(self.actors.values()):
            if a.job_id == job_id and not a.detached and a.state in ("CREATING", "ALIVE", "RESTARTING"):
                a.max_restarts = 0
                self.kill(a.actor_id, no_restart=True,
                          reason="The actor's owner job exited (use lifetime='detached' to keep it).")
        if driver_exit:
            self._spawn(self._finish_job(job_id))

    async def _finish_job(self, job_id: int) -> None:
        try:
            async for attempt in retry.async_redis_op():
                with attempt:
                    await self.scripts.hfield_cas(keys=[keys.job_state_key()], args=[
                        str(job_id), "RUNNING", "FINISHED", keys.job_channel(), str(job_id)])
        except retry.REDIS_RETRYABLE + (OSError,) as e:
            logger.error("could not record job %d as finished: %s", job_id, e)

    # ---- Redis -----------------------------------------------------------------------------------

    async def _transition(self, aid: bytes, allowed: str, attempt: str, fields: dict[str, Any]) -> None:
        args: list[Any] = [allowed, attempt, keys.actor_channel(), aid.hex()]
        for k, v in fields.items():
            args += [k, v]
        # CAS on (state, attempt) makes a repeated write harmless, so retry while Redis is away.
        try:
            async for tried in retry.async_redis_op():
                with tried:
                    await self.scripts.actor_transition(
                        keys=[keys.actor_key(aid.hex()), keys.named_actors_key()], args=args)
        except retry.REDIS_RETRYABLE + (OSError,) as e:
            logger.error("giving up on the actor transition for %s: %s", aid.hex(), e)

    async def _lookup(self, a: LocalActor) -> None:
        """A call arrived for an actor we do not host yet: find out whether it is dead."""
        raw = await self.redis.primary.hmget(keys.actor_key(a.actor_id.hex()), "state", "death_cause")
        self.apply_remote_state(a.actor_id, raw[0], raw[1])

    def apply_remote_state(self, aid: bytes, state: bytes | None, cause: bytes | None) -> None:
        """An actor-table change (pub/sub or rescan) for an actor this node knows about."""
        a = self.actors.get(aid)
        if a is None or a.state in ("ALIVE", "CREATING"):
            return
        if state is None or state.decode() == ActorState.DEAD.value:
            a.state = "DEAD"
            a.death_reason = (cause or b"").decode() or "The actor does not exist or is dead."
            for rec in list(a.queue):
                self._fail_call(rec, a)
            a.queue.clear()

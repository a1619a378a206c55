"""Batched, pipelined writes of the task, object, actor and job tables from the raylet, one pipeline per shard."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rayredis._private import retry
from rayredis.store import keys, tables
from rayredis.store.client import AsyncShardedRedis
from rayredis.store.scripts import Scripts
from rayredis.store.tables import JobState, TaskState

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class TaskWrite:
    """A ``task_transition`` CAS: from a state in ``allowed`` ("*" for any) to ``fields``."""

    task_hex: str
    allowed: str
    attempt: int
    ttl: int
    fields: list[Any]


@dataclass(slots=True)
class ObjectSealed:
    """A new copy of an object on this node (HSET + publish)."""

    object_hex: str
    size: int
    is_error: bool


@dataclass(slots=True)
class ObjectFreed:
    """This node's copy of an object is gone (only its location field is removed)."""

    object_hex: str


@dataclass(slots=True)
class ScriptCall:
    """A CAS script on the primary (an actor transition, a job finishing): KEYS and ARGV."""

    script: str
    keys: list[str]
    args: list[Any]


Op = TaskWrite | ObjectSealed | ObjectFreed | ScriptCall


class RedisWriter:
    """Queues table writes and flushes them every ``flush_interval_s`` as one pipeline per shard.

    Hot paths (task submission and completion, object sealing, actor transitions) never wait for
    Redis: they append here. Task and object writes go to the data shard of their ID, actor and job
    writes to the primary (which has its own queue, whether or not it is also a data shard). Each
    queue has its own flush loop, so a shard that is being retried holds up only its own writes.
    Every queued write is idempotent (CAS scripts keyed by state and attempt, HSET, location
    removal), so a flush that fails on a restarting shard is retried as a whole without
    double-applying anything.
    """

    def __init__(self, store: AsyncShardedRedis, node_hex: str, flush_interval_s: float, task_ttl_s: int,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.node_hex = node_hex
        self.flush_interval_s = flush_interval_s
        self.task_ttl_s = task_ttl_s
        #: Wall clock of the task table's ``creation_time``/``end_time`` (the state API's timestamps).
        self.clock = clock
        #: One pipeline target per data shard, then the primary (index ``primary_index``).
        self.clients: list[Any] = [*store.shards, store.primary]
        self.primary_index = len(store.shards)
        self.pending: list[list[Op]] = [[] for _ in self.clients]
        self.scripts = [Scripts(c) for c in self.clients]
        self._wakes = [asyncio.Event() for _ in self.clients]
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(i)) for i in range(len(self.clients))]

    # ---- producers ----------------------------------------------------------------------------

    def task_submitted(self, task_id: bytes, spec_bytes: bytes, job_id: int, attempt: int) -> None:
        """The spec (always), and PENDING on this node only while the entry has no state or one of an
        earlier attempt (an actor's constructor submitted again): the node a task was forwarded to
        may have reported it RUNNING or ended before this write lands (a loaded owner forwards
        without waiting for its flush), and PENDING must not undo that."""
        shard = self.store.index_for_id(task_id)
        self._add(shard, TaskWrite(task_id.hex(), "*", attempt, 0,
                                   ["spec", spec_bytes, "job", job_id, "creation_time", self.clock()]))
        self._add(shard, TaskWrite(task_id.hex(), "NONE,OLDER", attempt, 0,
                                   ["state", TaskState.PENDING.value, "node", self.node_hex, "attempt", attempt]))

    def task_state(self, task_id: bytes, state: TaskState, attempt: int, worker: bytes = b"",
                   error_type: str = "", start_time: float = 0.0) -> None:
        """Record ``state``; a terminal one with its ``end_time``, the ``worker`` that ran it, its
        ``start_time`` (when this node handed it to that worker) and Ray's ``error_type`` of a failure
        (each if known). The timestamps ride in the same script call as the state: no extra write."""
        terminal = state.terminal
        # (NONE: the owner's PENDING write of a task forwarded here may not have landed yet.)
        allowed = "PENDING,RUNNING,NONE" if terminal or state is TaskState.RUNNING else "*"
        fields: list[Any] = ["state", state.value, "attempt", attempt, "node", self.node_hex]
        if terminal:
            fields += ["end_time", self.clock()]
            if worker:
                fields += ["worker", worker.hex()]
            if start_time:
                fields += ["start_time", start_time]
            if error_type:
                fields += ["error_type", error_type]
        self._add(self.store.index_for_id(task_id), TaskWrite(
            task_id.hex(), allowed, attempt, self.task_ttl_s if terminal else 0, fields))

    def task_spilled(self, task_id: bytes, node: bytes, attempt: int) -> None:
        """The task is handed to ``node`` (flushed before the forward is sent: see ``peers.py``)."""
        self._add(self.store.index_for_id(task_id), TaskWrite(
            task_id.hex(), "PENDING", attempt, 0, ["node", node.hex(), "spilled_from", self.node_hex]))

    def object_sealed(self, oid: bytes, size: int, is_error: bool) -> None:
        self._add(self.store.index_for_id(oid), ObjectSealed(oid.hex(), size, is_error))

    def object_freed(self, oid: bytes) -> None:
        self._add(self.store.index_for_id(oid), ObjectFreed(oid.hex()))

    def actor_transition(self, actor_id: bytes, allowed: str, attempt: str, fields: Mapping[str, Any]) -> None:
        """CAS the actor's entry from a state in ``allowed`` (and ``attempt``, "" for any) to ``fields``;
        a repeated write is harmless, so it is retried with the batch while the primary is away."""
        ks, args = tables.actor_transition_call(actor_id.hex(), allowed, attempt, fields)
        self._add(self.primary_index, ScriptCall("actor_transition", ks, args))

    def job_finished(self, job_id: int) -> None:
        """Record the job as FINISHED (its driver left), unless it already is."""
        ks, args = tables.job_state_cas_args(job_id, JobState.RUNNING.value, JobState.FINISHED)
        self._add(self.primary_index, ScriptCall("hfield_cas", ks, list(args)))

    def _add(self, index: int, op: Op) -> None:
        self.pending[index].append(op)
        wake = self._wakes[index]
        if not wake.is_set():
            wake.set()

    # ---- flushing -----------------------------------------------------------------------------

    async def _run(self, i: int) -> None:
        """Flush queue ``i`` whenever it has ops, at most every ``flush_interval_s``."""
        wake = self._wakes[i]
        while True:
            await wake.wait()
            await asyncio.sleep(self.flush_interval_s)
            wake.clear()
            await self._flush_queue(i)
            if self._closing and not self.pending[i]:
                return  # (ops queued while the last flush ran go out in one more round)

    async def flush(self) -> None:
        """Flush every queue now (tests; the background loops do this on their own)."""
        await asyncio.gather(*(self._flush_queue(i) for i in range(len(self.clients))))

    async def _flush_queue(self, i: int) -> None:
        ops, self.pending[i] = self.pending[i], []
        if ops:
            await self._flush_shard(i, ops)

    def _target(self, i: int) -> str:
        return "the primary" if i == self.primary_index else f"shard {i}"

    async def _flush_shard(self, i: int, ops: list[Op]) -> None:
        try:
            async for attempt in retry.async_redis_op():
                with attempt:
                    await self._pipeline(i, ops)
        except retry.REDIS_RETRYABLE + (OSError,) as e:
            logger.error("dropping %d table writes to %s after retrying (%s)", len(ops), self._target(i), e)
        except Exception:  # a bug must not end the flush loop and silently drop every later write
            logger.exception("dropping %d table writes to %s", len(ops), self._target(i))

    async def _pipeline(self, i: int, ops: list[Op]) -> None:
        pipe = self.clients[i].pipeline(transaction=False)
        scripts = self.scripts[i]
        for op in ops:
            if isinstance(op, TaskWrite):
                await scripts.task_transition(
                    keys=[keys.task_key(op.task_hex)], args=[op.allowed, op.attempt, op.ttl, *op.fields],
                    client=pipe)
            elif isinstance(op, ObjectSealed):
                tables.queue_object_sealed(pipe, op.object_hex, op.size, op.is_error, self.node_hex)
            elif isinstance(op, ObjectFreed):
                # Only this node's copy is gone; copies elsewhere keep their locations.
                await scripts.object_location_remove(
                    keys=[keys.object_key(op.object_hex)], args=[tables.location_field(self.node_hex)],
                    client=pipe)
            else:
                await getattr(scripts, op.script)(keys=op.keys, args=op.args, client=pipe)
        # A command's own error (a script raising) must not fail the batch: the other writes stand,
        # and retrying would not change it. Connection errors still raise and are retried above.
        results = await pipe.execute(raise_on_error=False)
        errors = [(op, r) for op, r in zip(ops, _per_op(results, ops)) if isinstance(r, Exception)]
        for op, err in errors[:5]:
            logger.error("table write to %s failed: %r: %s", self._target(i), op, err)
        if len(errors) > 5:
            logger.error("... and %d more failed table writes to %s", len(errors) - 5, self._target(i))

    async def close(self) -> None:
        self._closing = True
        for wake in self._wakes:
            wake.set()
        if self._tasks:
            _, unfinished = await asyncio.wait(self._tasks, timeout=5.0)
            for t in unfinished:  # shutting down: never block exit
                t.cancel()


def _per_op(results: list[Any], ops: list[Op]) -> list[Any]:
    """The pipeline result that reports each op's outcome (an ObjectSealed op queues two commands,
    HSET then PUBLISH: its HSET's result stands for it)."""
    out: list[Any] = []
    j = 0
    for op in ops:
        out.append(results[j] if j < len(results) else None)
        j += 2 if isinstance(op, ObjectSealed) else 1
    return out

"""Batched, pipelined writes of the task, object, actor and job tables from the raylet, one pipeline per shard."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
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
    writes to the primary (which has its own queue, whether or not it is also a data shard). Every
    queued write is idempotent (CAS scripts keyed by state and attempt, HSET, location removal), so a
    flush that fails on a restarting shard is retried as a whole without double-applying anything.
    """

    def __init__(self, store: AsyncShardedRedis, node_hex: str, flush_interval_s: float, task_ttl_s: int):
        self.store = store
        self.node_hex = node_hex
        self.flush_interval_s = flush_interval_s
        self.task_ttl_s = task_ttl_s
        #: One pipeline target per data shard, then the primary (index ``primary_index``).
        self.clients: list[Any] = [*store.shards, store.primary]
        self.primary_index = len(store.shards)
        self.pending: list[list[Op]] = [[] for _ in self.clients]
        self.scripts = [Scripts(c) for c in self.clients]
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    # ---- producers ----------------------------------------------------------------------------

    def task_submitted(self, task_id: bytes, spec_bytes: bytes, job_id: int, attempt: int) -> None:
        self._add(self.store.index_for_id(task_id), TaskWrite(
            task_id.hex(), "*", attempt, 0,
            ["spec", spec_bytes, "state", TaskState.PENDING.value, "node", self.node_hex,
             "attempt", attempt, "job", job_id]))

    def task_state(self, task_id: bytes, state: TaskState, attempt: int) -> None:
        terminal = state.terminal
        allowed = "PENDING,RUNNING" if terminal or state is TaskState.RUNNING else "*"
        self._add(self.store.index_for_id(task_id), TaskWrite(
            task_id.hex(), allowed, attempt, self.task_ttl_s if terminal else 0,
            ["state", state.value, "attempt", attempt, "node", self.node_hex]))

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
        if not self._wake.is_set():
            self._wake.set()

    # ---- flushing -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_interval_s)
            self._wake.clear()
            await self.flush()
            if self._closing and not any(self.pending):
                return  # (ops queued while the last flush ran go out in one more round)

    async def flush(self) -> None:
        batches, self.pending = self.pending, [[] for _ in self.clients]
        await asyncio.gather(*(self._flush_shard(i, ops) for i, ops in enumerate(batches) if ops))

    def _target(self, i: int) -> str:
        return "the primary" if i == self.primary_index else f"shard {i}"

    async def _flush_shard(self, i: int, ops: list[Op]) -> None:
        try:
            async for attempt in retry.async_redis_op():
                with attempt:
                    await self._pipeline(i, ops)
        except retry.REDIS_RETRYABLE + (OSError,) as e:
            logger.error("dropping %d table writes to %s after retrying (%s)", len(ops), self._target(i), e)

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
        await pipe.execute(raise_on_error=False)

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - shutting down: never block exit
                self._task.cancel()

"""Batched, pipelined writes of the task and object tables from the raylet, one pipeline per shard."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rayredis._private import retry
from rayredis.store import keys, tables
from rayredis.store.client import AsyncShardedRedis
from rayredis.store.scripts import Scripts

logger = logging.getLogger(__name__)

TERMINAL = ("FINISHED", "FAILED", "CANCELLED")


class RedisWriter:
    """Queues table writes and flushes them every ``flush_interval_s`` as one pipeline per shard.

    Hot paths (task submission and completion, object sealing) never wait for Redis: they append
    here. Every queued write is idempotent (CAS scripts keyed by attempt, HSET, DEL), so a flush
    that fails on a restarting shard is retried as a whole without double-applying anything.
    """

    def __init__(self, store: AsyncShardedRedis, node_hex: str, flush_interval_s: float, task_ttl_s: int):
        self.store = store
        self.node_hex = node_hex
        self.flush_interval_s = flush_interval_s
        self.task_ttl_s = task_ttl_s
        self.pending: list[list[tuple[str, Any]]] = [[] for _ in store.shards]
        self.scripts = [Scripts(s) for s in store.shards]
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    # ---- producers ----------------------------------------------------------------------------

    def task_submitted(self, task_id: bytes, spec_bytes: bytes, job_id: int, attempt: int) -> None:
        self._add(task_id, ("task", (task_id.hex(), "*", attempt, 0,
                                     ["spec", spec_bytes, "state", "PENDING", "node", self.node_hex,
                                      "attempt", attempt, "job", job_id])))

    def task_state(self, task_id: bytes, state: str, attempt: int) -> None:
        allowed = "PENDING,RUNNING" if state in TERMINAL or state == "RUNNING" else "*"
        ttl = self.task_ttl_s if state in TERMINAL else 0
        self._add(task_id, ("task", (task_id.hex(), allowed, attempt, ttl,
                                     ["state", state, "attempt", attempt, "node", self.node_hex])))

    def object_sealed(self, oid: bytes, size: int, is_error: bool) -> None:
        self._add(oid, ("obj", (oid.hex(), size, is_error)))

    def object_freed(self, oid: bytes) -> None:
        self._add(oid, ("free", oid.hex()))

    def _add(self, id_bytes: bytes, op: tuple[str, Any]) -> None:
        self.pending[self.store.index_for_id(id_bytes)].append(op)
        if not self._wake.is_set():
            self._wake.set()

    # ---- flushing -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_interval_s)
            self._wake.clear()
            await self.flush()
            if self._closing:
                return

    async def flush(self) -> None:
        batches, self.pending = self.pending, [[] for _ in self.store.shards]
        await asyncio.gather(*(self._flush_shard(i, ops) for i, ops in enumerate(batches) if ops))

    async def _flush_shard(self, i: int, ops: list[tuple[str, Any]]) -> None:
        try:
            async for attempt in retry.async_redis_op():
                with attempt:
                    await self._pipeline(i, ops)
        except retry.REDIS_RETRYABLE + (OSError,) as e:
            logger.error("dropping %d table writes to shard %d after retrying (%s)", len(ops), i, e)

    async def _pipeline(self, i: int, ops: list[tuple[str, Any]]) -> None:
        pipe = self.store.shards[i].pipeline(transaction=False)
        scripts = self.scripts[i]
        for kind, arg in ops:
            if kind == "task":
                tid_hex, allowed, att, ttl, fields = arg
                await scripts.task_transition(
                    keys=[keys.task_key(tid_hex)], args=[allowed, att, ttl, *fields], client=pipe
                )
            elif kind == "obj":
                oid_hex, size, is_error = arg
                tables.queue_object_sealed(pipe, oid_hex, size, is_error, self.node_hex)
            elif kind == "free":
                # Only this node's copy is gone; copies elsewhere keep their locations.
                await scripts.object_location_remove(
                    keys=[keys.object_key(arg)], args=[tables.location_field(self.node_hex)], client=pipe)
        await pipe.execute(raise_on_error=False)

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                self._task.cancel()

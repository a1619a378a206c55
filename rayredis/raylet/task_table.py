"""The raylet's reads of the task and object tables for rebuilding orphaned objects: the I/O side of ``orphans.py``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from rayredis._private import retry
from rayredis.store import keys, tables
from rayredis.store.client import AsyncShardedRedis
from rayredis.store.scripts import Scripts

if TYPE_CHECKING:
    from rayredis.raylet.orphans import Orphans

logger = logging.getLogger(__name__)

#: How long one read or claim keeps retrying while a data shard is away.
TABLE_OP_TIMEOUT_S = 30.0


class TaskTableClient:
    """Implements :class:`~rayredis.raylet.orphans.TaskTable` over the data shards.

    A read is one pipeline on the task's shard (the task's entry and its objects' entries, which
    the task-ID prefix routes to the same shard); a claim is the ``task_claim`` script there. Both
    are retried under ``retry.async_redis_op`` for up to :data:`TABLE_OP_TIMEOUT_S` (both are safe
    to repeat: a resent claim that already applied is recognised by the script), then reported
    as failed.
    """

    def __init__(self, store: AsyncShardedRedis, node_hex: str):
        self.store = store
        self.node_hex = node_hex
        self.core: Orphans
        self._scripts: dict[int, Scripts] = {}
        self._bg: set[asyncio.Task[Any]] = set()

    # ---- TaskTable ------------------------------------------------------------------------------

    def read(self, tid: bytes, oids: list[bytes]) -> None:
        self._spawn(self._read(tid, oids))

    def claim(self, tid: bytes, attempt: int) -> None:
        self._spawn(self._claim(tid, attempt))

    # ---- I/O ------------------------------------------------------------------------------------

    async def _read(self, tid: bytes, oids: list[bytes]) -> None:
        client = self.store.for_id(tid)
        try:
            async for attempt in retry.async_redis_op(TABLE_OP_TIMEOUT_S):
                with attempt:
                    pipe = client.pipeline(transaction=False)
                    pipe.hgetall(keys.task_key(tid.hex()))
                    for o in oids:
                        pipe.hgetall(keys.object_key(o.hex()))
                    results = await pipe.execute()
        except retry.REDIS_RETRYABLE + (OSError,) as e:
            self.core.io_failed(tid, f"{type(e).__name__}: {e}")
            return
        task = tables.TaskEntry.from_redis(tid.hex(), results[0])
        objs = {o: tables.ObjectEntry.from_redis(o.hex(), raw) for o, raw in zip(oids, results[1:], strict=True)}
        self.core.read_done(tid, task, objs)

    async def _claim(self, tid: bytes, attempt: int) -> None:
        i = self.store.index_for_id(tid)
        scripts = self._scripts.get(i)
        if scripts is None:
            scripts = self._scripts[i] = Scripts(self.store.shards[i])
        try:
            async for a in retry.async_redis_op(TABLE_OP_TIMEOUT_S):
                with a:
                    out = await scripts.task_claim(keys=[keys.task_key(tid.hex())], args=[attempt, self.node_hex])
        except retry.REDIS_RETRYABLE + (OSError,) as e:
            self.core.io_failed(tid, f"{type(e).__name__}: {e}")
            return
        won, current = parse_claim(out)
        self.core.claim_done(tid, won, current)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._done)

    def _done(self, t: asyncio.Task[Any]) -> None:
        self._bg.discard(t)
        if not t.cancelled() and t.exception() is not None:
            logger.error("task-table operation failed", exc_info=t.exception())

    async def close(self) -> None:
        for t in list(self._bg):
            t.cancel()


def parse_claim(out: Any) -> tuple[bool, int]:
    """``task_claim``'s reply as (won, attempt): the claimed attempt, the entry's current one when
    lost, -1 when the entry is gone."""
    code = int(out[0])
    if code == 1:
        return True, int(out[1])
    if code == 0:
        return False, int(out[1])
    return False, -1

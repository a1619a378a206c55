"""The raylet's reads of the task and object tables for rebuilding orphaned objects: the I/O side of ``orphans.py``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from rayredis._private import retry
from rayredis.store import keys, pubsub, tables
from rayredis.store.client import AsyncShardedRedis
from rayredis.store.scripts import Scripts

if TYPE_CHECKING:
    from rayredis.raylet.orphans import Orphans

logger = logging.getLogger(__name__)

#: How long one read or claim keeps retrying while a data shard is away.
TABLE_OP_TIMEOUT_S = 30.0


class TaskTableClient:
    """Implements :class:`~rayredis.raylet.orphans.TaskTable` over the data shards.

    Reads (one pipeline: the task's entry and its objects' entries) and the ``task_claim`` script
    are retried under ``retry.async_redis_op`` (both are safe to repeat: a resent claim that
    already applied is recognised by the script). Watches subscribe to the object channel of the
    object's shard only while some object of that shard is watched, and rescan (report every
    watched object once) after each subscription, so a copy announced meanwhile is not missed.
    """

    def __init__(self, store: AsyncShardedRedis, node_hex: str):
        self.store = store
        self.node_hex = node_hex
        self.core: Orphans
        self._scripts: dict[int, Scripts] = {}
        self._watched: dict[int, set[bytes]] = {}
        self._followers: dict[int, asyncio.Task[None]] = {}
        self._bg: set[asyncio.Task[Any]] = set()

    # ---- TaskTable ------------------------------------------------------------------------------

    def read(self, tid: bytes, oids: list[bytes]) -> None:
        self._spawn(self._read(tid, oids))

    def claim(self, tid: bytes, attempt: int) -> None:
        self._spawn(self._claim(tid, attempt))

    def watch(self, oid: bytes) -> None:
        i = self.store.index_for_id(oid)
        self._watched.setdefault(i, set()).add(oid)
        if i not in self._followers:
            client = self.store.shards[i]

            async def rescan() -> None:
                for o in sorted(self._watched.get(i, ())):
                    self.core.published(o)

            async def on_message(channel: str, data: str) -> None:
                try:
                    o = bytes.fromhex(data)
                except ValueError:
                    return
                if o in self._watched.get(i, ()):
                    self.core.published(o)

            self._followers[i] = asyncio.get_running_loop().create_task(
                pubsub.follow(client, [keys.object_channel()], rescan, on_message))

    def unwatch(self, oid: bytes) -> None:
        i = self.store.index_for_id(oid)
        watched = self._watched.get(i)
        if watched is None:
            return
        watched.discard(oid)
        if not watched:
            del self._watched[i]
            t = self._followers.pop(i, None)
            if t is not None:
                t.cancel()

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
        objs = {o: tables.ObjectEntry.from_redis(o.hex(), raw) for o, raw in zip(oids, results[1:])}
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
        code = int(out[0])
        if code == 1:
            self.core.claim_done(tid, True, int(out[1]), bytes.fromhex(self.node_hex))
        elif code == 0:
            holder = out[2].decode() if isinstance(out[2], bytes) else str(out[2])
            self.core.claim_done(tid, False, int(out[1]), bytes.fromhex(holder) if holder else b"")
        else:
            self.core.claim_done(tid, False, -1, b"")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._done)

    def _done(self, t: asyncio.Task[Any]) -> None:
        self._bg.discard(t)
        if not t.cancelled() and t.exception() is not None:
            logger.error("task-table operation failed", exc_info=t.exception())

    async def close(self) -> None:
        for t in [*self._bg, *self._followers.values()]:
            t.cancel()
        self._followers.clear()
        self._watched.clear()

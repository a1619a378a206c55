"""Batched reads of actor entries for calls to actors this node does not host (one task, one pipeline a batch)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from rayredis._private import retry
from rayredis.store import tables
from rayredis.store.tables import ActorEntry

logger = logging.getLogger(__name__)

#: Most actor entries one batched lookup reads in one pipeline.
LOOKUP_BATCH = 500


class ActorLookups:
    """Reads the entries of the actors asked for since the last read, in one pipeline, from one task.

    A burst of thousands of new actors so costs a few round trips on one connection, not one
    connection each (which exhausted the raylet's pool and took its pub/sub down with it).
    ``apply(actor_id, entry)`` gets each result (None for an actor with no entry)."""

    def __init__(self, primary: Callable[[], Any], apply: Callable[[bytes, ActorEntry | None], None],
                 timeout_s: float):
        self._primary = primary
        self._apply = apply
        self._timeout_s = timeout_s
        self._wanted: set[bytes] = set()
        self._task: asyncio.Task[None] | None = None

    def ask(self, actor_id: bytes) -> None:
        self._wanted.add(actor_id)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while self._wanted:
            batch = sorted(self._wanted)[:LOOKUP_BATCH]
            self._wanted.difference_update(batch)
            try:
                async for attempt in retry.async_redis_op(self._timeout_s):
                    with attempt:
                        entries = await tables.aread_actors(self._primary(), [a.hex() for a in batch])
            except Exception:  # the pub/sub rescan once Redis is back reads them again
                logger.exception("reading %d actor entries failed", len(batch))
                continue
            found = {e.actor_id: e for e in entries}
            for aid in batch:
                self._apply(aid, found.get(aid.hex()))

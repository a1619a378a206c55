"""ActorLookups: a burst of lookups is read in a few pipelines from one task, and a failed read is logged."""

from __future__ import annotations

import asyncio
from typing import Any

import redis

from rayredis.raylet import actor_lookups
from rayredis.raylet.actor_lookups import ActorLookups
from rayredis.store import keys
from rayredis.store.tables import ActorEntry


class _Pipe:
    def __init__(self, owner: _Primary):
        self.owner = owner
        self.keys: list[str] = []

    def hgetall(self, key: str) -> None:
        self.keys.append(key)

    async def execute(self) -> list[dict[bytes, bytes]]:
        self.owner.pipelines.append(len(self.keys))
        self.owner.in_flight += 1
        self.owner.most_in_flight = max(self.owner.most_in_flight, self.owner.in_flight)
        await asyncio.sleep(0.001)
        self.owner.in_flight -= 1
        if self.owner.fail:
            self.owner.fail -= 1
            raise redis.exceptions.ConnectionError("shard restarting")
        return [self.owner.entries.get(k, {}) for k in self.keys]


class _Primary:
    def __init__(self, entries: dict[str, dict[bytes, bytes]]):
        self.entries = entries
        self.pipelines: list[int] = []
        self.in_flight = self.most_in_flight = self.fail = 0

    def pipeline(self, transaction: bool = False) -> _Pipe:
        return _Pipe(self)


def _aid(i: int) -> bytes:
    return i.to_bytes(16, "big")


def test_a_burst_of_lookups_is_read_in_batches_by_one_task() -> None:
    n = 2 * actor_lookups.LOOKUP_BATCH + 3
    primary = _Primary({keys.actor_key(_aid(i).hex()): {b"state": b"ALIVE", b"attempt": b"0"}
                        for i in range(0, n, 2)})  # every other actor exists
    got: dict[bytes, ActorEntry | None] = {}

    async def main() -> None:
        lookups = ActorLookups(lambda: primary, got.__setitem__, 5.0)
        for i in range(n):
            lookups.ask(_aid(i))
        lookups.ask(_aid(0))  # asked twice: read once
        while len(got) < n:
            await asyncio.sleep(0.001)
        await lookups.close()

    asyncio.run(main())
    assert primary.most_in_flight == 1  # one connection's worth, not one per actor
    assert sum(primary.pipelines) == n and max(primary.pipelines) <= actor_lookups.LOOKUP_BATCH
    assert all((got[_aid(i)] is not None) == (i % 2 == 0) for i in range(n))


def test_a_read_that_fails_once_is_retried() -> None:
    primary = _Primary({keys.actor_key(_aid(1).hex()): {b"state": b"DEAD", b"attempt": b"0"}})
    primary.fail = 1
    got: dict[bytes, Any] = {}

    async def main() -> None:
        lookups = ActorLookups(lambda: primary, got.__setitem__, 5.0)
        lookups.ask(_aid(1))
        while not got:
            await asyncio.sleep(0.005)
        await lookups.close()

    asyncio.run(main())
    assert got[_aid(1)].state.value == "DEAD" and len(primary.pipelines) == 2

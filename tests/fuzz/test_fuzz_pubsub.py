"""Fuzz pub/sub delivery: whatever is published (not UTF-8, not an ID, a handler that raises on it),
the subscription goes on and later messages are still delivered. Through a real redis-server."""

from __future__ import annotations

import asyncio

import redis.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from rayredis.store import pubsub
from tests.fuzz.conftest import EXAMPLES
from tests.unit.conftest import REDIS_PASSWORD, redis_port  # noqa: F401 - the fixture

CHANNEL = "rr:fuzz"


@settings(max_examples=max(10, EXAMPLES // 10))
@given(payloads=st.lists(st.binary(max_size=40), min_size=1, max_size=5))
def test_subscription_survives_any_payload(redis_port: int, payloads: list[bytes]) -> None:  # noqa: F811
    async def main() -> None:
        client = redis.asyncio.Redis(port=redis_port, password=REDIS_PASSWORD)
        got: list[str] = []
        ready = asyncio.Event()

        async def rescan() -> None:
            ready.set()

        async def on_message(ch: str, data: str) -> None:
            got.append(data)
            bytes.fromhex(data)  # as the raylet's handler does with an actor ID: raises on junk

        task = asyncio.ensure_future(pubsub.follow(client, [CHANNEL], rescan, on_message))
        try:
            await asyncio.wait_for(ready.wait(), 10)
            for p in payloads:
                await client.publish(CHANNEL, p)
            await client.publish(CHANNEL, "00ff")
            for _ in range(500):
                if "00ff" in got:
                    break
                await asyncio.sleep(0.01)
            assert "00ff" in got and not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.aclose()

    asyncio.run(main())

"""Cluster events against a real redis-server: fire-and-forget writes, the cap, parsing, never failing the caller."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import redis.asyncio

from rayredis._private import events
from rayredis._private.redis_server import free_port
from rayredis.store import keys
from tests.unit.conftest import REDIS_PASSWORD


@pytest.fixture
def client(redis_port: int) -> Iterator[redis.Redis]:
    c = redis.Redis(port=redis_port, password=REDIS_PASSWORD)
    c.delete(keys.cluster_events_key())
    try:
        yield c
    finally:
        c.delete(keys.cluster_events_key())
        c.close()


def test_entry_and_parse_round_trip() -> None:
    f = events.entry(events.Kind.NODE_DEAD, "node x died", "GCS", "ERROR", node_id="x", skipped=None)
    assert json.loads(f["custom"]) == {"node_id": "x"}
    ev = events.parse(b"1700000000123-4", {k.encode(): v.encode() for k, v in f.items()})
    assert ev == events.ClusterEventState("1700000000123-4", 1700000000123, "ERROR", "GCS", "NODE_DEAD",
                                          "node x died", {"node_id": "x"})
    broken = events.parse("5-0", {"custom": "{not json", "kind": "X"})
    assert broken.custom_fields == {} and broken.label == "X" and broken.message == ""


def test_record_without_configure_is_a_no_op(client: redis.Redis) -> None:
    events.record(events.Kind.NODE_REGISTERED, "nobody listens")
    assert client.xlen(keys.cluster_events_key()) == 0


def test_record_writes_without_waiting_and_read_returns_oldest_first(client: redis.Redis, redis_port: int) -> None:
    async def main() -> None:
        ac = redis.asyncio.Redis(port=redis_port, password=REDIS_PASSWORD)
        events.configure(ac, "RAYLET")
        try:
            for i in range(3):
                events.record(events.Kind.ACTOR_RESTARTED, f"restart {i}", "WARNING", actor_id="a1")
        finally:
            await events.drain()
            await ac.aclose()

    asyncio.run(main())
    got = events.read(client)
    assert [e.message for e in got] == ["restart 0", "restart 1", "restart 2"]
    assert {e.source_type for e in got} == {"RAYLET"} and got[0].custom_fields == {"actor_id": "a1"}
    assert [e.message for e in events.read(client, after=got[0].event_id)] == ["restart 1", "restart 2"]
    newest = events.newest_first(SimpleNamespace(primary=client))
    assert [e.message for e in newest] == ["restart 2", "restart 1", "restart 0"]


def test_record_from_another_thread_reaches_the_loop(client: redis.Redis, redis_port: int) -> None:
    async def main() -> None:
        ac = redis.asyncio.Redis(port=redis_port, password=REDIS_PASSWORD)
        events.configure(ac, "GCS")
        try:
            await asyncio.to_thread(events.record, events.Kind.GCS_ACTIVE, "from a thread")
            await asyncio.sleep(0.05)
        finally:
            await events.drain()
            await ac.aclose()

    asyncio.run(main())
    assert [e.label for e in events.read(client)] == ["GCS_ACTIVE"]


def test_a_dead_redis_never_fails_or_blocks_the_caller() -> None:
    port = free_port("127.0.0.1")  # nothing listens there

    async def main() -> None:
        ac = redis.asyncio.Redis(port=port, password=REDIS_PASSWORD)
        events.configure(ac, "GCS")
        try:
            events.record(events.Kind.NODE_DEAD, "lost")  # returns at once; the write fails in the background
        finally:
            await events.drain()
            await ac.aclose()

    asyncio.run(main())

    def broken() -> Any:
        raise ConnectionError("no cluster")

    t = events.record_in_thread(broken, events.Kind.PROCESS_RESTARTED, "restarted", "SUPERVISOR")
    t.join(5.0)
    assert not t.is_alive()


def test_record_in_thread_writes(client: redis.Redis) -> None:
    store = SimpleNamespace(primary=client, close=lambda: None)
    t = events.record_in_thread(lambda: store, events.Kind.REDIS_FAILOVER, "waits", "SUPERVISOR", "WARNING",
                                role="redis")
    t.join(5.0)
    (ev,) = events.read(client)
    assert (ev.label, ev.severity, ev.source_type, ev.custom_fields) == ("REDIS_FAILOVER", "WARNING", "SUPERVISOR",
                                                                        {"role": "redis"})


def test_the_stream_is_capped(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "MAXLEN", 10)
    store = SimpleNamespace(primary=client, close=lambda: None)
    for i in range(300):
        events.record_in_thread(lambda: store, events.Kind.NODE_REGISTERED, f"n{i}", "RAYLET").join(5.0)
    n = client.xlen(keys.cluster_events_key())
    assert n < 300  # MAXLEN ~ trims whole macro nodes (100 entries by default), so roughly 10..110 remain
    assert events.read(client)[-1].message == "n299"

"""The raylet's RedisWriter: ops routed per shard (actors and jobs to the primary), one pipeline each, retried whole."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.exceptions

from rayredis.actor_state import ActorState
from rayredis.raylet.redis_writer import RedisWriter
from rayredis.store import keys, scripts, tables
from rayredis.store.tables import TaskState

NODE_HEX = "ab" * 16


class FakePipeline:
    def __init__(self, client: FakeClient):
        self.client = client
        self.commands: list[tuple[Any, ...]] = []

    def hset(self, key: str, mapping: dict[str, Any]) -> None:
        self.commands.append(("hset", key, mapping))

    def publish(self, channel: str, message: str) -> None:
        self.commands.append(("publish", channel, message))

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self.client.failures:
            self.client.failures -= 1
            raise redis.exceptions.ConnectionError("shard restarting")
        self.client.executed.append(self.commands)
        return [None] * len(self.commands)


class FakeScript:
    def __init__(self, name: str):
        self.name = name

    async def __call__(self, keys: list[str], args: list[Any], client: FakePipeline) -> None:
        client.commands.append((self.name, keys, args))


class FakeClient:
    """A shard: registers scripts by name and records what each executed pipeline carried."""

    def __init__(self, failures: int = 0):
        self.failures = failures
        self.executed: list[list[tuple[Any, ...]]] = []

    def register_script(self, source: str) -> FakeScript:
        (name,) = [n for n in scripts.NAMES if scripts.source(n) == source]
        return FakeScript(name)

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


class FakeStore:
    def __init__(self, shards: list[FakeClient], primary: FakeClient):
        self.shards = shards
        self.primary = primary

    def index_for_id(self, id_bytes: bytes) -> int:
        return keys.shard_index_for_id(id_bytes, len(self.shards))


def writer(store: FakeStore, ttl: int = 600) -> RedisWriter:
    return RedisWriter(store, NODE_HEX, 0.0, ttl, clock=lambda: 1234.5)  # type: ignore[arg-type]


def id_on_shard(store: FakeStore, shard: int, tag: int = 0) -> bytes:
    for i in range(10_000):
        candidate = bytes([tag]) + i.to_bytes(4, "big") + b"\0" * 11
        if store.index_for_id(candidate) == shard:
            return candidate
    raise AssertionError("no id found")


def test_ops_are_grouped_per_shard_in_one_pipeline_each() -> None:
    primary, s1 = FakeClient(), FakeClient()
    store = FakeStore([primary, s1], primary)  # the primary is also data shard 0
    w = writer(store)
    t0, t1 = id_on_shard(store, 0), id_on_shard(store, 1)
    w.task_submitted(t0, b"spec", 3, 0)
    w.task_state(t0, TaskState.FINISHED, 0)
    w.task_state(t1, TaskState.PENDING, 2)
    w.task_state(t1, TaskState.FAILED, 2, worker=b"\x01" * 16, error_type="WORKER_DIED")
    w.object_sealed(t1, 10, True)
    w.object_freed(t0)
    asyncio.run(w.flush())

    (shard1,) = s1.executed
    assert shard1 == [
        ("task_transition", [keys.task_key(t1.hex())],
         ["*", 2, 0, "state", "PENDING", "attempt", 2, "node", NODE_HEX]),
        ("task_transition", [keys.task_key(t1.hex())],
         ["PENDING,RUNNING,NONE", 2, 600, "state", "FAILED", "attempt", 2, "node", NODE_HEX, "end_time", 1234.5,
          "worker", "01" * 16, "error_type", "WORKER_DIED"]),
        ("hset", keys.object_key(t1.hex()), {"size": 10, "task": t1.hex()[:32], "error": 1,
                                             tables.location_field(NODE_HEX): 1}),
        ("publish", keys.object_channel(), t1.hex()),
    ]
    (shard0,) = primary.executed  # nothing was queued for the primary's own queue
    assert shard0 == [
        ("task_transition", [keys.task_key(t0.hex())], ["*", 0, 0, "spec", b"spec", "job", 3, "creation_time", 1234.5]),
        ("task_transition", [keys.task_key(t0.hex())],
         ["NONE,OLDER", 0, 0, "state", "PENDING", "node", NODE_HEX, "attempt", 0]),
        ("task_transition", [keys.task_key(t0.hex())],
         ["PENDING,RUNNING,NONE", 0, 600, "state", "FINISHED", "attempt", 0, "node", NODE_HEX, "end_time", 1234.5]),
        ("object_location_remove", [keys.object_key(t0.hex())], [tables.location_field(NODE_HEX)]),
    ]
    assert w.pending == [[], [], []]


def test_actor_and_job_writes_go_to_the_primary_pipeline() -> None:
    primary, s0 = FakeClient(), FakeClient()
    store = FakeStore([s0], primary)
    w = writer(store)
    aid = bytes(range(16))
    w.actor_transition(aid, "SCHEDULED,ALIVE", "2", {"state": ActorState.ALIVE.value, "pid": 7})
    w.job_finished(5)
    asyncio.run(w.flush())
    assert s0.executed == []
    (batch,) = primary.executed
    ks, args = tables.actor_transition_call(aid.hex(), "SCHEDULED,ALIVE", "2", {"state": "ALIVE", "pid": 7})
    jks, jargs = tables.job_state_cas_args(5, "RUNNING", tables.JobState.FINISHED)
    assert batch == [("actor_transition", ks, args), ("hfield_cas", jks, jargs)]


def test_primary_queue_is_separate_even_when_it_is_a_data_shard() -> None:
    primary = FakeClient()
    store = FakeStore([primary], primary)
    w = writer(store)
    tid = id_on_shard(store, 0)
    w.task_state(tid, TaskState.CANCELLED, 1)
    w.job_finished(1)
    asyncio.run(w.flush())
    assert [[c[0] for c in b] for b in primary.executed] in (
        [["task_transition"], ["hfield_cas"]], [["hfield_cas"], ["task_transition"]])


def test_a_failed_pipeline_is_retried_as_a_whole() -> None:
    shard = FakeClient(failures=2)
    store = FakeStore([shard], shard)
    w = writer(store)
    tid = id_on_shard(store, 0)
    w.task_submitted(tid, b"s", 1, 0)
    w.object_sealed(tid, 3, False)
    asyncio.run(w.flush())
    (batch,) = shard.executed  # the two failed attempts applied nothing
    assert [c[0] for c in batch] == ["task_transition", "task_transition", "hset", "publish"]


def test_background_loop_flushes_and_close_drains() -> None:
    shard = FakeClient()
    store = FakeStore([shard], shard)

    async def scenario() -> list[list[tuple[Any, ...]]]:
        w = writer(store)
        w.start()
        w.object_freed(id_on_shard(store, 0))
        for _ in range(20):
            await asyncio.sleep(0)
            if shard.executed:
                break
        first = list(shard.executed)
        w.object_freed(id_on_shard(store, 0, tag=1))
        await w.close()
        return first

    first = asyncio.run(scenario())
    assert len(first) == 1
    assert [c[0] for b in shard.executed for c in b] == ["object_location_remove", "object_location_remove"]


def test_a_shard_being_retried_does_not_hold_up_the_primary() -> None:
    """Each queue flushes on its own loop: actor transitions go out while a data shard is away."""
    primary, shard = FakeClient(), FakeClient(failures=10**6)
    store = FakeStore([shard], primary)

    async def scenario() -> None:
        w = writer(store)
        w.start()
        w.task_submitted(id_on_shard(store, 0), b"s", 1, 0)
        w.actor_transition(bytes(16), "SCHEDULED", "0", {"state": ActorState.ALIVE.value})
        for _ in range(200):
            await asyncio.sleep(0.005)
            if primary.executed:
                break
        for t in w._tasks:
            t.cancel()

    asyncio.run(scenario())
    assert [[c[0] for c in b] for b in primary.executed] == [["actor_transition"]]
    assert shard.executed == []


def test_a_failing_command_is_logged_and_the_rest_of_the_batch_stands(caplog: Any) -> None:
    shard = FakeClient()
    store = FakeStore([shard], shard)
    w = writer(store)
    t0, t1 = id_on_shard(store, 0), id_on_shard(store, 0, tag=1)
    w.object_sealed(t0, 3, False)
    w.task_state(t1, TaskState.FINISHED, 0)

    async def execute(raise_on_error: bool = True) -> list[Any]:
        (pipe,) = pipes
        shard.executed.append(pipe.commands)
        return [1, 1, redis.exceptions.ResponseError("script raised")]

    pipes: list[FakePipeline] = []
    real_pipeline = shard.pipeline

    def pipeline(transaction: bool = True) -> FakePipeline:
        pipe = real_pipeline(transaction)
        pipe.execute = execute  # type: ignore[method-assign]
        pipes.append(pipe)
        return pipe

    shard.pipeline = pipeline  # type: ignore[method-assign]
    with caplog.at_level("ERROR"):
        asyncio.run(w.flush())
    assert len(shard.executed) == 1  # not retried: a command's own error would not change
    assert "table write to shard 0 failed" in caplog.text and "script raised" in caplog.text
    assert "TaskWrite" in caplog.text


def test_an_unexpected_error_does_not_end_the_flush_loop(caplog: Any) -> None:
    shard = FakeClient()
    store = FakeStore([shard], shard)

    async def scenario() -> None:
        w = writer(store)
        real = w._pipeline
        calls = []

        async def flaky(i: int, ops: list[Any]) -> None:
            calls.append(i)
            if len(calls) == 1:
                raise RuntimeError("bug")
            await real(i, ops)

        w._pipeline = flaky  # type: ignore[method-assign]
        w.start()
        w.object_freed(id_on_shard(store, 0))
        for _ in range(200):
            await asyncio.sleep(0.005)
            if calls:
                break
        w.object_freed(id_on_shard(store, 0, tag=1))
        await w.close()

    with caplog.at_level("ERROR"):
        asyncio.run(scenario())
    assert "dropping 1 table writes to shard 0" in caplog.text
    assert [c[0] for b in shard.executed for c in b] == ["object_location_remove"]

"""Generator tasks and actor methods (issue 8): ``num_returns="streaming"`` (the default for
generator functions) and ``"dynamic"``, each yielded value an object of its own, as in Ray."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

import rayredis as ray
from rayredis.generators import DynamicObjectRefGenerator, ObjectRefGenerator


@ray.remote
def count(n: int) -> Any:
    yield from range(n)


@ray.remote
def big(n: int) -> Any:
    for i in range(n):
        yield np.full(1 << 20, i, dtype=np.uint8)  # 1 MiB each: shared-memory objects


@ray.remote
def fails_after(n: int) -> Any:
    yield from range(n)
    raise ValueError("midway")


@ray.remote(num_returns="streaming")
def not_a_generator() -> int:
    return 5


@ray.remote
class Source:
    def __init__(self) -> None:
        self.base = 10

    def items(self, n: int) -> Any:
        for i in range(n):
            yield self.base * i

    @ray.method(num_returns="streaming")  # failed at class definition before the change
    def explicit(self) -> Any:
        yield "a"
        yield "b"


@ray.remote
class AsyncSource:
    async def items(self, n: int) -> Any:
        for i in range(n):
            await asyncio.sleep(0)
            yield i


def test_generator_functions_stream_their_items(ray_shared: Any) -> None:
    gen = count.remote(4)
    assert isinstance(gen, ObjectRefGenerator)  # a RaySerializationError before: generators did not pickle
    refs = list(gen)
    assert all(isinstance(r, ray.ObjectRef) for r in refs) and len(set(refs)) == 4
    assert ray.get(refs, timeout=60) == [0, 1, 2, 3]
    with pytest.raises(StopIteration):
        next(gen)
    assert [int(ray.get(r, timeout=60)[0]) for r in big.remote(3)] == [0, 1, 2]
    assert ray.get(count.options(num_returns="streaming").remote(0).completed(), timeout=60) is not None
    assert list(count.remote(0)) == []
    assert ray.get(count.options(num_returns=2).remote(2), timeout=60) == [0, 1]  # a static count still works


def test_an_error_in_the_generator_is_its_last_item(ray_shared: Any) -> None:
    refs = list(fails_after.remote(2))
    assert ray.get(refs[:2], timeout=60) == [0, 1] and len(refs) == 3
    with pytest.raises(ValueError, match="midway") as info:
        ray.get(refs[2], timeout=60)
    assert str(info.value).startswith("ray::fails_after() (pid=")
    bad = list(not_a_generator.remote())
    with pytest.raises(TypeError, match="must be a generator"):
        ray.get(bad[0], timeout=60)


def test_dynamic_returns_a_ref_to_the_refs(ray_shared: Any) -> None:
    ref = count.options(num_returns="dynamic").remote(3)
    assert isinstance(ref, ray.ObjectRef)
    inner = ray.get(ref, timeout=60)
    assert isinstance(inner, DynamicObjectRefGenerator) and len(inner) == 3
    assert ray.get(list(inner), timeout=60) == [0, 1, 2]


def test_actor_generator_methods(ray_shared: Any) -> None:
    s = Source.remote()
    gen = s.items.remote(3)
    assert isinstance(gen, ObjectRefGenerator)
    assert [ray.get(r, timeout=60) for r in gen] == [0, 10, 20]
    assert ray.get(list(s.explicit.remote()), timeout=60) == ["a", "b"]
    assert ray.get(list(s.items.options(num_returns="streaming").remote(1)), timeout=60) == [0]

    async def consume() -> list[int]:
        out = []
        async for r in AsyncSource.remote().items.remote(3):
            out.append(await r)
        return out

    assert asyncio.run(consume()) == [0, 1, 2]


def test_wait_and_cancel_take_generators(ray_shared: Any) -> None:
    gen = count.remote(2)
    ready, not_ready = ray.wait([gen], timeout=60)
    assert ready == [gen] and not_ready == []
    assert gen.next_ready()
    assert ray.get(list(gen), timeout=60) == [0, 1] and gen.is_finished()

    @ray.remote
    def forever() -> Any:
        import time

        while True:
            time.sleep(0.05)
            yield 1

    endless = forever.remote()
    ray.cancel(endless)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(next(endless), timeout=60)


@ray.remote
def gated(gate: str) -> Any:
    """Yields 0, then waits (up to 30 s) for the file ``gate`` before yielding 1."""
    import os
    import time

    yield 0
    deadline = time.monotonic() + 30
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    yield "gate opened" if os.path.exists(gate) else "gate timed out"


def test_items_reach_the_caller_while_the_generator_runs(ray_shared: Any, tmp_path: Any) -> None:
    gate = str(tmp_path / "gate")
    gen = gated.remote(gate)
    ready, _ = ray.wait([gen], timeout=60)  # ready with its first item, while it waits for the gate
    assert ready == [gen] and not gen.is_finished()
    assert ray.get(next(gen), timeout=60) == 0
    ready, not_ready = ray.wait([gen], timeout=0.2)  # the next item needs the gate: not ready
    assert ready == [] and not_ready == [gen] and not gen.next_ready()
    open(gate, "w").close()
    assert [ray.get(r, timeout=60) for r in gen] == ["gate opened"]  # not before: waited for the gate
    assert gen.is_finished()


def test_is_finished_only_after_stop_iteration(ray_shared: Any) -> None:
    gen = fails_after.remote(1)
    refs = [next(gen), next(gen)]
    assert ray.get(refs[0], timeout=60) == 0
    with pytest.raises(ValueError, match="midway"):
        ray.get(refs[1], timeout=60)
    assert not gen.is_finished()  # as Ray: the error item taken, StopIteration not raised yet
    with pytest.raises(StopIteration):
        next(gen)
    assert gen.is_finished()


@ray.remote
def endless() -> Any:
    import time

    i = 0
    while True:
        yield i
        i += 1
        time.sleep(0.01)


def test_an_endless_generator_streams_until_cancelled(ray_shared: Any) -> None:
    gen = endless.remote()
    assert [ray.get(next(gen), timeout=60) for _ in range(5)] == [0, 1, 2, 3, 4]
    ray.cancel(gen)
    items = list(gen)  # the items yielded before the cancel took effect, then its error; then the end
    assert items
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(items[-1], timeout=60)
    assert ray.get(items[:-1], timeout=60) == list(range(5, 5 + len(items) - 1))
    assert gen.is_finished()


@ray.remote
class Ticker:
    async def ticks(self) -> Any:
        i = 0
        while True:
            yield i
            i += 1
            await asyncio.sleep(0.01)

    async def ping(self) -> str:
        return "pong"


def test_async_for_over_an_endless_async_actor_generator(ray_shared: Any) -> None:
    t = Ticker.remote()
    gen = t.ticks.remote()

    async def take(n: int) -> list[int]:
        out = []
        async for r in gen:
            out.append(await r)
            if len(out) == n:
                break
        return out

    assert asyncio.run(take(4)) == [0, 1, 2, 3]
    ray.cancel(gen)
    assert ray.get(t.ping.remote(), timeout=60) == "pong"  # the actor lives on


def test_a_generator_that_dies_ends_with_its_error(ray_shared: Any, tmp_path: Any) -> None:
    gate = str(tmp_path / "gate")

    @ray.remote(max_retries=0)
    def dies() -> Any:
        import os
        import time

        yield 1
        deadline = time.monotonic() + 30
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)  # (until the caller has the item: what a worker sends just before it dies may be lost)
        os._exit(1)

    gen = dies.remote()
    assert ray.get(next(gen), timeout=60) == 1
    open(gate, "w").close()
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(next(gen), timeout=60)
    with pytest.raises(StopIteration):
        next(gen)

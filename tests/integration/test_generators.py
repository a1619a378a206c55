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

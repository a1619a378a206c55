"""Dead actors do not pile up in Redis: the GCS deletes the oldest beyond ``dead_actors_kept``, and a
handle to a pruned actor still fails with ``ActorDiedError`` (no hang), its name free for reuse."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

import rayredis as ray
from rayredis import exceptions
from rayredis._private import worker_context
from rayredis.store import keys
from rayredis.util import state


@ray.remote(num_cpus=0)
class Box:
    def ping(self) -> str:
        return "pong"


@pytest.fixture
def small_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RAYREDIS_DEAD_ACTORS_KEPT", "2")  # read by the GCS this init starts
    ray.init(num_cpus=1)
    try:
        yield
    finally:
        ray.shutdown()


def _entries(primary: redis.Redis, aids: list[str]) -> list[bool]:
    return [bool(primary.exists(keys.actor_key(a))) for a in aids]


def test_the_gcs_keeps_only_the_most_recent_dead_actors(small_cache: None) -> None:
    boxes = [Box.options(name=f"box-{i}").remote() for i in range(5)]
    assert ray.get([b.ping.remote() for b in boxes]) == ["pong"] * 5
    aids = [b._actor_id.hex() for b in boxes]
    for b in boxes[:4]:  # four die, the fifth lives
        ray.kill(b)
        time.sleep(0.05)  # (distinct death times)
    primary = worker_context.global_worker.store.primary  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while _entries(primary, aids) != [False, False, True, True, True]:
        assert time.monotonic() < deadline, f"not pruned: {_entries(primary, aids)}"
        time.sleep(0.2)
    assert primary.zcard(keys.dead_actors_key()) == 2
    listed = {a.actor_id: a.state for a in state.list_actors(limit=100)}
    assert listed == {aids[2]: "DEAD", aids[3]: "DEAD", aids[4]: "ALIVE"}
    with pytest.raises(exceptions.RayActorError):  # a pruned actor's handle fails, never hangs
        ray.get(boxes[0].ping.remote(), timeout=60)
    with pytest.raises(ValueError):
        ray.get_actor("box-0")
    again = Box.options(name="box-0").remote()  # its name is free
    assert ray.get(again.ping.remote()) == "pong"
    assert ray.get(boxes[4].ping.remote()) == "pong"

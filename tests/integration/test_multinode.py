"""A real cluster of three raylets on one host: spillback, object transfer, nested refs, remote actors,
scheduling strategies and placement groups across nodes, infeasible tasks, and refcounts across nodes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import rayredis as ray
from rayredis._private import debug, worker_context
from rayredis.cluster_utils import Cluster
from rayredis.store import tables
from rayredis.util.placement_group import placement_group, remove_placement_group
from rayredis.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)
from tests.conftest import _raylet_violations

MB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Head (1 CPU) + n2 (2 CPUs, resource n2) + n3 (1 CPU, resource n3), the driver on the head."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"head": 1}})
    try:
        c.add_node(num_cpus=2, resources={"n2": 1})
        c.add_node(num_cpus=1, resources={"n3": 1})
        c.wait_for_nodes()
        ray.init(address=c.address)
        _wait_view(3)
        yield c
        violations = _raylet_violations()
        assert not violations, "raylet invariants violated:\n" + "\n".join(violations)
    finally:
        ray.shutdown()
        c.shutdown()


def _wait_view(n: int, timeout: float = 20.0) -> None:
    """Until every raylet's heartbeat is in Redis (the cluster view the raylets schedule from)."""
    cw = worker_context.global_worker
    assert cw is not None
    deadline = time.monotonic() + timeout
    while sum(1 for r in tables.read_nodes(cw.store.primary) if r.alive and r.load) < n:
        assert time.monotonic() < deadline, "nodes did not report their load"
        time.sleep(0.1)
    time.sleep(1.0)  # one more heartbeat, so each raylet has read the others


def _node_of(res: str) -> str:
    return next(n["NodeID"] for n in ray.nodes() if n["Alive"] and res in n["Resources"])


@ray.remote
def where(*args: Any) -> str:
    return ray.get_runtime_context().get_node_id()


@ray.remote
def slow_where(t: float) -> str:
    time.sleep(t)
    return ray.get_runtime_context().get_node_id()


@ray.remote
def make(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


@ray.remote
def total(x: np.ndarray) -> int:
    return int(x.sum())


def test_busy_node_spills_tasks_to_others(cluster: Cluster) -> None:
    nodes = ray.get([slow_where.remote(0.5) for _ in range(16)], timeout=60)
    counts = Counter(nodes)
    assert len(counts) == 3, counts  # the head has one CPU: the rest went to the other raylets


def test_custom_resources_place_tasks_on_their_node(cluster: Cluster) -> None:
    assert ray.get(where.options(resources={"n2": 0.01}).remote(), timeout=30) == _node_of("n2")
    assert ray.get(where.options(resources={"n3": 0.01}).remote(), timeout=30) == _node_of("n3")


def test_large_objects_cross_nodes_both_ways(cluster: Cluster) -> None:
    n = 8 * MB  # 64 MB of int64
    want = n * (n - 1) // 2
    big = make.options(resources={"n2": 0.01}).remote(n)
    assert ray.get(big, timeout=60).sum() == want  # n2 -> driver (head)
    assert ray.get(total.options(resources={"n3": 0.01}).remote(big), timeout=60) == want  # n2 -> n3
    put = ray.put(np.arange(n, dtype=np.int64))  # driver -> n2
    assert ray.get(total.options(resources={"n2": 0.01}).remote(put), timeout=60) == want
    # Small values and errors travel inline.
    assert ray.get(where.options(resources={"n3": 0.01}).remote(ray.put(b"x")), timeout=30) == _node_of("n3")


def test_errors_from_other_nodes_keep_type_and_traceback(cluster: Cluster) -> None:
    @ray.remote(resources={"n2": 0.01})
    def boom() -> None:
        raise KeyError("far away")

    with pytest.raises(KeyError) as info:
        ray.get(boom.remote(), timeout=30)
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert "far away" in str(info.value) and "boom" in str(info.value)


def test_nested_refs_and_returned_refs_across_nodes(cluster: Cluster) -> None:
    @ray.remote(resources={"n2": 0.01})
    def unwrap(refs: list[Any]) -> int:
        return int(sum(ray.get(r).sum() for r in refs))

    @ray.remote(resources={"n3": 0.01})
    def produce() -> list[Any]:
        return [ray.put(np.ones(MB, dtype=np.int64)), make.options(resources={"n2": 0.01}).remote(10)]

    inner = [ray.put(np.ones(2 * MB, dtype=np.int64)), make.remote(100)]
    assert ray.get(unwrap.remote(inner), timeout=60) == 2 * MB + 4950
    refs = ray.get(produce.remote(), timeout=60)
    assert ray.get(refs[0], timeout=60).sum() == MB
    assert ray.get(refs[1], timeout=60).sum() == 45
    assert ray.get(unwrap.remote(refs), timeout=60) == MB + 45


def test_wait_on_objects_of_other_nodes(cluster: Cluster) -> None:
    fast = slow_where.options(resources={"n2": 0.01}).remote(0.0)
    slow = slow_where.options(resources={"n3": 0.01}).remote(5.0)
    ready, rest = ray.wait([slow, fast], num_returns=1, timeout=20)
    assert ready == [fast] and rest == [slow]
    assert ray.get(slow, timeout=30) == _node_of("n3")


def test_actor_on_another_node_answers_in_order(cluster: Cluster) -> None:
    @ray.remote(resources={"n2": 0.01})
    class Tally:
        def __init__(self, start: int):
            self.n = start

        def inc(self, by: Any = 1) -> int:
            self.n += by if isinstance(by, int) else int(by.sum())
            return self.n

        def node(self) -> str:
            return ray.get_runtime_context().get_node_id()

    a = Tally.remote(0)
    assert ray.get([a.inc.remote() for _ in range(50)], timeout=60) == list(range(1, 51))
    assert ray.get(a.node.remote(), timeout=30) == _node_of("n2")
    big = ray.put(np.ones(2 * MB, dtype=np.int64))
    assert ray.get(a.inc.remote(big), timeout=60) == 50 + 2 * MB
    ray.kill(a)
    with pytest.raises(ray.exceptions.RayActorError):
        for _ in range(100):
            ray.get(a.node.remote(), timeout=30)
            time.sleep(0.1)


def test_named_actor_is_reachable_from_every_node(cluster: Cluster) -> None:
    @ray.remote(resources={"n3": 0.01})
    class Registry:
        def __init__(self) -> None:
            self.items: list[str] = []

        def add(self, s: str) -> int:
            self.items.append(s)
            return len(self.items)

    reg = Registry.options(name="registry", namespace="mn").remote()
    assert ray.get(reg.add.remote("driver"), timeout=30) == 1

    @ray.remote(resources={"n2": 0.01})
    def call() -> int:
        return int(ray.get(ray.get_actor("registry", namespace="mn").add.remote("n2")))

    assert ray.get(call.remote(), timeout=60) == 2
    ray.kill(reg)


def test_actor_constructor_args_from_the_driver_node(cluster: Cluster) -> None:
    @ray.remote(resources={"n3": 0.01})
    class Holder:
        def __init__(self, arr: np.ndarray, pending: Any):
            self.total = int(arr.sum()) + int(ray.get(pending[0]).sum())

        def get(self) -> int:
            return self.total

    h = Holder.remote(ray.put(np.ones(3 * MB, dtype=np.int64)), [make.remote(10)])
    assert ray.get(h.get.remote(), timeout=60) == 3 * MB + 45
    ray.kill(h)


def test_node_affinity_spread_and_placement_groups(cluster: Cluster) -> None:
    n3 = _node_of("n3")
    hard = NodeAffinitySchedulingStrategy(node_id=n3, soft=False)
    assert ray.get(where.options(scheduling_strategy=hard).remote(), timeout=30) == n3
    dead = NodeAffinitySchedulingStrategy(node_id="ab" * 16, soft=True)
    assert ray.get(where.options(scheduling_strategy=dead).remote(), timeout=30)
    with pytest.raises(ray.exceptions.RayError, match="NodeAffinity"):
        ray.get(where.options(scheduling_strategy=NodeAffinitySchedulingStrategy("ab" * 16, soft=False)).remote(),
                timeout=30)
    spread = ray.get([slow_where.options(scheduling_strategy="SPREAD").remote(0.1) for _ in range(9)], timeout=60)
    assert len(set(spread)) == 3

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    assert pg.wait(30)
    got = [ray.get(where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote(),
                   timeout=60) for i in range(2)]
    assert got[0] != got[1]
    remove_placement_group(pg)


def test_infeasible_task_waits_for_a_node_that_fits(cluster: Cluster) -> None:
    ref = where.options(resources={"later": 1}).remote()
    ready, _ = ray.wait([ref], timeout=2)
    assert not ready
    node = cluster.add_node(num_cpus=1, resources={"later": 1})
    try:
        assert ray.get(ref, timeout=60) == node.node_id
    finally:
        cluster.remove_node(node)


@ray.remote
def gated_big(gate: str) -> Any:
    """Yields a 1 MiB array of 0s, then waits (up to 30 s) for the file ``gate``, then one of 1s."""
    import os

    yield np.zeros(MB, dtype=np.uint8)
    deadline = time.monotonic() + 30
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    yield np.ones(MB, dtype=np.uint8) if os.path.exists(gate) else "gate timed out"


@ray.remote
class RemoteSource:
    def items(self, n: int) -> Any:
        for i in range(n):
            yield np.full(MB, i, dtype=np.uint8)


def test_generator_items_stream_from_other_nodes(cluster: Cluster, tmp_path: Any) -> None:
    gate = str(tmp_path / "gate")
    gen = gated_big.options(resources={"n2": 0.01}).remote(gate)
    first = ray.get(next(gen), timeout=60)  # while the generator on n2 waits for the gate
    assert first.shape == (MB,) and int(first.sum()) == 0
    open(gate, "w").close()
    rest = [ray.get(r, timeout=60) for r in gen]
    assert len(rest) == 1 and not isinstance(rest[0], str) and int(rest[0].sum()) == MB
    src = RemoteSource.options(resources={"n3": 0.01}).remote()
    assert [int(ray.get(r, timeout=60)[0]) for r in src.items.remote(3)] == [0, 1, 2]


@ray.remote(max_retries=0)
def fails_remotely(tag: str) -> None:
    raise ValueError(f"never read {tag}")


def test_unread_errors_of_tasks_on_other_nodes_are_reported(cluster: Cluster, capfd: Any) -> None:
    import gc

    held = fails_remotely.options(resources={"n2": 0.01}).remote("remote-held")
    ray.wait([held], timeout=60)
    read = fails_remotely.options(resources={"n3": 0.01}).remote("remote-read")
    with pytest.raises(ValueError):
        ray.get(read, timeout=60)
    del held, read
    gc.collect()
    seen = ""
    deadline = time.monotonic() + 60
    while "never read remote-held" not in seen and time.monotonic() < deadline:
        time.sleep(0.1)
        seen += capfd.readouterr().err
    assert "Unhandled error (suppress with 'RAY_IGNORE_UNHANDLED_ERRORS=1'): ray::fails_remotely() (pid=" in seen
    assert "never read remote-read" not in seen  # (nothing was reported from other nodes before)


@ray.remote
class Sleeper:
    def nap(self, t: float) -> str:
        time.sleep(t)
        return "woke"


@ray.remote
class AsyncSleeper:
    async def nap(self, t: float) -> str:
        import asyncio

        await asyncio.sleep(t)
        return "woke"

    async def ping(self) -> str:
        return "pong"


def test_cancel_reaches_tasks_and_actor_calls_on_other_nodes(cluster: Cluster) -> None:
    running = slow_where.options(resources={"n3": 0.5}, max_retries=0).remote(60)
    queued = slow_where.options(resources={"n3": 0.5}, max_retries=0).remote(60)  # n3 has 1 CPU
    s = Sleeper.options(resources={"n2": 0.01}).remote()
    busy = s.nap.remote(3)
    waiting = s.nap.remote(60)  # queued behind busy, on n2
    a = AsyncSleeper.options(resources={"n2": 0.01}).remote()
    long_nap = a.nap.remote(60)
    assert ray.get(a.ping.remote(), timeout=60) == "pong"
    for ref in (queued, running, waiting, long_nap):
        ray.cancel(ref)
    for ref in (queued, running, waiting, long_nap):
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(ref, timeout=45)  # each would take 60 s otherwise
    assert ray.get(busy, timeout=60) == "woke"  # a running sync call is not interrupted, as in Ray
    assert ray.get(a.ping.remote(), timeout=60) == "pong"


def test_objects_are_freed_on_every_node(cluster: Cluster) -> None:
    refs = [make.options(resources={"n2": 0.01}).remote(MB) for _ in range(5)]
    assert sum(int(a.sum()) for a in ray.get(refs, timeout=60)) == 5 * (MB * (MB - 1) // 2)
    moved = [total.options(resources={"n3": 0.01}).remote(r) for r in refs]
    ray.get(moved, timeout=60)
    del refs, moved
    cw = worker_context.global_worker
    assert cw is not None
    deadline = time.monotonic() + 20
    while True:
        used = {r.node_id[:8]: r.load.object_store_used for r in tables.read_nodes(cw.store.primary)
                if r.alive and r.load}
        if all(u < MB for u in used.values()):
            break
        assert time.monotonic() < deadline, f"objects left in the stores: {used}"
        time.sleep(0.25)
    assert not any(debug.validate_cluster(cw.store).values())


def test_tasks_on_a_node_that_dies_are_retried_elsewhere_or_fail(cluster: Cluster) -> None:
    doomed = cluster.add_node(num_cpus=2)
    _wait_view(4)
    near = NodeAffinitySchedulingStrategy(node_id=doomed.node_id, soft=True)
    retried = slow_where.options(scheduling_strategy=near, max_retries=2).remote(4.0)
    lost = slow_where.options(scheduling_strategy=near, max_retries=0).remote(4.0)
    time.sleep(1.5)  # both are running there
    cluster.remove_node(doomed, allow_graceful=False)
    assert ray.get(retried, timeout=90) != doomed.node_id
    with pytest.raises(ray.exceptions.NodeDiedError):
        ray.get(lost, timeout=90)


def test_actors_in_a_spread_placement_group_live_on_distinct_nodes(cluster: Cluster) -> None:
    @ray.remote(num_cpus=1)
    class Member:
        def node(self) -> str:
            return ray.get_runtime_context().get_node_id()

    pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    assert pg.wait(30)
    members = [Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote()
               for i in range(3)]
    assert len(set(ray.get([m.node.remote() for m in members], timeout=60))) == 3
    for m in members:
        ray.kill(m)
    remove_placement_group(pg)


def test_actor_handles_passed_to_other_nodes_and_restarts(cluster: Cluster) -> None:
    @ray.remote(resources={"n2": 0.01}, max_restarts=1)
    class Phoenix:
        def __init__(self) -> None:
            self.calls = 0

        def call(self) -> int:
            self.calls += 1
            return self.calls

        def die(self) -> None:
            import os

            os._exit(1)

    @ray.remote(resources={"n3": 0.01})
    def use(handle: Any, n: int) -> list[int]:
        return [int(ray.get(handle.call.remote())) for _ in range(n)]

    p = Phoenix.remote()
    assert ray.get(p.call.remote(), timeout=30) == 1
    assert ray.get(use.remote(p, 3), timeout=60) == [2, 3, 4]
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(p.die.remote(), timeout=60)
    assert ray.get(p.call.remote(), timeout=60) == 1  # a fresh instance answers
    assert ray.get(use.remote(p, 2), timeout=60) == [2, 3]
    ray.kill(p)


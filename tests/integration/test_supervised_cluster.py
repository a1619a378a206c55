"""A supervised ``Cluster`` (``supervise=True``) restarts a SIGKILLed raylet under its node ID, and
objects whose only copy died with it are rebuilt when a task on a third node needs them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import numpy as np
import pytest
import redis

import rayredis as ray
from rayredis.cluster_utils import Cluster
from rayredis.store import tables


@pytest.fixture
def supervised() -> Iterator[Cluster]:
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"s0": 10}}, supervise=True)
    try:
        c.add_node(num_cpus=1, resources={"s1": 10})
        c.add_node(num_cpus=1, resources={"s2": 10})
        c.wait_for_nodes()
        ray.init(address=c.address)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def _raylet_pid(c: Cluster, node_id: str) -> int:
    assert c.address is not None and c.redis_password is not None
    host, port = c.address.rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port), password=c.redis_password)
    try:
        rec = next(r for r in tables.read_nodes(client) if r.node_id == node_id)
        assert rec.info is not None
        return rec.info.pid if tables.node_alive(client, rec.node_id) else 0
    finally:
        client.close()


@pytest.mark.parametrize("delay_s", [0.2, 1.5])
def test_arguments_lost_with_a_restarted_raylet_are_rebuilt_for_another_node(supervised: Cluster,
                                                                             delay_s: float) -> None:
    @ray.remote(max_retries=3)
    def make_array(n: int) -> np.ndarray:
        return np.arange(n, dtype=np.int64)

    @ray.remote(max_retries=3)
    def digest(a: np.ndarray) -> int:
        return int(a.sum())

    node1 = sorted(supervised.worker_nodes, key=lambda n: n.index)[0]
    refs = [make_array.options(resources={"s1": 0.01}).remote(200_000 + i) for i in range(5)]
    ready, _ = ray.wait(refs, num_returns=len(refs), fetch_local=False, timeout=60)
    assert len(ready) == len(refs)
    old = _raylet_pid(supervised, node1.node_id)
    os.kill(old, signal.SIGKILL)  # its objects' only copies die with it; its supervisor restarts it
    time.sleep(delay_s)  # before the restart is noticed (0.2 s) or after (1.5 s)
    got = ray.get([digest.options(resources={"s2": 0.01}).remote(r) for r in refs], timeout=60)
    assert got == [int(np.arange(200_000 + i, dtype=np.int64).sum()) for i in range(5)]
    deadline = time.monotonic() + 30
    while _raylet_pid(supervised, node1.node_id) in (0, old):
        assert time.monotonic() < deadline, "the supervisor did not restart the raylet under its node ID"
        time.sleep(0.1)


def test_a_restarted_raylet_holds_its_placement_group_bundles_again(supervised: Cluster) -> None:
    from rayredis.util.placement_group import placement_group, remove_placement_group
    from rayredis.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    @ray.remote(num_cpus=1)
    def where() -> str:
        return ray.get_runtime_context().get_node_id()

    pg = placement_group([{"CPU": 1, "s1": 1}, {"CPU": 1, "s2": 1}], strategy="STRICT_SPREAD")
    ray.get(pg.ready(), timeout=60)
    in_bundle = [where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)) for i in (0, 1)]
    first = ray.get([f.remote() for f in in_bundle], timeout=60)
    node1 = next(n for n in supervised.worker_nodes if n.node_id == first[0])
    old = _raylet_pid(supervised, node1.node_id)
    os.kill(old, signal.SIGKILL)  # its bundles were in its memory only
    deadline = time.monotonic() + 30
    while _raylet_pid(supervised, node1.node_id) in (0, old):
        assert time.monotonic() < deadline, "the supervisor did not restart the raylet under its node ID"
        time.sleep(0.1)
    # Before the fix the restarted raylet had no bundle 0, and this waited forever.
    assert ray.get([f.remote() for f in in_bundle], timeout=60) == first
    remove_placement_group(pg)
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 3:  # every bundle given back, none left behind
        assert time.monotonic() < deadline, f"bundles not given back: {ray.available_resources()}"
        time.sleep(0.1)

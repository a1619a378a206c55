"""Losing a node for good: objects lost with it are rebuilt from lineage when needed, recursively (puts
fail with a reason), and the placement-group bundles it held move to other nodes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

import rayredis as ray
from rayredis.cluster_utils import Cluster, Node
from rayredis.util.placement_group import placement_group, placement_group_table
from rayredis.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from tests.integration.test_multinode import MB, _wait_view


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@ray.remote(resources={"x": 0.01}, max_retries=2)
def make(n: int) -> np.ndarray:
    return np.full(n, 7, dtype=np.int64)


@ray.remote(resources={"x": 0.01}, max_retries=2)
def double(a: np.ndarray) -> np.ndarray:
    return a * 2


@ray.remote(resources={"x": 0.01})
def where_put() -> list[object]:
    return [ray.put(np.ones(MB, dtype=np.int64)), ray.get_runtime_context().get_node_id()]


def _kill_node_of(cluster: Cluster, node_id: str) -> None:
    victim: Node = next(n for n in cluster.list_all_nodes() if n.node_id == node_id)
    cluster.remove_node(victim, allow_graceful=False)


def test_lost_returns_are_rebuilt_recursively(cluster: Cluster) -> None:
    b = cluster.add_node(num_cpus=1, resources={"x": 1})
    ray.init(address=cluster.address)
    _wait_view(2)
    first = make.remote(2 * MB)
    second = double.remote(first)
    ray.wait([second], fetch_local=False, timeout=60)
    cluster.add_node(num_cpus=1, resources={"x": 1})  # where the rebuilt ones will run
    _wait_view(3)
    _kill_node_of(cluster, b.node_id)
    time.sleep(0.5)
    out = ray.get(second, timeout=120)  # both copies were on the dead node
    assert out.shape == (2 * MB,) and int(out[0]) == 14 and int(out.sum()) == 14 * 2 * MB
    assert int(ray.get(first, timeout=60)[-1]) == 7


def test_a_lost_put_fails_with_a_reason(cluster: Cluster) -> None:
    cluster.add_node(num_cpus=1, resources={"x": 1})
    ray.init(address=cluster.address)
    _wait_view(2)
    ref, node_id = ray.get(where_put.remote(), timeout=60)
    _kill_node_of(cluster, str(node_id))
    with pytest.raises(ray.exceptions.ObjectLostError, match="put"):
        ray.get(ref, timeout=60)


def test_bundles_of_a_dead_node_are_placed_again(cluster: Cluster) -> None:
    b = cluster.add_node(num_cpus=1, resources={"x": 1})
    cluster.add_node(num_cpus=1, resources={"x": 1})
    ray.init(address=cluster.address)
    _wait_view(3)

    @ray.remote(num_cpus=0, resources={"x": 0.01})
    def node_of_bundle() -> str:
        return ray.get_runtime_context().get_node_id()

    pg = placement_group([{"x": 0.5}, {"x": 0.5}], strategy="STRICT_SPREAD")
    assert pg.wait(30)
    before = [ray.get(node_of_bundle.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote(),
                      timeout=60) for i in range(2)]
    assert b.node_id in before and len(set(before)) == 2
    lost = before.index(b.node_id)
    d = cluster.add_node(num_cpus=1, resources={"x": 1})
    _kill_node_of(cluster, b.node_id)
    deadline = time.monotonic() + 60
    while placement_group_table(pg)["bundles_to_node_id"][lost] != d.node_id:
        assert time.monotonic() < deadline, f"bundle {lost} was not placed again: {placement_group_table(pg)}"
        time.sleep(0.2)
    again = ray.get(node_of_bundle.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, lost)).remote(),
                    timeout=60)
    assert again == d.node_id

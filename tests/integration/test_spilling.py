"""Object spilling: a workload whose objects exceed the object store in total still runs (real cluster)."""

from __future__ import annotations

import gc
import os
import time

import numpy as np
import pytest

import rayredis as ray
from rayredis import exceptions
from rayredis.cluster_utils import Cluster
from rayredis.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.integration.test_multinode import _node_of, _wait_view

MiB = 1024 * 1024


@pytest.fixture
def store_100mib():
    ctx = ray.init(num_cpus=1, object_store_memory=100 * MiB)
    try:
        yield ctx
    finally:
        ray.shutdown()


def _spill_files(session_dir: str) -> list[str]:
    d = os.path.join(session_dir, "spill")
    return os.listdir(d) if os.path.isdir(d) else []


def test_puts_exceeding_the_store_are_spilled_and_restored_on_get(store_100mib):
    session_dir = store_100mib["session_dir"]
    refs = [ray.put(np.full(20 * MiB, i, dtype=np.uint8)) for i in range(15)]  # 300 MiB held
    assert len(_spill_files(session_dir)) >= 10
    for i, ref in enumerate(refs):
        a = ray.get(ref)
        assert a.shape == (20 * MiB,) and a[0] == i and a[-1] == i and int(a.sum()) == i * 20 * MiB
        del a  # (a client holding the array keeps the object in memory)

    @ray.remote
    def total(x):
        return int(x.sum())

    assert ray.get([total.remote(r) for r in refs[:3]]) == [i * 20 * MiB for i in range(3)]
    del refs, ref


def test_freed_spilled_objects_lose_their_files(store_100mib):
    session_dir = store_100mib["session_dir"]
    refs = [ray.put(np.zeros(30 * MiB, dtype=np.uint8)) for _ in range(6)]
    assert _spill_files(session_dir)
    del refs
    gc.collect()
    deadline = time.time() + 10
    while _spill_files(session_dir):  # the release travels to the raylet asynchronously
        assert time.time() < deadline, _spill_files(session_dir)
        time.sleep(0.05)


def test_an_object_larger_than_the_store_still_fails(store_100mib):
    keep = ray.put(np.ones(40 * MiB, dtype=np.uint8))
    with pytest.raises(exceptions.ObjectStoreFullError, match="larger than"):
        ray.put(np.zeros(120 * MiB, dtype=np.uint8))
    assert int(ray.get(keep).sum()) == 40 * MiB


def test_a_spilled_object_is_restored_for_another_node_that_reads_it():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100 * MiB})
    try:
        c.add_node(num_cpus=1, resources={"n2": 1}, object_store_memory=100 * MiB)
        c.wait_for_nodes()
        ray.init(address=c.address)
        _wait_view(2)
        refs = [ray.put(np.full(30 * MiB, i, dtype=np.uint8)) for i in range(6)]  # the first spilled
        assert c.head_node is not None
        spilled = " ".join(_spill_files(c.head_node.session_dir))
        assert refs[0].hex() in spilled and refs[1].hex() in spilled

        @ray.remote(num_cpus=0)
        def first_and_sum(x):
            return int(x[0]), int(x.sum())

        there = NodeAffinitySchedulingStrategy(_node_of("n2"), soft=False)
        got = ray.get([first_and_sum.options(scheduling_strategy=there).remote(refs[i]) for i in (0, 1)])
        assert got == [(0, 0), (1, 30 * MiB)]
        del refs
    finally:
        ray.shutdown()
        c.shutdown()

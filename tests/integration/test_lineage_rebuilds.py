"""A read right after a node's SIGKILL, before its death is declared, rebuilds the lost object once
(chaos bug F: repeated rebuilds spent the task's retries and the read failed with NodeDiedError)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import numpy as np
import pytest

import rayredis as ray
from rayredis.cluster_utils import Cluster, Node
from tests.integration.test_multinode import MB, _wait_view


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@ray.remote(resources={"x": 0.01})  # max_retries: 3, the default
def make(n: int) -> np.ndarray:
    return np.full(n, 5, dtype=np.int64)


def test_polling_reads_after_a_node_kill_rebuild_the_object_once(cluster: Cluster) -> None:
    b = cluster.add_node(num_cpus=1, resources={"x": 1})
    ray.init(address=cluster.address)
    _wait_view(2)
    ref = make.remote(MB)
    ray.wait([ref], fetch_local=False, timeout=60)  # made on b, and only there
    cluster.add_node(num_cpus=1, resources={"x": 1})  # where it can be rebuilt
    _wait_view(3)
    victim: Node = next(n for n in cluster.list_all_nodes() if n.node_id == b.node_id)
    cluster.remove_node(victim, allow_graceful=False)
    # A driver polling with short timeouts (as the chaos workload does): every get is one more read
    # of an object whose only node is dead but not declared dead for ~3 s. Before the fix each one
    # failed a pull that counted as one of the 30 retries meant to span 30 s.
    deadline = time.monotonic() + 120
    while True:
        try:
            out = ray.get(ref, timeout=0.05)
            break
        except ray.exceptions.GetTimeoutError:
            assert time.monotonic() < deadline, "the object was never rebuilt"
    assert out.shape == (MB,) and int(out.sum()) == 5 * MB
    assert cluster.head_node is not None
    with open(os.path.join(cluster.head_node.session_dir, "logs", "raylet.log")) as f:
        log = f.read()
    rebuilds = re.findall(rf"rebuilding the returns of \S+ \({ref.task_id().hex()}\)", log)
    assert len(rebuilds) == 1, f"rebuilt {len(rebuilds)} times"

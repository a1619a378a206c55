"""Pulls streamed in chunks over gRPC, as between hosts (forced on one host by turning the same-host copy off)."""

from __future__ import annotations

import pytest

import rayredis as ray
from rayredis.cluster_utils import Cluster
from tests.integration.test_multinode import MB, _wait_view, make, total


def test_streamed_pulls_without_the_same_host_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Raylets on other hosts stream objects in chunks over gRPC; force that path on one host."""
    monkeypatch.setenv("RAYREDIS_PULL_SAME_HOST_COPY", "0")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        c.add_node(num_cpus=1, resources={"far": 1})
        c.wait_for_nodes()
        ray.init(address=c.address)
        _wait_view(2)
        n = 3 * MB + 12345  # not a multiple of the chunk size
        big = make.options(resources={"far": 0.01}).remote(n)
        refs = [make.options(resources={"far": 0.01}).remote(n) for _ in range(3)]
        # Concurrent readers of one object share one transfer; several objects move at once.
        sums = ray.get([total.remote(big), total.remote(big), *[total.remote(r) for r in refs]], timeout=120)
        assert sums == [n * (n - 1) // 2] * 5
        assert int(ray.get(big, timeout=60)[-1]) == n - 1
    finally:
        ray.shutdown()
        c.shutdown()

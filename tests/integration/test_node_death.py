"""Node-death detection by the GCS with the default timeout: a killed raylet is declared dead within
seconds; a CPU hog on every core, a 2 s SIGSTOP of a raylet, or a pause of the GCS together with the
raylets, is never taken for a death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis

from rayredis.cluster_utils import Cluster, Node
from rayredis.config import get_config
from rayredis.store import tables
from rayredis.store.client import parse_address

#: Generous CI bound for "declared dead" (the default timeout is 3 s plus one monitor tick).
DEAD_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head and one more node, 1 CPU each, with the default node_death_timeout_s."""
    assert "RAYREDIS_NODE_DEATH_TIMEOUT_S" not in os.environ
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_redis_shards": 1})
    try:
        c.add_node(num_cpus=1)
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()


@pytest.fixture
def primary(cluster: Cluster) -> Iterator[redis.Redis]:
    assert cluster.address is not None
    host, port = parse_address(cluster.address)
    client = redis.Redis(host=host, port=port, password=cluster.redis_password)
    yield client
    client.close()


def _states(primary: redis.Redis) -> dict[str, str]:
    return {n.node_id: n.state for n in tables.read_nodes(primary) if n.info is not None}


def _raylet_pid(primary: redis.Redis, node: Node) -> int:
    """The raylet's PID, as the node table records it."""
    (info,) = [n.info for n in tables.read_nodes(primary) if n.node_id == node.node_id and n.info is not None]
    return info.pid


def _watch_alive(primary: redis.Redis, cluster: Cluster, seconds: float) -> None:
    """Assert that every node of the cluster stays ALIVE for ``seconds``."""
    ids = {n.node_id for n in cluster.list_all_nodes()}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states = _states(primary)
        assert all(states.get(i) == "ALIVE" for i in ids), f"a node was declared dead: {states}"
        time.sleep(0.1)


def _sigcont(*pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_default_timeout_is_three_seconds() -> None:
    assert get_config().node_death_timeout_s == 3.0


def test_cpu_hog_on_every_core_is_not_a_death(cluster: Cluster, primary: redis.Redis) -> None:
    spin = "import time\nend = time.monotonic() + 8\nwhile time.monotonic() < end:\n    pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 2)]
    try:
        _watch_alive(primary, cluster, 8.0)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    _watch_alive(primary, cluster, 1.0)


def test_a_two_second_sigstop_is_not_a_death(cluster: Cluster, primary: redis.Redis) -> None:
    (node,) = cluster.worker_nodes
    pid = _raylet_pid(primary, node)
    assert pid in node.pids("raylet")
    os.kill(pid, signal.SIGSTOP)
    try:
        _watch_alive(primary, cluster, 2.0)
    finally:
        _sigcont(pid)
    _watch_alive(primary, cluster, 4.0)  # longer than the timeout: the counter moves again


def test_a_gcs_paused_with_the_raylets_declares_no_death_on_wake_up(cluster: Cluster,
                                                                    primary: redis.Redis) -> None:
    # As when the whole machine is suspended: on wake-up the GCS may read counters the raylets
    # have not moved yet; it gives every node a full timeout again instead of declaring them dead.
    head = cluster.head_node
    assert head is not None
    (gcs,) = head.pids("gcs")
    raylets = [_raylet_pid(primary, n) for n in cluster.list_all_nodes()]
    for pid in (gcs, *raylets):
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(5.0)  # longer than the node death timeout and the GCS lease
    finally:
        _sigcont(gcs, *raylets)
    _watch_alive(primary, cluster, 6.0)


def test_a_killed_raylet_is_declared_dead_soon(cluster: Cluster, primary: redis.Redis) -> None:
    node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    time.sleep(1.0)  # a few heartbeats seen
    t0 = time.monotonic()
    cluster.remove_node(node, allow_graceful=False)  # SIGKILL
    while _states(primary).get(node.node_id) == "ALIVE":
        assert time.monotonic() - t0 < DEAD_WITHIN_S, "the killed node was not declared dead"
        time.sleep(0.05)
    print(f"\nkilled raylet declared dead after {time.monotonic() - t0:.2f} s")
    assert _states(primary)[node.node_id] == "DEAD"
    cluster.wait_for_nodes(timeout=5)  # the other nodes are still alive

"""Placement-group bundles are reserved in two phases (bug G): while a node of the group does not
answer its prepare, the bundles other nodes prepared are usable by no task, and the group is created,
with every bundle where the group table says, only once every node has prepared."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest
import redis

import rayredis as ray
from rayredis._private import node, process
from rayredis.cluster_utils import Cluster
from rayredis.store import tables
from rayredis.store.client import parse_address
from rayredis.util.placement_group import (
    PlacementGroup,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from rayredis.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@ray.remote
def where() -> str:
    return ray.get_runtime_context().get_node_id()


def _until(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A head without resource ``n`` and three 1-CPU nodes with one ``n`` each; a stopped raylet is
    not declared dead within the test (it must stay in the GCS's view, as a node that died does
    until the death timeout)."""
    monkeypatch.setenv("RAYREDIS_NODE_DEATH_TIMEOUT_S", "120")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_redis_shards": 1})
    try:
        for _ in range(3):
            c.add_node(num_cpus=1, resources={"n": 1})
        c.wait_for_nodes()
        ray.init(address=c.address)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture
def primary(cluster: Cluster) -> Iterator[redis.Redis]:
    assert cluster.address is not None
    host, port = parse_address(cluster.address)
    client = redis.Redis(host=host, port=port, password=cluster.redis_password)
    yield client
    client.close()


def _raylet_pid(primary: redis.Redis, node_id: str) -> int:
    (info,) = [n.info for n in tables.read_nodes(primary) if n.node_id == node_id and n.info is not None]
    return info.pid


def _stop_the_last_prepared_node(cluster: Cluster, primary: redis.Redis) -> tuple[list[str], int]:
    """Stop the raylet the GCS will ask last to prepare a 3-bundle STRICT_SPREAD group of ``n``:
    the worker node IDs (sorted) and the stopped raylet's PID."""
    # Every node runs a task first (so each has a started worker, ready the moment a bundle appears).
    workers = sorted(n.node_id for n in cluster.list_all_nodes() if not n.is_head)
    got = ray.get([where.options(num_cpus=0, resources={"n": 1}, scheduling_strategy="SPREAD").remote()
                   for _ in range(6)], timeout=60)
    assert set(got) <= set(workers)
    # The GCS orders nodes by queued tasks, then node ID: wait until every node reports none queued.
    assert _until(lambda: all(r.load is not None and r.load.queued == 0 and r.load.available.get("n") == 1.0
                              for r in tables.read_nodes(primary) if r.node_id in workers), 30)
    # So stopping the last one makes the first two prepare, and the third never answer.
    pid = _raylet_pid(primary, workers[-1])
    os.kill(pid, signal.SIGSTOP)
    return workers, pid


def _group_and_tasks() -> tuple[PlacementGroup, list[ray.ObjectRef]]:
    pg = placement_group([{"n": 1}] * 3, strategy="STRICT_SPREAD")
    refs = [where.options(num_cpus=0, resources={"n": 1},
                          scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote()
            for i in range(2)]
    # The two live nodes set their bundle aside (the stopped one still reports its last load).
    assert _until(lambda: ray.available_resources().get("n", 0.0) <= 1.0, 30), ray.available_resources()
    return pg, refs


def _created_where_the_table_says(pg: PlacementGroup, refs: list[ray.ObjectRef], workers: list[str]) -> None:
    """Once every node answers, the group is created and each task runs where the table says; after
    removal nothing stays set aside (neither a cancelled attempt's bundles nor a late prepare)."""
    assert pg.wait(60)
    row = placement_group_table(pg)
    assert row["state"] == "CREATED"
    assert ray.get(refs, timeout=60) == [row["bundles_to_node_id"][0], row["bundles_to_node_id"][1]]
    assert sorted(row["bundles_to_node_id"].values()) == workers
    remove_placement_group(pg)
    assert _until(lambda: ray.available_resources().get("n") == 3.0, 30), ray.available_resources()
    assert not any(pg.id.hex() in r for r in ray.available_resources())


def test_bundles_prepared_while_another_node_does_not_answer_run_nothing(
        cluster: Cluster, primary: redis.Redis) -> None:
    workers, pid = _stop_the_last_prepared_node(cluster, primary)
    try:
        pg, refs = _group_and_tasks()
        ready, _ = ray.wait(refs, num_returns=1, timeout=8)
        assert ready == [], "a task ran in a bundle of a group that is not created"
        assert placement_group_table(pg)["state"] == "PENDING"
        exposed = [r for r in ray.available_resources() if pg.id.hex() in r]
        assert exposed == [], f"bundle resources are usable before the group is created: {exposed}"
    finally:
        os.kill(pid, signal.SIGCONT)
    _created_where_the_table_says(pg, refs, workers)


def test_a_new_gcs_cancels_what_its_predecessor_left_prepared(cluster: Cluster, primary: redis.Redis) -> None:
    """The GCS dies between the phases: the next one finds the reservation PREPARING in the group's
    entry and has the nodes give back what they prepared, before anything was committed."""
    workers, pid = _stop_the_last_prepared_node(cluster, primary)
    try:
        pg, refs = _group_and_tasks()
        e = tables.read_placement_group(primary, pg.id.hex())
        assert e is not None and e.txn_phase == tables.TxnPhase.PREPARING and e.txn_seq == 1
        assert cluster.head_node is not None
        handle = cluster.head_node.handle
        (gcs,) = [r.pid for r in process.recorded(handle.session_dir) if r.role == "gcs" and process.is_alive(r)]
        os.kill(gcs, signal.SIGKILL)
        node.start_gcs(handle)
        # The new GCS cancels reservation 1 on the live nodes (the stopped one cannot answer yet).
        assert _until(lambda: ray.available_resources().get("n") == 3.0, 60), ray.available_resources()
        ready, _ = ray.wait(refs, num_returns=1, timeout=0.5)
        assert ready == [] and placement_group_table(pg)["state"] == "PENDING"
    finally:
        os.kill(pid, signal.SIGCONT)
    _created_where_the_table_says(pg, refs, workers)

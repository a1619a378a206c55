"""Objects whose owner died, held by a detached actor or another driver, after their only copy is lost
too: task results are rebuilt (from the owner node's lineage if it lives, else from the task table),
puts and actor results fail with OwnerDiedError naming why."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rayredis as ray
from rayredis import ids
from rayredis._private import worker_context
from rayredis.cluster_utils import Cluster, Node
from rayredis.store import keys
from tests.integration.test_multinode import MB, _wait_view

N = 2 * MB  # int64 elements: 16 MiB, far above the inline limit (a shared-memory object)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """Head (the drivers) + a node for the detached keeper actor; tests add the nodes they kill."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        c.add_node(num_cpus=1, resources={"keep": 1})
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@ray.remote(num_cpus=0, resources={"keep": 0.01}, max_restarts=0)
class Keeper:
    """Holds refs it was given (inside a list, so they stay refs) and reads them on request."""

    def __init__(self) -> None:
        self.refs: list[Any] = []

    def hold(self, refs: list[Any]) -> int:
        self.refs.extend(refs)
        return len(self.refs)

    def refs_held(self) -> list[Any]:
        return list(self.refs)

    def read(self, i: int) -> Any:
        try:
            v = ray.get(self.refs[i], timeout=120)
        except ray.exceptions.RayError as e:
            return ("error", type(e).__name__, str(e), isinstance(e, ray.exceptions.ObjectLostError))
        return ("value", int(v[0]), int(v.sum()), v.shape)


@ray.remote(resources={"x": 0.01}, max_retries=2)
def make(n: int) -> np.ndarray:
    return np.full(n, 7, dtype=np.int64)


@ray.remote(num_cpus=1, resources={"w": 0.01})
def produce(kind: str) -> list[Any]:
    """On node W: make an object owned by this worker, hand it to the keeper, and return it."""
    if kind == "task":
        ref = make.remote(N)
        ray.wait([ref], fetch_local=False, timeout=60)
    elif kind == "put":
        ref = ray.put(np.full(N, 5, dtype=np.int64))
    else:
        maker = Maker.remote()
        ref = maker.make.remote(N)
        ray.wait([ref], fetch_local=False, timeout=60)
    keeper = ray.get_actor("keeper", namespace="owners")
    assert ray.get(keeper.hold.remote([ref]), timeout=60) == 1
    return [ref]


@ray.remote(num_cpus=0, resources={"y": 0.01}, max_restarts=0)
class Maker:
    def make(self, n: int) -> np.ndarray:
        return np.full(n, 3, dtype=np.int64)


def _keeper() -> Any:
    return Keeper.options(name="keeper", namespace="owners", lifetime="detached").remote()


def _kill(cluster: Cluster, *nodes: Node) -> None:
    for n in nodes:
        cluster.remove_node(n, allow_graceful=False)


def _task_entry(ref: Any) -> dict[bytes, bytes]:
    """The task-table entry of the task that made ``ref``."""
    cw = worker_context.global_worker
    assert cw is not None
    tid = ids.task_of_object(ref.binary())
    entry: dict[bytes, bytes] = cw.store.for_id(tid).hgetall(keys.task_key(tid.hex()))
    return entry


def _wait_dead(node_ids: set[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while any(n["Alive"] for n in ray.nodes() if n["NodeID"] in node_ids):
        assert time.monotonic() < deadline, "the killed nodes were not declared dead"
        time.sleep(0.2)


def test_a_dead_drivers_task_result_is_rebuilt_for_a_detached_actor(cluster: Cluster, tmp_path: Path) -> None:
    """A second driver runs ``make`` on node B, gives the ref to a detached actor and is SIGKILLed;
    then B, with the only copy, is killed. The owner's node (the head) lives on and keeps the
    lineage: the actor's read rebuilds it on B2."""
    b = cluster.add_node(num_cpus=1, resources={"x": 1})
    ray.init(address=cluster.address, namespace="owners")
    _wait_view(3)
    keeper = _keeper()
    assert ray.get(keeper.hold.remote([]), timeout=60) == 0
    script = tmp_path / "owner.py"
    script.write_text(
        "import sys, time\n"
        "import numpy as np\n"
        "import rayredis as ray\n"
        "ray.init(address=sys.argv[1], _redis_password=sys.argv[2], namespace='owners')\n"
        "@ray.remote(resources={'x': 0.01}, max_retries=2)\n"
        "def make(n):\n"
        "    return np.full(n, 9, dtype=np.int64)\n"
        "ref = make.remote(int(sys.argv[3]))\n"
        "ray.wait([ref], fetch_local=False, timeout=60)\n"
        "k = ray.get_actor('keeper', namespace='owners')\n"
        "assert ray.get(k.hold.remote([ref]), timeout=60) == 1\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n")
    assert cluster.redis_password is not None
    with subprocess.Popen([sys.executable, str(script), str(cluster.address), cluster.redis_password, str(N)],
                          stdout=subprocess.PIPE, text=True, env=dict(os.environ)) as owner:
        try:
            assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
        finally:
            owner.send_signal(signal.SIGKILL)
            owner.wait(30)
    assert owner.returncode == -signal.SIGKILL
    cluster.add_node(num_cpus=1, resources={"x": 1})  # where the rebuilt one runs
    _wait_view(4)
    _kill(cluster, b)
    assert ray.get(keeper.read.remote(0), timeout=180) == ("value", 9, 9 * N, (N,))
    (ref,) = ray.get(keeper.refs_held.remote(), timeout=60)
    entry = _task_entry(ref)
    assert entry[b"attempt"] == b"1" and b"rebuilt_by" not in entry  # re-run once, by its owner node


def test_a_dead_workers_task_result_is_rebuilt_from_the_task_table(cluster: Cluster) -> None:
    """A worker on node W makes an object there (its own task, run on W), hands it to a detached
    actor and to the driver, and W dies: owner and only copy are gone. Both readers get it back,
    rebuilt once from the task table's entry."""
    w = cluster.add_node(num_cpus=2, resources={"w": 1, "x": 1})
    ray.init(address=cluster.address, namespace="owners")
    _wait_view(3)
    keeper = _keeper()
    (ref,) = ray.get(produce.remote("task"), timeout=60)
    cluster.add_node(num_cpus=1, resources={"x": 1})  # where the rebuilt one runs
    _wait_view(4)
    _kill(cluster, w)
    _wait_dead({w.node_id})
    assert ray.get(keeper.read.remote(0), timeout=180) == ("value", 7, 7 * N, (N,))
    v = ray.get(ref, timeout=180)
    assert v.shape == (N,) and int(v[0]) == 7 and int(v.sum()) == 7 * N
    entry = _task_entry(ref)  # re-run once (attempt 1), claimed by one of the two readers' nodes
    assert entry[b"attempt"] == b"1" and entry[b"state"] == b"FINISHED"
    readers = {n["NodeID"] for n in ray.nodes() if n["Alive"] and "x" not in n["Resources"]}  # head, keeper's
    assert entry[b"rebuilt_by"].decode() in readers


def test_a_put_whose_owner_died_fails_with_owner_died_error(cluster: Cluster) -> None:
    w = cluster.add_node(num_cpus=2, resources={"w": 1})
    ray.init(address=cluster.address, namespace="owners")
    _wait_view(3)
    keeper = _keeper()
    (ref,) = ray.get(produce.remote("put"), timeout=60)
    _kill(cluster, w)
    _wait_dead({w.node_id})
    with pytest.raises(ray.exceptions.OwnerDiedError) as info:
        ray.get(ref, timeout=120)
    assert isinstance(info.value, ray.exceptions.ObjectLostError)
    text = str(info.value)
    assert f"node {w.node_id[:8]}, died" in text and "put object" in text and "return it from a task" in text
    kind, name, message, lost = ray.get(keeper.read.remote(0), timeout=180)
    assert (kind, name, lost) == ("error", "OwnerDiedError", True) and "put object" in message


def test_an_actor_result_whose_owner_died_fails_with_owner_died_error(cluster: Cluster) -> None:
    """As in Ray: the result of an actor method is not re-executed without its owner."""
    w = cluster.add_node(num_cpus=2, resources={"w": 1})
    y = cluster.add_node(num_cpus=1, resources={"y": 1})
    ray.init(address=cluster.address, namespace="owners")
    _wait_view(4)
    keeper = _keeper()
    (ref,) = ray.get(produce.remote("actor"), timeout=60)
    _kill(cluster, w, y)  # the owner (a worker on W) and the only copy (on the actor's node Y)
    _wait_dead({w.node_id, y.node_id})
    with pytest.raises(ray.exceptions.OwnerDiedError, match="actor method 'make'"):
        ray.get(ref, timeout=120)
    kind, name, message, lost = ray.get(keeper.read.remote(0), timeout=180)
    assert (kind, name, lost) == ("error", "OwnerDiedError", True) and "actor method" in message

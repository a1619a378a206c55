"""rayredis.cluster_utils.Cluster: several nodes on one host, added, removed and shut down like Ray's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis

import rayredis as ray
from rayredis._private import debug, process, session, worker_context
from rayredis.api import RayContext
from rayredis.cli import main as cli
from rayredis.cluster_utils import Cluster, Node
from rayredis.store import tables
from rayredis.store.client import parse_address

#: The GCS's node_death_timeout_s for the shared cluster (the default, 3 s, set explicitly).
DEATH_TIMEOUT_S = 3.0
STORE = 150 * 1024 * 1024  # Ray's default object_store_memory per node in Cluster.add_node


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _wait(cond: object, timeout: float, what: str) -> None:
    assert callable(cond)
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def _primary(c: Cluster) -> redis.Redis:
    assert c.redis_address is not None
    host, port = parse_address(c.redis_address)
    return redis.Redis(host=host, port=port, password=c.redis_password)


def _wait_workers_connected(r: redis.Redis, node_ids: set[str]) -> None:
    """Until each node's prestarted worker has connected (so it is recorded and bound to its raylet)."""
    def connected() -> bool:
        loads = {n.node_id: n.load for n in tables.read_nodes(r)}
        return all((ld := loads.get(i)) is not None and ld.workers >= 1 for i in node_ids)
    _wait(connected, 30, f"a connected worker on nodes {sorted(node_ids)}")


def _wait_worker_connected(c: Cluster, node: Node) -> None:
    r = _primary(c)
    try:
        _wait_workers_connected(r, {node.node_id})
    finally:
        r.close()


def _alive_nodes() -> dict[str, dict[str, object]]:
    return {str(n["NodeID"]): n for n in ray.nodes() if n["Alive"]}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head (2 CPUs) and three 1-CPU nodes, one of them with a custom resource."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAYREDIS_NODE_DEATH_TIMEOUT_S", str(DEATH_TIMEOUT_S))  # read by the GCS at start
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_redis_shards": 1})
        try:
            c.add_node(num_cpus=1)
            c.add_node(num_cpus=1, wait=False)
            c.add_node(num_cpus=1, resources={"special": 2}, _system_config={"health_check_period_ms": 100})
            c.wait_for_nodes()
            yield c
        finally:
            c.shutdown()


@pytest.fixture
def driver(cluster: Cluster) -> Iterator[RayContext]:
    """This process connected to the shared cluster for one test; every raylet's invariants checked after."""
    ctx = cluster.connect()
    try:
        yield ctx
    finally:
        cw = worker_context.global_worker
        violations = debug.validate_cluster(cw.store) if cw is not None else {}
        ray.shutdown()
        assert not any(violations.values()), violations


def test_nodes_resources_and_a_task(cluster: Cluster, driver: RayContext,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    head = cluster.head_node
    assert head is not None and head.is_head
    all_nodes = cluster.list_all_nodes()
    assert all_nodes[0] is head and len(all_nodes) == 4 and set(all_nodes[1:]) == cluster.worker_nodes
    assert cluster.address == driver["address"] == head.address
    assert cluster.connected

    alive = _alive_nodes()
    assert set(alive) == {n.node_id for n in all_nodes}
    assert len({n.session_dir for n in all_nodes}) == 4
    special = [n for n in all_nodes if alive[n.node_id]["Resources"].get("special")]
    assert len(special) == 1 and alive[special[0].node_id]["Resources"]["special"] == 2
    for n in all_nodes:
        res = alive[n.node_id]["Resources"]
        assert isinstance(res, dict)
        assert res["CPU"] == (2 if n is head else 1) and res["object_store_memory"] == STORE
        assert alive[n.node_id]["IsHead"] is (n is head) and alive[n.node_id]["SessionDir"] == n.session_dir

    total = ray.cluster_resources()
    assert total["CPU"] == 5 and total["special"] == 2 and total["node:127.0.0.1"] == 4
    assert total["object_store_memory"] == 4 * STORE
    _wait(lambda: ray.available_resources().get("CPU") == 5, 10, "all 5 CPUs available")
    assert ray.available_resources()["special"] == 2

    @ray.remote
    def where() -> str:
        return ray.get_runtime_context().get_node_id()

    # Tasks still run on the submitter's raylet (the head) until multi-node scheduling lands.
    assert ray.get(where.remote(), timeout=30) == head.node_id == ray.get_runtime_context().get_node_id()

    capsys.readouterr()
    assert cli.main(["status"]) == 0  # finds the cluster through RAYREDIS_ADDRESS
    active = capsys.readouterr().out.split("Active:")[1].split("Pending:")[0].split("Dead:")[0].split()
    assert sorted(active[1::2]) == sorted(f"node_{n.node_id}" for n in all_nodes)  # lines "1 node_<id>"


def test_remove_node_gracefully(cluster: Cluster, driver: RayContext) -> None:
    node = cluster.add_node(num_cpus=1)
    assert node.node_id in _alive_nodes() and node in cluster.list_all_nodes()
    _wait_worker_connected(cluster, node)
    pids = node.pids()
    assert len(node.pids("raylet")) == 1 and node.pids("worker")
    (raylet,) = node.handle.popens

    t = time.monotonic()
    cluster.remove_node(node)
    assert time.monotonic() - t < 5
    assert raylet.returncode == 0  # the raylet stopped on SIGTERM, after marking its node DEAD
    assert all(_gone(p) for p in pids) and not node.any_processes_alive()
    assert node.node_id not in _alive_nodes()
    assert next(n for n in ray.nodes() if n["NodeID"] == node.node_id)["Resources"] == {}
    assert node not in cluster.list_all_nodes()
    cluster.wait_for_nodes(timeout=5)
    with pytest.raises(ValueError, match="not a node of this cluster"):
        cluster.remove_node(node)


def test_remove_node_forcefully(cluster: Cluster, driver: RayContext) -> None:
    node = cluster.add_node(num_cpus=1)
    _wait_worker_connected(cluster, node)
    raylet_pid, workers = node.pids("raylet"), node.pids("worker")
    assert raylet_pid and workers
    (raylet,) = node.handle.popens

    cluster.remove_node(node, allow_graceful=False)
    assert raylet.returncode == -signal.SIGKILL
    assert all(_gone(p) for p in raylet_pid + workers) and not node.any_processes_alive()
    # Nothing marked it DEAD on the way out: the GCS's NodeMonitor does, once its heartbeats stop.
    _wait(lambda: node.node_id not in _alive_nodes(), DEATH_TIMEOUT_S + 10, "the GCS to mark the node dead")
    head = cluster.head_node
    assert head is not None
    with open(os.path.join(head.session_dir, "logs", "gcs_server.log")) as f:
        assert f"node {node.node_id} missed heartbeats" in f.read()
    cluster.wait_for_nodes(timeout=5)


def test_removing_the_drivers_node_is_refused(cluster: Cluster, driver: RayContext) -> None:
    head = cluster.head_node
    assert head is not None
    with pytest.raises(ValueError, match="connected to"):
        cluster.remove_node(head)
    assert not ray.is_initialized()  # as in Ray, the driver is disconnected
    assert cluster.head_node is head and head.remaining_processes_alive()
    cluster.connect()  # the driver fixture's teardown checks and disconnects this one


def test_initialize_head_connect_and_shutdown() -> None:
    env_before = {k: os.environ.get(k) for k in ("RAYREDIS_ADDRESS", "RAYREDIS_REDIS_PASSWORD")}
    c = Cluster(initialize_head=True, connect=True,
                head_node_args={"num_cpus": 1, "num_redis_shards": 1, "include_dashboard": False,
                                "_system_config": {"object_timeout_milliseconds": 200}})
    try:
        assert ray.is_initialized() and c.connected
        with pytest.raises(RuntimeError, match="already connected"):
            c.connect()
        ray.shutdown()
        ray.init(address=c.address)  # as in Ray, no password needed: the Cluster set it in the environment
        assert c.connected
        c.add_node(num_cpus=1, memory=10**9, object_store_memory=100 * 1024 * 1024)
        c.wait_for_nodes()
        assert ray.cluster_resources()["CPU"] == 2
        assert [n["Resources"]["memory"] for n in ray.nodes()][1] == 10**9

        @ray.remote
        def big() -> bytes:
            return b"x" * (1 << 20)

        kept = [ray.put(b"y" * (1 << 20)), big.remote()]
        assert len(ray.get(kept[1], timeout=30)) == 1 << 20
        nodes = c.list_all_nodes()
        pids = [p for n in nodes for p in n.pids()]
        tags = tuple(session.session_shm_tag(n.session_dir) for n in nodes)
        assert any(name.startswith(tags) for name in os.listdir(session.SHM_DIR))
    finally:
        c.shutdown()
    assert not ray.is_initialized() and not c.connected
    assert all(_gone(p) for p in pids) and not any(n.any_processes_alive() for n in nodes)
    assert not [name for name in os.listdir(session.SHM_DIR) if name.startswith(tags)]
    assert c.head_node is None and c.address is None and c.list_all_nodes() == []
    assert {k: os.environ.get(k) for k in env_before} == env_before
    c.shutdown()  # a second shutdown has nothing left to do


def test_bad_arguments_start_nothing() -> None:
    with pytest.raises(RuntimeError, match="uninitialized"):
        Cluster(connect=True)
    c = Cluster(shutdown_at_exit=False)
    assert c.head_node is None and c.address is None and c.list_all_nodes() == []
    with pytest.raises(ValueError, match="nonnegative"):
        c.add_node(num_cpus=-1)
    with pytest.raises(ValueError, match="nonnegative"):
        c.add_node(resources={"custom": -2})
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_cpu'"):
        c.add_node(num_cpu=1)  # Ray's RayParams rejects unknown keys the same way
    with pytest.raises(ValueError, match="num_cpus"):
        c.add_node(resources={"CPU": 2})
    with pytest.raises(TypeError, match="must be a number"):
        c.add_node(num_gpus="1")
    with pytest.raises(ValueError, match="labels"):
        c.add_node(labels={"zone": "a"})
    with pytest.raises(ValueError, match="127.0.0.1"):
        c.add_node(node_ip_address="10.0.0.7")
    with pytest.raises(RuntimeError, match="uninitialized"):
        c.connect()
    with pytest.raises(RuntimeError, match="no head node"):
        c.wait_for_nodes(timeout=1)
    assert c.head_node is None and c.list_all_nodes() == []


_SCRIPT = """
import sys
from rayredis.cluster_utils import Cluster
c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_redis_shards": 1})
c.add_node(num_cpus=1)
print(c.redis_address, c.redis_password, *(n.node_id for n in c.list_all_nodes()), flush=True)
sys.stdin.readline()  # wait until the test has seen every process; then exit (atexit) or be killed
"""


def test_processes_end_with_the_process_that_made_the_cluster() -> None:
    """At interpreter exit ``shutdown_at_exit`` stops everything; if killed, PR_SET_PDEATHSIG does."""
    procs = {how: subprocess.Popen([sys.executable, "-c", _SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   text=True) for how in ("exit", "kill")}
    pids: dict[str, list[int]] = {}
    try:
        for how, p in procs.items():
            assert p.stdout is not None
            address, password, *node_ids = p.stdout.readline().split()
            host, port = parse_address(address)
            r = redis.Redis(host=host, port=port, password=password)
            try:
                _wait_workers_connected(r, set(node_ids))
                sessions = [rec.info.session_dir for rec in tables.read_nodes(r) if rec.info is not None]
            finally:
                r.close()
            assert len(sessions) == 2
            live = [x for s in sessions for x in process.recorded(s) if process.is_alive(x)]
            assert {"redis", "gcs", "raylet", "worker"} <= {x.role for x in live}
            pids[how] = [x.pid for x in live]
        procs["kill"].send_signal(signal.SIGKILL)
    finally:
        for p in procs.values():
            p.communicate(timeout=60)  # closes stdin, so a script still waiting returns (atexit runs); and the pipes
    assert procs["exit"].returncode == 0
    assert all(_gone(p) for p in pids["exit"])
    _wait(lambda: all(_gone(p) for p in pids["kill"]), 10, "the killed driver's cluster to die with it")

"""A raylet SIGKILLed and restarted on its host under the same node ID loses no work: its drivers
reconnect and resend their state, tasks in flight are re-run, its actors are restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Any

import numpy as np
import pytest

import rayredis as ray
from rayredis import api, config, exceptions
from rayredis._private import debug, process, worker_context
from rayredis._private.node import NodeHandle
from rayredis.cluster_utils import Cluster
from rayredis.store import tables
from rayredis.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.integration.test_multinode import _wait_view


def _store() -> Any:
    cw = worker_context.global_worker
    assert cw is not None
    return cw.store.primary


def _info(node_id: str) -> tables.NodeInfo:
    rec = next(r for r in tables.read_nodes(_store()) if r.node_id == node_id)
    assert rec.info is not None
    return rec.info


def kill_raylet(handle: NodeHandle, node_id: str) -> tuple[list[str], dict[str, str]]:
    """SIGKILL the node's raylet (as a crash); returns its argv and the secrets of its environment."""
    if api._supervisor is not None and api._supervisor.handle is handle:
        # This test restarts the raylet itself (or keeps it down): hold off the node's supervisor.
        api._supervisor.paused.set()
    pid = _info(node_id).pid
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(kv.decode().split("=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
    os.kill(pid, signal.SIGKILL)
    for p in handle.popens:
        if p.pid == pid:
            p.wait(timeout=10)
    process.forget_pid(handle.session_dir, pid)
    return argv, {k: v for k, v in env.items() if k == "RAYREDIS_REDIS_PASSWORD"}


def start_raylet(handle: NodeHandle, node_id: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """What the node's supervisor does: the same command line, recorded in the same session."""
    proc = process.spawn(argv, handle.session_dir, "raylet", f"raylet-{node_id[:8]}", env=env,
                         die_with_parent=handle.bind_to_parent())
    handle.procs.setdefault("raylet", []).append(proc.pid)
    handle.popens.append(proc)
    return proc


def restart_raylet(handle: NodeHandle, node_id: str, down_s: float = 0.3) -> None:
    old = _info(node_id).pid
    argv, env = kill_raylet(handle, node_id)
    time.sleep(down_s)
    start_raylet(handle, node_id, argv, env)
    deadline = time.monotonic() + 60
    while True:
        rec = next(r for r in tables.read_nodes(_store()) if r.node_id == node_id)
        if rec.alive and rec.info is not None and rec.info.pid != old:
            return
        assert time.monotonic() < deadline, "the restarted raylet did not register"
        time.sleep(0.05)


@ray.remote
def slow(x: int, t: float) -> int:
    time.sleep(t)
    return x * 2


@ray.remote
def plus_one(x: Any) -> Any:
    return x + 1


@ray.remote(max_restarts=1, max_task_retries=1)
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self, t: float = 0.0) -> int:
        time.sleep(t)
        self.n += 1
        return self.n

    def pid(self) -> int:
        return os.getpid()


def _validated_shutdown() -> None:
    """Check every raylet's invariants (the restarted ones' too), then disconnect."""
    cw = worker_context.global_worker
    violations = debug.validate_cluster(cw.store) if cw is not None else {}
    ray.shutdown()
    assert not any(violations.values()), violations


def _in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as e:  # noqa: BLE001 - the test reports it
            out.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


@pytest.fixture(autouse=True)
def _slow_death(monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart on a loaded 2-core machine can take a few seconds: keep it faster than the death
    timeout (the GCS reads it at start), except where a test sets its own."""
    monkeypatch.setenv("RAYREDIS_NODE_DEATH_TIMEOUT_S", "15")


def test_single_node_raylet_restart_loses_no_work() -> None:
    ray.init(num_cpus=2)
    try:
        handle = api._started
        assert handle is not None
        node_id = handle.node_id
        small = ray.put(41)
        big = ray.put(np.arange(200_000, dtype=np.int64))  # in shared memory
        c = Counter.remote()
        assert ray.get(c.incr.remote(), timeout=60) == 1
        actor_pid = ray.get(c.pid.remote(), timeout=60)
        running = [slow.remote(i, 3.0) for i in range(2)]
        queued = [slow.remote(i, 0.05) for i in range(2, 10)]
        chain = plus_one.remote(slow.remote(100, 0.5))  # the inner ref is dropped: lineage
        dep = plus_one.remote(small)
        total = plus_one.remote(big)
        call = c.incr.remote(2.0)  # in flight at the actor: retried (max_task_retries=1)
        waiter, got = _in_thread(lambda: ray.get(running, timeout=120))
        waiting, ready = _in_thread(lambda: ray.wait(queued, num_returns=len(queued), timeout=120))
        stop = threading.Event()
        made: list[tuple[int, Any, Any]] = []

        def busy() -> None:  # submits and puts (large ones too) before, during and after the outage
            i = 0
            while not stop.is_set():
                made.append((i, slow.remote(i, 0), ray.put(np.full(20_000, i, dtype=np.int64))))
                i += 1
                time.sleep(0.02)

        submitter = threading.Thread(target=busy, daemon=True)
        submitter.start()
        time.sleep(0.5)
        restart_raylet(handle, node_id)
        time.sleep(0.5)
        stop.set()
        submitter.join(60)
        waiter.join(120)
        assert got == [[0, 2]], got
        waiting.join(120)
        assert len(ready[0][0]) == len(queued) and not ready[0][1], ready
        assert len(made) >= 2  # (a large put blocks while the raylet is down)
        for i, ref, arr in made:
            assert ray.get(ref, timeout=60) == 2 * i
            value = ray.get(arr, timeout=60)
            assert value[0] == i and value[-1] == i and len(value) == 20_000
        sums = ray.get([plus_one.remote(arr) for _, _, arr in made[::3]], timeout=120)  # the raylet has them too
        assert [int(v[0]) for v in sums] == [i + 1 for i, _, _ in made[::3]]
        assert ray.get(queued, timeout=120) == [i * 2 for i in range(2, 10)]
        assert ray.get(chain, timeout=60) == 201
        assert ray.get(dep, timeout=60) == 42
        assert ray.get(small, timeout=60) == 41
        assert int(ray.get(big, timeout=60).sum()) == int(np.arange(200_000).sum())
        assert int(ray.get(total, timeout=60).sum()) == int(np.arange(200_000).sum() + 200_000)
        assert ray.get(call, timeout=60) == 1  # the restarted actor's first call
        assert ray.get(c.pid.remote(), timeout=60) != actor_pid
        entry = tables.read_actor(_store(), c._actor_id.hex())
        assert entry is not None and entry.num_restarts == 1
        assert ray.get(slow.remote(5, 0), timeout=60) == 10
        assert ray.get(plus_one.remote(big), timeout=60)[0] == 1
    finally:
        _validated_shutdown()


def test_driver_fails_clearly_when_the_raylet_does_not_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYREDIS_RAYLET_RECONNECT_TIMEOUT_S", "3")

    monkeypatch.setattr(config, "_config", None)
    ray.init(num_cpus=1)
    try:
        handle = api._started
        assert handle is not None
        ref = slow.remote(1, 30.0)
        waiter, got = _in_thread(lambda: ray.get(ref, timeout=120))
        time.sleep(0.5)
        t0 = time.monotonic()
        kill_raylet(handle, handle.node_id)
        waiter.join(60)
        assert not waiter.is_alive()
        assert time.monotonic() - t0 < 30
        assert isinstance(got[0], exceptions.RaySystemError), got
        assert "did not come back" in str(got[0])
        with pytest.raises(exceptions.RaySystemError, match="did not come back"):
            slow.remote(1, 0)
    finally:
        ray.shutdown()


@ray.remote(resources={"w": 1})
def slow_w(x: int, t: float) -> tuple[int, str]:
    time.sleep(t)
    return x * 2, ray.get_runtime_context().get_node_id()


@ray.remote(resources={"w": 1})
def big_w(n: int) -> Any:
    return np.full(n, 7, dtype=np.int64)


def _two_nodes() -> tuple[Cluster, Any]:
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = c.add_node(num_cpus=2, resources={"w": 3})
    ray.init(address=c.address)
    _wait_view(2)
    return c, worker


@pytest.mark.parametrize("killed", ["worker", "driver"])
def test_two_nodes_raylet_restart_loses_no_work(killed: str) -> None:
    """The killed raylet is the worker node's (running work forwarded to it) or the driver's own
    (which forwarded that work): either way every result comes back, and actors restart."""
    c, worker = _two_nodes()
    try:
        target = worker if killed == "worker" else c.head_node
        assert target is not None
        keeper = Counter.options(resources={"w": 0.1}, max_task_retries=-1).remote()
        assert ray.get(keeper.incr.remote(), timeout=60) == 1
        head = c.head_node
        assert head is not None
        local = Counter.options(num_cpus=0, max_task_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            head.node_id, soft=False)).remote()
        assert ray.get(local.incr.remote(), timeout=60) == 1
        early = big_w.remote(300_000)  # done before the kill; its value stays on the worker node
        assert ray.wait([early], timeout=60)[0]
        running = [slow_w.remote(i, 3.0) for i in range(2)]
        queued = [slow_w.remote(i, 0.05) for i in range(2, 8)]
        chain = plus_one.remote(slow.options(resources={"w": 1}).remote(50, 0.5))
        calls = [keeper.incr.remote(0.5) for _ in range(3)]
        local_call = local.incr.remote(1.0)
        waiter, got = _in_thread(lambda: ray.get(running, timeout=120))
        time.sleep(1.0)
        restart_raylet(target.handle, target.node_id)
        waiter.join(120)
        assert got and [v for v, _ in got[0]] == [0, 2], got
        assert [v for v, _ in ray.get(queued, timeout=120)] == [i * 2 for i in range(2, 8)]
        assert ray.get(chain, timeout=60) == 101
        assert int(ray.get(early, timeout=60).sum()) == 7 * 300_000
        counts = ray.get(calls, timeout=120)  # (a restarted instance counts from 0 again)
        assert len(counts) == 3 and all(n >= 1 for n in counts), counts
        if killed == "worker":
            assert ray.get(local_call, timeout=60) == 2
        else:  # in flight when its raylet (and worker) died, and no retries: it fails, saying why
            with pytest.raises(exceptions.RayActorError, match="restarted"):
                ray.get(local_call, timeout=60)
            assert ray.get(local.incr.remote(), timeout=60) == 1  # restarted (max_restarts=1)
        assert ray.get(keeper.incr.remote(), timeout=60) >= 1
        if killed == "worker":
            entry = tables.read_actor(_store(), keeper._actor_id.hex())
            assert entry is not None and entry.num_restarts == 1
        assert [v for v, _ in ray.get([slow_w.remote(i, 0) for i in range(4)], timeout=60)] == [0, 2, 4, 6]
    finally:
        try:
            _validated_shutdown()
        finally:
            c.shutdown()


def test_driver_fails_clearly_when_its_node_comes_back_under_a_new_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """Down longer than the death timeout: the restarted raylet finds its node DEAD, fences itself
    and rejoins under a new node ID; the driver's calls fail at once, saying why."""
    monkeypatch.setenv("RAYREDIS_NODE_DEATH_TIMEOUT_S", "1.5")
    ray.init(num_cpus=1)
    try:
        handle = api._started
        assert handle is not None
        ref = slow.remote(1, 30.0)
        waiter, got = _in_thread(lambda: ray.get(ref, timeout=120))
        argv, env = kill_raylet(handle, handle.node_id)
        deadline = time.monotonic() + 30
        while next(r.state for r in tables.read_nodes(_store()) if r.node_id == handle.node_id) != "DEAD":
            assert time.monotonic() < deadline, "the killed node was not declared dead"
            time.sleep(0.1)
        start_raylet(handle, handle.node_id, argv, env)
        waiter.join(30)
        assert not waiter.is_alive()
        assert isinstance(got[0], exceptions.RaySystemError), got
        assert "did not come back" in str(got[0]) and "DEAD" in str(got[0])
        deadline = time.monotonic() + 30
        while not any(r.alive and r.node_id != handle.node_id for r in tables.read_nodes(_store())):
            assert time.monotonic() < deadline, "the fenced raylet did not rejoin under a new node ID"
            time.sleep(0.1)
    finally:
        ray.shutdown()


def test_a_restarted_raylet_gives_back_large_puts_with_spilling_on() -> None:
    """With spilling (the default) a driver keeps no mapping of its large puts: the restarted
    raylet takes over the segments and spill files its predecessor left, and the driver reclaims them."""
    ray.init(num_cpus=1, object_store_memory=100 * 1024 * 1024)
    try:
        handle = api._started
        assert handle is not None
        mib = 1024 * 1024
        refs = [ray.put(np.full(30 * mib, i, dtype=np.uint8)) for i in range(5)]  # 150 MiB: some spilled
        spill_dir = os.path.join(handle.session_dir, "spill")
        assert os.listdir(spill_dir)
        restart_raylet(handle, handle.node_id)
        for i, ref in enumerate(refs):  # lost (ObjectLostError) before the change
            value = ray.get(ref, timeout=60)
            assert int(value[0]) == i and int(value[-1]) == i
            del value
        assert int(ray.get(plus_one.remote(refs[0]), timeout=60)[0]) == 1  # the raylet has them
    finally:
        _validated_shutdown()

"""A raylet declared dead while it was only paused fences itself: its workers stop (no actor runs
twice) and the same process re-registers as a new node."""

from __future__ import annotations

import os
import signal
import time

import pytest

import rayredis as ray
from rayredis._private import process, worker_context
from rayredis.cluster_utils import Cluster
from rayredis.store import tables
from tests.integration.test_multinode import _wait_view


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_a_node_declared_dead_fences_itself_and_rejoins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYREDIS_NODE_DEATH_TIMEOUT_S", "2")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        paused = c.add_node(num_cpus=1, resources={"x": 1})
        ray.init(address=c.address)
        _wait_view(2)

        @ray.remote(resources={"x": 0.5}, max_restarts=1, max_task_retries=1)
        class Keeper:
            def where(self) -> tuple[str, int]:
                return ray.get_runtime_context().get_node_id(), os.getpid()

        k = Keeper.remote()
        node, old_pid = ray.get(k.where.remote(), timeout=60)
        assert node == paused.node_id
        c.add_node(num_cpus=1, resources={"x": 1})  # where the actor restarts
        _wait_view(3)
        cw = worker_context.global_worker
        assert cw is not None
        info = next(r.info for r in tables.read_nodes(cw.store.primary) if r.node_id == paused.node_id)
        assert info is not None
        os.kill(info.pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 30
            while next(r.state for r in tables.read_nodes(cw.store.primary) if r.node_id == paused.node_id) != "DEAD":
                assert time.monotonic() < deadline, "the paused node was not declared dead"
                time.sleep(0.1)
        finally:
            os.kill(info.pid, signal.SIGCONT)
        node2, new_pid = ray.get(k.where.remote(), timeout=60)
        assert node2 != paused.node_id and new_pid != old_pid
        deadline = time.monotonic() + 30
        while _alive(old_pid):  # the fenced node stopped the old instance
            assert time.monotonic() < deadline, "the old actor instance still runs after the fence"
            time.sleep(0.1)
        deadline = time.monotonic() + 30
        while True:  # the same raylet process is back under a new node ID
            rejoined = [r for r in tables.read_nodes(cw.store.primary)
                        if r.alive and r.info is not None and r.info.pid == info.pid and r.node_id != paused.node_id]
            if rejoined:
                break
            if time.monotonic() > deadline:
                logs = os.path.join(paused.handle.session_dir, "logs")
                tails = {n: open(os.path.join(logs, n)).read()[-3000:] for n in os.listdir(logs) if "raylet" in n}
                import subprocess
                dump = subprocess.run(["py-spy", "dump", "-p", str(info.pid)], capture_output=True, text=True).stdout
                pytest.fail(f"the fenced raylet did not re-register; its logs: {tails} DUMP {dump}")
            time.sleep(0.1)
        assert ray.get(k.where.remote(), timeout=60) == (node2, new_pid)
        # Its PID record names the command line it runs now, so stop/shutdown/the supervisor still
        # take the process for theirs (a stale record made it a process nothing would stop).
        [rec] = [r for r in process.recorded(paused.handle.session_dir) if r.role == "raylet"]
        assert rec.pid == info.pid and process.is_alive(rec)
    finally:
        ray.shutdown()
        c.shutdown()
    assert not _alive(info.pid)  # the fenced raylet was stopped with its cluster

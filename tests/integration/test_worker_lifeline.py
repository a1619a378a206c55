"""Workers exit when their cluster is gone: Redis away for cluster_gone_timeout_s, or the raylet stream lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rayredis as ray
from rayredis import api
from rayredis._private import process, worker_context
from rayredis.store import tables


def _live_workers(session_dir: str) -> list[process.Recorded]:
    return [r for r in process.recorded(session_dir) if r.role == "worker" and process.is_alive(r)]


def _wait_dead(pids: list[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while any(os.path.exists(f"/proc/{p}") and _state(p) != "Z" for p in pids):
        assert time.monotonic() < deadline, f"workers {pids} are still running"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "X"


def test_workers_exit_when_redis_stays_away(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the primary down longer than cluster_gone_timeout_s (2 s here), the idle workers exit
    (warning at most once per 10 s meanwhile); once it is back, new workers serve new tasks."""
    monkeypatch.setenv("RAYREDIS_CLUSTER_GONE_TIMEOUT_S", "2")
    monkeypatch.setenv("RAYREDIS_NODE_DEATH_TIMEOUT_S", "60")  # the GCS must not see the node die meanwhile
    ray.init(num_cpus=2)
    try:
        handle, sup = api._started, api._supervisor
        assert handle is not None and sup is not None

        @ray.remote
        def pid() -> int:
            return os.getpid()

        workers = sorted(set(ray.get([pid.remote() for _ in range(4)], timeout=60)))  # connected ones
        starting = [w.pid for w in _live_workers(handle.session_dir) if w.pid not in workers]
        with sup.pause():
            primary = handle.components["redis-0"].proc
            primary.kill()
            primary.wait()
            _wait_dead(workers + starting, timeout_s=30)
        logs = Path(handle.session_dir) / "logs"
        for w in workers:
            (log,) = [p for p in logs.glob("worker-*.log") if f"(pid {w}) connected" in p.read_text()]
            text = log.read_text()
            assert "exiting: Redis at" in text and "its cluster is gone" in text
            assert text.count("has not answered for") <= 3  # one warning per 10 s, plus the exit line
        # The supervisor restarts the primary; the raylet starts new workers for new tasks.
        assert len(ray.get([pid.remote() for _ in range(4)], timeout=60)) == 4
    finally:
        ray.shutdown()


def test_a_busy_worker_exits_when_its_raylet_stream_is_gone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A worker that is not the raylet's child (so no PR_SET_PDEATHSIG ties it to the raylet) and is
    running a long task exits soon after its raylet is SIGKILLed, instead of running on."""
    monkeypatch.setenv("RAYREDIS_PRESTART_WORKERS", "1")
    ray.init(num_cpus=2)
    foreign = None
    try:
        handle, sup = api._started, api._supervisor
        assert handle is not None and sup is not None
        cw = worker_context.global_worker
        assert cw is not None
        (info,) = [n.info for n in tables.alive(tables.read_nodes(cw.store.primary)) if n.info is not None]
        env = dict(os.environ, RAYREDIS_REDIS_ADDRESS=handle.address, RAYREDIS_REDIS_PASSWORD=handle.password,
                   RAYREDIS_CLUSTER_TOKEN=cw.store.cluster_info()["token"])
        worker_id = os.urandom(16).hex()
        foreign = subprocess.Popen(
            [sys.executable, "-m", "rayredis.worker", "--raylet-address", info.address, "--worker-id", worker_id,
             "--node-id", info.node_id, "--session-dir", handle.session_dir, "--raylet-socket", info.socket],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        @ray.remote
        def sleep_then_pid(s: float) -> int:
            time.sleep(s)
            return os.getpid()

        # Both workers (the raylet's and ours) take a task: find ours running one.
        deadline = time.monotonic() + 60
        while True:
            assert foreign.poll() is None, foreign.communicate()
            assert time.monotonic() < deadline, "the foreign worker never ran a task"
            if foreign.pid in ray.get([sleep_then_pid.remote(0.2) for _ in range(2)], timeout=60):
                break
        refs = [sleep_then_pid.remote(120) for _ in range(2)]
        time.sleep(1.0)
        with sup.pause():
            raylet = handle.components["raylet"].proc
            raylet.send_signal(signal.SIGKILL)
            raylet.wait()
            t0 = time.monotonic()
            _, err = foreign.communicate(timeout=60)
            took = time.monotonic() - t0
        assert foreign.returncode == 1, err
        assert b"exiting: the connection to the raylet is gone" in err
        assert took < 30  # long before its task would have ended (120 s)
        del refs
    finally:
        if foreign is not None and foreign.poll() is None:
            foreign.kill()
            foreign.communicate()
        ray.shutdown()

"""The GCS service is stateless: SIGKILL it mid-workload, start a new one, and nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import rayredis as ray
from rayredis import api
from rayredis._private import node, process


def _gcs_pids(session_dir: str) -> list[int]:
    return [r.pid for r in process.recorded(session_dir) if r.role == "gcs" and process.is_alive(r)]


def test_gcs_sigkill_and_restart_loses_nothing(ray_start_regular, tmp_path):
    handle = api._started
    assert handle is not None

    @ray.remote
    def square(x):
        time.sleep(0.01)
        return x * x

    @ray.remote
    class Acc:
        def __init__(self, start):
            self.total = start

        def add(self, x):
            self.total += x
            return self.total

    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def workload() -> None:
        try:
            task_refs = []
            actors = []
            for i in range(30):
                task_refs.extend(square.remote(j) for j in range(i * 10, i * 10 + 10))
                a = Acc.options(name=f"acc-{i}").remote(i)
                actors.append((i, a, a.add.remote(1)))
                time.sleep(0.05)
            results["tasks"] = ray.get(task_refs, timeout=120)
            results["actors"] = [(i, ray.get(ref, timeout=120)) for i, _, ref in actors]
            results["named"] = [ray.get(ray.get_actor(f"acc-{i}").add.remote(0), timeout=60) for i in range(30)]
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    pause = api._supervisor.pause()  # this test controls the downtime itself
    pause.__enter__()
    t = threading.Thread(target=workload)
    t.start()
    time.sleep(0.4)
    (old_pid,) = _gcs_pids(handle.session_dir)
    os.kill(old_pid, signal.SIGKILL)
    time.sleep(1.5)  # actors created meanwhile stay PENDING_CREATION in Redis

    # A driver that starts while the GCS is down waits (bounded retries) and connects once it is back.
    script = tmp_path / "late_driver.py"
    script.write_text(
        "import rayredis as ray\n"
        f"ray.init(address={handle.address!r}, _redis_password={handle.password!r})\n"
        "@ray.remote\n"
        "def one():\n"
        "    return 1\n"
        "assert ray.get(one.remote(), timeout=60) == 1\n"
        "print('late driver ok')\n"
    )
    late = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(0.5)
    new_pid = node.start_gcs(handle)
    pause.__exit__(None, None, None)
    assert new_pid != old_pid
    t.join(timeout=180)
    out, _ = late.communicate(timeout=120)
    assert not t.is_alive()
    assert not errors, errors
    assert results["tasks"] == [j * j for j in range(300)]
    assert results["actors"] == [(i, i + 1) for i in range(30)]
    assert results["named"] == [i + 1 for i in range(30)]
    assert late.returncode == 0, out.decode()
    assert b"late driver ok" in out


def test_init_cluster_supervises_its_gcs(ray_start_regular):
    """A cluster started by init() restarts its GCS by itself; new actors are created afterwards."""
    handle = api._started
    (old_pid,) = _gcs_pids(handle.session_dir)
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.time() + 30
    while time.time() < deadline:
        pids = _gcs_pids(handle.session_dir)
        if pids and pids != [old_pid]:
            break
        time.sleep(0.05)
    assert pids and old_pid not in pids
    assert api._supervisor.restarts == 1

    @ray.remote
    class Echo:
        def echo(self, x):
            return x

    assert ray.get(Echo.remote().echo.remote("after restart"), timeout=60) == "after restart"

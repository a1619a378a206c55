"""Exactly one active GCS per cluster (the lease in Redis): a second GCS waits as a standby and takes
over when the first dies or is paused past its lease; `rayredis stop` stops a standby too; drivers
get a clear error when no GCS answers; a GCS whose Redis is gone exits."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

import rayredis as ray
from rayredis import api
from rayredis._private import node, process
from rayredis._private.session import remove_session_shm
from rayredis._private.supervisor import NodeSupervisor
from rayredis.config import get_config
from rayredis.store import keys

LEASE_S = get_config().gcs_lease_s
CLI = [sys.executable, "-m", "rayredis.cli.main"]


def _wait(cond: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def _gcs_pids(session_dir: str) -> list[int]:
    return sorted(r.pid for r in process.recorded(session_dir) if r.role == "gcs" and process.is_alive(r))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _log(session_dir: str) -> str:
    with open(os.path.join(session_dir, "logs", "gcs_server.log")) as f:
        return f.read()


def _listening(session_dir: str, pid: int) -> str:
    """The address GCS ``pid`` listens on, once it logged it."""
    pattern = re.compile(rf"GCS \(pid {pid}\) listening on (\S+);")
    _wait(lambda: pattern.search(_log(session_dir)), 30, f"GCS {pid} to listen")
    m = pattern.search(_log(session_dir))
    assert m is not None
    return m.group(1)


@pytest.fixture
def cluster(ray_start_regular: object) -> Iterator[tuple[node.NodeHandle, redis.Redis]]:
    """This process's local cluster with its GCS supervisor paused (the tests start GCSs themselves)."""
    handle = api._started
    assert handle is not None and api._supervisor is not None
    client = redis.Redis.from_url(f"redis://:{handle.password}@{handle.address}")
    try:
        with api._supervisor.pause():
            yield handle, client
    finally:
        client.close()


def _address(client: redis.Redis) -> bytes | None:
    return client.hget(keys.cluster_key(), "gcs_address")  # type: ignore[return-value]


def _driver(handle: node.NodeHandle, tmp_path: Path, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "driver.py"
    script.write_text("import rayredis as ray\n"
                      f"ray.init(address={handle.address!r}, _redis_password={handle.password!r})\n"
                      "@ray.remote\n"
                      "def one():\n"
                      "    return 1\n"
                      "assert ray.get(one.remote(), timeout=60) == 1\n"
                      "print('driver ok')\n")
    env = dict(os.environ, RAYREDIS_CONNECT_TIMEOUT_S=str(timeout_s))
    return subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)


@ray.remote
class Echo:
    def ping(self) -> str:
        return "pong"


def test_a_second_gcs_is_a_standby_until_the_first_dies(cluster: tuple[node.NodeHandle, redis.Redis],
                                                         tmp_path: Path) -> None:
    handle, client = cluster
    (first,) = _gcs_pids(handle.session_dir)
    published, holder = _address(client), client.get(keys.gcs_lease_key())
    assert published and holder

    second = node.start_gcs(handle)
    _listening(handle.session_dir, second)
    time.sleep(2 * LEASE_S)  # several renewals by the first: the standby must not take over
    assert _address(client) == published and client.get(keys.gcs_lease_key()) == holder
    assert _alive(second) and f"GCS (pid {second}) holds the lease" not in _log(handle.session_dir)

    # The standby exits: drivers never depended on it (before the lease, it had taken over
    # gcs_address, and new drivers then failed although the first GCS was healthy).
    os.kill(second, signal.SIGKILL)
    _wait(lambda: not _alive(second), 10, "the standby to die")
    res = _driver(handle, tmp_path)
    assert res.returncode == 0 and "driver ok" in res.stdout, res.stderr

    # A standby takes over within the lease once the active GCS dies, and then serves.
    third = node.start_gcs(handle)
    third_address = _listening(handle.session_dir, third)
    t0 = time.monotonic()
    os.kill(first, signal.SIGKILL)
    _wait(lambda: _address(client) == third_address.encode(), LEASE_S + 10, "the standby to take over")
    print(f"\nstandby took over {time.monotonic() - t0:.2f} s after the active GCS was killed")
    assert client.get(keys.gcs_lease_key()) != holder
    assert ray.get(Echo.remote().ping.remote(), timeout=60) == "pong"


def test_a_gcs_paused_past_its_lease_stops_acting(cluster: tuple[node.NodeHandle, redis.Redis]) -> None:
    handle, client = cluster
    (first,) = _gcs_pids(handle.session_dir)
    standby = node.start_gcs(handle)
    standby_address = _listening(handle.session_dir, standby).encode()
    os.kill(first, signal.SIGSTOP)
    try:
        _wait(lambda: _address(client) == standby_address, LEASE_S + 10, "the standby to take over")
        # The cluster goes on under the new GCS while the old one is paused.
        assert ray.get(Echo.remote().ping.remote(), timeout=60) == "pong"
        holder = client.get(keys.gcs_lease_key())
    finally:
        os.kill(first, signal.SIGCONT)
    # On waking, the old GCS finds its lease gone, stops acting and waits as a standby.
    _wait(lambda: f"GCS (pid {first}) lost the lease" in _log(handle.session_dir), 15, "the old GCS to step down")
    time.sleep(2 * LEASE_S)
    assert _alive(first)
    assert client.get(keys.gcs_lease_key()) == holder and _address(client) == standby_address
    assert ray.get(Echo.remote().ping.remote(), timeout=60) == "pong"
    assert all(n["Alive"] for n in ray.nodes())


def test_a_driver_names_the_fix_when_no_gcs_answers(cluster: tuple[node.NodeHandle, redis.Redis],
                                                    tmp_path: Path) -> None:
    handle, _ = cluster
    (gcs,) = _gcs_pids(handle.session_dir)
    os.kill(gcs, signal.SIGKILL)
    _wait(lambda: not _alive(gcs), 10, "the GCS to die")
    res = _driver(handle, tmp_path, timeout_s=2.0)
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]  # what the driver dies with: not a raw gRPC error
    assert last.startswith("ConnectionError: No GCS of the cluster at"), res.stderr
    assert "connect_timeout_s=2 s" in last and "python -m rayredis.gcs --redis-address" in last
    print("\n" + last)
    node.start_gcs(handle)  # for the fixture's checks at shutdown


def test_rayredis_stop_stops_a_standby_gcs(tmp_path: Path) -> None:
    env = dict(os.environ, RAYREDIS_TEMP_DIR=str(tmp_path / "rr"), PYTHONUNBUFFERED="1")
    for name in ("RAYREDIS_ADDRESS", "RAY_ADDRESS", "RAYREDIS_REDIS_PASSWORD"):
        env.pop(name, None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)

    res = cli("start", "--head", "--port", "0", "--num-cpus", "1")
    assert res.returncode == 0, res.stderr
    try:
        with open(tmp_path / "rr" / "current_cluster") as f:
            info = json.load(f)
        handle = node.NodeHandle(info["session_dir"], info["address"], info["password"])
        standby = node.start_gcs(handle)  # as the --block monitor or an operator would, racing the first
        _listening(handle.session_dir, standby)
        assert len(_gcs_pids(handle.session_dir)) == 2
        res = cli("stop")
        assert res.returncode == 0 and re.search(r"Stopped all \d+ rayredis processes", res.stdout), res.stdout
        (p,) = handle.popens
        assert p.wait(timeout=10) == 0  # it exited on SIGTERM, cleanly, within the grace period
        assert _gcs_pids(handle.session_dir) == []
    finally:
        cli("stop", "--force")


def test_the_gcs_exits_when_redis_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    gone_after = 3.0
    monkeypatch.setenv("RAYREDIS_CLUSTER_GONE_TIMEOUT_S", str(gone_after))  # read by the GCS at start
    handle = node.start_head(num_cpus=1, num_redis_shards=2)
    supervisor = NodeSupervisor(handle)
    supervisor.paused.set()  # Redis stays dead while the GCS notices (the supervisor would restart it)
    supervisor.start()
    try:
        (gcs,) = _gcs_pids(handle.session_dir)
        before = len(_log(handle.session_dir).splitlines())
        t0 = time.monotonic()
        for pid in handle.procs["redis"]:
            os.kill(pid, signal.SIGKILL)
        _wait(lambda: not _alive(gcs), gone_after + 20, "the GCS to exit")
        print(f"\nGCS exited {time.monotonic() - t0:.2f} s after its Redis shards were killed")
        log = _log(handle.session_dir)
        assert "the cluster is gone; the GCS exits (status 3)" in log
        assert f"GCS (pid {gcs}) exits with status 3" in log
        warnings = [line for line in log.splitlines()[before:] if " WARNING " in line]
        assert 1 <= len(warnings) <= 3, warnings  # rate-limited: one per 5 s while Redis is away
        # Its supervisor does not restart a GCS that found the cluster gone (it may restart Redis).
        supervisor.paused.clear()
        _wait(lambda: "gcs" in supervisor._abandoned, 10, "the supervisor to give the GCS up")
        time.sleep(1.0)
        assert _gcs_pids(handle.session_dir) == []
    finally:
        supervisor.stop()
        process.stop_recorded(handle.session_dir, grace_s=1.0, force=True)
        handle.collect()
        remove_session_shm(handle.session_dir)

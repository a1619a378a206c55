"""Redis shards persist (AOF) and the node supervisor restarts dead shards and raylets, mid-workload."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import rayredis as ray
from rayredis import api, config
from rayredis._private import process
from rayredis._private.node import NodeHandle
from rayredis._private.redis_server import free_port, start_redis
from rayredis._private.supervisor import NodeSupervisor, RestartPolicy
from rayredis.store import keys, tables

CLI = [sys.executable, "-m", "rayredis.cli.main"]


# ---- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Environment of the CLI and drivers: a temp dir of their own, no inherited cluster."""
    e = dict(os.environ, RAYREDIS_TEMP_DIR=str(tmp_path / "rr"), PYTHONUNBUFFERED="1")
    for name in ("RAYREDIS_ADDRESS", "RAY_ADDRESS", "RAYREDIS_REDIS_PASSWORD"):
        e.pop(name, None)
    return e


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)


class BlockingHead:
    """``rayredis start --head --block`` as a child of the test, with its cluster's Redis at hand."""

    def __init__(self, env: dict[str, str], *extra: str):
        self.env = env
        self.proc = subprocess.Popen(
            [*CLI, "start", "--head", "--port", str(free_port()), "--num-cpus", "2", "--num-redis-shards", "2",
             "--object-store-memory", str(256 * 1024**2), "--block", *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        path = os.path.join(env["RAYREDIS_TEMP_DIR"], "current_cluster")
        while not os.path.exists(path) or _cli(env, "status").returncode != 0:
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "the blocking head did not come up"
            time.sleep(0.1)
        with open(path) as f:
            info = json.load(f)
        self.session_dir: str = info["session_dir"]
        self.address: str = info["address"]
        self.password: str = info["password"]
        self.client = redis.Redis.from_url(f"redis://:{info['password']}@{self.address}", socket_timeout=10)
        self.ports = [self.address.rpartition(":")[2]] + [
            a.rpartition(":")[2] for a in json.loads(self.client.hget(keys.cluster_key(), "shards"))]

    def live(self, role: str) -> list[process.Recorded]:
        return [r for r in process.recorded(self.session_dir) if r.role == role and process.is_alive(r)]

    def shard(self, index: int) -> redis.Redis:
        """A client of shard ``index`` (0: the primary) that gives up fast while it is down."""
        return redis.Redis(host="127.0.0.1", port=int(self.ports[index]), password=self.password,
                           socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))

    def kill_shard(self, index: int) -> float:
        """SIGKILL shard ``index``; returns the seconds until a replacement answered."""
        probe = self.shard(index)
        try:
            old = int(probe.info("server")["process_id"])
            assert old in [r.pid for r in self.live("redis")]
            t0 = time.monotonic()
            os.kill(old, signal.SIGKILL)
            while True:
                assert time.monotonic() - t0 < 30, f"shard {index} was not restarted"
                assert self.proc.poll() is None, self.proc.communicate()
                try:
                    if int(probe.info("server")["process_id"]) != old:
                        return time.monotonic() - t0
                except redis.exceptions.RedisError:
                    pass
                time.sleep(0.01)
        finally:
            probe.close()

    def stop(self) -> tuple[int | None, str, str]:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        _cli(self.env, "stop", "--force")
        return self.proc.returncode, out, err


@pytest.fixture
def head(env: dict[str, str]) -> Iterator[BlockingHead]:
    h = BlockingHead(env)
    try:
        yield h
    finally:
        h.stop()


def _node_info(client: redis.Redis, node_id: str) -> tables.NodeInfo:
    raw = client.hget(keys.nodes_key(), node_id)
    assert raw is not None
    return tables.NodeInfo.from_json(raw)


def _run_driver(env: dict[str, str], source: str, *args: str, timeout: float = 120) -> str:
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(source), *args], env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, f"driver failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


# ---- AOF ---------------------------------------------------------------------------------------------


def test_shard_restarted_on_its_port_and_dir_keeps_its_data(tmp_path: Path) -> None:
    """A SIGKILLed shard started again with the same port, data dir and password has every
    acknowledged write (appendfsync everysec loses nothing on a process kill)."""
    session = tmp_path / "session"
    for sub in ("logs", "pids"):
        (session / sub).mkdir(parents=True)
    port = free_port()
    proc = start_redis(str(session), port, "pw", "127.0.0.1", 0)
    try:
        client = redis.Redis(port=port, password="pw")
        client.hset("rr:h", mapping={f"f{i}": i for i in range(1000)})
        client.set("rr:s", b"v" * 100_000)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.close()
        proc.kill()
        proc.wait()
        proc = start_redis(str(session), port, "pw", "127.0.0.1", 0)
        client = redis.Redis(port=port, password="pw")
        assert client.hlen("rr:h") == 1000 and client.hget("rr:h", "f999") == b"999"
        assert client.get("rr:s") == b"v" * 100_000
        client.close()
        with open(session / "redis-0" / "redis.conf") as f:
            assert "pw" in f.read()
        assert os.stat(session / "redis-0" / "redis.conf").st_mode & 0o777 == 0o600
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            assert b"pw" not in f.read().split(b"\0")  # the password is in the 0600 file only
    finally:
        proc.kill()
        proc.wait()
        process.forget_dead(str(session))


def test_an_unknown_appendfsync_policy_is_refused_before_anything_starts(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "_config", config.Config.from_env(redis_appendfsync="sometimes"))
    with pytest.raises(ValueError, match="redis_appendfsync must be one of always, everysec, no"):
        start_redis(str(tmp_path), free_port(), "pw", "127.0.0.1", 0)
    assert not (tmp_path / "redis-0").exists()


# ---- the supervisor ------------------------------------------------------------------------------------


def test_supervisor_backs_off_doubling_then_gives_up(tmp_path: Path) -> None:
    """Each death within the window doubles the wait before the restart; the restarted process
    replaces the dead one in the PID records; one death too many calls ``on_give_up``."""
    session = tmp_path / "session"
    for sub in ("logs", "pids"):
        (session / sub).mkdir(parents=True)
    handle = NodeHandle(str(session), "127.0.0.1:1", "unused")

    def start() -> subprocess.Popen[bytes]:
        return process.spawn([sys.executable, "-c", "import time; time.sleep(120)"], str(session), "gcs", "sleeper")

    handle.track("gcs", "gcs", start(), start, "The sleeper")
    lines: list[str] = []
    reasons: list[str] = []
    sup = NodeSupervisor(handle, policy=RestartPolicy(max_restarts=3, window_s=600), report=lines.append,
                         on_give_up=reasons.append)
    killed = []
    try:
        for _ in range(4):
            old = handle.components["gcs"].proc
            killed.append(old.pid)
            old.kill()
            deadline = time.monotonic() + 30
            while handle.components["gcs"].proc is old and not sup.gave_up.is_set():
                assert time.monotonic() < deadline
                sup.tick()
                time.sleep(0.01)
            if not sup.gave_up.is_set():
                assert [r.pid for r in process.recorded(str(session))] == [handle.components["gcs"].proc.pid]
        assert [line.split(" [pid=")[1].split(",")[0] for line in lines] == [str(p) for p in killed[:3]]
        assert [line.rsplit(" after ", 1)[1][:5] for line in lines] == ["0.1 s", "0.2 s", "0.4 s"]
        assert all("exit_code=-9] exited; started a replacement" in line for line in lines)
        assert reasons == [sup.give_up_reason]
        assert f"The sleeper [pid={killed[3]}, exit_code=-9] exited, and it was restarted 3 times" in reasons[0]
        assert sup.restarts == 3
    finally:
        for c in handle.components.values():
            c.proc.kill()
        handle.collect()
        process.forget_dead(str(session))


def test_supervisor_pausing_one_slot_restarts_the_others(tmp_path: Path) -> None:
    """``pause("gcs")`` holds off only the GCS's restart: a Redis shard that dies meanwhile comes back."""
    session = tmp_path / "session"
    for sub in ("logs", "pids"):
        (session / sub).mkdir(parents=True)
    handle = NodeHandle(str(session), "127.0.0.1:1", "unused")

    def starter(role: str) -> Callable[[], subprocess.Popen[bytes]]:
        return lambda: process.spawn([sys.executable, "-c", "import time; time.sleep(120)"], str(session), role, role)

    for slot, role in (("gcs", "gcs"), ("redis-0", "redis")):
        handle.track(slot, role, starter(role)(), starter(role), f"The {role} sleeper")
    sup = NodeSupervisor(handle, report=lambda line: None)
    try:
        with sup.pause("gcs"):
            gcs, shard = handle.components["gcs"].proc, handle.components["redis-0"].proc
            gcs.kill()
            shard.kill()
            deadline = time.monotonic() + 30
            while handle.components["redis-0"].proc is shard:
                assert time.monotonic() < deadline, "the shard was not restarted while the GCS slot was paused"
                sup.tick()
                time.sleep(0.01)
            for _ in range(50):  # well past the GCS's backoff: still not restarted
                sup.tick()
                time.sleep(0.01)
            assert handle.components["gcs"].proc is gcs
        while handle.components["gcs"].proc is gcs:
            assert time.monotonic() < deadline, "the GCS was not restarted after the pause"
            sup.tick()
            time.sleep(0.01)
    finally:
        for c in handle.components.values():
            c.proc.kill()
        handle.collect()
        process.forget_dead(str(session))


# ---- rayredis start --block ----------------------------------------------------------------------------

WORKLOAD = """
import json, os, sys, time
import numpy as np
import rayredis as ray

stop_file, ready_file, progress_file = sys.argv[1], sys.argv[2], sys.argv[3]
ray.init(address="auto", namespace="restarts")

@ray.remote
def square(x):
    return x * x

@ray.remote
class Counter:
    def __init__(self, start):
        self.n = start

    def add(self, k):
        self.n += k
        return self.n

named = Counter.options(name="named-counter").remote(100)
detached = Counter.options(name="detached-counter", lifetime="detached").remote(1000)
assert ray.get([named.add.remote(0), detached.add.remote(1)], timeout=60) == [100, 1001]
open(ready_file, "w").close()
rounds = 0
deadline = time.monotonic() + 100
while not os.path.exists(stop_file):
    assert time.monotonic() < deadline, "the test never asked the workload to stop"
    base = rounds * 10
    refs = [square.remote(base + j) for j in range(10)]
    arr = np.arange(rounds, rounds + 50_000)  # larger than the inline limit: shared memory
    assert (ray.get(ray.put(arr), timeout=60) == arr).all()
    assert ray.get(named.add.remote(1), timeout=60) == 100 + rounds + 1
    c = Counter.remote(rounds)  # a new actor: its entry is created in the primary's actor table
    assert ray.get(c.add.remote(1), timeout=60) == rounds + 1
    assert ray.get(ray.get_actor("named-counter").add.remote(0), timeout=60) == 100 + rounds + 1
    assert ray.get(refs, timeout=60) == [(base + j) ** 2 for j in range(10)]
    rounds += 1
    with open(progress_file, "a") as f:
        print(time.monotonic(), file=f)
# After the kills, both named actors still resolve through the (restarted) primary's name table.
assert ray.get(ray.get_actor("named-counter").add.remote(0), timeout=60) == 100 + rounds
assert ray.get(ray.get_actor("detached-counter").add.remote(0), timeout=60) == 1001
print(json.dumps({"rounds": rounds, "job": ray.get_runtime_context().get_job_id()}), flush=True)
"""

AFTER = """
import json
import rayredis as ray

ray.init(address="auto", namespace="restarts")
detached = ray.get_actor("detached-counter")
print(json.dumps({"detached": ray.get(detached.add.remote(0), timeout=60)}))
"""


def test_block_restarts_killed_shards_with_their_data_mid_workload(head: BlockingHead, env: dict[str, str],
                                                                     tmp_path: Path) -> None:
    """SIGKILL the primary, then the data shard, while a driver runs tasks, actors and put/get: both
    come back with their data, the workload completes with the right answers, the tables are intact."""
    stop_file, ready_file, progress = tmp_path / "stop", tmp_path / "ready", tmp_path / "progress"
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WORKLOAD), str(stop_file), str(ready_file),
                               str(progress)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def rounds_done() -> int:
        return len(progress.read_text().splitlines()) if progress.exists() else 0

    def more_rounds(n: int) -> None:
        """Wait until the workload has completed ``n`` more rounds (it is running, not stuck)."""
        target = rounds_done() + n
        deadline = time.monotonic() + 90
        while rounds_done() < target:
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, f"the workload made no progress ({rounds_done()} rounds)"
            time.sleep(0.05)

    try:
        deadline = time.monotonic() + 90
        while not ready_file.exists():
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "the workload did not start"
            time.sleep(0.05)
        actors_before = head.client.scard(keys.actors_index_key())
        jobs_before = head.client.hkeys(keys.jobs_key())
        more_rounds(2)
        primary_s = head.kill_shard(0)
        more_rounds(3)  # rounds that ran while and after the primary restarted
        data_s = head.kill_shard(1)
        more_rounds(3)
        stop_file.touch()
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 0, f"the workload failed:\n{out}\n{err}"
    result = json.loads(out.strip().splitlines()[-1])
    times = [float(t) for t in progress.read_text().split()]
    print(f"{result['rounds']} rounds, longest {max(b - a for a, b in zip(times, times[1:])):.2f} s")
    print(f"restart (kill to PING): primary {primary_s:.2f} s, data shard {data_s:.2f} s")
    assert primary_s < 20 and data_s < 20
    # The tables survived: every actor entry and job written before the kill, and the named actors.
    assert head.client.scard(keys.actors_index_key()) >= actors_before + result["rounds"]
    assert set(jobs_before) <= set(head.client.hkeys(keys.jobs_key()))
    assert json.loads(_run_driver(env, AFTER)) == {"detached": 1001}  # it outlived its driver, and the kills
    code, out, err = head.stop()
    assert code == 0, out + err
    assert "Redis shard 0" in out and "Redis shard 1" in out and "with its data (AOF)" in out


def test_block_restarts_a_killed_raylet_with_its_node_id(head: BlockingHead, env: dict[str, str]) -> None:
    (node_id,) = [n.node_id for n in tables.alive(tables.read_nodes(head.client))]
    (old,) = head.live("raylet")
    t0 = time.monotonic()
    os.kill(old.pid, signal.SIGKILL)
    while True:
        info = _node_info(head.client, node_id)
        if info.pid != old.pid:
            break
        assert time.monotonic() - t0 < 30, "the raylet was not restarted"
        time.sleep(0.02)
    elapsed = time.monotonic() - t0
    print(f"raylet restart (kill to re-registration): {elapsed:.2f} s")
    (new,) = head.live("raylet")
    assert info.pid == new.pid and info.node_id == node_id
    assert [n.node_id for n in tables.alive(tables.read_nodes(head.client))] == [node_id]
    assert old.pid not in [r.pid for r in process.recorded(head.session_dir)]  # the dead one's record is gone
    out = _run_driver(env, """
        import rayredis as ray
        ray.init(address="auto")
        @ray.remote
        def f(x):
            return x + 1
        print(ray.get(f.remote(41), timeout=60), ray.get_runtime_context().get_node_id())
    """)
    assert out.split() == ["42", node_id]
    code, out, err = head.stop()
    assert code == 0, out + err
    assert f"The raylet (node {node_id[:8]}) [pid={old.pid}, exit_code=-9] exited; started a replacement" in out
    assert not [r for r in process.recorded(head.session_dir) if process.is_alive(r)]


def test_block_gives_up_after_too_many_crashes(env: dict[str, str]) -> None:
    h = BlockingHead(dict(env, RAYREDIS_SUPERVISOR_MAX_RESTARTS="2"))
    try:
        pids = []
        for _ in range(3):
            (r,) = h.live("raylet")
            pids.append(r.pid)
            os.kill(r.pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while h.proc.poll() is None and [x.pid for x in h.live("raylet")] in ([], [r.pid]):
                assert time.monotonic() < deadline, "the raylet was neither restarted nor given up on"
                time.sleep(0.02)
        out, err = h.proc.communicate(timeout=60)
        assert h.proc.returncode == 1, out + err
        assert f"[pid={pids[2]}, exit_code=-9] exited, and it was restarted 2 times within 60 s" in err
        assert "giving up (supervisor_max_restarts=2)" in err
        assert not [r for r in process.recorded(h.session_dir) if process.is_alive(r)]
    finally:
        h.stop()


# ---- init() ------------------------------------------------------------------------------------------


def test_init_supervisor_restarts_a_killed_shard(ray_start_regular: object) -> None:
    handle = api._started
    sup = api._supervisor
    assert handle is not None and sup is not None

    @ray.remote
    class Keeper:
        def __init__(self, v):
            self.v = v

        def get(self):
            return self.v

    k = Keeper.options(name="keeper").remote("kept")
    assert ray.get(k.get.remote(), timeout=60) == "kept"
    ref = ray.put(b"x" * 200_000)
    for slot in ("redis-1", "redis-0"):
        old = handle.components[slot].proc.pid
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while handle.components[slot].proc.pid == old:
            assert time.monotonic() < deadline, f"{slot} was not restarted"
            time.sleep(0.02)
    assert sup.restarts == 2
    assert ray.get(ray.get_actor("keeper").get.remote(), timeout=60) == "kept"
    assert ray.get(ref, timeout=60) == b"x" * 200_000

    @ray.remote
    def add(a, b):
        return a + b

    assert ray.get([add.remote(i, i) for i in range(20)], timeout=60) == [2 * i for i in range(20)]
    live = [r.pid for r in process.recorded(handle.session_dir) if r.role == "redis" and process.is_alive(r)]
    assert sorted(live) == sorted(handle.components[s].proc.pid for s in ("redis-0", "redis-1"))

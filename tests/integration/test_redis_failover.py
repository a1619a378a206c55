"""Replicated shards: a SIGKILLed shard master fails over through real Sentinels, mid-workload, losing nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import rayredis as ray
from rayredis import api
from rayredis._private import process, sentinel, worker_context
from rayredis._private.node import NodeHandle
from rayredis._private.sentinel import RestartDeferredError
from rayredis._private.supervisor import NodeSupervisor, RestartPolicy
from rayredis.store import keys
from rayredis.store.replication import master_name

CLI = [sys.executable, "-m", "rayredis.cli.main"]


def _live(session_dir: str, role: str) -> list[process.Recorded]:
    return [r for r in process.recorded(session_dir) if r.role == role and process.is_alive(r)]


def _member(port: int, password: str) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=1.0,
                       socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0), decode_responses=True)


def _master_port(h: NodeHandle, shard: int) -> int:
    view = sentinel.ask_sentinels(h.sentinels, h.password, master_name(shard))
    assert view.master is not None
    return int(view.master.rpartition(":")[2])


def _master_port_or(h: NodeHandle, shard: int, default: int) -> int:
    """The shard's master port, or ``default`` while the Sentinels name none (mid-election)."""
    view = sentinel.ask_sentinels(h.sentinels, h.password, master_name(shard))
    return default if view.master is None else int(view.master.rpartition(":")[2])


def _pid_on(port: int, password: str) -> int:
    client = _member(port, password)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def _wait_for(cond: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _role(port: int, password: str) -> str | None:
    client = _member(port, password)
    try:
        return str(client.info("replication")["role"])
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        return None
    finally:
        client.close()


@ray.remote
def square(x: int) -> int:
    return x * x


@ray.remote
def total(arr: np.ndarray) -> int:
    return int(arr.sum())


@ray.remote
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self) -> int:
        self.n += 1
        return self.n


@pytest.mark.parametrize("shard", [0, 1], ids=["primary-shard", "data-shard"])
def test_shard_master_sigkill_mid_workload_loses_nothing(shard: int) -> None:
    """Tasks, puts (inline and shared-memory) and actor calls run while the shard's master is
    SIGKILLed: Sentinel promotes its replica, every client follows, every result is right, the
    write acknowledged before the kill is on the new master, and the supervisor brings the dead
    member back as the new master's replica, not as a second master."""
    ray.init(_redis_replicas=1, num_cpus=2, num_redis_shards=2)
    h = api._started
    assert h is not None and len(h.sentinels) == 3
    session = h.session_dir
    try:
        assert len(_live(session, "redis")) == 4 and len(_live(session, "sentinel")) == 3
        store = worker_context.global_worker.store  # type: ignore[union-attr]
        probe_client = store.primary if shard == 0 else store.shards[0]
        acked = int(probe_client.incr(keys.failover_probe_key()))  # WAITed for a replica by the client
        old_port = _master_port(h, shard)
        victim = _pid_on(old_port, h.password)
        assert victim in [r.pid for r in _live(session, "redis")]
        counter = Counter.remote()
        assert ray.get(counter.incr.remote()) == 1
        killed_at: list[float] = []

        def kill() -> None:
            killed_at.append(time.monotonic())
            os.kill(victim, signal.SIGKILL)

        timer = threading.Timer(1.0, kill)
        timer.start()
        squares, sums, puts, calls = [], [], [], []
        i = 0
        start = time.monotonic()
        # Keep submitting until well after the failover (about 2-4 s after the kill).
        while time.monotonic() - start < 1.0 or not killed_at or time.monotonic() - killed_at[0] < 6.0:
            squares.append((i, square.remote(i)))
            arr = np.full(50_000 if i % 2 else 10, i, dtype=np.int64)  # shared memory / inline
            ref = ray.put(arr)
            puts.append((arr, ref))
            sums.append((int(arr.sum()), total.remote(ref)))
            calls.append(counter.incr.remote())
            i += 1
            time.sleep(0.05)
        timer.join()
        assert [ray.get(r, timeout=120) for _, r in squares] == [x * x for x, _ in squares]
        assert [ray.get(r, timeout=120) for _, r in sums] == [s for s, _ in sums]
        for arr, ref in puts:
            assert np.array_equal(ray.get(ref, timeout=120), arr)
        assert ray.get(calls, timeout=120) == list(range(2, len(calls) + 2))
        assert ray.get(counter.incr.remote(), timeout=60) == len(calls) + 2

        # On a loaded machine the Sentinels may still be electing: the work above does not wait for them.
        deadline = time.monotonic() + 30.0
        while (new_port := _master_port_or(h, shard, old_port)) == old_port and time.monotonic() < deadline:
            time.sleep(0.2)
        assert new_port != old_port, "Sentinel did not fail the shard over"
        assert int(probe_client.get(keys.failover_probe_key())) >= acked  # the acknowledged write survived
        _wait_for(lambda: _role(old_port, h.password) == "slave", 60, "the killed member to rejoin as a replica")
        assert _role(new_port, h.password) == "master"
        assert len(_live(session, "redis")) == 4 and len(_live(session, "sentinel")) == 3
        # a driver started now finds the cluster through the hash and the Sentinels, too
        assert ray.get(square.remote(7)) == 49
    finally:
        ray.shutdown()
    assert not _live(session, "redis") and not _live(session, "sentinel")


def _replica_port(master_port: int, password: str) -> int:
    client = _member(master_port, password)
    try:
        return int(client.info("replication")["slave0"]["port"])
    finally:
        client.close()


def test_a_rejoining_member_is_not_promoted_before_it_has_resynced() -> None:
    """Bug P: a shard's master is SIGKILLed and comes back as its promoted replica's replica, but its
    resync has not finished (held back here by a long diskless-sync delay) when the new master is
    SIGKILLed too. The rejoined member holds only its own AOF, so promoting it would drop the write
    acknowledged in between; it is not promotable until it has resynced (``replica-priority 0``), so
    no failover happens and the supervisor brings the new master back on its AOF, write included."""
    ray.init(_redis_replicas=1, num_cpus=1, num_redis_shards=2)
    h = api._started
    assert h is not None
    session, shard = h.session_dir, 1
    try:
        store = worker_context.global_worker.store  # type: ignore[union-attr]
        first = _master_port(h, shard)
        second = _replica_port(first, h.password)
        promoted = _member(second, h.password)
        try:  # once it is the master, its full syncs wait a minute before they start
            promoted.config_set("repl-diskless-sync", "yes")
            promoted.config_set("repl-diskless-sync-delay", 60)
        finally:
            promoted.close()
        os.kill(_pid_on(first, h.password), signal.SIGKILL)
        _wait_for(lambda: _master_port_or(h, shard, first) == second, 60, "the replica's promotion")
        _wait_for(lambda: _role(first, h.password) == "slave", 60, "the killed member to rejoin as a replica")
        rejoined = _member(first, h.password)
        try:
            assert not sentinel.synced(rejoined.info("replication"))  # its resync is held back
            assert rejoined.config_get("replica-priority")["replica-priority"] == "0"
        finally:
            rejoined.close()
        acked = int(store.shards[0].incr(keys.failover_probe_key()))  # no replica acknowledges: AOF only
        os.kill(_pid_on(second, h.password), signal.SIGKILL)
        raw: object = ...
        deadline = time.monotonic() + 90.0
        while raw is ...:
            assert time.monotonic() < deadline, "the shard did not come back"
            try:
                raw = store.shards[0].get(keys.failover_probe_key())
            except (redis.exceptions.RedisError, ray.exceptions.RaySystemError):  # down until restarted
                time.sleep(0.2)
        # the acknowledged write survived: no failover to the stale member
        assert isinstance(raw, (bytes, str)) and int(raw) >= acked
        assert _master_port(h, shard) == second and _role(second, h.password) == "master"
        assert ray.get(square.remote(5), timeout=60) == 25
    finally:
        ray.shutdown()
    assert not _live(session, "redis") and not _live(session, "sentinel")


def test_pubsub_consumer_resubscribes_on_the_new_master_and_rescans() -> None:
    """``pubsub.follow`` through the Sentinels: after the primary's master is SIGKILLed it is
    subscribed on the promoted replica, rescans, and gets what is published there."""
    import asyncio

    from rayredis._private import node
    from rayredis.store import pubsub
    from rayredis.store.client import AsyncShardedRedis, ShardedRedis

    h = node.start_head(redis_replicas=1, num_redis_shards=1, num_cpus=1, die_with_parent=True)
    sup = NodeSupervisor(h)
    sup.start()
    rescans: list[float] = []
    messages: list[str] = []
    stop = threading.Event()

    def consume() -> None:
        async def main() -> None:
            store = await AsyncShardedRedis(h.address, h.password, sentinels=h.sentinels).connect()

            async def rescan() -> None:
                rescans.append(time.monotonic())

            async def on_message(channel: str, data: str) -> None:
                messages.append(data)

            task = asyncio.create_task(pubsub.follow(store.primary, [keys.node_channel()], rescan, on_message,
                                                     retry_delay_s=0.1))
            while not stop.is_set():
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await store.close()
        asyncio.run(main())

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    publisher = ShardedRedis(h.address, h.password, sentinels=h.sentinels).connect()
    try:
        _wait_for(lambda: bool(rescans), 30, "the first subscription")
        old_port = _master_port(h, 0)
        os.kill(_pid_on(old_port, h.password), signal.SIGKILL)
        killed = time.monotonic()
        _wait_for(lambda: _master_port(h, 0) != old_port, 60, "the failover")

        def delivered() -> bool:
            publisher.primary.publish(keys.node_channel(), "after-failover")
            return "after-failover" in messages

        _wait_for(delivered, 60, "a message published on the new master")
        assert any(t > killed for t in rescans), "no rescan after the resubscription"
        # A Sentinel killed now comes back (the supervisor) from its rewritten config: it has the
        # password and names the new master.
        new_master = f"127.0.0.1:{_master_port(h, 0)}"
        dead = h.components["sentinel-0"].proc
        os.kill(dead.pid, signal.SIGKILL)

        def sentinel_back() -> bool:
            proc = h.components["sentinel-0"].proc
            if proc is dead or proc.poll() is not None:
                return False
            view = sentinel.ask_sentinels(h.sentinels[:1], h.password, master_name(0))
            return view.master == new_master

        _wait_for(sentinel_back, 30, "the Sentinel's restart")
    finally:
        stop.set()
        consumer.join(timeout=30)
        publisher.close()
        sup.stop()
        process.stop_recorded(h.session_dir, grace_s=2.0)
        h.collect()
    assert not _live(h.session_dir, "redis") and not _live(h.session_dir, "sentinel")


def test_writes_wait_for_a_replica_on_their_connection_and_degrade_without_one(tmp_path: Path) -> None:
    """Each write command, pipeline and transaction with a write is followed by one WAIT (reads are
    not); with no replica the WAIT times out and the policy degrades, and recovers once one syncs."""
    import asyncio

    from rayredis._private.redis_server import free_port, start_redis
    from rayredis._private.replicated_head import _wait_in_sync
    from rayredis.store.client import _AsyncRedis, _Redis
    from rayredis.store.replication import WaitPolicy

    session = tmp_path / "session"
    for sub in ("logs", "pids"):
        (session / sub).mkdir(parents=True)
    port, replica_port = free_port(), free_port()
    procs = [start_redis(str(session), port, "pw", "127.0.0.1", 0)]
    client = _Redis(port=port, password="pw")
    client.wait_policy = policy = WaitPolicy(timeout_ms=100, degraded_ms=5)
    admin = _member(port, "pw")

    def waits() -> int:
        return int(admin.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))

    try:
        client.hset("rr:t", "f", "1")
        assert policy.degraded and policy.unacknowledged == 1 and waits() == 1
        procs.append(start_redis(str(session), replica_port, "pw", "127.0.0.1", 0, member=1,
                                 replicaof=f"127.0.0.1:{port}"))
        _wait_in_sync("127.0.0.1", replica_port, "pw")
        client.hset("rr:t", "f", "2")
        assert not policy.degraded and policy.unacknowledged == 1 and waits() == 2
        assert client.hget("rr:t", "f") == b"2" and waits() == 2  # a read: no WAIT
        pipe = client.pipeline(transaction=False)
        pipe.hset("rr:t", "g", "1")
        pipe.hget("rr:t", "g")
        assert pipe.execute() == [1, b"1"] and waits() == 3
        tx = client.pipeline(transaction=True)
        tx.hincrby("rr:t", "n", 1)
        tx.hincrby("rr:t", "n", 1)
        assert tx.execute() == [1, 2] and waits() == 4
        reads = client.pipeline(transaction=False)
        reads.hget("rr:t", "n")
        assert reads.execute() == [b"2"] and waits() == 4

        async def async_writes() -> None:
            aclient = _AsyncRedis(port=port, password="pw")
            aclient.wait_policy = WaitPolicy(timeout_ms=100, degraded_ms=5)
            await aclient.hset("rr:t", "a", "1")
            apipe = aclient.pipeline(transaction=False)
            apipe.hset("rr:t", "b", "1")
            await apipe.execute()
            assert aclient.wait_policy.unacknowledged == 0
            await aclient.aclose()

        asyncio.run(async_writes())
        assert waits() == 6
        replica = _member(replica_port, "pw")
        assert replica.hgetall("rr:t") == {"f": "2", "g": "1", "n": "2", "a": "1", "b": "1"}
        replica.close()
    finally:
        client.close()
        admin.close()
        for p in procs:
            p.kill()
            p.wait()
        process.forget_dead(str(session))


def test_supervisor_defers_a_restart_without_counting_it(tmp_path: Path) -> None:
    """A restart raising ``RestartDeferredError`` is tried again shortly and never counts as a death
    (so a pending failover cannot make the supervisor give up)."""
    session = tmp_path / "session"
    for sub in ("logs", "pids"):
        (session / sub).mkdir(parents=True)
    handle = NodeHandle(str(session), "127.0.0.1:1", "unused")
    deferrals = [0]

    def spawn() -> subprocess.Popen[bytes]:
        return process.spawn([sys.executable, "-c", "import time; time.sleep(120)"], str(session), "redis", "m")

    def restart() -> subprocess.Popen[bytes]:
        if deferrals[0] < 12:
            deferrals[0] += 1
            raise RestartDeferredError("waiting for the Sentinels to fail over")
        return spawn()

    handle.track("redis-0", "redis", spawn(), restart, "Redis shard 0 member 0")
    lines: list[str] = []
    sup = NodeSupervisor(handle, policy=RestartPolicy(initial_backoff_s=0.01, max_restarts=1, window_s=600),
                         report=lines.append, on_give_up=lambda reason: pytest.fail(reason))
    first = handle.components["redis-0"].proc
    try:
        first.kill()
        first.wait()
        _wait_for(lambda: (sup.tick(), handle.components["redis-0"].proc is not first)[1], 30, "the restart")
        assert deferrals[0] == 12 and not sup.gave_up.is_set() and sup.restarts == 1
        assert sum("its restart waits" in line for line in lines) == 1
        assert any("started a replacement" in line for line in lines)
    finally:
        for c in handle.components.values():
            c.proc.kill()
            c.proc.wait()
        process.forget_dead(str(session))


def test_cli_head_with_replicas_records_and_stops_every_process(tmp_path: Path) -> None:
    """``rayredis start --head --redis-replicas 1``: replicas and Sentinels are this cluster's
    recorded processes, the current-cluster file names the Sentinels, a driver works, and
    ``rayredis stop`` ends them all."""
    env = dict(os.environ, RAYREDIS_TEMP_DIR=str(tmp_path / "rr"), PYTHONUNBUFFERED="1")
    for name in ("RAYREDIS_ADDRESS", "RAY_ADDRESS", "RAYREDIS_REDIS_PASSWORD", "RAYREDIS_REDIS_SENTINELS"):
        env.pop(name, None)
    from rayredis._private.redis_server import free_port

    res = subprocess.run([*CLI, "start", "--head", "--port", str(free_port()), "--num-cpus", "1",
                          "--redis-replicas", "1", "--num-redis-shards", "1"],
                         env=env, capture_output=True, text=True, timeout=120)
    session = ""
    try:
        assert res.returncode == 0, res.stderr
        assert "Sentinels:" in res.stdout
        with open(tmp_path / "rr" / "current_cluster") as f:
            info = json.load(f)
        session = info["session_dir"]
        assert len(info["sentinels"]) == 3
        assert len(_live(session, "redis")) == 2 and len(_live(session, "sentinel")) == 3
        out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import rayredis as ray
            ray.init()
            @ray.remote
            def f(x):
                return x + 1
            print(ray.get(f.remote(41)))
        """)], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[0] == "42"
        status = subprocess.run([*CLI, "status"], env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        bad = subprocess.run([*CLI, "start", "--address", "127.0.0.1:1", "--redis-replicas", "1"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "--redis-replicas is not allowed" in bad.stderr
        with open(os.path.join(session, "sentinel-0", "sentinel.conf")) as f:
            assert "requirepass" in f.read()
        assert os.stat(os.path.join(session, "sentinel-0", "sentinel.conf")).st_mode & 0o777 == 0o600
    finally:
        stop = subprocess.run([*CLI, "stop"], env=env, capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0, stop.stderr
    assert session and not _live(session, "redis") and not _live(session, "sentinel")

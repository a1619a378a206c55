"""The Redis client layer across a shard restart: pipelines with scripts, pub/sub, and long outages."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

import rayredis as ray
from rayredis import api
from rayredis._private import process
from rayredis._private.redis_server import free_port, start_redis
from rayredis.store import keys, pubsub
from rayredis.store.client import AsyncShardedRedis, ShardedRedis

SET_SCRIPT = "return redis.call('SET', KEYS[1], ARGV[1])"


@dataclass
class Shard:
    """One real redis-server that a test can SIGKILL and start again from its AOF."""

    session: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def restart(self, flush_scripts: bool = False) -> None:
        """SIGKILL and start again; ``flush_scripts`` empties the script cache as Redis >= 7 does on
        every restart (6.2 keeps the scripts that were loaded in its AOF)."""
        self.proc.kill()
        self.proc.wait()
        process.forget_pid(self.session, self.proc.pid)
        self.proc = start_redis(self.session, self.port, "pw", "127.0.0.1", 0)
        if flush_scripts:
            client = redis.Redis(port=self.port, password="pw")
            client.script_flush()
            client.close()


@pytest.fixture
def shard(tmp_path: Path) -> Iterator[Shard]:
    session = tmp_path / "session"
    for sub in ("logs", "pids"):
        (session / sub).mkdir(parents=True)
    port = free_port()
    s = Shard(str(session), port, start_redis(str(session), port, "pw", "127.0.0.1", 0))
    store = ShardedRedis(s.address, "pw")
    store.primary.hset(keys.cluster_key(), "shards", json.dumps([s.address]))
    store.close()
    try:
        yield s
    finally:
        s.proc.kill()
        s.proc.wait()
        process.forget_dead(s.session)


def test_pipeline_reloads_its_scripts_when_the_shard_restarts_mid_execute(shard: Shard) -> None:
    """The shard restarts after the pipeline checked its scripts but before it ran them: the resend
    on the new connection loads them again (instead of failing with NOSCRIPT)."""
    store = ShardedRedis(shard.address, "pw").connect()
    try:
        script = store.primary.register_script(SET_SCRIPT)
        pipe = store.primary.pipeline(transaction=False)
        script(keys=["rr:k"], args=["sync"], client=pipe)
        restarted: list[bool] = []
        checked = pipe.load_scripts

        def check_then_restart() -> None:
            checked()
            if not restarted:
                restarted.append(True)
                shard.restart(flush_scripts=True)

        pipe.load_scripts = check_then_restart
        assert pipe.execute() == [b"OK"]
        assert store.primary.get("rr:k") == b"sync" and restarted
    finally:
        store.close()

    async def run() -> None:
        astore = await AsyncShardedRedis(shard.address, "pw").connect()
        try:
            script = astore.primary.register_script(SET_SCRIPT)
            pipe = astore.primary.pipeline(transaction=False)
            await script(keys=["rr:k"], args=["async"], client=pipe)
            checked = pipe.load_scripts

            async def check_then_restart() -> None:
                await checked()
                if len(restarted) == 1:
                    restarted.append(True)
                    shard.restart(flush_scripts=True)

            pipe.load_scripts = check_then_restart
            assert await pipe.execute(raise_on_error=False) == [b"OK"]
            assert await astore.primary.get("rr:k") == b"async" and len(restarted) == 2
        finally:
            await astore.close()

    asyncio.run(run())


def test_follow_rescans_after_the_shard_restarts(shard: Shard) -> None:
    """``pubsub.follow`` rescans after every (re)subscription, also when redis-py reconnects the
    subscription by itself, and then receives what is published on the restarted shard."""

    async def run() -> None:
        astore = await AsyncShardedRedis(shard.address, "pw").connect()
        rescans: list[float] = []
        got: list[str] = []

        async def rescan() -> None:
            rescans.append(time.monotonic())

        async def on_message(ch: str, data: str) -> None:
            got.append(data)

        task = asyncio.create_task(pubsub.follow(astore.primary, ["rr:ch:a", "rr:ch:b"], rescan, on_message))
        try:
            await _until(lambda: len(rescans) == 1)
            await astore.primary.publish("rr:ch:a", "before")
            await _until(lambda: got == ["before"])
            await asyncio.get_running_loop().run_in_executor(None, shard.restart)
            await _until(lambda: len(rescans) == 2)
            await astore.primary.publish("rr:ch:b", "after")
            await _until(lambda: got == ["before", "after"])
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await astore.close()

    asyncio.run(run())


async def _until(cond: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_driver_calls_wait_out_a_primary_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the primary down for 6 s (longer than redis-py's own default retries last), a driver's
    actor creation and named lookup wait for it (``connect_timeout_s``) and then succeed."""
    monkeypatch.setenv("RAYREDIS_NODE_DEATH_TIMEOUT_S", "60")  # the GCS must not see the node die meanwhile
    ray.init(num_cpus=1)
    try:
        handle, sup = api._started, api._supervisor
        assert handle is not None and sup is not None

        @ray.remote
        class Echo:
            def echo(self, x: Any) -> Any:
                return x

        assert ray.get(Echo.remote().echo.remote("exported"), timeout=60) == "exported"  # the class is exported
        results: list[Any] = []
        with sup.pause():
            primary = handle.components["redis-0"].proc
            primary.kill()
            primary.wait()
            t = threading.Thread(target=lambda: results.append(
                ray.get(Echo.options(name="echo").remote().echo.remote("created"), timeout=60)))
            t.start()
            time.sleep(6.0)
            assert t.is_alive()  # waiting for the primary
        t.join(timeout=60)  # the supervisor restarts the primary now
        assert results == ["created"]
        assert ray.get(ray.get_actor("echo").echo.remote("found"), timeout=60) == "found"
    finally:
        ray.shutdown()

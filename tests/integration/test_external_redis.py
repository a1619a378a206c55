"""``rayredis start --head --external-redis``: the GCS and the head raylet, each alone, on redis-servers started apart.

The Redis servers are real redis-server processes that ``rayredis redis-shard`` runs (what the compose
file's Redis services run), with an ACL user instead of the default one; the GCS (``--no-raylet``)
and the head raylet (``--no-gcs``) are separate ``rayredis start --block`` commands with their own temp
dirs, as in separate containers; a driver then runs tasks and objects through them.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from rayredis._private import external_redis
from rayredis._private.redis_server import free_port
from rayredis.cli.redis_shard import conf_text
from rayredis.store import keys

USER = "rrapp"


def test_parse_urls() -> None:
    ext = external_redis.parse("redis://u:p%40ss@h1:7000, redis://u:p%40ss@h2:7001,redis://u:p%40ss@[::1]:7002")
    assert ext == external_redis.ExternalRedis("h1:7000", ("h2:7001", "[::1]:7002"), "u", "p@ss")
    alone = external_redis.parse("redis://h1")
    assert alone.data_shards == ("h1:6379",) and alone.username == "" and alone.password is None
    for bad, says in (("", "at least one URL"), ("h1:6379", "not a Redis URL"), ("rediss://h1:1", "TLS"),
                      ("redis://h1:1/3", "database 0"), ("redis://h1:1,redis://h1:1", "twice"),
                      ("redis://a:b@h1:1,redis://h2:1", "same user and password"), ("redis://h1:x", "port")):
        with pytest.raises(ValueError, match=says):
            external_redis.parse(bad)


def test_redis_shard_conf() -> None:
    acl = conf_text(7000, "0.0.0.0", "/data", 'pa"ss', USER, "everysec")
    assert "user default off\n" in acl and f'user {USER} on ">pa\\x22ss" ~* &* +@all\n' in acl
    assert "appendonly yes\n" in acl and 'save ""\n' in acl and "requirepass" not in acl
    plain = conf_text(7000, "0.0.0.0", "/data", "pw", "", "always")
    assert 'requirepass "pw"\n' in plain and "appendfsync always\n" in plain and "user " not in plain


@dataclass
class Cluster:
    tmp: Path
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    ports: list[int] = field(default_factory=lambda: [free_port(), free_port()])
    procs: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    @property
    def urls(self) -> str:
        return ",".join(f"redis://{USER}@127.0.0.1:{p}" for p in self.ports)

    def env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYREDIS_", "RAY_"))}
        (self.tmp / name).mkdir(exist_ok=True, mode=0o700)
        # The password reaches every process through the environment only; the user comes from the URLs
        # (the head's parts) or from RAYREDIS_REDIS_USERNAME (the Redis servers, the driver).
        env.update(RAYREDIS_TEMP_DIR=str(self.tmp / name), RAYREDIS_REDIS_PASSWORD=self.password,
                   PYTHONUNBUFFERED="1")
        return env

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "rayredis.cli.main", *args],
                                            env=env or self.env(name), stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True)
        return self.procs[name]

    def redis_shard(self, i: int) -> None:
        env = dict(self.env(f"redis{i}"), RAYREDIS_REDIS_USERNAME=USER)
        self.spawn(f"redis{i}", "redis-shard", "--port", str(self.ports[i]), "--bind-host", "127.0.0.1",
                   "--dir", str(self.tmp / f"redis{i}" / "data"), env=env)
        deadline = time.monotonic() + 90  # (generous: a loaded CI machine)
        while subprocess.run([sys.executable, "-m", "rayredis.cli.main", "redis-shard", "--check", "--port",
                              str(self.ports[i])], env=env, capture_output=True).returncode != 0:
            assert self.procs[f"redis{i}"].poll() is None, self.procs[f"redis{i}"].communicate()
            assert time.monotonic() < deadline, "the Redis shard never answered"
            time.sleep(0.1)

    def head_part(self, name: str, flag: str) -> None:
        proc = self.spawn(name, "start", "--head", "--external-redis", self.urls, flag, "--num-cpus", "2",
                          "--block")
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # until it started (or exited)
            lines.append(line)
            if line.startswith("--block"):
                return
        raise AssertionError(f"{name} exited ({proc.wait()}): {''.join(lines)}")

    def client(self, i: int) -> redis.Redis:
        return redis.Redis(port=self.ports[i], username=USER, password=self.password, decode_responses=True)

    def stop(self, name: str, sig: int = signal.SIGTERM) -> str:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            out, _ = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        return out or ""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cl = Cluster(tmp_path_factory.mktemp("extredis"))
    try:
        cl.redis_shard(0)
        cl.redis_shard(1)
        cl.head_part("gcs", "--no-raylet")
        cl.head_part("head", "--no-gcs")
        yield cl
    finally:
        for name in ("head", "gcs", "redis1", "redis0"):
            if name in cl.procs:
                cl.stop(name)


DRIVER = textwrap.dedent("""
    import sys, numpy as np, rayredis
    rayredis.init(address=sys.argv[1])
    @rayredis.remote
    def square(x):
        return x * x
    @rayredis.remote
    class Counter:
        def __init__(self):
            self.n = 0
        def add(self, k):
            self.n += k
            return self.n
    assert rayredis.get([square.remote(i) for i in range(20)], timeout=60) == [i * i for i in range(20)]
    c = Counter.remote()
    assert rayredis.get([c.add.remote(1) for _ in range(3)], timeout=60) == [1, 2, 3]
    big = rayredis.put(np.arange(2**20, dtype=np.int64))
    assert int(rayredis.get(square.remote(big), timeout=60)[-1]) == (2**20 - 1) ** 2
    print("DRIVER OK", [n["IsHead"] for n in rayredis.nodes() if n["Alive"]])
""")


def drive(cl: Cluster) -> str:
    env = dict(cl.env("driver"), RAYREDIS_REDIS_USERNAME=USER)
    res = subprocess.run([sys.executable, "-c", DRIVER, f"127.0.0.1:{cl.ports[0]}"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "DRIVER OK" in res.stdout, res.stdout + res.stderr
    return res.stdout


def test_split_head_serves_a_driver_through_the_acl_user(cluster: Cluster) -> None:
    assert "DRIVER OK [True]" in drive(cluster)
    primary, data = cluster.client(0), cluster.client(1)
    try:
        info = primary.hgetall(keys.cluster_key())
        assert json.loads(info["shards"]) == [f"127.0.0.1:{cluster.ports[1]}"], info
        assert info["gcs_address"] and info["external_redis"] == "1"
        assert data.dbsize() > 0  # tasks and objects went to the data shard the URLs named
        # The default user is off: the password alone (requirepass-style AUTH) is refused.
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=cluster.ports[0], password=cluster.password).ping()
    finally:
        primary.close()
        data.close()


def test_gcs_restarted_on_the_same_servers_attaches(cluster: Cluster) -> None:
    """A GCS container brought back by its restart policy finds the cluster hash (same token) and serves."""
    primary = cluster.client(0)
    try:
        before = primary.hgetall(keys.cluster_key())
        out = cluster.stop("gcs")
        assert "Received SIGTERM" in out, out
        cluster.head_part("gcs", "--no-raylet")
        after = primary.hgetall(keys.cluster_key())
        assert {k: after[k] for k in ("token", "shards", "created")} == \
            {k: before[k] for k in ("token", "shards", "created")}
    finally:
        primary.close()
    drive(cluster)


def test_other_data_shards_are_refused(cluster: Cluster) -> None:
    ext = external_redis.ExternalRedis(f"127.0.0.1:{cluster.ports[0]}", ("127.0.0.1:1",), USER, cluster.password)
    with pytest.raises(ValueError, match="already holds a rayredis cluster"):
        external_redis.init_or_attach(ext, cluster.password, str(cluster.tmp))

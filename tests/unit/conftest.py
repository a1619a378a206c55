"""Fixtures of the unit tests: one real, password-protected redis-server per module (no rayredis processes)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from rayredis._private.redis_server import find_redis_server, free_port

#: The password of the unit tests' redis-server (as a cluster's shards, it requires one).
REDIS_PASSWORD = "unit-test-password"


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a fresh redis-server on 127.0.0.1 that requires ``REDIS_PASSWORD``."""
    d = tmp_path_factory.mktemp("redis")
    port = free_port()
    with open(d / "redis.log", "wb") as log:
        proc = subprocess.Popen(
            [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--requirepass", REDIS_PASSWORD,
             "--save", "", "--appendonly", "no", "--dir", str(d), "--daemonize", "no", "--loglevel", "warning"],
            stdout=log, stderr=subprocess.STDOUT, cwd=str(d))
        try:
            client = redis.Redis(port=port, password=REDIS_PASSWORD, socket_connect_timeout=1.0)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.exceptions.ConnectionError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start: {(d / 'redis.log').read_text()}") from None
                    time.sleep(0.02)
            client.close()
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

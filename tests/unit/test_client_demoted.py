"""A write that reaches a member a failover demoted to a replica is resent, never dropped: the
client turns READONLY and "WAIT cannot be used with replica" into a ConnectionError (DemotedError)
that the retry policies retry on a new connection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rayredis.store import client
from rayredis.store.replication import WaitPolicy
from tests.unit.conftest import REDIS_PASSWORD


@pytest.fixture(scope="module")
def replica_port(redis_port: int) -> Iterator[int]:
    """This module's redis-server, made a replica (of a master that is not there: it stays read-only)."""
    admin = redis.Redis(port=redis_port, password=REDIS_PASSWORD)
    admin.execute_command("REPLICAOF", "127.0.0.1", "1")
    try:
        yield redis_port
    finally:
        admin.execute_command("REPLICAOF", "NO", "ONE")
        admin.close()


def test_a_pipeline_on_a_replica_raises_a_retryable_error_instead_of_per_command_errors(replica_port: int) -> None:
    c = client._Redis(port=replica_port, password=REDIS_PASSWORD, retry=Retry(NoBackoff(), 0))
    c.wait_policy = WaitPolicy(1000, 10)
    try:
        pipe = c.pipeline(transaction=False)
        pipe.set("k", "v")
        with pytest.raises(client.DemotedError, match="is a replica now"):
            pipe.execute(raise_on_error=False)  # (before: a READONLY result the caller logged and dropped)
        assert isinstance(client.DemotedError("x"), redis.exceptions.ConnectionError)
    finally:
        c.close()


def test_an_async_pipeline_on_a_replica_raises_the_same(replica_port: int) -> None:
    async def go() -> None:
        c = client._AsyncRedis(port=replica_port, password=REDIS_PASSWORD,
                               retry=redis.asyncio.retry.Retry(NoBackoff(), 0))
        c.wait_policy = WaitPolicy(1000, 10)
        try:
            pipe = c.pipeline(transaction=False)
            pipe.hincrby("h", "f", 1)
            with pytest.raises(client.DemotedError):
                await pipe.execute(raise_on_error=False)
        finally:
            await c.aclose()

    asyncio.run(go())


def test_a_wait_refused_by_a_replica_is_a_demotion(replica_port: int) -> None:
    c = client._Redis(port=replica_port, password=REDIS_PASSWORD, retry=Retry(NoBackoff(), 0))
    conn = c.connection_pool.get_connection()
    try:
        with pytest.raises(client.DemotedError, match="WAIT cannot be used with replica"):
            client._wait(conn, WaitPolicy(1000, 10))
    finally:
        c.connection_pool.release(conn)
        c.close()


def test_a_script_that_writes_on_a_replica_is_a_demotion(replica_port: int) -> None:
    # Redis reports a script's refused write as "Error running script ... -READONLY ...", which
    # redis-py does not take for a ReadOnlyError; the client must, or a failover fails the call.
    c = client._Redis(port=replica_port, password=REDIS_PASSWORD, retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(client.DemotedError, match="READONLY"):
            c.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "k", "v")
    finally:
        c.close()


def test_an_async_script_that_writes_on_a_replica_is_a_demotion(replica_port: int) -> None:
    async def go() -> None:
        c = client._AsyncRedis(port=replica_port, password=REDIS_PASSWORD,
                               retry=redis.asyncio.retry.Retry(NoBackoff(), 0))
        try:
            with pytest.raises(client.DemotedError):
                await c.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "k", "v")
        finally:
            await c.aclose()

    asyncio.run(go())

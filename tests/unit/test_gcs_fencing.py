"""The ``gcs_lease`` script and the fenced GCS writes against a real redis-server (no rayredis processes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from rayredis.actor_state import ActorState
from rayredis.gcs.lease import LeaseLostError
from rayredis.gcs.raylet_clients import GrpcRayletClients
from rayredis.gcs.store import Fence, RedisGcsStore
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store import keys
from rayredis.store.tables import JobInfo, NodeInfo, PlacementGroupState
from tests.unit.conftest import REDIS_PASSWORD

A = "aa" * 16
PG = "cc" * 14
NODE = "0a" * 28
LEASE = keys.gcs_lease_key()

Scenario = Callable[[Any, RedisGcsStore], Awaitable[None]]


@pytest.fixture
def run(redis_port: int) -> Callable[[Scenario], None]:
    """Run ``scenario(client, store)`` on a flushed server holding a cluster key, in a fresh loop;
    ``store`` is unfenced (the lease script's caller)."""

    def go(scenario: Scenario) -> None:
        async def main() -> None:
            client = aioredis.Redis(port=redis_port, password=REDIS_PASSWORD)
            await client.flushall()
            await client.hset(keys.cluster_key(), mapping={"shards": "[]", "token": "t"})
            try:
                await scenario(client, RedisGcsStore(client))
            finally:
                await client.aclose()

        asyncio.run(main())

    return go


def _never_lost() -> None:
    return None


def test_only_one_holder_acquires_and_publishes_its_address(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Any, store: RedisGcsStore) -> None:
        assert await store.lease("acquire", "first", 3.0, "127.0.0.1:1") == 1
        assert await c.hget(keys.cluster_key(), "gcs_address") == b"127.0.0.1:1"
        assert 2000 < await c.pttl(LEASE) <= 3000
        # A second GCS (a standby) neither gets the lease nor touches the address.
        assert await store.lease("acquire", "second", 3.0, "127.0.0.1:2") == 0
        assert await c.hget(keys.cluster_key(), "gcs_address") == b"127.0.0.1:1"
        assert await c.get(LEASE) == b"first"
        # Renewal and release check the holder id.
        assert await store.lease("renew", "second", 3.0) == 0
        await c.pexpire(LEASE, 100)
        assert await store.lease("renew", "first", 3.0) == 1
        assert await c.pttl(LEASE) > 2000
        assert await store.lease("release", "second", 3.0) == 0
        assert await store.lease("release", "first", 3.0) == 1
        assert await c.get(LEASE) is None
        assert await store.lease("renew", "first", 3.0) == 0  # released: nothing to renew
        assert await store.lease("acquire", "second", 3.0, "127.0.0.1:2") == 1
        assert await c.hget(keys.cluster_key(), "gcs_address") == b"127.0.0.1:2"

    run(scenario)


def test_a_lapsed_lease_can_be_taken_over(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Any, store: RedisGcsStore) -> None:
        assert await store.lease("acquire", "old", 0.2, "127.0.0.1:1") == 1
        assert await store.lease("acquire", "new", 3.0, "127.0.0.1:2") == 0
        await asyncio.sleep(0.3)  # the old holder was paused past its lease
        assert await store.lease("acquire", "new", 3.0, "127.0.0.1:2") == 1
        assert await store.lease("renew", "old", 3.0) == 0  # the old holder learns it lost
        assert await c.get(LEASE) == b"new"

    run(scenario)


def test_no_lease_on_a_primary_without_a_shard_map(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Any, store: RedisGcsStore) -> None:
        await c.delete(keys.cluster_key())  # the primary restarted empty
        assert await store.lease("acquire", "gcs", 3.0, "127.0.0.1:1") == -1
        assert await c.exists(keys.cluster_key(), LEASE) == 0

    run(scenario)


def test_fenced_writes_apply_while_the_lease_holds_the_id(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Any, _: RedisGcsStore) -> None:
        await c.set(LEASE, "me")
        store = RedisGcsStore(c, Fence("me", _never_lost))
        await c.hset(keys.actor_key(A), mapping={"state": "PENDING_CREATION", "attempt": "-1", "job": "3"})
        assert await store.actor_transition(A, ActorState.PENDING_CREATION, -1,
                                            {"state": "SCHEDULED", "node": NODE, "attempt": 0})
        assert not await store.actor_transition(A, ActorState.PENDING_CREATION, -1, {"state": "SCHEDULED"})
        assert (await store.actor(A)).state == ActorState.SCHEDULED  # type: ignore[union-attr]
        await c.hset(keys.node_state_key(), NODE, "ALIVE")
        assert await store.node_dead_cas(NODE)
        assert not await store.node_dead_cas(NODE)
        assert await store.next_job_id() == 1
        await store.add_job(JobInfo(job_id=1, driver_pid=9, node_id=NODE, namespace="ns", entrypoint="x.py"))
        assert await c.hget(keys.job_state_key(), "1") == b"RUNNING"
        assert JobInfo.from_json(await c.hget(keys.jobs_key(), "1")).namespace == "ns"
        await c.hset(keys.placement_group_key(PG), mapping={"state": "PENDING", "bundles": "[]", "job": "3"})
        txn = json.dumps({"seq": 1, "moves": [[0, NODE]]})
        assert await store.pg_cas(PG, {"state": "PENDING", "txn_phase": ""},
                                  {"txn_phase": "PREPARING", "txn": txn, "txn_seq": "1"})
        assert await store.pg_cas(PG, {"state": "PENDING", "txn_phase": "PREPARING", "txn_seq": "1"},
                                  {"state": "CREATED", "nodes": json.dumps([NODE]), "txn_phase": "", "txn": ""})
        assert not await store.pg_state_cas(PG, PlacementGroupState.PENDING, PlacementGroupState.CREATED)
        await store.mark_pg_returned(PG)
        [e] = await store.pgs([PG])
        assert (e.state, e.nodes, e.returned) == (PlacementGroupState.CREATED, [NODE], True)

    run(scenario)


def test_redis_refuses_every_write_of_another_holder(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Any, _: RedisGcsStore) -> None:
        # The local check passes (the old GCS believes it still holds the lease), Redis says no.
        await c.set(LEASE, "new-gcs")
        store = RedisGcsStore(c, Fence("old-gcs", _never_lost))
        await c.hset(keys.actor_key(A), mapping={"state": "PENDING_CREATION", "attempt": "-1", "job": "3"})
        await c.hset(keys.node_state_key(), NODE, "ALIVE")
        await c.hset(keys.placement_group_key(PG), mapping={"state": "PENDING", "bundles": "[]", "job": "3"})
        writes: list[Awaitable[Any]] = [
            store.actor_transition(A, ActorState.PENDING_CREATION, -1, {"state": "SCHEDULED"}),
            store.node_dead_cas(NODE),
            store.add_job(JobInfo(job_id=1, driver_pid=9, node_id=NODE, namespace="ns", entrypoint="x.py")),
            store.pg_state_cas(PG, PlacementGroupState.PENDING, PlacementGroupState.CREATED),
            store.pg_cas(PG, {"state": "PENDING"}, {"nodes": json.dumps([NODE])}),
            store.mark_pg_returned(PG),
        ]
        for w in writes:
            with pytest.raises(LeaseLostError):
                await w
        assert await c.hget(keys.actor_key(A), "state") == b"PENDING_CREATION"
        assert await c.hget(keys.node_state_key(), NODE) == b"ALIVE"
        assert await c.hgetall(keys.placement_group_key(PG)) == {b"state": b"PENDING", b"bundles": b"[]",
                                                                 b"job": b"3"}
        assert await c.exists(keys.jobs_key(), keys.job_state_key()) == 0
        await c.delete(LEASE)  # a lapsed lease fences too
        with pytest.raises(LeaseLostError):
            await store.node_dead_cas(NODE)

    run(scenario)


def test_the_local_check_stops_writes_and_raylet_calls_before_they_are_sent(
        run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Any, _: RedisGcsStore) -> None:
        await c.set(LEASE, "me")  # Redis would accept: the local check must stop them first

        def lost() -> None:
            raise LeaseLostError("paused past the lease")

        store = RedisGcsStore(c, Fence("me", lost))
        await c.hset(keys.node_state_key(), NODE, "ALIVE")
        for w in (store.node_dead_cas(NODE), store.next_job_id(),
                  store.pg_cas(PG, {}, {"nodes": json.dumps([NODE])})):
            with pytest.raises(LeaseLostError):
                await w
        assert await c.hget(keys.node_state_key(), NODE) == b"ALIVE"
        assert await c.exists(keys.job_counter_key(), keys.placement_group_key(PG)) == 0
        # Raylet calls: the guard runs before the RPC (an unreachable address: no RPC would succeed anyway).
        info = NodeInfo(node_id=NODE, address="127.0.0.1:1", node_ip="127.0.0.1", resources={})
        await c.hset(keys.nodes_key(), NODE, info.to_json())
        raylets = GrpcRayletClients(c, "token", guard=lost)
        for call in (raylets.create_actor(NODE, A, 0, pb.TaskSpec()),
                     raylets.prepare_bundles(NODE, PG, [0], [json.dumps({"CPU": 1})], 1),
                     raylets.commit_bundles(NODE, PG, [0], [json.dumps({"CPU": 1})], 1),
                     raylets.cancel_bundles(NODE, PG, [0], 1),
                     raylets.return_bundles(NODE, PG)):
            with pytest.raises(LeaseLostError):
                await call
        await raylets.close()

    run(scenario)

"""The GCS's Redis store and raylet clients against a real redis-server (no rayredis processes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from rayredis.actor_state import ActorState
from rayredis.gcs.decisions import FieldValue
from rayredis.gcs.raylet_clients import GrpcRayletClients
from rayredis.gcs.store import RedisGcsStore
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store import keys
from rayredis.store.tables import BundleTxn, JobInfo, NodeInfo, NodeLoad, PlacementGroupState, TxnPhase
from tests.unit.conftest import REDIS_PASSWORD

A = "aa" * 16
PG = "cc" * 14
NODE_A = "0a" * 28
NODE_B = "0b" * 28


Scenario = Callable[[Any, RedisGcsStore], Awaitable[None]]


@pytest.fixture
def run(redis_port: int) -> Callable[[Scenario], None]:
    """Run ``scenario(client, store)`` on a flushed server, in a fresh event loop."""

    def go(scenario: Scenario) -> None:
        async def main() -> None:
            client = aioredis.Redis(port=redis_port, password=REDIS_PASSWORD)
            await client.flushall()
            try:
                await scenario(client, RedisGcsStore(client))
            finally:
                await client.aclose()

        asyncio.run(main())

    return go


def test_actor_transition_is_a_cas_on_state_and_attempt(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Any, store: RedisGcsStore) -> None:
        await c.hset(keys.actor_key(A), mapping={"state": "PENDING_CREATION", "attempt": "-1", "job": "3"})
        await c.sadd(keys.actors_index_key(), A)
        await c.sadd(keys.live_actors_key(), A)
        fields: dict[str, FieldValue] = {"state": "SCHEDULED", "node": NODE_A, "attempt": 0}
        assert await store.actor_transition(A, ActorState.PENDING_CREATION, -1, fields)
        assert not await store.actor_transition(A, ActorState.PENDING_CREATION, -1, fields)  # it moved
        assert not await store.actor_transition(A, ActorState.SCHEDULED, 5, {"state": "ALIVE"})  # other attempt
        assert await store.live_actor_ids() == [A]
        [e] = await store.actors([A, "bb" * 16])  # a missing actor is left out
        assert (e.state, e.node, e.attempt, e.job) == (ActorState.SCHEDULED, NODE_A, 0, 3)
        assert await store.actor("bb" * 16) is None
        assert await store.actors([]) == []

    run(scenario)


def test_cluster_view_joins_the_node_tables_and_job_states(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Any, store: RedisGcsStore) -> None:
        info = NodeInfo(node_id=NODE_A, address="127.0.0.1:1", node_ip="127.0.0.1", resources={"CPU": 2.0})
        await c.hset(keys.nodes_key(), NODE_A, info.to_json())
        await c.hset(keys.node_load_key(), NODE_A, NodeLoad(available={"CPU": 1.0}, total={"CPU": 2.0},
                                                             queued=4).to_json())
        await c.hset(keys.node_state_key(), mapping={NODE_A: "ALIVE", NODE_B: "DEAD"})
        await c.hset(keys.job_state_key(), mapping={"1": "FINISHED", "2": "RUNNING", "5": "FINISHED"})
        v = await store.cluster_view([1, 2, 3])
        assert [(n.node_id, n.queued) for n in v.nodes] == [(NODE_A, 4)]
        assert v.alive == {NODE_A} and v.finished_jobs == {1}
        assert (await store.cluster_view()).finished_jobs == {1, 5}
        assert (await store.cluster_view(())).finished_jobs == set()
        assert await store.node_dead_cas(NODE_A)
        assert not await store.node_dead_cas(NODE_A)
        assert (await store.cluster_view(())).alive == set()

    run(scenario)


def test_jobs_are_numbered_recorded_and_running(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Any, store: RedisGcsStore) -> None:
        assert [await store.next_job_id(), await store.next_job_id()] == [1, 2]
        await store.add_job(JobInfo(job_id=2, driver_pid=9, node_id=NODE_A, namespace="ns", entrypoint="x.py"))
        assert JobInfo.from_json(await c.hget(keys.jobs_key(), "2")).entrypoint == "x.py"
        assert await c.hget(keys.job_state_key(), "2") == b"RUNNING"
        assert not await store.job_finished("2")
        await c.hset(keys.job_state_key(), "2", "FINISHED")
        assert await store.job_finished("2")

    run(scenario)


def test_placement_group_cas_and_fields(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Any, store: RedisGcsStore) -> None:
        await c.hset(keys.placement_group_key(PG), mapping={
            "state": "PENDING", "bundles": json.dumps([{"CPU": 1}]), "strategy": "PACK", "job": "4"})
        await c.sadd(keys.placement_groups_index_key(), PG)
        pending, created, removed = (PlacementGroupState.PENDING, PlacementGroupState.CREATED,
                                     PlacementGroupState.REMOVED)
        txn = BundleTxn(1, ((0, NODE_A),))
        begin = {"txn_phase": "PREPARING", "txn": txn.to_json(), "txn_seq": "1"}
        assert await store.pg_cas(PG, {"state": "PENDING", "txn_phase": ""}, begin)
        assert not await store.pg_cas(PG, {"state": "PENDING", "txn_phase": ""}, begin)  # never twice
        [e] = await store.pgs([PG])
        assert (e.txn, e.txn_phase, e.txn_seq) == (txn, TxnPhase.PREPARING, 1)
        assert not await store.pg_cas(PG, {"txn_phase": "PREPARING", "txn_seq": "2"}, {"txn_phase": "PREPARED"})
        assert await store.pg_cas(PG, {"txn_phase": "PREPARING", "txn_seq": "1"}, {"txn_phase": "PREPARED"})
        assert (await store.pg(PG)).txn_phase == TxnPhase.PREPARED  # type: ignore[union-attr]
        assert await store.pg_cas(PG, {"state": "PENDING", "txn_phase": "PREPARED", "txn_seq": "1"},
                                  {"state": "CREATED", "nodes": json.dumps([NODE_A]), "txn_phase": "", "txn": ""})
        assert not await store.pg_state_cas(PG, pending, removed)
        assert await store.pg_state_cas(PG, created, removed)
        await store.mark_pg_returned(PG)
        assert await store.pg_ids() == [PG]
        [e] = await store.pgs([PG])
        assert (e.state, e.nodes, e.returned, e.job) == (removed, [NODE_A], True, 4)
        assert (e.txn, e.txn_phase, e.txn_seq) == (None, None, 1)
        assert await store.pg("dd" * 14) is None

    run(scenario)


def test_raylet_clients_of_an_unregistered_node(run: Callable[[Scenario], None]) -> None:
    async def scenario(c: Any, store: RedisGcsStore) -> None:
        raylets = GrpcRayletClients(c, "token")
        assert not await raylets.create_actor(NODE_A, A, 0, pb.TaskSpec())
        assert await raylets.prepare_bundles(NODE_A, PG, [0], ["{}"], 1) == "refused"
        assert not await raylets.commit_bundles(NODE_A, PG, [0], ["{}"], 1)
        assert await raylets.cancel_bundles(NODE_A, PG, [0], 1)  # nothing prepared there to give back
        assert await raylets.return_bundles(NODE_A, PG)  # nothing reserved there to give back
        await raylets.close()

    run(scenario)

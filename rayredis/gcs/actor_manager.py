"""GCS actor management: schedules PENDING/RESTARTING actors onto nodes by CAS, and reacts to node death."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from rayredis.actor_state import NEEDS_SCHEDULING, PLACED, ActorState, on_actor_process_died
from rayredis.common.resources import ResourceSet
from rayredis.gcs.scheduling import pick_node_for_actor
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store import keys

if TYPE_CHECKING:
    from rayredis.gcs.server import Gcs

logger = logging.getLogger(__name__)


def _s(v: bytes | None, default: str = "") -> str:
    return v.decode() if v is not None else default


class ActorManager:
    """Every decision is re-derived from the actor table, so a restarted GCS resumes where it was."""

    def __init__(self, gcs: Gcs):
        self.gcs = gcs
        self.locks: dict[str, asyncio.Lock] = {}
        #: (actor, attempt) whose CreateActor RPC this process already delivered.
        self.delivered: set[tuple[str, int]] = set()
        #: Actors seen DEAD. DEAD is terminal, so this cache never goes stale; rescans skip them.
        self.dead: set[str] = set()

    async def rescan(self) -> None:
        ids = await self.gcs.redis.primary.smembers(keys.actors_index_key())
        for raw in ids:
            aid = raw.decode()
            if aid not in self.dead:
                await self.handle(aid)

    async def handle(self, aid: str) -> None:
        lock = self.locks.setdefault(aid, asyncio.Lock())
        async with lock:
            try:
                await self._handle(aid)
            except Exception:
                logger.exception("handling actor %s failed", aid)

    async def _handle(self, aid: str) -> None:
        p = self.gcs.redis.primary
        entry = await p.hgetall(keys.actor_key(aid))
        if not entry:
            return
        state = _s(entry.get(b"state"))
        attempt = int(_s(entry.get(b"attempt"), "-1"))
        if state == ActorState.DEAD.value:
            self.locks.pop(aid, None)
            self.dead.add(aid)
            self.delivered = {d for d in self.delivered if d[0] != aid}
            return
        job_state = await p.hget(keys.job_state_key(), _s(entry.get(b"job"), "0"))
        if job_state == b"FINISHED" and _s(entry.get(b"detached")) != "1" and state in (
                ActorState.PENDING_CREATION.value, ActorState.RESTARTING.value, ActorState.SCHEDULED.value):
            await self.transition(aid, state, attempt, ActorState.DEAD,
                                  death_cause="The actor's owner job exited before it was created.")
            return
        if state in (s.value for s in NEEDS_SCHEDULING):
            await self._schedule(aid, entry, state, attempt)
        elif state in (s.value for s in PLACED):
            node = _s(entry.get(b"node"))
            if not await self.gcs.node_alive(node):
                await self.node_died_for(aid, entry)
            elif state == ActorState.SCHEDULED.value and (aid, attempt) not in self.delivered:
                await self._deliver(aid, entry, node, attempt)

    async def _schedule(self, aid: str, entry: dict[bytes, bytes], state: str, attempt: int) -> None:
        spec = pb.TaskSpec.FromString(entry[b"spec"])
        demand = ResourceSet.from_floats(dict(spec.resources))
        nodes = await self.gcs.alive_nodes()
        strat = spec.strategy
        node = pick_node_for_actor(nodes, demand,
                                   affinity=strat.node_id.hex() if strat.kind == pb.STRATEGY_NODE_AFFINITY else "",
                                   soft=strat.soft)
        if node is None:
            logger.info("actor %s: no feasible node for %s yet", aid, demand)
            return
        new_attempt = attempt + 1
        ok = await self.transition(aid, state, attempt, ActorState.SCHEDULED, node=node.node_id,
                                   attempt=new_attempt)
        if ok:
            entry[b"attempt"] = str(new_attempt).encode()
            await self._deliver(aid, entry, node.node_id, new_attempt)

    async def _deliver(self, aid: str, entry: dict[bytes, bytes], node: str, attempt: int) -> None:
        stub = await self.gcs.raylet_stub(node)
        if stub is None:
            return
        try:
            reply = await stub.CreateActor(pb.CreateActorRequest(
                actor_id=bytes.fromhex(aid), attempt=attempt,
                creation_spec=pb.TaskSpec.FromString(entry[b"spec"])), timeout=10.0)
            if reply.accepted:
                self.delivered.add((aid, attempt))
        except Exception as e:  # noqa: BLE001 - the periodic rescan retries
            logger.warning("CreateActor for %s on node %s failed: %s", aid, node[:12], e)

    async def node_died_for(self, aid: str, entry: dict[bytes, bytes]) -> None:
        d = on_actor_process_died(int(_s(entry.get(b"num_restarts"), "0")),
                                  int(_s(entry.get(b"max_restarts"), "0")), intentional=False,
                                  reason=f"The actor's node {_s(entry.get(b'node'))[:12]} died.")
        await self.transition(aid, _s(entry.get(b"state")), int(_s(entry.get(b"attempt"), "-1")), d.state,
                              num_restarts=d.num_restarts, death_cause=d.cause)

    async def transition(self, aid: str, cur_state: str, cur_attempt: int, new: ActorState,
                         **fields: Any) -> bool:
        """CAS the actor from (cur_state, cur_attempt) to ``new`` with ``fields``; False if it moved."""
        args: list[Any] = [cur_state, str(cur_attempt), keys.actor_channel(), aid, "state", new.value]
        for k, v in fields.items():
            args += [k, v]
        ok = await self.gcs.scripts.actor_transition(
            keys=[keys.actor_key(aid), keys.named_actors_key()], args=args)
        return bool(ok)

    async def on_node_dead(self, node: str) -> None:
        ids = await self.gcs.redis.primary.smembers(keys.actors_index_key())
        for raw in ids:
            aid = raw.decode()
            if aid in self.dead:
                continue
            entry = await self.gcs.redis.primary.hgetall(keys.actor_key(aid))
            if entry and _s(entry.get(b"node")) == node and _s(entry.get(b"state")) in (
                    s.value for s in PLACED):
                await self.node_died_for(aid, entry)

    async def on_job_finished(self, job: str) -> None:
        ids = await self.gcs.redis.primary.smembers(keys.actors_index_key())
        for raw in ids:
            aid = raw.decode()
            if aid in self.dead:
                continue
            job_of = await self.gcs.redis.primary.hget(keys.actor_key(aid), "job")
            if _s(job_of) == job:
                await self.handle(aid)


def node_view_args(info_json: bytes, load_json: bytes | None) -> dict[str, Any]:
    info = json.loads(info_json)
    load = json.loads(load_json) if load_json else {}
    return {
        "node_id": info["node_id"], "address": info["address"],
        # The heartbeat's totals include placement-group bundle resources added since registration.
        "total": ResourceSet.from_floats(load.get("total", info["resources"])),
        "available": ResourceSet.from_floats(load.get("available", info["resources"])),
        "queued": int(load.get("queued", 0)),
    }

"""GCS actor management: the I/O shell that reads actor entries, runs decide_actor and executes its actions."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence

from rayredis._private import events
from rayredis.actor_state import ActorState
from rayredis.gcs import decisions
from rayredis.gcs.decisions import ActorAction, ClusterView, Deliver, Forget, NoFeasibleNode, Transition
from rayredis.gcs.lease import LeaseLostError
from rayredis.gcs.raylet_clients import RayletClients
from rayredis.gcs.store import ActorStore
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store.tables import ActorEntry

logger = logging.getLogger(__name__)


def _has_work(entry: ActorEntry, view: ClusterView) -> bool:
    try:
        return bool(decisions.decide_actor(entry, view))
    except Exception:  # noqa: BLE001 - a malformed entry: handle() logs why, the rescan goes on
        return True


class ActorManager:
    """Every decision is re-derived from the actor table, so a restarted GCS resumes where it was."""

    def __init__(self, store: ActorStore, raylets: RayletClients):
        self.store = store
        self.raylets = raylets
        self.locks: dict[str, asyncio.Lock] = {}
        #: (actor, attempt) whose CreateActor RPC this process already delivered.
        self.delivered: set[tuple[str, int]] = set()
        #: Actors seen DEAD. DEAD is terminal, so this cache never goes stale; rescans skip them.
        self.dead: set[str] = set()

    async def _live_entries(self) -> list[ActorEntry]:
        """Every actor not known DEAD, in one round trip after the index read."""
        return await self.store.actors([a for a in await self.store.live_actor_ids() if a not in self.dead])

    def _with_delivered(self, view: ClusterView) -> ClusterView:
        return dataclasses.replace(view, delivered=frozenset(self.delivered))

    async def rescan(self) -> None:
        """Handle every actor that has something to do (each re-reads its entry under its lock)."""
        entries = await self._live_entries()
        if not entries:
            return
        view = self._with_delivered(await self.store.cluster_view(sorted({e.job for e in entries})))
        for e in entries:
            if _has_work(e, view):
                await self.handle(e.actor_id)

    async def handle(self, aid: str) -> None:
        lock = self.locks.setdefault(aid, asyncio.Lock())
        async with lock:
            try:
                await self._handle(aid)
            except LeaseLostError:
                logger.debug("actor %s: left to the next lease holder", aid)
            except Exception:
                logger.exception("handling actor %s failed", aid)

    async def _handle(self, aid: str) -> None:
        entry = await self.store.actor(aid)
        if entry is None:
            return
        view = ClusterView() if entry.state == ActorState.DEAD else await self.store.cluster_view([entry.job])
        await self.execute(entry, decisions.decide_actor(entry, self._with_delivered(view)))

    async def execute(self, entry: ActorEntry, actions: Sequence[ActorAction]) -> bool:
        """Run ``actions`` in order; the first that fails (lost CAS, undelivered RPC) ends them. True if all ran."""
        aid = entry.actor_id
        for action in actions:
            if isinstance(action, Transition):
                if not await self.transition(aid, action):
                    return False
            elif isinstance(action, Deliver):
                if not await self.raylets.create_actor(action.node, aid, action.attempt,
                                                       pb.TaskSpec.FromString(entry.spec)):
                    return False
                self.delivered.add((aid, action.attempt))
            elif isinstance(action, Forget):
                self.locks.pop(aid, None)
                self.dead.add(aid)
                self.delivered = {d for d in self.delivered if d[0] != aid}
            elif isinstance(action, NoFeasibleNode):
                logger.info("actor %s: no feasible node for %s yet", aid, action.demand)
        return True

    async def transition(self, aid: str, t: Transition) -> bool:
        """CAS the actor from (t.from_state, t.from_attempt) to t.to with t.fields; False if it moved."""
        return await self.store.actor_transition(aid, t.from_state, t.from_attempt,
                                                 {"state": t.to.value, **dict(t.fields)})

    async def prune(self, keep: int, most: int = 1000) -> int:
        """Forget the oldest DEAD actors beyond ``keep`` (their entries are deleted from Redis)."""
        n = await self.store.prune_dead_actors(keep, most)
        if n:
            logger.info("deleted the entries of %d dead actors (keeping the %d most recent)", n, keep)
        return n

    async def on_node_dead(self, node: str) -> None:
        """Restart (or let die) every actor placed on ``node``, which was just marked dead."""
        for aid, t in decisions.on_node_dead(await self._live_entries(), node):
            if await self.transition(aid, t):
                died = t.to == ActorState.DEAD
                events.record(events.Kind.ACTOR_DIED if died else events.Kind.ACTOR_RESTARTED,
                              f"actor {aid} {'died' if died else 'restarts'}: its node {node} died",
                              "ERROR" if died else "WARNING", actor_id=aid, node_id=node)

    async def on_job_finished(self, job: str) -> None:
        for e in await self._live_entries():
            if str(e.job) == job:
                await self.handle(e.actor_id)

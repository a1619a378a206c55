"""GCS placement-group management: the I/O shell that runs decide_pg and executes its all-or-nothing actions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Literal

from rayredis.gcs import decisions
from rayredis.gcs.decisions import (
    ClusterView,
    MarkCreated,
    MarkReturned,
    PgAction,
    RemoveWithJob,
    Replace,
    Reserve,
    ReturnBundles,
)
from rayredis.gcs.lease import LeaseLostError
from rayredis.gcs.raylet_clients import RayletClients
from rayredis.gcs.store import PlacementGroupStore
from rayredis.store.tables import PlacementGroupEntry, PlacementGroupState

logger = logging.getLogger(__name__)

#: How a list of actions ended (see :meth:`PlacementGroupManager.execute`).
Outcome = Literal["done", "stopped", "rehandle"]


def _has_work(entry: PlacementGroupEntry, view: ClusterView) -> bool:
    try:
        return bool(decisions.decide_pg(entry, view))
    except Exception:  # noqa: BLE001 - a malformed entry: handle() logs why, the rescan goes on
        return True


class PlacementGroupManager:
    """Every decision is re-derived from the placement-group table and the alive nodes."""

    def __init__(self, store: PlacementGroupStore, raylets: RayletClients):
        self.store = store
        self.raylets = raylets
        self.locks: dict[str, asyncio.Lock] = {}

    async def rescan(self) -> None:
        """Handle every group that has something to do (each re-reads its entry under its lock)."""
        entries = await self.store.pgs(await self.store.pg_ids())
        if not entries:
            return
        view = await self.store.cluster_view(sorted({e.job for e in entries}))
        for e in entries:
            if _has_work(e, view):
                await self.handle(e.pg_id)

    async def on_job_finished(self, job: str) -> None:
        """Non-detached placement groups end with their job, as in Ray (decide_pg removes them)."""
        for e in await self.store.pgs(await self.store.pg_ids()):
            if decisions.ends_with_job(e, job):
                await self.handle(e.pg_id)

    async def handle(self, pg: str) -> None:
        async with self.locks.setdefault(pg, asyncio.Lock()):
            try:
                await self._handle(pg)
            except LeaseLostError:
                logger.debug("placement group %s: left to the next lease holder", pg)
            except Exception:
                logger.exception("placement group %s", pg)

    async def _handle(self, pg: str) -> None:
        entry = await self.store.pg(pg)
        if entry is None:
            return
        view = await self.store.cluster_view([entry.job])
        if await self.execute(pg, decisions.decide_pg(entry, view)) == "rehandle":
            await self._handle(pg)

    async def execute(self, pg: str, actions: Sequence[PgAction]) -> Outcome:
        """Run ``actions`` in order; the first that fails ends them.

        Returns "done" when all ran, "stopped" when one failed, and "rehandle" when the group moved
        under us (lost the CREATED CAS: it was removed while reserving) and must be decided again.
        """
        for action in actions:
            if isinstance(action, Reserve):
                if not await self.reserve(pg, action):
                    return "stopped"
            elif isinstance(action, MarkCreated):
                applied = await self.store.pg_state_cas(pg, PlacementGroupState.PENDING, PlacementGroupState.CREATED)
                await self.store.set_pg_nodes(pg, action.placement)
                if not applied:  # removed meanwhile: give the reservation back
                    return "rehandle"
            elif isinstance(action, ReturnBundles):
                if not await self.return_bundles(pg, action):
                    return "stopped"
            elif isinstance(action, RemoveWithJob):
                await self.store.pg_state_cas(pg, action.from_state, PlacementGroupState.REMOVED)
                return "rehandle"  # removed (by us or meanwhile): decide again to return its bundles
            elif isinstance(action, Replace):
                entry = await self.store.pg(pg)
                if entry is None or entry.state != PlacementGroupState.CREATED:
                    return "rehandle"
                nodes = list(entry.nodes)
                for move in action.moves:
                    if not await self.raylets.reserve_bundles(move.node, pg, move.indexes, move.bundles_json):
                        return "stopped"  # retried by the next rescan, from what was recorded
                    for i in move.indexes:
                        nodes[i] = move.node
                    await self.store.set_pg_nodes(pg, nodes)
                logger.info("placement group %s: bundles of dead nodes re-placed on %s", pg,
                            sorted({m.node[:8] for m in action.moves}))
            elif isinstance(action, MarkReturned):
                await self.store.mark_pg_returned(pg)
                self.locks.pop(pg, None)
        return "done"

    async def reserve(self, pg: str, action: Reserve) -> bool:
        """All or nothing: when one node refuses, the nodes before it give their bundles back."""
        for i, req in enumerate(action.requests):
            if not await self.raylets.reserve_bundles(req.node, pg, req.indexes, req.bundles_json):
                await self.return_bundles(pg, decisions.rollback(action, i))
                return False
        return True

    async def return_bundles(self, pg: str, action: ReturnBundles) -> bool:
        """Every live node gives its bundles back (a dead node's went with it); False if one failed."""
        alive = (await self.store.cluster_view([])).alive
        ok = True
        for node in action.nodes:
            if node in alive and not await self.raylets.return_bundles(node, pg):
                ok = False
        return ok

"""GCS placement-group management: the I/O shell that runs decide_pg and executes its two-phase reservations."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Literal

from rayredis._private import events
from rayredis.gcs import decisions
from rayredis.gcs.decisions import (
    Abort,
    Begin,
    ClusterView,
    Commit,
    Finish,
    MarkPrepared,
    MarkReturned,
    NodeBundles,
    PgAction,
    Prepare,
    RemoveWithJob,
    ReturnBundles,
)
from rayredis.gcs.lease import LeaseLostError
from rayredis.gcs.raylet_clients import RayletClients
from rayredis.gcs.store import PlacementGroupStore
from rayredis.store.tables import BundleTxn, PlacementGroupEntry, PlacementGroupState, TxnPhase

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

        Returns "done" when all ran, "stopped" when one failed (the rescan retries), and "rehandle"
        when the group moved under us (a lost CAS: it was removed meanwhile) or a half-done
        reservation was cleared, so it must be decided again.
        """
        for action in actions:
            if isinstance(action, Begin):
                if not await self.store.pg_cas(pg, {"state": action.state.value, "txn_phase": ""}, {
                        "txn_phase": TxnPhase.PREPARING.value, "txn": action.txn.to_json(),
                        "txn_seq": str(action.txn.seq)}):
                    return "rehandle"
            elif isinstance(action, Prepare):
                if not await self.prepare(pg, action):
                    return "stopped"
            elif isinstance(action, MarkPrepared):
                if not await self.store.pg_cas(pg, _expect(action.state, TxnPhase.PREPARING, action.txn),
                                               {"txn_phase": TxnPhase.PREPARED.value}):
                    return "rehandle"  # removed while preparing: the removal returns what was prepared
            elif isinstance(action, Commit):
                if not await self.commit(pg, action):
                    return "stopped"
            elif isinstance(action, Finish):
                if not await self.store.pg_cas(pg, _expect(action.state, TxnPhase.PREPARED, action.txn), {
                        "state": PlacementGroupState.CREATED.value, "nodes": json.dumps(list(action.nodes)),
                        "txn_phase": "", "txn": ""}):
                    return "rehandle"
                moved = sorted({n[:8] for _, n in action.txn.moves})
                logger.info("placement group %s: %s on %s", pg,
                            "created" if action.state == PlacementGroupState.PENDING else "bundles re-placed", moved)
                if action.state != PlacementGroupState.PENDING:
                    events.record(events.Kind.PLACEMENT_GROUP_RESCHEDULED,
                                  f"placement group {pg}: bundles re-placed on {', '.join(moved)}", "WARNING",
                                  placement_group_id=pg, nodes=moved)
            elif isinstance(action, Abort):
                if not await self.cancel(pg, action.txn, action.requests):
                    return "stopped"
                return "rehandle"
            elif isinstance(action, ReturnBundles):
                if not await self.return_bundles(pg, action):
                    return "stopped"
            elif isinstance(action, RemoveWithJob):
                await self.store.pg_state_cas(pg, action.from_state, PlacementGroupState.REMOVED)
                return "rehandle"  # removed (by us or meanwhile): decide again to return its bundles
            elif isinstance(action, MarkReturned):
                await self.store.mark_pg_returned(pg)
                self.locks.pop(pg, None)
        return "done"

    async def prepare(self, pg: str, action: Prepare) -> bool:
        """Phase 1, node by node; when one does not prepare, cancel on those that may hold bundles."""
        for i, req in enumerate(action.requests):
            got = await self.raylets.prepare_bundles(req.node, pg, req.indexes, req.bundles_json, action.txn.seq)
            if got != "prepared":
                held = action.requests[:i + 1] if got == "unreachable" else action.requests[:i]
                await self.cancel(pg, action.txn, held)
                return False
        return True

    async def commit(self, pg: str, action: Commit) -> bool:
        """Phase 2 on every alive node; False if one of them did not commit."""
        alive = (await self.store.cluster_view([])).alive
        ok = True
        for req in action.requests:
            if req.node in alive and not await self.raylets.commit_bundles(req.node, pg, req.indexes,
                                                                           req.bundles_json, action.txn.seq):
                ok = False
        return ok

    async def cancel(self, pg: str, txn: BundleTxn, reqs: Sequence[NodeBundles]) -> bool:
        """Every alive node of ``reqs`` gives back what ``txn`` prepared there, then the reservation is
        cleared (if still PREPARING: a CAS); False, leaving it for the rescan, if one did not answer."""
        alive = (await self.store.cluster_view([])).alive
        ok = True
        for req in reqs:
            if req.node in alive and not await self.raylets.cancel_bundles(req.node, pg, req.indexes, txn.seq):
                ok = False
        if ok:
            await self.store.pg_cas(pg, {"txn_phase": TxnPhase.PREPARING.value, "txn_seq": str(txn.seq)},
                                    {"txn_phase": "", "txn": ""})
        return ok

    async def return_bundles(self, pg: str, action: ReturnBundles) -> bool:
        """Every live node gives its bundles back (a dead node's went with it); False if one failed."""
        alive = (await self.store.cluster_view([])).alive
        ok = True
        for node in action.nodes:
            if node in alive and not await self.raylets.return_bundles(node, pg):
                ok = False
        return ok


def _expect(state: PlacementGroupState, phase: TxnPhase, txn: BundleTxn) -> dict[str, str]:
    """The CAS condition of a step of ``txn``: the group in ``state`` with ``txn`` in ``phase``."""
    return {"state": state.value, "txn_phase": phase.value, "txn_seq": str(txn.seq)}

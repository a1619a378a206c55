"""A raylet restarted under its node ID: what its previous process left behind is removed or reported.

The previous process was SIGKILLed (or crashed) and its workers died with it (PR_SET_PDEATHSIG),
so before the new process serves anyone it (1) unlinks the shared-memory segments the old one left
in ``/dev/shm`` (the new one would reuse their names, and truncating a segment a driver still maps
would hand it zeros), and (2) reports the death of the actors the actor table still places on this
node with the same compare-and-set transitions the raylet uses when an actor's worker dies
(``LocalActors._lost``), so the GCS restarts them within ``max_restarts`` or marks them DEAD.
The drivers give the new process back their references, objects and tasks
(``rayredis/worker/owner_state.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rayredis.actor_state import PLACED, on_actor_process_died
from rayredis.store import tables
from rayredis.store.scripts import Scripts
from rayredis.store.tables import ActorEntry

logger = logging.getLogger(__name__)

SHM_DIR = "/dev/shm"
#: The CAS source states of the death write (those of a hosted actor's, as in ``actors.py``).
_PLACED = ",".join(s.value for s in PLACED)


@dataclass(frozen=True)
class ActorDeath:
    """One actor-table CAS: from SCHEDULED|ALIVE at ``attempt`` to ``fields``."""

    actor_id: str
    attempt: int
    fields: dict[str, Any]


def actor_deaths(entries: Iterable[ActorEntry], node_hex: str, reason: str) -> list[ActorDeath]:
    """The transitions that report the death of the actors placed on ``node_hex`` (sans-I/O)."""
    out = []
    for e in entries:
        if e.node != node_hex or e.state not in PLACED:
            continue
        d = on_actor_process_died(e.num_restarts, e.max_restarts, intentional=False, reason=reason)
        out.append(ActorDeath(e.actor_id, e.attempt, {
            "state": d.state.value, "num_restarts": d.num_restarts, "death_cause": d.cause}))
    return out


def leftover_segments(shm_prefix: str, shm_dir: str = SHM_DIR) -> list[str]:
    """Names of the segments in ``shm_dir`` that a raylet with ``shm_prefix`` created."""
    try:
        return sorted(n for n in os.listdir(shm_dir) if n.startswith(shm_prefix))
    except OSError:
        return []


def unlink_leftovers(shm_prefix: str, shm_dir: str = SHM_DIR) -> int:
    """Unlink what the previous process of this node left (mappings that drivers hold stay valid)."""
    n = 0
    for name in leftover_segments(shm_prefix, shm_dir):
        try:
            os.unlink(os.path.join(shm_dir, name))
            n += 1
        except OSError:
            pass
    return n


async def recover(primary: Any, scripts: Scripts, node_hex: str, shm_prefix: str) -> None:
    """Clean up after this node's previous raylet process and report its actors' deaths."""
    removed = unlink_leftovers(shm_prefix)
    reason = (f"The raylet of node {node_hex[:12]} was restarted, and the actor's worker process died with "
              "the previous one.")
    entries = await tables.aread_actors(primary, await tables.alive_actor_ids(primary))
    deaths = actor_deaths(entries, node_hex, reason)
    for d in deaths:
        ks, args = tables.actor_transition_call(d.actor_id, _PLACED, str(d.attempt), d.fields)
        applied = await scripts.actor_transition(keys=ks, args=args)
        logger.warning("actor %s died with the previous raylet: %s%s", d.actor_id, d.fields["state"],
                       "" if applied else " (already moved on)")
    logger.warning("restarted under node ID %s: removed %d leftover segments, reported %d actor deaths",
                   node_hex, removed, len(deaths))


@dataclass(frozen=True)
class BundleRestore:
    """Bundles of a CREATED group that its entry places on this node, to commit again."""

    pg_id: str
    indexes: list[int]
    bundles: list[dict[str, float]]
    txn: int


def committed_bundles(entries: Iterable[tables.PlacementGroupEntry], node_hex: str) -> list[BundleRestore]:
    """The bundles a restarted raylet must hold again (sans-I/O): those the entries of CREATED groups
    place on ``node_hex``. The previous process held them in memory only, and nothing else would
    commit them again: tasks for them would wait forever. (A reservation still in progress is the
    GCS's to finish: its commit takes the resources anew.)"""
    out = []
    for e in entries:
        if e.state != tables.PlacementGroupState.CREATED or e.returned or len(e.nodes) != len(e.bundles):
            continue
        idx = [i for i, n in enumerate(e.nodes) if n == node_hex]
        if idx:
            out.append(BundleRestore(e.pg_id, idx, [e.bundles[i] for i in idx], e.txn_seq))
    return out


async def restore_bundles(primary: Any, commit: Any, node_hex: str) -> int:
    """Commit again, through ``commit(pg_id, indexes, bundles, txn)`` (``Bundles.commit``), what
    :func:`committed_bundles` finds in the placement-group table; returns how many bundles."""
    entries = await tables.aread_placement_groups(primary, await tables.aplacement_group_ids(primary))
    n = 0
    for r in committed_bundles(entries, node_hex):
        ok, err = commit(bytes.fromhex(r.pg_id), r.indexes, r.bundles, r.txn)
        if ok:
            n += len(r.indexes)
        else:
            logger.error("placement group %s: could not hold bundles %s again after the restart: %s",
                         r.pg_id[:12], r.indexes, err)
    if n:
        logger.warning("restarted: holding again %d placement-group bundles this node's entries place here", n)
    return n

"""Pure GCS lifecycle decisions: an actor or placement-group entry plus a cluster view in, actions out.

Nothing here touches Redis, gRPC or asyncio. The managers (thin shells) read an entry and a
:class:`ClusterView`, call :func:`decide_actor` / :func:`decide_pg` and execute the returned actions
in order; an action that fails (a lost compare-and-set, a refused or failed RPC) ends the list, and
the next announcement or the periodic rescan re-derives the decision from the tables.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from rayredis.actor_state import NEEDS_SCHEDULING, PLACED, ActorState, on_actor_process_died
from rayredis.common.node_view import NodeView
from rayredis.common.resources import ResourceSet
from rayredis.gcs.scheduling import pick_node_for_actor, place_bundles
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store.tables import (
    ActorEntry,
    BundleTxn,
    NodeRecord,
    NodeState,
    PlacementGroupEntry,
    PlacementGroupState,
    TxnPhase,
    alive,
)

FieldValue = str | int


@dataclass(frozen=True)
class ClusterView:
    """What the decisions need to know about the cluster besides the entry itself."""

    #: Scheduler views of the registered ALIVE nodes.
    nodes: tuple[NodeView, ...] = ()
    #: Node ids whose ``rr:node_state`` is ALIVE (registered or not).
    alive: frozenset[str] = frozenset()
    #: Finished jobs (at least among the jobs of the entries being decided).
    finished_jobs: frozenset[int] = frozenset()
    #: (actor, attempt) whose CreateActor this GCS process already delivered.
    delivered: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def from_records(cls, records: Iterable[NodeRecord], finished_jobs: Collection[int] = (),
                     delivered: Collection[tuple[str, int]] = ()) -> ClusterView:
        recs = list(records)
        return cls(nodes=tuple(r.view() for r in alive(recs)),
                   alive=frozenset(r.node_id for r in recs if r.state == NodeState.ALIVE.value),
                   finished_jobs=frozenset(finished_jobs), delivered=frozenset(delivered))


# ---- actors --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """Compare-and-set the actor from (``from_state``, ``from_attempt``) to ``to`` with ``fields``."""

    from_state: ActorState
    from_attempt: int
    to: ActorState
    fields: tuple[tuple[str, FieldValue], ...] = ()


@dataclass(frozen=True)
class Deliver:
    """Send CreateActor for ``attempt`` to the raylet of ``node``."""

    node: str
    attempt: int


@dataclass(frozen=True)
class Forget:
    """The actor is DEAD (terminal): drop its lock and delivery records, skip it in rescans."""


@dataclass(frozen=True)
class NoFeasibleNode:
    """No alive node can host the actor yet; logged, retried when nodes change or by the rescan."""

    demand: ResourceSet


ActorAction = Transition | Deliver | Forget | NoFeasibleNode

#: States in which an actor of a finished (non-detached) job dies before it is created.
_DIES_WITH_JOB = (ActorState.PENDING_CREATION, ActorState.RESTARTING, ActorState.SCHEDULED)
JOB_EXITED_CAUSE = "The actor's owner job exited before it was created."


def node_died(entry: ActorEntry) -> Transition:
    """The actor's node died: restart it if it has restarts left, else it is DEAD."""
    d = on_actor_process_died(entry.num_restarts, entry.max_restarts, intentional=False,
                              reason=f"The actor's node {entry.node[:12]} died.")
    return Transition(entry.state, entry.attempt, d.state,
                      (("num_restarts", d.num_restarts), ("death_cause", d.cause)))


def schedule(entry: ActorEntry, nodes: Sequence[NodeView]) -> list[ActorAction]:
    """Pick a node; on success move to SCHEDULED with the next attempt, then deliver that attempt."""
    spec = pb.TaskSpec.FromString(entry.spec)
    demand = ResourceSet.from_floats(dict(spec.resources))
    strat = spec.strategy
    node = pick_node_for_actor(nodes, demand,
                               affinity=strat.node_id.hex() if strat.kind == pb.STRATEGY_NODE_AFFINITY else "",
                               soft=strat.soft)
    if node is None:
        return [NoFeasibleNode(demand)]
    attempt = entry.attempt + 1
    return [Transition(entry.state, entry.attempt, ActorState.SCHEDULED,
                       (("node", node.node_id), ("attempt", attempt))),
            Deliver(node.node_id, attempt)]


def decide_actor(entry: ActorEntry, view: ClusterView) -> list[ActorAction]:
    """The actions that move ``entry`` forward given ``view`` (empty: nothing to do)."""
    if entry.state == ActorState.DEAD:
        return [Forget()]
    if entry.job in view.finished_jobs and not entry.detached and entry.state in _DIES_WITH_JOB:
        return [Transition(entry.state, entry.attempt, ActorState.DEAD, (("death_cause", JOB_EXITED_CAUSE),))]
    if entry.state in NEEDS_SCHEDULING:
        return schedule(entry, view.nodes)
    if entry.state in PLACED:
        if entry.node not in view.alive:
            return [node_died(entry)]
        if entry.state == ActorState.SCHEDULED and (entry.actor_id, entry.attempt) not in view.delivered:
            return [Deliver(entry.node, entry.attempt)]
    return []


def on_node_dead(entries: Iterable[ActorEntry], node: str) -> list[tuple[str, Transition]]:
    """The restart-or-die transitions of the actors placed on ``node``, which just died."""
    return [(e.actor_id, node_died(e)) for e in entries if e.node == node and e.state in PLACED]


# ---- placement groups ----------------------------------------------------------------------------
#
# Bundles are reserved in two phases (as in Ray): every node prepares its bundles (sets the resources
# aside; no task can use them), and only once all are prepared does each commit them (exposes the
# bundle resources to tasks). The reservation is recorded in the group's entry before any raylet is
# asked and each phase change is a compare-and-set, so a GCS that dies half-way leaves a record
# the next one resolves: a PREPARED reservation is committed, a PREPARING one is cancelled.


@dataclass(frozen=True)
class NodeBundles:
    """The bundles of one reservation that one node holds (indexes and their JSON specs)."""

    node: str
    indexes: tuple[int, ...]
    bundles_json: tuple[str, ...]


@dataclass(frozen=True)
class Begin:
    """CAS-record ``txn`` as PREPARING, the group still in ``state`` with no reservation in progress."""

    state: PlacementGroupState
    txn: BundleTxn


@dataclass(frozen=True)
class Prepare:
    """Phase 1 on each node in turn; when one does not prepare, what the others may hold is cancelled
    and the reservation cleared (as :class:`Abort`), and the actions stop."""

    txn: BundleTxn
    requests: tuple[NodeBundles, ...]


@dataclass(frozen=True)
class MarkPrepared:
    """CAS ``txn`` PREPARING -> PREPARED (the group still in ``state``): from here on it is committed."""

    state: PlacementGroupState
    txn: BundleTxn


@dataclass(frozen=True)
class Commit:
    """Phase 2 on each alive node (a dead node's bundles are lost with it and re-placed once the group
    is CREATED); stops, to be retried, when an alive node does not commit."""

    txn: BundleTxn
    requests: tuple[NodeBundles, ...]


@dataclass(frozen=True)
class Finish:
    """CAS the group (still in ``state``, ``txn`` PREPARED) to CREATED with ``nodes`` (node per
    bundle), clearing the reservation."""

    state: PlacementGroupState
    txn: BundleTxn
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Abort:
    """``txn`` stayed PREPARING (its GCS died, or a cancel failed): cancel it on each alive node of
    ``requests``, then CAS-clear it."""

    txn: BundleTxn
    requests: tuple[NodeBundles, ...]


@dataclass(frozen=True)
class ReturnBundles:
    """Release the group's bundles (prepared or committed) on each of ``nodes``."""

    nodes: tuple[str, ...]


@dataclass(frozen=True)
class MarkReturned:
    """Record that every node gave the removed group's bundles back (terminal)."""


#: The states a group of a finished job is removed from.
REMOVABLE = (PlacementGroupState.PENDING, PlacementGroupState.CREATED)


@dataclass(frozen=True)
class RemoveWithJob:
    """The group's (non-detached) job finished: CAS it from ``from_state`` to REMOVED, as in Ray."""

    from_state: PlacementGroupState


PgAction = Begin | Prepare | MarkPrepared | Commit | Finish | Abort | ReturnBundles | MarkReturned | RemoveWithJob


def requests(bundles: Sequence[dict[str, float]], txn: BundleTxn) -> tuple[NodeBundles, ...]:
    """``txn``'s bundles grouped by node, nodes in order of first use."""
    by_node: dict[str, list[int]] = {}
    for i, n in txn.moves:
        by_node.setdefault(n, []).append(i)
    return tuple(NodeBundles(n, tuple(idxs), tuple(json.dumps(bundles[i]) for i in idxs))
                 for n, idxs in by_node.items())


def placed(entry: PlacementGroupEntry, txn: BundleTxn) -> tuple[str, ...]:
    """The group's node per bundle once ``txn`` is done."""
    nodes = list(entry.nodes) if len(entry.nodes) == len(entry.bundles) else [""] * len(entry.bundles)
    for i, n in txn.moves:
        nodes[i] = n
    return tuple(nodes)


def two_phase(entry: PlacementGroupEntry, moves: Sequence[tuple[int, str]]) -> list[PgAction]:
    """Reserve ``moves`` (bundle index, node) as the group's next reservation, from Begin to Finish."""
    txn = BundleTxn(entry.txn_seq + 1, tuple(moves))
    reqs = requests(entry.bundles, txn)
    return [Begin(entry.state, txn), Prepare(txn, reqs), MarkPrepared(entry.state, txn), Commit(txn, reqs),
            Finish(entry.state, txn, placed(entry, txn))]


def decide_pg(entry: PlacementGroupEntry, view: ClusterView) -> list[PgAction]:
    """The actions that move ``entry`` forward given ``view`` (empty: nothing to do)."""
    if entry.state in REMOVABLE and not entry.detached and entry.job in view.finished_jobs:
        return [RemoveWithJob(entry.state)]
    if entry.state == PlacementGroupState.REMOVED:
        if entry.returned:
            return []
        held = set(entry.nodes) | set(entry.txn.nodes() if entry.txn is not None else ())
        return [ReturnBundles(tuple(sorted(held))), MarkReturned()]
    if entry.txn is not None:  # a reservation left half-way
        reqs = requests(entry.bundles, entry.txn)
        if entry.txn_phase == TxnPhase.PREPARED:
            return [Commit(entry.txn, reqs), Finish(entry.state, entry.txn, placed(entry, entry.txn))]
        return [Abort(entry.txn, reqs)]
    if entry.state == PlacementGroupState.PENDING:
        placement = place_bundles(view.nodes, [ResourceSet.from_floats(b) for b in entry.bundles], entry.strategy)
        if placement is None:
            return []
        return two_phase(entry, list(enumerate(placement)))
    if entry.state == PlacementGroupState.CREATED and any(n not in view.alive for n in entry.nodes):
        return _replace_lost(entry, view)
    return []


def _replace_lost(entry: PlacementGroupEntry, view: ClusterView) -> list[PgAction]:
    """New nodes for the bundles of dead nodes, keeping the strategy with the surviving bundles
    (STRICT_SPREAD avoids their nodes, STRICT_PACK joins them), reserved in two phases like the
    group's first placement; empty while nothing fits."""
    lost = [i for i, n in enumerate(entry.nodes) if n not in view.alive]
    survivors = {n for n in entry.nodes if n in view.alive}
    nodes = list(view.nodes)
    if entry.strategy == "STRICT_SPREAD":
        nodes = [n for n in nodes if n.node_id not in survivors]
    elif entry.strategy == "STRICT_PACK" and survivors:
        nodes = [n for n in nodes if n.node_id in survivors]
    placement = place_bundles(nodes, [ResourceSet.from_floats(entry.bundles[i]) for i in lost], entry.strategy)
    if placement is None:
        return []
    return two_phase(entry, list(zip(lost, placement)))


def ends_with_job(entry: PlacementGroupEntry, job: str) -> bool:
    """Non-detached placement groups end with their job, as in Ray."""
    return str(entry.job) == job and not entry.detached

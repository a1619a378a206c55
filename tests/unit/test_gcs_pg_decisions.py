"""The GCS's pure placement-group decisions (two-phase reservations) and the manager shell with fake collaborators."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping, Sequence

import pytest

from rayredis.common.node_view import NodeView
from rayredis.common.resources import ResourceSet
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
    Prepare,
    RemoveWithJob,
    ReturnBundles,
    decide_pg,
)
from rayredis.gcs.placement_groups import PlacementGroupManager
from rayredis.gcs.raylet_clients import Prepared
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store.tables import BundleTxn, PlacementGroupEntry, PlacementGroupState, TxnPhase

PG = "cc" * 14
NODE_A = "0a" * 28
NODE_B = "0b" * 28
NODE_C = "0c" * 28

PENDING, CREATED, REMOVED = PlacementGroupState.PENDING, PlacementGroupState.CREATED, PlacementGroupState.REMOVED


def nv(node_id: str, cpus: float = 4.0) -> NodeView:
    r = ResourceSet.from_floats({"CPU": cpus})
    return NodeView(node_id, f"addr-{node_id[:4]}", r, r)


def view(*nodes: NodeView) -> ClusterView:
    return ClusterView(nodes=tuple(nodes), alive=frozenset(n.node_id for n in nodes))


def group(state: PlacementGroupState, bundles: Sequence[dict[str, float]] = ({"CPU": 1.0},), strategy: str = "PACK",
          nodes: Sequence[str] = (), returned: bool = False, job: int = 1, detached: bool = False,
          txn: BundleTxn | None = None, phase: TxnPhase | None = None) -> PlacementGroupEntry:
    return PlacementGroupEntry(pg_id=PG, state=state, bundles=[dict(b) for b in bundles], strategy=strategy,
                               nodes=list(nodes), returned=returned, job=job, detached=detached, txn=txn,
                               txn_phase=phase, txn_seq=txn.seq if txn is not None else 0)


def nb(node: str, *indexes: int, cpu: float = 1.0) -> NodeBundles:
    return NodeBundles(node, indexes, tuple(json.dumps({"CPU": cpu}) for _ in indexes))


# ---- decisions ---------------------------------------------------------------------------------------


def test_pending_is_reserved_in_two_phases() -> None:
    e = group(PENDING, [{"CPU": 1.0}, {"CPU": 2.0}], "PACK")
    txn = BundleTxn(1, ((0, NODE_A), (1, NODE_A)))
    reqs = (NodeBundles(NODE_A, (0, 1), (json.dumps({"CPU": 1.0}), json.dumps({"CPU": 2.0}))),)
    assert decide_pg(e, view(nv(NODE_A))) == [
        Begin(PENDING, txn), Prepare(txn, reqs), MarkPrepared(PENDING, txn), Commit(txn, reqs),
        Finish(PENDING, txn, (NODE_A, NODE_A))]


def test_pending_spread_prepares_per_node_in_order_of_first_use() -> None:
    e = group(PENDING, [{"CPU": 1.0}, {"CPU": 1.0}, {"CPU": 3.0}], "SPREAD")
    actions = decide_pg(e, view(nv(NODE_A), nv(NODE_B)))
    assert [type(a) for a in actions] == [Begin, Prepare, MarkPrepared, Commit, Finish]
    prepare, finish = actions[1], actions[4]
    assert isinstance(prepare, Prepare) and isinstance(finish, Finish)
    assert len(finish.nodes) == 3 and set(finish.nodes) == {NODE_A, NODE_B}
    assert sorted(i for r in prepare.requests for i in r.indexes) == [0, 1, 2]
    for r in prepare.requests:
        assert all(finish.nodes[i] == r.node for i in r.indexes)
        assert [json.loads(b) for b in r.bundles_json] == [e.bundles[i] for i in r.indexes]
    assert [r.node for r in prepare.requests] == list(dict.fromkeys(finish.nodes))


def test_the_next_reservation_has_the_next_seq() -> None:
    e = dataclasses.replace(group(PENDING), txn_seq=4)
    begin = decide_pg(e, view(nv(NODE_A)))[0]
    assert isinstance(begin, Begin) and begin.txn == BundleTxn(5, ((0, NODE_A),))


def test_pending_unplaceable_waits() -> None:
    assert decide_pg(group(PENDING, [{"GPU": 1.0}]), view(nv(NODE_A))) == []
    assert decide_pg(group(PENDING), view()) == []
    assert decide_pg(group(PENDING, [{"CPU": 1.0}] * 2, "STRICT_SPREAD"), view(nv(NODE_A))) == []


def test_a_reservation_left_prepared_is_committed_and_one_left_preparing_is_aborted() -> None:
    txn = BundleTxn(3, ((0, NODE_A), (1, NODE_B)))
    two = [{"CPU": 1.0}] * 2
    prepared = group(PENDING, two, "STRICT_SPREAD", txn=txn, phase=TxnPhase.PREPARED)
    # (even with NODE_B dead: its bundle is lost with it, and re-placed once the group is CREATED)
    assert decide_pg(prepared, view(nv(NODE_A))) == [
        Commit(txn, (nb(NODE_A, 0), nb(NODE_B, 1))), Finish(PENDING, txn, (NODE_A, NODE_B))]
    preparing = dataclasses.replace(prepared, txn_phase=TxnPhase.PREPARING)
    assert decide_pg(preparing, view(nv(NODE_A), nv(NODE_B))) == [Abort(txn, (nb(NODE_A, 0), nb(NODE_B, 1)))]


def test_removed_returns_each_node_once_then_marks_returned() -> None:
    e = group(REMOVED, [{"CPU": 1.0}] * 3, nodes=[NODE_B, NODE_A, NODE_B])
    assert decide_pg(e, view(nv(NODE_A))) == [ReturnBundles((NODE_A, NODE_B)), MarkReturned()]


def test_removed_during_a_reservation_returns_its_nodes_too() -> None:
    txn = BundleTxn(2, ((1, NODE_C),))
    e = group(REMOVED, [{"CPU": 1.0}] * 2, nodes=[NODE_A, NODE_B], txn=txn, phase=TxnPhase.PREPARING)
    assert decide_pg(e, view(nv(NODE_A), nv(NODE_C))) == [ReturnBundles((NODE_A, NODE_B, NODE_C)), MarkReturned()]


def test_removed_before_any_reservation_only_marks_returned() -> None:
    assert decide_pg(group(REMOVED), view(nv(NODE_A))) == [ReturnBundles(()), MarkReturned()]


def test_removed_and_returned_or_created_needs_nothing() -> None:
    assert decide_pg(group(REMOVED, nodes=[NODE_A], returned=True), view(nv(NODE_A))) == []
    assert decide_pg(group(CREATED, nodes=[NODE_A]), view(nv(NODE_A))) == []


def test_groups_end_with_their_job_unless_detached() -> None:
    assert decisions.ends_with_job(group(CREATED, job=3), "3")
    assert not decisions.ends_with_job(group(CREATED, job=3), "4")
    assert not decisions.ends_with_job(group(CREATED, job=3, detached=True), "3")




@pytest.mark.parametrize("state", [PENDING, CREATED])
def test_a_group_of_a_finished_job_is_removed(state: PlacementGroupState) -> None:
    finished = dataclasses.replace(view(nv(NODE_A)), finished_jobs=frozenset({7}))
    assert decide_pg(group(state, nodes=[NODE_A], job=7), finished) == [RemoveWithJob(state)]
    # a detached group outlives its job; another job's group is untouched
    assert decide_pg(group(CREATED, nodes=[NODE_A], job=7, detached=True), finished) == []
    assert decide_pg(group(CREATED, nodes=[NODE_A], job=8), finished) == []


def test_bundles_of_a_dead_node_move_in_two_phases_keeping_the_strategy() -> None:
    two = [{"CPU": 1.0}, {"CPU": 1.0}]
    spread = group(CREATED, two, "STRICT_SPREAD", nodes=(NODE_A, NODE_B))
    # NODE_B died; NODE_A still hosts bundle 0, so STRICT_SPREAD may only use NODE_C.
    txn = BundleTxn(1, ((1, NODE_C),))
    assert decide_pg(spread, view(nv(NODE_A), nv(NODE_C))) == [
        Begin(CREATED, txn), Prepare(txn, (nb(NODE_C, 1),)), MarkPrepared(CREATED, txn),
        Commit(txn, (nb(NODE_C, 1),)), Finish(CREATED, txn, (NODE_A, NODE_C))]
    assert decide_pg(spread, view(nv(NODE_A))) == []  # nothing fits yet: wait for a node
    pack = group(CREATED, two, "STRICT_PACK", nodes=(NODE_A, NODE_A))
    [_, prepare, *_, finish] = decide_pg(pack, view(nv(NODE_B)))
    assert prepare == Prepare(BundleTxn(1, ((0, NODE_B), (1, NODE_B))), (nb(NODE_B, 0, 1),))
    assert isinstance(finish, Finish) and finish.nodes == (NODE_B, NODE_B)
    assert decide_pg(group(CREATED, two, "SPREAD", nodes=(NODE_A, NODE_B)), view(nv(NODE_A), nv(NODE_B))) == []


# ---- the shell ---------------------------------------------------------------------------------------


def raw_of(e: PlacementGroupEntry) -> dict[str, str]:
    return {"state": e.state.value, "bundles": json.dumps(e.bundles), "strategy": e.strategy,
            "nodes": json.dumps(e.nodes), "job": str(e.job), "detached": "1" if e.detached else "0",
            "returned": "1" if e.returned else "", "txn": e.txn.to_json() if e.txn is not None else "",
            "txn_phase": e.txn_phase.value if e.txn_phase is not None else "", "txn_seq": str(e.txn_seq)}


class FakePgStore:
    """An in-memory placement-group hash whose CAS really compares; parsed as Redis's would be."""

    def __init__(self, entry: PlacementGroupEntry, view: ClusterView):
        self.raw = raw_of(entry)
        self.view = view
        self.calls: list[tuple[object, ...]] = []
        #: Applied right before the CAS that sets this ``txn_phase`` (a concurrent remove_placement_group).
        self.remove_before_phase: str | None = None

    @property
    def entry(self) -> PlacementGroupEntry:
        e = PlacementGroupEntry.from_redis(PG, {k.encode(): v.encode() for k, v in self.raw.items()})
        assert e is not None
        return e

    async def cluster_view(self, jobs: Sequence[int] | None = None) -> ClusterView:
        return self.view

    async def pg_ids(self) -> list[str]:
        return [PG]

    async def pg(self, pg_id: str) -> PlacementGroupEntry | None:
        return self.entry if pg_id == PG else None

    async def pgs(self, pg_ids: Sequence[str]) -> list[PlacementGroupEntry]:
        return [self.entry] if PG in pg_ids else []

    async def pg_state_cas(self, pg_id: str, old: PlacementGroupState, new: PlacementGroupState) -> bool:
        return await self.pg_cas(pg_id, {"state": old.value}, {"state": new.value})

    async def pg_cas(self, pg_id: str, expect: Mapping[str, str], fields: Mapping[str, str]) -> bool:
        if self.remove_before_phase is not None and fields.get("txn_phase") == self.remove_before_phase:
            self.raw["state"] = REMOVED.value
        ok = all(self.raw.get(k, "") == v for k, v in expect.items())
        self.calls.append(("cas", fields.get("state") or fields.get("txn_phase") or "clear", ok))
        if ok:
            self.raw.update(fields)
        return ok

    async def mark_pg_returned(self, pg_id: str) -> None:
        self.calls.append(("returned",))
        self.raw["returned"] = "1"


class FakeRaylets:
    """Records every call; each node prepares, commits and cancels unless told otherwise."""

    def __init__(self, prepare: Mapping[str, Prepared] | None = None, fail_commit: Sequence[str] = (),
                 fail_cancel: Sequence[str] = (), fail_return: Sequence[str] = ()):
        self.prepare = dict(prepare or {})
        self.fail_commit, self.fail_cancel, self.fail_return = set(fail_commit), set(fail_cancel), set(fail_return)
        self.calls: list[tuple[object, ...]] = []

    async def create_actor(self, node: str, actor_id: str, attempt: int, spec: pb.TaskSpec) -> bool:
        raise AssertionError("not a placement-group call")

    async def prepare_bundles(self, node: str, pg_id: str, indexes: Sequence[int], bundles_json: Sequence[str],
                              txn: int) -> Prepared:
        self.calls.append(("prepare", node, tuple(indexes), txn))
        return self.prepare.get(node, "prepared")

    async def commit_bundles(self, node: str, pg_id: str, indexes: Sequence[int], bundles_json: Sequence[str],
                             txn: int) -> bool:
        self.calls.append(("commit", node, tuple(indexes), txn))
        return node not in self.fail_commit

    async def cancel_bundles(self, node: str, pg_id: str, indexes: Sequence[int], txn: int) -> bool:
        self.calls.append(("cancel", node, tuple(indexes), txn))
        return node not in self.fail_cancel

    async def return_bundles(self, node: str, pg_id: str) -> bool:
        self.calls.append(("return", node))
        return node not in self.fail_return

    def commits(self) -> list[tuple[object, ...]]:
        return [c for c in self.calls if c[0] == "commit"]


def spread_group() -> PlacementGroupEntry:
    return group(PENDING, [{"CPU": 1.0}, {"CPU": 1.0}], "STRICT_SPREAD")


def test_shell_prepares_everything_before_committing_then_marks_created() -> None:
    store, raylets = FakePgStore(spread_group(), view(nv(NODE_A), nv(NODE_B))), FakeRaylets()
    asyncio.run(PlacementGroupManager(store, raylets).handle(PG))
    assert raylets.calls == [("prepare", NODE_A, (0,), 1), ("prepare", NODE_B, (1,), 1),
                             ("commit", NODE_A, (0,), 1), ("commit", NODE_B, (1,), 1)]
    assert store.calls == [("cas", "PREPARING", True), ("cas", "PREPARED", True), ("cas", "CREATED", True)]
    e = store.entry
    assert (e.state, e.nodes, e.txn, e.txn_phase, e.txn_seq) == (CREATED, [NODE_A, NODE_B], None, None, 1)


def test_shell_refused_prepare_cancels_the_earlier_ones_and_commits_nothing() -> None:
    store = FakePgStore(spread_group(), view(nv(NODE_A), nv(NODE_B)))
    raylets = FakeRaylets(prepare={NODE_B: "refused"})
    asyncio.run(PlacementGroupManager(store, raylets).handle(PG))
    assert raylets.calls == [("prepare", NODE_A, (0,), 1), ("prepare", NODE_B, (1,), 1), ("cancel", NODE_A, (0,), 1)]
    e = store.entry
    assert (e.state, e.txn, e.txn_phase) == (PENDING, None, None)


def test_shell_a_dead_but_undetected_node_never_lets_a_bundle_be_committed() -> None:
    """Bug G: NODE_B is dead but still in the view; its prepare fails, so does its cancel. The
    reservation stays PREPARING (NODE_A's bundle is cancelled) until NODE_B is declared dead."""
    store = FakePgStore(spread_group(), view(nv(NODE_A), nv(NODE_B)))
    raylets = FakeRaylets(prepare={NODE_B: "unreachable"}, fail_cancel=[NODE_B])
    mgr = PlacementGroupManager(store, raylets)
    asyncio.run(mgr.handle(PG))
    assert raylets.calls == [("prepare", NODE_A, (0,), 1), ("prepare", NODE_B, (1,), 1),
                             ("cancel", NODE_A, (0,), 1), ("cancel", NODE_B, (1,), 1)]
    assert store.entry.txn_phase == TxnPhase.PREPARING
    asyncio.run(mgr.rescan())  # still not declared dead: the abort is retried, nothing else
    assert raylets.calls[4:] == [("cancel", NODE_A, (0,), 1), ("cancel", NODE_B, (1,), 1)]
    store.view = view(nv(NODE_A))  # declared dead: its bundles went with it
    asyncio.run(mgr.rescan())
    assert raylets.calls[6:] == [("cancel", NODE_A, (0,), 1)]
    e = store.entry
    assert (e.state, e.txn, e.txn_seq) == (PENDING, None, 1)  # and one node cannot hold two STRICT_SPREAD bundles
    assert raylets.commits() == []


def test_shell_new_gcs_commits_a_reservation_left_prepared() -> None:
    txn = BundleTxn(1, ((0, NODE_A), (1, NODE_B)))
    store = FakePgStore(group(PENDING, [{"CPU": 1.0}] * 2, "STRICT_SPREAD", txn=txn, phase=TxnPhase.PREPARED),
                        view(nv(NODE_A), nv(NODE_B)))
    raylets = FakeRaylets()
    mgr = PlacementGroupManager(store, raylets)
    asyncio.run(mgr.rescan())
    assert (store.entry.state, store.entry.nodes) == (CREATED, [NODE_A, NODE_B])
    asyncio.run(mgr.rescan())  # (the GCS also handles the group on its CREATED announcement)
    assert raylets.calls == [("commit", NODE_A, (0,), 1), ("commit", NODE_B, (1,), 1)]
    assert (store.entry.state, store.entry.nodes, store.entry.txn) == (CREATED, [NODE_A, NODE_B], None)


def test_shell_new_gcs_cancels_a_reservation_left_preparing_then_places_the_group_anew() -> None:
    txn = BundleTxn(1, ((0, NODE_A), (1, NODE_B)))
    store = FakePgStore(group(PENDING, [{"CPU": 1.0}] * 2, "STRICT_SPREAD", txn=txn, phase=TxnPhase.PREPARING),
                        view(nv(NODE_A), nv(NODE_B)))
    raylets = FakeRaylets()
    asyncio.run(PlacementGroupManager(store, raylets).rescan())
    assert raylets.calls == [("cancel", NODE_A, (0,), 1), ("cancel", NODE_B, (1,), 1),
                             ("prepare", NODE_A, (0,), 2), ("prepare", NODE_B, (1,), 2),
                             ("commit", NODE_A, (0,), 2), ("commit", NODE_B, (1,), 2)]
    assert (store.entry.state, store.entry.txn_seq) == (CREATED, 2)


def test_shell_steps_of_a_reservation_apply_once() -> None:
    """A second GCS (or a retry) running the same steps after they were applied changes nothing."""
    store, raylets = FakePgStore(spread_group(), view(nv(NODE_A), nv(NODE_B))), FakeRaylets()
    actions = decide_pg(store.entry, store.view)
    mgr = PlacementGroupManager(store, raylets)
    assert asyncio.run(mgr.execute(PG, actions)) == "done"
    calls = len(raylets.calls)
    assert asyncio.run(mgr.execute(PG, actions)) == "rehandle"  # Begin's CAS is refused
    assert asyncio.run(mgr.execute(PG, actions[2:])) == "rehandle"  # so is MarkPrepared's
    assert asyncio.run(mgr.execute(PG, actions[4:])) == "rehandle"  # and Finish's
    assert len(raylets.calls) == calls and store.entry.state == CREATED


def test_shell_removed_while_preparing_returns_the_prepared_bundles_without_committing() -> None:
    store, raylets = FakePgStore(spread_group(), view(nv(NODE_A), nv(NODE_B))), FakeRaylets()
    store.remove_before_phase = "PREPARED"
    mgr = PlacementGroupManager(store, raylets)
    asyncio.run(mgr.handle(PG))
    assert raylets.calls[2:] == [("return", NODE_A), ("return", NODE_B)] and raylets.commits() == []
    assert store.entry.returned and PG not in mgr.locks


def test_shell_removed_after_prepared_gives_the_committed_reservation_back() -> None:
    store, raylets = FakePgStore(spread_group(), view(nv(NODE_A), nv(NODE_B))), FakeRaylets()
    store.remove_before_phase = ""  # right before Finish clears the phase
    asyncio.run(PlacementGroupManager(store, raylets).handle(PG))
    assert raylets.calls[4:] == [("return", NODE_A), ("return", NODE_B)] and store.entry.returned


def test_shell_failed_commit_keeps_the_reservation_prepared_for_the_rescan() -> None:
    store = FakePgStore(spread_group(), view(nv(NODE_A), nv(NODE_B)))
    raylets = FakeRaylets(fail_commit=[NODE_B])
    mgr = PlacementGroupManager(store, raylets)
    asyncio.run(mgr.handle(PG))
    assert (store.entry.state, store.entry.txn_phase) == (PENDING, TxnPhase.PREPARED)
    raylets.fail_commit.clear()
    asyncio.run(mgr.rescan())
    assert raylets.commits()[2:] == [("commit", NODE_A, (0,), 1), ("commit", NODE_B, (1,), 1)]
    assert store.entry.state == CREATED


def test_shell_commit_skips_a_dead_node_whose_bundle_is_then_replaced() -> None:
    txn = BundleTxn(1, ((0, NODE_A), (1, NODE_B)))
    store = FakePgStore(group(PENDING, [{"CPU": 1.0}] * 2, "STRICT_SPREAD", txn=txn, phase=TxnPhase.PREPARED),
                        view(nv(NODE_A), nv(NODE_C)))
    raylets = FakeRaylets()
    mgr = PlacementGroupManager(store, raylets)
    asyncio.run(mgr.rescan())
    assert (store.entry.state, store.entry.nodes) == (CREATED, [NODE_A, NODE_B])
    asyncio.run(mgr.rescan())  # (the GCS also handles the group on its CREATED announcement)
    assert raylets.calls == [("commit", NODE_A, (0,), 1),
                             ("prepare", NODE_C, (1,), 2), ("commit", NODE_C, (1,), 2)]
    assert (store.entry.state, store.entry.nodes) == (CREATED, [NODE_A, NODE_C])


def test_shell_replacement_refused_leaves_the_group_as_it_was() -> None:
    store = FakePgStore(group(CREATED, [{"CPU": 1.0}] * 2, "STRICT_SPREAD", nodes=[NODE_A, NODE_B]),
                        view(nv(NODE_A), nv(NODE_C)))
    raylets = FakeRaylets(prepare={NODE_C: "refused"})
    asyncio.run(PlacementGroupManager(store, raylets).handle(PG))
    assert raylets.calls == [("prepare", NODE_C, (1,), 1)]
    e = store.entry
    assert (e.state, e.nodes, e.txn, e.txn_seq) == (CREATED, [NODE_A, NODE_B], None, 1)


def test_shell_failed_return_leaves_the_group_unreturned_for_the_rescan() -> None:
    store = FakePgStore(group(REMOVED, [{"CPU": 1.0}] * 2, nodes=[NODE_A, NODE_B]), view(nv(NODE_A), nv(NODE_B)))
    raylets = FakeRaylets(fail_return=[NODE_A])
    mgr = PlacementGroupManager(store, raylets)
    asyncio.run(mgr.handle(PG))
    # A's failure does not keep B's bundles: B returns them, the group stays unreturned for A.
    assert raylets.calls == [("return", NODE_A), ("return", NODE_B)] and store.calls == []
    assert not store.entry.returned
    raylets.fail_return.clear()
    asyncio.run(mgr.rescan())
    assert raylets.calls[2:] == [("return", NODE_A), ("return", NODE_B)] and store.entry.returned
    asyncio.run(mgr.rescan())  # returned: nothing left to do
    assert len(raylets.calls) == 4


def test_shell_bundles_of_a_dead_node_count_as_returned() -> None:
    store = FakePgStore(group(REMOVED, [{"CPU": 1.0}] * 2, nodes=[NODE_A, NODE_B]), view(nv(NODE_A)))
    raylets = FakeRaylets(fail_return=[NODE_B])  # NODE_B is dead: it is not even asked
    asyncio.run(PlacementGroupManager(store, raylets).handle(PG))
    assert raylets.calls == [("return", NODE_A)] and store.entry.returned


def test_shell_job_end_removes_the_group_then_returns_its_bundles() -> None:
    finished = dataclasses.replace(view(nv(NODE_A)), finished_jobs=frozenset({7}))
    store = FakePgStore(group(CREATED, nodes=[NODE_A], job=7), finished)
    raylets = FakeRaylets()
    asyncio.run(PlacementGroupManager(store, raylets).on_job_finished("7"))
    assert store.calls == [("cas", "REMOVED", True), ("returned",)]
    assert raylets.calls == [("return", NODE_A)]


def test_shell_rescan_removes_the_group_of_a_job_that_ended_while_no_gcs_ran() -> None:
    """The job's FINISHED message was missed: the rescan still removes its group and returns it."""
    finished = dataclasses.replace(view(nv(NODE_A)), finished_jobs=frozenset({7}))
    store = FakePgStore(group(CREATED, nodes=[NODE_A], job=7), finished)
    raylets = FakeRaylets()
    asyncio.run(PlacementGroupManager(store, raylets).rescan())
    assert store.calls == [("cas", "REMOVED", True), ("returned",)]
    assert raylets.calls == [("return", NODE_A)]

"""The GCS's pure placement-group decisions (decide_pg, rollback) and the manager shell with fake collaborators."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence

import pytest

from rayredis.common.node_view import NodeView
from rayredis.common.resources import ResourceSet
from rayredis.gcs import decisions
from rayredis.gcs.decisions import (
    ClusterView,
    MarkCreated,
    MarkReturned,
    NodeBundles,
    RemoveWithJob,
    Reserve,
    ReturnBundles,
    decide_pg,
)
from rayredis.gcs.placement_groups import PlacementGroupManager
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store.tables import PlacementGroupEntry, PlacementGroupState

PG = "cc" * 14
NODE_A = "0a" * 28
NODE_B = "0b" * 28

PENDING, CREATED, REMOVED = PlacementGroupState.PENDING, PlacementGroupState.CREATED, PlacementGroupState.REMOVED


def nv(node_id: str, cpus: float = 4.0) -> NodeView:
    r = ResourceSet.from_floats({"CPU": cpus})
    return NodeView(node_id, f"addr-{node_id[:4]}", r, r)


def view(*nodes: NodeView) -> ClusterView:
    return ClusterView(nodes=tuple(nodes), alive=frozenset(n.node_id for n in nodes))


def group(state: PlacementGroupState, bundles: Sequence[dict[str, float]] = ({"CPU": 1.0},), strategy: str = "PACK",
          nodes: Sequence[str] = (), returned: bool = False, job: int = 1, detached: bool = False
          ) -> PlacementGroupEntry:
    return PlacementGroupEntry(pg_id=PG, state=state, bundles=[dict(b) for b in bundles], strategy=strategy,
                               nodes=list(nodes), returned=returned, job=job, detached=detached)


# ---- decisions ---------------------------------------------------------------------------------------


def test_pending_placed_on_one_node_reserves_then_marks_created() -> None:
    e = group(PENDING, [{"CPU": 1.0}, {"CPU": 2.0}], "PACK")
    assert decide_pg(e, view(nv(NODE_A))) == [
        Reserve((NodeBundles(NODE_A, (0, 1), (json.dumps({"CPU": 1.0}), json.dumps({"CPU": 2.0}))),)),
        MarkCreated((NODE_A, NODE_A))]


def test_pending_spread_reserves_per_node_in_order_of_first_use() -> None:
    e = group(PENDING, [{"CPU": 1.0}, {"CPU": 1.0}, {"CPU": 3.0}], "SPREAD")
    [reserve, created] = decide_pg(e, view(nv(NODE_A), nv(NODE_B)))
    assert isinstance(reserve, Reserve) and isinstance(created, MarkCreated)
    by_node = {r.node: r.indexes for r in reserve.requests}
    assert len(created.placement) == 3 and set(created.placement) == {NODE_A, NODE_B}
    assert sorted(i for idxs in by_node.values() for i in idxs) == [0, 1, 2]
    for r in reserve.requests:
        assert all(created.placement[i] == r.node for i in r.indexes)
        assert [json.loads(b) for b in r.bundles_json] == [e.bundles[i] for i in r.indexes]
    assert [r.node for r in reserve.requests] == list(dict.fromkeys(created.placement))


def test_pending_unplaceable_waits() -> None:
    assert decide_pg(group(PENDING, [{"GPU": 1.0}]), view(nv(NODE_A))) == []
    assert decide_pg(group(PENDING), view()) == []
    assert decide_pg(group(PENDING, [{"CPU": 1.0}] * 2, "STRICT_SPREAD"), view(nv(NODE_A))) == []


def test_removed_returns_each_node_once_then_marks_returned() -> None:
    e = group(REMOVED, [{"CPU": 1.0}] * 3, nodes=[NODE_B, NODE_A, NODE_B])
    assert decide_pg(e, view(nv(NODE_A))) == [ReturnBundles((NODE_A, NODE_B)), MarkReturned()]


def test_removed_before_any_reservation_only_marks_returned() -> None:
    assert decide_pg(group(REMOVED), view(nv(NODE_A))) == [ReturnBundles(()), MarkReturned()]


def test_removed_and_returned_or_created_needs_nothing() -> None:
    assert decide_pg(group(REMOVED, nodes=[NODE_A], returned=True), view(nv(NODE_A))) == []
    assert decide_pg(group(CREATED, nodes=[NODE_A]), view(nv(NODE_A))) == []


def test_rollback_returns_what_the_earlier_nodes_reserved() -> None:
    reserve = Reserve((NodeBundles(NODE_A, (0,), ("{}",)), NodeBundles(NODE_B, (1,), ("{}",)),
                       NodeBundles("0c" * 28, (2,), ("{}",))))
    assert decisions.rollback(reserve, 0) == ReturnBundles(())
    assert decisions.rollback(reserve, 2) == ReturnBundles((NODE_A, NODE_B))


def test_groups_end_with_their_job_unless_detached() -> None:
    assert decisions.ends_with_job(group(CREATED, job=3), "3")
    assert not decisions.ends_with_job(group(CREATED, job=3), "4")
    assert not decisions.ends_with_job(group(CREATED, job=3, detached=True), "3")


# ---- the shell ---------------------------------------------------------------------------------------


class FakePgStore:
    """An in-memory placement-group table whose CAS really compares."""

    def __init__(self, entry: PlacementGroupEntry, view: ClusterView):
        self.entry = entry
        self.view = view
        self.calls: list[tuple[object, ...]] = []
        #: Applied right before the PENDING -> CREATED CAS (a concurrent remove_placement_group).
        self.remove_before_created = False

    async def cluster_view(self, jobs: Sequence[int] | None = None) -> ClusterView:
        return self.view

    async def pg_ids(self) -> list[str]:
        return [self.entry.pg_id]

    async def pg(self, pg_id: str) -> PlacementGroupEntry | None:
        return self.entry if pg_id == self.entry.pg_id else None

    async def pgs(self, pg_ids: Sequence[str]) -> list[PlacementGroupEntry]:
        return [self.entry] if self.entry.pg_id in pg_ids else []

    async def pg_state_cas(self, pg_id: str, old: PlacementGroupState, new: PlacementGroupState) -> bool:
        if self.remove_before_created and new == CREATED:
            self.entry = dataclasses.replace(self.entry, state=REMOVED)
        self.calls.append(("cas", old, new))
        if self.entry.state != old:
            return False
        self.entry = dataclasses.replace(self.entry, state=new)
        return True

    async def set_pg_nodes(self, pg_id: str, placement: Sequence[str]) -> None:
        self.calls.append(("nodes", tuple(placement)))
        self.entry = dataclasses.replace(self.entry, nodes=list(placement))

    async def mark_pg_returned(self, pg_id: str) -> None:
        self.calls.append(("returned",))
        self.entry = dataclasses.replace(self.entry, returned=True)


class FakeRaylets:
    def __init__(self, refuse: Sequence[str] = (), fail_return: Sequence[str] = ()):
        self.refuse = set(refuse)
        self.fail_return = set(fail_return)
        self.calls: list[tuple[object, ...]] = []

    async def create_actor(self, node: str, actor_id: str, attempt: int, spec: pb.TaskSpec) -> bool:
        raise AssertionError("not a placement-group call")

    async def reserve_bundles(self, node: str, pg_id: str, indexes: Sequence[int],
                              bundles_json: Sequence[str]) -> bool:
        self.calls.append(("reserve", node, tuple(indexes)))
        return node not in self.refuse

    async def return_bundles(self, node: str, pg_id: str) -> bool:
        self.calls.append(("return", node))
        return node not in self.fail_return


def spread_group() -> PlacementGroupEntry:
    return group(PENDING, [{"CPU": 1.0}, {"CPU": 1.0}], "STRICT_SPREAD")


def test_shell_reserves_everything_then_marks_created_and_records_nodes() -> None:
    store, raylets = FakePgStore(spread_group(), view(nv(NODE_A), nv(NODE_B))), FakeRaylets()
    asyncio.run(PlacementGroupManager(store, raylets).handle(PG))
    assert raylets.calls == [("reserve", NODE_A, (0,)), ("reserve", NODE_B, (1,))]
    assert store.calls == [("cas", PENDING, CREATED), ("nodes", (NODE_A, NODE_B))]
    assert store.entry.state == CREATED and store.entry.nodes == [NODE_A, NODE_B]


def test_shell_rolls_back_when_one_node_refuses() -> None:
    store, raylets = FakePgStore(spread_group(), view(nv(NODE_A), nv(NODE_B))), FakeRaylets(refuse=[NODE_B])
    asyncio.run(PlacementGroupManager(store, raylets).handle(PG))
    assert raylets.calls == [("reserve", NODE_A, (0,)), ("reserve", NODE_B, (1,)), ("return", NODE_A)]
    assert store.calls == [] and store.entry.state == PENDING


def test_shell_removed_while_reserving_gives_the_reservation_back() -> None:
    store, raylets = FakePgStore(spread_group(), view(nv(NODE_A), nv(NODE_B))), FakeRaylets()
    store.remove_before_created = True
    mgr = PlacementGroupManager(store, raylets)
    asyncio.run(mgr.handle(PG))
    assert store.calls == [("cas", PENDING, CREATED), ("nodes", (NODE_A, NODE_B)), ("returned",)]
    assert raylets.calls[2:] == [("return", NODE_A), ("return", NODE_B)]
    assert store.entry.returned and PG not in mgr.locks


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
    assert store.calls == [("cas", CREATED, REMOVED), ("returned",)]
    assert raylets.calls == [("return", NODE_A)]


def test_shell_rescan_removes_the_group_of_a_job_that_ended_while_no_gcs_ran() -> None:
    """The job's FINISHED message was missed: the rescan still removes its group and returns it."""
    finished = dataclasses.replace(view(nv(NODE_A)), finished_jobs=frozenset({7}))
    store = FakePgStore(group(CREATED, nodes=[NODE_A], job=7), finished)
    raylets = FakeRaylets()
    asyncio.run(PlacementGroupManager(store, raylets).rescan())
    assert store.calls == [("cas", CREATED, REMOVED), ("returned",)]
    assert raylets.calls == [("return", NODE_A)]


@pytest.mark.parametrize("state", [PENDING, CREATED])
def test_a_group_of_a_finished_job_is_removed(state: PlacementGroupState) -> None:
    finished = dataclasses.replace(view(nv(NODE_A)), finished_jobs=frozenset({7}))
    assert decide_pg(group(state, nodes=[NODE_A], job=7), finished) == [RemoveWithJob(state)]
    # a detached group outlives its job; another job's group is untouched
    assert decide_pg(group(CREATED, nodes=[NODE_A], job=7, detached=True), finished) == []
    assert decide_pg(group(CREATED, nodes=[NODE_A], job=8), finished) == []


NODE_C = "0c" * 28


def test_bundles_of_a_dead_node_move_keeping_the_strategy() -> None:
    from rayredis.gcs.decisions import Replace

    two = [{"CPU": 1.0}, {"CPU": 1.0}]
    spread = group(CREATED, two, "STRICT_SPREAD", nodes=(NODE_A, NODE_B))
    # NODE_B died; NODE_A still hosts bundle 0, so STRICT_SPREAD may only use NODE_C.
    assert decide_pg(spread, view(nv(NODE_A), nv(NODE_C))) == [
        Replace((NodeBundles(NODE_C, (1,), (json.dumps({"CPU": 1.0}),)),))]
    assert decide_pg(spread, view(nv(NODE_A))) == []  # nothing fits yet: wait for a node
    pack = group(CREATED, two, "STRICT_PACK", nodes=(NODE_A, NODE_A))
    assert decide_pg(pack, view(nv(NODE_B))) == [
        Replace((NodeBundles(NODE_B, (0,), (json.dumps({"CPU": 1.0}),)),
                 NodeBundles(NODE_B, (1,), (json.dumps({"CPU": 1.0}),))))]
    assert decide_pg(group(CREATED, two, "SPREAD", nodes=(NODE_A, NODE_B)), view(nv(NODE_A), nv(NODE_B))) == []


def test_bundle_reservations_are_per_bundle() -> None:
    from rayredis.raylet.bundles import Bundles
    from rayredis.raylet.scheduler import LocalScheduler

    s = LocalScheduler(ResourceSet.from_floats({"CPU": 4}), 4)
    b = Bundles(s)
    pg = bytes.fromhex(PG)
    assert b.reserve(pg, [0], [{"CPU": 1.0}]) == (True, "")
    assert b.reserve(pg, [0], [{"CPU": 1.0}]) == (True, "")  # a retry reserves nothing more
    assert b.reserve(pg, [1], [{"CPU": 2.0}]) == (True, "")  # another bundle of the group moves in
    assert s.available.get("CPU") == ResourceSet.from_floats({"CPU": 1}).get("CPU")
    b.release(pg)
    assert s.available == s.total == ResourceSet.from_floats({"CPU": 4})

"""The GCS's pure actor lifecycle decisions (decide_actor) and the actor manager shell with fake collaborators."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence

import pytest

from rayredis.actor_state import ActorState
from rayredis.common.node_view import NodeView
from rayredis.common.resources import ResourceSet
from rayredis.gcs import decisions
from rayredis.gcs.actor_manager import ActorManager
from rayredis.gcs.decisions import (
    JOB_EXITED_CAUSE,
    ActorAction,
    ClusterView,
    Deliver,
    FieldValue,
    Forget,
    NoFeasibleNode,
    Transition,
    decide_actor,
)
from rayredis.gcs.raylet_clients import Prepared
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store.tables import ActorEntry, NodeInfo, NodeLoad, NodeRecord

A = "aa" * 16
NODE_A = "0a" * 28
NODE_B = "0b" * 28


def spec(cpus: float = 1.0, affinity: str = "", soft: bool = False) -> bytes:
    s = pb.TaskSpec(resources={"CPU": cpus})
    if affinity:
        s.strategy.kind = pb.STRATEGY_NODE_AFFINITY
        s.strategy.node_id = bytes.fromhex(affinity)
        s.strategy.soft = soft
    return s.SerializeToString()


def actor(state: ActorState, *, node: str = "", attempt: int = -1, job: int = 1, detached: bool = False,
          num_restarts: int = 0, max_restarts: int = 0, cpus: float = 1.0, affinity: str = "",
          soft: bool = False) -> ActorEntry:
    return ActorEntry(actor_id=A, state=state, spec=spec(cpus, affinity, soft), node=node, attempt=attempt,
                      job=job, detached=detached, num_restarts=num_restarts, max_restarts=max_restarts)


def nv(node_id: str, cpus: float = 4.0, available: float | None = None, queued: int = 0) -> NodeView:
    return NodeView(node_id, f"addr-{node_id[:4]}", ResourceSet.from_floats({"CPU": cpus}),
                    ResourceSet.from_floats({"CPU": cpus if available is None else available}), queued)


def view(*nodes: NodeView, finished: Sequence[int] = (), delivered: Sequence[tuple[str, int]] = (),
         extra_alive: Sequence[str] = ()) -> ClusterView:
    return ClusterView(nodes=tuple(nodes), alive=frozenset([n.node_id for n in nodes] + list(extra_alive)),
                       finished_jobs=frozenset(finished), delivered=frozenset(delivered))


def scheduled_to(node: str, attempt: int, from_state: ActorState, from_attempt: int) -> list[object]:
    return [Transition(from_state, from_attempt, ActorState.SCHEDULED, (("node", node), ("attempt", attempt))),
            Deliver(node, attempt)]


# ---- the cluster view ------------------------------------------------------------------------------


def test_view_from_records_keeps_registered_alive_nodes_and_all_alive_ids() -> None:
    info = NodeInfo(node_id=NODE_A, address="h:1", node_ip="h", resources={"CPU": 2.0})
    load = NodeLoad(available={"CPU": 1.0}, total={"CPU": 3.0}, queued=2)
    recs = [NodeRecord(NODE_A, "ALIVE", info, load), NodeRecord(NODE_B, "DEAD", info),
            NodeRecord("0c" * 28, "ALIVE", None)]
    v = ClusterView.from_records(recs, {3}, [(A, 0)])
    assert [n.node_id for n in v.nodes] == [NODE_A]
    assert v.nodes[0].total == ResourceSet.from_floats({"CPU": 3.0})  # the heartbeat's totals
    assert v.nodes[0].available == ResourceSet.from_floats({"CPU": 1.0}) and v.nodes[0].queued == 2
    assert v.alive == {NODE_A, "0c" * 28}
    assert v.finished_jobs == {3} and v.delivered == {(A, 0)}


# ---- scheduling -------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [ActorState.PENDING_CREATION, ActorState.RESTARTING])
def test_needs_scheduling_picks_a_node_with_the_next_attempt_then_delivers(state: ActorState) -> None:
    e = actor(state, attempt=2)
    assert decide_actor(e, view(nv(NODE_A))) == scheduled_to(NODE_A, 3, state, 2)


def test_first_attempt_is_zero() -> None:
    assert decide_actor(actor(ActorState.PENDING_CREATION), view(nv(NODE_A))) == scheduled_to(
        NODE_A, 0, ActorState.PENDING_CREATION, -1)


def test_prefers_the_node_with_room_now() -> None:
    nodes = (nv(NODE_A, available=0.0), nv(NODE_B))
    assert decide_actor(actor(ActorState.PENDING_CREATION), view(*nodes))[1] == Deliver(NODE_B, 0)


@pytest.mark.parametrize("nodes", [(), (nv(NODE_A, cpus=1.0),)])
def test_no_feasible_node_is_reported_not_transitioned(nodes: tuple[NodeView, ...]) -> None:
    got = decide_actor(actor(ActorState.PENDING_CREATION, cpus=2.0), view(*nodes))
    assert got == [NoFeasibleNode(ResourceSet.from_floats({"CPU": 2.0}))]


def test_hard_affinity_waits_for_its_node() -> None:
    e = actor(ActorState.PENDING_CREATION, affinity=NODE_B, soft=False)
    assert decide_actor(e, view(nv(NODE_A))) == [NoFeasibleNode(ResourceSet.from_floats({"CPU": 1.0}))]
    assert decide_actor(e, view(nv(NODE_A), nv(NODE_B, available=0.0, queued=9)))[1] == Deliver(NODE_B, 0)


def test_soft_affinity_falls_back_to_another_node() -> None:
    e = actor(ActorState.PENDING_CREATION, affinity=NODE_B, soft=True)
    assert decide_actor(e, view(nv(NODE_A)))[1] == Deliver(NODE_A, 0)
    assert decide_actor(e, view(nv(NODE_A), nv(NODE_B, available=0.0)))[1] == Deliver(NODE_B, 0)


# ---- placed actors ---------------------------------------------------------------------------------


def test_scheduled_on_alive_node_is_delivered_once() -> None:
    e = actor(ActorState.SCHEDULED, node=NODE_A, attempt=4)
    assert decide_actor(e, view(nv(NODE_A))) == [Deliver(NODE_A, 4)]
    assert decide_actor(e, view(nv(NODE_A), delivered=[(A, 4)])) == []
    # An older attempt's delivery does not count for this one.
    assert decide_actor(e, view(nv(NODE_A), delivered=[(A, 3)])) == [Deliver(NODE_A, 4)]


def test_alive_on_alive_node_needs_nothing() -> None:
    assert decide_actor(actor(ActorState.ALIVE, node=NODE_A, attempt=0), view(nv(NODE_A))) == []


def test_liveness_is_the_node_state_not_the_registration() -> None:
    e = actor(ActorState.ALIVE, node=NODE_A, attempt=0)
    assert decide_actor(e, view(extra_alive=[NODE_A])) == []


@pytest.mark.parametrize("state", [ActorState.SCHEDULED, ActorState.ALIVE])
def test_node_death_without_restarts_is_death(state: ActorState) -> None:
    e = actor(state, node=NODE_A, attempt=1, max_restarts=0)
    [t] = decide_actor(e, view(nv(NODE_B), delivered=[(A, 1)]))
    assert isinstance(t, Transition)
    assert (t.from_state, t.from_attempt, t.to) == (state, 1, ActorState.DEAD)
    fields = dict(t.fields)
    assert fields["num_restarts"] == 0
    assert fields["death_cause"] == (f"The actor's node {NODE_A[:12]} died. The actor has no restarts left "
                                     "(max_restarts=0).")
    assert list(fields) == ["num_restarts", "death_cause"]


@pytest.mark.parametrize(("num", "max_", "to", "after"), [
    (0, 2, ActorState.RESTARTING, 1), (1, 2, ActorState.RESTARTING, 2), (2, 2, ActorState.DEAD, 2),
    (7, -1, ActorState.RESTARTING, 8)])
def test_node_death_restart_accounting(num: int, max_: int, to: ActorState, after: int) -> None:
    e = actor(ActorState.ALIVE, node=NODE_A, attempt=0, num_restarts=num, max_restarts=max_)
    [t] = decide_actor(e, view())
    assert isinstance(t, Transition) and t.to == to and dict(t.fields)["num_restarts"] == after


def test_on_node_dead_picks_only_placed_actors_of_that_node() -> None:
    entries = [dataclasses.replace(actor(ActorState.ALIVE, node=NODE_A, attempt=0), actor_id="01"),
               dataclasses.replace(actor(ActorState.SCHEDULED, node=NODE_A, attempt=2), actor_id="02"),
               dataclasses.replace(actor(ActorState.ALIVE, node=NODE_B, attempt=0), actor_id="03"),
               dataclasses.replace(actor(ActorState.RESTARTING, node=NODE_A, attempt=1), actor_id="04")]
    got = decisions.on_node_dead(entries, NODE_A)
    assert [(aid, t.from_state, t.from_attempt) for aid, t in got] == [
        ("01", ActorState.ALIVE, 0), ("02", ActorState.SCHEDULED, 2)]


# ---- owner job and death ---------------------------------------------------------------------------


@pytest.mark.parametrize("state", [ActorState.PENDING_CREATION, ActorState.RESTARTING, ActorState.SCHEDULED])
def test_finished_job_kills_actors_not_yet_created(state: ActorState) -> None:
    e = actor(state, node=NODE_A if state == ActorState.SCHEDULED else "", attempt=0, job=5)
    assert decide_actor(e, view(nv(NODE_A), finished=[5])) == [
        Transition(state, 0, ActorState.DEAD, (("death_cause", JOB_EXITED_CAUSE),))]


def test_finished_job_leaves_alive_and_detached_actors_and_other_jobs() -> None:
    alive_actor = actor(ActorState.ALIVE, node=NODE_A, attempt=0, job=5)
    assert decide_actor(alive_actor, view(nv(NODE_A), finished=[5])) == []
    detached = actor(ActorState.PENDING_CREATION, job=5, detached=True)
    assert decide_actor(detached, view(nv(NODE_A), finished=[5]))[1] == Deliver(NODE_A, 0)
    other_job = actor(ActorState.PENDING_CREATION, job=6)
    assert decide_actor(other_job, view(nv(NODE_A), finished=[5]))[1] == Deliver(NODE_A, 0)


def test_dead_is_forgotten_whatever_the_view() -> None:
    e = actor(ActorState.DEAD, node=NODE_A, attempt=3, job=5)
    assert decide_actor(e, view()) == [Forget()]
    assert decide_actor(e, view(nv(NODE_A), finished=[5], delivered=[(A, 3)])) == [Forget()]


# ---- the shell ---------------------------------------------------------------------------------------


class FakeActorStore:
    def __init__(self, entries: dict[str, ActorEntry], view: ClusterView, cas_ok: bool = True):
        self.entries = entries
        self.view = view
        self.cas_ok = cas_ok
        self.calls: list[tuple[object, ...]] = []

    async def cluster_view(self, jobs: Sequence[int] | None = None) -> ClusterView:
        return self.view

    async def live_actor_ids(self) -> list[str]:
        return sorted(a for a, e in self.entries.items() if e.state != ActorState.DEAD)

    async def actor(self, actor_id: str) -> ActorEntry | None:
        return self.entries.get(actor_id)

    async def actors(self, actor_ids: Sequence[str]) -> list[ActorEntry]:
        self.calls.append(("actors", tuple(actor_ids)))
        return [self.entries[a] for a in actor_ids if a in self.entries]

    async def actor_transition(self, actor_id: str, from_state: ActorState, from_attempt: int,
                               fields: Mapping[str, FieldValue]) -> bool:
        self.calls.append(("cas", actor_id, from_state, from_attempt, dict(fields)))
        return self.cas_ok


class FakeRaylets:
    def __init__(self, accept: bool = True):
        self.accept = accept
        self.calls: list[tuple[object, ...]] = []

    async def create_actor(self, node: str, actor_id: str, attempt: int, spec: pb.TaskSpec) -> bool:
        self.calls.append(("create", node, actor_id, attempt, dict(spec.resources)))
        return self.accept

    async def prepare_bundles(self, node: str, pg_id: str, indexes: Sequence[int], bundles_json: Sequence[str],
                              txn: int) -> Prepared:
        raise AssertionError("not an actor call")

    async def commit_bundles(self, node: str, pg_id: str, indexes: Sequence[int], bundles_json: Sequence[str],
                             txn: int) -> bool:
        raise AssertionError("not an actor call")

    async def cancel_bundles(self, node: str, pg_id: str, indexes: Sequence[int], txn: int) -> bool:
        raise AssertionError("not an actor call")

    async def return_bundles(self, node: str, pg_id: str) -> bool:
        raise AssertionError("not an actor call")


def test_shell_schedules_then_delivers_and_remembers_delivery() -> None:
    store = FakeActorStore({A: actor(ActorState.PENDING_CREATION)}, view(nv(NODE_A)))
    raylets = FakeRaylets()
    mgr = ActorManager(store, raylets)
    asyncio.run(mgr.handle(A))
    assert store.calls == [("cas", A, ActorState.PENDING_CREATION, -1,
                            {"state": "SCHEDULED", "node": NODE_A, "attempt": 0})]
    assert raylets.calls == [("create", NODE_A, A, 0, {"CPU": 1.0})]
    assert mgr.delivered == {(A, 0)}


def test_shell_stops_on_a_lost_cas() -> None:
    store = FakeActorStore({A: actor(ActorState.RESTARTING, attempt=1)}, view(nv(NODE_A)), cas_ok=False)
    raylets = FakeRaylets()
    mgr = ActorManager(store, raylets)
    asyncio.run(mgr.handle(A))
    assert [c[0] for c in store.calls] == ["cas"]
    assert raylets.calls == [] and mgr.delivered == set()


def test_shell_refused_delivery_is_retried_by_the_next_handle() -> None:
    store = FakeActorStore({A: actor(ActorState.SCHEDULED, node=NODE_A, attempt=2)}, view(nv(NODE_A)))
    raylets = FakeRaylets(accept=False)
    mgr = ActorManager(store, raylets)
    asyncio.run(mgr.handle(A))
    assert mgr.delivered == set()
    raylets.accept = True
    asyncio.run(mgr.handle(A))
    asyncio.run(mgr.handle(A))  # delivered now: nothing more to send
    assert [c[3] for c in raylets.calls] == [2, 2]
    assert mgr.delivered == {(A, 2)} and store.calls == []


def test_shell_forgets_dead_actors_and_rescans_skip_them() -> None:
    store = FakeActorStore({A: actor(ActorState.DEAD, node=NODE_A, attempt=2)}, view(nv(NODE_A)))
    mgr = ActorManager(store, FakeRaylets())
    mgr.delivered = {(A, 1), (A, 2), ("bb" * 16, 0)}
    asyncio.run(mgr.handle(A))
    assert mgr.dead == {A} and A not in mgr.locks and mgr.delivered == {("bb" * 16, 0)}
    asyncio.run(mgr.rescan())
    assert store.calls == [("actors", ())]


def test_shell_node_death_reads_entries_once_and_transitions_that_nodes_actors() -> None:
    b = "bb" * 16
    store = FakeActorStore({A: actor(ActorState.ALIVE, node=NODE_A, attempt=0, max_restarts=1),
                            b: dataclasses.replace(actor(ActorState.ALIVE, node=NODE_B, attempt=0), actor_id=b)},
                           view(nv(NODE_B)))
    asyncio.run(ActorManager(store, FakeRaylets()).on_node_dead(NODE_A))
    assert store.calls == [("actors", (A, b)),
                           ("cas", A, ActorState.ALIVE, 0,
                            {"state": "RESTARTING", "num_restarts": 1,
                             "death_cause": f"The actor's node {NODE_A[:12]} died."})]


def test_shell_rescan_survives_a_malformed_entry(caplog: pytest.LogCaptureFixture) -> None:
    bad, good = "01" * 16, "02" * 16
    entries = {bad: ActorEntry(actor_id=bad, state=ActorState.PENDING_CREATION, spec=b"\xff\xff\xff"),
               good: dataclasses.replace(actor(ActorState.PENDING_CREATION), actor_id=good)}
    store = FakeActorStore(entries, view(nv(NODE_A)))
    raylets = FakeRaylets()
    asyncio.run(ActorManager(store, raylets).rescan())
    assert f"handling actor {bad} failed" in caplog.text
    assert [c[2] for c in raylets.calls] == [good]


def test_shell_executes_actions_in_order_across_collaborators() -> None:
    store = FakeActorStore({A: actor(ActorState.PENDING_CREATION)}, view(nv(NODE_A)))
    raylets = FakeRaylets()
    raylets.calls = store.calls  # one log for both, to see the order
    e = actor(ActorState.PENDING_CREATION, attempt=0)
    mgr = ActorManager(store, raylets)
    to_b = Transition(ActorState.PENDING_CREATION, 0, ActorState.SCHEDULED, (("node", NODE_B), ("attempt", 1)))
    actions: list[ActorAction] = [to_b, Deliver(NODE_B, 1), NoFeasibleNode(ResourceSet())]
    assert asyncio.run(mgr.execute(e, actions))
    assert [c[0] for c in store.calls] == ["cas", "create"]
    store.cas_ok = False
    assert not asyncio.run(mgr.execute(e, actions))
    assert [c[0] for c in store.calls] == ["cas", "create", "cas"]  # the lost CAS ended the list

"""The sans-I/O parts of a raylet restart under the same node ID: telling a restart apart, what the
other nodes drop, what the restarted raylet reports, and what a driver gives back (no processes)."""

from __future__ import annotations

import os
from typing import Any

from rayredis import exceptions, ids, serialization
from rayredis.actor_state import ActorState
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet import recovery, restarts
from rayredis.store.tables import ActorEntry
from rayredis.worker.owner_state import REPUT_MAX_BYTES, OwnedTask, OwnerState, returns_of
from tests.unit.test_multinode_core import A, B, FabricNode, check, cluster, result
from tests.unit.test_node_manager import assignments, task_spec, value_of

# ---- Incarnations ------------------------------------------------------------------------------


def test_a_restart_is_seen_once_whether_the_registration_or_the_link_shows_it_first() -> None:
    inc = restarts.Incarnations()
    assert not inc.registration(A, 10, 1.0)  # first sight
    assert not inc.link_epoch(A, 111)
    assert not inc.registration(A, 10, 1.0) and not inc.link_epoch(A, 111)
    # The registration first: then the new process's first epoch is not a second restart.
    assert inc.registration(A, 11, 2.0)
    assert not inc.link_epoch(A, 222)
    # The link first: then the registration change is that same restart.
    assert inc.link_epoch(A, 333)
    assert not inc.registration(A, 12, 3.0)
    assert not inc.link_epoch(A, 333)
    inc.forget(A)
    assert not inc.registration(A, 13, 4.0)


# ---- the other nodes -----------------------------------------------------------------------------


def _restart(fabric: Any, old: FabricNode) -> FabricNode:
    """A fresh core under the same node ID (what a restarted raylet process has)."""
    new = FabricNode(fabric, old.nm.node_id, old.totals["CPU"], {k: v for k, v in old.totals.items() if k != "CPU"})
    new.nm.view.update({n.nm.node_id: ("addr", n.totals, n.totals, 0) for n in fabric.nodes.values()})
    return new


def test_the_node_that_ran_a_restarted_owners_tasks_keeps_the_running_one_and_drops_the_queued_one() -> None:
    fabric, (a, b) = cluster((A, 1, {}), (B, 1, {"w": 2}))
    driver, wb = a.connect(True), b.connect(False)
    t1, t2 = task_spec("t1", max_retries=3), task_spec("t2", max_retries=3)
    for t in (t1, t2):
        t.resources["w"] = 1
    a.send(driver, submit=[t1, t2])
    (run,) = assignments(wb)
    assert run.spec.task_id == t1.task_id  # t2 waits on B for the CPU
    a2 = _restart(fabric, a)
    restarts.drop_old_process(b.nm, A)
    assert t2.task_id not in b.nm.tasks and t1.task_id in b.nm.tasks
    check(b)
    # The driver gives the new process its tasks again (a new attempt each).
    d2 = a2.connect(True)
    again = []
    for t in (t1, t2):
        n = pb.TaskSpec()
        n.CopyFrom(t)
        n.attempt = 4
        again.append(n)
    a2.send(d2, submit=again)
    result(b, wb, t1, "one")  # the old run answers for the resubmission (a duplicate on B)
    (nxt,) = assignments(wb)
    assert nxt.spec.task_id == t2.task_id and nxt.spec.attempt == 4
    result(b, wb, again[1], "two")
    oids = [ids.object_id_for_return(t.task_id, 1) for t in (t1, t2)]
    a2.send(d2, gets=[pb.GetRequest(req_id=1, object_ids=oids)])
    (reply,) = d2.take().get_replies
    assert [value_of(o) for o in reply.objects] == ["one", "two"]
    a2.send(d2, remove_refs=oids)
    check(a2, b)
    assert not a2.nm.objects.entries and not b.nm.objects.entries


def test_tasks_forwarded_to_a_restarted_node_run_again_there() -> None:
    fabric, (a, b) = cluster((A, 1, {}), (B, 1, {"w": 1}))
    driver, wb = a.connect(True), b.connect(False)
    t = task_spec("t", max_retries=2)
    t.resources["w"] = 1
    a.send(driver, submit=[t])
    assert assignments(wb)
    b2 = _restart(fabric, b)
    wb2 = b2.connect(False)
    restarts.drop_old_process(a.nm, B)
    fabric.run()
    (again,) = assignments(wb2)
    assert again.spec.task_id == t.task_id and again.spec.attempt == 1
    result(b2, wb2, again.spec, 5)
    oid = ids.object_id_for_return(t.task_id, 1)
    a.send(driver, gets=[pb.GetRequest(req_id=3, object_ids=[oid])])
    assert value_of(driver.take().get_replies[0].objects[0]) == 5
    a.send(driver, remove_refs=[oid])
    check(a, b2)


# ---- the restarted raylet --------------------------------------------------------------------------


def test_the_restarted_raylet_reports_its_placed_actors_dead_or_restarting() -> None:
    me = "ab" * 16
    entries = [
        ActorEntry("1", ActorState.ALIVE, node=me, attempt=2, num_restarts=0, max_restarts=1),
        ActorEntry("2", ActorState.ALIVE, node=me, attempt=0, num_restarts=0, max_restarts=0),
        ActorEntry("3", ActorState.SCHEDULED, node=me, attempt=1, max_restarts=-1),
        ActorEntry("4", ActorState.ALIVE, node="cd" * 16),
        ActorEntry("5", ActorState.RESTARTING, node=me),
    ]
    deaths = {d.actor_id: d for d in recovery.actor_deaths(entries, me, "restarted")}
    assert set(deaths) == {"1", "2", "3"}
    assert deaths["1"].attempt == 2 and deaths["1"].fields["state"] == "RESTARTING"
    assert deaths["1"].fields["num_restarts"] == 1
    assert deaths["2"].fields["state"] == "DEAD" and "no restarts left" in deaths["2"].fields["death_cause"]
    assert deaths["3"].fields["state"] == "RESTARTING"


def test_leftover_segments_of_the_previous_process_are_unlinked(tmp_path: Any) -> None:
    for name in ("rayredis_ab12_abcdef_x", "rayredis_ab12_abcdef_y", "rayredis_ab12_fedcba_z"):
        (tmp_path / name).write_bytes(b"1")
    assert recovery.leftover_segments("rayredis_ab12_abcdef_", str(tmp_path)) == [
        "rayredis_ab12_abcdef_x", "rayredis_ab12_abcdef_y"]
    assert recovery.unlink_leftovers("rayredis_ab12_abcdef_", str(tmp_path)) == 2
    assert sorted(os.listdir(tmp_path)) == ["rayredis_ab12_fedcba_z"]


# ---- the driver's owner state -----------------------------------------------------------------------


def _spec(name: str, args: tuple[bytes, ...] = (), kind: int = pb.NORMAL_TASK, max_retries: int = 3) -> pb.TaskSpec:
    spec = task_spec(name, args=args, max_retries=max_retries)
    spec.kind = kind
    return spec


def _always(t: OwnedTask) -> bool:
    return True


def test_plan_puts_cached_values_back_and_resubmits_the_rest_with_their_lineage() -> None:
    o = OwnerState()
    put_small, put_uncached = ids.object_id_for_put(0), ids.object_id_for_put(0)
    o.put_sent(put_small)
    o.put_sent(put_uncached)
    done, inner = _spec("done"), _spec("inner")
    o.submitted(done)
    o.submitted(inner)
    (inner_ret,) = returns_of(inner)
    outer = _spec("outer", args=(inner_ret,))
    o.submitted(outer)
    o.ref_removed(inner_ret)  # the driver dropped the inner ref: only the lineage keeps it
    assert inner.task_id in o.tasks
    values = {put_small: b"small", returns_of(done)[0]: b"done"}
    plan = o.plan(values, _always, "was restarted")
    assert dict(plan.reput) == {put_small: b"small", returns_of(done)[0]: b"done"}
    assert [s.task_id for s in plan.resubmit] == [inner.task_id, outer.task_id]  # in submission order
    assert all(s.attempt == 4 and s.max_retries == 2 for s in plan.resubmit)
    assert plan.remove_refs == [inner_ret]
    (lost_oid, err), = plan.failed
    assert lost_oid == put_uncached and isinstance(err, exceptions.ObjectLostError)
    assert "does not cache" in str(serialization.deserialize(serialization.serialize_error(err).to_bytes()))


def test_plan_fails_work_that_may_not_run_again() -> None:
    o = OwnerState()
    call, once = _spec("A.f", kind=pb.ACTOR_TASK), _spec("once", max_retries=0)
    o.submitted(call)
    o.submitted(once)
    plan = o.plan({}, lambda t: t.spec.kind != pb.ACTOR_TASK and t.spec.max_retries != 0, "was restarted")
    assert not plan.resubmit
    errors = dict(plan.failed)
    assert isinstance(errors[returns_of(call)[0]], exceptions.ActorDiedError)
    assert "may or may not have run" in str(errors[returns_of(call)[0]])
    assert isinstance(errors[returns_of(once)[0]], exceptions.NodeDiedError)


def test_owner_state_forgets_tasks_nobody_refers_to() -> None:
    o = OwnerState()
    a = _spec("a")
    o.submitted(a)
    (ra,) = returns_of(a)
    b = _spec("b", args=(ra,))
    o.submitted(b)
    o.ref_removed(ra)
    assert set(o.tasks) == {a.task_id, b.task_id}
    o.ref_removed(returns_of(b)[0])
    assert not o.tasks and not o.dependents and not o.held


def test_large_cached_put_objects_are_lost_and_say_why() -> None:
    o = OwnerState()
    big = ids.object_id_for_put(0)
    o.put_sent(big)
    plan = o.plan({big: memoryview(bytearray(REPUT_MAX_BYTES + 1))}, _always, "was restarted")
    (oid, err), = plan.failed
    assert oid == big and "larger than" in str(err)

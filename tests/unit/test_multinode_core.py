"""Several NodeManagers wired by an in-memory fabric (no sockets): forwarding, spillback, holds, pulls,
and the ClusterView's placement decisions."""

from __future__ import annotations

import os
from typing import Any

import pytest

from rayredis import exceptions, ids
from rayredis.common.resources import ResourceSet
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.cluster_view import LOCAL, ClusterView, InfeasibleError, UnschedulableError
from rayredis.raylet.connection import Connection
from rayredis.raylet.node_manager import NodeManager
from rayredis.raylet.object_store import PENDING, READY, REMOTE, ObjectStore
from rayredis.raylet.peer_core import PULL_RETRIES, PULL_RETRY_S
from rayredis.raylet.scheduler import LocalScheduler
from tests.unit.test_node_manager import (
    FakeDirectory,
    FakeTimers,
    FakeWorkers,
    RecordingWriter,
    assignments,
    blob,
    task_spec,
    value_of,
)

A, B, C = b"A" * 16, b"B" * 16, b"C" * 16


class SpillRecordingWriter(RecordingWriter):
    def task_spilled(self, task_id: bytes, node: bytes, attempt: int) -> None:
        self.ops.append(("spilled", task_id, node, attempt))


class Fabric:
    """The links between the nodes: batches and pulls are delivered when :meth:`run` is called."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, FabricNode] = {}
        self.queue: list[tuple[bytes, bytes, pb.PeerBatch]] = []
        self.pulls: list[tuple[bytes, bytes, list[bytes]]] = []

    def run(self) -> None:
        for _ in range(100):
            for n in self.nodes.values():
                n.timers.run()
            if not self.queue and not self.pulls:
                return
            queue, self.queue = self.queue, []
            for src, dst, batch in queue:
                if dst not in self.nodes:
                    continue  # to a node that died
                batch.from_node = src
                self.nodes[dst].nm.peers.apply(batch)
            pulls, self.pulls = self.pulls, []
            for dst, oid, locations in pulls:
                self._serve_pull(dst, oid, locations)
        raise AssertionError("the fabric did not settle")

    def _serve_pull(self, dst: bytes, oid: bytes, locations: list[bytes]) -> None:
        target = self.nodes[dst].nm
        for loc in locations:
            if loc not in self.nodes:
                continue  # that node died
            src = self.nodes[loc].nm
            e = src.objects.get(oid)
            if e is None or e.state != READY:
                continue
            contained = src.peers.contained_infos(oid, dst)
            if e.inline is not None:
                target.peers.pulled(oid, loc, e.inline, "", len(e.inline), contained)
            else:
                name = target.objects.reserve(oid, e.size)
                target.peers.pulled(oid, loc, None, name, e.size, contained)
            return
        target.peers.pull_failed(oid, "gone")


class Links:
    def __init__(self, fabric: Fabric, me: bytes):
        self.fabric = fabric
        self.me = me
        self.batches: dict[bytes, pb.PeerBatch] = {}

    def out(self, node: bytes) -> pb.PeerBatch:
        return self.batches.setdefault(node, pb.PeerBatch())

    def flush(self, node: bytes) -> None:
        batch = self.batches.pop(node, None)
        if batch is not None:
            self.fabric.queue.append((self.me, node, batch))

    def pull(self, oid: bytes, locations: list[bytes], size: int) -> None:
        self.fabric.pulls.append((self.me, oid, locations))


class FabricNode:
    def __init__(self, fabric: Fabric, node_id: bytes, cpus: float, resources: dict[str, float] | None = None,
                 capacity: int = 1 << 30):
        self.fabric = fabric
        self.timers = FakeTimers()
        self.writer = SpillRecordingWriter()
        totals = {"CPU": cpus, **(resources or {})}
        self.totals = totals
        self.nm = NodeManager(node_id, "127.0.0.1", LocalScheduler(ResourceSet.from_floats(totals), 4),
                              ObjectStore(capacity, f"rr_unit_{node_id[:1].decode()}_"), self.writer, FakeWorkers(),
                              self.timers, FakeDirectory(), links=Links(fabric, node_id), view=ClusterView(node_id))
        fabric.nodes[node_id] = self

    def connect(self, is_driver: bool) -> Connection:
        conn = Connection(os.urandom(16), 1, is_driver, 1 if is_driver else 0, "")
        self.nm.connect(conn)
        self.fabric.run()
        return conn

    def send(self, conn: Connection, **fields: Any) -> None:
        self.nm.handle(conn, pb.ClientBatch(**fields))
        self.fabric.run()


def cluster(*specs: tuple[bytes, float, dict[str, float]]) -> tuple[Fabric, list[FabricNode]]:
    fabric = Fabric()
    nodes = [FabricNode(fabric, nid, cpus, res) for nid, cpus, res in specs]
    for n in nodes:
        n.nm.view.update({m.nm.node_id: ("addr", m.totals, m.totals, 0) for m in nodes})
    return fabric, nodes


def check(*nodes: FabricNode) -> None:
    for n in nodes:
        assert n.nm.validate() == []


def result(node: FabricNode, worker: Connection, spec: pb.TaskSpec, value: Any = None, shm: int = 0) -> None:
    oid = ids.object_id_for_return(spec.task_id, 1)
    if shm:
        name = node.nm.objects.reserve(oid, shm)
        ret = pb.PutObject(object_id=oid, shm_name=name, size=shm)
    else:
        ret = pb.PutObject(object_id=oid, inline_data=blob(value))
    node.send(worker, results=[pb.TaskResult(task_id=spec.task_id, returns=[ret], attempt=spec.attempt)])


def test_task_for_a_resource_elsewhere_is_forwarded_recorded_and_answered() -> None:
    _, (a, b) = cluster((A, 1, {}), (B, 1, {"gpuish": 1}))
    driver, wb = a.connect(True), b.connect(False)
    spec = task_spec("f")
    spec.resources["gpuish"] = 1
    a.send(driver, submit=[spec])
    (oid,) = [ids.object_id_for_return(spec.task_id, 1)]
    assert ("spilled", spec.task_id, B, 0) in a.writer.ops
    (assign,) = assignments(wb)
    assert assign.spec.task_id == spec.task_id and assign.spec.submitter_node == A
    result(b, wb, spec, "hello")
    a.send(driver, gets=[pb.GetRequest(req_id=1, object_ids=[oid])])
    (reply,) = driver.take().get_replies
    assert value_of(reply.objects[0]) == "hello"
    assert b.nm.objects.get(oid) is None  # the inline return was handed over, nothing kept on B
    a.send(driver, remove_refs=[oid])
    assert not a.nm.objects.entries and not b.nm.objects.entries
    check(a, b)


def test_large_return_stays_remote_until_pulled_and_is_freed_on_both_nodes() -> None:
    _, (a, b) = cluster((A, 1, {}), (B, 1, {"x": 1}))
    driver, wb = a.connect(True), b.connect(False)
    spec = task_spec("big")
    spec.resources["x"] = 1
    a.send(driver, submit=[spec])
    oid = ids.object_id_for_return(spec.task_id, 1)
    assignments(wb)
    # Before the driver asks, the return stays on B: A only knows where it is.
    nm_a = a.nm
    oid_entry = nm_a.objects.get(oid)
    result(b, wb, spec, shm=1000)
    assert oid_entry is not None and oid_entry.state == REMOTE and oid_entry.locations == [B]
    assert b.nm.objects.get(oid).holders[A] == 1  # type: ignore[union-attr]
    a.send(driver, gets=[pb.GetRequest(req_id=7, object_ids=[oid])])
    (reply,) = driver.take().get_replies
    assert reply.objects[0].shm_name and reply.objects[0].size == 1000
    assert nm_a.objects.get(oid).state == READY  # type: ignore[union-attr]
    check(a, b)
    a.send(driver, remove_refs=[oid])
    assert not a.nm.objects.entries and not b.nm.objects.entries
    check(a, b)


def test_busy_node_spills_ready_tasks_to_a_node_with_room() -> None:
    _, (a, b) = cluster((A, 1, {}), (B, 2, {}))
    driver, wa, wb1, wb2 = a.connect(True), a.connect(False), b.connect(False), b.connect(False)
    specs = [task_spec(f"t{i}") for i in range(3)]
    a.send(driver, submit=specs)
    ran_a = [x.spec.task_id for x in assignments(wa)]
    ran_b = [x.spec.task_id for x in assignments(wb1) + assignments(wb2)]
    assert len(ran_a) == 1 and len(ran_b) == 2 and set(ran_a + ran_b) == {s.task_id for s in specs}
    check(a, b)


def test_forwarded_argument_is_held_by_its_node_until_the_task_ends() -> None:
    _, (a, b) = cluster((A, 1, {}), (B, 1, {"x": 1}))
    driver, wb = a.connect(True), b.connect(False)
    arg = ids.object_id_for_put(0)
    name = a.nm.objects.reserve(arg, 5000)
    a.send(driver, puts=[pb.PutObject(object_id=arg, shm_name=name, size=5000)])
    spec = task_spec("use", args=[arg])
    spec.resources["x"] = 1
    a.send(driver, submit=[spec], remove_refs=[arg])  # the driver lets go of the arg right away
    assert a.nm.objects.get(arg).holders[B] == 1  # type: ignore[union-attr]
    (assign,) = assignments(wb)  # B pulled the argument before running the task
    assert assign.resolved[0].shm_name
    result(b, wb, spec, 1)
    assert a.nm.objects.get(arg) is None and b.nm.objects.get(arg) is None
    check(a, b)


def test_refs_inside_a_returned_value_are_held_for_the_owner() -> None:
    _, (a, b) = cluster((A, 1, {}), (B, 1, {"x": 1}))
    driver, wb = a.connect(True), b.connect(False)
    spec = task_spec("produce")
    spec.resources["x"] = 1
    a.send(driver, submit=[spec])
    assignments(wb)
    inner = ids.object_id_for_put(0)
    name = b.nm.objects.reserve(inner, 3000)
    b.send(wb, puts=[pb.PutObject(object_id=inner, shm_name=name, size=3000)])
    oid = ids.object_id_for_return(spec.task_id, 1)
    ret = pb.PutObject(object_id=oid, inline_data=blob("list with a ref"), contained=[inner])
    b.send(wb, results=[pb.TaskResult(task_id=spec.task_id, returns=[ret])], remove_refs=[inner])
    assert b.nm.objects.get(inner).holders[A] == 1  # type: ignore[union-attr]
    assert a.nm.objects.get(inner).state == REMOTE  # type: ignore[union-attr]
    a.send(driver, add_refs=[inner])  # the driver deserialized the list
    a.send(driver, remove_refs=[oid])
    assert b.nm.objects.get(inner) is not None  # still referenced by the driver
    a.send(driver, remove_refs=[inner])
    assert not a.nm.objects.entries and not b.nm.objects.entries
    check(a, b)


def test_cancel_reaches_a_forwarded_task() -> None:
    _, (a, b) = cluster((A, 1, {}), (B, 1, {"x": 1}))
    driver = a.connect(True)
    spec = task_spec("queued")
    spec.resources["x"] = 1
    a.send(driver, submit=[spec])  # B has no worker connected: the task waits in its queue
    oid = ids.object_id_for_return(spec.task_id, 1)
    a.send(driver, cancels=[pb.CancelRequest(object_id=oid)])
    a.send(driver, gets=[pb.GetRequest(req_id=3, object_ids=[oid])])
    (reply,) = driver.take().get_replies
    assert "TaskCancelledError" in type(value_of(reply.objects[0])).__name__
    check(a, b)


# ---- ClusterView ------------------------------------------------------------------------------------


def view(**nodes: dict[str, float]) -> ClusterView:
    v = ClusterView(A)
    v.update({k.encode() * 16: ("addr", t, t, 0) for k, t in nodes.items()})
    return v


def _cpu(n: float, **extra: float) -> ResourceSet:
    return ResourceSet.from_floats({"CPU": n, **extra})


def test_view_places_by_strategy() -> None:
    v = view(B={"CPU": 2, "x": 1}, C={"CPU": 1})
    local = _cpu(1)
    default = pb.SchedulingStrategy()
    assert v.place(_cpu(1), default, local) == LOCAL
    assert v.place(_cpu(1, x=1), default, local) == B
    with pytest.raises(InfeasibleError):
        v.place(_cpu(1, y=1), default, local)
    aff = pb.SchedulingStrategy(kind=pb.STRATEGY_NODE_AFFINITY, node_id=C)
    assert v.place(_cpu(1), aff, local) == C
    gone = pb.SchedulingStrategy(kind=pb.STRATEGY_NODE_AFFINITY, node_id=b"Z" * 16)
    with pytest.raises(UnschedulableError):
        v.place(_cpu(1), gone, local)
    gone.soft = True
    assert v.place(_cpu(1), gone, local) == LOCAL
    spread = pb.SchedulingStrategy(kind=pb.STRATEGY_SPREAD)
    assert {v.place(_cpu(1), spread, local) for _ in range(3)} == {LOCAL, B, C}
    assert v.place(_cpu(1), default, local, arg_bytes={C: 8 << 20, A: 10}) == C


def test_view_spill_target_counts_what_was_sent() -> None:
    v = view(B={"CPU": 1})
    demand = _cpu(1)
    sent = 0
    while v.spill_target(demand) == B:
        v.forwarded(B, demand)
        sent += 1
    assert sent == 3  # its CPU plus SPILL_QUEUE_PER_CPU (2) queued
    v.returned(B, demand)
    assert v.spill_target(demand) == B
    assert v.update({B: ("addr", {"CPU": 1}, {"CPU": 1}, 0), C: ("addr", {"CPU": 1}, {"CPU": 1}, 0)})


def test_pulled_copies_are_evicted_under_pressure_and_pulled_again() -> None:
    fabric, (a,) = cluster((A, 1, {}))
    b = FabricNode(fabric, B, 1, {"x": 1}, capacity=10_000)
    for n in (a, b):
        n.nm.view.update({m.nm.node_id: ("addr", m.totals, m.totals, 0) for m in (a, b)})
    driver, wb = a.connect(True), b.connect(False)
    big = ids.object_id_for_put(0)
    a.send(driver, puts=[pb.PutObject(object_id=big, shm_name=a.nm.objects.reserve(big, 6000), size=6000)])
    spec = task_spec("hold", args=[big])
    spec.resources["x"] = 1
    a.send(driver, submit=[spec])
    (assign,) = assignments(wb)
    b.send(wb, add_refs=[big])  # the worker keeps a ref to its argument
    result(b, wb, spec, 0)
    copy = b.nm.objects.get(big)
    assert copy is not None and copy.state == READY and copy.held_at == A
    other = ids.object_id_for_put(0)
    b.nm.objects.reserve(other, 8000)  # only fits if the copy goes
    assert copy.state == REMOTE and copy.locations == [A]
    b.nm.objects.abort(other, b.nm.objects.shm_prefix + other.hex())
    b.send(wb, gets=[pb.GetRequest(req_id=2, object_ids=[big])])
    (reply,) = wb.take().get_replies
    assert reply.objects[0].shm_name and copy.state == READY
    b.send(wb, remove_refs=[big])
    a.send(driver, remove_refs=[big, ids.object_id_for_return(spec.task_id, 1)])
    assert not a.nm.objects.entries and not b.nm.objects.entries
    check(a, b)


def test_wait_fetch_local_false_does_not_pull() -> None:
    _, (a, b) = cluster((A, 1, {}), (B, 1, {"x": 1}))
    driver, wb = a.connect(True), b.connect(False)
    spec = task_spec("big")
    spec.resources["x"] = 1
    a.send(driver, submit=[spec])
    oid = ids.object_id_for_return(spec.task_id, 1)
    assignments(wb)
    a.send(driver, waits=[pb.WaitRequest(req_id=1, object_ids=[oid], num_returns=1, timeout_s=-1, no_fetch=True)])
    assert not driver.take().wait_replies
    result(b, wb, spec, shm=2000)
    (reply,) = driver.take().wait_replies
    assert list(reply.ready) == [oid] and a.nm.objects.get(oid).state == REMOTE  # type: ignore[union-attr]
    a.send(driver, waits=[pb.WaitRequest(req_id=2, object_ids=[oid], num_returns=1, timeout_s=-1)])
    (reply,) = driver.take().wait_replies
    assert list(reply.ready) == [oid] and a.nm.objects.get(oid).state == READY  # type: ignore[union-attr]
    a.send(driver, remove_refs=[oid])
    check(a, b)


def test_a_return_lost_with_its_node_is_rebuilt_from_lineage() -> None:
    fabric, (a, b, c) = cluster((A, 1, {}), (B, 1, {"x": 1}), (C, 1, {"x": 1}))
    driver, wb, wc = a.connect(True), b.connect(False), c.connect(False)
    arg = ids.object_id_for_put(0)
    a.send(driver, puts=[pb.PutObject(object_id=arg, shm_name=a.nm.objects.reserve(arg, 4000), size=4000)])
    spec = task_spec("make", args=[arg], max_retries=1)
    spec.resources["x"] = 1
    a.send(driver, submit=[spec], remove_refs=[arg])  # the driver keeps only the result
    oid = ids.object_id_for_return(spec.task_id, 1)
    on_b, on_c = assignments(wb), assignments(wc)
    assert len(on_b) + len(on_c) == 1
    runner, other = (b, c) if on_b else (c, b)
    result(runner, wb if runner is b else wc, spec, shm=3000)
    assert a.nm.objects.get(oid).state == REMOTE  # type: ignore[union-attr]
    assert a.nm.objects.get(arg) is not None  # pinned by the lineage while its return may be lost
    # The node holding the only copy dies.
    del fabric.nodes[runner.nm.node_id]
    for n in (a, other):
        n.nm.view.update({m.nm.node_id: ("addr", m.totals, m.totals, 0) for m in (a, other)})
        n.nm.peers.node_gone(runner.nm.node_id)
    a.send(driver, gets=[pb.GetRequest(req_id=9, object_ids=[oid])])
    (again,) = assignments(wc if other is c else wb)
    assert again.spec.task_id == spec.task_id and again.spec.attempt == 1
    result(other, wc if other is c else wb, again.spec, shm=3000)
    (reply,) = driver.take().get_replies
    assert reply.objects[0].shm_name and reply.objects[0].size == 3000
    a.send(driver, remove_refs=[oid])
    assert not a.nm.objects.entries and not other.nm.objects.entries
    check(a, other)


def test_no_pull_goes_to_a_node_the_view_has_as_dead() -> None:
    """A node cut off the network is declared dead but still "has" the object (its process runs): the
    owner rebuilds the object instead of pulling from it (a pull would hang until TCP gives up)."""
    fabric, (a, b, c) = cluster((A, 1, {}), (B, 1, {"x": 1}), (C, 1, {"x": 1}))
    driver, wb, wc = a.connect(True), b.connect(False), c.connect(False)
    spec = task_spec("make", max_retries=1)
    spec.resources["x"] = 1
    a.send(driver, submit=[spec])
    oid = ids.object_id_for_return(spec.task_id, 1)
    on_b = assignments(wb)
    runner, other, w_other = (b, c, wc) if on_b else (c, b, wb)
    result(runner, wb if runner is b else wc, spec, shm=3000)
    assert a.nm.objects.get(oid).state == REMOTE  # type: ignore[union-attr]
    # Declared dead (the fabric could still serve it: a partitioned node's raylet runs on).
    for n in (a, other):
        n.nm.view.update({m.nm.node_id: ("addr", m.totals, m.totals, 0) for m in (a, other)})
        n.nm.peers.node_gone(runner.nm.node_id)
    a.send(driver, gets=[pb.GetRequest(req_id=9, object_ids=[oid])])
    (again,) = assignments(w_other)
    assert again.spec.task_id == spec.task_id and again.spec.attempt == 1
    result(other, w_other, again.spec, shm=3000)
    (reply,) = driver.take().get_replies
    assert reply.objects[0].shm_name and reply.objects[0].size == 3000


def test_a_holder_whose_view_lags_is_asked_again_instead_of_the_object_failing() -> None:
    """C needs an object only B had; C has B as dead, its owner A not yet, and answers C's question
    with B again. C asks again later (not: ObjectLostError), and once A sees B dead, A rebuilds it."""
    fabric, (a, b, c, d) = cluster((A, 1, {}), (B, 1, {"x": 1}), (C, 1, {"y": 1}), (b"D" * 16, 1, {}))
    driver, wb = a.connect(True), b.connect(False)
    c.connect(False)
    make = task_spec("make", max_retries=1)
    make.resources["x"] = 1
    a.send(driver, submit=[make])
    (on_b,) = assignments(wb)
    result(b, wb, make, shm=3000)
    oid = ids.object_id_for_return(make.task_id, 1)
    del fabric.nodes[B]  # cut off: no pull from it succeeds
    c.nm.view.update({m.nm.node_id: ("addr", m.totals, m.totals, 0) for m in (a, c, d)})
    c.nm.peers.node_gone(B)
    use = task_spec("use", args=[oid])
    use.resources["y"] = 1
    a.send(driver, submit=[use])
    e = c.nm.objects.get(oid)
    assert e is not None and e.state == PENDING, "C gave the object up although its owner can rebuild it"
    assert c.timers.pending_later(), "C does not ask again"
    for n in (a, d):  # A's view catches up
        n.nm.view.update({m.nm.node_id: ("addr", m.totals, m.totals, 0) for m in (a, c, d)})
        n.nm.peers.node_gone(B)
    c.timers.advance(1.0)
    fabric.run()
    again = a.nm.tasks.get(make.task_id)
    assert again is not None and again.attempt == 1  # rebuilt by its owner (it waits for an "x" node)
    e = c.nm.objects.get(oid)
    assert e is not None and e.state == PENDING


def test_a_lost_put_fails_with_a_reason() -> None:
    fabric, (a, b) = cluster((A, 1, {}), (B, 1, {"x": 1}))
    driver, wb = a.connect(True), b.connect(False)
    spec = task_spec("produce")
    spec.resources["x"] = 1
    a.send(driver, submit=[spec])
    assignments(wb)
    inner = ids.object_id_for_put(0)
    b.send(wb, puts=[pb.PutObject(object_id=inner, shm_name=b.nm.objects.reserve(inner, 3000), size=3000)])
    ret = pb.PutObject(object_id=ids.object_id_for_return(spec.task_id, 1), inline_data=blob("ref"),
                       contained=[inner])
    b.send(wb, results=[pb.TaskResult(task_id=spec.task_id, returns=[ret])], remove_refs=[inner])
    a.send(driver, add_refs=[inner])
    del fabric.nodes[B]
    a.nm.view.update({A: ("addr", a.totals, a.totals, 0)})
    a.nm.peers.node_gone(B)
    a.send(driver, gets=[pb.GetRequest(req_id=4, object_ids=[inner])])
    (reply,) = driver.take().get_replies
    err = value_of(reply.objects[0])
    assert isinstance(err, exceptions.ObjectLostError) and "put object" in str(err)  # (an OwnerDiedError)


def test_a_source_that_stays_unreachable_is_rebuilt_from_lineage_not_failed() -> None:
    """A pull from a node that died but is not declared dead yet (a GCS failover can delay that
    well past the death timeout) is retried, then the object is rebuilt rather than failed."""
    fabric, (a, b, c) = cluster((A, 1, {}), (B, 1, {"x": 1}), (C, 1, {"x": 1}))
    driver, wb, wc = a.connect(True), b.connect(False), c.connect(False)
    spec = task_spec("make", max_retries=2)
    spec.resources["x"] = 1
    a.send(driver, submit=[spec])
    oid = ids.object_id_for_return(spec.task_id, 1)
    on_b, on_c = assignments(wb), assignments(wc)
    assert len(on_b) + len(on_c) == 1
    runner, rw, other, ow = (b, wb, c, wc) if on_b else (c, wc, b, wb)
    result(runner, rw, spec, shm=3000)
    del fabric.nodes[runner.nm.node_id]  # dead, but every view still lists it as alive
    a.send(driver, gets=[pb.GetRequest(req_id=3, object_ids=[oid])])
    for _ in range(PULL_RETRIES):
        assert not driver.take().get_replies and not assignments(ow)
        a.timers.advance(PULL_RETRY_S)
        fabric.run()
    rerun = a.nm.tasks[spec.task_id]  # rebuilt: re-placed (on either node: both look alive)
    assert rerun.attempt == 1 and rerun.retries_used == 1
    if rerun.forwarded_to == runner.nm.node_id:  # sent to the dead one: retried once it is declared
        for n in (a, other):
            n.nm.view.update({m.nm.node_id: ("addr", m.totals, m.totals, 0) for m in (a, other)})
            n.nm.peers.node_gone(runner.nm.node_id)
        fabric.run()
    (again,) = assignments(ow)
    assert again.spec.task_id == spec.task_id
    result(other, ow, again.spec, shm=3000)
    (reply,) = driver.take().get_replies
    assert reply.objects[0].shm_name and reply.objects[0].size == 3000


def test_a_source_that_no_longer_has_the_object_is_not_waited_for() -> None:
    fabric, (a, b) = cluster((A, 1, {}), (B, 1, {"x": 1}))
    driver, wb = a.connect(True), b.connect(False)
    spec = task_spec("make", max_retries=1)
    spec.resources["x"] = 1
    a.send(driver, submit=[spec])
    oid = ids.object_id_for_return(spec.task_id, 1)
    assignments(wb)
    result(b, wb, spec, shm=3000)
    a.nm.peers.failed_pulls.clear()
    a.nm.objects.get(oid).state = REMOTE  # type: ignore[union-attr]
    a.nm.peers.pull_failed(oid, "node B no longer has it", missing=True)  # as a restarted raylet answers
    fabric.run()
    (again,) = assignments(wb)
    assert again.spec.task_id == spec.task_id and again.spec.attempt == 1

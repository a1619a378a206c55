"""Rebuilding objects lost with a node, on the in-memory fabric of test_multinode_core: how often a
pull is retried before a rebuild, the rebuilt copy's hold, one rebuild at a time (chaos bug F), and
a raylet whose view of the other nodes is not loaded yet (chaos bug N)."""

from __future__ import annotations

from typing import Any

from rayredis import ids
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.connection import Connection
from rayredis.raylet.object_store import PENDING, READY, REMOTE
from rayredis.raylet.peer_core import PULL_RETRIES, PULL_RETRY_S
from tests.unit.test_multinode_core import A, B, C, Fabric, FabricNode, check, cluster, result
from tests.unit.test_node_manager import assignments, task_spec, value_of


def _report(nodes: list[FabricNode], busy: FabricNode | None = None) -> None:
    """Every node's view lists ``nodes`` as alive; ``busy`` reports no room (placement avoids it)."""
    for n in nodes:
        n.nm.view.update({m.nm.node_id: ("addr", m.totals, {k: 0.0 for k in m.totals} if m is busy else m.totals, 0)
                          for m in nodes})


def _made_on_b_then_b_dies(fabric: Fabric, a: FabricNode, b: FabricNode, c: FabricNode,
                           driver: Connection) -> tuple[pb.TaskSpec, bytes]:
    """``make`` (max_retries=3) runs on B and leaves a large return there; then B's raylet is
    SIGKILLed (it answers nothing) while every view still lists it as alive, and only C has room."""
    wb = b.connect(False)
    _report([a, b, c], busy=c)
    spec = task_spec("make", max_retries=3)
    spec.resources["x"] = 1
    a.send(driver, submit=[spec])
    (run,) = assignments(wb)
    result(b, wb, spec, shm=3000)
    oid = ids.object_id_for_return(spec.task_id, 1)
    e = a.nm.objects.get(oid)
    assert e is not None and e.state == REMOTE and e.locations == [B] and e.held_at == B
    del fabric.nodes[B]
    _report([a, b, c], busy=b)
    return spec, oid


def _three_nodes() -> tuple[Fabric, FabricNode, FabricNode, FabricNode, Connection]:
    fabric, (a, b, c) = cluster((A, 1, {}), (B, 1, {"x": 1}), (C, 1, {"x": 1}))
    return fabric, a, b, c, a.connect(True)


def test_repeated_reads_do_not_use_up_the_pull_retries_of_a_node_not_declared_dead() -> None:
    """Each get of an object whose node was just SIGKILLed failed a pull at once, and each failure
    counted as one of the retries meant to span 30 s: a driver polling with short timeouts used them
    up in a second, and the object was rebuilt while its node still looked alive (bug F's start)."""
    fabric, a, b, c, driver = _three_nodes()
    spec, oid = _made_on_b_then_b_dies(fabric, a, b, c, driver)
    for i in range(PULL_RETRIES + 5):  # ray.get(ref, timeout=...) in a loop: a get, then its cancel
        a.send(driver, gets=[pb.GetRequest(req_id=100 + i, object_ids=[oid])])
        a.send(driver, cancel_gets=[100 + i])
    assert spec.task_id not in a.nm.tasks, "rebuilt before its node could be declared dead"
    assert a.nm.peers.failed_pulls[oid] == 1  # one failure so far; the retry waits for its timer
    for _ in range(PULL_RETRIES - 1):  # the retries go on at their own pace
        a.timers.advance(PULL_RETRY_S)
        fabric.run()
        assert spec.task_id not in a.nm.tasks
    a.timers.advance(PULL_RETRY_S)
    fabric.run()
    rerun = a.nm.tasks[spec.task_id]  # 30 s without an answer: rebuilt as if the node had died
    assert rerun.attempt == 1 and rerun.retries_used == 1 and rerun.forwarded_to == C


def test_the_rebuilt_copy_is_held_not_returned_as_a_duplicate() -> None:
    """A rebuild while the old copy's node still looks alive kept the entry's hold on that node, so
    the rebuilding node's grant was taken for a duplicate and returned at once: that node freed its
    copy, the owner's pull from it found nothing ("no longer has it"), which rebuilt it again, and so
    on, each rebuild spending one of the task's retries (bug F)."""
    fabric, a, b, c, driver = _three_nodes()
    spec, oid = _made_on_b_then_b_dies(fabric, a, b, c, driver)
    wc = c.connect(False)
    a.send(driver, gets=[pb.GetRequest(req_id=1, object_ids=[oid])])
    for _ in range(PULL_RETRIES):
        a.timers.advance(PULL_RETRY_S)
        fabric.run()
    (again,) = assignments(wc)
    assert again.spec.task_id == spec.task_id and again.spec.attempt == 1
    e = a.nm.objects.get(oid)
    assert e is not None and e.state == PENDING and e.held_at == b""  # the old hold is given back
    result(c, wc, again.spec, shm=3000)
    (reply,) = driver.take().get_replies
    assert reply.objects[0].shm_name and reply.objects[0].size == 3000
    copy = c.nm.objects.get(oid)
    assert copy is not None and copy.state == READY and copy.holders[A] == 1, "C's rebuilt copy was freed"
    assert e.held_at == C
    assert a.nm.lineage.records[spec.task_id].retries_used == 1  # one rebuild, one retry
    a.send(driver, remove_refs=[oid])
    assert a.nm.objects.get(oid) is None and c.nm.objects.get(oid) is None
    check(a, c)


def test_no_second_rebuild_while_one_is_in_flight() -> None:
    """As Ray's owner does (a resubmission of a task still pending is a no-op): more reports that the
    object is lost, while its rebuild runs, neither start another one nor fail the object."""
    fabric, a, b, c, driver = _three_nodes()
    spec, oid = _made_on_b_then_b_dies(fabric, a, b, c, driver)
    wc = c.connect(False)
    for n in (a, c):  # B is declared dead: the get rebuilds the object at once
        n.nm.view.update({m.nm.node_id: ("addr", m.totals, m.totals, 0) for m in (a, c)})
        n.nm.peers.node_gone(B)
    a.send(driver, gets=[pb.GetRequest(req_id=1, object_ids=[oid])])
    (again,) = assignments(wc)
    rec = a.nm.tasks[spec.task_id]
    assert rec.attempt == 1 and rec.retries_used == 1
    a.nm.lineage.recover(oid, "reported lost again")
    a.nm.peers.describe(oid, C, a.nm.peers.links.out(C))  # a reader elsewhere asks meanwhile
    fabric.run()
    e = a.nm.objects.get(oid)
    assert e is not None and e.state == PENDING, "the object failed while its rebuild runs"
    assert a.nm.tasks[spec.task_id] is rec and rec.attempt == 1 and rec.retries_used == 1
    assert not assignments(wc)
    result(c, wc, again.spec, shm=3000)
    (reply,) = driver.take().get_replies
    assert reply.objects[0].size == 3000


def test_a_raylet_that_has_not_read_the_node_table_yet_pulls_instead_of_failing() -> None:
    """A raylet just restarted under its node ID (or just started) serves its link and its drivers
    before its first heartbeat has read the other nodes: a task forwarded to it then, whose
    argument lives on its owner's node, failed with ``ObjectLostError: ... no location; ... no node
    that is alive keeps the lineage`` because every node it did not know counted as dead (bug N)."""
    fabric, (a,) = cluster((A, 1, {}))
    b = FabricNode(fabric, B, 1, {"x": 1})  # its view was never loaded
    a.nm.view.update({B: ("addr", b.totals, b.totals, 0)})
    driver, wb = a.connect(True), b.connect(False)
    arg = ids.object_id_for_put(0)
    a.send(driver, puts=[pb.PutObject(object_id=arg, shm_name=a.nm.objects.reserve(arg, 5000), size=5000)])
    spec = task_spec("use", args=[arg])
    spec.resources["x"] = 1
    a.send(driver, submit=[spec])
    (assign,) = assignments(wb)
    assert assign.resolved[0].shm_name and assign.resolved[0].size == 5000  # pulled from A
    result(b, wb, spec, "done")
    a.send(driver, gets=[pb.GetRequest(req_id=1, object_ids=[ids.object_id_for_return(spec.task_id, 1)])])
    (reply,) = driver.take().get_replies
    assert value_of(reply.objects[0]) == "done"
    assert b.nm.view.alive(A)
    b.nm.view.update({A: ("addr", a.totals, a.totals, 0)})  # its first read of the node table
    assert not b.nm.view.alive(C)  # from then on, a node it does not list is dead
    check(a, b)


class _RecordingLinks:
    """The fabric's links of one node, recording which nodes it sent batches to."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.sent_to: list[bytes] = []

    def out(self, node: bytes) -> pb.PeerBatch:
        return self.inner.out(node)  # type: ignore[no-any-return]

    def flush(self, node: bytes) -> None:
        self.sent_to.append(node)
        self.inner.flush(node)

    def pull(self, oid: bytes, locations: list[bytes], size: int) -> None:
        self.inner.pull(oid, locations, size)


def test_no_hold_is_given_back_to_a_node_declared_dead() -> None:
    """Its holds died with it; a batch for it started a link that retried to connect forever."""
    fabric, a, b, c, driver = _three_nodes()
    spec, oid = _made_on_b_then_b_dies(fabric, a, b, c, driver)
    for n in (a, c):
        n.nm.view.update({m.nm.node_id: ("addr", m.totals, m.totals, 0) for m in (a, c)})
        n.nm.peers.node_gone(B)
    links = _RecordingLinks(a.nm.peers.links)
    a.nm.peers.links = links
    a.send(driver, remove_refs=[oid])  # the entry held at B is freed
    assert a.nm.objects.get(oid) is None and spec.task_id not in a.nm.lineage.records
    assert B not in links.sent_to

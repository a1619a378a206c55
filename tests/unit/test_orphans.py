"""Objects whose owner node died, rebuilt from the task table: NodeManagers on the in-memory fabric,
their task and object tables in a real redis-server (written as RedisWriter writes them, claims by
the real ``task_claim`` script)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import redis

from rayredis import exceptions, ids
from rayredis.common.resources import ResourceSet
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.cluster_view import ClusterView
from rayredis.raylet.connection import Connection
from rayredis.raylet.node_manager import NodeManager
from rayredis.raylet.object_store import READY, REMOTE, ObjectStore
from rayredis.raylet.orphans import Orphans
from rayredis.raylet.redis_writer import ObjectFreed, ObjectSealed, RedisWriter, TaskWrite
from rayredis.raylet.scheduler import LocalScheduler
from rayredis.raylet.task_table import parse_claim
from rayredis.store import keys, tables
from rayredis.store.scripts import Scripts
from rayredis.store.tables import TaskState
from tests.unit.conftest import REDIS_PASSWORD
from tests.unit.test_multinode_core import Fabric, FabricNode, Links, SpillRecordingWriter, result
from tests.unit.test_node_manager import FakeDirectory, FakeTimers, FakeWorkers, assignments, blob, task_spec

A, B, C = b"A" * 16, b"B" * 16, b"C" * 16


@pytest.fixture
def r(redis_port: int) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_port, password=REDIS_PASSWORD)
    client.flushall()
    yield client
    client.close()


class RedisTablesWriter(SpillRecordingWriter):
    """A node's table writes: recorded, and applied at once to redis with RedisWriter's own ops."""

    def __init__(self, client: redis.Redis, node_id: bytes):
        super().__init__()
        self.client = client
        self.scripts = Scripts(client)
        store = SimpleNamespace(shards=[client], primary=client, index_for_id=lambda _id: 0)
        self.w = RedisWriter(store, node_id.hex(), 0.0, 3600)  # type: ignore[arg-type]

    def _flush(self) -> None:
        ops, self.w.pending[0] = self.w.pending[0], []
        for op in ops:
            if isinstance(op, TaskWrite):
                self.scripts.task_transition(keys=[keys.task_key(op.task_hex)],
                                             args=[op.allowed, op.attempt, op.ttl, *op.fields])
            elif isinstance(op, ObjectSealed):
                pipe = self.client.pipeline(transaction=False)
                tables.queue_object_sealed(pipe, op.object_hex, op.size, op.is_error, self.w.node_hex)
                pipe.execute()
            elif isinstance(op, ObjectFreed):
                self.scripts.object_location_remove(keys=[keys.object_key(op.object_hex)],
                                                    args=[tables.location_field(self.w.node_hex)])
        self.w.pending[self.w.primary_index] = []  # (actor and job writes: not part of these tests)

    def task_submitted(self, task_id: bytes, spec_bytes: bytes, job_id: int, attempt: int) -> None:
        super().task_submitted(task_id, spec_bytes, job_id, attempt)
        self.w.task_submitted(task_id, spec_bytes, job_id, attempt)
        self._flush()

    def task_state(self, task_id: bytes, state: TaskState, attempt: int, worker: bytes = b"",
                   error_type: str = "", start_time: float = 0.0) -> None:
        super().task_state(task_id, state, attempt, worker, error_type)
        self.w.task_state(task_id, state, attempt, worker, error_type)
        self._flush()

    def task_spilled(self, task_id: bytes, node: bytes, attempt: int) -> None:
        super().task_spilled(task_id, node, attempt)
        self.w.task_spilled(task_id, node, attempt)
        self._flush()

    def object_sealed(self, oid: bytes, size: int, is_error: bool) -> None:
        super().object_sealed(oid, size, is_error)
        self.w.object_sealed(oid, size, is_error)
        self._flush()

    def object_freed(self, oid: bytes) -> None:
        super().object_freed(oid)
        self.w.object_freed(oid)
        self._flush()


class RedisTaskTable:
    """``TaskTable`` over the same redis-server: each read or claim runs when asked, and its answer
    reaches the core on the node's next timer run (as an awaited reply would)."""

    def __init__(self, client: redis.Redis, node_id: bytes, timers: FakeTimers):
        self.client = client
        self.scripts = Scripts(client)
        self.node_hex = node_id.hex()
        self.timers = timers
        self.core: Orphans
        self.reads: list[bytes] = []
        self.claims: list[tuple[bytes, int]] = []

    def read(self, tid: bytes, oids: list[bytes]) -> None:
        self.reads.append(tid)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(keys.task_key(tid.hex()))
        for o in oids:
            pipe.hgetall(keys.object_key(o.hex()))
        raw = pipe.execute()
        task = tables.TaskEntry.from_redis(tid.hex(), raw[0])
        objs = {o: tables.ObjectEntry.from_redis(o.hex(), x) for o, x in zip(oids, raw[1:], strict=True)}
        self.timers.call_soon(self.core.read_done, tid, task, objs)

    def claim(self, tid: bytes, attempt: int) -> None:
        self.claims.append((tid, attempt))
        won, current = parse_claim(self.scripts.task_claim(keys=[keys.task_key(tid.hex())],
                                                           args=[attempt, self.node_hex]))
        self.timers.call_soon(self.core.claim_done, tid, won, current)


class TableNode(FabricNode):
    """A fabric node whose writes land in redis and whose orphans read them back."""

    def __init__(self, fabric: Fabric, client: redis.Redis, node_id: bytes, cpus: float,
                 resources: dict[str, float] | None = None):
        self.fabric = fabric
        self.timers = FakeTimers()
        self.writer = RedisTablesWriter(client, node_id)
        self.totals = {"CPU": cpus, **(resources or {})}
        self.table = RedisTaskTable(client, node_id, self.timers)
        self.nm = NodeManager(node_id, "127.0.0.1", LocalScheduler(ResourceSet.from_floats(self.totals), 4),
                              ObjectStore(1 << 30, f"rr_unit_o{node_id[:1].decode()}_"), self.writer, FakeWorkers(),
                              self.timers, FakeDirectory(), links=Links(fabric, node_id), view=ClusterView(node_id),
                              task_table=self.table)
        self.table.core = self.nm.orphans
        fabric.nodes[node_id] = self


def table_cluster(client: redis.Redis, *specs: tuple[bytes, float, dict[str, float]]) -> tuple[Fabric, list[TableNode]]:
    fabric = Fabric()
    nodes = [TableNode(fabric, client, nid, cpus, res) for nid, cpus, res in specs]
    for n in nodes:
        n.nm.view.update({m.nm.node_id: ("addr", m.totals, m.totals, 0) for m in nodes})
    return fabric, nodes


def kill(fabric: Fabric, dead: list[bytes], survivors: list[TableNode]) -> None:
    """``dead`` die: the fabric loses them, and every survivor's view drops them."""
    for d in dead:
        fabric.nodes.pop(d, None)
    for n in survivors:
        n.nm.view.update({m.nm.node_id: ("addr", m.totals, m.totals, 0) for m in survivors})
        for d in dead:
            n.nm.peers.node_gone(d)
    fabric.run()


def error_of(data: pb.ObjectData) -> BaseException:
    from rayredis import serialization

    assert serialization.blob_kind(data.inline_data) == serialization.KIND_ERROR
    err = serialization.deserialize(data.inline_data)
    assert isinstance(err, BaseException)
    return err


def worker_owned_object(fabric: Fabric, a: TableNode, b: TableNode, put: bool = False,
                        max_retries: int = 2) -> tuple[Connection, Connection, bytes]:
    """A driver on A runs ``produce`` on B, whose worker makes a 3000-byte object there (a task of
    its own, run on B, or a put) and returns a ref to it: the driver on A holds a ref to an object
    whose owner and only copy are on B. Returns (driver, A's worker, the object)."""
    driver, wa = a.connect(True), a.connect(False)
    wb1, wb2 = b.connect(False), b.connect(False)
    produce = task_spec("produce")
    produce.resources["x"] = 1
    a.send(driver, submit=[produce])
    (_,) = [x for x in assignments(wb1) + assignments(wb2)]
    if put:
        inner = ids.object_id_for_put(0, produce.task_id)
        b.send(wb1, puts=[pb.PutObject(object_id=inner, shm_name=b.nm.objects.reserve(inner, 3000), size=3000)])
    else:
        make = task_spec("make", max_retries=max_retries, cpus=0)
        b.send(wb1, submit=[make])
        (on_b,) = assignments(wb2)
        assert on_b.spec.task_id == make.task_id
        result(b, wb2, make, shm=3000)
        inner = ids.object_id_for_return(make.task_id, 1)
    ret = pb.PutObject(object_id=ids.object_id_for_return(produce.task_id, 1), inline_data=blob("ref"),
                       contained=[inner])
    b.send(wb1, results=[pb.TaskResult(task_id=produce.task_id, returns=[ret])], remove_refs=[inner])
    a.send(driver, add_refs=[inner])
    e = a.nm.objects.get(inner)
    assert e is not None and e.state == REMOTE and e.held_at == B and e.locations == [B]
    return driver, wa, inner


def driver_task(a: TableNode) -> bytes:
    """The task ID of the ``produce`` task the driver submitted (its inline return contains the ref)."""
    (tid,) = {ids.task_of_object(o) for o in a.nm.objects.entries if not ids.is_put_object(o)} - \
        {ids.task_of_object(o) for o, e in a.nm.objects.entries.items() if e.shm_name}
    return tid


def test_an_object_whose_owner_node_died_is_rebuilt_from_the_task_table(r: redis.Redis) -> None:
    fabric, (a, b) = table_cluster(r, (A, 1, {}), (B, 1, {"x": 1}))
    driver, wa, inner = worker_owned_object(fabric, a, b)
    tid = ids.task_of_object(inner)
    assert r.hget(keys.task_key(tid.hex()), "state") == b"FINISHED"
    kill(fabric, [B], [a])
    a.send(driver, gets=[pb.GetRequest(req_id=1, object_ids=[inner])])
    (again,) = assignments(wa)  # claimed by A and run there, as its new owner
    assert again.spec.task_id == tid and again.spec.attempt == 1 and again.spec.submitter_node == A
    assert a.table.claims == [(tid, 0)]
    entry = r.hgetall(keys.task_key(tid.hex()))
    assert entry[b"rebuilt_by"] == A.hex().encode() and entry[b"attempt"] == b"1" and entry[b"node"] == A.hex().encode()
    result(a, wa, again.spec, shm=3000)
    (reply,) = driver.take().get_replies
    assert reply.objects[0].shm_name and reply.objects[0].size == 3000
    assert r.hget(keys.task_key(tid.hex()), "state") == b"FINISHED"
    assert a.nm.validate() == []
    a.send(driver, remove_refs=[inner, ids.object_id_for_return(driver_task(a), 1)])
    assert not a.nm.orphans.active and not a.nm.objects.entries and a.nm.validate() == []


def test_a_put_whose_owner_node_died_fails_with_owner_died_naming_why_and_what_to_do(r: redis.Redis) -> None:
    fabric, (a, b) = table_cluster(r, (A, 1, {}), (B, 1, {"x": 1}))
    driver, wa, inner = worker_owned_object(fabric, a, b, put=True)
    kill(fabric, [B], [a])
    a.send(driver, gets=[pb.GetRequest(req_id=1, object_ids=[inner])])
    (reply,) = driver.take().get_replies
    err = error_of(reply.objects[0])
    assert isinstance(err, exceptions.OwnerDiedError) and isinstance(err, exceptions.ObjectLostError)
    text = str(err)
    assert "put object" in text and f"node {B.hex()[:8]}, died" in text and "return it from a task" in text
    assert not assignments(wa) and not a.table.claims  # nothing to re-run
    assert a.nm.validate() == []


def test_a_put_survives_its_owner_node_through_a_copy_on_a_live_node(r: redis.Redis) -> None:
    fabric, (a, b, c) = table_cluster(r, (A, 1, {}), (B, 1, {"x": 1}), (C, 1, {"z": 1}))
    driver, _, inner = worker_owned_object(fabric, a, b, put=True)
    wc = c.connect(False)
    use = task_spec("use", args=[inner])
    use.resources["z"] = 1
    a.send(driver, submit=[use])
    (on_c,) = assignments(wc)  # C pulled a copy from B to run it, and keeps it while the task runs
    assert c.nm.objects.get(inner).state == READY  # type: ignore[union-attr]
    kill(fabric, [B], [a, c])
    a.send(driver, gets=[pb.GetRequest(req_id=1, object_ids=[inner])])
    (reply,) = driver.take().get_replies
    assert reply.objects[0].shm_name and reply.objects[0].size == 3000  # pulled from C's copy
    result(c, wc, on_c.spec, "done")
    assert a.nm.validate() == [] and c.nm.validate() == []


@pytest.mark.parametrize("together", [True, False], ids=["race", "one-after-the-other"])
def test_two_readers_one_claim_one_run(r: redis.Redis, together: bool) -> None:
    """A and C both lose an object whose owner B died. Together: both read attempt 0, only A's claim
    applies. One after the other: C reads after A's claim. Either way C finds the task PENDING at A,
    asks A and gets A's copy: the task runs once."""
    fabric, (a, b, c) = table_cluster(r, (A, 1, {}), (B, 1, {"x": 1}), (C, 1, {}))
    driver, wa, inner = worker_owned_object(fabric, a, b)
    tid = ids.task_of_object(inner)
    dc, wc = c.connect(True), c.connect(False)
    c.nm.objects.expect(inner, refs=0).held_at = B  # C heard of it from B, as A did
    c.send(dc, add_refs=[inner])
    c.nm.objects.get(inner).state, c.nm.objects.get(inner).locations = REMOTE, [B]  # type: ignore[union-attr]
    kill(fabric, [B], [a, c])
    a.nm.handle(driver, pb.ClientBatch(gets=[pb.GetRequest(req_id=1, object_ids=[inner])]))
    if not together:
        fabric.run()
    c.nm.handle(dc, pb.ClientBatch(gets=[pb.GetRequest(req_id=2, object_ids=[inner])]))
    fabric.run()
    assert a.table.claims == [(tid, 0)] and c.table.claims == ([(tid, 0)] if together else [])
    (again,) = assignments(wa)
    assert not assignments(wc) and again.spec.attempt == 1
    assert c.nm.orphans.fetching.get(inner) == A  # C waits for A's run
    result(a, wa, again.spec, shm=3000)
    (ra,) = driver.take().get_replies
    (rc,) = dc.take().get_replies
    assert ra.objects[0].size == 3000 and rc.objects[0].size == 3000
    assert a.nm.validate() == [] and c.nm.validate() == []


def test_a_runner_that_does_not_have_the_task_is_not_waited_for(r: redis.Redis) -> None:
    """The table has the task PENDING at C (the dead owner forwarded it there, say), but C does not
    know it: asked, C says so, and A claims and runs it itself."""
    fabric, (a, b, c) = table_cluster(r, (A, 1, {}), (B, 1, {"x": 1}), (C, 1, {}))
    driver, wa, inner = worker_owned_object(fabric, a, b)
    tid = ids.task_of_object(inner)
    r.hset(keys.task_key(tid.hex()), mapping={"state": "PENDING", "node": C.hex()})
    r.persist(keys.task_key(tid.hex()))
    kill(fabric, [B], [a, c])
    a.send(driver, gets=[pb.GetRequest(req_id=1, object_ids=[inner])])
    fabric.run()
    (again,) = assignments(wa)
    assert again.spec.attempt == 1 and a.table.claims == [(tid, 0)]
    result(a, wa, again.spec, shm=3000)
    (reply,) = driver.take().get_replies
    assert reply.objects[0].size == 3000


def test_a_reader_asking_a_claimer_that_dies_claims_the_next_attempt(r: redis.Redis) -> None:
    fabric, (a, b, c) = table_cluster(r, (A, 1, {}), (B, 1, {"x": 1}), (C, 1, {}))
    driver, wa, inner = worker_owned_object(fabric, a, b)
    tid = ids.task_of_object(inner)
    dc, wc = c.connect(True), c.connect(False)
    c.nm.objects.expect(inner, refs=0).held_at = B
    c.send(dc, add_refs=[inner])
    kill(fabric, [B], [a, c])  # C's entry was PENDING at B: recovered at once
    a.send(driver, gets=[pb.GetRequest(req_id=1, object_ids=[inner])])
    fabric.run()
    claimer, waiter, w_claimer, w_waiter = (c, a, wc, wa) if assignments(wc) else (a, c, wa, wc)
    assert waiter.nm.orphans.fetching.get(inner) == claimer.nm.node_id
    kill(fabric, [claimer.nm.node_id], [waiter])
    (again,) = assignments(w_waiter)
    assert again.spec.attempt == 2 and waiter.table.claims[-1] == (tid, 1)
    assert r.hget(keys.task_key(tid.hex()), "rebuilt_by") == waiter.nm.node_id.hex().encode()


def _lost_at_a(r: redis.Redis, spec: pb.TaskSpec, state: str = "FINISHED", attempt: int = 0,
               write: bool = True) -> tuple[Fabric, TableNode, Connection, bytes]:
    """A's driver holds a ref to ``spec``'s return, told about by B, which dies; the table has
    ``spec`` as B wrote it (unless not ``write``)."""
    fabric, (a, _b) = table_cluster(r, (A, 1, {}), (B, 1, {}))
    driver = a.connect(True)
    a.connect(False)
    spec.submitter_node = B
    oid = ids.object_id_for_return(spec.task_id, 1)
    if write:
        r.hset(keys.task_key(spec.task_id.hex()), mapping={
            "spec": spec.SerializeToString(), "state": state, "node": B.hex(), "attempt": attempt, "job": 1})
    a.nm.objects.expect(oid, refs=0).held_at = B
    a.send(driver, add_refs=[oid])
    kill(fabric, [B], [a])
    a.send(driver, gets=[pb.GetRequest(req_id=1, object_ids=[oid])])
    return fabric, a, driver, oid


def _actor_call() -> pb.TaskSpec:
    spec = task_spec("Keeper.value", max_retries=0)
    spec.kind, spec.method_name, spec.actor_id = pb.ACTOR_TASK, "value", b"\x01" * 16
    return spec


@pytest.mark.parametrize(("spec", "state", "attempt", "write", "kind", "words"), [
    (_actor_call(), "FINISHED", 0, True, exceptions.OwnerDiedError, "actor method 'value'"),
    (task_spec("once", max_retries=0), "FINISHED", 0, True, exceptions.ObjectReconstructionFailedError,
     "max_retries=0"),
    (task_spec("spent", max_retries=2), "FINISHED", 2, True,
     exceptions.ObjectReconstructionFailedMaxAttemptsExceededError, "max_retries=2"),
    (task_spec("old", max_retries=2), "FINISHED", 0, False,
     exceptions.ObjectReconstructionFailedLineageEvictedError, "task_table_ttl_s"),
], ids=["actor-result", "max-retries-0", "retries-used-up", "entry-expired"])
def test_what_is_not_rebuilt_fails_naming_why(r: redis.Redis, spec: pb.TaskSpec, state: str, attempt: int,
                                              write: bool, kind: type[Exception], words: str) -> None:
    _, a, driver, _ = _lost_at_a(r, spec, state, attempt, write)
    (reply,) = driver.take().get_replies
    err = error_of(reply.objects[0])
    assert type(err) is kind and isinstance(err, exceptions.ObjectLostError), err
    assert words in str(err) and "died" in str(err)
    assert not a.table.claims and a.nm.validate() == []


def test_an_actor_result_whose_owner_lives_is_not_an_owner_death(r: redis.Redis) -> None:
    spec = _actor_call()
    fabric, (a, _b) = table_cluster(r, (A, 1, {}), (B, 1, {}))
    driver = a.connect(True)
    spec.submitter_node = A  # A owns it; the node that had its only copy (B) died
    oid = ids.object_id_for_return(spec.task_id, 1)
    r.hset(keys.task_key(spec.task_id.hex()), mapping={"spec": spec.SerializeToString(), "state": "FINISHED",
                                                      "node": B.hex(), "attempt": 0})
    e = a.nm.objects.expect(oid, refs=0)
    e.held_at = B
    a.send(driver, add_refs=[oid])
    kill(fabric, [B], [a])
    a.send(driver, gets=[pb.GetRequest(req_id=1, object_ids=[oid])])
    (reply,) = driver.take().get_replies
    err = error_of(reply.objects[0])
    assert type(err) is exceptions.ObjectReconstructionFailedError and "actor method" in str(err)


def test_a_cancelled_task_is_not_rebuilt(r: redis.Redis) -> None:
    _, a, driver, _ = _lost_at_a(r, task_spec("gone", max_retries=2), state="CANCELLED")
    (reply,) = driver.take().get_replies
    assert isinstance(error_of(reply.objects[0]), exceptions.TaskCancelledError)
    assert not a.table.claims


def test_without_a_task_table_the_old_errors_stand() -> None:
    from tests.unit.test_multinode_core import cluster

    fabric, (a, b) = cluster((A, 1, {}), (B, 1, {}))
    driver = a.connect(True)
    oid = ids.object_id_for_return(ids.task_id(), 1)
    a.nm.objects.expect(oid, refs=0).held_at = B
    a.send(driver, add_refs=[oid])
    del fabric.nodes[B]
    a.nm.view.update({A: ("addr", a.totals, a.totals, 0)})
    a.nm.peers.node_gone(B)
    a.send(driver, gets=[pb.GetRequest(req_id=1, object_ids=[oid])])
    (reply,) = driver.take().get_replies
    err = error_of(reply.objects[0])
    assert isinstance(err, exceptions.ObjectReconstructionFailedError) and "keeps the lineage" in str(err)


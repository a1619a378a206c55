"""The raylet's NodeManager driven with fakes (timers, worker processes, table writer): no sockets, no processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rayredis import exceptions, ids, serialization
from rayredis.common.resources import ResourceSet
from rayredis.config import get_config
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.connection import Connection
from rayredis.raylet.node_manager import NodeManager
from rayredis.raylet.object_store import ObjectStore
from rayredis.raylet.scheduler import LocalScheduler
from rayredis.raylet.server import build_node
from rayredis.store.tables import TaskState
from tests.unit.test_redis_writer import FakeClient, FakeStore

NODE = b"N" * 16

# ---- fakes ----------------------------------------------------------------------------------------


class FakeHandle:
    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]):
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTimers:
    """Deferred callbacks that run only when the test says so (``run`` and ``advance``)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.soon: list[FakeHandle] = []
        self.later: list[FakeHandle] = []

    def call_soon(self, callback: Callable[..., object], *args: Any) -> FakeHandle:
        h = FakeHandle(self.now, callback, args)
        self.soon.append(h)
        return h

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> FakeHandle:
        h = FakeHandle(self.now + delay, callback, args)
        self.later.append(h)
        return h

    def run(self) -> None:
        while self.soon:
            h = self.soon.pop(0)
            if not h.cancelled:
                h.callback(*h.args)

    def advance(self, dt: float) -> None:
        self.now += dt
        due = sorted((h for h in self.later if h.when <= self.now), key=lambda h: h.when)
        self.later = [h for h in self.later if h.when > self.now]
        for h in due:
            if not h.cancelled:
                h.callback(*h.args)
        self.run()

    def pending_later(self) -> list[FakeHandle]:
        return [h for h in self.later if not h.cancelled]


class FakeWorkers:
    def __init__(self) -> None:
        self.started = 0
        self.killed: list[bytes] = []
        self.dedicated: dict[bytes, bytes] = {}
        self.registered_ids: list[bytes] = []
        self.exited_ids: list[bytes] = []

    def start(self, n: int) -> None:
        self.started += n

    def kill(self, wid: bytes) -> None:
        self.killed.append(wid)

    def dedicate(self, wid: bytes, actor_id: bytes) -> None:
        self.dedicated[wid] = actor_id

    def registered(self, wid: bytes) -> None:
        self.registered_ids.append(wid)

    def exited(self, wid: bytes) -> None:
        self.exited_ids.append(wid)


class RecordingWriter:
    """Records every table write the core asks for, in order."""

    def __init__(self) -> None:
        self.ops: list[tuple[Any, ...]] = []

    def task_submitted(self, task_id: bytes, spec_bytes: bytes, job_id: int, attempt: int) -> None:
        self.ops.append(("submitted", task_id, job_id, attempt))

    def task_state(self, task_id: bytes, state: TaskState, attempt: int, worker: bytes = b"",
                   error_type: str = "", start_time: float = 0.0) -> None:
        self.ops.append(("state", task_id, state, attempt))

    def object_sealed(self, oid: bytes, size: int, is_error: bool) -> None:
        self.ops.append(("sealed", oid, size, is_error))

    def object_freed(self, oid: bytes) -> None:
        self.ops.append(("freed", oid))

    def actor_transition(self, actor_id: bytes, allowed: str, attempt: str, fields: Mapping[str, Any]) -> None:
        self.ops.append(("actor", actor_id, allowed, attempt, dict(fields)))

    def job_finished(self, job_id: int) -> None:
        self.ops.append(("job_finished", job_id))

    def states(self, tid: bytes) -> list[tuple[TaskState, int]]:
        return [(op[2], op[3]) for op in self.ops if op[0] == "state" and op[1] == tid]

    def actor_ops(self, aid: bytes) -> list[tuple[str, str, dict[str, Any]]]:
        return [(op[2], op[3], op[4]) for op in self.ops if op[0] == "actor" and op[1] == aid]

    def kinds(self, kind: str) -> list[tuple[Any, ...]]:
        return [op for op in self.ops if op[0] == kind]


class FakeDirectory:
    def __init__(self) -> None:
        self.lookups: list[bytes] = []

    def lookup_actor(self, actor_id: bytes) -> None:
        self.lookups.append(actor_id)


# ---- harness --------------------------------------------------------------------------------------


def blob(value: Any) -> bytes:
    return serialization.serialize(value).to_bytes()


def value_of(data: pb.ObjectData) -> Any:
    return serialization.deserialize(data.inline_data)


def error_of(data: pb.ObjectData) -> BaseException:
    assert serialization.blob_kind(data.inline_data) == serialization.KIND_ERROR
    err = serialization.deserialize(data.inline_data)
    assert isinstance(err, BaseException)
    return err


class Node:
    """One NodeManager with fakes around it; ``send`` feeds a batch and runs what it scheduled."""

    def __init__(self, cpus: float = 2.0, max_workers: int = 4):
        self.timers = FakeTimers()
        self.workers = FakeWorkers()
        self.writer = RecordingWriter()
        self.directory = FakeDirectory()
        self.nm = NodeManager(NODE, "127.0.0.1", LocalScheduler(ResourceSet.from_floats({"CPU": cpus}), max_workers),
                              ObjectStore(1 << 20, "rr_unit_"), self.writer, self.workers, self.timers,
                              self.directory)
        self._pid = 1000

    def connect(self, is_driver: bool, job_id: int = 1, actor_id: bytes = b"") -> Connection:
        self._pid += 1
        conn = Connection(os.urandom(16), self._pid, is_driver, job_id, "")
        conn.actor_id = actor_id
        self.nm.connect(conn)
        self.timers.run()
        return conn

    def driver(self, job_id: int = 1) -> Connection:
        return self.connect(True, job_id)

    def worker(self) -> Connection:
        return self.connect(False, 0)

    def send(self, conn: Connection, **fields: Any) -> None:
        self.nm.handle(conn, pb.ClientBatch(**fields))
        self.timers.run()

    def disconnect(self, conn: Connection) -> None:
        self.nm.disconnect(conn)
        self.timers.run()

    def submit(self, conn: Connection, spec: pb.TaskSpec) -> list[bytes]:
        self.send(conn, submit=[spec])
        return [ids.object_id_for_return(spec.task_id, i + 1) for i in range(spec.num_returns)]

    def result(self, worker: Connection, spec: pb.TaskSpec, *values: Any, failed: bool = False,
               retryable: bool = False, attempt: int | None = None, actor_exited: bool = False) -> None:
        returns = [pb.PutObject(object_id=ids.object_id_for_return(spec.task_id, i + 1), inline_data=blob(v))
                   for i, v in enumerate(values)]
        r = pb.TaskResult(task_id=spec.task_id, returns=returns, failed=failed, retryable=retryable,
                          attempt=spec.attempt if attempt is None else attempt, actor_exited=actor_exited)
        self.send(worker, results=[r])

    def runner(self, spec: pb.TaskSpec) -> Connection:
        """The connection of the worker running ``spec``."""
        return self.nm.conns[self.nm.tasks[spec.task_id].worker]

    def get(self, conn: Connection, req_id: int, oids: Iterable[bytes]) -> None:
        self.send(conn, gets=[pb.GetRequest(req_id=req_id, object_ids=list(oids))])

    def error(self, conn: Connection, oid: bytes) -> BaseException:
        """Get ``oid`` (already sealed) as ``conn`` and return the error it holds."""
        self.get(conn, 1, [oid])
        (reply,) = conn.take().get_replies
        return error_of(reply.objects[0])

    def check(self) -> None:
        assert self.nm.validate() == []


def task_spec(name: str = "f", args: Iterable[bytes] = (), num_returns: int = 1, max_retries: int = 0,
              cpus: float = 1.0, job_id: int = 1, inline_args: Iterable[bytes] = ()) -> pb.TaskSpec:
    spec = pb.TaskSpec(task_id=ids.task_id(), job_id=job_id, kind=pb.NORMAL_TASK, name=name,
                       num_returns=num_returns, max_retries=max_retries)
    spec.resources["CPU"] = cpus
    for oid in args:
        spec.args.add(object_id=oid)
    for data in inline_args:
        spec.args.add(data=data)
    return spec


def assignments(conn: Connection) -> list[pb.Assignment]:
    return list(conn.take().assign)


# ---- tasks ----------------------------------------------------------------------------------------


def test_submit_dispatch_result_finish() -> None:
    n = Node()
    driver, worker = n.driver(), n.worker()
    assert n.workers.registered_ids == [worker.worker_id]
    spec = task_spec()
    (oid,) = n.submit(driver, spec)
    n.check()
    assert n.writer.ops[0] == ("submitted", spec.task_id, 1, 0)
    (a,) = assignments(worker)
    assert a.spec.task_id == spec.task_id and a.spec.attempt == 0
    assert n.nm.tasks[spec.task_id].state is TaskState.RUNNING
    assert driver.refs[oid] == 1 and n.nm.objects.get(oid).refcount == 1  # type: ignore[union-attr]
    n.check()

    n.get(driver, 1, [oid])
    assert list(driver.batch.get_replies) == []  # not sealed yet: the get waits
    n.result(worker, spec, 42)
    (reply,) = driver.take().get_replies
    assert reply.req_id == 1 and value_of(reply.objects[0]) == 42
    assert spec.task_id not in n.nm.tasks
    assert n.writer.states(spec.task_id) == [(TaskState.FINISHED, 0)]
    assert ("sealed", oid, len(blob(42)), False) in n.writer.ops
    assert n.nm.scheduler.idle_set == {worker.worker_id}  # back in the pool
    n.check()

    n.send(driver, remove_refs=[oid])
    assert n.nm.objects.get(oid) is None and n.writer.ops[-1] == ("freed", oid)
    n.check()


def test_no_idle_worker_starts_one() -> None:
    n = Node()
    driver = n.driver()
    spec = task_spec()
    n.submit(driver, spec)
    assert n.workers.started == 1
    n.check()
    worker = n.worker()
    (a,) = assignments(worker)
    assert a.spec.task_id == spec.task_id
    n.check()


def test_args_not_ready_wait_until_sealed() -> None:
    n = Node()
    driver, w1, w2 = n.driver(), n.worker(), n.worker()
    first = task_spec("first")
    (x,) = n.submit(driver, first)
    second = task_spec("second", args=[x])
    (y,) = n.submit(driver, second)
    assert n.nm.objects.get(x).pins == 1  # type: ignore[union-attr]
    given = assignments(w1) + assignments(w2)
    assert [a.spec.name for a in given] == ["first"]  # second waits for its argument
    assert second.task_id in n.nm.deps_index[x]
    n.check()

    n.result(n.runner(first), first, "x")
    given = assignments(w1) + assignments(w2)
    assert [a.spec.name for a in given] == ["second"]
    (resolved,) = given[0].resolved
    assert resolved.object_id == x and value_of(resolved) == "x"
    n.check()

    n.result(n.runner(second), second, "y")
    assert n.nm.objects.get(x).pins == 0  # type: ignore[union-attr]
    n.send(driver, remove_refs=[x, y])
    assert n.nm.objects.entries == {}
    n.check()


def test_error_argument_fails_the_task_without_running_it() -> None:
    n = Node()
    driver, worker = n.driver(), n.worker()
    bad = task_spec("bad")
    (x,) = n.submit(driver, bad)
    assignments(worker)
    n.send(worker, results=[pb.TaskResult(task_id=bad.task_id, failed=True, returns=[pb.PutObject(
        object_id=x, inline_data=serialization.serialize_error(ValueError("boom")).to_bytes())])])
    after = task_spec("after", args=[x])
    (y,) = n.submit(driver, after)
    assert assignments(worker) == []  # never dispatched: it fails with its argument's error
    assert isinstance(n.error(driver, y), ValueError)
    assert n.writer.states(after.task_id) == [(TaskState.FAILED, 0)]
    assert n.nm.scheduler.idle_set == {worker.worker_id}
    n.check()


def test_put_and_get_inline() -> None:
    n = Node()
    driver = n.driver()
    oid = ids.object_id_for_put(1)
    n.send(driver, puts=[pb.PutObject(object_id=oid, inline_data=blob("v"))])
    assert driver.refs[oid] == 1
    n.get(driver, 7, [oid])
    (reply,) = driver.take().get_replies
    assert value_of(reply.objects[0]) == "v"
    n.send(driver, add_refs=[oid])
    assert n.nm.objects.get(oid).refcount == 2  # type: ignore[union-attr]
    n.check()
    n.disconnect(driver)
    assert n.nm.objects.entries == {}
    n.check()


def test_cancelled_get_is_forgotten() -> None:
    n = Node()
    driver = n.driver()
    (oid,) = n.submit(driver, task_spec())
    n.get(driver, 3, [oid])
    assert (driver.worker_id, 3) in n.nm.waiters.gets
    n.send(driver, cancel_gets=[3])
    assert n.nm.waiters.gets == {}
    n.check()


def test_wait_times_out_through_the_timers() -> None:
    n = Node()
    driver, worker = n.driver(), n.worker()
    s1, s2 = task_spec("a"), task_spec("b")
    (o1,) = n.submit(driver, s1)
    (o2,) = n.submit(driver, s2)
    n.send(driver, waits=[pb.WaitRequest(req_id=5, object_ids=[o1, o2], num_returns=2, timeout_s=1.5)])
    (timer,) = n.timers.pending_later()
    assert timer.when == 1.5
    assert list(driver.batch.wait_replies) == []
    n.check()
    n.result(worker, s1, 1)
    assert list(driver.batch.wait_replies) == []  # one of two: keep waiting
    n.check()
    n.timers.advance(1.0)
    assert list(driver.batch.wait_replies) == []
    n.timers.advance(0.5)
    (reply,) = driver.take().wait_replies
    assert reply.req_id == 5 and list(reply.ready) == [o1]
    assert n.nm.waiters.waits == {} and n.nm.waiters.wait_index == {}
    n.check()


def test_wait_answered_when_enough_are_ready_cancels_its_timer() -> None:
    n = Node()
    driver, worker = n.driver(), n.worker()
    s1, s2 = task_spec("a"), task_spec("b")
    (o1,) = n.submit(driver, s1)
    (o2,) = n.submit(driver, s2)
    n.send(driver, waits=[pb.WaitRequest(req_id=1, object_ids=[o1, o2], num_returns=1, timeout_s=30)])
    n.result(worker, s1, 1)
    (reply,) = driver.take().wait_replies
    assert list(reply.ready) == [o1]
    assert n.timers.pending_later() == []
    n.check()


def test_wait_with_zero_timeout_answers_at_once() -> None:
    n = Node()
    driver = n.driver()
    (o1,) = n.submit(driver, task_spec())
    n.send(driver, waits=[pb.WaitRequest(req_id=2, object_ids=[o1], num_returns=1, timeout_s=0)])
    (reply,) = driver.take().wait_replies
    assert list(reply.ready) == []
    n.check()


def test_worker_death_retries_then_fails_without_retries_left() -> None:
    n = Node()
    driver, w1 = n.driver(), n.worker()
    spec = task_spec(max_retries=1)
    (oid,) = n.submit(driver, spec)
    assignments(w1)
    n.disconnect(w1)
    assert n.workers.exited_ids == [w1.worker_id]
    rec = n.nm.tasks[spec.task_id]
    assert rec.state is TaskState.PENDING and rec.attempt == 1 and rec.retries_used == 1
    assert n.writer.states(spec.task_id) == [(TaskState.PENDING, 1)]
    n.check()

    w2 = n.worker()
    (a,) = assignments(w2)
    assert a.spec.attempt == 1
    n.result(w2, spec, "stale", attempt=0)  # a late result of the dead attempt is discarded
    assert spec.task_id in n.nm.tasks
    n.check()
    n.disconnect(w2)  # no retries left
    assert isinstance(n.error(driver, oid), exceptions.WorkerCrashedError)
    assert n.writer.states(spec.task_id)[-1] == (TaskState.FAILED, 1)
    n.check()


def test_retryable_application_error_is_retried() -> None:
    n = Node()
    driver, worker = n.driver(), n.worker()
    spec = task_spec(max_retries=2)
    n.submit(driver, spec)
    assignments(worker)
    n.result(worker, spec, "err", failed=True, retryable=True)
    (a,) = assignments(worker)
    assert a.spec.attempt == 1
    n.check()
    n.result(worker, spec, "ok", attempt=1)
    assert n.writer.states(spec.task_id) == [(TaskState.PENDING, 1), (TaskState.FINISHED, 1)]
    n.check()


def test_cancel_queued_task() -> None:
    n = Node()
    driver = n.driver()
    spec = task_spec()
    (oid,) = n.submit(driver, spec)
    n.send(driver, cancels=[pb.CancelRequest(object_id=oid)])
    assert spec.task_id not in n.nm.tasks and n.nm.scheduler.queue_length() == 0
    assert n.writer.states(spec.task_id) == [(TaskState.CANCELLED, 0)]
    assert isinstance(n.error(driver, oid), exceptions.TaskCancelledError)
    n.check()


def test_cancel_running_task_asks_the_worker() -> None:
    n = Node()
    driver, worker = n.driver(), n.worker()
    spec = task_spec()
    (oid,) = n.submit(driver, spec)
    assignments(worker)
    n.send(driver, cancels=[pb.CancelRequest(object_id=oid, force=False)])
    assert list(worker.take().cancel_tasks) == [spec.task_id]
    assert n.workers.killed == []
    n.send(worker, results=[pb.TaskResult(task_id=spec.task_id, failed=True, returns=[pb.PutObject(
        object_id=oid, inline_data=serialization.serialize_error(exceptions.TaskCancelledError()).to_bytes())])])
    assert n.writer.states(spec.task_id) == [(TaskState.FAILED, 0)]
    n.check()


def test_force_cancel_kills_the_worker() -> None:
    n = Node()
    driver, worker = n.driver(), n.worker()
    spec = task_spec(max_retries=3)
    (oid,) = n.submit(driver, spec)
    assignments(worker)
    n.send(driver, cancels=[pb.CancelRequest(object_id=oid, force=True)])
    assert n.workers.killed == [worker.worker_id]
    assert n.nm.tasks[spec.task_id].force_cancelled
    n.check()
    n.disconnect(worker)  # the kill lands: cancelled, not retried
    assert n.writer.states(spec.task_id) == [(TaskState.CANCELLED, 0)]
    n.check()


def test_driver_disconnect_drops_its_jobs_queued_tasks() -> None:
    n = Node(cpus=1)
    d1, d2, worker = n.driver(job_id=1), n.driver(job_id=2), n.worker()
    running, queued, other = task_spec(job_id=1), task_spec(job_id=1), task_spec(job_id=2)
    for s in (running, queued, other):
        n.submit(d1 if s.job_id == 1 else d2, s)
    (a,) = assignments(worker)
    assert a.spec.task_id == running.task_id
    n.disconnect(d1)
    assert n.writer.states(queued.task_id) == [(TaskState.CANCELLED, 0)]
    assert running.task_id in n.nm.tasks and other.task_id in n.nm.tasks  # left to finish / other job
    assert ("job_finished", 1) in n.writer.ops
    n.check()
    n.result(worker, running, 1)
    (a,) = assignments(worker)
    assert a.spec.task_id == other.task_id
    n.check()


def test_worker_startup_failure_is_forgotten() -> None:
    n = Node()
    driver = n.driver()
    n.submit(driver, task_spec())
    assert n.workers.started == 1 and n.nm.scheduler.num_task_workers == 1
    n.nm.workers_failed_to_start([b"w" * 16], reschedule=True)
    n.timers.run()
    assert n.workers.started == 2  # asked for a replacement
    n.check()


def test_logs_go_to_the_jobs_drivers() -> None:
    n = Node()
    d1, d2, worker = n.driver(job_id=1), n.driver(job_id=2), n.worker()
    n.send(worker, logs=[pb.LogLines(job_id=2, prefix="(f pid=1)", lines=["hi"])])
    assert list(d1.take().logs) == []
    (lines,) = d2.take().logs
    assert list(lines.lines) == ["hi"]


def test_validate_catches_broken_state() -> None:
    n = Node()
    driver, worker = n.driver(), n.worker()
    x = ids.object_id_for_put(1)
    n.send(driver, puts=[pb.PutObject(object_id=x, inline_data=blob(1))])
    spec = task_spec(args=[x])
    (oid,) = n.submit(driver, spec)
    n.check()

    n.nm.objects.entries[oid].refcount += 1
    (v,) = n.nm.validate()
    assert "refcount 2 != 1" in v and oid.hex() in v
    n.nm.objects.entries[oid].refcount -= 1

    n.nm.objects.entries[x].pins = 0
    (v,) = n.nm.validate()
    assert "0 pins" in v and x.hex() in v
    n.nm.objects.entries[x].pins = 1

    rec = n.nm.tasks.pop(spec.task_id)
    problems = n.nm.validate()
    assert any("running task" in p and "no live record" in p for p in problems)
    n.nm.tasks[spec.task_id] = rec
    n.check()

    n.get(driver, 9, [oid])
    n.nm.waiters.get_index.clear()
    (v,) = n.nm.validate()
    assert "get 9" in v and "not indexed" in v
    assert worker.worker_id in n.nm.conns


def test_build_node_passes_every_collaborator_in_constructors() -> None:
    primary = FakeClient()
    timers, directory = FakeTimers(), FakeDirectory()
    node = build_node(node_id=NODE, node_ip="127.0.0.1", totals={"CPU": 2.0}, capacity=1 << 20, max_workers=2,
                      shm_prefix="rr_unit_", store=FakeStore([primary], primary),  # type: ignore[arg-type]
                      cfg=get_config(), session_dir="/nonexistent", raylet_address="127.0.0.1:1", worker_env={},
                      socket_name="rayredis-raylet-test", timers=timers, directory=directory)
    nm = node.nm
    assert (nm.scheduler, nm.objects, nm.writer, nm.workers, nm.timers) == (
        node.scheduler, node.objects, node.writer, node.pool, timers)
    assert nm.actors.tasks is nm and nm.actors.directory is directory and nm.actors.writer is node.writer
    assert node.bundles.scheduler is node.scheduler and node.pool.socket_name == "rayredis-raylet-test"
    assert node.scheduler.total == ResourceSet.from_floats({"CPU": 2.0}) and node.objects.capacity == 1 << 20
    assert nm.validate() == []

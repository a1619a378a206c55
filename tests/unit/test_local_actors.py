"""The raylet's actors driven through the NodeManager with fakes: creation, ordered calls, death, restart."""

from __future__ import annotations

import os

from rayredis import exceptions, serialization
from rayredis.actor_state import ActorState
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.actors import LocalActorState
from rayredis.raylet.connection import Connection
from rayredis.store.tables import ActorEntry, TaskState
from tests.unit.test_node_manager import NODE, Node, assignments, error_of, task_spec, value_of

PLACED = "SCHEDULED,ALIVE"


def creation_spec(aid: bytes, max_restarts: int = 0, max_task_retries: int = 0, job_id: int = 1,
                  detached: bool = False) -> pb.TaskSpec:
    spec = pb.TaskSpec(task_id=os.urandom(16), kind=pb.ACTOR_CREATION, actor_id=aid, num_returns=0,
                       job_id=job_id, name="A.__init__")
    spec.resources["CPU"] = 1.0
    spec.actor_options.max_restarts = max_restarts
    spec.actor_options.max_task_retries = max_task_retries
    spec.actor_options.detached = detached
    return spec


def call_spec(aid: bytes, method: str = "m", seq: int = 0, args: tuple[bytes, ...] = (),
              job_id: int = 1) -> pb.TaskSpec:
    spec = pb.TaskSpec(task_id=os.urandom(16), kind=pb.ACTOR_TASK, actor_id=aid, method_name=method,
                       num_returns=1, seq_no=seq, job_id=job_id)
    for oid in args:
        spec.args.add(object_id=oid)
    return spec


def state_of(n: Node, aid: bytes) -> LocalActorState:
    return n.nm.actors.actors[aid].state


def create(n: Node, aid: bytes, spec: pb.TaskSpec, attempt: int = 0) -> Connection:
    """Deliver the creation from the GCS and let a fresh worker take the constructor."""
    assert n.nm.actors.create(aid, attempt, spec)
    n.timers.run()
    assert state_of(n, aid) is LocalActorState.CREATING
    worker = n.worker()
    (a,) = assignments(worker)
    assert a.spec.kind == pb.ACTOR_CREATION and a.spec.attempt == attempt
    assert n.workers.dedicated[worker.worker_id] == aid and worker.actor_id == aid
    n.check()
    return worker


def start_actor(n: Node, spec: pb.TaskSpec, attempt: int = 0) -> Connection:
    aid = spec.actor_id
    worker = create(n, aid, spec, attempt)
    n.send(worker, results=[pb.TaskResult(task_id=spec.task_id, attempt=attempt)])
    assert state_of(n, aid) is LocalActorState.ALIVE
    assert n.writer.actor_ops(aid)[-1] == (PLACED, str(attempt), {
        "state": ActorState.ALIVE.value, "node": NODE.hex(), "worker": worker.worker_id.hex(), "pid": worker.pid})
    n.check()
    return worker


def finish_call(n: Node, worker: Connection, spec: pb.TaskSpec, value: object) -> None:
    n.result(worker, spec, value)
    n.check()


def test_creation_then_calls_in_submission_order() -> None:
    n = Node()
    driver = n.driver()
    aid = os.urandom(16)
    spec = creation_spec(aid)
    worker = create(n, aid, spec)
    calls = [call_spec(aid, seq=i) for i in range(3)]
    outs = [n.submit(driver, c)[0] for c in calls]
    assert assignments(worker) == []  # queued until the constructor finished
    assert n.directory.lookups == []  # a known actor needs no lookup
    n.check()

    n.send(worker, results=[pb.TaskResult(task_id=spec.task_id, attempt=0)])
    assert n.writer.states(spec.task_id) == [(TaskState.FINISHED, 0)]
    assert [a.spec.task_id for a in assignments(worker)] == [c.task_id for c in calls]
    n.check()
    for c in calls:
        finish_call(n, worker, c, c.seq_no)
    n.get(driver, 1, outs)
    (reply,) = driver.take().get_replies
    assert [value_of(o) for o in reply.objects] == [0, 1, 2]
    assert n.nm.scheduler.running  # the actor's worker keeps its constructor's resources
    n.check()


def test_a_call_waiting_for_its_argument_holds_back_later_calls() -> None:
    n = Node()
    driver = n.driver()
    aid = os.urandom(16)
    actor = start_actor(n, creation_spec(aid))
    producer = task_spec("producer")
    (x,) = n.submit(driver, producer)  # no pooled worker yet: x stays pending
    first, second = call_spec(aid, seq=0, args=(x,)), call_spec(aid, seq=1)
    n.submit(driver, first)
    n.submit(driver, second)
    assert assignments(actor) == []
    n.check()

    pooled = n.worker()
    (a,) = assignments(pooled)
    n.result(pooled, producer, "x")
    given = assignments(actor)
    assert [g.spec.task_id for g in given] == [first.task_id, second.task_id]
    assert value_of(given[0].resolved[0]) == "x"
    n.check()


def test_worker_death_restarts_and_requeues_calls_with_retries() -> None:
    n = Node()
    driver = n.driver()
    aid = os.urandom(16)
    spec = creation_spec(aid, max_restarts=1, max_task_retries=1)
    w1 = start_actor(n, spec)
    c1, c2 = call_spec(aid, seq=0), call_spec(aid, seq=1)
    n.submit(driver, c1)
    n.submit(driver, c2)
    assert len(assignments(w1)) == 2
    n.disconnect(w1)
    assert state_of(n, aid) is LocalActorState.RESTARTING
    allowed, attempt, fields = n.writer.actor_ops(aid)[-1]
    assert (allowed, attempt, fields["state"], fields["num_restarts"]) == (PLACED, "0", "RESTARTING", 1)
    assert "died unexpectedly" in fields["death_cause"]
    assert [r.spec.task_id for r in n.nm.actors.actors[aid].queue] == [c1.task_id, c2.task_id]
    n.check()

    w2 = start_actor(n, spec, attempt=1)
    assert [a.spec.task_id for a in assignments(w2)] == [c1.task_id, c2.task_id]
    finish_call(n, w2, c1, 1)
    finish_call(n, w2, c2, 2)
    assert n.writer.states(c1.task_id) == [(TaskState.FINISHED, 0)]


def test_restart_without_call_retries_fails_the_inflight_calls() -> None:
    n = Node()
    driver = n.driver()
    aid = os.urandom(16)
    w1 = start_actor(n, creation_spec(aid, max_restarts=1, max_task_retries=0))
    c1 = call_spec(aid)
    (out,) = n.submit(driver, c1)
    assignments(w1)
    n.disconnect(w1)
    assert state_of(n, aid) is LocalActorState.RESTARTING
    assert isinstance(n.error(driver, out), exceptions.ActorDiedError)
    n.check()


def test_out_of_restarts_the_actor_is_dead_and_calls_fail() -> None:
    n = Node()
    driver = n.driver()
    aid = os.urandom(16)
    w1 = start_actor(n, creation_spec(aid))
    c1 = call_spec(aid)
    (o1,) = n.submit(driver, c1)
    assignments(w1)
    n.disconnect(w1)
    assert state_of(n, aid) is LocalActorState.DEAD
    _, _, fields = n.writer.actor_ops(aid)[-1]
    assert fields["state"] == "DEAD" and "no restarts left" in fields["death_cause"]
    (o2,) = n.submit(driver, call_spec(aid, seq=1))  # later calls fail at once
    n.get(driver, 1, [o1, o2])
    (reply,) = driver.take().get_replies
    assert all(isinstance(error_of(o), exceptions.ActorDiedError) for o in reply.objects)
    assert n.nm.tasks == {}
    n.check()


def test_constructor_error_kills_the_worker_and_the_actor_dies() -> None:
    n = Node()
    aid = os.urandom(16)
    spec = creation_spec(aid, max_restarts=3)
    worker = create(n, aid, spec)
    err = serialization.serialize_error(ValueError("bad init")).to_bytes()
    n.send(worker, results=[pb.TaskResult(task_id=spec.task_id, failed=True,
                                          returns=[pb.PutObject(inline_data=err)])])
    assert n.workers.killed == [worker.worker_id]
    assert n.writer.states(spec.task_id) == [(TaskState.FAILED, 0)]
    n.check()
    n.disconnect(worker)
    assert state_of(n, aid) is LocalActorState.DEAD  # intentional: no restart
    _, _, fields = n.writer.actor_ops(aid)[-1]
    assert fields["state"] == "DEAD" and "bad init" in fields["death_cause"]
    n.check()


def test_kill_when_idle_waits_for_submitted_calls() -> None:
    n = Node()
    driver = n.driver()
    aid = os.urandom(16)
    worker = start_actor(n, creation_spec(aid))
    c1 = call_spec(aid)
    n.submit(driver, c1)
    assignments(worker)
    n.send(driver, kills=[pb.KillActorRequest(actor_id=aid, when_idle=True)])
    assert n.workers.killed == []
    finish_call(n, worker, c1, 1)
    assert n.workers.killed == [worker.worker_id]
    assert n.writer.actor_ops(aid)[-1][2]["state"] == "ALIVE"  # DEAD is written once the worker is gone
    n.disconnect(worker)
    assert state_of(n, aid) is LocalActorState.DEAD
    assert n.writer.actor_ops(aid)[-1] == (PLACED, "0", {
        "state": "DEAD", "num_restarts": 0, "death_cause": "All handles to the actor went out of scope."})
    n.check()


def test_kill_before_the_constructor_ran_cancels_it() -> None:
    n = Node()
    aid = os.urandom(16)
    spec = creation_spec(aid)
    assert n.nm.actors.create(aid, 0, spec)
    n.timers.run()
    n.send(n.driver(), kills=[pb.KillActorRequest(actor_id=aid, no_restart=True)])
    assert state_of(n, aid) is LocalActorState.DEAD
    assert n.writer.states(spec.task_id) == [(TaskState.CANCELLED, 0)]
    allowed, attempt, fields = n.writer.actor_ops(aid)[-1]
    assert "DEAD" not in allowed.split(",") and "ALIVE" in allowed.split(",") and attempt == ""
    assert fields == {"state": "DEAD", "death_cause": "The actor was killed by rayredis.kill()."}
    assert n.nm.scheduler.queue_length() == 0
    n.check()


def test_call_to_an_unknown_actor_is_looked_up() -> None:
    n = Node()
    driver = n.driver()
    aid = os.urandom(16)
    c1 = call_spec(aid)
    (out,) = n.submit(driver, c1)
    n.submit(driver, call_spec(aid, seq=1))
    assert n.directory.lookups == [aid]  # once per actor
    assert state_of(n, aid) is LocalActorState.UNKNOWN
    n.check()

    n.nm.actors.apply_remote_state(aid, ActorEntry(aid.hex(), ActorState.ALIVE))
    assert len(n.nm.actors.actors[aid].queue) == 2  # alive elsewhere: keep waiting
    n.nm.actors.apply_remote_state(aid, None)
    assert state_of(n, aid) is LocalActorState.DEAD
    n.get(driver, 1, [out])
    (reply,) = driver.take().get_replies
    err = error_of(reply.objects[0])
    assert isinstance(err, exceptions.ActorDiedError) and "does not exist" in str(err)
    n.check()


def test_driver_exit_ends_its_jobs_actors_and_the_job() -> None:
    n = Node()
    driver = n.driver(job_id=1)
    aid, kept = os.urandom(16), os.urandom(16)
    worker = start_actor(n, creation_spec(aid, max_restarts=5, job_id=1))
    detached = start_actor(n, creation_spec(kept, job_id=1, detached=True))
    n.disconnect(driver)
    assert n.workers.killed == [worker.worker_id]
    assert ("job_finished", 1) in n.writer.ops
    n.disconnect(worker)
    assert state_of(n, aid) is LocalActorState.DEAD and state_of(n, kept) is LocalActorState.ALIVE
    assert not n.nm.actors.create(os.urandom(16), 0, creation_spec(os.urandom(16), job_id=1))
    assert detached.worker_id in n.nm.conns
    n.check()


def test_repeated_creation_delivery_is_idempotent() -> None:
    n = Node()
    aid = os.urandom(16)
    spec = creation_spec(aid)
    start_actor(n, spec)
    ops = len(n.writer.ops)
    assert n.nm.actors.create(aid, 0, spec)
    n.timers.run()
    assert len(n.writer.ops) == ops and state_of(n, aid) is LocalActorState.ALIVE
    n.check()


def test_kill_with_restart_before_the_constructor_ran_restarts_the_actor() -> None:
    """``kill(no_restart=False)`` of a queued constructor counts as a process death: the actor is
    recorded RESTARTING (not left SCHEDULED in the table) and its queued calls wait for it."""
    n = Node()
    aid = os.urandom(16)
    spec = creation_spec(aid, max_restarts=1)
    assert n.nm.actors.create(aid, 0, spec)
    n.timers.run()
    driver = n.driver()
    n.submit(driver, call_spec(aid))
    n.send(driver, kills=[pb.KillActorRequest(actor_id=aid, no_restart=False)])
    assert state_of(n, aid) is LocalActorState.RESTARTING
    assert n.writer.states(spec.task_id) == [(TaskState.CANCELLED, 0)]
    allowed, attempt, fields = n.writer.actor_ops(aid)[-1]
    assert (allowed, attempt, fields["state"], fields["num_restarts"]) == (PLACED, "0", "RESTARTING", 1)
    assert len(n.nm.actors.actors[aid].queue) == 1
    n.check()
    start_actor(n, spec, attempt=1)  # the GCS places it again; the queued call is then delivered
    n.check()


def test_kill_with_restart_before_the_constructor_ran_without_restarts_left_is_dead() -> None:
    n = Node()
    aid = os.urandom(16)
    spec = creation_spec(aid, max_restarts=0)
    assert n.nm.actors.create(aid, 0, spec)
    n.timers.run()
    driver = n.driver()
    (out,) = n.submit(driver, call_spec(aid))
    n.send(driver, kills=[pb.KillActorRequest(actor_id=aid, no_restart=False)])
    assert state_of(n, aid) is LocalActorState.DEAD
    allowed, attempt, fields = n.writer.actor_ops(aid)[-1]
    assert (allowed, attempt, fields["state"]) == (PLACED, "0", "DEAD")
    assert isinstance(n.error(driver, out), exceptions.ActorDiedError)
    n.check()


def test_error_constructor_argument_kills_the_actor() -> None:
    """The constructor never runs with an error argument: the actor is DEAD in the table, with the
    argument's error as the cause, and its calls fail instead of waiting forever."""
    n = Node()
    driver, worker = n.driver(), n.worker()
    bad = task_spec("bad")
    (x,) = n.submit(driver, bad)
    assignments(worker)
    n.send(worker, results=[pb.TaskResult(task_id=bad.task_id, failed=True, returns=[pb.PutObject(
        object_id=x, inline_data=serialization.serialize_error(ValueError("boom")).to_bytes())])])
    aid = os.urandom(16)
    spec = creation_spec(aid)
    spec.args.add(object_id=x)
    assert n.nm.actors.create(aid, 0, spec)
    (out,) = n.submit(driver, call_spec(aid))
    n.timers.run()
    assert assignments(worker) == []  # the constructor was never dispatched
    assert state_of(n, aid) is LocalActorState.DEAD
    assert n.writer.states(spec.task_id) == [(TaskState.FAILED, 0)]
    allowed, attempt, fields = n.writer.actor_ops(aid)[-1]
    assert (allowed, attempt, fields["state"]) == (PLACED, "0", "DEAD")
    assert "An argument of the actor's constructor failed" in fields["death_cause"]
    assert "boom" in fields["death_cause"]
    n.get(driver, 1, [out])
    (reply,) = driver.take().get_replies
    err = error_of(reply.objects[0])
    assert isinstance(err, exceptions.ActorDiedError) and "boom" in str(err)
    assert n.nm.scheduler.idle_set == {worker.worker_id}
    n.check()

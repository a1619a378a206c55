"""The raylet's sans-I/O local scheduler: queues, dispatch decisions, worker starts, CPU lending."""

from __future__ import annotations

from rayredis.common.resources import UNIT, ResourceSet
from rayredis.raylet.scheduler import LocalScheduler, QueuedTask


def rs(**amounts: float) -> ResourceSet:
    return ResourceSet.from_floats(amounts)


def task(name: str, missing: set[bytes] | None = None, dedicated: bool = False, **demand: float) -> QueuedTask:
    if not demand:
        demand = {"CPU": 1}
    return QueuedTask(name.encode(), rs(**demand), payload=name, missing=set(missing or ()),
                      dedicated=dedicated)


def sched(max_workers: int = 4, **total: float) -> LocalScheduler:
    if not total:
        total = {"CPU": 4}
    return LocalScheduler(rs(**total), max_task_workers=max_workers)


def idle(s: LocalScheduler, *wids: str) -> None:
    for w in wids:
        s.worker_idle(w.encode())


def dispatched_ids(dispatches: list) -> list[bytes]:
    return [d.task.task_id for d in dispatches]


# ---- submit / dependencies -------------------------------------------------------------------------


def test_submit_without_deps_is_ready() -> None:
    s = sched()
    s.submit(task("t1"))
    assert b"t1" in s.ready_ids
    assert s.waiting == {}
    assert s.queue_length() == 1
    assert list(s.demands()) == [rs(CPU=1)]


def test_submit_with_missing_deps_waits_until_all_ready() -> None:
    s = sched()
    s.submit(task("t1", missing={b"o1", b"o2"}))
    idle(s, "w1")
    assert b"t1" in s.waiting
    assert s.queue_length() == 1
    assert s.schedule() == ([], 0)  # not ready: no dispatch, no worker start

    s.object_ready(b"o1")
    assert b"t1" in s.waiting
    assert s.schedule()[0] == []

    s.object_ready(b"o2")
    assert s.waiting == {}
    assert b"t1" in s.ready_ids
    out, _ = s.schedule()
    assert dispatched_ids(out) == [b"t1"]
    assert out[0].worker_id == b"w1"


def test_object_ready_releases_every_waiting_task() -> None:
    s = sched()
    s.submit(task("a", missing={b"o"}))
    s.submit(task("b", missing={b"o"}))
    s.submit(task("c", missing={b"o", b"p"}))
    s.object_ready(b"o")
    assert s.ready_ids == {b"a", b"b"}
    assert set(s.waiting) == {b"c"}
    s.object_ready(b"o")  # repeated notification is harmless
    assert s.ready_ids == {b"a", b"b"}
    s.object_ready(b"unrelated")
    assert set(s.waiting) == {b"c"}


# ---- dispatch ----------------------------------------------------------------------------------------


def test_dispatch_needs_an_idle_worker() -> None:
    s = sched()
    s.submit(task("t1"))
    out, to_start = s.schedule()
    assert out == []
    assert to_start == 1
    assert s.available == rs(CPU=4)  # nothing taken while waiting for a worker

    s.worker_started(1)
    idle(s, "w1")
    out, to_start = s.schedule()
    assert dispatched_ids(out) == [b"t1"]
    assert out[0].worker_id == b"w1"
    assert to_start == 0
    assert s.available == rs(CPU=3)
    assert b"t1" in s.running
    assert s.queue_length() == 0
    assert s.idle_set == set()


def test_dispatch_only_when_resources_fit() -> None:
    s = sched(CPU=2)
    idle(s, "w1", "w2", "w3")
    s.worker_started(3)
    for name in ("a", "b", "c"):
        s.submit(task(name))
    out, to_start = s.schedule()
    assert dispatched_ids(out) == [b"a", b"b"]
    assert to_start == 0
    assert s.available.get("CPU") == 0
    assert s.ready_ids == {b"c"}
    # Nothing more fits until a task finishes.
    assert s.schedule() == ([], 0)
    run = s.finished(b"a")
    assert run is not None and run.worker_id in (b"w1", b"w2")
    idle(s, run.worker_id.decode())
    out, _ = s.schedule()
    assert dispatched_ids(out) == [b"c"]


def test_fifo_within_a_shape_and_other_shapes_not_blocked() -> None:
    s = sched(CPU=3)
    idle(s, "w1", "w2", "w3")
    s.submit(task("big1", CPU=2))
    s.submit(task("big2", CPU=2))
    s.submit(task("small", CPU=1))
    out, _ = s.schedule()
    # big2 does not fit behind big1, but the 1-CPU queue is not stuck behind it.
    assert dispatched_ids(out) == [b"big1", b"small"]
    assert s.ready_ids == {b"big2"}
    s.finished(b"big1")
    idle(s, "w1")
    out, _ = s.schedule()
    assert dispatched_ids(out) == [b"big2"]


def test_zero_cpu_tasks_dispatch_with_no_cpu_left() -> None:
    s = sched(CPU=1)
    idle(s, "w1", "w2")
    s.submit(task("cpu"))
    s.submit(QueuedTask(b"free", ResourceSet()))
    out, _ = s.schedule()
    assert set(dispatched_ids(out)) == {b"cpu", b"free"}


def test_finished_releases_resources_and_is_idempotent() -> None:
    s = sched(CPU=4, GPU=1, mem=10)
    idle(s, "w1")
    s.submit(task("t", CPU=2, GPU=1, mem=3))
    out, _ = s.schedule()
    assert out[0].gpu_ids == [0]
    assert s.available == rs(CPU=2, mem=7)
    run = s.finished(b"t")
    assert run is not None
    assert run.held == rs(CPU=2, GPU=1, mem=3)
    assert run.gpu_ids == [0]
    assert s.available == rs(CPU=4, GPU=1, mem=10)
    assert s.gpus.free == [0]
    assert s.finished(b"t") is None
    assert s.available == rs(CPU=4, GPU=1, mem=10)
    assert s.finished(b"never") is None


# ---- worker start counts ---------------------------------------------------------------------------


def test_worker_starts_capped_at_max_task_workers() -> None:
    s = sched(max_workers=2, CPU=8)
    for i in range(5):
        s.submit(task(f"t{i}"))
    out, to_start = s.schedule()
    assert out == []
    assert to_start == 2
    s.worker_started(2)
    # Workers already starting count against the demand: no more starts.
    assert s.schedule() == ([], 0)


def test_worker_starts_account_for_starting_workers() -> None:
    s = sched(max_workers=10, CPU=8)
    s.submit(task("a"))
    s.submit(task("b"))
    assert s.schedule()[1] == 2
    s.worker_started(1)
    assert s.schedule()[1] == 1
    s.worker_started(1)
    assert s.schedule()[1] == 0
    s.submit(task("c"))
    assert s.schedule()[1] == 1


def test_no_worker_start_when_resources_do_not_fit() -> None:
    s = sched(max_workers=4, CPU=1)
    idle(s, "w1")
    s.worker_started(1)
    s.submit(task("a"))
    s.submit(task("b"))
    out, to_start = s.schedule()
    assert dispatched_ids(out) == [b"a"]
    assert to_start == 0  # b does not fit, so a new worker would only sit idle


def test_busy_workers_count_against_cap() -> None:
    s = sched(max_workers=2, CPU=8)
    s.worker_started(2)
    idle(s, "w1", "w2")
    for i in range(4):
        s.submit(task(f"t{i}"))
    out, to_start = s.schedule()
    assert len(out) == 2
    assert to_start == 0  # both pooled workers are busy and the cap is 2


def test_blocked_task_raises_worker_cap_and_lends_cpu() -> None:
    s = sched(max_workers=1, CPU=1)
    s.worker_started(1)
    idle(s, "w1")
    s.submit(task("parent"))
    out, _ = s.schedule()
    assert dispatched_ids(out) == [b"parent"]
    assert s.available.get("CPU") == 0

    s.submit(task("child"))
    assert s.schedule() == ([], 0)  # no CPU and the cap is reached

    s.block(b"parent")
    assert s.available == rs(CPU=1)  # the blocked parent's CPU is lent out
    out, to_start = s.schedule()
    assert out == []
    assert to_start == 1  # cap is max_task_workers + 1 blocked
    s.worker_started(1)
    assert s.schedule() == ([], 0)
    idle(s, "w2")
    out, _ = s.schedule()
    assert dispatched_ids(out) == [b"child"]
    assert out[0].worker_id == b"w2"
    assert s.available.get("CPU") == 0


def test_blocked_task_lends_its_bundle_cpus_too() -> None:
    # A parent in a 1-CPU placement-group bundle waiting on a child captured into the same bundle.
    bundle = {"CPU_group_0_pg": 1, "CPU_group_pg": 1, "bundle_group_0_pg": 1, "bundle_group_pg": 1}
    s = sched(max_workers=2, CPU=0.001, **bundle)
    s.worker_started(2)
    idle(s, "w1", "w2")
    s.submit(task("parent", **{"CPU_group_0_pg": 1, "CPU_group_pg": 1, "bundle_group_pg": 0.001}))
    assert dispatched_ids(s.schedule()[0]) == [b"parent"]
    s.submit(task("child", **{"CPU_group_pg": 1, "bundle_group_pg": 0.001}))
    assert s.schedule()[0] == []  # the bundle's CPU is taken (its wildcard too)
    s.block(b"parent")
    assert dispatched_ids(s.schedule()[0]) == [b"child"]  # waited forever before the change
    s.finished(b"child")
    s.unblock(b"parent")
    s.finished(b"parent")
    assert s.available == rs(CPU=0.001, **bundle)  # everything given back once


def test_block_and_unblock_are_idempotent() -> None:
    s = sched(CPU=2)
    idle(s, "w1")
    s.submit(task("t"))
    s.schedule()
    s.block(b"t")
    s.block(b"t")
    assert s.available == rs(CPU=2)
    s.unblock(b"t")
    s.unblock(b"t")
    assert s.available == rs(CPU=1)
    s.block(b"unknown")
    s.unblock(b"unknown")
    assert s.available == rs(CPU=1)


def test_unblock_oversubscribes_until_the_borrower_finishes() -> None:
    s = sched(CPU=1)
    idle(s, "w1", "w2")
    s.submit(task("parent"))
    s.schedule()
    s.block(b"parent")
    s.submit(task("child"))
    assert dispatched_ids(s.schedule()[0]) == [b"child"]
    s.unblock(b"parent")
    assert s.available.get("CPU") == -UNIT
    s.submit(task("other"))
    idle(s, "w3")
    assert s.schedule()[0] == []
    s.finished(b"child")
    assert s.available.get("CPU") == 0
    s.finished(b"parent")
    assert s.available == rs(CPU=1)


def test_finishing_while_blocked_does_not_return_lent_cpu_twice() -> None:
    s = sched(CPU=2, GPU=1)
    idle(s, "w1")
    s.submit(task("t", CPU=1, GPU=1))
    s.schedule()
    s.block(b"t")
    assert s.available == rs(CPU=2)
    run = s.finished(b"t")
    assert run is not None and run.blocked
    assert s.available == rs(CPU=2, GPU=1)
    assert s.gpus.free == [0]


# ---- cancel -------------------------------------------------------------------------------------


def test_cancel_waiting_task() -> None:
    s = sched()
    s.submit(task("t", missing={b"o"}))
    got = s.cancel(b"t")
    assert got is not None and got.task_id == b"t"
    assert s.waiting == {}
    assert s.queue_length() == 0
    s.object_ready(b"o")  # must not resurrect it
    assert s.ready_ids == set()
    assert s.cancel(b"t") is None


def test_cancel_ready_task() -> None:
    s = sched()
    s.submit(task("a"))
    s.submit(task("b"))
    got = s.cancel(b"a")
    assert got is not None and got.task_id == b"a"
    assert s.ready_ids == {b"b"}
    idle(s, "w1", "w2")
    out, _ = s.schedule()
    assert dispatched_ids(out) == [b"b"]
    assert s.cancel(b"a") is None


def test_cancel_last_ready_task_leaves_clean_queues() -> None:
    s = sched()
    s.submit(task("a"))
    assert s.cancel(b"a") is not None
    idle(s, "w1")
    assert s.schedule() == ([], 0)
    assert s.ready == {}
    assert list(s.demands()) == []
    assert s.infeasible() == []


def test_cancel_running_task_is_not_queued() -> None:
    s = sched()
    idle(s, "w1")
    s.submit(task("a"))
    s.schedule()
    assert s.cancel(b"a") is None
    assert b"a" in s.running


# ---- workers going away ----------------------------------------------------------------------------


def test_worker_gone_returns_running_task_and_releases() -> None:
    s = sched(CPU=2)
    s.worker_started(2)
    idle(s, "w1", "w2")
    s.submit(task("t"))
    out, _ = s.schedule()
    wid = out[0].worker_id
    run = s.worker_gone(wid)
    assert run is not None
    assert run.task.task_id == b"t"
    assert run.worker_id == wid
    assert b"t" not in s.running
    assert s.available == rs(CPU=2)
    assert s.num_task_workers == 1


def test_worker_gone_while_idle() -> None:
    s = sched()
    s.worker_started(2)
    idle(s, "w1", "w2")
    assert s.worker_gone(b"w1") is None
    assert list(s.idle) == [b"w2"]
    assert s.idle_set == {b"w2"}
    assert s.num_task_workers == 1
    s.submit(task("t"))
    out, _ = s.schedule()
    assert out[0].worker_id == b"w2"


def test_worker_gone_count_never_negative() -> None:
    s = sched()
    assert s.worker_gone(b"nobody") is None
    assert s.num_task_workers == 0


def test_worker_idle_twice_is_one_idle_worker() -> None:
    s = sched()
    idle(s, "w1", "w1")
    assert list(s.idle) == [b"w1"]
    s.submit(task("a"))
    s.submit(task("b"))
    out, _ = s.schedule()
    assert dispatched_ids(out) == [b"a"]


def test_worker_gone_of_blocked_task_does_not_leak_cpu() -> None:
    s = sched(CPU=1)
    s.worker_started(1)
    idle(s, "w1")
    s.submit(task("t"))
    s.schedule()
    s.block(b"t")
    run = s.worker_gone(b"w1")
    assert run is not None and run.task.task_id == b"t"
    assert s.available == rs(CPU=1)


# ---- dedicated (actor creation) ---------------------------------------------------------------------


def test_dedicated_task_worker_leaves_pool() -> None:
    s = sched(max_workers=1, CPU=4)
    s.worker_started(1)
    idle(s, "w1")
    s.submit(task("actor", dedicated=True))
    out, _ = s.schedule()
    assert dispatched_ids(out) == [b"actor"]
    assert s.num_task_workers == 0  # the actor's worker no longer counts as pooled
    # A normal task may start a new pooled worker even though max_task_workers=1.
    s.submit(task("normal"))
    out, to_start = s.schedule()
    assert out == []
    assert to_start == 1
    # The actor dies: its worker was not pooled, and its resources come back.
    run = s.worker_gone(b"w1", pooled=False)
    assert run is not None and run.task.dedicated
    assert s.num_task_workers == 0
    assert s.available == rs(CPU=4)


def test_dedicated_and_normal_tasks_with_same_demand_queue_separately() -> None:
    s = sched(CPU=4)
    s.submit(task("actor", dedicated=True))
    s.submit(task("normal"))
    assert len(s.ready) == 2


# ---- GPUs ---------------------------------------------------------------------------------------


def test_gpu_ids_assigned_on_dispatch() -> None:
    s = sched(CPU=8, GPU=4)
    idle(s, "w1", "w2", "w3", "w4")
    s.submit(task("two", CPU=1, GPU=2))
    s.submit(task("one", CPU=1, GPU=1))
    s.submit(task("half_a", CPU=1, GPU=0.5))
    s.submit(task("half_b", CPU=1, GPU=0.5))
    out, _ = s.schedule()
    got = {d.task.task_id: d.gpu_ids for d in out}
    assert got[b"two"] == [0, 1]
    assert got[b"one"] == [2]
    assert got[b"half_a"] == [3]
    assert got[b"half_b"] == [3]
    assert s.available == rs(CPU=4)
    assert s.running[b"two"].gpu_ids == [0, 1]
    s.finished(b"two")
    s.finished(b"half_a")
    assert s.gpus.free == [0, 1]
    s.finished(b"half_b")
    assert s.gpus.free == [0, 1, 3]


def test_no_gpu_ids_for_cpu_tasks() -> None:
    s = sched(CPU=2, GPU=2)
    idle(s, "w1")
    s.submit(task("t"))
    out, _ = s.schedule()
    assert out[0].gpu_ids == []
    assert s.gpus.free == [0, 1]


def test_gpu_task_waits_for_gpu() -> None:
    s = sched(CPU=4, GPU=1)
    idle(s, "w1", "w2")
    s.submit(task("a", CPU=1, GPU=1))
    s.submit(task("b", CPU=1, GPU=1))
    out, _ = s.schedule()
    assert dispatched_ids(out) == [b"a"]
    s.finished(b"a")
    out, _ = s.schedule()
    assert dispatched_ids(out) == [b"b"]
    assert out[0].gpu_ids == [0]


# ---- infeasible / resources -------------------------------------------------------------------------


def test_infeasible_lists_tasks_larger_than_node_total() -> None:
    s = sched(CPU=2)
    s.submit(task("ok", CPU=2))
    s.submit(task("too_many_cpus", CPU=3))
    s.submit(task("needs_gpu", CPU=1, GPU=1))
    s.submit(task("waiting", missing={b"o"}, CPU=99))  # not ready yet: not reported
    names = sorted(t.task_id for t in s.infeasible())
    assert names == [b"needs_gpu", b"too_many_cpus"]
    # Busy is not infeasible.
    idle(s, "w1")
    s.schedule()
    assert b"ok" not in [t.task_id for t in s.infeasible()]


def test_add_and_remove_resources_make_tasks_feasible() -> None:
    s = sched(CPU=1)
    idle(s, "w1")
    s.submit(task("t", CPU=1, custom=1))
    assert [t.task_id for t in s.infeasible()] == [b"t"]
    s.add_resources(rs(custom=2))
    assert s.infeasible() == []
    out, _ = s.schedule()
    assert dispatched_ids(out) == [b"t"]
    assert s.available == rs(custom=1)
    s.finished(b"t")
    s.remove_resources(rs(custom=2))
    assert s.total == rs(CPU=1)
    assert s.available == rs(CPU=1)


def test_acquire_and_release_outside_dispatch() -> None:
    s = sched(CPU=2)
    assert s.acquire(rs(CPU=1.5))
    assert not s.acquire(rs(CPU=1))
    assert s.available == rs(CPU=0.5)
    s.release(rs(CPU=1.5))
    assert s.available == rs(CPU=2)


def test_fractional_cpu_tasks_pack_exactly() -> None:
    s = sched(max_workers=20, CPU=1)
    idle(s, *[f"w{i}" for i in range(11)])
    for i in range(11):
        s.submit(task(f"t{i}", CPU=0.1))
    out, _ = s.schedule()
    assert len(out) == 10  # ten tenths are exactly one CPU, float error must not lose or add one
    assert s.available.get("CPU") == 0


# ---- bugs (see the report): a GPU demand that fits in the aggregate but not on any one GPU ---------


def test_fractional_gpu_fragmentation_dispatches_without_gpu_ids() -> None:
    # Two GPUs each 0.6 used: 0.8 GPU is "available" in total but no single GPU has 0.8 free.
    s = sched(CPU=8, GPU=2)
    idle(s, "w1", "w2", "w3")
    s.submit(task("a", CPU=1, GPU=0.6))
    s.submit(task("b", CPU=1, GPU=0.6))
    assert [d.gpu_ids for d in s.schedule()[0]] == [[0], [1]]
    s.submit(task("c", CPU=1, GPU=0.8))
    out, _ = s.schedule()
    # Expected: c waits (or gets a GPU id); it must never run with a GPU demand and no GPU.
    assert all(d.gpu_ids for d in out), f"dispatched a GPU task without GPU ids: {out}"


def test_whole_gpu_fragmentation_dispatches_without_gpu_ids() -> None:
    # Three GPUs each 0.6 used: 1.2 GPUs "available" in total, but no whole GPU is free.
    s = sched(CPU=8, GPU=3)
    idle(s, "w1", "w2", "w3", "w4")
    for name in ("a", "b", "c"):
        s.submit(task(name, CPU=1, GPU=0.6))
    assert [d.gpu_ids for d in s.schedule()[0]] == [[0], [1], [2]]
    s.submit(task("d", CPU=1, GPU=1))
    out, _ = s.schedule()
    assert all(d.gpu_ids for d in out), f"dispatched a GPU task without GPU ids: {out}"


def test_actor_creation_is_not_starved_by_a_busy_task_queue() -> None:
    # Two pooled workers, both busy with an endless stream of 1-CPU tasks; an actor that needs no
    # CPU arrives. It must get a worker of its own (beyond the pool cap), and be served first.
    s = sched(max_workers=2, CPU=2)
    s.worker_started(2)
    idle(s, "w1", "w2")
    for i in range(10):
        s.submit(task(f"t{i}"))
    first, _ = s.schedule()
    assert len(first) == 2
    s.submit(QueuedTask(b"actor", rs(), payload="actor", dedicated=True))
    _, to_start = s.schedule()
    assert to_start == 1
    s.worker_started(to_start)
    s.finished(b"t0")
    idle(s, "w1", "w3")  # w1 freed by t0, w3 the new worker
    out, _ = s.schedule()
    assert out[0].task.task_id == b"actor"

"""Placement-group bundle reservations on one raylet."""

from __future__ import annotations

from rayredis.common.resources import ResourceSet, bundle_resource_names
from rayredis.raylet.bundles import Bundles
from rayredis.raylet.scheduler import LocalScheduler, QueuedTask

PG = bytes.fromhex("ab" * 18)
PGH = PG.hex()


def rs(**amounts: float) -> ResourceSet:
    return ResourceSet.from_floats(amounts)


def make(**total: float) -> tuple[LocalScheduler, Bundles]:
    s = LocalScheduler(rs(**total), max_task_workers=4)
    return s, Bundles(s)


def test_bundle_resource_names_follow_ray() -> None:
    assert bundle_resource_names("CPU", "deadbeef", 3) == ("CPU_group_3_deadbeef", "CPU_group_deadbeef")
    assert bundle_resource_names("bundle", "ff", 0) == ("bundle_group_0_ff", "bundle_group_ff")


def test_reserve_takes_base_resources_and_exposes_bundle_resources() -> None:
    s, b = make(CPU=4, GPU=1)
    ok, msg = b.reserve(PG, [0, 1], [{"CPU": 1}, {"CPU": 2, "GPU": 1}])
    assert ok and msg == ""
    assert s.available.get("CPU") == rs(CPU=1).get("CPU")
    assert s.available.get("GPU") == 0
    exposed = s.total.to_floats()
    assert exposed[f"CPU_group_0_{PGH}"] == 1.0
    assert exposed[f"CPU_group_1_{PGH}"] == 2.0
    assert exposed[f"CPU_group_{PGH}"] == 3.0
    assert exposed[f"GPU_group_1_{PGH}"] == 1.0
    assert exposed[f"GPU_group_{PGH}"] == 1.0
    assert f"GPU_group_0_{PGH}" not in exposed
    assert exposed[f"bundle_group_0_{PGH}"] == 1000.0
    assert exposed[f"bundle_group_1_{PGH}"] == 1000.0
    assert exposed[f"bundle_group_{PGH}"] == 2000.0
    # The node's own totals are unchanged; bundle resources are available to tasks.
    assert exposed["CPU"] == 4.0
    assert s.available.get(f"CPU_group_1_{PGH}") == rs(CPU=2).get("CPU")


def test_reserve_is_idempotent() -> None:
    s, b = make(CPU=4)
    assert b.reserve(PG, [0], [{"CPU": 2}]) == (True, "")
    total, avail = s.total, s.available
    assert b.reserve(PG, [0], [{"CPU": 2}]) == (True, "")
    assert s.total == total
    assert s.available == avail
    assert s.available.get("CPU") == rs(CPU=2).get("CPU")


def test_release_restores_and_is_idempotent() -> None:
    s, b = make(CPU=4, custom=2)
    before_total, before_avail = s.total, s.available
    b.reserve(PG, [2, 5], [{"CPU": 1, "custom": 1}, {"CPU": 1}])
    assert s.total != before_total
    b.release(PG)
    assert s.total == before_total
    assert s.available == before_avail
    assert PG not in b.reserved
    b.release(PG)
    b.release(b"unknown")
    assert s.total == before_total
    assert s.available == before_avail


def test_reserve_more_than_node_total_fails_without_side_effects() -> None:
    s, b = make(CPU=2)
    ok, msg = b.reserve(PG, [0, 1], [{"CPU": 2}, {"CPU": 1}])
    assert not ok
    assert "in total" in msg
    assert s.available == rs(CPU=2)
    assert s.total == rs(CPU=2)
    assert b.reserved == {}


def test_reserve_when_busy_fails_then_succeeds_later() -> None:
    s, b = make(CPU=2)
    assert s.acquire(rs(CPU=1.5))
    ok, msg = b.reserve(PG, [0], [{"CPU": 1}])
    assert not ok
    assert "not available" in msg
    assert b.reserved == {}
    s.release(rs(CPU=1.5))
    assert b.reserve(PG, [0], [{"CPU": 1}]) == (True, "")
    assert s.available.get("CPU") == rs(CPU=1).get("CPU")


def test_fractional_bundles_sum_exactly() -> None:
    s, b = make(CPU=1)
    ok, _ = b.reserve(PG, [0, 1, 2], [{"CPU": 0.1}, {"CPU": 0.2}, {"CPU": 0.7}])
    assert ok
    assert s.available.get("CPU") == 0
    assert s.available.get(f"CPU_group_{PGH}") == rs(CPU=1).get("CPU")


def test_task_in_bundle_is_scheduled_with_bundle_resources() -> None:
    s, b = make(CPU=2)
    b.reserve(PG, [0], [{"CPU": 2}])
    s.worker_idle(b"w1")
    s.worker_idle(b"w2")
    s.submit(QueuedTask(b"outside", rs(CPU=1)))
    s.submit(QueuedTask(b"inside", ResourceSet.from_floats({f"CPU_group_0_{PGH}": 1})))
    out, _ = s.schedule()
    assert [d.task.task_id for d in out] == [b"inside"]  # the node's free CPUs are all reserved


def test_two_groups_are_independent() -> None:
    s, b = make(CPU=4)
    other = bytes.fromhex("cd" * 18)
    assert b.reserve(PG, [0], [{"CPU": 1}])[0]
    assert b.reserve(other, [0], [{"CPU": 2}])[0]
    assert s.available.get("CPU") == rs(CPU=1).get("CPU")
    b.release(PG)
    assert s.available.get("CPU") == rs(CPU=2).get("CPU")
    assert f"CPU_group_{other.hex()}" in s.total.to_floats()
    assert f"CPU_group_{PGH}" not in s.total.to_floats()


# ---- two phases --------------------------------------------------------------------------------------


def test_prepared_bundles_take_resources_but_expose_nothing() -> None:
    s, b = make(CPU=4)
    assert b.prepare(PG, [0, 1], [{"CPU": 1}, {"CPU": 2}], txn=1) == (True, "")
    assert s.available.get("CPU") == rs(CPU=1).get("CPU")
    assert not any(name.endswith(PGH) for name in s.total.to_floats())
    s.worker_idle(b"w1")
    s.submit(QueuedTask(b"inside", ResourceSet.from_floats({f"CPU_group_0_{PGH}": 1})))
    out, _ = s.schedule()
    assert out == []  # no task runs in a bundle that is only prepared
    assert b.commit(PG, [0, 1], [{"CPU": 1}, {"CPU": 2}], txn=1) == (True, "")
    assert s.available.get("CPU") == rs(CPU=1).get("CPU")  # committing takes nothing more
    assert s.total.to_floats()[f"CPU_group_{PGH}"] == 3.0
    out, _ = s.schedule()
    assert [d.task.task_id for d in out] == [b"inside"]


def test_prepare_and_commit_are_idempotent() -> None:
    s, b = make(CPU=4)
    for _ in range(2):
        assert b.prepare(PG, [0], [{"CPU": 2}], txn=1) == (True, "")
    assert s.available.get("CPU") == rs(CPU=2).get("CPU")
    for _ in range(2):
        assert b.commit(PG, [0], [{"CPU": 2}], txn=1) == (True, "")
    total, avail = s.total, s.available
    assert b.prepare(PG, [0], [{"CPU": 2}], txn=1) == (True, "")  # a late retry of phase 1
    assert (s.total, s.available) == (total, avail)


def test_prepare_refused_takes_nothing() -> None:
    s, b = make(CPU=2)
    ok, msg = b.prepare(PG, [0, 1], [{"CPU": 2}, {"CPU": 1}], txn=1)
    assert not ok and "in total" in msg
    assert s.available == rs(CPU=2) and b.reserved == {}


def test_cancel_gives_back_only_what_that_reservation_prepared() -> None:
    s, b = make(CPU=4)
    assert b.commit(PG, [0], [{"CPU": 1}], txn=1)[0]  # bundle 0 is in use
    assert b.prepare(PG, [1], [{"CPU": 2}], txn=2)[0]
    total = s.total
    b.cancel(PG, [0, 1], txn=1)  # an old reservation's cancel: touches neither
    assert s.available.get("CPU") == rs(CPU=1).get("CPU")
    b.cancel(PG, [0, 1], txn=2)  # gives back bundle 1; bundle 0 was committed
    assert s.available.get("CPU") == rs(CPU=3).get("CPU") and s.total == total
    assert list(b.reserved) == [(PG, 0)]
    b.cancel(PG, [0, 1], txn=2)  # again: nothing
    assert s.available.get("CPU") == rs(CPU=3).get("CPU")


def test_commit_of_a_bundle_this_raylet_never_prepared_takes_it_if_it_fits() -> None:
    """A raylet restarted between the phases lost what it prepared; the decided commit still holds."""
    s, b = make(CPU=2)
    assert b.commit(PG, [0], [{"CPU": 2}], txn=1) == (True, "")
    assert s.total.to_floats()[f"CPU_group_0_{PGH}"] == 2.0
    _, b2 = make(CPU=1)
    ok, msg = b2.commit(PG, [0], [{"CPU": 2}], txn=1)
    assert not ok and "in total" in msg and b2.reserved == {}


def test_release_gives_back_prepared_and_committed_bundles() -> None:
    s, b = make(CPU=4)
    before = (s.total, s.available)
    b.commit(PG, [0], [{"CPU": 1}], txn=1)
    b.prepare(PG, [1], [{"CPU": 1}], txn=2)
    b.release(PG)
    assert (s.total, s.available) == before and b.reserved == {}


def test_stale_prepared_bundles_are_dropped_unless_their_reservation_is_live() -> None:
    s, b = make(CPU=4)
    b.prepare(PG, [0], [{"CPU": 1}], txn=1, now=10.0)
    b.prepare(PG, [1], [{"CPU": 1}], txn=2, now=10.0)
    b.commit(PG, [2], [{"CPU": 1}], txn=2, now=10.0)
    assert b.prepared_before(10.0) == {}
    assert b.prepared_before(11.0) == {PG: [(0, 1), (1, 2)]}
    assert b.drop_prepared(PG, keep_txn=2)  # the entry records reservation 2: keep its bundle
    assert sorted(b.reserved) == [(PG, 1), (PG, 2)]
    assert s.available.get("CPU") == rs(CPU=2).get("CPU")
    assert b.drop_prepared(PG, keep_txn=None)
    assert not b.drop_prepared(PG, keep_txn=None)
    assert list(b.reserved) == [(PG, 2)] and s.available.get("CPU") == rs(CPU=3).get("CPU")

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

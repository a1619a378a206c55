"""The chaos runner's bookkeeping without a cluster: counter sequence checks, attribution of effects
to faults, actor-restart accounting, service recovery and argument handling."""

from __future__ import annotations

import random
from typing import Any

import pytest

from chaos import faults, runner
from chaos.workload import Item, Workload


def _counter(seq: int, incarnation: str, n: int | None, *, lost: bool = False, k: int = 0) -> Item:
    item = Item(seq, "counter", seq, float(seq), finished=float(seq) + 0.1, slots=(k,))
    item.detail.update(counter=k, seq=seq)
    if lost:
        item.error = "ActorDiedError: the node died"
    else:
        item.actual = seq
        item.detail.update(incarnation=incarnation, n=n)
    return item


def _workload(items: list[Item]) -> Workload:
    w = Workload(0, lambda: 0.0, num_slots=1)
    w.counter_warmup = [(0, "a", 1)]
    w.items = items
    return w


def test_a_clean_counter_sequence_passes() -> None:
    w = _workload([_counter(s, "a", s + 1) for s in range(1, 6)])
    assert w.check_counters() == []
    assert w.counter_incarnations == {0: 1}


def test_a_restart_that_re_runs_an_in_flight_call_passes() -> None:
    # seq 3 ran on "a" (its reply was lost with the instance) and again on "b": at least once.
    items = [_counter(1, "a", 2), _counter(2, "a", 3), _counter(3, "b", 1), _counter(4, "b", 2)]
    w = _workload(items)
    assert w.check_counters() == []
    assert w.counter_incarnations == {0: 2}


def test_a_lost_call_may_or_may_not_have_run() -> None:
    for n_after in (3, 4):  # seq 2 lost: it ran (n 4) or it did not (n 3)
        w = _workload([_counter(1, "a", 2), _counter(2, "", None, lost=True), _counter(3, "a", n_after)])
        assert w.check_counters() == []


def test_a_call_run_twice_on_one_instance_is_wrong() -> None:
    items = [_counter(1, "a", 2), _counter(2, "a", 4)]  # something else ran in between
    w = _workload(items)
    assert len(w.check_counters()) == 1
    assert items[1].status == "wrong" and "incarnation" in (items[1].violation or "")


def test_calls_out_of_order_are_wrong() -> None:
    items = [_counter(1, "a", 3), _counter(2, "a", 2)]  # seq 2 ran before seq 1
    assert _workload(items).check_counters()
    assert items[0].status == items[1].status == "wrong"


def test_a_call_on_a_replaced_instance_is_wrong() -> None:
    items = [_counter(1, "a", 2), _counter(2, "b", 1), _counter(3, "a", 3)]
    w = _workload(items)
    assert len(w.check_counters()) == 1
    assert items[2].status == "wrong"


def _fault(index: int, kind: str, t: float, **kw: Any) -> dict[str, Any]:
    return {"index": index, "kind": kind, "t": t, "service_recovery_s": 1.0, **kw}


def _item(i: int, submitted: float, finished: float | None, *, slots: tuple[int, ...] = (),
          error: str | None = None) -> Item:
    item = Item(i, "pinned", 1, submitted, finished=finished, slots=slots, error=error)
    item.actual = None if error else 1
    return item


def test_attribution_prefers_the_fault_that_touches_the_item() -> None:
    fs = [_fault(0, "worker", 1.0, slot=0), _fault(1, "node", 2.0, slot=2, service_recovery_s=None)]
    items = [_item(0, 1.5, 30.0, slots=(2,), error="timeout: no result"),  # pinned to the killed node
             _item(1, 1.2, 1.4),                                             # only the worker fault overlaps
             _item(2, 0.0, 0.5),                                             # before every fault
             _item(3, 1.5, 2.5, slots=(1,))]                                 # untouched: latest overlapping
    assert runner.attribute(items, fs, end_t=40.0) == {0: 1, 1: 0, 2: None, 3: 1}


def test_an_item_in_flight_across_two_kills_of_its_node_is_the_second_kills() -> None:
    fs = [_fault(0, "node", 5.0, slot=2, service_recovery_s=None), _fault(1, "node", 27.0, slot=2,
                                                                            service_recovery_s=None)]
    items = [_item(0, 6.0, 26.0, slots=(2,), error="timeout: no result"),
             _item(1, 20.0, 32.0, slots=(2,), error="ActorDiedError: node 2ff10d03 running it died")]
    assert runner.attribute(items, fs, end_t=40.0) == {0: 0, 1: 1}


def test_attribution_prefers_the_fault_active_when_the_item_ended() -> None:
    # Both faults touch slot 0; the item failed at 9 s, inside the node fault's (unrecovered) window.
    fs = [_fault(0, "worker", 1.0, slot=0), _fault(1, "node", 5.0, slot=0, service_recovery_s=None)]
    items = [_item(0, 0.5, 9.0, slots=(0,), error="ActorDiedError: node 1234abcd running it died")]
    assert runner.attribute(items, fs, end_t=40.0) == {0: 1}


def test_a_hung_item_is_the_first_fault_that_hit_it() -> None:
    # A node kill at 5 s hangs the item; a pause of the head at 6 s touches it as well.
    fs = [_fault(0, "node", 5.0, slot=2, service_recovery_s=None), _fault(1, "pause", 6.0, slot=0, pause_s=1.5)]
    items = [_item(0, 4.5, 64.5, slots=(2, 0), error="timeout: no result after 60.0 s")]
    assert runner.attribute(items, fs, end_t=100.0) == {0: 0}


def test_the_node_named_in_the_error_wins() -> None:
    fs = [_fault(0, "node", 5.0, slot=1, node_id="c679a6ba" + "0" * 24, service_recovery_s=None),
          _fault(1, "pause", 8.0, slot=0, pause_s=1.5)]
    items = [_item(0, 4.0, 9.0, slots=(1,), error="ActorDiedError: node c679a6ba running it died")]
    items[0].ran_on = (0, 1)
    assert runner.attribute(items, fs, end_t=40.0) == {0: 0}


def test_a_retry_logged_for_a_dead_node_is_that_nodes() -> None:
    # The item came back fine after a retry; the raylet logged why: the node it ran on died.
    fs = [_fault(0, "node", 5.0, slot=2, node_id="cb207363" + "0" * 24, service_recovery_s=None),
          _fault(1, "pause", 9.0, slot=0, pause_s=1.8)]
    items = [_item(0, 4.0, 10.5, slots=(2,))]
    items[0].ran_on, items[0].evidence = (0, 2), "node cb207363 running it died"
    assert runner.attribute(items, fs, end_t=40.0) == {0: 0}


def test_a_hung_item_is_not_the_fault_that_came_after_it_should_have_ended() -> None:
    # Hung since 2 s (timeout at 62 s); a worker kill at 62 s touches it too, but comes far too late.
    fs = [_fault(0, "node", 3.0, slot=2, service_recovery_s=None), _fault(1, "worker", 62.0, slot=1)]
    items = [_item(0, 2.0, 62.1, slots=(1, 2), error="timeout: no result after 60.0 s")]
    assert runner.attribute(items, fs, end_t=100.0) == {0: 0}


def test_actor_restarts_go_to_the_hit_before_them() -> None:
    fs = [{"index": 0, "t": 1.0, "actors_hit": [{"actor_id": "a", "num_restarts": 0}]},
          {"index": 1, "t": 5.0, "actors_hit": [{"actor_id": "a", "num_restarts": 1}]}]
    per, unexplained = runner.actor_restarts(fs, {"a": 3, "b": 2})
    assert per == {0: 1, 1: 2}
    assert unexplained == 2  # actor b restarted although no fault hit it


def test_node_recovery_needs_the_probe_and_the_lost_work() -> None:
    f = {"kind": "node", "t": 10.0, "slot": 1, "probe_recovery_s": 3.0}
    items = [_item(0, 9.0, 16.0, slots=(1,)), _item(1, 9.5, 11.0, slots=(2,))]
    rec, extra = runner._service_recovery(f, items)
    assert rec == 6.0 and extra["inflight_on_node"] == 1 and extra["lost_work_done_s"] == 6.0
    items.append(_item(2, 9.9, 30.0, slots=(1,), error="timeout: no result"))
    rec, extra = runner._service_recovery(f, items)
    assert rec is None and extra["inflight_on_node_lost"] == 1


def test_args_all_and_defaults() -> None:
    args = runner.parse_args(["--faults", "all", "--nodes", "3", "--duration", "60"])
    assert args.faults == ["worker", "gcs", "node", "pause", "raylet", "redis", "redis-primary"]  # no partition
    assert args.redis_replicas == 1  # redis-primary needs replicated shards
    assert list(faults.FAULTS) == [*args.faults, "partition"]
    assert args.cooldown == 12.0  # node-level faults leave time for the death timeout and a replacement
    assert runner.parse_args(["--faults", "gcs,worker", "--duration", "20"]).cooldown == 5.0
    assert runner.parse_args(["--faults", "none"]).faults == []


def test_redis_replicas_default_to_what_the_faults_need() -> None:
    assert runner.parse_args(["--faults", "gcs"]).redis_replicas == 0
    assert runner.parse_args(["--faults", "redis-primary"]).redis_replicas == 1
    assert runner.parse_args(["--faults", "gcs", "--redis-replicas", "2"]).redis_replicas == 2
    with pytest.raises(ValueError, match="needs replicated shards"):
        runner.parse_args(["--faults", "redis-primary", "--redis-replicas", "0"])


def test_redis_primary_recovery_is_the_time_until_writes_are_accepted() -> None:
    f = {"kind": "redis-primary", "t": 10.0, "index": 0, "accepted_s": 2.1, "probe_recovery_s": 3.0}
    rec, _ = runner._service_recovery(f, [])
    assert rec == 2.1
    assert faults.make_faults(["redis-primary"], restart_timeout_s=15.0)[0].name == "redis-primary"


@pytest.mark.parametrize("bad", [["--nodes", "0"], ["--pause-min", "3", "--pause-max", "1"]])
def test_bad_args_exit_2(bad: list[str]) -> None:
    assert runner.main(bad) == 2


def test_unknown_planned_and_repeated_faults_are_refused() -> None:
    for names, match in ((["bogus"], "Unknown"), (["node", "node"], "twice")):
        with pytest.raises(ValueError, match=match):
            faults.make_faults(names)
    assert [f.name for f in faults.make_faults(["pause", "redis"], pause_s=(0.1, 0.2), restart_timeout_s=1.0)] \
        == ["pause", "redis"]


def test_the_schedule_cycles_through_every_kind() -> None:
    kinds = ["worker", "node", "gcs", "pause"]
    plan = faults.plan_schedule(1, kinds, 4.0, 2.0, 33.0)
    assert plan == faults.plan_schedule(1, kinds, 4.0, 2.0, 33.0)
    assert {p.kind for p in plan[:4]} == set(kinds)


def test_partitions_alternate_long_and_short() -> None:
    from chaos.partition import PartitionNode

    p = PartitionNode(min_s=1.0, max_s=8.0, death_timeout_s=3.0)
    rng = random.Random(1)
    drawn = [p.duration(rng) for _ in range(4)]
    assert [r for _, r in drawn] == ["long", "short", "long", "short"]
    assert all(6.0 <= h <= 8.0 for h, r in drawn if r == "long")
    assert all(1.0 <= h <= 1.5 for h, r in drawn if r == "short")
    narrow = PartitionNode(min_s=1.0, max_s=2.0, death_timeout_s=3.0)  # no room for a long one
    assert all(r == "short" and 1.0 <= h <= 2.0 for h, r in (narrow.duration(rng) for _ in range(4)))


def test_partition_rows_and_recovery() -> None:
    items = [Item(1, "probe", 1, submitted=10.0, finished=10.5, actual=1, detail={"probe_for": 0}),
             Item(2, "probe", 1, submitted=12.0, finished=13.0, actual=1, detail={"probe_for": 0})]
    assert all(i.status == "ok" for i in items)
    short = {"kind": "partition", "t": 10.0, "index": 0, "healed_s": 1.9, "slot": 1, "declared_dead": False}
    got, extra = runner._partition_recovery(short, items)
    assert got == 1.1 and extra["heal_probe_s"] == 1.1  # heal (11.9) -> the probe submitted after it
    long_ = {**short, "declared_dead": True}
    got, extra = runner._partition_recovery(long_, items)
    assert got == 3.0 and extra["inflight_on_node"] == 0  # cut -> the heal probe

"""Heartbeat-counter failure detection in the GCS (gcs/node_monitor.py), without I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rayredis.gcs.node_monitor import NodeMonitor
from rayredis.store.tables import NodeInfo, NodeRecord

TICK = 0.5  # the GCS polls every heartbeat_interval_s


def _watch(m: NodeMonitor, counters: Callable[[float], Mapping[str, int]], alive: set[str], start: float,
           end: float) -> dict[str, float]:
    """Observe every TICK from ``start`` to ``end`` (inclusive); returns node -> time declared dead."""
    dead: dict[str, float] = {}
    steps = round((end - start) / TICK)
    for i in range(steps + 1):
        now = start + i * TICK
        for node in m.observe(counters(now), alive - set(dead), now):
            dead[node] = now
    return dead


def test_moving_counter_keeps_node_alive() -> None:
    m = NodeMonitor(timeout_s=3.0)
    assert _watch(m, lambda t: {"n1": int(t * 2)}, {"n1"}, 0.0, 100.0) == {}


def test_stalled_counter_declared_dead_after_timeout() -> None:
    m = NodeMonitor(timeout_s=3.0)
    assert _watch(m, lambda t: {"n1": 7}, {"n1"}, 100.0, 103.0) == {}  # exactly the timeout: not yet
    assert m.observe({"n1": 7}, {"n1"}, now=103.01) == ["n1"]


def test_death_counts_from_the_last_change() -> None:
    m = NodeMonitor(timeout_s=3.0)
    dead = _watch(m, lambda t: {"n1": min(int(t * 2), 10)}, {"n1"}, 0.0, 20.0)  # stops at t=5
    assert dead == {"n1": 8.5}  # last change seen at 5.0; the first tick after 8.0


def test_a_two_second_stall_is_not_a_death() -> None:
    # A SIGSTOPped raylet: its counter stands still for 2 s (plus the heartbeat interval), then moves.
    m = NodeMonitor(timeout_s=3.0)

    def counters(t: float) -> dict[str, int]:
        frozen = 5.0 <= t < 7.5
        return {"n1": 10 if frozen else int(t * 2)}

    assert _watch(m, counters, {"n1"}, 0.0, 20.0) == {}


def test_dead_reported_once_when_caller_marks_it_dead() -> None:
    m = NodeMonitor(timeout_s=1.0)
    m.observe({"a": 1, "b": 1}, {"a", "b"}, now=0.0)
    m.observe({"a": 1, "b": 2}, {"a", "b"}, now=0.5)
    m.observe({"a": 1, "b": 3}, {"a", "b"}, now=1.0)
    assert m.observe({"a": 1, "b": 4}, {"a", "b"}, now=1.5) == ["a"]
    # The GCS moves "a" to DEAD, so it is no longer in the alive set.
    assert m.observe({"a": 1, "b": 5}, {"b"}, now=2.0) == []
    assert "a" not in m.last


def test_only_stalled_nodes_die() -> None:
    m = NodeMonitor(timeout_s=2.0)
    dead = _watch(m, lambda t: {"a": 0, "b": int(t * 2), "c": 0}, {"a", "b", "c"}, 0.0, 3.0)
    assert dead == {"a": 2.5, "c": 2.5}


def test_restarted_monitor_gives_full_timeout() -> None:
    # A GCS restart: a node whose counter has not moved in a long time still gets a full timeout.
    m = NodeMonitor(timeout_s=3.0)
    assert _watch(m, lambda t: {"n1": 42}, {"n1"}, 1000.0, 1003.0) == {}
    assert m.observe({"n1": 42}, {"n1"}, now=1003.1) == ["n1"]


def test_a_paused_gcs_does_not_declare_deaths_on_wake_up() -> None:
    # The GCS is SIGSTOPped (or starved) for 10 s, and on wake-up reads counters that the raylets,
    # paused with it (a whole machine resuming), have not moved yet: every node gets a full timeout.
    m = NodeMonitor(timeout_s=3.0)
    assert _watch(m, lambda t: {"a": int(t * 2), "b": int(t * 2)}, {"a", "b"}, 0.0, 5.0) == {}
    frozen = {"a": 10, "b": 10}
    assert m.observe(frozen, {"a", "b"}, now=15.0) == []
    assert m.watching_since == 15.0
    # "b" never moves again, "a" does: only "b" dies, a full timeout after the wake-up.
    dead = _watch(m, lambda t: {"a": int(t * 2), "b": 10}, {"a", "b"}, 15.5, 25.0)
    assert dead == {"b": 18.5}


def test_a_slow_read_restarts_the_watch() -> None:
    # The read itself took longer than the allowed gap (the GCS was paused while awaiting Redis).
    m = NodeMonitor(timeout_s=3.0)
    assert _watch(m, lambda t: {"a": 1}, {"a"}, 0.0, 2.5) == {}
    assert m.observe({"a": 1}, {"a"}, now=12.0, started=2.9) == []
    assert m.watching_since == 12.0
    assert m.observe({"a": 1}, {"a"}, now=12.5) == []
    assert _watch(m, lambda t: {"a": 1}, {"a"}, 13.0, 15.0) == {}
    assert m.observe({"a": 1}, {"a"}, now=15.5) == ["a"]


def test_staleness_counts_until_the_read_started() -> None:
    # Counters read between started and now are only known to be as fresh as ``started``.
    m = NodeMonitor(timeout_s=3.0)
    _watch(m, lambda t: {"a": 1}, {"a"}, 0.0, 2.5)
    assert m.observe({"a": 1}, {"a"}, now=3.4, started=2.95) == []
    assert m.observe({"a": 1}, {"a"}, now=3.9, started=3.05) == ["a"]


def test_gaps_up_to_half_the_timeout_count_as_watching() -> None:
    m = NodeMonitor(timeout_s=3.0)
    assert m.max_gap_s == 1.5
    for now in (0.0, 1.5, 3.0):
        assert m.observe({"a": 1}, {"a"}, now=now) == []
    assert m.observe({"a": 1}, {"a"}, now=4.5) == ["a"]  # three 1.5 s gaps: watched throughout
    m2 = NodeMonitor(timeout_s=3.0)
    for now in (0.0, 1.6, 3.2, 4.8):
        assert m2.observe({"a": 1}, {"a"}, now=now) == []  # each gap too long: the watch restarts


def test_counter_change_in_any_direction_counts_as_progress() -> None:
    # A restarted raylet starts its counter again from zero.
    m = NodeMonitor(timeout_s=1.0)
    m.observe({"n": 500}, {"n"}, now=0.0)
    assert m.observe({"n": 0}, {"n"}, now=0.5) == []
    assert m.observe({"n": 0}, {"n"}, now=1.0) == []
    assert m.observe({"n": 0}, {"n"}, now=1.5) == []
    assert m.observe({"n": 0}, {"n"}, now=2.0) == ["n"]


def test_removed_node_is_forgotten_and_rejoin_gets_full_timeout() -> None:
    m = NodeMonitor(timeout_s=1.0)
    m.observe({"n": 3}, {"n"}, now=0.0)
    assert m.observe({"n": 3}, set(), now=0.5) == []
    assert m.last == {}
    # Back in the alive set with the same counter: the clock starts again.
    assert _watch(m, lambda t: {"n": 3}, {"n"}, 1.0, 2.0) == {}
    assert m.observe({"n": 3}, {"n"}, now=2.5) == ["n"]


def test_node_without_counter_times_out() -> None:
    m = NodeMonitor(timeout_s=1.0)
    assert _watch(m, lambda t: {}, {"silent"}, 0.0, 2.0) == {"silent": 1.5}


def test_counters_of_non_alive_nodes_are_ignored() -> None:
    m = NodeMonitor(timeout_s=1.0)
    assert _watch(m, lambda t: {"dead": 1}, set(), 0.0, 100.0) == {}
    assert m.last == {}


def test_observe_records_uses_node_state_and_heartbeat_counters() -> None:
    info = NodeInfo(node_id="a", address="h:1", node_ip="h", resources={})
    m = NodeMonitor(timeout_s=1.0)
    recs = [NodeRecord("a", "ALIVE", info, heartbeats=3), NodeRecord("b", "ALIVE", None, heartbeats=1),
            NodeRecord("c", "DEAD", info, heartbeats=9)]
    assert m.observe_records(recs, now=0.0) == []
    assert set(m.last) == {"a", "b"}  # liveness is the node state, registered or not
    for i, now in enumerate((0.5, 1.0)):
        recs[0] = NodeRecord("a", "ALIVE", info, heartbeats=4 + i)
        assert m.observe_records(recs, now=now) == []
    recs[0] = NodeRecord("a", "ALIVE", info, heartbeats=9)
    assert m.observe_records(recs, now=1.5, started=1.45) == ["b"]

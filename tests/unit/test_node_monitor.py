"""Heartbeat-counter failure detection in the GCS."""

from __future__ import annotations

from rayredis.gcs.node_monitor import NodeMonitor
from rayredis.store.tables import NodeInfo, NodeRecord


def test_moving_counter_keeps_node_alive() -> None:
    m = NodeMonitor(timeout_s=5.0)
    for i in range(100):
        assert m.observe({"n1": i}, {"n1"}, now=float(i)) == []


def test_stalled_counter_declared_dead_after_timeout() -> None:
    m = NodeMonitor(timeout_s=5.0)
    assert m.observe({"n1": 7}, {"n1"}, now=100.0) == []
    assert m.observe({"n1": 7}, {"n1"}, now=104.0) == []
    assert m.observe({"n1": 7}, {"n1"}, now=105.0) == []  # exactly the timeout: not yet
    assert m.observe({"n1": 7}, {"n1"}, now=105.01) == ["n1"]


def test_dead_reported_once_when_caller_marks_it_dead() -> None:
    m = NodeMonitor(timeout_s=1.0)
    m.observe({"a": 1, "b": 1}, {"a", "b"}, now=0.0)
    m.observe({"a": 1, "b": 2}, {"a", "b"}, now=0.9)
    assert m.observe({"a": 1, "b": 3}, {"a", "b"}, now=1.5) == ["a"]
    # The GCS moves "a" to DEAD, so it is no longer in the alive set.
    assert m.observe({"a": 1, "b": 4}, {"b"}, now=2.0) == []
    assert m.observe({"a": 1, "b": 5}, {"b"}, now=10.0) == []
    assert "a" not in m.last


def test_only_stalled_nodes_die() -> None:
    m = NodeMonitor(timeout_s=2.0)
    alive = {"a", "b", "c"}
    m.observe({"a": 0, "b": 0, "c": 0}, alive, now=0.0)
    assert sorted(m.observe({"a": 0, "b": 1, "c": 0}, alive, now=3.0)) == ["a", "c"]


def test_restarted_monitor_gives_full_timeout() -> None:
    # A GCS restart: a node whose counter has not moved in a long time still gets a full timeout.
    m = NodeMonitor(timeout_s=5.0)
    assert m.observe({"n1": 42}, {"n1"}, now=1000.0) == []
    assert m.observe({"n1": 42}, {"n1"}, now=1004.9) == []
    assert m.observe({"n1": 42}, {"n1"}, now=1005.1) == ["n1"]


def test_counter_change_in_any_direction_counts_as_progress() -> None:
    # A restarted raylet starts its counter again from zero.
    m = NodeMonitor(timeout_s=1.0)
    m.observe({"n": 500}, {"n"}, now=0.0)
    assert m.observe({"n": 0}, {"n"}, now=0.9) == []
    assert m.observe({"n": 0}, {"n"}, now=1.8) == []
    assert m.observe({"n": 0}, {"n"}, now=2.0) == ["n"]


def test_removed_node_is_forgotten_and_rejoin_gets_full_timeout() -> None:
    m = NodeMonitor(timeout_s=1.0)
    m.observe({"n": 3}, {"n"}, now=0.0)
    assert m.observe({"n": 3}, set(), now=0.5) == []
    assert m.last == {}
    # Back in the alive set with the same counter: the clock starts again.
    assert m.observe({"n": 3}, {"n"}, now=5.0) == []
    assert m.observe({"n": 3}, {"n"}, now=5.9) == []
    assert m.observe({"n": 3}, {"n"}, now=6.1) == ["n"]


def test_node_without_counter_times_out() -> None:
    m = NodeMonitor(timeout_s=1.0)
    assert m.observe({}, {"silent"}, now=0.0) == []
    assert m.observe({}, {"silent"}, now=2.0) == ["silent"]


def test_counters_of_non_alive_nodes_are_ignored() -> None:
    m = NodeMonitor(timeout_s=1.0)
    assert m.observe({"dead": 1}, set(), now=0.0) == []
    assert m.observe({"dead": 1}, set(), now=100.0) == []
    assert m.last == {}


def test_observe_records_uses_node_state_and_heartbeat_counters() -> None:
    info = NodeInfo(node_id="a", address="h:1", node_ip="h", resources={})
    m = NodeMonitor(timeout_s=1.0)
    recs = [NodeRecord("a", "ALIVE", info, heartbeats=3), NodeRecord("b", "ALIVE", None, heartbeats=1),
            NodeRecord("c", "DEAD", info, heartbeats=9)]
    assert m.observe_records(recs, now=0.0) == []
    assert set(m.last) == {"a", "b"}  # liveness is the node state, registered or not
    recs[0] = NodeRecord("a", "ALIVE", info, heartbeats=4)
    assert m.observe_records(recs, now=2.0) == ["b"]

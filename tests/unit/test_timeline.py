"""The timeline builder (sans-I/O): task entries in, Chrome trace events out."""

from __future__ import annotations

from typing import Any

import pytest

from rayredis._private.timeline import NodeLabel, build_trace
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store.tables import TaskEntry, TaskState

HEAD, OTHER = "aa" * 14, "bb" * 14
W1, W2 = "11" * 14, "22" * 14


def entry(tid: str, name: str, node: str, worker: str, created: float, start: float, end: float,
          state: TaskState = TaskState.FINISHED, actor: bytes = b"", submitter: str = HEAD) -> TaskEntry:
    spec = pb.TaskSpec(task_id=bytes.fromhex(tid), name=name, actor_id=actor,
                       kind=pb.ACTOR_TASK if actor else pb.NORMAL_TASK, submitter_node=bytes.fromhex(submitter))
    return TaskEntry(task_id=tid, state=state, spec=spec.SerializeToString(), node=node, attempt=0, job=1,
                     worker=worker, creation_time=created, start_time=start, end_time=end)


def by_ph(events: list[dict[str, Any]], ph: str) -> list[dict[str, Any]]:
    return [e for e in events if e["ph"] == ph]


def test_tasks_become_executions_on_their_worker_rows_with_submission_and_scheduling() -> None:
    nodes = [NodeLabel(OTHER, "10.0.0.2"), NodeLabel(HEAD, "10.0.0.1", is_head=True)]
    tasks = [entry("01" * 16, "f", HEAD, W1, 100.0, 100.5, 101.0),
             entry("02" * 16, "g", OTHER, W2, 100.2, 100.3, 100.4, state=TaskState.FAILED),
             entry("03" * 16, "never_ran", HEAD, "", 100.0, 0.0, 100.1, state=TaskState.CANCELLED),
             TaskEntry(task_id="04" * 16, state=TaskState.PENDING, node=HEAD, creation_time=100.0)]
    ev = build_trace(tasks, nodes)
    procs = {e["pid"]: e["args"]["name"] for e in ev if e["name"] == "process_name"}
    assert procs == {1: f"Node 10.0.0.1 {HEAD[:8]} (head)", 2: f"Node 10.0.0.2 {OTHER[:8]}"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in ev if e["name"] == "thread_name"}
    x = {e["name"]: e for e in by_ph(ev, "X")}
    assert set(x) == {"task::f", "task::g"}  # pending: no end; cancelled before a worker: no execution
    f, g = x["task::f"], x["task::g"]
    assert (f["pid"], f["ts"], f["dur"]) == (1, 100.5e6, 0.5e6)
    assert threads[(1, f["tid"])] == f"worker:{W1[:12]}" and threads[(2, g["tid"])] == f"worker:{W2[:12]}"
    assert f["args"]["state"] == "FINISHED" and g["args"]["state"] == "FAILED" and g["pid"] == 2
    submits = by_ph(ev, "i")
    assert len(submits) == 3 and {e["pid"] for e in submits} == {1}  # every one submitted at the head
    begins, ends = by_ph(ev, "b"), by_ph(ev, "e")
    spans = {b["args"]["name"]: (b["ts"], e["ts"]) for b in begins for e in ends if e["id"] == b["id"]}
    assert spans == {"f": (100.0e6, 100.5e6), "g": (pytest.approx(100.2e6), pytest.approx(100.3e6)),
                     "never_ran": (100.0e6, 100.1e6)}


def test_pipelined_calls_of_a_sequential_actor_start_when_the_previous_one_ended() -> None:
    actor = bytes(16)
    # The raylet handed both calls over at once; the worker ran them one after the other.
    tasks = [entry("01" * 16, "A.m", HEAD, W1, 10.0, 10.0, 11.0, actor=actor),
             entry("02" * 16, "A.m", HEAD, W1, 10.0, 10.0, 12.0, actor=actor)]
    x = sorted(by_ph(build_trace(tasks, [NodeLabel(HEAD, "ip")]), "X"), key=lambda e: e["ts"])
    assert [(e["ts"], e["dur"]) for e in x] == [(10.0e6, 1e6), (11.0e6, 1e6)]
    assert len({e["tid"] for e in x}) == 1


def test_overlapping_calls_of_a_concurrent_actor_get_rows_of_their_own() -> None:
    actor = bytes(16)
    tasks = [entry("01" * 16, "A.m", HEAD, W1, 10.0, 10.0, 11.0, actor=actor),
             entry("02" * 16, "A.m", HEAD, W1, 10.0, 10.1, 12.0, actor=actor),
             entry("03" * 16, "A.m", HEAD, W1, 10.0, 11.5, 13.0, actor=actor)]
    ev = build_trace(tasks, [NodeLabel(HEAD, "ip")], concurrent={actor.hex()})
    x = sorted(by_ph(ev, "X"), key=lambda e: e["ts"])
    assert [e["ts"] for e in x] == [10.0e6, 10.1e6, 11.5e6]
    assert x[0]["tid"] == x[2]["tid"] != x[1]["tid"]  # the third reuses the first's row once it is free
    rows = {e["args"]["name"] for e in ev if e["name"] == "thread_name" and e["tid"] != 0}
    assert rows == {f"worker:{W1[:12]}", f"worker:{W1[:12]} #2"}


def test_the_cli_parses_timeline_and_metrics_flags() -> None:
    from rayredis.cli.main import build_parser

    args = build_parser().parse_args(["timeline", "--output", "t.json", "--address", "127.0.0.1:1"])
    assert (args.output, args.address) == ("t.json", "127.0.0.1:1")
    args = build_parser().parse_args(["start", "--head", "--metrics-export-port", "8080"])
    assert args.metrics_export_port == 8080

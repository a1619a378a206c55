"""``rayredis.timeline()`` and ``rayredis timeline`` on a real local cluster: tasks and actor calls
become Chrome trace events on their node's and worker's rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import rayredis as ray
from rayredis._private import worker_context
from rayredis.util import state


@ray.remote
def nap(x: int) -> int:
    time.sleep(0.05)
    return x


@ray.remote
class Tally:
    def __init__(self) -> None:
        self.n = 0

    def add(self, k: int) -> int:
        self.n += k
        return self.n


def _wait_ended(n_tasks: int, timeout_s: float = 30.0) -> None:
    """Wait for the raylet's batched task-table writes of the ended tasks to land."""
    deadline = time.monotonic() + timeout_s
    while len(state.list_tasks(filters=[("state", "=", "FINISHED")], limit=1000)) < n_tasks:
        assert time.monotonic() < deadline, "the task table never showed the finished tasks"
        time.sleep(0.05)


def test_timeline_of_tasks_and_actor_calls(ray_start_regular: Any, tmp_path: Path) -> None:
    assert ray.get([nap.remote(i) for i in range(6)]) == list(range(6))
    t = Tally.remote()
    assert ray.get([t.add.remote(1) for _ in range(4)]) == [1, 2, 3, 4]
    _wait_ended(6 + 4 + 1)  # (the constructor too)

    events = ray.timeline()
    assert isinstance(events, list)
    json.dumps(events)  # serializable as it is
    x = [e for e in events if e["ph"] == "X"]
    naps = [e for e in x if e["name"] == "task::nap"]
    adds = [e for e in x if e["name"] == "task::Tally.add"]
    assert len(naps) == 6 and len(adds) == 4 and any(e["name"] == "task::Tally.__init__" for e in x)
    assert all(e["dur"] >= 0.05e6 for e in naps)  # (a nap sleeps 50 ms; the execution spans it)
    [node] = state.list_nodes()
    names = {(e["pid"], e.get("tid")): e["args"]["name"] for e in events if e["ph"] == "M" and "name" in e["args"]}
    assert {e["pid"] for e in x} == {1} and node.node_id[:8] in names[(1, None)]
    assert all(names[(1, e["tid"])].startswith("worker:") for e in x)
    # The actor's calls ran one at a time on one worker, in order, after its constructor.
    assert len({e["tid"] for e in adds}) == 1
    adds.sort(key=lambda e: e["ts"])
    assert all(a["ts"] + a["dur"] <= b["ts"] + 1 for a, b in zip(adds, adds[1:]))
    assert [e["args"]["state"] for e in adds] == ["FINISHED"] * 4
    by_task = {e["args"]["task_id"]: e for e in x}
    begins = {e["id"]: e for e in events if e["ph"] == "b"}
    ends = {e["id"]: e for e in events if e["ph"] == "e"}
    submits = {e["args"]["task_id"]: e for e in events if e["ph"] == "i"}
    assert set(begins) == set(ends) and len(begins) == len(x) and set(submits) == set(by_task)
    for tid, e in by_task.items():
        b, end = begins[f"{tid}:0"], ends[f"{tid}:0"]
        assert submits[tid]["ts"] <= b["ts"] <= end["ts"] <= e["ts"] + 1  # submit, scheduling, execution

    out = tmp_path / "trace.json"
    assert ray.timeline(filename=str(out)) is None
    assert {e["args"].get("task_id") for e in json.loads(out.read_text()) if e["ph"] == "X"} == set(by_task)

    cw = worker_context.global_worker
    assert cw is not None
    env = dict(os.environ, RAYREDIS_ADDRESS=cw.store.primary_address, RAYREDIS_REDIS_PASSWORD=cw.store.password or "")
    cli_out = tmp_path / "cli.json"
    res = subprocess.run([sys.executable, "-m", "rayredis.cli.main", "timeline", "--output", str(cli_out)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert str(cli_out) in res.stdout
    assert len([e for e in json.loads(cli_out.read_text()) if e["ph"] == "X"]) == len(x)


def test_timeline_needs_init() -> None:
    with pytest.raises(RuntimeError, match="init"):
        ray.timeline()

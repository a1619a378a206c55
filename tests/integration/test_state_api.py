"""The state API and its CLI (``rayredis list/get/summary/logs``) against a real local cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import yaml

import rayredis as ray
from rayredis._private import worker_context
from rayredis.util import state
from rayredis.util.placement_group import placement_group, remove_placement_group

CLI = [sys.executable, "-m", "rayredis.cli.main"]


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    cw = worker_context.global_worker
    assert cw is not None
    env = dict(os.environ, RAYREDIS_ADDRESS=cw.store.primary_address, RAYREDIS_REDIS_PASSWORD=cw.store.password or "")
    res = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)
    if ok:
        assert res.returncode == 0, f"rayredis {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args, "--format", "json").stdout)


def wait_until(what: str, cond: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait for the raylets' batched table writes (task ends, kills, object locations) to land."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"the tables never showed {what}"
        time.sleep(0.05)


@ray.remote
def square(x: int) -> int:
    return x * x


@ray.remote
def shout(word: str) -> str:
    print(f"shouting {word}", flush=True)
    return word


@ray.remote
def boom() -> None:
    raise ValueError("boom")


@ray.remote
def big() -> np.ndarray:
    return np.ones(2 * 2**20, dtype=np.uint8)


@ray.remote
class Greeter:
    def hello(self, who: str) -> str:
        print(f"hello, {who}", flush=True)
        return who


def test_state_api_and_cli_on_a_running_cluster(ray_start_regular: Any) -> None:
    assert ray.get([square.remote(i) for i in range(4)]) == [0, 1, 4, 9]
    shout_ref = shout.remote("louder")
    assert ray.get(shout_ref) == "louder"
    shout_task = shout_ref.hex()[:32]
    try:
        ray.get(boom.remote())
    except ValueError:
        pass
    g = Greeter.options(name="greeter").remote()
    assert ray.get(g.hello.remote("state api")) == "state api"
    doomed = Greeter.remote()
    ray.get(doomed.hello.remote("x"))
    ray.kill(doomed)
    pg = placement_group([{"CPU": 0.5}], strategy="PACK", name="pg1")
    ray.get(pg.ready())
    put_ref = ray.put(np.zeros(2**20, dtype=np.uint8))
    big_ref = big.remote()
    ray.get(big_ref)
    put_id, big_id = put_ref.hex(), big_ref.hex()

    wait_until("the finished tasks", lambda: {t.state for t in state.list_tasks(filters=[
        ("type", "!=", "ACTOR_CREATION_TASK"), ("name", "!=", "_bundle_reservation_check")])} == {"FINISHED", "FAILED"}
        and len(state.list_tasks(filters=[("state", "=", "FINISHED"), ("name", "=", "square")])) == 4)
    wait_until("the killed actor", lambda: len(state.list_actors(filters=[("state", "=", "DEAD")])) == 1)
    wait_until("both objects", lambda: {put_id, big_id} <= {o.object_id for o in state.list_objects()})

    [node] = state.list_nodes()
    assert node.state == "ALIVE" and node.is_head_node and node.resources_total["CPU"] == 2
    [job] = state.list_jobs()
    assert job.status == "RUNNING" and job.driver_pid == os.getpid()

    actors = {a.name or a.actor_id: a for a in state.list_actors()}
    assert actors["greeter"].state == "ALIVE" and actors["greeter"].class_name == "Greeter"
    assert actors["greeter"].node_id == node.node_id and actors["greeter"].pid
    dead = state.list_actors(filters=[("state", "=", "DEAD")])
    assert [a.actor_id for a in dead] == [doomed._actor_id.hex()]
    assert state.get_actor(actors["greeter"].actor_id) == actors["greeter"]

    tasks = state.list_tasks(filters=[("name", "=", "square")])
    assert len(tasks) == 4 and {t.state for t in tasks} == {"FINISHED"} and {t.type for t in tasks} == {"NORMAL_TASK"}
    assert {t.node_id for t in tasks} == {node.node_id}
    assert all(t.worker_id and t.creation_time_ms and t.end_time_ms and t.end_time_ms >= t.creation_time_ms
               for t in tasks)
    # (the worker may have exited since, e.g. reused for the killed actor: its log file stays)
    assert {f"worker-{t.worker_id[:12]}.out" for t in tasks if t.worker_id} <= set(state.list_logs()["worker_out"])
    hello_calls = state.list_tasks(filters=[("func_or_class_name", "=", "Greeter.hello")])
    assert len(hello_calls) == 2 and {t.type for t in hello_calls} == {"ACTOR_TASK"}
    assert len(state.list_tasks(limit=2)) == 2
    summary = state.summarize_tasks()["cluster"]
    assert summary["summary"]["square"]["state_counts"] == {"FINISHED": 4}
    assert summary["summary"]["Greeter"]["type"] == "ACTOR_CREATION_TASK"
    assert summary["summary"]["boom"]["state_counts"] == {"FAILED": 1}
    [failed] = state.list_tasks(filters=[("state", "=", "FAILED")])
    assert (failed.name, failed.error_type) == ("boom", "TASK_EXECUTION_EXCEPTION")
    assert state.summarize_actors()["cluster"]["summary"]["Greeter"]["state_counts"] == {"ALIVE": 1, "DEAD": 1}

    [pg_state] = state.list_placement_groups()
    assert (pg_state.name, pg_state.state, pg_state.bundles[0]["node_id"]) == ("pg1", "CREATED", node.node_id)

    objects = {o.object_id: o for o in state.list_objects()}
    assert put_id in objects and big_id in objects
    assert objects[big_id].object_size >= 2 * 2**20 and objects[big_id].node_ids == [node.node_id]
    assert state.summarize_objects()["cluster"]["summary"]["big"]["total_objects"] == 1

    # Logs: the actor's print is in its worker's .out file, found by actor id and by the worker's pid.
    greeter = actors["greeter"]
    assert "hello, state api\n" in list(state.get_log(actor_id=greeter.actor_id, tail=-1))
    assert any(w.pid == greeter.pid for w in state.list_workers())
    assert "hello, state api\n" in list(state.get_log(pid=greeter.pid, tail=-1))
    assert "shouting louder\n" in list(state.get_log(task_id=shout_task, tail=-1))
    followed = state.get_log(actor_id=greeter.actor_id, tail=1, follow=True)
    assert next(followed) == "hello, state api\n"  # the existing tail first, then it would wait for more
    followed.close()
    assert "raylet" in state.list_logs() and "gcs_server" in state.list_logs(node_id=node.node_id)

    # The CLI says the same, in every format.
    listed = cli_json("list", "actors", "--filter", "state=ALIVE")
    assert [a["name"] for a in listed] == ["greeter"] and listed[0]["class_name"] == "Greeter"
    assert yaml.safe_load(cli("list", "actors", "--format", "yaml").stdout) == cli_json("list", "actors")
    table = cli("list", "tasks", "--filter", "name=square").stdout
    assert "Total: 4" in table and table.count(" square ") == 4 and "FINISHED" in table
    assert len(cli_json("list", "tasks", "--limit", "3")) == 3
    assert cli_json("list", "nodes")[0]["node_id"] == node.node_id
    assert cli_json("list", "placement-groups")[0]["name"] == "pg1"
    assert put_id in {o["object_id"] for o in cli_json("list", "objects")}
    assert cli_json("list", "jobs")[0]["status"] == "RUNNING"
    assert cli_json("summary", "tasks")["cluster"]["summary"]["square"]["state_counts"] == {"FINISHED": 4}
    tasks_table = cli("summary", "tasks").stdout
    assert "Table (group by func_name):" in tasks_table and "total_actor_tasks: 2" in tasks_table
    assert re.search(r"^\d+\s+square\s+NORMAL_TASK\s+FINISHED: 4$", tasks_table, re.M), tasks_table
    assert "Greeter" in cli("summary", "actors").stdout
    assert "big" in cli("summary", "objects").stdout
    got = cli("get", "actors", greeter.actor_id, "--format", "json").stdout
    assert json.loads(got)["name"] == "greeter"
    bad = cli("list", "actors", "--filter", "colour=red", ok=False)
    assert bad.returncode == 1 and "unknown filter key 'colour'" in bad.stderr
    assert "raylet.log" in cli("logs").stdout
    assert "hello, state api" in cli("logs", "--actor-id", greeter.actor_id).stdout
    assert cli("logs", "--pid", str(greeter.pid), "--tail", "1").stdout == "hello, state api\n"
    assert "shouting louder" in cli("logs", "--task-id", shout_task).stdout
    missing = cli("logs", "--task-id", "f" * 32, ok=False)
    assert missing.returncode == 1 and "is not in the task table" in missing.stderr

    remove_placement_group(pg)

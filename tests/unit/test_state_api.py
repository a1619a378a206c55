"""The state API's core: records built from table entries in a real redis-server, filters, summaries, logs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from rayredis import exceptions
from rayredis._private import state_reader as reader
from rayredis._private import state_records as sr
from rayredis._private.redis_server import free_port
from rayredis.cli.observe import render_table
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store import keys
from rayredis.store.tables import NodeInfo, NodeLoad
from rayredis.util import state
from tests.unit.conftest import REDIS_PASSWORD

NODE_A, NODE_B = "a" * 32, "b" * 32


@pytest.fixture
def store(redis_port: int) -> Iterator[Any]:
    """A stand-in for ShardedRedis over one real redis-server: the primary and the only data shard."""
    client = redis.Redis(port=redis_port, password=REDIS_PASSWORD)
    client.flushdb()
    try:
        yield SimpleNamespace(primary=client, shards=[client, client], shard_addresses=["s0", "s0"])
    finally:
        client.flushdb()
        client.close()


def add_node(store: Any, node_id: str, session_dir: str, *, head: bool, state: str = "ALIVE") -> None:
    info = NodeInfo(node_id=node_id, address="127.0.0.1:1", node_ip="127.0.0.1", resources={"CPU": 2.0},
                    session_dir=session_dir, start_time=10.0, is_head=head)
    load = NodeLoad(available={"CPU": 1.0}, total={"CPU": 2.0}, workers=3, object_store_used=7)
    p = store.primary
    p.hset(keys.nodes_key(), node_id, info.to_json())
    p.hset(keys.node_state_key(), node_id, state)
    p.hset(keys.node_load_key(), node_id, load.to_json())


def add_actor(store: Any, actor_id: str, state: str, class_name: str, **fields: Any) -> None:
    store.primary.sadd(keys.actors_index_key(), actor_id)
    store.primary.hset(keys.actor_key(actor_id), mapping={"state": state, "class_name": class_name, "job": 1,
                                                          "namespace": "ns", **fields})


def add_task(store: Any, task_id: str, state: str, name: str, kind: int = pb.NORMAL_TASK,
             actor_id: bytes = b"") -> None:
    spec = pb.TaskSpec(task_id=bytes.fromhex(task_id), job_id=1, kind=kind, name=name, actor_id=actor_id,
                       resources={"CPU": 1.0})
    store.primary.hset(keys.task_key(task_id), mapping={"spec": spec.SerializeToString(), "state": state,
                                                        "node": NODE_A, "attempt": 0, "job": 1,
                                                        "creation_time": 100.25})
    if state in ("FINISHED", "FAILED"):
        store.primary.hset(keys.task_key(task_id), mapping={"end_time": 101.5, "worker": "e" * 32})
    if state == "FAILED":
        store.primary.hset(keys.task_key(task_id), "error_type", "WORKER_DIED")


def test_nodes_jobs_and_placement_groups_have_rays_fields(store: Any) -> None:
    add_node(store, NODE_A, "/nonexistent/a", head=True)
    add_node(store, NODE_B, "/nonexistent/b", head=False, state="DEAD")
    store.primary.hset(keys.jobs_key(), "1", json.dumps({"job_id": 1, "driver_pid": 42, "node_id": NODE_A,
                                                        "namespace": "ns", "entrypoint": "x.py"}))
    store.primary.hset(keys.job_state_key(), "1", "FINISHED")
    store.primary.sadd(keys.placement_groups_index_key(), "c" * 32)
    store.primary.hset(keys.placement_group_key("c" * 32), mapping={
        "state": "CREATED", "bundles": json.dumps([{"CPU": 1.0}, {"CPU": 2.0}]), "strategy": "SPREAD",
        "nodes": json.dumps([NODE_A, NODE_B]), "job": 1, "name": "pg"})

    nodes = reader.nodes(store)
    assert [(n.node_id, n.state, n.is_head_node) for n in nodes] == [(NODE_A, "ALIVE", True), (NODE_B, "DEAD", False)]
    assert nodes[0].resources_total == {"CPU": 2.0} and nodes[0].resources_available == {"CPU": 1.0}
    assert nodes[0].start_time_ms == 10_000 and nodes[0].num_workers == 3
    [job] = reader.jobs(store)
    assert (job.job_id, job.status, job.driver_pid, job.entrypoint) == ("1", "FINISHED", 42, "x.py")
    [pg] = reader.placement_groups(store)
    assert (pg.placement_group_id, pg.name, pg.state, pg.strategy, pg.creator_job_id) == (
        "c" * 32, "pg", "CREATED", "SPREAD", "1")
    assert pg.bundles[1] == {"bundle_id": 1, "unit_resources": {"CPU": 2.0}, "node_id": NODE_B}


def test_actors_with_filters_and_limit(store: Any) -> None:
    add_actor(store, "1" * 32, "ALIVE", "Counter", node=NODE_A, pid=11, worker="w" * 32, name="c1")
    add_actor(store, "2" * 32, "DEAD", "Counter", node=NODE_A, pid=12, death_cause="killed by ray.kill")
    add_actor(store, "3" * 32, "PENDING_CREATION", "Other")
    actors = reader.actors(store)
    assert [a.state for a in actors] == ["ALIVE", "DEAD", "PENDING_CREATION"]
    assert actors[0].node_id == NODE_A and actors[0].pid == 11 and actors[0].name == "c1"
    assert actors[1].death_cause == {"error_message": "killed by ray.kill"}
    assert actors[2].node_id is None and actors[2].pid is None

    assert [a.actor_id for a in sr.apply_filters(actors, [("state", "=", "ALIVE")], None)] == ["1" * 32]
    assert [a.actor_id for a in sr.apply_filters(actors, [("state", "=", "alive")], None)] == ["1" * 32]
    assert len(sr.apply_filters(actors, [("class_name", "!=", "Counter")], None)) == 1
    assert len(sr.apply_filters(actors, [("class_name", "=", "Counter"), ("state", "!=", "DEAD")], None)) == 1
    assert len(sr.apply_filters(actors, [("is_detached", "=", "false")], None)) == 3
    assert len(sr.apply_filters(actors, [], 2)) == 2
    with pytest.raises(sr.StateApiError, match="unknown filter key 'colour'"):
        sr.apply_filters(actors, [("colour", "=", "red")], None)
    with pytest.raises(sr.StateApiError, match="unsupported predicate"):
        sr.apply_filters(actors, [("state", ">", "A")], None)

    summary = sr.summarize_actor_records(actors)["cluster"]
    assert summary["total_actors"] == 3
    assert summary["summary"]["Counter"]["state_counts"] == {"ALIVE": 1, "DEAD": 1}


def test_tasks_take_name_type_and_resources_from_the_spec(store: Any) -> None:
    actor = bytes.fromhex("1" * 32)
    add_task(store, "10" * 16, "FINISHED", "f")
    add_task(store, "11" * 16, "FAILED", "f")
    add_task(store, "12" * 16, "FINISHED", "Counter.__init__", pb.ACTOR_CREATION, actor)
    add_task(store, "13" * 16, "PENDING", "Counter.add", pb.ACTOR_TASK, actor)
    store.primary.hset(keys.task_key("14" * 16), mapping={"state": "CANCELLED", "spec": b"\xff\xfe garbage"})
    tasks = reader.tasks(store)  # two shard clients on one server: each task listed once
    assert [(t.name, t.type, t.state) for t in tasks] == [
        ("f", "NORMAL_TASK", "FINISHED"), ("f", "NORMAL_TASK", "FAILED"),
        ("Counter.__init__", "ACTOR_CREATION_TASK", "FINISHED"), ("Counter.add", "ACTOR_TASK", "PENDING"),
        ("<unknown>", "NORMAL_TASK", "CANCELLED")]
    assert tasks[0].required_resources == {"CPU": 1.0} and tasks[0].node_id == NODE_A and tasks[0].actor_id is None
    assert tasks[2].func_or_class_name == "Counter" and tasks[3].actor_id == "1" * 32
    assert (tasks[0].creation_time_ms, tasks[0].end_time_ms, tasks[0].worker_id) == (100_250, 101_500, "e" * 32)
    assert (tasks[3].end_time_ms, tasks[3].worker_id) == (None, None)
    assert [t.error_type for t in tasks[:2]] == [None, "WORKER_DIED"]
    assert [t.task_id for t in sr.apply_filters(tasks, [("error_type", "=", "WORKER_DIED")], None)] == ["11" * 16]

    s = sr.summarize_task_records(tasks)["cluster"]
    assert (s["total_tasks"], s["total_actor_tasks"], s["total_actor_scheduled"]) == (3, 1, 1)
    assert s["summary"]["f"]["state_counts"] == {"FINISHED": 1, "FAILED": 1}


def test_objects_and_their_summary(store: Any) -> None:
    add_task(store, "10" * 16, "FINISHED", "make")
    oid = "10" * 16 + "01000000"
    store.primary.hset(keys.object_key(oid), mapping={"size": 2**20, "task": "10" * 16, "error": 0,
                                                      "loc:" + NODE_A: 1, "loc:" + NODE_B: 1})
    [obj] = reader.objects(store)
    assert (obj.object_id, obj.object_size, obj.is_error, obj.node_ids) == (oid, 2**20, False, [NODE_A, NODE_B])
    s = sr.summarize_object_records([obj], {t.task_id: t for t in reader.tasks(store)})["cluster"]
    assert s["total_objects"] == 1 and s["total_size_mb"] == 1.0
    assert s["summary"]["make"] == {"total_objects": 1, "total_size_mb": 1.0, "total_num_nodes": 2,
                                    "task_state_counts": {"FINISHED": 1}}


def test_ray_error_types_of_system_errors() -> None:
    assert exceptions.ray_error_type(exceptions.WorkerCrashedError("gone")) == "WORKER_DIED"
    assert exceptions.ray_error_type(exceptions.TaskCancelledError("t")) == "TASK_CANCELLED"
    assert exceptions.ray_error_type(ValueError("app")) == ""


def test_no_cluster_is_a_connection_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAYREDIS_ADDRESS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("RAYREDIS_TEMP_DIR", str(tmp_path))
    with pytest.raises(ConnectionError, match="127.0.0.1"):
        state.list_actors(address="auto")


def test_parse_filter() -> None:
    assert sr.parse_filter("state=ALIVE") == ("state", "=", "ALIVE")
    assert sr.parse_filter(" name != a=b ") == ("name", "!=", "a=b")
    for bad in ("state", "=x", ""):
        with pytest.raises(sr.StateApiError):
            sr.parse_filter(bad)


def test_logs_and_workers_of_this_hosts_session(store: Any, tmp_path: Path) -> None:
    session = tmp_path / "session"
    (session / "logs").mkdir(parents=True)
    (session / "pids").mkdir()
    wid = "ab" * 16
    (session / "logs" / f"worker-{wid[:12]}.out").write_text("".join(f"line {i}\n" for i in range(5)))
    (session / "logs" / f"worker-{wid[:12]}.err").write_text("oops\n")
    (session / "logs" / "raylet.log").write_text("raylet\n")
    (session / "pids" / str(os.getpid())).write_text(json.dumps(
        {"pid": os.getpid(), "role": "worker", "cmdline": ["python", "-m", "rayredis.worker", "--worker-id", wid]}))
    (session / "pids" / "1").write_text(json.dumps({"pid": 1, "role": "raylet", "cmdline": []}))
    add_node(store, NODE_A, str(session), head=True)
    add_node(store, NODE_B, str(tmp_path / "elsewhere"), head=False)  # another host's node: no files here
    add_actor(store, "1" * 32, "ALIVE", "Counter", node=NODE_A, pid=os.getpid(), worker=wid)

    files = reader.log_files(store)
    assert {f.node_id for f in files} == {NODE_A}
    assert sorted(f.name for f in files) == ["raylet.log", f"worker-{wid[:12]}.err", f"worker-{wid[:12]}.out"]
    assert reader.log_files(store, NODE_B[:6]) == []
    assert sorted(sr.log_category(f.name) for f in files) == ["raylet", "worker_err", "worker_out"]

    [w] = reader.workers(store)
    assert (w.worker_id, w.pid, w.node_id, w.is_alive, w.log_name) == (wid, os.getpid(), NODE_A, True,
                                                                         f"worker-{wid[:12]}")
    by_actor = reader.resolve_log(store, None, None, "1" * 32, None, "out")
    assert by_actor.name == f"worker-{wid[:12]}.out"
    assert list(reader.stream_log(by_actor.path, 2, False)) == ["line 3\n", "line 4\n"]
    assert reader.resolve_log(store, None, None, None, os.getpid(), "err").name == f"worker-{wid[:12]}.err"
    assert list(reader.stream_log(reader.resolve_log(store, NODE_A, "raylet.log", None, None, "out").path, -1,
                                  False)) == ["raylet\n"]
    with pytest.raises(sr.StateApiError, match="no worker process with pid 1"):
        reader.resolve_log(store, None, None, None, 1, "out")
    with pytest.raises(sr.StateApiError, match="no log file 'missing.log'"):
        reader.resolve_log(store, None, "missing.log", None, None, "out")


def test_tail_lines_and_pid_records() -> None:
    assert sr.tail_lines("a\nb\nc\n", 2) == ["b", "c"]
    assert sr.tail_lines("a\nb\n", -1) == ["a", "b"]
    assert sr.tail_lines("a\nb\n", 0) == []
    assert sr.parse_pid_record("not json") is None
    assert sr.parse_pid_record(json.dumps({"pid": 3, "cmdline": ["x", "--worker-id"]})) == {
        "pid": 3, "cmdline": ["x", "--worker-id"]}


def test_table_rendering_follows_rays_layout() -> None:
    out = render_table("List", [{"actor_id": "a1", "state": "ALIVE", "pid": None},
                                {"actor_id": "a2", "state": "DEAD", "pid": 7}], ("actor_id", "state", "pid"))
    lines = out.splitlines()
    assert lines[0].startswith("======== List: ") and "Total: 2" in lines
    table = lines[lines.index("Table:") + 2:]
    assert table[0].split() == ["ACTOR_ID", "STATE", "PID"]
    assert table[1].split() == ["0", "a1", "ALIVE"] and table[2].split() == ["1", "a2", "DEAD", "7"]

"""store/tables.py: parsers of every table's raw entries, the sync readers and the script argument builders."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from rayredis.actor import creation_fields
from rayredis.actor_state import ActorState
from rayredis.common.resources import ResourceSet
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store import keys, tables
from rayredis.store.tables import JobState, NodeState, PlacementGroupState, TaskState


def stored(v: Any) -> bytes:
    """A value as Redis stores it (what redis-py sends: bytes as is, numbers and text as UTF-8)."""
    return v if isinstance(v, bytes) else str(v).encode()


def as_hash(fields: Mapping[str, Any]) -> dict[bytes, bytes]:
    return {k.encode(): stored(v) for k, v in fields.items()}


class FakeRedis:
    """The few blocking-client calls the readers and writers use, on dicts of bytes like Redis keeps."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[bytes, bytes]] = {}
        self.sets: dict[str, set[bytes]] = {}
        self.published: list[tuple[str, str]] = []

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        return dict(self.hashes.get(key, {}))

    def hget(self, key: str, field: str) -> bytes | None:
        return self.hashes.get(key, {}).get(field.encode())

    def hset(self, key: str, field: str | None = None, value: Any = None,
             mapping: Mapping[str, Any] | None = None) -> int:
        h = self.hashes.setdefault(key, {})
        items = dict(mapping or {})
        if field is not None:
            items[field] = value
        h.update(as_hash(items))
        return len(items)

    def smembers(self, key: str) -> set[bytes]:
        return set(self.sets.get(key, set()))

    def sadd(self, key: str, member: str) -> int:
        self.sets.setdefault(key, set()).add(member.encode())
        return 1

    def publish(self, channel: str, message: str) -> int:
        self.published.append((channel, message))
        return 0

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    """Queues calls on a FakeRedis and runs them in order on ``execute``, like a redis-py pipeline."""

    def __init__(self, client: FakeRedis) -> None:
        self.client = client
        self.queued: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def queue(*args: Any, **kwargs: Any) -> FakePipeline:
            self.queued.append((name, args, kwargs))
            return self
        return queue

    def execute(self) -> list[Any]:
        return [getattr(self.client, name)(*args, **kwargs) for name, args, kwargs in self.queued]


def node_info(node_id: str, *, head: bool = False, cpus: float = 2.0) -> tables.NodeInfo:
    return tables.NodeInfo(node_id=node_id, address=f"10.0.0.1:{7000 + int(node_id, 16) % 100}", node_ip="10.0.0.1",
                           resources={"CPU": cpus, "memory": 1e9}, object_store_memory=1 << 20,
                           session_dir="/tmp/s", pid=42, start_time=1.5, is_head=head, socket="\0rr-sock")


# ---- nodes -------------------------------------------------------------------------------------


def test_node_info_and_load_round_trip_through_json() -> None:
    info = node_info("0a", head=True)
    assert tables.NodeInfo.from_json(info.to_json()) == info
    assert info.port == 7010
    load = tables.NodeLoad(available={"CPU": 1.0}, total={"CPU": 2.0, "bundle_group_x": 1.0}, queued=3, running=1,
                           object_store_used=10, object_store_capacity=100, num_objects=2, workers=4, time=9.5)
    assert tables.NodeLoad.from_json(load.to_json()) == load


def test_parse_nodes_joins_the_four_tables() -> None:
    infos = {b"aa": node_info("aa", head=True).to_json().encode(), b"bb": node_info("bb").to_json().encode()}
    states = {b"aa": b"ALIVE", b"bb": b"DEAD", b"cc": b"ALIVE"}  # cc: a state but no registration
    loads = {b"aa": tables.NodeLoad(available={"CPU": 0.5}, total={"CPU": 2.0}).to_json().encode()}
    beats = {b"aa": b"17"}
    nodes = tables.parse_nodes([infos, states, loads, beats])
    assert [n.node_id for n in nodes] == ["aa", "bb", "cc"]
    aa, bb, cc = nodes
    assert aa.state == "ALIVE" and aa.alive and aa.heartbeats == 17 and aa.info == node_info("aa", head=True)
    assert aa.load is not None and aa.load.available == {"CPU": 0.5}
    assert bb.state == "DEAD" and not bb.alive and bb.load is None and bb.heartbeats == 0
    assert cc.state == "ALIVE" and cc.info is None and not cc.alive


def test_parse_nodes_registered_without_state_is_unknown() -> None:
    (n,) = tables.parse_nodes([{b"dd": node_info("dd").to_json().encode()}, {}, {}, {}])
    assert n.state == "UNKNOWN" and not n.alive


def test_alive_puts_the_head_first_then_node_ids() -> None:
    records = [tables.NodeRecord(nid, NodeState.ALIVE.value, node_info(nid, head=nid == "cc"))
               for nid in ("bb", "aa", "cc")]
    records.append(tables.NodeRecord("ab", NodeState.DEAD.value, node_info("ab")))
    assert [n.node_id for n in tables.alive(records)] == ["cc", "aa", "bb"]


def test_view_uses_the_heartbeat_totals_which_include_bundles() -> None:
    info = node_info("aa", cpus=4.0)
    load = tables.NodeLoad(available={"CPU": 1.0, "CPU_group_abc": 1.0}, total={"CPU": 3.0, "CPU_group_abc": 1.0},
                           queued=5)
    v = tables.NodeRecord("aa", "ALIVE", info, load).view()
    assert (v.node_id, v.address, v.queued) == ("aa", info.address, 5)
    assert v.total == ResourceSet.from_floats(load.total)
    assert v.available == ResourceSet.from_floats(load.available)


def test_view_without_a_heartbeat_uses_the_registration() -> None:
    info = node_info("aa", cpus=4.0)
    v = tables.NodeRecord("aa", "ALIVE", info).view()
    assert v.total == v.available == ResourceSet.from_floats(info.resources) and v.queued == 0


def test_read_nodes_is_one_pipeline_over_the_node_tables() -> None:
    r = FakeRedis()
    r.hset(keys.nodes_key(), "aa", node_info("aa").to_json())
    r.hset(keys.node_state_key(), "aa", "ALIVE")
    r.hset(keys.node_heartbeat_key(), "aa", 3)
    pipe = FakePipeline(r)
    tables.queue_nodes(pipe)
    assert [(name, args) for name, args, _ in pipe.queued] == [
        ("hgetall", (keys.nodes_key(),)), ("hgetall", (keys.node_state_key(),)),
        ("hgetall", (keys.node_load_key(),)), ("hgetall", (keys.node_heartbeat_key(),))]
    assert tables.read_nodes(r) == [tables.NodeRecord("aa", "ALIVE", node_info("aa"), None, 3)]
    assert tables.node_alive(r, "aa") and not tables.node_alive(r, "bb")


def test_node_state_cas_args() -> None:
    assert tables.node_state_cas_args("aa", "ALIVE", NodeState.DEAD) == (
        [keys.node_state_key()], ["aa", "ALIVE", "DEAD", keys.node_channel(), "aa"])


# ---- jobs --------------------------------------------------------------------------------------


def test_job_info_round_trip_and_state_cas_args() -> None:
    job = tables.JobInfo(job_id=3, driver_pid=99, node_id="aa", namespace="ns", entrypoint="python x.py",
                         start_time=2.0)
    assert tables.JobInfo.from_json(job.to_json()) == job
    assert tables.job_state_cas_args(3, "RUNNING", JobState.FINISHED) == (
        [keys.job_state_key()], ["3", "RUNNING", "FINISHED", keys.job_channel(), "3"])


# ---- actors ------------------------------------------------------------------------------------


def creation_spec(name: str = "counter", namespace: str = "ns", detached: bool = True) -> pb.TaskSpec:
    spec = pb.TaskSpec(task_id=b"t" * 24, kind=pb.ACTOR_CREATION, function_id=b"f" * 16, name="Counter.__init__",
                       actor_id=b"\x01" * 16, num_returns=0, job_id=7, namespace=namespace)
    ao = spec.actor_options
    ao.max_restarts, ao.max_task_retries, ao.max_concurrency = 3, 2, 8
    ao.is_async, ao.detached, ao.name, ao.namespace, ao.class_name = True, detached, name, namespace, "Counter"
    return spec


def test_actor_entry_parses_every_field_the_creator_writes() -> None:
    spec = creation_spec()
    methods = {"incr": 1, "pair": 2}
    fields = creation_fields(spec, methods, owner_node="ab" * 16)
    aid = spec.actor_id.hex()
    e = tables.ActorEntry.from_redis(aid, as_hash(fields))
    assert e == tables.ActorEntry(
        actor_id=aid, state=ActorState.PENDING_CREATION, spec=spec.SerializeToString(), attempt=-1, num_restarts=0,
        max_restarts=3, max_task_retries=2, name="counter", namespace="ns", name_key="ns/counter", job=7,
        detached=True, class_name="Counter", methods=methods, is_async=True, owner_node="ab" * 16)
    assert pb.TaskSpec.FromString(e.spec) == spec
    # Every written field is one the record knows (nothing the creator writes is dropped on read).
    assert set(fields) <= set(tables.ActorEntry.__dataclass_fields__) - {"actor_id"}


def test_actor_entry_of_an_unnamed_actor_has_no_name_key() -> None:
    spec = creation_spec(name="", detached=False)
    e = tables.ActorEntry.from_redis("01", as_hash(creation_fields(spec, {}, owner_node="")))
    assert e is not None and (e.name, e.name_key, e.detached, e.methods) == ("", "", False, {})


def test_actor_entry_later_fields_and_empty_hash() -> None:
    raw = as_hash({"state": "ALIVE", "node": "aa", "worker": "ww", "pid": 123, "attempt": 2,
                   "death_cause": "", "class_name": "C", "methods": "{}"})
    e = tables.ActorEntry.from_redis("01", raw)
    assert e is not None and (e.state, e.node, e.worker, e.pid, e.attempt) == (ActorState.ALIVE, "aa", "ww", 123, 2)
    assert tables.ActorEntry.from_redis("01", {}) is None


def test_actor_create_call_keys_and_argv() -> None:
    fields = {"state": ActorState.PENDING_CREATION, "name_key": "ns/a", "attempt": -1}
    assert tables.actor_create_call("01", fields) == (
        [keys.actor_key("01"), keys.named_actors_key(), keys.actors_index_key(), keys.live_actors_key()],
        ["01", "ns/a", keys.actor_channel(), "state", "PENDING_CREATION", "name_key", "ns/a", "attempt", -1])
    assert tables.actor_create_call("02", {"attempt": -1})[1][:3] == ["02", "", keys.actor_channel()]


def test_actor_transition_call_keys_and_argv() -> None:
    assert tables.actor_transition_call("01", "SCHEDULED,ALIVE", "2", {"state": ActorState.DEAD, "pid": 0}) == (
        [keys.actor_key("01"), keys.named_actors_key(), keys.live_actors_key(), keys.dead_actors_key()],
        ["SCHEDULED,ALIVE", "2", keys.actor_channel(), "01", "state", "DEAD", "pid", 0])


def test_read_actor_and_read_named_actor() -> None:
    r = FakeRedis()
    spec = creation_spec()
    aid = spec.actor_id.hex()
    r.hset(keys.actor_key(aid), mapping=creation_fields(spec, {"incr": 1}, owner_node="aa"))
    r.hset(keys.named_actors_key(), "ns/counter", aid)
    named = tables.read_named_actor(r, "ns", "counter")
    assert named is not None and named == tables.read_actor(r, aid) and named.methods == {"incr": 1}
    assert tables.read_named_actor(r, "other", "counter") is None
    assert tables.read_actor(r, "ff" * 16) is None


# ---- placement groups --------------------------------------------------------------------------


def test_placement_group_create_then_read() -> None:
    r = FakeRedis()
    pipe = r.pipeline(transaction=True)
    tables.queue_placement_group_create(pipe, "p1", [{"CPU": 1}, {"GPU": 2, "CPU": 0.5}], "STRICT_SPREAD",
                                        name="g", job=4, detached=True, namespace="ns", created=12.5)
    pipe.execute()
    assert r.smembers(keys.placement_groups_index_key()) == {b"p1"}
    assert r.published == [(keys.placement_group_channel(), "p1")]
    assert tables.read_placement_group(r, "p1") == tables.PlacementGroupEntry(
        pg_id="p1", state=PlacementGroupState.PENDING, bundles=[{"CPU": 1.0}, {"GPU": 2.0, "CPU": 0.5}],
        strategy="STRICT_SPREAD", nodes=[], name="g", namespace="ns", job=4, detached=True, created=12.5)


def test_placement_group_entry_after_placement() -> None:
    raw = as_hash({"state": "CREATED", "bundles": json.dumps([{"CPU": 1.0}]), "strategy": "PACK",
                   "nodes": json.dumps(["aa"]), "returned": "1"})
    e = tables.PlacementGroupEntry.from_redis("p1", raw)
    assert e is not None and e.state is PlacementGroupState.CREATED and e.nodes == ["aa"] and e.returned
    assert (e.name, e.job, e.detached, e.created) == ("", 0, False, 0.0)
    assert tables.PlacementGroupEntry.from_redis("p1", {}) is None


def test_read_placement_groups_sorted_and_skips_missing_entries() -> None:
    r = FakeRedis()
    for pg in ("p2", "p1"):
        r.hset(keys.placement_group_key(pg), mapping={"state": "PENDING", "bundles": "[]", "strategy": "PACK"})
        r.sadd(keys.placement_groups_index_key(), pg)
    r.sadd(keys.placement_groups_index_key(), "p3")  # indexed, entry gone
    assert [e.pg_id for e in tables.read_placement_groups(r)] == ["p1", "p2"]


def test_pg_state_cas_args() -> None:
    assert tables.pg_state_cas_args("p1", PlacementGroupState.CREATED, PlacementGroupState.REMOVED) == (
        [keys.placement_group_key("p1")], ["state", "CREATED", "REMOVED", keys.placement_group_channel(), "p1"])


# ---- tasks and objects -------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "terminal"), [
    (TaskState.PENDING, False), (TaskState.RUNNING, False), (TaskState.FINISHED, True), (TaskState.FAILED, True),
    (TaskState.CANCELLED, True)])
def test_task_state_terminal(state: TaskState, terminal: bool) -> None:
    assert state.terminal is terminal


def test_task_entry() -> None:
    raw = as_hash({"state": "FAILED", "spec": b"\x00spec", "node": "aa", "attempt": 2, "job": 5})
    assert tables.TaskEntry.from_redis("t1", raw) == tables.TaskEntry("t1", TaskState.FAILED, b"\x00spec", "aa", 2, 5)
    assert tables.TaskEntry.from_redis("t1", {}) is None


def test_object_sealed_then_parsed_with_its_locations() -> None:
    r = FakeRedis()
    oid = "ab" * 20
    pipe = r.pipeline(transaction=False)
    tables.queue_object_sealed(pipe, oid, 1024, False, "n1")
    tables.queue_object_sealed(pipe, oid, 1024, False, "n2")
    pipe.execute()
    assert r.published == [(keys.object_channel(), oid)] * 2
    e = tables.ObjectEntry.from_redis(oid, r.hgetall(keys.object_key(oid)))
    assert e == tables.ObjectEntry(oid, 1024, task=oid[:32], error=False, locations=frozenset({"n1", "n2"}))
    assert tables.location_field("n1") == "loc:n1"


def test_object_entry_error_flag_and_empty_hash() -> None:
    e = tables.ObjectEntry.from_redis("o1", as_hash({"size": 5, "task": "t", "error": 1}))
    assert e is not None and e.error and e.locations == frozenset()
    assert tables.ObjectEntry.from_redis("o1", {}) is None

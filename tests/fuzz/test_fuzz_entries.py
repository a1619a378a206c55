"""Fuzz the parsers of Redis entries read back: any bytes, and valid entries with one field
corrupted, parse into a record or raise ``CorruptEntryError`` (never another error), and the
readers of whole tables skip a corrupt entry instead of failing."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rayredis.store import tables
from rayredis.store.corrupt import CorruptEntryError
from tests.fuzz.proto_strategies import mutated

NODE = "ab" * 16
INFO = tables.NodeInfo(node_id=NODE, address="127.0.0.1:1", node_ip="127.0.0.1", resources={"CPU": 2.0}).to_json()
LOAD = tables.NodeLoad(available={"CPU": 1.0}, total={"CPU": 2.0}).to_json()
JOB = tables.JobInfo(job_id=1, driver_pid=2, node_id=NODE, namespace="ns").to_json()
ACTOR = {b"state": b"ALIVE", b"spec": b"\x0a\x00", b"node": NODE.encode(), b"pid": b"12", b"attempt": b"0",
         b"methods": b'{"f": {"num_returns": 1}}', b"job": b"1"}
PG = {b"state": b"PENDING", b"bundles": b'[{"CPU": 1.0}]', b"nodes": b'["n"]', b"job": b"1",
      b"txn": b'{"seq": 1, "moves": [[0, "n"]]}', b"txn_phase": b"PREPARING", b"created": b"1.5"}
TASK = {b"state": b"FINISHED", b"spec": b"", b"attempt": b"0", b"creation_time": b"1.0"}
OBJ = {b"size": b"10", b"task": b"t", b"error": b"0", b"loc:" + NODE.encode(): b"1"}

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                           max_leaves=8)
junk = st.one_of(st.binary(max_size=64), json_values.map(lambda v: json.dumps(v).encode()))


def _parses_or_corrupt(parse: Any, *args: Any) -> None:
    try:
        parse(*args)
    except CorruptEntryError as e:
        assert "corrupt Redis entry" in str(e)


def _json_field_swapped(raw: str, data: st.DataObject) -> bytes:
    d = json.loads(raw)
    d[data.draw(st.sampled_from(sorted(d)))] = data.draw(json_values)
    return json.dumps(d).encode()


@given(st.data())
def test_json_entries(data: st.DataObject) -> None:
    parse, valid = data.draw(st.sampled_from([(tables.NodeInfo.from_json, INFO), (tables.NodeLoad.from_json, LOAD),
                                              (tables.JobInfo.from_json, JOB)]))
    raw = data.draw(st.one_of(junk, mutated(valid.encode()), st.just(_json_field_swapped(valid, data))))
    _parses_or_corrupt(parse, raw)


@given(st.data())
def test_hash_entries(data: st.DataObject) -> None:
    parse, valid = data.draw(st.sampled_from([(tables.ActorEntry.from_redis, ACTOR),
                                              (tables.PlacementGroupEntry.from_redis, PG),
                                              (tables.TaskEntry.from_redis, TASK),
                                              (tables.ObjectEntry.from_redis, OBJ)]))
    raw = dict(valid)
    for _ in range(data.draw(st.integers(1, 3))):
        field = data.draw(st.one_of(st.sampled_from(sorted(raw)), st.binary(max_size=8)))
        raw[field] = data.draw(st.one_of(junk, mutated(raw.get(field, b""))))
    _parses_or_corrupt(parse, "ab" * 16, raw)


@given(infos=st.dictionaries(st.binary(max_size=34), junk, max_size=3),
       states=st.dictionaries(st.binary(max_size=34), st.binary(max_size=8), max_size=3),
       loads=st.dictionaries(st.binary(max_size=34), junk, max_size=3),
       beats=st.dictionaries(st.binary(max_size=34), st.binary(max_size=8), max_size=3))
def test_node_table_skips_corrupt_entries(infos: dict[bytes, bytes], states: dict[bytes, bytes],
                                          loads: dict[bytes, bytes], beats: dict[bytes, bytes]) -> None:
    infos[NODE.encode()] = INFO.encode()
    states[NODE.encode()] = b"ALIVE"
    records = tables.parse_nodes([infos, states, loads, beats])
    assert NODE in [r.node_id for r in records]  # the good node survives its neighbours' corruption
    for r in records:
        bytes.fromhex(r.node_id)
        if r.info is not None:
            assert isinstance(r.info.address, str) and all(isinstance(v, float) for v in r.info.resources.values())
        if r.alive:
            r.view()  # the scheduler's view of it can be built


@given(st.dictionaries(st.binary(max_size=12), st.binary(max_size=10), max_size=5))
def test_finished_jobs_skip_corrupt_entries(states: dict[bytes, bytes]) -> None:
    states[b"7"] = b"FINISHED"
    assert 7 in tables._finished(states.items())

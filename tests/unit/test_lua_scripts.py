"""The CAS Lua scripts of store/scripts/, run by a real redis-server (no rayredis processes)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from rayredis.store import keys, tables
from rayredis.store.scripts import NAMES, Scripts, source
from tests.unit.conftest import REDIS_PASSWORD

PASSWORD = REDIS_PASSWORD
CH = keys.actor_channel()
SENTINEL = "unit-test-sentinel"


@pytest.fixture
def r(redis_port: int) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_port, password=PASSWORD)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def scripts(r: redis.Redis) -> Scripts:
    return Scripts(r)


@pytest.fixture
def sub(r: redis.Redis) -> Iterator[Any]:
    """A subscription to every channel; ``drain()`` returns (channel, data) pairs published so far."""
    ps = r.pubsub()
    ps.psubscribe("*")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # wait for the psubscribe confirmation
        msg = ps.get_message(timeout=0.1)
        if msg and msg["type"] == "psubscribe":
            break
    else:
        raise RuntimeError("no psubscribe confirmation")

    def drain() -> list[tuple[str, str]]:
        # A sentinel published after the operation is a barrier: Redis delivers one connection's
        # messages in order, so everything the scripts published arrives before it.
        token = uuid.uuid4().hex
        r.publish(SENTINEL, token)
        out = []
        end = time.monotonic() + 5
        while time.monotonic() < end:
            msg = ps.get_message(timeout=0.1)
            if not msg or msg["type"] != "pmessage":
                continue
            ch, data = msg["channel"].decode(), msg["data"].decode()
            if ch == SENTINEL:
                if data == token:
                    return out
                continue
            out.append((ch, data))
        raise AssertionError("pub/sub sentinel did not arrive")

    ps.drain = drain
    yield ps
    ps.close()


def test_server_requires_the_password(redis_port: int) -> None:
    with socket.create_connection(("127.0.0.1", redis_port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(100).startswith(b"-NOAUTH")


def test_every_script_loads(r: redis.Redis) -> None:
    for name in NAMES:
        sha = r.script_load(source(name))
        assert r.script_exists(sha) == [True]


# ---- actor_create ------------------------------------------------------------------------------------


AID = "a1" * 8
BID = "b2" * 8


def create(scripts: Scripts, aid: str, name_key: str = "", **fields: Any) -> Any:
    entry = {"state": "PENDING_CREATION", "attempt": -1, "name_key": name_key, **fields}
    args: list[Any] = [aid, name_key, CH]
    for k, v in entry.items():
        args += [k, v]
    return scripts.actor_create(
        keys=[keys.actor_key(aid), keys.named_actors_key(), keys.actors_index_key(), keys.live_actors_key()],
        args=args,
    )


def transition(scripts: Scripts, aid: str, allowed: str, required_attempt: str, /, **fields: Any) -> Any:
    args: list[Any] = [allowed, required_attempt, CH, aid]
    for k, v in fields.items():
        args += [k, v]
    return scripts.actor_transition(keys=[keys.actor_key(aid), keys.named_actors_key(), keys.live_actors_key(),
                                          keys.dead_actors_key()], args=args)


def test_actor_create_writes_entry_index_and_publishes(r: redis.Redis, scripts: Scripts, sub: Any) -> None:
    assert create(scripts, AID, class_name="Counter") == 1
    entry = r.hgetall(keys.actor_key(AID))
    assert entry[b"state"] == b"PENDING_CREATION"
    assert entry[b"class_name"] == b"Counter"
    assert entry[b"attempt"] == b"-1"
    assert r.sismember(keys.actors_index_key(), AID)
    assert r.sismember(keys.live_actors_key(), AID)
    assert r.hlen(keys.named_actors_key()) == 0  # no name, no claim
    assert sub.drain() == [(CH, AID)]


def test_actor_create_claims_name(r: redis.Redis, scripts: Scripts) -> None:
    assert create(scripts, AID, "ns/counter") == 1
    assert r.hget(keys.named_actors_key(), "ns/counter") == AID.encode()


def test_actor_create_is_idempotent(r: redis.Redis, scripts: Scripts, sub: Any) -> None:
    assert create(scripts, AID, "ns/x", class_name="First") == 1
    sub.drain()
    assert create(scripts, AID, "ns/x", class_name="Second") == 0
    assert r.hget(keys.actor_key(AID), "class_name") == b"First"
    assert r.hget(keys.named_actors_key(), "ns/x") == AID.encode()
    assert sub.drain() == []  # a retried create announces nothing


def test_actor_create_name_taken_by_live_actor(r: redis.Redis, scripts: Scripts, sub: Any) -> None:
    assert create(scripts, AID, "ns/x") == 1
    for state in ("PENDING_CREATION", "SCHEDULED", "ALIVE", "RESTARTING"):
        r.hset(keys.actor_key(AID), "state", state)
        sub.drain()
        res = create(scripts, BID, "ns/x")
        assert res == f"NAME_TAKEN {AID}".encode(), state
        assert not r.exists(keys.actor_key(BID))
        assert not r.sismember(keys.actors_index_key(), BID)
        assert r.hget(keys.named_actors_key(), "ns/x") == AID.encode()
        assert sub.drain() == []


def test_same_name_in_other_namespace_is_free(r: redis.Redis, scripts: Scripts) -> None:
    assert create(scripts, AID, "ns1/x") == 1
    assert create(scripts, BID, "ns2/x") == 1
    assert r.hget(keys.named_actors_key(), "ns2/x") == BID.encode()


def test_actor_create_reclaims_name_of_dead_actor(r: redis.Redis, scripts: Scripts) -> None:
    assert create(scripts, AID, "ns/x") == 1
    r.hset(keys.actor_key(AID), "state", "DEAD")  # dead, but the name was not released
    assert create(scripts, BID, "ns/x") == 1
    assert r.hget(keys.named_actors_key(), "ns/x") == BID.encode()
    assert r.hget(keys.actor_key(BID), "state") == b"PENDING_CREATION"


def test_actor_create_reclaims_name_of_vanished_actor(r: redis.Redis, scripts: Scripts) -> None:
    r.hset(keys.named_actors_key(), "ns/x", AID)  # holder's entry is gone
    assert create(scripts, BID, "ns/x") == 1
    assert r.hget(keys.named_actors_key(), "ns/x") == BID.encode()


def test_actor_create_own_stale_claim(r: redis.Redis, scripts: Scripts) -> None:
    r.hset(keys.named_actors_key(), "ns/x", AID)  # a previous attempt claimed, entry not written
    assert create(scripts, AID, "ns/x") == 1
    assert r.exists(keys.actor_key(AID))


# ---- actor_transition --------------------------------------------------------------------------------


def test_actor_transition_allowed_state(r: redis.Redis, scripts: Scripts, sub: Any) -> None:
    create(scripts, AID)
    sub.drain()
    assert transition(scripts, AID, "PENDING_CREATION,RESTARTING", "", state="SCHEDULED", node="n1",
                      attempt=0) == 1
    entry = r.hgetall(keys.actor_key(AID))
    assert entry[b"state"] == b"SCHEDULED" and entry[b"node"] == b"n1" and entry[b"attempt"] == b"0"
    assert sub.drain() == [(CH, AID)]


def test_actor_transition_rejects_other_states(r: redis.Redis, scripts: Scripts, sub: Any) -> None:
    create(scripts, AID)
    sub.drain()
    assert transition(scripts, AID, "SCHEDULED,ALIVE", "", state="ALIVE") == 0
    assert transition(scripts, AID, "PENDING", "", state="ALIVE") == 0  # no prefix matching
    assert transition(scripts, AID, "", "", state="ALIVE") == 0
    assert r.hget(keys.actor_key(AID), "state") == b"PENDING_CREATION"
    assert sub.drain() == []


def test_actor_transition_missing_entry(r: redis.Redis, scripts: Scripts) -> None:
    assert transition(scripts, AID, "ALIVE", "", state="DEAD") == 0
    assert not r.exists(keys.actor_key(AID))


def test_actor_transition_attempt_must_match(r: redis.Redis, scripts: Scripts, sub: Any) -> None:
    create(scripts, AID)
    assert transition(scripts, AID, "PENDING_CREATION", "", state="SCHEDULED", attempt=3) == 1
    sub.drain()
    # A raylet reporting for an older attempt is ignored.
    assert transition(scripts, AID, "SCHEDULED", "2", state="ALIVE", worker="old") == 0
    assert r.hget(keys.actor_key(AID), "state") == b"SCHEDULED"
    assert r.hget(keys.actor_key(AID), "worker") is None
    assert sub.drain() == []
    assert transition(scripts, AID, "SCHEDULED", "3", state="ALIVE", worker="w") == 1
    assert r.hget(keys.actor_key(AID), "state") == b"ALIVE"
    assert sub.drain() == [(CH, AID)]


def test_actor_transition_to_dead_releases_name(r: redis.Redis, scripts: Scripts) -> None:
    create(scripts, AID, "ns/x")
    assert transition(scripts, AID, "PENDING_CREATION", "", state="DEAD", death_cause="killed") == 1
    assert r.hget(keys.named_actors_key(), "ns/x") is None
    assert r.hget(keys.actor_key(AID), "death_cause") == b"killed"
    assert not r.sismember(keys.live_actors_key(), AID)  # rescans no longer walk it
    assert r.sismember(keys.actors_index_key(), AID)  # the state API still lists it
    assert create(scripts, BID, "ns/x") == 1


def test_actor_transition_non_dead_keeps_name(r: redis.Redis, scripts: Scripts) -> None:
    create(scripts, AID, "ns/x")
    assert transition(scripts, AID, "PENDING_CREATION", "", state="RESTARTING") == 1
    assert r.hget(keys.named_actors_key(), "ns/x") == AID.encode()
    assert r.sismember(keys.live_actors_key(), AID)


def test_actor_transition_dead_does_not_release_a_reclaimed_name(r: redis.Redis, scripts: Scripts) -> None:
    create(scripts, AID, "ns/x")
    r.hset(keys.actor_key(AID), "state", "DEAD")
    create(scripts, BID, "ns/x")  # B reclaims the name of the dead A
    r.hset(keys.actor_key(AID), "state", "RESTARTING")  # (contrived) A moves to DEAD again
    assert transition(scripts, AID, "RESTARTING", "", state="DEAD") == 1
    assert r.hget(keys.named_actors_key(), "ns/x") == BID.encode()


def test_actor_transition_dead_to_anything_is_refused(r: redis.Redis, scripts: Scripts) -> None:
    create(scripts, AID)
    transition(scripts, AID, "PENDING_CREATION", "", state="DEAD")
    for allowed in ("PENDING_CREATION", "SCHEDULED,ALIVE", "RESTARTING"):
        assert transition(scripts, AID, allowed, "", state="ALIVE") == 0
    assert r.hget(keys.actor_key(AID), "state") == b"DEAD"


# ---- task_transition -----------------------------------------------------------------------------------


TID = "t0" * 16


def task(scripts: Scripts, allowed: str, at: int, ttl: int, /, **fields: Any) -> Any:
    args: list[Any] = [allowed, at, ttl]
    for k, v in fields.items():
        args += [k, v]
    return scripts.task_transition(keys=[keys.task_key(TID)], args=args)


def test_task_submit_creates_entry_without_ttl(r: redis.Redis, scripts: Scripts) -> None:
    assert task(scripts, "*", 0, 0, spec=b"\x00spec", state="PENDING", attempt=0) == 1
    entry = r.hgetall(keys.task_key(TID))
    assert entry[b"state"] == b"PENDING" and entry[b"spec"] == b"\x00spec" and entry[b"attempt"] == b"0"
    assert r.ttl(keys.task_key(TID)) == -1


def test_task_transition_needs_entry_unless_star(r: redis.Redis, scripts: Scripts) -> None:
    assert task(scripts, "PENDING,RUNNING", 0, 0, state="RUNNING", attempt=0) == 0
    assert not r.exists(keys.task_key(TID))


def test_an_early_report_from_the_running_node_is_not_undone_by_the_owners_pending(
        r: redis.Redis, scripts: Scripts) -> None:
    # The node a task was forwarded to reports before the owner's own writes land.
    assert task(scripts, "PENDING,RUNNING,NONE", 0, 0, state="RUNNING", attempt=0, node="b") == 1
    assert task(scripts, "PENDING,RUNNING,NONE", 0, 600, state="FINISHED", attempt=0, node="b") == 1
    assert task(scripts, "*", 0, 0, spec=b"s", job=1) == 1  # the owner's spec lands
    assert task(scripts, "NONE,OLDER", 0, 0, state="PENDING", node="a", attempt=0) == 0  # its PENDING does not
    entry = r.hgetall(keys.task_key(TID))
    assert (entry[b"state"], entry[b"node"], entry[b"spec"]) == (b"FINISHED", b"b", b"s")
    # A later attempt (an actor's constructor submitted again) does start over from PENDING.
    assert task(scripts, "NONE,OLDER", 1, 0, state="PENDING", node="a", attempt=1) == 1
    assert r.hget(keys.task_key(TID), "state") == b"PENDING"
    assert task(scripts, "NONE,OLDER", 1, 0, state="PENDING", node="a", attempt=1) == 0  # same attempt: no


def test_task_transition_allowed_states(r: redis.Redis, scripts: Scripts) -> None:
    task(scripts, "*", 0, 0, state="PENDING", attempt=0)
    assert task(scripts, "PENDING,RUNNING", 0, 0, state="RUNNING", attempt=0) == 1
    assert task(scripts, "PENDING,RUNNING", 0, 0, state="FINISHED", attempt=0) == 1
    # Terminal: a late RUNNING report cannot move it back.
    assert task(scripts, "PENDING,RUNNING", 0, 0, state="RUNNING", attempt=0) == 0
    assert r.hget(keys.task_key(TID), "state") == b"FINISHED"


def test_task_transition_rejects_stale_attempt(r: redis.Redis, scripts: Scripts) -> None:
    task(scripts, "*", 2, 0, state="RUNNING", attempt=2)
    assert task(scripts, "*", 1, 0, state="FAILED", attempt=1) == 0
    assert task(scripts, "PENDING,RUNNING", 1, 0, state="FAILED", attempt=1) == 0
    assert r.hget(keys.task_key(TID), "state") == b"RUNNING"
    assert r.hget(keys.task_key(TID), "attempt") == b"2"
    assert task(scripts, "PENDING,RUNNING", 2, 0, state="FINISHED", attempt=2) == 1  # same attempt: ok


def test_task_transition_newer_attempt_wins(r: redis.Redis, scripts: Scripts) -> None:
    task(scripts, "*", 9, 0, state="RUNNING", attempt=9)
    # Attempts compare as numbers: "10" > "9" even though "10" < "9" as strings.
    assert task(scripts, "PENDING,RUNNING", 10, 0, state="PENDING", attempt=10) == 1
    assert r.hget(keys.task_key(TID), "attempt") == b"10"
    assert task(scripts, "*", 9, 0, state="FAILED", attempt=9) == 0


def test_task_transition_ttl_on_terminal(r: redis.Redis, scripts: Scripts) -> None:
    task(scripts, "*", 0, 0, state="PENDING", attempt=0)
    assert r.ttl(keys.task_key(TID)) == -1
    assert task(scripts, "PENDING,RUNNING", 0, 3600, state="FINISHED", attempt=0) == 1
    ttl = r.ttl(keys.task_key(TID))
    assert 3500 < ttl <= 3600


def test_task_transition_rejected_write_sets_no_ttl(r: redis.Redis, scripts: Scripts) -> None:
    task(scripts, "*", 5, 0, state="RUNNING", attempt=5)
    assert task(scripts, "*", 4, 60, state="FAILED", attempt=4) == 0
    assert r.ttl(keys.task_key(TID)) == -1


# ---- hfield_cas --------------------------------------------------------------------------------------


NODES = keys.node_state_key()


def cas(scripts: Scripts, field: str, expected: str, new: str, channel: str = "", msg: str = "") -> Any:
    return scripts.hfield_cas(keys=[NODES], args=[field, expected, new, channel, msg])


def test_hfield_cas_from_absent(r: redis.Redis, scripts: Scripts, sub: Any) -> None:
    assert cas(scripts, "n1", "", "ALIVE", keys.node_channel(), "n1") == 1
    assert r.hget(NODES, "n1") == b"ALIVE"
    assert sub.drain() == [(keys.node_channel(), "n1")]
    assert cas(scripts, "n1", "", "ALIVE", keys.node_channel(), "n1") == 0  # no longer absent


def test_hfield_cas_applies_once(r: redis.Redis, scripts: Scripts, sub: Any) -> None:
    r.hset(NODES, "n1", "ALIVE")
    assert cas(scripts, "n1", "ALIVE", "DEAD", keys.node_channel(), "n1") == 1
    assert cas(scripts, "n1", "ALIVE", "DEAD", keys.node_channel(), "n1") == 0  # GCS and raylet race
    assert r.hget(NODES, "n1") == b"DEAD"
    assert sub.drain() == [(keys.node_channel(), "n1")]


def test_hfield_cas_without_channel_publishes_nothing(r: redis.Redis, scripts: Scripts, sub: Any) -> None:
    assert cas(scripts, "job1", "", "RUNNING") == 1
    assert r.hget(NODES, "job1") == b"RUNNING"
    assert sub.drain() == []


def test_hfield_cas_other_fields_untouched(r: redis.Redis, scripts: Scripts) -> None:
    r.hset(NODES, mapping={"n1": "ALIVE", "n2": "ALIVE"})
    assert cas(scripts, "n1", "ALIVE", "DEAD") == 1
    assert r.hgetall(NODES) == {b"n1": b"DEAD", b"n2": b"ALIVE"}


# ---- hash_cas -------------------------------------------------------------------------------------------


def test_hash_cas_sets_several_fields_only_if_every_condition_holds(r: redis.Redis, scripts: Scripts,
                                                                     sub: Any) -> None:
    pg = keys.placement_group_key("p1")
    r.hset(pg, mapping={"state": "PENDING", "bundles": "[]"})
    k, a = tables.pg_cas_args("p1", {"state": "PENDING", "txn_phase": ""}, {"txn_phase": "PREPARING", "txn_seq": "1"})
    assert scripts.hash_cas(keys=k, args=a) == 1
    assert scripts.hash_cas(keys=k, args=a) == 0  # txn_phase is no longer absent: applied once
    assert sub.drain() == [(keys.placement_group_channel(), "p1")]
    k, a = tables.pg_cas_args("p1", {"state": "PENDING", "txn_seq": "2"}, {"txn_phase": "PREPARED"})
    assert scripts.hash_cas(keys=k, args=a) == 0  # one condition of two fails: nothing written
    k, a = tables.pg_cas_args("p1", {"txn_phase": "PREPARING", "txn_seq": "1"},
                              {"state": "CREATED", "txn_phase": ""})
    assert scripts.hash_cas(keys=k, args=a) == 1
    assert r.hgetall(pg) == {b"state": b"CREATED", b"bundles": b"[]", b"txn_phase": b"", b"txn_seq": b"1"}


# ---- Scripts wrapper ------------------------------------------------------------------------------------


def test_scripts_survive_script_flush(r: redis.Redis, scripts: Scripts) -> None:
    # A restarted shard has an empty script cache: EVALSHA falls back to loading the script.
    assert cas(scripts, "n1", "", "ALIVE") == 1
    r.script_flush()
    assert cas(scripts, "n1", "ALIVE", "DEAD") == 1
    assert r.hget(NODES, "n1") == b"DEAD"


def test_scripts_in_a_pipeline(r: redis.Redis, scripts: Scripts) -> None:
    r.script_flush()
    pipe = r.pipeline(transaction=False)
    scripts.hfield_cas(keys=[NODES], args=["n1", "", "ALIVE", "", ""], client=pipe)
    scripts.task_transition(keys=[keys.task_key(TID)], args=["*", 0, 0, "state", "PENDING", "attempt", 0],
                            client=pipe)
    scripts.hfield_cas(keys=[NODES], args=["n1", "", "ALIVE", "", ""], client=pipe)
    assert pipe.execute() == [1, 1, 0]
    assert r.hget(keys.task_key(TID), "state") == b"PENDING"


# ---- object_location_remove ------------------------------------------------------------------


def test_object_free_removes_only_this_nodes_copy(r: redis.Redis, scripts: Scripts) -> None:
    k = keys.object_key("ab" * 20)
    r.hset(k, mapping={"size": 10, "task": "ab" * 16, "error": 0, "loc:n1": 1, "loc:n2": 1})
    assert scripts.object_location_remove(keys=[k], args=["loc:n1"]) == 1
    assert r.hgetall(k) == {b"size": b"10", b"task": b"ab" * 16, b"error": b"0", b"loc:n2": b"1"}
    # A retried free of the same copy changes nothing.
    assert scripts.object_location_remove(keys=[k], args=["loc:n1"]) == 1
    assert r.hexists(k, "loc:n2")


def test_object_free_of_the_last_copy_deletes_the_entry(r: redis.Redis, scripts: Scripts) -> None:
    k = keys.object_key("cd" * 20)
    r.hset(k, mapping={"size": 10, "task": "cd" * 16, "error": 0, "loc:n1": 1})
    assert scripts.object_location_remove(keys=[k], args=["loc:n1"]) == 0
    assert not r.exists(k)
    assert scripts.object_location_remove(keys=[k], args=["loc:n1"]) == 0
    assert not r.exists(k)


def test_actor_prune_deletes_the_oldest_dead_beyond_the_kept_number(r: redis.Redis, scripts: Scripts) -> None:
    ids = [f"{i:032x}" for i in range(6)]
    for aid in ids:
        create(scripts, aid, f"ns/{aid}")
    for aid in ids[:5]:  # five die, in order; the sixth lives
        assert transition(scripts, aid, "PENDING_CREATION", "", state="DEAD") == 1
        time.sleep(0.002)  # (distinct death times, in ms)
    assert r.zcard(keys.dead_actors_key()) == 5
    k, a = tables.actor_prune_call(keep=2, most=100)
    assert scripts.actor_prune(keys=k, args=a) == 3
    assert [r.exists(keys.actor_key(aid)) for aid in ids] == [0, 0, 0, 1, 1, 1]
    assert r.smembers(keys.actors_index_key()) == {aid.encode() for aid in ids[3:]}
    assert r.zrange(keys.dead_actors_key(), 0, -1) == [aid.encode() for aid in ids[3:5]]
    assert r.sismember(keys.live_actors_key(), ids[5])
    assert scripts.actor_prune(keys=k, args=a) == 0  # nothing beyond the two kept


def test_actor_prune_deletes_at_most_the_batch(r: redis.Redis, scripts: Scripts) -> None:
    for i in range(5):
        aid = f"{i:032x}"
        create(scripts, aid)
        transition(scripts, aid, "PENDING_CREATION", "", state="DEAD")
    k, a = tables.actor_prune_call(keep=0, most=2)
    assert scripts.actor_prune(keys=k, args=a) == 2 and r.zcard(keys.dead_actors_key()) == 3

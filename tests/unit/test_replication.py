"""Replicated shards without processes: layout and quorum arithmetic, Sentinel configs, restart plans, WAIT policy."""

from __future__ import annotations

import dataclasses

import pytest

from rayredis._private import sentinel
from rayredis._private.sentinel import Layout, Monitored, Role, SentinelView, restart_plan
from rayredis.config import Config
from rayredis.store import replication
from rayredis.store.replication import Replication, WaitPolicy


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for f in dataclasses.fields(Config):
        if f.name != "temp_dir":
            monkeypatch.delenv("RAYREDIS_" + f.name.upper(), raising=False)


# ---- config and layout -------------------------------------------------------------------------------


def test_replication_is_off_by_default_and_set_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Config.from_env()
    assert (cfg.redis_replicas, cfg.num_sentinels, cfg.redis_sentinels) == (0, 3, "")
    monkeypatch.setenv("RAYREDIS_REDIS_REPLICAS", "2")
    monkeypatch.setenv("RAYREDIS_REDIS_SENTINELS", "127.0.0.1:1, 127.0.0.1:2")
    cfg = Config.from_env()
    assert cfg.redis_replicas == 2
    assert replication.parse_sentinels(cfg.redis_sentinels) == ["127.0.0.1:1", "127.0.0.1:2"]


@pytest.mark.parametrize(("n", "q"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_quorum_is_a_majority(n: int, q: int) -> None:
    assert sentinel.quorum(n) == q


def test_quorum_needs_a_sentinel() -> None:
    with pytest.raises(ValueError, match="num_sentinels must be at least 1"):
        sentinel.quorum(0)


def test_layout_counts_processes() -> None:
    layout = Layout(shards=2, replicas=1, sentinels=3)
    assert layout.replicated and layout.members == 2
    assert (layout.redis_processes, layout.sentinel_processes, layout.quorum) == (4, 3, 2)
    plain = Layout(shards=3, replicas=0, sentinels=3)
    assert not plain.replicated
    assert (plain.redis_processes, plain.sentinel_processes) == (3, 0)
    with pytest.raises(ValueError, match="redis_replicas must not be negative"):
        Layout(shards=1, replicas=-1, sentinels=3)
    with pytest.raises(ValueError, match="num_redis_shards must be at least 1"):
        Layout(shards=0, replicas=1, sentinels=3)


def test_failover_timeout_scales_with_down_after() -> None:
    assert sentinel.failover_timeout_ms(1000) == 5000
    assert sentinel.failover_timeout_ms(3000) == 15000
    assert sentinel.restart_grace_s(1000) == 11.0  # detection + two failover timeouts


# ---- the Sentinel config ---------------------------------------------------------------------------


def test_sentinel_conf_monitors_every_shard_with_password_and_known_peers() -> None:
    shards = [Monitored("rayredis-shard-0", "127.0.0.1:7000", ("127.0.0.1:7001",)),
              Monitored("rayredis-shard-1", "127.0.0.1:7100", ("127.0.0.1:7101",))]
    text = sentinel.sentinel_conf(port=26379, bind_host="127.0.0.1", password="s3cret", directory="/d",
                                  myid="a" * 40, shards=shards, quorum=2, down_after_ms=1000,
                                  peers=[("127.0.0.1:26380", "b" * 40), ("127.0.0.1:26381", "c" * 40)])
    lines = text.splitlines()
    assert "port 26379" in lines and 'requirepass "s3cret"' in lines and f"sentinel myid {'a' * 40}" in lines
    for name, port in (("rayredis-shard-0", 7000), ("rayredis-shard-1", 7100)):
        assert f"sentinel monitor {name} 127.0.0.1 {port} 2" in lines
        assert f'sentinel auth-pass {name} "s3cret"' in lines
        assert f"sentinel down-after-milliseconds {name} 1000" in lines
        assert f"sentinel failover-timeout {name} 5000" in lines
        assert f"sentinel known-replica {name} 127.0.0.1 {port + 1}" in lines
        assert f"sentinel known-sentinel {name} 127.0.0.1 26380 {'b' * 40}" in lines
        assert f"sentinel known-sentinel {name} 127.0.0.1 26381 {'c' * 40}" in lines
        # a shard's known-* lines come after its monitor line (Sentinel rejects them before it)
        assert lines.index(f"sentinel monitor {name} 127.0.0.1 {port} 2") < lines.index(
            f"sentinel known-replica {name} 127.0.0.1 {port + 1}")


def test_myids_are_40_hex_and_distinct() -> None:
    ids = {sentinel.new_myid() for _ in range(5)}
    assert len(ids) == 5 and all(len(i) == 40 and int(i, 16) >= 0 for i in ids)


# ---- restarting a member ---------------------------------------------------------------------------


OWN = "127.0.0.1:7000"


def test_a_member_whose_shard_failed_over_comes_back_as_the_new_masters_replica() -> None:
    plan = restart_plan(OWN, SentinelView("127.0.0.1:7001", 1), waited_s=0.0, grace_s=6.0)
    assert (plan.role, plan.replicaof) == (Role.REPLICA, "127.0.0.1:7001")


def test_a_dead_master_waits_for_the_failover_while_a_replica_can_take_over() -> None:
    assert restart_plan(OWN, SentinelView(OWN, 1), waited_s=0.5, grace_s=6.0).role is Role.WAIT
    # Sentinel may report the host as an IP where we wrote a name: the port identifies the member
    assert restart_plan("head:7000", SentinelView(OWN, 1), waited_s=0.5, grace_s=6.0).role is Role.WAIT


def test_a_dead_master_without_replicas_or_past_the_grace_comes_back_as_master() -> None:
    assert restart_plan(OWN, SentinelView(OWN, 0), waited_s=0.0, grace_s=6.0).role is Role.MASTER
    late = restart_plan(OWN, SentinelView(OWN, 1), waited_s=6.5, grace_s=6.0)
    assert (late.role, late.replicaof) == (Role.MASTER, None)


def test_without_any_sentinel_answer_a_member_waits_then_starts_as_master() -> None:
    assert restart_plan(OWN, SentinelView(None, 0), waited_s=1.0, grace_s=6.0).role is Role.WAIT
    assert restart_plan(OWN, SentinelView(None, 0), waited_s=7.0, grace_s=6.0).role is Role.MASTER


def test_a_replica_flagged_disconnected_still_counts_as_usable() -> None:
    assert not sentinel._down("slave,disconnected")
    assert sentinel._down("s_down,slave") and sentinel._down("slave,o_down,disconnected")


# ---- what clients read and do ----------------------------------------------------------------------


def test_replication_record_round_trips_through_the_cluster_hash() -> None:
    rep = Replication(("127.0.0.1:1", "127.0.0.1:2"), ("rayredis-shard-0", "rayredis-shard-1"), 1)
    raw = {k.encode(): v.encode() for k, v in rep.fields().items()}
    raw[b"shards"] = b'["127.0.0.1:9"]'
    assert Replication.from_fields(raw) == rep
    assert (rep.primary, rep.data_shards) == ("rayredis-shard-0", ("rayredis-shard-1",))
    assert Replication.from_fields({b"shards": b"[]"}) is None


def test_a_single_shard_is_its_own_data_shard() -> None:
    rep = Replication(("s:1",), (replication.master_name(0),), 2)
    assert rep.data_shards == (rep.primary,)


@pytest.mark.parametrize("cmd", ["HSET", "hset", b"EVALSHA", "SET", "SADD", "HINCRBY", "DEL", "EXPIRE", "INCR",
                                 "XADD", "SOME NEW COMMAND"])
def test_writes_and_unknown_commands_are_followed_by_wait(cmd: str | bytes) -> None:
    assert replication.is_write(cmd)


@pytest.mark.parametrize("cmd", ["HGET", "HGETALL", b"SMEMBERS", "PING", "PUBLISH", "SCAN", "INFO", "WAIT",
                                 "SCRIPT LOAD"])
def test_reads_are_not(cmd: str | bytes) -> None:
    assert not replication.is_write(cmd)


def test_wait_policy_degrades_after_an_unacknowledged_wait_and_recovers() -> None:
    p = WaitPolicy(timeout_ms=1000, degraded_ms=10)
    assert p.request() == (1, 1000)
    p.observe(1)
    assert p.request() == (1, 1000) and not p.degraded
    p.observe(0)  # no replica acknowledged within 1 s
    assert p.degraded and p.request() == (1, 10) and p.unacknowledged == 1
    p.observe(0)
    assert p.request() == (1, 10) and p.unacknowledged == 2
    p.observe(1)  # a replica is back
    assert not p.degraded and p.request() == (1, 1000)


def test_wait_policy_clamps_its_timeouts() -> None:
    assert WaitPolicy(timeout_ms=0, degraded_ms=0).request() == (1, 1)
    p = WaitPolicy(timeout_ms=5, degraded_ms=50)
    p.observe(0)
    assert p.request() == (1, 5)


@pytest.mark.parametrize(("info", "expected"), [
    ({"role": "slave", "master_link_status": "up", "master_sync_in_progress": 0}, True),
    ({"role": "slave", "master_link_status": "down", "master_sync_in_progress": 1}, False),  # full sync
    ({"role": "slave", "master_link_status": "down", "master_sync_in_progress": 0}, False),  # not linked
    ({"role": "slave", "master_link_status": "up", "master_sync_in_progress": 1}, False),
    ({"role": "master"}, False),  # not a replica (yet): nothing to resync from
])
def test_a_rejoining_replica_is_synced_only_once_linked_and_done(info: dict[str, object], expected: bool) -> None:
    assert sentinel.synced(info) is expected

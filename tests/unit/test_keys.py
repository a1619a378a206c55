"""Key naming and shard routing: a task and its return objects share a data shard."""

from __future__ import annotations

import os
import zlib
from collections import Counter

import pytest

from rayredis import ids
from rayredis.store import keys


def test_single_shard_always_zero() -> None:
    for n in (0, 1):
        assert keys.shard_index_for_id(os.urandom(16), n) == 0
        assert keys.shard_index_for_id(b"", n) == 0


def test_shard_index_is_stable_across_processes() -> None:
    # crc32 (not Python's salted hash()): every process computes the same shard.
    tid = bytes(range(16))
    expected = zlib.crc32(tid) % 7
    assert keys.shard_index_for_id(tid, 7) == expected
    assert keys.shard_index_for_id(tid, 7) == keys.shard_index_for_id(bytes(tid), 7)
    assert keys.shard_index_for_id(b"\x00" * 16, 4) == zlib.crc32(b"\x00" * 16) % 4


@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_shard_index_in_range_and_spread(n: int) -> None:
    counts = Counter(keys.shard_index_for_id(ids.task_id(), n) for _ in range(4000))
    assert set(counts) == set(range(n))
    expected = 4000 / n
    for shard, c in counts.items():
        assert 0.75 * expected < c < 1.25 * expected, (shard, counts)


def test_task_and_its_objects_share_a_shard() -> None:
    for _ in range(200):
        tid = ids.task_id()
        shard = keys.shard_index_for_id(tid, 5)
        for index in (1, 2, 17, 2**31 - 1):
            oid = ids.object_id_for_return(tid, index)
            assert len(oid) == ids.OBJECT_ID_LEN
            assert ids.task_of_object(oid) == tid
            assert keys.shard_index_for_id(oid, 5) == shard


def test_put_objects_route_by_their_prefix() -> None:
    base = ids.task_id()
    for i in range(5):
        oid = ids.object_id_for_put(i, base)
        assert ids.is_put_object(oid)
        assert ids.object_index(oid) == ids.PUT_INDEX_BASE + i
        assert keys.shard_index_for_id(oid, 3) == keys.shard_index_for_id(base, 3)
    fresh = ids.object_id_for_put(0)
    assert len(fresh) == ids.OBJECT_ID_LEN and ids.is_put_object(fresh)


def test_return_ids() -> None:
    tid = b"\x11" * 16
    oid = ids.object_id_for_return(tid, 3)
    assert oid == tid + b"\x00\x00\x00\x03"
    assert ids.object_index(oid) == 3
    assert not ids.is_put_object(oid)
    assert ids.hexid(oid) == oid.hex()


def test_key_names_are_prefixed_and_distinct() -> None:
    h = "ab" * 10
    names = [
        keys.cluster_key(), keys.nodes_key(), keys.node_state_key(), keys.node_heartbeat_key(),
        keys.node_load_key(), keys.job_counter_key(), keys.jobs_key(), keys.job_state_key(),
        keys.function_key(h), keys.actor_key(h), keys.actors_index_key(), keys.named_actors_key(),
        keys.placement_group_key(h), keys.placement_groups_index_key(), keys.task_key(h),
        keys.object_key(h), keys.actor_channel(), keys.node_channel(), keys.job_channel(),
        keys.placement_group_channel(), keys.object_channel(),
    ]
    assert all(k.startswith(keys.PREFIX) for k in names)
    assert len(set(names)) == len(names)
    assert keys.actor_key(h) == "rr:actor:" + h  # actor_create.lua builds this key itself
    assert keys.task_key(h).endswith(h) and keys.object_key(h).endswith(h)


def test_table_prefixes_match_key_builders() -> None:
    import fnmatch

    h = "cd" * 8
    assert fnmatch.fnmatch(keys.actor_key(h), keys.ALL_TABLE_PREFIXES["actors"])
    assert fnmatch.fnmatch(keys.task_key(h), keys.ALL_TABLE_PREFIXES["tasks"])
    assert fnmatch.fnmatch(keys.object_key(h), keys.ALL_TABLE_PREFIXES["objects"])
    assert fnmatch.fnmatch(keys.placement_group_key(h), keys.ALL_TABLE_PREFIXES["placement_groups"])
    assert fnmatch.fnmatch(keys.function_key(h), keys.ALL_TABLE_PREFIXES["functions"])
    assert not fnmatch.fnmatch(keys.actors_index_key(), keys.ALL_TABLE_PREFIXES["actors"])

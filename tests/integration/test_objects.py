"""The object store: zero-copy reads, bounded memory, a clear error when full, refs kept alive."""

from __future__ import annotations

import gc
import json
import os
import time

import numpy as np
import pytest

import rayredis as ray
from rayredis import exceptions
from rayredis._private import session
from rayredis.store import keys


def _store_stats() -> dict:
    from rayredis._private import worker_context

    cw = worker_context.global_worker
    raw = cw.store.primary.hget(keys.node_load_key(), cw.node_id.hex())
    return json.loads(raw)


def _segments(session_dir: str) -> list[str]:
    tag = session.session_shm_tag(session_dir)
    return [n for n in os.listdir("/dev/shm") if n.startswith(tag)]


@pytest.fixture
def small_store():
    ctx = ray.init(num_cpus=2, object_store_memory=64 * 1024 * 1024)
    try:
        yield ctx
    finally:
        ray.shutdown()


@pytest.fixture
def small_store_no_spilling(monkeypatch):
    monkeypatch.setenv("RAYREDIS_OBJECT_SPILLING", "0")  # (the raylet inherits the environment)
    ctx = ray.init(num_cpus=2, object_store_memory=64 * 1024 * 1024)
    try:
        yield ctx
    finally:
        ray.shutdown()


def test_put_too_large_and_full_store_errors_name_the_fix(small_store_no_spilling):
    with pytest.raises(exceptions.ObjectStoreFullError, match="object_store_memory"):
        ray.put(np.zeros(80 * 1024 * 1024, dtype=np.uint8))
    a = ray.put(np.zeros(30 * 1024 * 1024, dtype=np.uint8))
    b = ray.put(np.zeros(30 * 1024 * 1024, dtype=np.uint8))
    with pytest.raises(exceptions.ObjectStoreFullError, match="del ref"):
        ray.put(np.zeros(30 * 1024 * 1024, dtype=np.uint8))
    del a
    gc.collect()
    deadline = time.time() + 10
    while True:  # the release travels to the raylet asynchronously
        try:
            c = ray.put(np.zeros(30 * 1024 * 1024, dtype=np.uint8))
            break
        except exceptions.ObjectStoreFullError:
            assert time.time() < deadline
            time.sleep(0.05)
    assert ray.get(b).nbytes == ray.get(c).nbytes


def test_memory_is_bounded_over_a_long_run(small_store):
    @ray.remote
    def make(i):
        return np.full(4 * 1024 * 1024, i % 256, dtype=np.uint8)

    for i in range(60):  # 240 MB produced in total through a 64 MB store
        ref = make.remote(i)
        assert ray.get(ref)[0] == i % 256
        del ref
    gc.collect()
    ctx = small_store
    deadline = time.time() + 10
    while len(_segments(ctx["session_dir"])) > 2 and time.time() < deadline:
        time.sleep(0.1)
    assert len(_segments(ctx["session_dir"])) <= 2
    deadline = time.time() + 10
    while _store_stats()["object_store_used"] > 16 * 1024 * 1024 and time.time() < deadline:
        time.sleep(0.1)
    assert _store_stats()["object_store_used"] <= 16 * 1024 * 1024


def test_get_of_large_array_is_zero_copy(ray_shared):
    arr = np.random.default_rng(0).random(2_000_000)
    ref = ray.put(arr)
    a = ray.get(ref)
    b = ray.get(ref)
    assert np.array_equal(a, arr)
    assert not a.flags.writeable
    # Two gets share the same shared-memory pages instead of copying.
    assert a.__array_interface__["data"][0] == b.__array_interface__["data"][0]

    @ray.remote
    def address_and_sum(x):
        return x.flags.writeable, float(x.sum())

    writeable, total = ray.get(address_and_sum.remote(ref))
    assert writeable is False and total == pytest.approx(arr.sum())


def test_objects_referenced_only_by_a_task_stay_alive(ray_shared):
    @ray.remote
    def slow_sum(x):
        time.sleep(0.5)
        return int(x.sum())

    ref = ray.put(np.ones(1_000_000, dtype=np.int64))
    out = slow_sum.remote(ref)
    del ref
    gc.collect()
    assert ray.get(out) == 1_000_000


def test_nested_refs_in_containers_survive_the_senders_release(ray_shared):
    @ray.remote
    def unwrap(d):
        return ray.get(d["inner"]) + 1

    inner = ray.put(41)
    out = unwrap.remote({"inner": inner})
    del inner
    gc.collect()
    assert ray.get(out) == 42


def test_put_of_a_ref_is_rejected(ray_shared):
    with pytest.raises(TypeError, match="ObjectRef"):
        ray.put(ray.put(1))


def test_object_table_records_locations(ray_shared):
    from rayredis._private import worker_context

    cw = worker_context.global_worker
    ref = ray.put(np.arange(10))
    ray.get(ref)
    deadline = time.time() + 5
    entry = {}
    while time.time() < deadline and not entry:
        entry = cw.store.for_id(ref.binary()).hgetall(keys.object_key(ref.hex()))
        time.sleep(0.01)
    assert entry[b"loc:" + cw.node_id.hex().encode()] == b"1"
    assert int(entry[b"size"]) > 80

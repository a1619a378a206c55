"""Object spilling: a workload whose objects exceed the object store in total still runs (real cluster)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import rayredis as ray
from rayredis import exceptions

MiB = 1024 * 1024


@pytest.fixture
def store_100mib():
    ctx = ray.init(num_cpus=1, object_store_memory=100 * MiB)
    try:
        yield ctx
    finally:
        ray.shutdown()


def _spill_files(session_dir: str) -> list[str]:
    d = os.path.join(session_dir, "spill")
    return os.listdir(d) if os.path.isdir(d) else []


def test_puts_exceeding_the_store_are_spilled_and_restored_on_get(store_100mib):
    session_dir = store_100mib["session_dir"]
    refs = [ray.put(np.full(20 * MiB, i, dtype=np.uint8)) for i in range(15)]  # 300 MiB held
    assert len(_spill_files(session_dir)) >= 10
    for i, ref in enumerate(refs):
        a = ray.get(ref)
        assert a.shape == (20 * MiB,) and a[0] == i and a[-1] == i and int(a.sum()) == i * 20 * MiB
        del a  # (a client holding the array keeps the object in memory)

    @ray.remote
    def total(x):
        return int(x.sum())

    assert ray.get([total.remote(r) for r in refs[:3]]) == [i * 20 * MiB for i in range(3)]
    assert not os.path.relpath(os.path.join(session_dir, "spill"), session_dir).startswith("..")
    del refs, ref


def test_freed_spilled_objects_lose_their_files(store_100mib):
    session_dir = store_100mib["session_dir"]
    refs = [ray.put(np.zeros(30 * MiB, dtype=np.uint8)) for _ in range(6)]
    assert _spill_files(session_dir)
    del refs
    import gc
    import time

    gc.collect()
    deadline = time.time() + 10
    while _spill_files(session_dir):  # the release travels to the raylet asynchronously
        assert time.time() < deadline, _spill_files(session_dir)
        time.sleep(0.05)


def test_an_object_larger_than_the_store_still_fails(store_100mib):
    keep = ray.put(np.ones(40 * MiB, dtype=np.uint8))
    with pytest.raises(exceptions.ObjectStoreFullError, match="larger than"):
        ray.put(np.zeros(120 * MiB, dtype=np.uint8))
    assert int(ray.get(keep).sum()) == 40 * MiB

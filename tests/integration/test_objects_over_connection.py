"""Objects over the connection: a driver that cannot map its raylet's /dev/shm sends and receives
large objects inside the stream's messages (real clusters, real driver processes)."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest

import rayredis as ray
from rayredis import config, exceptions
from rayredis._private import worker_context
from rayredis.protocol.limits import MAX_OBJECT_OVER_CONNECTION
from rayredis.store import keys
from tests.conftest import _shutdown_checked

MB = 1024 * 1024
STORE = 192 * MB


@pytest.fixture(scope="module")
def over() -> Iterator[dict[str, str]]:
    """A cluster whose driver (this process) exchanges objects over the connection, as with
    RAYREDIS_OBJECTS_OVER_CONNECTION=always."""
    saved = config._config
    config._config = config.get_config().replace(objects_over_connection="always")
    try:
        ray.init(num_cpus=2, object_store_memory=STORE)
        try:
            cw = worker_context.global_worker
            assert cw is not None and cw.objects_over_connection
            yield {"address": cw.store.primary_address, "password": cw.store.password or ""}
        finally:
            _shutdown_checked()
    finally:
        config._config = saved


def _store_used() -> int:
    cw = worker_context.global_worker
    assert cw is not None
    raw = cw.store.primary.hget(keys.node_load_key(), cw.node_id.hex())
    return int(json.loads(raw)["object_store_used"])


def _wait_store_below(n: int) -> None:
    """References are released asynchronously; wait until the store holds less than ``n`` bytes."""
    gc.collect()
    deadline = time.monotonic() + 15
    while _store_used() >= n:
        assert time.monotonic() < deadline, f"the store still holds {_store_used()} bytes"
        time.sleep(0.1)


@ray.remote
def plus_one(x: np.ndarray) -> np.ndarray:
    return x + 1


def test_put_and_get_of_a_large_array_and_bytes(over: dict[str, str]) -> None:
    a = np.random.default_rng(0).integers(0, 1 << 30, size=50 * MB // 8, dtype=np.int64)
    ref = ray.put(a)
    got = ray.get(ref)
    assert isinstance(got, np.ndarray) and got.dtype == a.dtype and np.array_equal(got, a)
    blob = os.urandom(3 * MB)
    assert ray.get(ray.put(blob)) == blob
    assert ray.get(ray.put(b"small")) == b"small"  # inline values are unchanged
    del ref, got


def test_get_of_several_large_objects_at_once(over: dict[str, str]) -> None:
    arrays = [np.full(10 * MB, i, dtype=np.uint8) for i in range(4)]
    refs = [ray.put(x) for x in arrays]
    got = ray.get(refs + [refs[0]])
    assert [int(g[0]) for g in got] == [0, 1, 2, 3, 0] and all(g.nbytes == 10 * MB for g in got)
    del refs, got


def test_task_with_a_large_argument_and_a_large_return(over: dict[str, str]) -> None:
    a = np.arange(50 * MB // 8, dtype=np.int64)
    out = ray.get(plus_one.remote(a), timeout=60)
    assert np.array_equal(out, a + 1)
    del out


def test_wait_on_large_results(over: dict[str, str]) -> None:
    refs = [plus_one.remote(np.full(5 * MB, i, dtype=np.uint8)) for i in range(3)]
    ready, rest = ray.wait(refs, num_returns=3, timeout=60)
    assert len(ready) == 3 and rest == []
    assert sorted(int(ray.get(r)[0]) for r in ready) == [1, 2, 3]
    del refs, ready


def test_object_too_large_for_one_message_is_a_clear_error_before_sending(over: dict[str, str]) -> None:
    huge = np.zeros(MAX_OBJECT_OVER_CONNECTION + 1, dtype=np.uint8)  # never touched: no memory used
    used = _store_used()
    for attempt in (lambda: ray.put(huge), lambda: plus_one.remote(huge)):
        with pytest.raises(ValueError) as ei:
            attempt()
        msg = str(ei.value)
        assert str(MAX_OBJECT_OVER_CONNECTION) in msg and "Run the driver on a node of the cluster" in msg
    assert ray.get(ray.put(b"still connected")) == b"still connected"
    time.sleep(0.6)  # a heartbeat: nothing was reserved
    assert _store_used() <= used


def test_full_store_raises_object_store_full(over: dict[str, str]) -> None:
    _wait_store_below(16 * MB)
    with pytest.raises(exceptions.ObjectStoreFullError, match="object_store_memory"):
        ray.put(np.zeros(STORE + MB, dtype=np.uint8))  # larger than the whole store
    a = ray.put(np.ones(100 * MB, dtype=np.uint8))
    with pytest.raises(exceptions.ObjectStoreFullError, match="del ref"):
        ray.put(np.ones(100 * MB, dtype=np.uint8))
    assert int(ray.get(a)[-1]) == 1
    del a
    _wait_store_below(16 * MB)


# ---- separate driver processes ------------------------------------------------------------------

DRIVER = r"""
import json, sys
import numpy as np
import rayredis as ray
from rayredis._private import worker_context

ray.init(address=sys.argv[1], _redis_password=sys.argv[2])
out = {"over": worker_context.global_worker.objects_over_connection}
a = np.arange(20 * 2**20 // 8, dtype=np.int64)

@ray.remote
def plus_one(x):
    return x + 1

def step(name, fn):
    try:
        out[name] = bool(fn())
    except Exception as e:
        out[name] = type(e).__name__ + ": " + str(e)[:200]

step("put_get", lambda: np.array_equal(ray.get(ray.put(a)), a))
step("bytes", lambda: ray.get(ray.put(b"b" * 2**21)) == b"b" * 2**21)
ref = plus_one.remote(a)
step("wait", lambda: len(ray.wait([ref], timeout=60)[0]) == 1)
step("task", lambda: np.array_equal(ray.get(ref, timeout=60), a + 1))
print(json.dumps(out))
ray.shutdown()
"""


def _private_shm() -> list[str] | None:
    """A command prefix that runs a program with a /dev/shm of its own (a new mount namespace),
    as in a container; None where this is not permitted."""
    if shutil.which("unshare") is None:
        return None
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              'mount -t tmpfs -o size=128m tmpfs /dev/shm && exec "$0" "$@"']
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return None
    return prefix if ok else None


def _run_driver(over: dict[str, str], prefix: list[str], **env: str) -> dict[str, object]:
    full_env = {**os.environ, **env}
    res = subprocess.run([*prefix, sys.executable, "-c", DRIVER, over["address"], over["password"]],
                         capture_output=True, text=True, timeout=120, env=full_env)
    assert res.returncode == 0, res.stderr[-3000:]
    result: dict[str, object] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


ALL_OK = {"put_get": True, "bytes": True, "wait": True, "task": True}


def test_driver_with_its_own_dev_shm_probes_and_goes_over_the_connection(over: dict[str, str]) -> None:
    prefix = _private_shm()
    if prefix is None:
        pytest.skip("needs unshare and mount (root or user namespaces) for a private /dev/shm")
    assert _run_driver(over, prefix) == {"over": True, **ALL_OK}
    # The same driver with the probe switched off fails as it did before: the worker cannot map
    # the argument's segment, nor the driver the result's.
    forced = _run_driver(over, prefix, RAYREDIS_OBJECTS_OVER_CONNECTION="never")
    assert forced["over"] is False and forced["put_get"] is True  # it maps its own segment back
    assert "FileNotFoundError" in str(forced["task"]) or "No such file" in str(forced["task"])


def test_driver_on_the_raylets_host_keeps_shared_memory_and_removes_its_probe(over: dict[str, str]) -> None:
    before = {n for n in os.listdir("/dev/shm") if n.startswith("rayredis_probe_")}
    assert _run_driver(over, []) == {"over": False, **ALL_OK}
    assert {n for n in os.listdir("/dev/shm") if n.startswith("rayredis_probe_")} <= before


def test_always_over_grpc(over: dict[str, str]) -> None:
    result = _run_driver(over, [], RAYREDIS_OBJECTS_OVER_CONNECTION="always", RAYREDIS_LOCAL_SOCKET="0")
    assert result == {"over": True, **ALL_OK}

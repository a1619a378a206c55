"""Cluster-level behaviour: sharding across Redis shards, connecting, and clear connection errors."""

from __future__ import annotations

import time

import pytest

import rayredis as ray
from rayredis import exceptions
from rayredis.store import keys


def test_tasks_and_objects_spread_over_data_shards():
    ray.init(num_cpus=2, num_redis_shards=3)
    try:
        from rayredis._private import worker_context

        cw = worker_context.global_worker
        assert len(cw.store.shards) == 2  # the primary plus two data shards

        @ray.remote
        def f(i):
            return i

        assert ray.get([f.remote(i) for i in range(200)]) == list(range(200))
        deadline = time.time() + 10
        counts = [0, 0]
        while time.time() < deadline:
            counts = [sum(1 for _ in s.scan_iter(match="rr:task:*", count=1000)) for s in cw.store.shards]
            if sum(counts) >= 200:
                break
            time.sleep(0.05)
        assert sum(counts) >= 200 and min(counts) > 40, counts
        # Cluster-wide tables stay on the primary.
        assert cw.store.primary.hlen(keys.nodes_key()) == 1
        assert all(s.hlen(keys.nodes_key()) == 0 for s in cw.store.shards)
    finally:
        ray.shutdown()


def test_connect_by_address_and_errors(ray_start_regular):
    from rayredis._private import worker_context

    cw = worker_context.global_worker
    address, password = cw.store.primary_address, cw.store.password

    import subprocess
    import sys

    def run(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    ok = run(f"import rayredis as ray; ray.init(address={address!r}, _redis_password={password!r}); "
             "print(ray.get(ray.put(41)) + 1)")
    assert ok.returncode == 0 and ok.stdout.strip() == "42", ok.stderr
    wrong = run(f"import rayredis as ray; ray.init(address={address!r}, _redis_password='nope')")
    assert wrong.returncode != 0 and "refused our credentials" in wrong.stderr
    assert "_redis_password" in wrong.stderr
    t = time.time()
    dead = run("import rayredis as ray; ray.init(address='127.0.0.1:1')")
    assert dead.returncode != 0 and "Could not reach the rayredis cluster" in dead.stderr
    assert time.time() - t < 30
    extra = run(f"import rayredis as ray; ray.init(address={address!r}, _redis_password={password!r}, num_cpus=4)")
    assert extra.returncode != 0 and "must not be provided" in extra.stderr


def test_init_twice_and_auto_without_cluster(ray_start_regular, monkeypatch, tmp_path):
    with pytest.raises(RuntimeError, match="ignore_reinit_error"):
        ray.init()
    ray.init(ignore_reinit_error=True)
    assert ray.is_initialized()


def test_auto_address_without_a_cluster_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("RAYREDIS_TEMP_DIR", str(tmp_path))
    import rayredis.config as config

    monkeypatch.setattr(config, "_config", None)
    with pytest.raises(ConnectionError, match="rayredis start --head"):
        ray.init(address="auto")
    assert not ray.is_initialized()


def test_unserializable_return_value_fails_the_task(ray_start_regular):
    @ray.remote
    def bad():
        import threading

        return threading.Lock()

    with pytest.raises(exceptions.RayTaskError, match="serialize"):
        ray.get(bad.remote())


def test_gpu_ids_and_fractional_resources(tmp_path):
    ray.init(num_cpus=2, num_gpus=2, resources={"accel": 1.0})
    try:
        assert ray.cluster_resources()["GPU"] == 2.0

        @ray.remote(num_gpus=1)
        def which_gpu():
            import os

            return ray.get_gpu_ids(), os.environ["CUDA_VISIBLE_DEVICES"]

        ids, env = ray.get(which_gpu.remote())
        assert len(ids) == 1 and ids[0] in (0, 1) and env == str(ids[0])

        @ray.remote(num_cpus=0.5, resources={"accel": 0.25})
        def meet(directory, me):
            # A barrier through files: it only completes if all four tasks run at the same time.
            import os

            open(os.path.join(directory, str(me)), "w").close()
            deadline = time.time() + 20
            while len(os.listdir(directory)) < 4:
                if time.time() > deadline:
                    return False
                time.sleep(0.01)
            return True

        # Four tasks of half a CPU and a quarter accelerator each run at once on 2 CPUs.
        assert ray.get([meet.remote(str(tmp_path), i) for i in range(4)], timeout=60) == [True] * 4
        assert ray.get_gpu_ids() == []
    finally:
        ray.shutdown()


@ray.remote
def _module_level_task():
    return "again"


def test_same_function_in_two_consecutive_clusters():
    # The second cluster's function table starts empty: the function must be exported again.
    for _ in range(2):
        ray.init(num_cpus=1)
        try:
            assert ray.get(_module_level_task.remote(), timeout=30) == "again"
        finally:
            ray.shutdown()


def test_driver_over_grpc_and_socket_auth(ray_start_regular):
    """Local clients use the raylet's Unix socket; the gRPC stream (remote clients) works the
    same; and the socket drops a peer without the cluster token before reading anything else."""
    import socket
    import struct
    import subprocess
    import sys

    from rayredis._private import worker_context

    cw = worker_context.global_worker
    assert cw.raylet._sock is not None  # this driver is on the socket
    address, password = cw.store.primary_address, cw.store.password
    code = (f"import rayredis as ray; ray.init(address={address!r}, _redis_password={password!r})\n"
            "from rayredis._private import worker_context\n"
            "assert worker_context.global_worker.raylet._sock is None\n"
            "@ray.remote\n"
            "def f(x):\n    return x + 1\n"
            "print(sum(ray.get([f.remote(i) for i in range(100)])))\n")
    env = dict(__import__("os").environ, RAYREDIS_LOCAL_SOCKET="0")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 0 and res.stdout.strip() == "5050", res.stderr

    name = f"rayredis-raylet-{cw.node_id.hex()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect("\0" + name)
    s.sendall(struct.pack("<I", 5) + b"wrong")
    assert s.recv(1) == b""  # closed without a reply
    s.close()

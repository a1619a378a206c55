"""Actors on a real local cluster: ordering, handles, names, death, restarts, concurrency, async."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

import rayredis as ray
from rayredis import exceptions
from rayredis.actor import exit_actor


@ray.remote
class Counter:
    def __init__(self, start=0):
        self.n = start

    def inc(self, k=1):
        self.n += k
        return self.n

    def get(self):
        return self.n

    def pid(self):
        return os.getpid()

    def die(self):
        os._exit(1)

    def leave(self):
        exit_actor()

    @ray.method(num_returns=2)
    def pair(self):
        return self.n, -self.n


def test_calls_run_in_submission_order(ray_shared):
    c = Counter.remote(10)
    refs = [c.inc.remote() for _ in range(200)]
    assert ray.get(refs) == list(range(11, 211))
    a, b = c.pair.remote()
    assert ray.get([a, b]) == [210, -210]


def test_handle_passed_to_tasks_and_actors(ray_shared):
    c = Counter.remote()

    @ray.remote
    def bump(handle, k):
        return ray.get(handle.inc.remote(k))

    ray.get([bump.remote(c, 1) for _ in range(5)])
    assert ray.get(c.get.remote()) == 5


def test_direct_instantiation_is_a_type_error(ray_shared):
    with pytest.raises(TypeError, match=r"Counter.remote\(\)"):
        Counter()


def test_named_actor_lookup_and_name_clash(ray_shared):
    c = Counter.options(name="shared-counter").remote(7)
    h = ray.get_actor("shared-counter")
    assert ray.get(h.get.remote()) == 7
    with pytest.raises(ValueError, match="already taken"):
        Counter.options(name="shared-counter").remote()
    same = Counter.options(name="shared-counter", get_if_exists=True).remote()
    assert ray.get(same.get.remote()) == 7
    with pytest.raises(ValueError, match="Failed to look up"):
        ray.get_actor("no-such-actor")
    ray.kill(c)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            ray.get_actor("shared-counter")
        except ValueError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a killed actor's name was not released")


def test_kill_fails_pending_and_later_calls(ray_shared):
    c = Counter.remote()
    assert ray.get(c.inc.remote()) == 1
    ray.kill(c)
    with pytest.raises(exceptions.ActorDiedError):
        ray.get(c.inc.remote(), timeout=30)
    with pytest.raises(exceptions.RayActorError):
        ray.get(c.inc.remote(), timeout=30)


def test_actor_process_death_without_restarts(ray_shared):
    c = Counter.remote()
    ray.get(c.inc.remote())
    with pytest.raises(exceptions.RayActorError):
        ray.get(c.die.remote(), timeout=30)
    with pytest.raises(exceptions.ActorDiedError):
        ray.get(c.inc.remote(), timeout=30)


def test_actor_restarts_up_to_max_restarts(ray_shared):
    c = Counter.options(max_restarts=1).remote()
    pid1 = ray.get(c.pid.remote())
    with pytest.raises(exceptions.RayActorError):
        ray.get(c.die.remote(), timeout=30)
    pid2 = ray.get(c.pid.remote(), timeout=60)
    assert pid2 != pid1
    assert ray.get(c.get.remote()) == 0  # state is rebuilt by the constructor
    with pytest.raises(exceptions.RayActorError):
        ray.get(c.die.remote(), timeout=30)
    with pytest.raises(exceptions.ActorDiedError):
        ray.get(c.pid.remote(), timeout=30)


def test_max_task_retries_resends_inflight_calls(ray_shared, tmp_path):
    marker = str(tmp_path / "crashed")

    @ray.remote(max_restarts=1, max_task_retries=1)
    class Fragile:
        def work(self, path):
            if not os.path.exists(path):
                open(path, "w").close()
                os._exit(1)
            return "done"

    f = Fragile.remote()
    assert ray.get(f.work.remote(marker), timeout=60) == "done"


def test_kill_with_restart(ray_shared):
    c = Counter.options(max_restarts=1).remote()
    pid1 = ray.get(c.pid.remote())
    ray.kill(c, no_restart=False)
    deadline = time.time() + 30
    while True:
        try:
            pid2 = ray.get(c.pid.remote(), timeout=30)
            break
        except exceptions.RayActorError:
            assert time.time() < deadline
    assert pid2 != pid1


def test_exit_actor(ray_shared):
    c = Counter.remote()
    with pytest.raises(exceptions.RayActorError):
        ray.get(c.leave.remote(), timeout=30)
    with pytest.raises(exceptions.ActorDiedError):
        ray.get(c.inc.remote(), timeout=30)


def test_constructor_error_surfaces(ray_shared):
    @ray.remote
    class Broken:
        def __init__(self):
            raise RuntimeError("bad init")

        def ping(self):
            return 1

    b = Broken.remote()
    with pytest.raises(exceptions.ActorDiedError, match="bad init"):
        ray.get(b.ping.remote(), timeout=30)


def test_threaded_actor_runs_calls_concurrently(ray_shared):
    @ray.remote(max_concurrency=4)
    class Gate:
        def __init__(self):
            self.barrier = threading.Barrier(4, timeout=20)

        def meet(self):
            self.barrier.wait()
            return threading.get_ident()

    g = Gate.remote()
    idents = ray.get([g.meet.remote() for _ in range(4)], timeout=60)
    assert len(set(idents)) == 4


def test_async_actor(ray_shared):
    @ray.remote
    class AsyncActor:
        def __init__(self):
            self.event = asyncio.Event()

        async def wait_for_it(self):
            await self.event.wait()
            return "released"

        async def release(self):
            self.event.set()
            return "ok"

    a = AsyncActor.remote()
    waiting = a.wait_for_it.remote()
    time.sleep(0.2)
    assert ray.get(a.release.remote(), timeout=30) == "ok"
    assert ray.get(waiting, timeout=30) == "released"


def test_actor_error_keeps_actor_alive(ray_shared):
    @ray.remote
    class Picky:
        def check(self, x):
            if x < 0:
                raise ValueError("negative")
            return x

    p = Picky.remote()
    with pytest.raises(ValueError, match="negative"):
        ray.get(p.check.remote(-1))
    assert ray.get(p.check.remote(3)) == 3


def test_detached_actor_outlives_its_driver(ray_shared, tmp_path):
    import subprocess
    import sys

    script = tmp_path / "driver.py"
    script.write_text(
        "import rayredis as ray\n"
        "ray.init(address='" + ray.get_runtime_context().gcs_address + "')\n"
        "@ray.remote\n"
        "class Keeper:\n"
        "    def ping(self):\n"
        "        return 'pong'\n"
        "k = Keeper.options(name='keeper', namespace='persist', lifetime='detached').remote()\n"
        "assert ray.get(k.ping.remote()) == 'pong'\n"
        "t = Keeper.options(name='temp', namespace='persist').remote()\n"
        "assert ray.get(t.ping.remote()) == 'pong'\n"
    )
    from rayredis._private.worker_context import global_worker

    env = dict(os.environ, RAYREDIS_REDIS_PASSWORD=global_worker.store.password)
    subprocess.run([sys.executable, str(script)], check=True, env=env, timeout=60)
    k = ray.get_actor("keeper", namespace="persist")
    assert ray.get(k.ping.remote(), timeout=30) == "pong"
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            ray.get_actor("temp", namespace="persist")
            time.sleep(0.1)
        except ValueError:
            break
    else:
        pytest.fail("a non-detached actor survived its driver")
    ray.kill(k)


def test_dropped_handle_ends_actor_after_its_pending_calls(ray_shared):
    # As in Ray: calls already submitted through a temporary handle still run.
    assert ray.get(Counter.remote(41).inc.remote(), timeout=30) == 42
    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    del c
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
            time.sleep(0.05)
        except ProcessLookupError:
            break
    else:
        pytest.fail("the actor outlived its last handle")

"""Ray's semantics, third batch (issue 8): built-in actor methods, the actor class as its wrapped
class, inheritance errors, ``exit_actor`` running ``atexit`` handlers, and the runtime context API."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest

import rayredis as ray
from rayredis.actor import ActorClassInheritanceException
from rayredis.util.placement_group import placement_group, remove_placement_group
from rayredis.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from tests.conftest import _shutdown_checked


def _eventually(cond: Callable[[], bool], within_s: float = 60.0) -> bool:
    """Poll ``cond`` until it holds (bounded, so a regression fails instead of hanging)."""
    deadline = time.monotonic() + within_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster() -> Any:
    """One cluster for the module, with a custom resource for the runtime-context checks."""
    ctx = ray.init(num_cpus=2, resources={"sem_custom": 4})
    try:
        yield ctx
    finally:
        _shutdown_checked()


# ---- built-in methods, exit_actor and atexit --------------------------------------------------------

@ray.remote
class Slow:
    def __init__(self, marker: str = "") -> None:
        time.sleep(0.5)
        self.n = 0
        if marker:
            import atexit

            atexit.register(lambda: open(marker, "w").write("ran"))

    def step(self) -> int:
        time.sleep(0.2)
        self.n += 1
        return self.n

    def pid(self) -> int:
        return os.getpid()

    def leave(self) -> None:
        ray.actor.exit_actor()


def test_ray_ready_and_terminate(cluster: Any, tmp_path: Any) -> None:
    marker = str(tmp_path / "atexit")
    a = Slow.remote(marker)
    assert ray.get(a.__ray_ready__.remote(), timeout=60) is True  # AttributeError before
    named = Slow.options(name="ready_by_name").remote()
    assert ray.get(ray.get_actor("ready_by_name").__ray_ready__.remote(), timeout=60) is True  # get_actor's too
    pid = ray.get(a.pid.remote(), timeout=60)
    queued = [a.step.remote() for _ in range(3)]
    a.__ray_terminate__.remote()
    assert ray.get(queued, timeout=60) == [1, 2, 3]  # the calls queued before it still run
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(a.step.remote(), timeout=60)
    assert _eventually(lambda: not _alive(pid)), "the actor's process did not exit"
    assert _eventually(lambda: os.path.exists(marker)), "atexit handlers did not run on __ray_terminate__"
    ray.kill(named)


def test_exit_actor_runs_atexit_handlers(cluster: Any, tmp_path: Any) -> None:
    marker = str(tmp_path / "atexit")
    a = Slow.remote(marker)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(a.leave.remote(), timeout=60)
    assert _eventually(lambda: os.path.exists(marker)), "atexit handlers did not run on exit_actor()"


# ---- the actor class is its wrapped class -----------------------------------------------------------

class Base:
    kind = "base"

    def who(self) -> str:
        return "base"


@ray.remote
class WithAttrs(Base):
    limit = 3

    @staticmethod
    def double(x: int) -> int:
        return 2 * x

    @classmethod
    def make_limit(cls) -> int:
        return cls.limit + 1

    def use(self) -> tuple[int, int, int, str, str]:
        return WithAttrs.limit, WithAttrs.double(2), self.make_limit(), WithAttrs.kind, self.who()


def test_class_attributes_through_the_actor_class(cluster: Any) -> None:
    assert WithAttrs.limit == 3 and WithAttrs.double(5) == 10 and WithAttrs.make_limit() == 4
    assert ray.get(WithAttrs.remote().use.remote(), timeout=60) == (3, 4, 4, "base", "base")
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        WithAttrs.missing  # noqa: B018


def test_subclassing_an_actor_class_is_refused_as_in_ray(cluster: Any) -> None:
    with pytest.raises(ActorClassInheritanceException,
                       match="Attempted to define subclass 'Sub' of actor class 'WithAttrs'. Inheriting from "
                             "actor classes is not currently supported."):
        class Sub(WithAttrs):  # type: ignore[misc,valid-type]
            pass
    assert issubclass(ActorClassInheritanceException, TypeError)


# ---- runtime context --------------------------------------------------------------------------------

def _context() -> dict[str, Any]:
    c = ray.get_runtime_context()
    return {"resources": c.get_assigned_resources(), "function": c.get_task_function_name(),
            "actor_name": c.get_actor_name(), "pg": c.get_placement_group_id(),
            "capture": c.should_capture_child_tasks_in_placement_group, "canceled": c.is_canceled(),
            "labels": c.get_node_labels(), "env": (c.get_runtime_env_string(), c.runtime_env),
            "session": c.get_session_name()}


@ray.remote
def task_context() -> dict[str, Any]:
    return _context()


@ray.remote(num_cpus=0.25, resources={"sem_custom": 1.5})
class InActor:
    def context(self) -> dict[str, Any]:
        return _context()


def test_runtime_context_in_tasks_actors_and_groups(cluster: Any) -> None:
    t = ray.get(task_context.remote(), timeout=60)
    assert t["resources"] == {"CPU": 1.0}  # {} before: only GPUs were reported
    assert t["function"] == f"{__name__}.task_context" and t["actor_name"] is None
    assert t["pg"] is None and t["capture"] is False and t["canceled"] is False
    assert t["env"] == ("{}", {})
    node = ray.get_runtime_context().get_node_id()
    assert t["labels"] == {"ray.io/node-id": node}
    assert t["session"] == ray.get_runtime_context().get_session_name() != ""
    frac = ray.get(task_context.options(num_cpus=0.5, resources={"sem_custom": 0.5}).remote(), timeout=60)
    assert frac["resources"] == {"CPU": 0.5, "sem_custom": 0.5}
    named = InActor.options(name="ctx_actor").remote()
    a = ray.get(named.context.remote(), timeout=60)
    assert a["resources"] == {"CPU": 0.25, "sem_custom": 1.5}
    assert a["function"] == f"{__name__}.InActor.context" and a["actor_name"] == "ctx_actor"
    unnamed = InActor.remote()
    assert ray.get(unnamed.context.remote(), timeout=60)["actor_name"] == ""
    for actor in (named, unnamed):
        ray.kill(actor)  # (their CPUs: the placement-group test below needs the cluster's two)
    pg = placement_group([{"CPU": 1, "sem_custom": 1}])
    assert pg.wait(60)
    strategy = PlacementGroupSchedulingStrategy(pg, 0, placement_group_capture_child_tasks=True)
    p = ray.get(task_context.options(num_cpus=0.5, resources={"sem_custom": 1},
                                     scheduling_strategy=strategy).remote(), timeout=60)
    assert p["resources"] == {"CPU": 0.5, "sem_custom": 1.0}  # the bundle names undone, as Ray does
    assert p["pg"] == pg.id.hex() and p["capture"] is True
    remove_placement_group(pg)
    driver = ray.get_runtime_context()
    with pytest.raises(AssertionError, match="only available when the process is a worker"):
        driver.get_assigned_resources()
    with pytest.raises(RuntimeError, match="only available when the process is a worker"):
        driver.is_canceled()
    assert driver.get_task_function_name() is None and driver.get_actor_name() is None
    assert set(driver.get()) == {"job_id", "node_id", "namespace"}


def test_submodules_are_attributes_of_the_package() -> None:
    # Ray programs write ray.actor.exit_actor() and ray.util.placement_group(...) after `import ray`.
    import subprocess
    import sys

    code = ("import rayredis as ray\n"
            "print(ray.actor.exit_actor.__name__, ray.util.placement_group.__name__,\n"
            "      ray.util.scheduling_strategies.PlacementGroupSchedulingStrategy.__name__,\n"
            "      ray.runtime_context.get_runtime_context.__name__, ray.exceptions.RayError.__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(ray.__file__))})
    assert out.stdout.split() == ["exit_actor", "placement_group", "PlacementGroupSchedulingStrategy",
                                  "get_runtime_context", "RayError"], out.stderr


# ---- cancelling actor calls and children ------------------------------------------------------------

@ray.remote
class SyncWorker:
    def __init__(self) -> None:
        self.saw_cancel = False

    def run(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if ray.get_runtime_context().is_canceled():
                self.saw_cancel = True
                return "saw cancel"
            time.sleep(0.02)
        return "finished"

    def saw(self) -> bool:
        return self.saw_cancel


@ray.remote
class AsyncWorker:
    def __init__(self) -> None:
        self.cancelled = 0

    async def run(self) -> None:
        import asyncio

        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def count(self) -> int:
        return self.cancelled


def _started(ref: Any) -> None:
    ready, _ = ray.wait([ref], timeout=0.5)
    assert not ready


def test_cancel_running_actor_calls_as_in_ray(cluster: Any) -> None:
    s = SyncWorker.remote()
    ray.get(s.saw.remote(), timeout=60)
    r = s.run.remote()
    _started(r)
    with pytest.raises(ValueError, match="force=True is not supported for actor tasks."):
        ray.cancel(r, force=True)
    ray.cancel(r)
    with pytest.raises(ray.exceptions.TaskCancelledError):  # "finished" after 60 s before the change
        ray.get(r, timeout=60)
    assert ray.get(s.saw.remote(), timeout=60) is True  # flagged, not interrupted (is_canceled)
    a = AsyncWorker.remote()
    assert ray.get(a.count.remote(), timeout=60) == 0
    for _ in range(2):
        r = a.run.remote()
        _started(r)
        ray.cancel(r)
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(r, timeout=60)  # GetTimeoutError before the change: the call kept running
    assert ray.get(a.count.remote(), timeout=60) == 2  # CancelledError raised inside; the actor lives on


@ray.remote
class Registry:
    def __init__(self) -> None:
        self.refs: list[Any] = []

    def add(self, refs: list[Any]) -> None:
        self.refs.extend(refs)

    def all(self) -> list[Any]:
        return self.refs


@ray.remote(num_cpus=0)
def sleeper() -> None:
    time.sleep(3600)


@ray.remote(num_cpus=0)
def spawner(reg: Any) -> None:
    child = sleeper.remote()
    ray.get(reg.add.remote([child]))
    ray.get(child)


def test_recursive_cancel_reaches_child_tasks(cluster: Any) -> None:
    reg = Registry.remote()
    for recursive in (True, False):
        known = len(ray.get(reg.all.remote(), timeout=60))
        parent = spawner.remote(reg)
        assert _eventually(lambda known=known: len(ray.get(reg.all.remote(), timeout=60)) > known)  # the child exists
        child = ray.get(reg.all.remote(), timeout=60)[-1]
        ray.cancel(parent, recursive=recursive)
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(parent, timeout=60)
        if recursive:
            with pytest.raises(ray.exceptions.TaskCancelledError):
                ray.get(child, timeout=60)  # the child ran on for an hour before the change
        else:
            assert ray.wait([child], timeout=1)[0] == []
            ray.cancel(child, force=True)


# ---- error shapes -----------------------------------------------------------------------------------

class HoldsALock(Exception):
    def __init__(self) -> None:
        import threading

        super().__init__("with a lock")
        self.lock = threading.Lock()


@ray.remote
def raises_unpicklable() -> None:
    raise HoldsALock()


@ray.remote
class Described:
    def __repr__(self) -> str:
        return "Described(7)"

    def fail(self) -> None:
        raise KeyError("k")

    def echo(self, x: Any) -> Any:
        return x


def test_error_that_cannot_be_pickled_takes_rays_shape(cluster: Any) -> None:
    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(raises_unpicklable.remote(), timeout=60)
    err = info.value
    assert type(err) is ray.exceptions.RayTaskError  # plain, as in Ray (was RayTaskError(RuntimeError))
    assert type(err.cause) is ray.exceptions.RayError
    assert str(err.cause).startswith(f"Exception {__name__}.HoldsALock isn't serializable: cannot pickle "
                                     f"'_thread.lock' object.\nOriginal exception details:\n")
    assert "in raises_unpicklable" in str(err.cause) and "HoldsALock: with a lock" in str(err.cause)


def test_actor_error_header_names_the_actor(cluster: Any) -> None:
    a = Described.remote()
    with pytest.raises(KeyError) as info:
        ray.get(a.fail.remote(), timeout=60)
    assert str(info.value).startswith("ray::Described.fail() (pid=")
    assert f", actor_id={a._ray_actor_id.hex()}, repr=Described(7))\n" in str(info.value)


# ---- placement groups: children captured, blocked parents lend their bundle's CPU ------------------

@ray.remote
def child_group() -> str | None:
    return ray.get_runtime_context().get_placement_group_id()


@ray.remote
def parent_waits_on_child(opt_out: bool) -> str | None:
    # Captured: the child goes into the parent's 1-CPU bundle and runs while the parent waits.
    options = {"scheduling_strategy": "DEFAULT"} if opt_out else {}
    return ray.get(child_group.options(**options).remote())


def test_capture_child_tasks_in_a_one_cpu_bundle(cluster: Any) -> None:
    pg = placement_group([{"CPU": 1}])
    hog = placement_group([{"CPU": 1}])  # the cluster's other CPU: a child outside the group cannot run
    assert pg.wait(60) and hog.wait(60)
    try:
        strategy = PlacementGroupSchedulingStrategy(pg, 0, placement_group_capture_child_tasks=True)
        # Never finished before the change (the child was not captured, and no CPU was left for it).
        assert ray.get(parent_waits_on_child.options(scheduling_strategy=strategy).remote(False),
                       timeout=120) == pg.id.hex()
        remove_placement_group(hog)
        assert ray.get(parent_waits_on_child.options(scheduling_strategy=strategy).remote(True),
                       timeout=120) is None  # an explicit strategy opts out, as in Ray
        uncaptured = PlacementGroupSchedulingStrategy(pg, 0)
        assert ray.get(parent_waits_on_child.options(scheduling_strategy=uncaptured).remote(False),
                       timeout=120) is None
    finally:
        remove_placement_group(pg)
        remove_placement_group(hog)


@ray.remote
def upstream() -> None:
    raise ValueError("root")


@ray.remote
def downstream(x: Any) -> Any:
    return x


@ray.remote
def nested_get() -> Any:
    return ray.get(upstream.remote())


def test_chained_errors_read_as_rays(cluster: Any) -> None:
    with pytest.raises(ValueError) as info:
        ray.get(downstream.remote(downstream.remote(upstream.remote())), timeout=60)
    text = str(info.value)  # was upstream's error alone, with its own header
    assert text.startswith("ray::downstream() (pid=")
    assert ("  At least one of the input arguments for this task could not be computed:\n"
            "rayredis.exceptions.RayTaskError: ray::downstream() (pid=") in text
    assert text.count("At least one of the input arguments") == 2 and "ray::upstream() (pid=" in text
    assert text.rstrip().endswith("ValueError: root")
    with pytest.raises(ValueError) as info:
        ray.get(nested_get.remote(), timeout=60)
    text = str(info.value)
    assert text.startswith("ray::nested_get() (pid=") and "in nested_get" in text
    assert "rayredis.exceptions.RayTaskError(ValueError): ray::upstream() (pid=" in text
    assert "rayredis/api.py" not in text  # the API frames the nested get went through are left out
    a = Described.remote()
    with pytest.raises(ValueError) as info:
        ray.get(a.echo.remote(upstream.remote()), timeout=60)
    assert str(info.value).startswith("ray::Described.echo() (pid=")
    assert f"actor_id={a._ray_actor_id.hex()}, repr=Described(7))\n  At least one of the input" in str(info.value)

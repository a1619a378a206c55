"""Tasks on a real local cluster: submission, arguments, nesting, errors, retries, cancellation."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import rayredis as ray
from rayredis import exceptions


@ray.remote
def add(a, b=0):
    return a + b


@ray.remote
def identity(x):
    return x


@ray.remote(num_returns=3)
def three():
    return 1, 2, 3


@ray.remote
def fail(msg):
    raise ValueError(msg)


@ray.remote
def fib(n):
    if n < 2:
        return n
    return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))


def test_simple_and_many(ray_shared):
    assert ray.get(add.remote(1, 2)) == 3
    assert ray.get([add.remote(i, b=i) for i in range(200)]) == [2 * i for i in range(200)]


def test_direct_call_is_a_type_error(ray_shared):
    with pytest.raises(TypeError, match=r"add.remote\(\)"):
        add(1, 2)


def test_refs_as_arguments_are_resolved_but_nested_refs_stay_refs(ray_shared):
    r = add.remote(1, 1)
    assert ray.get(add.remote(r, r)) == 4
    inner = ray.put(5)
    got = ray.get(identity.remote([inner]))
    assert isinstance(got[0], ray.ObjectRef)
    assert ray.get(got[0]) == 5


def test_ref_returned_from_task(ray_shared):
    @ray.remote
    def make():
        return ray.put("inside")

    outer = ray.get(make.remote())
    assert isinstance(outer, ray.ObjectRef)
    assert ray.get(outer) == "inside"


def test_num_returns_and_bad_count(ray_shared):
    a, b, c = three.remote()
    assert ray.get([a, b, c]) == [1, 2, 3]
    with pytest.raises(ValueError, match="num_returns=2"):
        ray.get(identity.options(num_returns=2).remote([1, 2, 3])[0])


def test_nested_tasks_do_not_deadlock(ray_shared):
    # fib(8) keeps more tasks blocked in get than there are CPUs; blocked workers lend their CPU.
    assert ray.get(fib.remote(8)) == 21


def test_error_keeps_type_and_remote_traceback(ray_shared):
    with pytest.raises(ValueError) as info:
        ray.get(fail.remote("boom"))
    err = info.value
    assert isinstance(err, exceptions.RayTaskError)
    assert "boom" in str(err)
    text = str(err)
    assert text.startswith("ray::") and "(pid=" in text  # Ray's header
    assert 'in fail' in text and "rayredis/worker" not in text  # the user's frames only


def test_error_propagates_through_dependent_tasks(ray_shared):
    with pytest.raises(ValueError, match="upstream"):
        ray.get(add.remote(fail.remote("upstream"), 1))


def test_unserializable_argument_fails_at_call_site(ray_shared):
    import threading

    with pytest.raises(TypeError, match="picklable"):
        identity.remote(threading.Lock())


def test_bad_option_names_the_valid_ones(ray_shared):
    with pytest.raises(ValueError, match="num_cpus"):
        add.options(num_cpu=1)
    with pytest.raises(ValueError, match="The quantity of resource num_cpus cannot be negative"):
        add.options(num_cpus=-1)


def test_large_values_through_shared_memory(ray_shared):
    arr = np.arange(2_000_000, dtype=np.int64)
    ref = ray.put(arr)
    out = ray.get(ref)
    assert not out.flags.writeable  # a read-only view into shared memory, as in Ray
    assert np.array_equal(out, arr)
    assert ray.get(identity.remote(arr)).sum() == arr.sum()  # large inline argument
    big = ray.get(identity.remote(ref))
    assert big.shape == arr.shape


def test_get_timeout(ray_shared):
    @ray.remote
    def slow():
        time.sleep(3)
        return 1

    r = slow.remote()
    with pytest.raises(exceptions.GetTimeoutError):
        ray.get(r, timeout=0.2)
    assert ray.get(r, timeout=30) == 1


def test_wait_semantics(ray_shared):
    @ray.remote
    def sleep_then(x, s):
        time.sleep(s)
        return x

    fast = [sleep_then.remote(i, 0) for i in range(3)]
    slow = sleep_then.remote(99, 5)
    ready, rest = ray.wait(fast + [slow], num_returns=3, timeout=4)
    assert set(ready) == set(fast) and rest == [slow]
    ready, rest = ray.wait([slow], timeout=0.1)
    assert ready == [] and rest == [slow]
    with pytest.raises(ValueError):
        ray.wait(fast, num_returns=10)
    ray.cancel(slow, force=True)


def test_cancel_queued_and_running(ray_shared):
    @ray.remote
    def sleeper():
        time.sleep(60)

    r = sleeper.remote()
    time.sleep(0.5)
    ray.cancel(r)
    with pytest.raises(exceptions.TaskCancelledError):
        ray.get(r, timeout=30)
    r2 = sleeper.remote()
    time.sleep(0.5)
    ray.cancel(r2, force=True)
    with pytest.raises(exceptions.TaskCancelledError):
        ray.get(r2, timeout=30)


def test_worker_death_is_retried(ray_shared, tmp_path):
    marker = tmp_path / "died-once"

    @ray.remote(max_retries=2)
    def die_once(path):
        if not os.path.exists(path):
            open(path, "w").close()
            os._exit(1)
        return "second attempt"

    assert ray.get(die_once.remote(str(marker)), timeout=60) == "second attempt"


def test_worker_death_without_retries_fails(ray_shared):
    @ray.remote(max_retries=0)
    def die():
        os._exit(1)

    with pytest.raises(exceptions.WorkerCrashedError):
        ray.get(die.remote(), timeout=60)


def test_retry_exceptions(ray_shared, tmp_path):
    counter = tmp_path / "count"

    @ray.remote(max_retries=3, retry_exceptions=[KeyError])
    def flaky(path):
        n = int(open(path).read()) if os.path.exists(path) else 0
        open(path, "w").write(str(n + 1))
        if n < 2:
            raise KeyError("again")
        return n

    assert ray.get(flaky.remote(str(counter)), timeout=60) == 2

    @ray.remote(max_retries=3, retry_exceptions=[KeyError])
    def wrong_kind():
        raise ValueError("not retried")

    with pytest.raises(ValueError):
        ray.get(wrong_kind.remote(), timeout=60)


def test_resources_and_runtime_context(ray_shared):
    total = ray.cluster_resources()
    assert total["CPU"] == 2.0

    @ray.remote(num_cpus=0.5)
    def ctx():
        c = ray.get_runtime_context()
        return c.get_task_id(), c.get_node_id(), c.get_job_id()

    tid, node, job = ray.get(ctx.remote())
    assert tid and node == ray.get_runtime_context().get_node_id()
    assert job == ray.get_runtime_context().get_job_id()
    assert ray.get_runtime_context().get_task_id() is None
    assert len(ray.nodes()) == 1 and ray.nodes()[0]["Alive"]


def test_custom_resources_and_infeasible_wait(ray_shared, capfd):
    @ray.remote(resources={"nonexistent": 1})
    def never():
        return 1

    r = never.remote()
    deadline = time.time() + 10
    err = ""
    while time.time() < deadline and "nonexistent" not in err:
        time.sleep(0.05)
        err += capfd.readouterr().err
    assert "needs" in err and "waits until resources are added" in err
    ready, _ = ray.wait([r], timeout=0.5)
    assert ready == []
    ray.cancel(r)
    with pytest.raises(exceptions.TaskCancelledError):
        ray.get(r, timeout=10)


def test_task_output_reaches_the_driver(ray_shared, capfd):
    @ray.remote
    def chatty(x):
        print(f"chatty says {x}")
        return x

    assert ray.get(chatty.remote(7)) == 7
    deadline = time.time() + 10
    out = ""
    while time.time() < deadline and "chatty says 7" not in out:
        time.sleep(0.05)
        out += capfd.readouterr().out
    assert "(chatty pid=" in out and "chatty says 7" in out


def test_remote_functions_and_classes_used_before_being_captured(ray_shared):
    # `add` and `identity` have run already (their submit caches exist); closures capturing them
    # must still pickle, and so must an actor class captured by a task.
    @ray.remote
    def uses_add(x):
        return ray.get(add.remote(x, 1))

    @ray.remote
    class Holder:
        def via_identity(self, x):
            return ray.get(identity.remote(x))

    @ray.remote
    def makes_actor():
        h = Holder.remote()
        return ray.get(h.via_identity.remote("deep"))

    assert ray.get(add.remote(1, 1)) == 2
    assert ray.get(uses_add.remote(41)) == 42
    assert ray.get(makes_actor.remote(), timeout=60) == "deep"


class TwoArgError(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")


def test_exception_that_cannot_be_unpickled_still_reports_type_and_traceback(ray_shared):
    @ray.remote
    def boom():
        raise TwoArgError(1, 2)

    with pytest.raises(exceptions.UnserializableException) as info:  # Ray's class and message
        ray.get(boom.remote())
    assert "TwoArgError: 1-2" in str(info.value) and "in boom" in str(info.value)
    assert str(info.value).startswith("Failed to deserialize exception.")

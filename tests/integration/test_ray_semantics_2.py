"""Ray's semantics, second batch (issue 8): ``max_calls``, ``max_pending_calls``, fail-fast ``get``,
built-in actor methods, the runtime context, actor class inheritance, ``exit_actor`` and
exceptions that cannot be pickled."""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

import rayredis as ray


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


# ---- max_calls ------------------------------------------------------------------------------------

_held: list[bytes] = []


@ray.remote(max_calls=2)
def twice_per_worker() -> int:
    return os.getpid()


@ray.remote(max_calls=1)
def holds_memory() -> tuple[int, int]:
    _held.append(b"x" * 1024)  # module state of the worker: a fresh worker starts without it
    return os.getpid(), len(_held)


def test_max_calls_retires_the_worker(ray_shared: Any) -> None:
    pids = [ray.get(twice_per_worker.remote(), timeout=60) for _ in range(6)]
    assert max(collections.Counter(pids).values()) <= 2, pids
    first, n = ray.get(holds_memory.remote(), timeout=60)
    second, m = ray.get(holds_memory.remote(), timeout=60)
    assert first != second and n == m == 1
    assert _eventually(lambda: not _alive(first)), f"worker {first} did not exit after max_calls"
    # Many calls at once: each gets its own worker, none is lost or repeated.
    assert len(set(p for p, _ in ray.get([holds_memory.remote() for _ in range(6)], timeout=120))) == 6


def test_max_calls_options_as_in_ray(ray_shared: Any) -> None:
    with pytest.raises(TypeError, match=r"The type of keyword 'max_calls' must be \(<class 'int'>, "
                                        r"<class 'NoneType'>\), but received type <class 'float'>"):
        ray.remote(max_calls=1.5)(lambda: 1)
    with pytest.raises(ValueError, match="The keyword 'max_calls' only accepts None, 0 or a positive integer."):
        ray.remote(max_calls=-1)(lambda: 1)
    with pytest.raises(ValueError, match=r"Setting 'max_calls' is not supported in '.options\(\)'."):
        twice_per_worker.options(max_calls=3)
    with pytest.raises(ValueError, match="Invalid option keyword"):
        @ray.remote(max_calls=1)
        class NoMaxCalls:
            pass
    # As in Ray, a GPU function defaults to max_calls=1, and _remote ignores max_calls.
    assert ray.remote(num_gpus=1)(lambda: 1)._default_options["max_calls"] == 1
    assert ray.get(twice_per_worker._remote(max_calls=5), timeout=60) > 0


# ---- max_pending_calls ----------------------------------------------------------------------------

@ray.remote
class Gate:
    def __init__(self) -> None:
        self.open = False

    def wait_open(self) -> int:
        while not self.open:
            time.sleep(0.01)
        return 1

    def release(self) -> None:
        self.open = True


def test_max_pending_calls_raises_at_the_call_site(ray_shared: Any) -> None:
    g = Gate.options(max_pending_calls=2, max_concurrency=4).remote()
    first = [g.wait_open.remote(), g.wait_open.remote()]
    with pytest.raises(ray.exceptions.PendingCallsLimitExceeded,
                       match=r"The task wait_open could not be submitted to Actor\(Gate, [0-9a-f]+\) because "
                             r"more than 2 tasks are queued on the actor. This limit can be adjusted with "
                             r"the `max_pending_calls` actor option."):
        g.wait_open.remote()
    assert isinstance(ray.exceptions.PendingCallsLimitExceeded("x"), ray.exceptions.RayError)
    other = Gate.remote()  # no limit on another actor's handle
    assert ray.get(other.release.remote(), timeout=60) is None
    # Once calls finish, the handle takes new ones; a finished call with no returns counts too.
    h = Gate.options(max_pending_calls=1, max_concurrency=4).remote()
    ray.get(h.release.remote(), timeout=60)
    assert _eventually(lambda: _submits(h))
    g2 = Gate.options(max_pending_calls=1).remote()
    g2.release.options(num_returns=0).remote()
    assert _eventually(lambda: _submits(g2))
    # g is still at its limit until its calls finish.
    with pytest.raises(ray.exceptions.PendingCallsLimitExceeded):
        g.release.remote()
    ray.kill(g)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(first, timeout=60)
    assert _eventually(lambda: _submits(g, expect_died=True))


def _submits(h: Any, expect_died: bool = False) -> bool:
    try:
        ref = h.wait_open.remote()
    except ray.exceptions.PendingCallsLimitExceeded:
        return False
    if expect_died:
        with pytest.raises(ray.exceptions.ActorDiedError):
            ray.get(ref, timeout=60)
    else:
        assert ray.get(ref, timeout=60) == 1
    return True


@pytest.mark.parametrize(("value", "error", "message"), [
    (-2, ValueError, "The keyword 'max_pending_calls' only accepts None, 0, -1 or a positive integer, "
                     "where -1 represents infinity."),
    (1.5, TypeError, "The type of keyword 'max_pending_calls' must be"),
])
def test_max_pending_calls_validation(ray_shared: Any, value: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        Gate.options(max_pending_calls=value).remote()


# ---- get() fails fast -----------------------------------------------------------------------------

@ray.remote
def fails() -> None:
    raise ValueError("boom")


@ray.remote(num_cpus=0)
def never_finishes() -> None:
    time.sleep(3600)


def test_get_on_a_list_raises_once_any_element_failed(ray_shared: Any) -> None:
    hang = never_finishes.remote()
    bad = fails.remote()
    with pytest.raises(ValueError, match="boom"):
        ray.get([hang, bad], timeout=120)  # a hang (GetTimeoutError) before the change
    with pytest.raises(ray.exceptions.RayTaskError):
        ray.get([bad, hang], timeout=120)  # already failed when the get starts
    ray.cancel(hang, force=True)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(hang, timeout=60)

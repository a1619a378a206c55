"""Ray's call-site behaviour (issue 8, first items): argument binding, ``_remote``, option errors,
``get_if_exists`` checks, ``wait`` edge cases and messages, ``ObjectRef[...]``, unsupported addresses."""

from __future__ import annotations

from typing import Any

import pytest

import rayredis as ray
from rayredis import api


@ray.remote
def f(a: int, b: int = 2, *, c: int) -> int:
    return a + b + c


@ray.remote
def pos_only(a: int, /, *rest: int, **kw: int) -> int:
    return a + sum(rest) + sum(kw.values())


@ray.remote
class Acc:
    def __init__(self, start: int):
        self.n = start

    def add(self, k: int, *, times: int = 1) -> int:
        self.n += k * times
        return self.n

    @staticmethod
    def twice(x: int) -> int:
        return 2 * x


@pytest.mark.parametrize(("call", "message"), [
    (lambda: f.remote(1, 2, 3), "too many positional arguments"),
    (lambda: f.remote(1), "missing a required argument: 'c'"),
    (lambda: f.remote(1, c=1, d=2), "got an unexpected keyword argument 'd'"),
    (lambda: pos_only.remote(a=1), "'a' parameter is positional only, but was passed as a keyword"),
    (lambda: Acc.remote(), "missing a required argument: 'start'"),
    (lambda: Acc.remote(1, 2), "too many positional arguments"),
])
def test_arguments_are_bound_at_the_call_site(ray_shared: Any, call: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        call()


def test_methods_bind_and_good_calls_still_work(ray_shared: Any) -> None:
    a = Acc.remote(10)
    with pytest.raises(TypeError, match="missing a required argument: 'k'"):
        a.add.remote()
    with pytest.raises(TypeError, match="too many positional arguments"):
        a.add.remote(1, 2)
    assert ray.get(a.add.remote(1, times=3), timeout=30) == 13
    assert ray.get(a.twice.remote(4), timeout=30) == 8
    assert ray.get(pos_only.remote(1, 2, 3, x=4), timeout=30) == 10

    @ray.remote
    def use(h: Any) -> int:  # a handle passed to a task keeps checking its arguments
        try:
            h.add.remote()
        except TypeError:
            return int(ray.get(h.add.remote(1)))
        return -1

    assert ray.get(use.remote(a), timeout=30) == 14


def test_underscore_remote_as_in_ray(ray_shared: Any) -> None:
    assert ray.get(f._remote(args=[1], kwargs={"c": 3}, num_cpus=0), timeout=30) == 6
    assert ray.get(f._remote(args=(1, 1), kwargs={"c": 1}), timeout=30) == 3
    a = Acc._remote(args=[5], kwargs={}, name="acc_remote", namespace="sem")
    assert ray.get(ray.get_actor("acc_remote", namespace="sem").add.remote(1), timeout=30) == 6
    ray.kill(a)


def test_actor_option_errors(ray_shared: Any) -> None:
    with pytest.raises(ValueError, match="The actor name must be specified to use `get_if_exists`."):
        Acc.options(get_if_exists=True).remote(1)
    with pytest.raises(TypeError, match=r"The type of keyword 'name' must be \(<class 'str'>"):
        Acc.options(name=5).remote(1)
    with pytest.raises(TypeError, match="The type of keyword 'namespace'"):
        Acc.options(name="x", namespace=5).remote(1)
    with pytest.raises(TypeError, match="The type of keyword 'max_retries'"):
        f.options(max_retries=1.5)
    one = Acc.options(name="same", get_if_exists=True).remote(1)
    two = Acc.options(name="same", get_if_exists=True).remote(2)
    assert one == two
    ray.kill(one)


def test_wait_edge_cases_and_messages(ray_shared: Any) -> None:
    assert ray.wait([]) == ([], [])
    r = ray.put(1)
    with pytest.raises(ValueError, match="Invalid number of objects to return 0"):
        ray.wait([r], num_returns=0)
    with pytest.raises(ValueError, match="num_returns cannot be greater than the number"):
        ray.wait([r], num_returns=2)
    with pytest.raises(ValueError, match="The 'timeout' argument must be nonnegative. Received -1"):
        ray.wait([r], timeout=-1)
    with pytest.raises(TypeError, match="wait\\(\\) expected a list of ray.ObjectRef, got list containing"):
        ray.wait([1])  # type: ignore[list-item]
    assert ray.wait([r]) == ([r], [])


def test_object_ref_is_subscriptable_for_annotations() -> None:
    def g(x: ray.ObjectRef[int]) -> ray.ObjectRef[list[int]]:
        return x  # type: ignore[return-value]

    assert "ObjectRef[int]" in repr(ray.ObjectRef[int])
    assert g.__annotations__


@pytest.mark.parametrize("address", ["ray://127.0.0.1:10001", "http://127.0.0.1:8265"])
def test_ray_client_and_job_addresses_name_what_works(address: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        api._resolve_address(address)

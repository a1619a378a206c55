"""Task and actor option validation, with messages naming the fix."""

from __future__ import annotations

from typing import Any

import pytest

from rayredis.options import ACTOR_OPTIONS, METHOD_OPTIONS, TASK_OPTIONS, resource_demand, validate


def test_valid_options_pass_and_are_returned() -> None:
    opts = {"num_cpus": 0.5, "num_gpus": 1, "resources": {"custom": 2}, "max_retries": -1,
            "retry_exceptions": [ValueError, KeyError], "num_returns": 2, "name": "t",
            "runtime_env": None, "scheduling_strategy": "SPREAD"}
    assert validate(opts, TASK_OPTIONS, "remote function") is opts
    actor = {"max_restarts": -1, "max_task_retries": 3, "lifetime": "detached", "namespace": "ns",
             "max_concurrency": 4, "get_if_exists": True, "runtime_env": {}}
    assert validate(actor, ACTOR_OPTIONS, "actor class") is actor
    assert validate({"num_returns": 0}, METHOD_OPTIONS, "method") == {"num_returns": 0}


def test_unknown_option_lists_valid_ones() -> None:
    with pytest.raises(ValueError) as ei:
        validate({"num_cpu": 1}, TASK_OPTIONS, "remote function")
    msg = str(ei.value)
    assert "'num_cpu'" in msg
    assert "remote function" in msg
    assert "Valid ones are" in msg
    for name in ("num_cpus", "num_gpus", "max_retries", "resources"):
        assert name in msg
    assert "_metadata" not in msg  # private options are not advertised
    names = msg.split("Valid ones are: ", 1)[1].rstrip(".").split(", ")
    assert names == sorted(names)


def test_actor_only_option_rejected_for_tasks() -> None:
    with pytest.raises(ValueError, match="max_restarts"):
        validate({"max_restarts": 1}, TASK_OPTIONS, "remote function")
    with pytest.raises(ValueError, match="max_retries"):
        validate({"max_retries": 1}, ACTOR_OPTIONS, "actor class")


@pytest.mark.parametrize(
    ("opts", "exc", "fragment"),
    [
        ({"num_cpus": True}, TypeError, "The type of keyword 'num_cpus'"),
        ({"memory": -5}, ValueError, "The quantity of resource memory cannot be negative"),
        ({"max_retries": False}, TypeError, "received type <class 'bool'>"),
        ({"max_calls": -1}, ValueError, "The keyword 'max_calls' only accepts None, 0 or a positive integer."),
        ({"resources": [("custom", 1)]}, TypeError, "must be a dict"),
        ({"resources": {"CPU": 1}}, ValueError, "num_cpus/num_gpus"),
        ({"resources": {"GPU": 1}}, ValueError, "num_cpus/num_gpus"),
        ({"resources": {1: 1}}, TypeError, "must be strings"),
        ({"resources": {"custom": -1}}, ValueError, "The quantity of resource custom cannot be negative"),
        ({"num_cpus": 0.00001}, ValueError,
         "The precision of the fractional quantity of resource num_cpus cannot go beyond 0.0001"),
        ({"resources": {"custom": 0.00005}}, ValueError, "resource custom cannot go beyond 0.0001"),
        ({"num_gpus": 1.5}, ValueError,
         "GPU resource quantities >1 must be whole numbers. The specified quantity 1.5 is invalid."),
        ({"retry_exceptions": ["ValueError"]}, TypeError, "list of exception classes"),
        ({"retry_exceptions": 1}, TypeError, "True/False"),
        ({"num_returns": "static"}, ValueError, "give an integer >= 0, 'streaming' or 'dynamic'"),
        ({"num_returns": -1}, ValueError, "only accepts None, 0 or a positive integer"),
        ({"name": 3}, TypeError, "The type of keyword 'name' must be (<class 'str'>, <class 'NoneType'>), but "
                                 "received type <class 'int'>"),
        ({"max_retries": 1.5}, TypeError, "The type of keyword 'max_retries' must be (<class 'int'>, "
                                          "<class 'NoneType'>), but received type <class 'float'>"),
        ({"max_retries": -2}, ValueError, "The keyword 'max_retries' only accepts None, 0, -1 or a positive "
                                          "integer, where -1 represents infinity."),
        ({"max_calls": 1.0}, TypeError, "The type of keyword 'max_calls'"),
        ({"num_cpus": -1}, ValueError, "The quantity of resource num_cpus cannot be negative"),
        ({"num_cpus": "2"}, TypeError, "The type of keyword 'num_cpus'"),
        ({"runtime_env": {"pip": ["requests"]}}, ValueError, "runtime_env is not supported"),
        ({"placement_group_bundle_index": -2}, ValueError, "only accepts None, 0, -1"),
    ],
)
def test_bad_task_options(opts: dict[str, Any], exc: type[Exception], fragment: str) -> None:
    with pytest.raises(exc) as ei:
        validate(opts, TASK_OPTIONS, "remote function")
    assert fragment in str(ei.value)


@pytest.mark.parametrize(
    ("opts", "fragment"),
    [
        ({"lifetime": "forever"}, "'detached'"),
        ({"max_concurrency": 0}, "only accepts None or a positive integer"),
        ({"max_restarts": -3}, "The keyword 'max_restarts' only accepts None, 0, -1 or a positive integer"),
        ({"max_pending_calls": "10"}, "The type of keyword 'max_pending_calls'"),
    ],
)
def test_bad_actor_options(opts: dict[str, Any], fragment: str) -> None:
    with pytest.raises((ValueError, TypeError)) as ei:
        validate(opts, ACTOR_OPTIONS, "actor class")
    assert fragment in str(ei.value)


def test_lifetime_values() -> None:
    for v in ("detached", "non_detached"):
        assert validate({"lifetime": v}, ACTOR_OPTIONS, "actor class") == {"lifetime": v}
    assert validate({"lifetime": None}, ACTOR_OPTIONS, "actor class") == {}  # None: the default


def test_resource_demand_defaults() -> None:
    assert resource_demand({}, default_cpus=1) == {"CPU": 1.0}
    assert resource_demand({}, default_cpus=0.0) == {}  # actors hold no CPU by default
    assert resource_demand({"num_cpus": None}, default_cpus=1) == {"CPU": 1.0}


def test_resource_demand_explicit() -> None:
    got = resource_demand({"num_cpus": 0.5, "num_gpus": 0.25, "memory": 1024, "resources": {"a": 2, "b": 0}},
                          default_cpus=1)
    assert got == {"CPU": 0.5, "GPU": 0.25, "memory": 1024.0, "a": 2.0}
    assert all(isinstance(v, float) for v in got.values())


def test_resource_demand_zero_cpus_overrides_default() -> None:
    assert resource_demand({"num_cpus": 0}, default_cpus=1) == {}
    assert resource_demand({"num_cpus": 0, "num_gpus": 1}, default_cpus=1) == {"GPU": 1.0}


def test_resource_demand_treats_none_as_default() -> None:
    got = resource_demand({"num_cpus": None, "num_gpus": None, "memory": None, "resources": None},
                          default_cpus=1)
    assert got == {"CPU": 1.0}


def test_none_options_mean_the_default() -> None:
    # As in Ray, ``.options(num_cpus=None, max_retries=None, ...)`` leaves the defaults in place.
    opts = {"num_cpus": None, "num_gpus": None, "memory": None, "resources": None, "max_retries": None}
    assert validate(dict(opts), TASK_OPTIONS, "remote function") == {}
    opts.pop("max_retries")
    assert validate({**opts, "max_restarts": None}, ACTOR_OPTIONS, "actor class") == {}


def test_placement_group_and_scheduling_strategy_conflict_as_in_ray() -> None:
    with pytest.raises(ValueError, match="Placement groups should be specified via the scheduling_strategy option. "
                                         "The placement_group option is deprecated."):
        validate({"placement_group": object(), "scheduling_strategy": "SPREAD"}, TASK_OPTIONS, "remote function")
    assert validate({"placement_group": "default", "scheduling_strategy": "SPREAD"}, ACTOR_OPTIONS, "actor")

"""Option tables for tasks and actors (Ray's names), validated at the call site with messages naming the fix."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any


def _type_error(name: str, v: Any, types: tuple[type, ...]) -> TypeError:
    """Ray's wording for an option of the wrong type."""
    return TypeError(f"The type of keyword '{name}' must be {types}, but received type {type(v)}")


def _number(name: str, v: Any) -> None:
    if v is None:
        return
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        raise _type_error(name, v, (int, float, type(None)))
    if v < 0:
        raise ValueError(f"The quantity of resource {name} cannot be negative")
    if isinstance(v, float) and v != 0.0 and int(v * 10000) == 0:
        raise ValueError(f"The precision of the fractional quantity of resource {name} cannot go beyond 0.0001")
    if name == "num_gpus" and float(v) > 1 and float(v) != int(float(v)):  # whole GPUs beyond one (Ray)
        raise ValueError(f"GPU resource quantities >1 must be whole numbers. The specified quantity {v} is invalid.")


#: What Ray says an integer option accepts, by its lowest allowed value.
_ACCEPTS = {-1: "None, 0, -1 or a positive integer, where -1 represents infinity",
            0: "None, 0 or a positive integer", 1: "None or a positive integer"}


def _int(low: int) -> Callable[[str, Any], None]:
    def check(name: str, v: Any) -> None:
        if v is None:
            return
        if not isinstance(v, int) or isinstance(v, bool):
            raise _type_error(name, v, (int, type(None)))
        if v < low:
            raise ValueError(f"The keyword '{name}' only accepts {_ACCEPTS[low]}.")

    return check


def _resources(name: str, v: Any) -> None:
    if v is None:
        return
    if not isinstance(v, dict):
        raise TypeError(f"The option resources={v!r} must be a dict like {{'custom': 1}}.")
    for k, amount in v.items():
        if k in ("CPU", "GPU"):
            raise ValueError(f"Use num_cpus/num_gpus instead of resources={{{k!r}: ...}}.")
        if not isinstance(k, str):
            raise TypeError(f"Resource names must be strings, got {k!r}.")
        _number(k, amount)


def _str(name: str, v: Any) -> None:
    if v is not None and not isinstance(v, str):
        raise _type_error(name, v, (str, type(None)))


def _retry_exceptions(name: str, v: Any) -> None:
    if isinstance(v, bool):
        return
    if isinstance(v, (list, tuple)) and all(isinstance(c, type) and issubclass(c, BaseException) for c in v):
        return
    raise TypeError("retry_exceptions must be True/False or a list of exception classes.")


def _num_returns(name: str, v: Any) -> None:
    if isinstance(v, str):
        if v not in ("streaming", "dynamic"):
            raise ValueError(f"num_returns={v!r} is invalid: give an integer >= 0, 'streaming' or 'dynamic'.")
        return
    _int(0)(name, v)


def _lifetime(name: str, v: Any) -> None:
    if v not in (None, "detached", "non_detached"):
        raise ValueError(f"lifetime={v!r} is invalid: use None, 'detached' or 'non_detached'.")


def _max_concurrency(name: str, v: Any) -> None:
    _int(1)(name, v)


def _any(name: str, v: Any) -> None:
    return None


def _runtime_env(name: str, v: Any) -> None:
    if v:
        raise ValueError("runtime_env is not supported by rayredis yet; install dependencies on the "
                         "nodes and set environment variables before `rayredis start`.")


_COMMON: dict[str, Callable[[str, Any], None]] = {
    "num_cpus": _number,
    "num_gpus": _number,
    "memory": _number,
    "resources": _resources,
    "scheduling_strategy": _any,
    "placement_group": _any,
    "placement_group_bundle_index": _int(-1),  # (Ray: -1 = any bundle)
    "placement_group_capture_child_tasks": _any,
    "runtime_env": _runtime_env,
    "name": _str,
    "accelerator_type": _str,
    "label_selector": _any,
    "_metadata": _any,
}

TASK_OPTIONS: dict[str, Callable[[str, Any], None]] = {
    **_COMMON,
    "num_returns": _num_returns,
    "max_retries": _int(-1),
    "retry_exceptions": _retry_exceptions,
    "max_calls": _int(0),
}

ACTOR_OPTIONS: dict[str, Callable[[str, Any], None]] = {
    **_COMMON,
    "namespace": _str,
    "lifetime": _lifetime,
    "max_restarts": _int(-1),
    "max_task_retries": _int(-1),
    "max_concurrency": _max_concurrency,
    "max_pending_calls": _int(-1),
    "get_if_exists": _any,
    "concurrency_groups": _any,
}

METHOD_OPTIONS: dict[str, Callable[[str, Any], None]] = {
    "num_returns": _num_returns,
    "name": _str,
    "max_task_retries": _int(-1),
    "retry_exceptions": _retry_exceptions,
    "concurrency_group": _any,
}


def validate(options: dict[str, Any], table: dict[str, Callable[[str, Any], None]], what: str) -> dict[str, Any]:
    """Check every option against ``table`` (unknown names raise with the list of valid ones, type
    and value errors use Ray's wording); options given as None are removed (they mean the default)."""
    for k, v in list(options.items()):
        check = table.get(k)
        if check is None:
            raise ValueError(f"Invalid option keyword {k!r} for {what}. Valid ones are: "
                             f"{', '.join(sorted(n for n in table if not n.startswith('_')))}.")
        check(k, v)
        if v is None:
            del options[k]  # None means the default, as in Ray
    check_placement_group_options(options)
    return options


def check_placement_group_options(options: dict[str, Any]) -> None:
    """Ray's check: the deprecated ``placement_group`` option and ``scheduling_strategy`` conflict."""
    if options.get("placement_group", "default") not in ("default", None) and \
            options.get("scheduling_strategy") is not None:
        raise ValueError("Placement groups should be specified via the scheduling_strategy option. "
                         "The placement_group option is deprecated.")


def resource_demand(opts: dict[str, Any], default_cpus: float) -> dict[str, float]:
    """The resource dict a task or actor asks for."""
    out: dict[str, float] = {}
    cpus = opts.get("num_cpus")
    cpus = default_cpus if cpus is None else cpus
    if cpus:
        out["CPU"] = float(cpus)
    if opts.get("num_gpus"):
        out["GPU"] = float(opts["num_gpus"])
    if opts.get("memory"):
        out["memory"] = float(opts["memory"])
    for k, v in (opts.get("resources") or {}).items():
        if v:
            out[k] = float(v)
    return out

"""rayredis: Ray's programming model on sharded Redis with stateless processes (``import rayredis as ray``).

The public names load on first use (PEP 562), so server processes (GCS, raylet) that import a
``rayredis`` submodule do not pull in the driver API, the worker runtime or numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rayredis.version import __version__

if TYPE_CHECKING:
    from rayredis import exceptions
    from rayredis._private.timeline import timeline
    from rayredis.actor import ActorClass, ActorHandle, method
    from rayredis.api import (
        available_resources,
        cancel,
        cluster_resources,
        get,
        get_actor,
        get_gpu_ids,
        init,
        is_initialized,
        kill,
        nodes,
        put,
        remote,
        shutdown,
        wait,
    )
    from rayredis.generators import DynamicObjectRefGenerator, ObjectRefGenerator
    from rayredis.object_ref import ObjectRef
    from rayredis.runtime_context import get_runtime_context

#: Public name -> the module that defines it.
_LAZY = {
    "ActorClass": "rayredis.actor", "ActorHandle": "rayredis.actor", "method": "rayredis.actor",
    "ObjectRef": "rayredis.object_ref", "get_runtime_context": "rayredis.runtime_context",
    "ObjectRefGenerator": "rayredis.generators", "DynamicObjectRefGenerator": "rayredis.generators",
    "timeline": "rayredis._private.timeline",
    **{name: "rayredis.api" for name in (
        "available_resources", "cancel", "cluster_resources", "get", "get_actor", "get_gpu_ids", "init",
        "is_initialized", "kill", "nodes", "put", "remote", "shutdown", "wait")},
}

__all__ = [
    "ActorClass", "ActorHandle", "DynamicObjectRefGenerator", "ObjectRef", "ObjectRefGenerator", "__version__",
    "available_resources", "cancel", "cluster_resources",
    "exceptions", "get", "get_actor", "get_gpu_ids", "get_runtime_context", "init", "is_initialized", "kill",
    "method", "nodes", "put", "remote", "shutdown", "timeline", "wait",
]


#: Submodules reachable as attributes of the package, as Ray's are (``ray.actor.exit_actor()``,
#: ``ray.util.placement_group(...)``), imported on first use.
_SUBMODULES = frozenset({"actor", "cluster_utils", "exceptions", "experimental", "object_ref", "remote_function",
                         "runtime_context", "util"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"rayredis.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rayredis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

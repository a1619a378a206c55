"""rayredis: Ray's programming model on sharded Redis with stateless processes (``import rayredis as ray``)."""

from __future__ import annotations

__version__ = "0.1.0"

from rayredis import exceptions  # noqa: E402
from rayredis.actor import ActorClass, ActorHandle, method  # noqa: E402
from rayredis.api import (  # noqa: E402
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
from rayredis.object_ref import ObjectRef  # noqa: E402
from rayredis.runtime_context import get_runtime_context  # noqa: E402

__all__ = [
    "ActorClass", "ActorHandle", "ObjectRef", "available_resources", "cancel", "cluster_resources",
    "exceptions", "get", "get_actor", "get_gpu_ids", "get_runtime_context", "init", "is_initialized", "kill",
    "method", "nodes", "put", "remote", "shutdown", "wait",
]

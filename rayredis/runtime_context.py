"""``get_runtime_context()``: the job, node, task and actor the caller runs in."""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING, Any

from rayredis._private.worker_context import get_worker
from rayredis.actor import ActorHandle
from rayredis.store import tables
from rayredis.worker.executor import executor

if TYPE_CHECKING:
    from rayredis.worker.core_worker import CoreWorker


class RuntimeContext:
    """Identity of the current driver, task or actor (Ray's RuntimeContext methods)."""

    def __init__(self, cw: CoreWorker):
        self._cw = cw

    def get_job_id(self) -> str:
        return struct.pack("<I", self._cw.ctx.job_id or self._cw.job_id).hex()

    @property
    def job_id(self) -> str:
        return self.get_job_id()

    def get_node_id(self) -> str:
        return str(self._cw.node_id.hex())

    @property
    def node_id(self) -> str:
        return self.get_node_id()

    def get_worker_id(self) -> str:
        return str(self._cw.worker_id.hex())

    def get_task_id(self) -> str | None:
        tid = self._cw.ctx.task_id
        return tid.hex() if tid else None

    @property
    def task_id(self) -> str | None:
        return self.get_task_id()

    def get_actor_id(self) -> str | None:
        aid = self._cw.ctx.actor_id
        return aid.hex() if aid else None

    @property
    def actor_id(self) -> str | None:
        return self.get_actor_id()

    def get_task_name(self) -> str | None:
        return self._cw.ctx.name or None

    @property
    def namespace(self) -> str:
        return str(self._cw.ctx.namespace or self._cw.namespace)

    def _check_worker(self) -> None:
        if self._cw.is_driver:  # Ray's assertion, word for word (mode 0 is its driver mode)
            raise AssertionError("This method is only available when the process is a worker. Current mode: 0")

    def get_assigned_resources(self) -> dict[str, float]:
        """The resources the current task holds (an actor method: its actor's), by the names they
        were asked for (``CPU``, ``GPU``, custom, fractional; placement-group names undone)."""
        self._check_worker()
        return dict(self._cw.ctx.resources)

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        return {"GPU": [str(g) for g in self._cw.ctx.gpu_ids]}

    def get_resource_ids(self) -> dict[str, list[str]]:
        """Ray's deprecated name of :meth:`get_accelerator_ids`."""
        return self.get_accelerator_ids()

    def get_task_function_name(self) -> str | None:
        """``module.qualname`` of the running function or method (None on the driver)."""
        return self._cw.ctx.function_name or None

    def get_actor_name(self) -> str | None:
        """The current actor's name ("" if unnamed); None outside an actor."""
        if self._cw.is_driver or not self._cw.ctx.actor_id:
            return None
        spec = executor.actor_spec
        return spec.actor_options.name if spec is not None else ""

    def get_placement_group_id(self) -> str | None:
        pg = self._cw.ctx.placement_group_id
        return pg.hex() if pg else None

    @property
    def current_placement_group_id(self) -> str | None:
        return self.get_placement_group_id()

    @property
    def should_capture_child_tasks_in_placement_group(self) -> bool:
        return self._cw.ctx.capture_child_tasks

    def get_runtime_env_string(self) -> str:
        return "{}"  # runtime_env is not supported (a non-empty one is refused)

    @property
    def runtime_env(self) -> dict[str, Any]:
        return {}

    def get_node_labels(self) -> dict[str, str]:
        return {"ray.io/node-id": self.get_node_id()}

    def get_session_name(self) -> str:
        return os.path.basename(self._cw.session_dir.rstrip("/"))

    def get_temp_dir(self) -> str:
        return os.path.dirname(self._cw.session_dir.rstrip("/")) or self._cw.cfg.temp_dir

    def is_canceled(self) -> bool:
        """Whether ``cancel()`` was called on the running task (for cleanup in a task that catches it)."""
        if self._cw.is_driver:
            raise RuntimeError("This method is only available when the process is a worker. Current mode: 0")
        if executor.loop is not None:
            raise RuntimeError("This method is not supported in an async actor.")
        tid = self._cw.ctx.task_id
        return bool(tid) and tid in executor.cancelled

    @property
    def gcs_address(self) -> str:
        return str(self._cw.store.primary_address)

    def _actor_entry(self) -> tables.ActorEntry | None:
        aid = self._cw.ctx.actor_id
        return tables.read_actor(self._cw.store.primary, aid.hex()) if aid else None

    @property
    def was_current_actor_reconstructed(self) -> bool:
        e = self._actor_entry()
        return e is not None and e.num_restarts > 0

    @property
    def current_actor(self) -> ActorHandle:
        if not self._cw.ctx.actor_id:
            raise RuntimeError("current_actor is only available inside an actor.")
        e = self._actor_entry()
        if e is None:
            raise RuntimeError(f"The current actor {self._cw.ctx.actor_id.hex()} has no entry in the actor table.")
        return ActorHandle(self._cw.ctx.actor_id, e.class_name, e.methods)

    def get(self) -> dict[str, Any]:
        """Ray's (deprecated) dict: job, node and namespace, plus the task and actor IDs in a worker."""
        out: dict[str, Any] = {"job_id": self.get_job_id(), "node_id": self.get_node_id(),
                               "namespace": self.namespace}
        if not self._cw.is_driver:
            for key, value in (("task_id", self.get_task_id()), ("actor_id", self.get_actor_id())):
                if value is not None:
                    out[key] = value
        return out


def get_runtime_context() -> RuntimeContext:
    return RuntimeContext(get_worker())

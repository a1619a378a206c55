"""``get_runtime_context()``: the job, node, task and actor the caller runs in."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from rayredis._private.worker_context import get_worker
from rayredis.actor import ActorHandle
from rayredis.store import tables

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

    def get_assigned_resources(self) -> dict[str, float]:
        return {"GPU": float(len(self._cw.ctx.gpu_ids))} if self._cw.ctx.gpu_ids else {}

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        return {"GPU": [str(g) for g in self._cw.ctx.gpu_ids]}

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
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(), "task_id": self.get_task_id(),
                "actor_id": self.get_actor_id(), "namespace": self.namespace}


def get_runtime_context() -> RuntimeContext:
    return RuntimeContext(get_worker())

"""A driver's way back to its node's restarted raylet: find it, register again, give it the driver's state."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rayredis import ids, serialization
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.store import tables
from rayredis.store.tables import NodeState
from rayredis.worker import shm_probe
from rayredis.worker.owner_state import OwnedTask, returns_of
from rayredis.worker.raylet_client import Endpoint

if TYPE_CHECKING:
    from rayredis.worker.core_worker import CoreWorker

logger = logging.getLogger(__name__)


class NodeReconnector:
    """Implements :class:`~rayredis.worker.raylet_client.Reconnector` for a driver's CoreWorker."""

    def __init__(self, cw: CoreWorker, node_id: bytes, timeout_s: float):
        self.cw = cw
        self.node_id = node_id
        self.timeout_s = timeout_s

    def locate(self) -> Endpoint | str:
        hexid = self.node_id.hex()
        rec = next((r for r in tables.read_nodes(self.cw.store.primary) if r.node_id == hexid), None)
        if rec is None or rec.info is None:
            raise LookupError(f"node {hexid[:8]} is not registered")
        if rec.state == NodeState.DEAD.value:
            return ("its node is DEAD in the node table (it was declared dead, or it stopped; a raylet that "
                    "finds itself declared dead comes back under a new node ID)")
        return Endpoint(rec.info.address, rec.info.socket if self.cw.cfg.local_socket else "", rec.info.pid)

    def register(self) -> tuple[pb.Register, Callable[[], None]]:
        cw = self.cw
        probe = shm_probe.create(cw.cfg.objects_over_connection)
        return pb.Register(worker_id=cw.worker_id, pid=os.getpid(), is_driver=cw.is_driver, job_id=cw.job_id,
                           namespace=cw.namespace, shm_probe_name=probe.name, shm_probe_data=probe.data), probe.remove

    def restore(self, put: Callable[[str, Any], None], why: str) -> None:
        cw = self.cw
        cw.objects_over_connection = cw.raylet.info.objects_over_connection
        values = cw.refs.snapshot_values()
        values.update(cw.mapped_values(values))  # (segments this process still maps)
        actor_budgets: dict[bytes, int] = {}

        def may_run_again(t: OwnedTask) -> bool:
            spec = t.spec
            if spec.kind != pb.ACTOR_TASK:
                return spec.max_retries != 0
            if spec.actor_id not in actor_budgets:
                try:
                    entry = tables.read_actor(cw.store.primary, spec.actor_id.hex())
                    actor_budgets[spec.actor_id] = entry.max_task_retries if entry is not None else 0
                except Exception as e:  # noqa: BLE001 - unknown budget: do not risk running it twice
                    logger.warning("reading actor %s for its max_task_retries failed: %s", spec.actor_id.hex(), e)
                    actor_budgets[spec.actor_id] = 0
            budget = actor_budgets[spec.actor_id]
            return budget == -1 or t.resubmits < budget

        plan = cw.owner.plan(values, may_run_again, why)
        contained = cw.owner.contained
        for oid, blob in plan.reput:
            put("puts", pb.PutObject(object_id=oid, inline_data=blob, size=len(blob),
                                     contained=contained.get(oid, [])))
        for oid, err in plan.failed:
            blob = serialization.serialize_error(err).to_bytes()
            # A put this process keeps no bytes of (spilling on): the raylet may have its predecessor's copy.
            put("puts", pb.PutObject(object_id=oid, inline_data=blob, size=len(blob), reclaim=ids.is_put_object(oid),
                                     contained=contained.get(oid, [])))
        for spec in plan.resubmit:
            put("submit", spec)
            cw.refs.ready.difference_update(returns_of(spec))
        for oid in plan.remove_refs:
            put("remove_refs", oid)
        logger.warning("restored the raylet's state: %d objects put again, %d tasks resubmitted, %d objects or "
                       "calls failed", len(plan.reput), len(plan.resubmit), len(plan.failed))

"""The GCS's calls to raylets (CreateActor, Prepare/Commit/Cancel/ReturnBundles) over cached, token-carrying gRPC."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import grpc

from rayredis._private import auth
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol._generated import rayredis_pb2_grpc as pb_grpc
from rayredis.store import tables

logger = logging.getLogger(__name__)

#: What a PrepareBundles call found: the raylet prepared the bundles, refused (it holds nothing new
#: for them), or could not be asked or did not answer (it may have prepared them).
Prepared = Literal["prepared", "refused", "unreachable"]

#: The generated stub constructor, typed (the generated gRPC module carries no annotations).
_raylet_stub: Callable[[Any], Any] = pb_grpc.RayletStub


class RayletClients(Protocol):
    """Each call answers whether the raylet did it; failures are logged and retried by the rescan."""

    async def create_actor(self, node: str, actor_id: str, attempt: int, spec: pb.TaskSpec) -> bool: ...

    async def prepare_bundles(self, node: str, pg_id: str, indexes: Sequence[int], bundles_json: Sequence[str],
                              txn: int) -> Prepared: ...

    async def commit_bundles(self, node: str, pg_id: str, indexes: Sequence[int], bundles_json: Sequence[str],
                             txn: int) -> bool: ...

    async def cancel_bundles(self, node: str, pg_id: str, indexes: Sequence[int], txn: int) -> bool:
        """True also when the node is unknown (it has no registration: nothing to give back)."""
        ...

    async def return_bundles(self, node: str, pg_id: str) -> bool:
        """True also when the node is unknown (it has no registration: nothing to give back)."""
        ...


class GrpcRayletClients:
    """One channel per raylet, found through its registration in ``rr:nodes`` and cached until the
    node's state changes (:meth:`forget`). Every call carries the cluster token as metadata.

    ``guard`` runs before every call: it raises ``lease.LeaseLostError`` when this GCS may no longer
    act, so a standby or a GCS that lost its lease creates no actor and reserves no bundle.
    """

    def __init__(self, primary: Any, token: str, guard: Callable[[], None] | None = None):
        self.primary = primary
        self.metadata = auth.metadata(token)
        self.guard = guard or (lambda: None)
        self._channels: dict[str, tuple[str, Any, Any]] = {}

    async def _stub(self, node: str) -> Any:
        cached = self._channels.get(node)
        if cached is not None:
            return cached[2]
        info = await tables.anode_info(self.primary, node)
        if info is None:
            return None
        ch = grpc.aio.insecure_channel(info.address, options=auth.GRPC_OPTIONS)
        stub = _raylet_stub(ch)
        self._channels[node] = (info.address, ch, stub)
        return stub

    def forget(self, node: str) -> None:
        """Drop the cached channel of ``node`` (its state changed: it may come back elsewhere)."""
        self._channels.pop(node, None)

    async def close(self) -> None:
        for _, ch, _ in self._channels.values():
            await ch.close()

    async def create_actor(self, node: str, actor_id: str, attempt: int, spec: pb.TaskSpec) -> bool:
        stub = await self._stub(node)
        if stub is None:
            return False
        self.guard()
        try:
            reply = await stub.CreateActor(pb.CreateActorRequest(
                actor_id=bytes.fromhex(actor_id), attempt=attempt, creation_spec=spec),
                timeout=10.0, metadata=self.metadata)
            return bool(reply.accepted)
        except Exception as e:  # noqa: BLE001 - the periodic rescan retries
            logger.warning("CreateActor for %s on node %s failed: %s", actor_id, node[:12], e)
            return False

    async def prepare_bundles(self, node: str, pg_id: str, indexes: Sequence[int], bundles_json: Sequence[str],
                              txn: int) -> Prepared:
        stub = await self._stub(node)
        if stub is None:
            return "refused"
        self.guard()
        try:
            r = await stub.PrepareBundles(pb.PrepareBundlesRequest(
                pg_id=bytes.fromhex(pg_id), bundle_indexes=list(indexes), bundles_json=list(bundles_json), txn=txn),
                timeout=10, metadata=self.metadata)
        except Exception as ex:  # noqa: BLE001 - the reservation is cancelled (and retried by the rescan)
            logger.warning("PrepareBundles on %s failed: %s", node[:12], ex)
            return "unreachable"
        if not r.ok:
            logger.info("PrepareBundles on %s refused: %s", node[:12], r.error)
        return "prepared" if r.ok else "refused"

    async def commit_bundles(self, node: str, pg_id: str, indexes: Sequence[int], bundles_json: Sequence[str],
                             txn: int) -> bool:
        stub = await self._stub(node)
        if stub is None:
            return False
        self.guard()
        try:
            r = await stub.CommitBundles(pb.CommitBundlesRequest(
                pg_id=bytes.fromhex(pg_id), bundle_indexes=list(indexes), bundles_json=list(bundles_json), txn=txn),
                timeout=10, metadata=self.metadata)
        except Exception as ex:  # noqa: BLE001 - the reservation stays PREPARED and the rescan commits it
            logger.warning("CommitBundles on %s failed: %s", node[:12], ex)
            return False
        if not r.ok:
            logger.warning("CommitBundles on %s refused: %s", node[:12], r.error)
        return bool(r.ok)

    async def cancel_bundles(self, node: str, pg_id: str, indexes: Sequence[int], txn: int) -> bool:
        stub = await self._stub(node)
        if stub is None:
            return True
        self.guard()
        try:
            await stub.CancelBundles(pb.CancelBundlesRequest(pg_id=bytes.fromhex(pg_id), bundle_indexes=list(indexes),
                                                             txn=txn), timeout=10, metadata=self.metadata)
            return True
        except Exception as ex:  # noqa: BLE001 - the reservation stays PREPARING and the rescan cancels it
            logger.warning("CancelBundles on %s failed: %s", node[:12], ex)
            return False

    async def return_bundles(self, node: str, pg_id: str) -> bool:
        stub = await self._stub(node)
        if stub is None:
            return True
        self.guard()
        try:
            await stub.ReturnBundles(pb.ReturnBundlesRequest(pg_id=bytes.fromhex(pg_id)), timeout=10,
                                     metadata=self.metadata)
            return True
        except Exception as ex:  # noqa: BLE001 - the group is not marked returned; the rescan retries
            logger.warning("ReturnBundles on %s failed: %s", node[:12], ex)
            return False

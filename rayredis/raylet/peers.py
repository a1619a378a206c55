"""The raylet's I/O to other raylets: ordered per-node links (``Peer`` RPC) and object pulls (``PullObject``)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from rayredis._private import auth
from rayredis.config import get_config
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol._generated import rayredis_pb2_grpc as pb_grpc
from rayredis.raylet.object_store import READY, shm_path
from rayredis.raylet.peer_transport import Link, LinkSender

if TYPE_CHECKING:
    from rayredis.raylet.node_manager import NodeManager

logger = logging.getLogger(__name__)

#: How long a forward waits for its spill record to reach Redis before it is sent regardless.
SPILL_RECORD_WAIT_S = 2.0
#: Bytes per chunk of a pulled object (each one gRPC message).
CHUNK_BYTES = 4 * 1024 * 1024
_raylet_stub: Callable[[Any], Any] = pb_grpc.RayletStub


class Peers:
    """Implements :class:`~rayredis.raylet.peer_core.PeerLinks` for the core, and serves the other
    raylets' pulls. One sender task per destination sends its batches in order over a framed TCP
    link (:mod:`.peer_transport`; the receiver drops repeats by ``(epoch, seq)``); a batch that
    carries forwarded tasks is sent only after the table writes queued before it (their spill
    records) reached Redis."""

    def __init__(self, node_id: bytes, token: str, address_of: Callable[[bytes], Awaitable[str | None]],
                 flush_tables: Callable[[], Awaitable[None]], node_ip: str = "",
                 link_address_of: Callable[[bytes], Awaitable[str | None]] | None = None):
        self.node_id = node_id
        self.node_ip = node_ip
        self.same_host_copy = get_config().pull_same_host_copy
        self.metadata = auth.metadata(token)
        self.address_of = address_of
        self.flush_tables = flush_tables
        self.sender = LinkSender(node_id, token, link_address_of or address_of, self._before_send)
        self.nm: NodeManager
        self._links: dict[bytes, Link] = {}
        self._stubs: dict[bytes, tuple[str, Any, Any]] = {}
        self._seen: dict[bytes, tuple[int, int]] = {}  # sender -> (epoch, last seq applied)
        self._bg: set[asyncio.Task[Any]] = set()
        #: Pulls in progress per source node, and those :meth:`forget` gave up (the node is gone).
        self._pulls: dict[bytes, set[asyncio.Task[bool]]] = {}
        self._abandoned: set[asyncio.Task[bool]] = set()

    # ---- PeerLinks -----------------------------------------------------------------------------

    def out(self, node: bytes) -> pb.PeerBatch:
        link = self._links.get(node)
        if link is None:
            link = self._links[node] = Link()
        return link.batch

    def flush(self, node: bytes) -> None:
        link = self._links.get(node)
        if link is None:
            return
        if link.task is None:
            link.task = asyncio.get_running_loop().create_task(self.sender.run(node, link))
        link.wake.set()

    def pull(self, oid: bytes, locations: list[bytes], size: int) -> None:
        t = asyncio.get_running_loop().create_task(self._pull(oid, locations, size))
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    # ---- channels ------------------------------------------------------------------------------

    async def _stub(self, node: bytes) -> Any:
        address = await self.address_of(node)
        if address is None:
            return None
        cached = self._stubs.get(node)
        if cached is not None and cached[0] == address:
            return cached[2]
        if cached is not None:
            await cached[1].close()
        ch = grpc.aio.insecure_channel(address, options=auth.GRPC_OPTIONS)
        stub = _raylet_stub(ch)
        self._stubs[node] = (address, ch, stub)
        return stub

    def forget(self, node: bytes) -> None:
        """``node`` is gone: stop its link (what was queued for it is dropped) and give up the pulls
        from it (a node cut off the network never answers them: they would hang until TCP gives up)."""
        for t in self._pulls.pop(node, set()):
            self._abandoned.add(t)
            t.cancel()
        link = self._links.pop(node, None)
        if link is not None and link.task is not None:
            link.task.cancel()
        cached = self._stubs.pop(node, None)
        if cached is not None:
            t = asyncio.get_running_loop().create_task(cached[1].close())
            self._bg.add(t)
            t.add_done_callback(self._bg.discard)

    async def close(self) -> None:
        for link in self._links.values():
            if link.task is not None:
                link.task.cancel()
        for t in list(self._bg):
            t.cancel()
        for _, ch, _ in self._stubs.values():
            await ch.close()
        self._stubs.clear()

    async def _before_send(self, batch: pb.PeerBatch) -> None:
        if any(t.spec.kind != pb.ACTOR_TASK for t in batch.tasks):
            # Their spill records first (actor calls have none), but a data shard that is down must
            # not stop the work crossing nodes: after SPILL_RECORD_WAIT_S the forward goes anyway
            # (the records stay queued in the writer, which keeps retrying them).
            try:
                await asyncio.wait_for(asyncio.shield(self.flush_tables()), SPILL_RECORD_WAIT_S)
            except asyncio.TimeoutError:
                logger.warning("spill records not in Redis after %.0f s; forwarding anyway", SPILL_RECORD_WAIT_S)

    # ---- receiving -----------------------------------------------------------------------------

    def accept(self, b: pb.PeerBatch) -> bool:
        """Whether ``b`` is new (not a repeat of a batch already applied)."""
        epoch, last = self._seen.get(b.from_node, (-1, 0))
        if b.epoch == epoch and b.seq <= last:
            return False
        self._seen[b.from_node] = (b.epoch, b.seq)
        return True

    async def serve_pull(self, oid: bytes, to: bytes, same_host: bool = False) -> AsyncIterator[pb.ObjectChunk]:
        nm = self.nm
        e = nm.objects.get(oid)
        if e is None or e.state != READY or nm.objects.ensure_local(oid):  # (restored if spilled)
            yield pb.ObjectChunk(missing=True, last=True)
            return
        if e.inline is not None:
            yield pb.ObjectChunk(total_size=len(e.inline), data=e.inline, inline=True, last=True,
                                 contained=nm.peers.contained_infos(oid, to))
            return
        if same_host:
            nm.objects.hold(oid, to)  # until the puller has copied the segment (it sends it back)
            yield pb.ObjectChunk(total_size=e.size, shm_name=e.shm_name, last=True,
                                 contained=nm.peers.contained_infos(oid, to))
            return
        try:
            fd = os.open(shm_path(e.shm_name), os.O_RDONLY)
        except OSError:
            yield pb.ObjectChunk(missing=True, last=True)
            return
        try:
            size, off = e.size, 0
            while True:
                data = os.pread(fd, min(CHUNK_BYTES, size - off), off)
                off += len(data)
                last = off >= size or not data
                chunk = pb.ObjectChunk(total_size=size, data=data, last=last)
                if last:
                    chunk.contained.extend(nm.peers.contained_infos(oid, to))
                yield chunk
                if last:
                    return
        finally:
            os.close(fd)

    async def _pull(self, oid: bytes, locations: list[bytes], size: int) -> None:
        why = "no location"
        missing = bool(locations)
        for node in locations:
            one = asyncio.get_running_loop().create_task(self._pull_from(node, oid))
            self._pulls.setdefault(node, set()).add(one)
            try:
                if await one:
                    return
                why = f"node {node.hex()[:8]} no longer has it"
            except asyncio.CancelledError:
                if one not in self._abandoned:
                    raise  # this pull itself is cancelled (the raylet stops)
                why = f"node {node.hex()[:8]} is gone"
                logger.warning("pull of %s from %s given up: the node is gone", oid.hex(), node.hex()[:8])
            except Exception as e:  # noqa: BLE001 - try the next location, then report
                why = f"{type(e).__name__}: {e}"
                missing = False
                logger.warning("pull of %s from %s failed: %s", oid.hex(), node.hex()[:8], why)
            finally:
                self._abandoned.discard(one)
                pulls = self._pulls.get(node)
                if pulls is not None:
                    pulls.discard(one)
                    if not pulls:
                        del self._pulls[node]
        self.nm.peers.pull_failed(oid, why, missing)

    async def _copy_segment(self, node: bytes, oid: bytes, chunk: pb.ObjectChunk) -> bool:
        """A same-host answer: copy the server's segment into one of ours in the kernel
        (``copy_file_range``, off the event loop), then return the hold it granted for the copy. A
        segment we cannot open (another /dev/shm after all) falls back to streaming."""
        objects = self.nm.objects
        size = chunk.total_size
        shm_name = ""
        try:
            try:
                src = os.open(shm_path(chunk.shm_name), os.O_RDONLY)
            except OSError:
                return await self._pull_from(node, oid, allow_shm=False)
            try:
                shm_name = objects.reserve(oid, size)
                dst = os.open(shm_path(shm_name), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    await asyncio.to_thread(_copy_fd, src, dst, size)
                finally:
                    os.close(dst)
            finally:
                os.close(src)
            name, shm_name = shm_name, ""
            self.nm.peers.pulled(oid, node, None, name, size, list(chunk.contained))
            return True
        finally:
            if shm_name:
                objects.abort(oid, shm_name)
            self.out(node).free.append(oid)
            self.flush(node)

    async def _pull_from(self, node: bytes, oid: bytes, allow_shm: bool = True) -> bool:
        stub = await self._stub(node)
        if stub is None:
            raise ConnectionError(f"no address known for node {node.hex()[:8]}")
        objects = self.nm.objects
        address = await self.address_of(node) or ""
        same_host = allow_shm and self.same_host_copy and bool(self.node_ip) and \
            address.rsplit(":", 1)[0] == self.node_ip
        call = stub.PullObject(pb.PullRequest(object_id=oid, from_node=self.node_id, same_host=same_host),
                               metadata=self.metadata, timeout=600.0)
        fd, shm_name, off = -1, "", 0
        try:
            async for chunk in call:
                if chunk.missing:
                    return False
                if chunk.inline:
                    self.nm.peers.pulled(oid, node, bytes(chunk.data), "", len(chunk.data), list(chunk.contained))
                    return True
                if chunk.shm_name:
                    return await self._copy_segment(node, oid, chunk)
                if fd < 0:
                    shm_name = objects.reserve(oid, chunk.total_size)
                    fd = os.open(shm_path(shm_name), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                    os.ftruncate(fd, chunk.total_size)
                os.pwrite(fd, chunk.data, off)
                off += len(chunk.data)
                if chunk.last:
                    os.close(fd)
                    fd = -1
                    self.nm.peers.pulled(oid, node, None, shm_name, chunk.total_size, list(chunk.contained))
                    shm_name = ""
                    return True
            return False
        finally:
            if fd >= 0:
                os.close(fd)
            if shm_name:
                objects.abort(oid, shm_name)


def _copy_fd(src: int, dst: int, size: int) -> None:
    os.ftruncate(dst, size)
    off = 0
    while off < size:
        n = os.copy_file_range(src, dst, size - off, off, off)
        if n <= 0:
            raise OSError(f"copy_file_range copied nothing at offset {off} of {size}")
        off += n

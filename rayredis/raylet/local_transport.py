"""The client stream's logic, shared by its two transports: gRPC, and a Unix socket for local clients.

Ray's raylet serves local workers over a Unix socket too: on one machine, length-prefixed frames
cost far less per message than HTTP/2. Both transports run :func:`serve_stream`; the socket
speaks the same ``ClientBatch``/``RayletBatch`` messages and is authenticated by the client's uid
and the cluster token in its first frame.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rayredis._private import peercred
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol.limits import MAX_MESSAGE_BYTES
from rayredis.raylet import connection_objects
from rayredis.raylet.connection import Connection
from rayredis.raylet.preauth import PreAuthGate, authenticate

if TYPE_CHECKING:
    from rayredis.raylet.server import Raylet

logger = logging.getLogger(__name__)

FRAME = struct.Struct("<I")
MAX_FRAME = MAX_MESSAGE_BYTES  # as gRPC's message cap (rayredis.protocol.limits)


async def serve_stream(raylet: Raylet, read: Callable[[], Awaitable[Any]],
                       write: Callable[[pb.RayletBatch], Awaitable[Any]]) -> None:
    """Run one client connection: register it, feed its batches to the NodeManager, send replies.

    ``read`` returns the next ``ClientBatch`` or None at the end of the stream.
    """
    nm = raylet.nm
    first = await read()
    if first is None or not first.HasField("register"):
        return
    reg = first.register
    has_data = asyncio.Event()
    conn = Connection(reg.worker_id, reg.pid, reg.is_driver, reg.job_id, reg.namespace, wake=has_data.set)
    conn.actor_id = reg.actor_id
    conn.objects_over_connection = connection_objects.over_connection(reg)
    conn.out().register_reply.CopyFrom(pb.RegisterReply(
        node_id=nm.node_id, session_dir=raylet.session_dir, node_ip=raylet.node_ip,
        job_id=reg.job_id, shm_prefix=nm.objects.shm_prefix,
        objects_over_connection=conn.objects_over_connection))
    conn.flush()
    nm.connect(conn)
    nm.handle(conn, first)

    async def reader() -> None:
        try:
            while (msg := await read()) is not None:
                nm.handle(conn, msg)
        except asyncio.CancelledError:
            return
        except Exception:  # the peer went away, or sent garbage (logged)
            logger.debug("stream from %s ended", conn.worker_id.hex()[:12], exc_info=True)

    rtask = asyncio.get_running_loop().create_task(reader())
    rtask.add_done_callback(lambda _: has_data.set())  # wake the writer to finish
    try:
        while True:
            await has_data.wait()
            if rtask.done():
                break
            batch = conn.take()
            has_data.clear()
            for part in connection_objects.outgoing(conn, batch):
                await write(part)
    except Exception:  # noqa: BLE001 - the peer went away
        pass
    finally:
        rtask.cancel()
        nm.disconnect(conn)


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    try:
        (n,) = FRAME.unpack(await reader.readexactly(FRAME.size))
        if n > MAX_FRAME:
            raise ValueError(f"frame of {n} bytes")
        return await reader.readexactly(n)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def start_unix_server(raylet: Raylet, name: str, token: str,
                            gate: PreAuthGate | None = None) -> asyncio.AbstractServer:
    """Listen on the abstract Unix socket ``name`` (no file to clean up, no path-length limit).

    An abstract socket has no permissions: clients of another uid are closed before anything is
    read (``SO_PEERCRED``); the others must present the token within the limits of
    :mod:`rayredis.raylet.preauth`."""
    expected = token.encode()
    gate = gate or PreAuthGate()
    me = os.geteuid()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = peercred.peer_of(writer.get_extra_info("socket"))
            if peer.uid != me:
                logger.warning("refused a client of uid %d (pid %d) on the raylet's socket", peer.uid, peer.pid)
                return
            if not await authenticate(reader, expected, gate):
                return  # unauthenticated: nothing it sent is parsed, let alone unpickled

            async def read() -> pb.ClientBatch | None:
                data = await _read_frame(reader)
                return None if data is None else pb.ClientBatch.FromString(data)

            async def write(batch: pb.RayletBatch) -> None:
                data = batch.SerializeToString()
                writer.write(FRAME.pack(len(data)) + data)
                await writer.drain()

            await serve_stream(raylet, read, write)
        finally:
            writer.close()

    return await asyncio.start_unix_server(handle, path="\0" + name, limit=2**20)

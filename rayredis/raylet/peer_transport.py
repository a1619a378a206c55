"""The ordered links between raylets: one TCP connection per direction, length-prefixed ``PeerBatch`` frames.

gRPC's Python unary calls cost about 0.6 ms each on these machines and its streams about 0.2 ms
per message; a plain asyncio TCP connection with the framing of the local Unix socket costs about
0.05 ms, and a cross-node actor call crosses two links. So links are framed TCP, authenticated like
the Unix socket: the first frame is the cluster token (at most ``MAX_AUTH_FRAME`` bytes, within
``preauth.AUTH_TIMEOUT_S``, with at most ``preauth.MAX_UNAUTHENTICATED`` connections waiting for
theirs), and nothing a peer sends before it is parsed. The receiver applies batches in
order and answers each with its sequence number; the sender keeps the unacknowledged ones and sends
them again after a reconnect, and the receiver drops repeats by ``(epoch, seq)``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol.limits import MAX_MESSAGE_BYTES
from rayredis.raylet.preauth import PreAuthGate, authenticate

logger = logging.getLogger(__name__)

FRAME = struct.Struct("<I")
ACK = struct.Struct("<Q")
MAX_AUTH_FRAME = 1024
#: How long a link keeps trying to reach a node before it drops what it holds for it.
LINK_RETRY_S = 30.0


@dataclass
class Link:
    """The outbox to one node: the batch being filled, and the sent batches not yet acknowledged."""

    batch: pb.PeerBatch = field(default_factory=pb.PeerBatch)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    unacked: deque[tuple[int, bytes]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


def empty(b: pb.PeerBatch) -> bool:
    return not (b.objects or b.tasks or b.done or b.free or b.resolve or b.cancels or b.kills)


async def _read_frame(reader: asyncio.StreamReader, limit: int = MAX_MESSAGE_BYTES) -> bytes | None:
    try:
        (n,) = FRAME.unpack(await reader.readexactly(FRAME.size))
        if n > limit:
            raise ConnectionError(f"peer frame of {n} bytes (limit {limit})")
        return await reader.readexactly(n)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class LinkSender:
    """Sends one node's batches in order over a (re)connected TCP connection."""

    def __init__(self, me: bytes, token: str, address_of: Callable[[bytes], Awaitable[str | None]],
                 before_send: Callable[[pb.PeerBatch], Awaitable[None]]):
        self.me = me
        self.token = token.encode()
        self.address_of = address_of
        self.before_send = before_send
        self.epoch = int.from_bytes(os.urandom(7), "big")
        self.seq = 0

    async def run(self, node: bytes, link: Link) -> None:
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        delay = 0.05
        while True:
            try:
                await self._connected(node, link)
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
                now = loop.time()
                failing_since = failing_since or now
                if now - failing_since > LINK_RETRY_S and (link.unacked or not empty(link.batch)):
                    logger.error("dropping %d batches for node %s after %.0f s of failures: %s",
                                 len(link.unacked) + 1, node.hex()[:8], now - failing_since, e)
                    link.unacked.clear()
                    link.batch = pb.PeerBatch()
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
                continue
            failing_since, delay = None, 0.05

    async def _connected(self, node: bytes, link: Link) -> None:
        address = await self.address_of(node)
        if not address:
            raise ConnectionError(f"node {node.hex()[:8]} has no link address")
        host, _, port = address.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port), limit=2**20)
        try:
            writer.write(FRAME.pack(len(self.token)) + self.token)
            for _, data in link.unacked:  # sent before a reconnect: the receiver drops repeats
                writer.write(FRAME.pack(len(data)) + data)
            await writer.drain()
            acks = asyncio.get_running_loop().create_task(self._read_acks(reader, link))
            acks.add_done_callback(lambda _: link.wake.set())
            try:
                while True:
                    await link.wake.wait()
                    link.wake.clear()
                    if acks.done():
                        raise ConnectionError("the link closed")
                    batch = link.batch
                    if empty(batch):
                        continue
                    link.batch = pb.PeerBatch()
                    self.seq += 1
                    batch.from_node, batch.epoch, batch.seq = self.me, self.epoch, self.seq
                    await self.before_send(batch)
                    data = batch.SerializeToString()
                    link.unacked.append((self.seq, data))
                    writer.write(FRAME.pack(len(data)) + data)
                    await writer.drain()
            finally:
                acks.cancel()
        finally:
            writer.close()

    @staticmethod
    async def _read_acks(reader: asyncio.StreamReader, link: Link) -> None:
        while True:
            (seq,) = ACK.unpack(await reader.readexactly(ACK.size))
            while link.unacked and link.unacked[0][0] <= seq:
                link.unacked.popleft()


async def start_link_server(host: str, token: str, on_batch: Callable[[pb.PeerBatch], None]
                            ) -> asyncio.Server:
    """Accept other raylets' links on ``host`` (port picked by the OS); ``on_batch`` applies one."""
    expected = token.encode()
    gate = PreAuthGate()  # also bounds the connections waiting to authenticate

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not await authenticate(reader, expected, gate, max_frame=MAX_AUTH_FRAME):
                return  # unauthenticated: nothing it sent is parsed
            while (data := await _read_frame(reader)) is not None:
                batch = pb.PeerBatch.FromString(data)
                on_batch(batch)
                writer.write(ACK.pack(batch.seq))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        except Exception:  # a bug or garbage from an authenticated peer: drop the connection
            logger.exception("link from a peer failed")
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, 0, limit=2**20)

"""The raylets' framed TCP links on loopback: order, acknowledgements, authentication, resending after a reconnect."""

from __future__ import annotations

import asyncio

from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.raylet.peer_transport import FRAME, Link, LinkSender, start_link_server


async def _until(cond: object, timeout: float = 5.0) -> None:
    assert callable(cond)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _noop(batch: pb.PeerBatch) -> None:
    return None


def test_batches_arrive_in_order_and_are_acknowledged() -> None:
    async def main() -> None:
        got: list[pb.PeerBatch] = []
        server = await start_link_server("127.0.0.1", "tok", got.append)
        port = server.sockets[0].getsockname()[1]

        async def addr(node: bytes) -> str:
            return f"127.0.0.1:{port}"

        sender = LinkSender(b"A" * 16, "tok", addr, _noop)
        link = Link()
        task = asyncio.get_running_loop().create_task(sender.run(b"B" * 16, link))
        for i in range(20):
            link.batch.free.append(bytes([i]))
            link.wake.set()
            await asyncio.sleep(0)
        await _until(lambda: sum(len(b.free) for b in got) == 20 and not link.unacked)
        assert [f for b in got for f in b.free] == [bytes([i]) for i in range(20)]
        assert [b.seq for b in got] == sorted(b.seq for b in got)
        assert all(b.from_node == b"A" * 16 and b.epoch == sender.epoch for b in got)
        task.cancel()
        server.close()

    asyncio.run(main())


def test_a_wrong_token_gets_nothing_applied() -> None:
    async def main() -> None:
        got: list[pb.PeerBatch] = []
        server = await start_link_server("127.0.0.1", "right", got.append)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = pb.PeerBatch(seq=1, free=[b"x"]).SerializeToString()
        writer.write(FRAME.pack(5) + b"wrong" + FRAME.pack(len(data)) + data)
        await writer.drain()
        assert await reader.read() == b""  # closed without an answer
        oversized = await asyncio.open_connection("127.0.0.1", port)
        oversized[1].write(FRAME.pack(1 << 30))  # a huge first frame is refused before it is read
        await oversized[1].drain()
        assert await oversized[0].read() == b""
        assert got == []
        writer.close()
        oversized[1].close()
        server.close()

    asyncio.run(main())


def test_unacknowledged_batches_are_sent_again_after_a_reconnect() -> None:
    async def main() -> None:
        first: list[pb.PeerBatch] = []
        second: list[pb.PeerBatch] = []
        dead = await start_link_server("127.0.0.1", "tok", first.append)
        port = {"p": dead.sockets[0].getsockname()[1]}

        async def addr(node: bytes) -> str:
            return f"127.0.0.1:{port['p']}"

        link = Link()
        # A batch that was sent but never acknowledged (its receiver died) is resent first.
        link.unacked.append((7, pb.PeerBatch(from_node=b"A" * 16, seq=7, free=[b"old"]).SerializeToString()))
        dead.close()
        await dead.wait_closed()
        alive = await start_link_server("127.0.0.1", "tok", second.append)
        port["p"] = alive.sockets[0].getsockname()[1]
        sender = LinkSender(b"A" * 16, "tok", addr, _noop)
        task = asyncio.get_running_loop().create_task(sender.run(b"B" * 16, link))
        link.batch.free.append(b"new")
        link.wake.set()
        await _until(lambda: len(second) == 2 and not link.unacked)
        assert [list(b.free) for b in second] == [[b"old"], [b"new"]]
        task.cancel()
        alive.close()

    asyncio.run(main())


def test_repeats_are_dropped_by_epoch_and_seq() -> None:
    from rayredis.raylet.peers import Peers

    async def addr(node: bytes) -> str | None:
        return None

    async def flush() -> None:
        return None

    peers = Peers(b"B" * 16, "tok", addr, flush)
    a = b"A" * 16
    assert peers.accept(pb.PeerBatch(from_node=a, epoch=1, seq=1))
    assert peers.accept(pb.PeerBatch(from_node=a, epoch=1, seq=3))
    assert not peers.accept(pb.PeerBatch(from_node=a, epoch=1, seq=3))
    assert not peers.accept(pb.PeerBatch(from_node=a, epoch=1, seq=2))
    assert peers.accept(pb.PeerBatch(from_node=a, epoch=2, seq=1))  # the sender restarted

"""Pulls from another raylet: one from a node that is forgotten (declared dead) mid-pull is given up
and reported as failed (so the object is rebuilt), instead of hanging until TCP gives up."""

from __future__ import annotations

import asyncio
from typing import Any

from rayredis.raylet.peers import Peers

A, B, C = b"A" * 16, b"B" * 16, b"C" * 16


class _PeerCore:
    def __init__(self) -> None:
        self.failed: list[tuple[bytes, str]] = []

    def pull_failed(self, oid: bytes, why: str, missing: bool = False) -> None:
        self.failed.append((oid, why))


class _NodeManager:
    def __init__(self) -> None:
        self.peers = _PeerCore()


async def _addr(node: bytes) -> str | None:
    return None


async def _flush() -> None:
    return None


async def _until(cond: Any, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _peers(pull_from: Any) -> tuple[Peers, _NodeManager]:
    peers = Peers(A, "tok", _addr, _flush)
    nm = _NodeManager()
    peers.nm = nm  # type: ignore[assignment]
    peers._pull_from = pull_from  # type: ignore[method-assign]
    return peers, nm


def test_a_pull_from_a_forgotten_node_is_given_up_and_reported() -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def silent(node: bytes, oid: bytes, allow_shm: bool = True) -> bool:
            started.set()
            await asyncio.Event().wait()  # a host cut off the network: no answer, no error
            return True

        peers, nm = _peers(silent)
        peers.pull(b"o1", [B], 10)
        await asyncio.wait_for(started.wait(), 5)
        peers.forget(B)
        await _until(lambda: nm.peers.failed)
        assert nm.peers.failed == [(b"o1", f"node {B.hex()[:8]} is gone")]
        assert peers._pulls == {} and peers._abandoned == set()
    asyncio.run(main())


def test_forgetting_one_node_moves_the_pull_on_to_the_next_location() -> None:
    async def main() -> None:
        tried: list[bytes] = []

        async def pull_from(node: bytes, oid: bytes, allow_shm: bool = True) -> bool:
            tried.append(node)
            if node == B:
                await asyncio.Event().wait()
            return True

        peers, nm = _peers(pull_from)
        peers.pull(b"o1", [B, C], 10)
        await _until(lambda: tried)
        peers.forget(B)
        await _until(lambda: len(tried) == 2)
        await asyncio.sleep(0.05)
        assert tried == [B, C] and nm.peers.failed == []  # served by C: nothing to rebuild
    asyncio.run(main())


def test_closing_the_raylet_cancels_pulls_without_reporting_them() -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def silent(node: bytes, oid: bytes, allow_shm: bool = True) -> bool:
            started.set()
            await asyncio.Event().wait()
            return True

        peers, nm = _peers(silent)
        peers.pull(b"o1", [B], 10)
        await asyncio.wait_for(started.wait(), 5)
        await peers.close()
        await asyncio.sleep(0.05)
        assert nm.peers.failed == []
    asyncio.run(main())

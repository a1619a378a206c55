"""Fuzz the framed transports' readers with any bytes a peer can send, before and after the token:
``preauth.authenticate`` answers True only for the exact token frame and never reads past its cap;
the Unix socket's and the link server's frame readers return a frame, None, or refuse a length."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from rayredis.raylet import local_transport, peer_transport, preauth
from tests.fuzz.proto_strategies import mutated

TOKEN = b"t" * 40
VALID = preauth.FRAME.pack(len(TOKEN)) + TOKEN


def _reader(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    r = asyncio.StreamReader(limit=2**20)
    r.feed_data(data)
    if eof:
        r.feed_eof()
    return r


@given(st.one_of(st.binary(max_size=200), mutated(VALID)), st.booleans())
def test_authenticate(data: bytes, eof: bool) -> None:
    async def main() -> bool:
        gate = preauth.PreAuthGate(limit=4)
        ok = await preauth.authenticate(_reader(data, eof), TOKEN, gate, timeout_s=0.01)
        assert gate.pending == 0
        return ok

    ok = asyncio.run(main())
    assert ok == data.startswith(VALID)


@given(st.binary(max_size=300))
def test_frame_readers(data: bytes) -> None:
    async def main() -> None:
        for read in (local_transport._read_frame, peer_transport._read_frame):
            try:
                frame = await read(_reader(data))
            except ValueError as e:  # a length over the cap: refused before reading it
                assert "frame of" in str(e)
                continue
            assert frame is None or data[4:4 + len(frame)] == frame

    asyncio.run(main())

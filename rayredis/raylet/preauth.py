"""What a framed server (the raylet's Unix socket, its link server) allows a peer before the token.

Before authentication a peer is a stranger: its first frame (the token) may be at most
``MAX_AUTH_FRAME`` bytes, it has ``AUTH_TIMEOUT_S`` to send it, and at most
``MAX_UNAUTHENTICATED`` connections of one server may be waiting for theirs; anything else is
closed without reading further, and nothing it sent is parsed (docs/security.md).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import struct

logger = logging.getLogger(__name__)

FRAME = struct.Struct("<I")
#: The largest first frame read: a token is 40 hex characters.
MAX_AUTH_FRAME = 4096
AUTH_TIMEOUT_S = 5.0
MAX_UNAUTHENTICATED = 64


class PreAuthGate:
    """Counts a server's connections that have not authenticated yet, up to ``limit``."""

    def __init__(self, limit: int | None = None):
        self.limit = MAX_UNAUTHENTICATED if limit is None else limit
        self.pending = 0
        self.refused = 0

    def admit(self) -> bool:
        if self.pending >= self.limit:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                logger.warning("refused %d connections: %d are already waiting to authenticate",
                               self.refused, self.pending)
            return False
        self.pending += 1
        return True

    def release(self) -> None:
        self.pending -= 1


async def _first_frame(reader: asyncio.StreamReader, limit: int) -> bytes | None:
    try:
        (n,) = FRAME.unpack(await reader.readexactly(FRAME.size))
        if n > limit:
            return None
        return await reader.readexactly(n)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def authenticate(reader: asyncio.StreamReader, expected: bytes, gate: PreAuthGate, *,
                       max_frame: int | None = None, timeout_s: float | None = None) -> bool:
    """Read the first frame within the gate's bounds (defaults: ``MAX_AUTH_FRAME``,
    ``AUTH_TIMEOUT_S``); True if it is the token ``expected``."""
    if not gate.admit():
        return False
    try:
        presented = await asyncio.wait_for(_first_frame(reader, MAX_AUTH_FRAME if max_frame is None else max_frame),
                                           AUTH_TIMEOUT_S if timeout_s is None else timeout_s)
    except asyncio.TimeoutError:
        return False
    finally:
        gate.release()
    return presented is not None and hmac.compare_digest(presented, expected)

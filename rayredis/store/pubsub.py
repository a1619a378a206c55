"""The one way to consume pub/sub: subscribe, then rescan the watched tables, resubscribe on loss."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.exceptions

logger = logging.getLogger(__name__)

#: Errors after which the subscription is rebuilt (the shard restarted or the link dropped).
LOST = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


async def follow(client: Any, channels: Sequence[str], rescan: Callable[[], Awaitable[None]],
                 on_message: Callable[[str, str], Awaitable[None]], retry_delay_s: float = 0.5,
                 on_lost: Callable[[BaseException], None] | None = None) -> None:
    """Run forever: subscribe to ``channels``, call ``rescan()``, then ``on_message(channel, data)``.

    ``on_lost(error)`` replaces the warning logged each time the subscription is lost (a caller
    that rate-limits its warnings while Redis is away).

    ``rescan()`` runs once every channel's subscription is acknowledged, so an announcement
    published while this process was down, or between two subscriptions, is never missed: the
    table it announced is read again. That happens after *every* subscription: the first, the one
    this loop makes after a lost connection (``LOST``, once redis-py's own reconnects are used
    up), and the ones redis-py makes by itself when it reconnects a subscription (it resubscribes
    without telling; the new acknowledgements give it away). Messages carry IDs only; handlers
    reread the current state.
    """
    names = {c.encode() for c in channels}
    while True:
        ps = client.pubsub()
        try:
            await ps.subscribe(*channels)
            waiting = set(names)  # channels whose (re)subscription is not acknowledged yet
            async for msg in ps.listen():
                kind = msg.get("type")
                if kind == "message":
                    await _deliver(on_message, msg)
                elif kind == "subscribe":
                    waiting.discard(msg["channel"])
                    if not waiting:
                        await rescan()
                        waiting = set(names)
        except LOST as e:
            if on_lost is not None:
                on_lost(e)
            else:
                logger.warning("pub/sub on %s lost (%s); resubscribing", ",".join(channels), e)
            await asyncio.sleep(retry_delay_s)
        except Exception:  # a rescan that failed on what it read: log, subscribe and rescan again
            logger.exception("pub/sub on %s: the rescan failed; resubscribing", ",".join(channels))
            await asyncio.sleep(retry_delay_s)
        finally:
            try:
                await ps.aclose()
            except Exception:  # noqa: BLE001 - the connection may already be gone
                pass


async def _deliver(on_message: Callable[[str, str], Awaitable[None]], msg: Any) -> None:
    """Hand one message to ``on_message``; one it cannot decode or handle (anyone who can publish
    can send anything) is logged and dropped, never the end of the subscription."""
    try:
        channel, data = msg["channel"].decode(), msg["data"].decode()
    except (UnicodeDecodeError, AttributeError):
        logger.error("pub/sub: dropped a message that is not UTF-8 text: %r", msg.get("data", b"")[:100])
        return
    try:
        await on_message(channel, data)
    except LOST:
        raise
    except Exception:
        logger.exception("pub/sub: handling %r on %s failed; dropped it", data[:100], channel)

"""Cluster events: a capped Redis stream of what happened to nodes, actors, the GCS and Redis, written fire-and-forget.

A process that writes events (the GCS, a raylet) calls :func:`configure` once with its async
primary client; call sites then call :func:`record`, which schedules the XADD on the event loop and
returns at once: an event never blocks, slows down or fails the caller (a write that fails is
logged at debug level and dropped). A node supervisor, which has no event loop, calls
:func:`record_in_thread`. Readers (``list_cluster_events``, the dashboard) use :func:`read`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from rayredis.store import keys

logger = logging.getLogger(__name__)

#: Approximate cap of the stream (XADD MAXLEN ~): the oldest events are trimmed past it.
MAXLEN = 10_000
#: How long one event write may take before it is dropped.
WRITE_TIMEOUT_S = 2.0


class Kind(str, Enum):
    """What an event is about (the ``label`` of a :class:`ClusterEventState`)."""

    NODE_REGISTERED = "NODE_REGISTERED"
    NODE_DEAD = "NODE_DEAD"
    ACTOR_RESTARTED = "ACTOR_RESTARTED"
    ACTOR_DIED = "ACTOR_DIED"
    GCS_ACTIVE = "GCS_ACTIVE"
    GCS_LEASE_LOST = "GCS_LEASE_LOST"
    PROCESS_RESTARTED = "PROCESS_RESTARTED"
    REDIS_FAILOVER = "REDIS_FAILOVER"
    SUPERVISOR_GAVE_UP = "SUPERVISOR_GAVE_UP"
    PLACEMENT_GROUP_RESCHEDULED = "PLACEMENT_GROUP_RESCHEDULED"


@dataclass(frozen=True)
class ClusterEventState:
    """One cluster event, as ``list_cluster_events`` returns it (Ray's field names, plus ``label``).

    ``event_id`` is the stream entry id, ``time`` its Redis-server time in ms (one clock for the
    whole cluster), ``source_type`` GCS / RAYLET / SUPERVISOR, ``custom_fields`` the ids involved
    (``node_id``, ``actor_id``, ``placement_group_id``, ``pid``) and durations (``downtime_s``).
    """

    event_id: str
    time: int
    severity: str
    source_type: str
    label: str
    message: str
    custom_fields: dict[str, Any] = field(default_factory=dict)


def entry(kind: Kind, message: str, source: str, severity: str = "INFO", **custom: Any) -> dict[str, str]:
    """The stream entry of one event (pure)."""
    return {"kind": kind.value, "severity": severity, "source": source, "message": message,
            "custom": json.dumps({k: v for k, v in custom.items() if v is not None}, sort_keys=True)}


def parse(event_id: bytes | str, raw: Mapping[bytes | str, bytes | str]) -> ClusterEventState:
    """A stream entry as read back (pure); unknown or missing fields become empty."""
    eid = event_id.decode() if isinstance(event_id, bytes) else event_id
    f = {(k.decode() if isinstance(k, bytes) else k): (v.decode(errors="replace") if isinstance(v, bytes) else v)
         for k, v in raw.items()}
    try:
        custom = json.loads(f.get("custom") or "{}")
    except ValueError:
        custom = {}
    ms = eid.partition("-")[0]
    return ClusterEventState(event_id=eid, time=int(ms) if ms.isdigit() else 0, severity=f.get("severity", ""),
                             source_type=f.get("source", ""), label=f.get("kind", ""), message=f.get("message", ""),
                             custom_fields=custom if isinstance(custom, dict) else {})


def read(client: Any, count: int = MAXLEN, after: str | None = None) -> list[ClusterEventState]:
    """The last ``count`` events, oldest first (``after``: only those after that event id), from a sync client."""
    if after:
        rows = client.xrange(keys.cluster_events_key(), min="(" + after, max="+", count=count)
    else:
        rows = list(reversed(client.xrevrange(keys.cluster_events_key(), count=count)))
    return [parse(eid, raw) for eid, raw in rows]


def newest_first(store: Any) -> list[ClusterEventState]:
    """Every event kept, newest first, from a connected ``ShardedRedis`` (the state API's reader)."""
    return list(reversed(read(store.primary)))


# ---- writing -----------------------------------------------------------------------------------


#: Events queued in a process beyond this many (Redis unreachable for long) are dropped.
MAX_QUEUED = 1000


class _Sink:
    """The writer of one process: a queue drained in order by one task on the process's loop."""

    def __init__(self, client: Any, source: str, loop: asyncio.AbstractEventLoop):
        self.client = client
        self.source = source
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def put(self, fields: dict[str, str]) -> None:
        """On the loop: queue ``fields`` (dropped if too many wait) and make sure the writer runs."""
        if self.queue.qsize() >= MAX_QUEUED:
            return
        self.queue.put_nowait(fields)
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            fields = await self.queue.get()
            try:
                await asyncio.wait_for(self.client.xadd(keys.cluster_events_key(), fields, maxlen=MAXLEN,
                                                        approximate=True), WRITE_TIMEOUT_S)
            except Exception as e:  # noqa: BLE001 - an event must never fail its caller
                logger.debug("dropped a cluster event (%s): %s", e, fields.get("message"))
            finally:
                self.queue.task_done()


_sink: _Sink | None = None


def configure(client: Any, source: str) -> None:
    """Make :func:`record` write to ``client`` (an async Redis client of the primary) from now on,
    on the running event loop; ``source`` names this process (``GCS``, ``RAYLET``)."""
    global _sink
    _sink = _Sink(client, source, asyncio.get_running_loop())


async def drain(timeout_s: float = WRITE_TIMEOUT_S) -> None:
    """Wait (at most ``timeout_s``) for the events already recorded to be written, then stop writing
    events: called before the process closes its client."""
    global _sink
    sink, _sink = _sink, None
    if sink is None:
        return
    try:
        await asyncio.wait_for(sink.queue.join(), timeout_s)
    except asyncio.TimeoutError:
        logger.debug("dropped %d cluster events at exit", sink.queue.qsize())
    if sink.task is not None:
        sink.task.cancel()
        await asyncio.wait([sink.task])


def record(kind: Kind, message: str, severity: str = "INFO", **custom: Any) -> None:
    """Append an event, without waiting: a no-op in a process that did not :func:`configure`."""
    sink = _sink
    if sink is None or sink.loop.is_closed():
        return
    fields = entry(kind, message, sink.source, severity, **custom)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    try:
        if running is sink.loop:
            sink.put(fields)
        else:
            sink.loop.call_soon_threadsafe(sink.put, fields)
    except RuntimeError:  # the loop closed meanwhile
        return


def record_in_thread(connect: Callable[[], Any], kind: Kind, message: str, source: str, severity: str = "INFO",
                     **custom: Any) -> threading.Thread:
    """Append an event from a daemon thread (for callers without an event loop): ``connect()``
    returns a connected ``ShardedRedis``, closed after the write. Returns the thread (tests join it)."""
    fields = entry(kind, message, source, severity, **custom)

    def run() -> None:
        store = None
        try:
            store = connect()
            store.primary.xadd(keys.cluster_events_key(), fields, maxlen=MAXLEN, approximate=True)
        except Exception as e:  # noqa: BLE001 - an event must never fail its caller
            logger.debug("dropped a cluster event (%s): %s", e, message)
        finally:
            if store is not None:
                try:
                    store.close()
                except Exception:  # noqa: BLE001 - closing a broken connection
                    pass

    t = threading.Thread(target=run, name="rayredis-event", daemon=True)
    t.start()
    return t

"""Replicated shards on the client side: Sentinel master names, the cluster's replication record, the WAIT policy."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.retry import Retry

from rayredis._private.logs import Throttle

logger = logging.getLogger(__name__)
_throttle = Throttle(10.0)

#: Fields of ``keys.cluster_key()`` a replicated head writes (absent on an unreplicated cluster).
SENTINELS_FIELD = "sentinels"  # JSON list of "host:port"
MASTERS_FIELD = "masters"  # JSON list of Sentinel master names, index 0 = the primary, then data shards
REPLICAS_FIELD = "replicas"  # replicas per shard (decimal)

#: Commands that never change data (no WAIT after them). Every other command the runtime sends is
#: treated as a write and followed by WAIT when the shards are replicated: a write missing here
#: would lose the guarantee, a read missing here only costs a WAIT that returns at once.
READ_ONLY_COMMANDS = frozenset({
    "GET", "MGET", "STRLEN", "GETRANGE", "EXISTS", "TYPE", "TTL", "PTTL", "KEYS", "SCAN", "DBSIZE",
    "HGET", "HMGET", "HGETALL", "HKEYS", "HVALS", "HLEN", "HEXISTS", "HSTRLEN", "HSCAN", "HRANDFIELD",
    "SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD", "SSCAN", "SRANDMEMBER", "SINTER", "SUNION", "SDIFF",
    "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZCARD", "ZSCORE", "ZRANK", "ZCOUNT",
    "LRANGE", "LLEN", "LINDEX", "XRANGE", "XREVRANGE", "XLEN", "XREAD", "EVAL_RO", "EVALSHA_RO",
    "PING", "ECHO", "INFO", "TIME", "ROLE", "COMMAND", "CLIENT", "CONFIG", "SCRIPT", "SELECT", "AUTH",
    "HELLO", "WAIT", "PUBLISH", "SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "PUBSUB",
    "MEMORY", "OBJECT", "SLOWLOG", "LASTSAVE", "READONLY", "RESET", "QUIT",
})


def is_write(command_name: Any) -> bool:
    """Whether ``command_name`` (``"HSET"``, ``b"evalsha"``, ``"SCRIPT LOAD"``) may change data."""
    name = command_name.decode() if isinstance(command_name, bytes) else str(command_name)
    return name.split(" ", 1)[0].upper() not in READ_ONLY_COMMANDS


def master_name(index: int) -> str:
    """The Sentinel master name of shard ``index`` (0 = the primary). The Sentinels belong to one
    cluster, so the names need only be unique within it."""
    return f"rayredis-shard-{index}"


def parse_sentinels(text: str) -> list[str]:
    """``"h:p,h:p"`` (``Config.redis_sentinels``) as a list; empty for an unreplicated cluster."""
    return [s.strip() for s in text.split(",") if s.strip()]


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Malformed address {address!r}: expected 'host:port'.")
    return host, int(port)


@dataclass(frozen=True)
class Replication:
    """What a replicated cluster records in its cluster hash: where its Sentinels are, what they
    call each shard, and how many replicas each shard has."""

    sentinels: tuple[str, ...]
    masters: tuple[str, ...]  # index 0 = the primary shard
    replicas: int

    def fields(self) -> dict[str, str]:
        return {SENTINELS_FIELD: json.dumps(list(self.sentinels)), MASTERS_FIELD: json.dumps(list(self.masters)),
                REPLICAS_FIELD: str(self.replicas)}

    @classmethod
    def from_fields(cls, raw: Mapping[Any, Any]) -> Replication | None:
        """Read from a HGETALL of the cluster hash (bytes or str keys); None when unreplicated."""
        def get(name: str) -> str | None:
            v = raw.get(name, raw.get(name.encode()))
            return None if v is None else (v.decode() if isinstance(v, bytes) else str(v))
        sentinels, masters = get(SENTINELS_FIELD), get(MASTERS_FIELD)
        if not sentinels or not masters:
            return None
        return cls(tuple(json.loads(sentinels)), tuple(json.loads(masters)), int(get(REPLICAS_FIELD) or 1))

    @property
    def primary(self) -> str:
        return self.masters[0]

    @property
    def data_shards(self) -> tuple[str, ...]:
        """The data shards' master names (with a single shard, the primary is the data shard)."""
        return self.masters[1:] if len(self.masters) > 1 else self.masters[:1]


class WaitPolicy:
    """How long the ``WAIT`` after each write may block (sans-I/O: WAIT replies in, next timeout out).

    Normally ``timeout_ms``: a write returns once ``numreplicas`` replicas have it (typically well
    under a millisecond on one host). A WAIT that times out short of that means no replica is
    connected, or none keeps up (a replica died, or a failover left the new master alone until the
    old one rejoins as its replica): from then on each WAIT waits only ``degraded_ms``, so writes
    are not slowed by a full timeout each, until one is acknowledged again. Writes acknowledged in
    that degraded state are in the master's AOF only.

    A replica that is only slow (a loaded host) misses the short WAITs too, so while degraded one
    WAIT every ``probe_s`` gets the full timeout again: a replica that answers ends the degraded
    state within about ``probe_s`` instead of leaving writes unreplicated for as long as the host
    stays loaded (writes a failover to that replica would lose). ``clock``: seconds, monotonic.
    """

    def __init__(self, timeout_ms: int, degraded_ms: int, numreplicas: int = 1, probe_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.numreplicas = numreplicas
        self.timeout_ms = max(1, timeout_ms)
        self.degraded_ms = max(1, min(degraded_ms, self.timeout_ms))
        self.degraded = False
        self.probe_s = probe_s
        self._clock = clock
        self._probed_at = 0.0
        #: WAITs short of ``numreplicas`` so far (for tests and logs).
        self.unacknowledged = 0

    def request(self) -> tuple[int, int]:
        """The arguments of the next ``WAIT``: (numreplicas, timeout in ms)."""
        if not self.degraded:
            return self.numreplicas, self.timeout_ms
        now = self._clock()
        if now - self._probed_at >= self.probe_s:
            self._probed_at = now
            return self.numreplicas, self.timeout_ms
        return self.numreplicas, self.degraded_ms

    def observe(self, acked: int, where: str = "") -> None:
        """Record a WAIT's reply (replicas that acknowledged)."""
        if acked >= self.numreplicas:
            if self.degraded:
                logger.info("writes to %s are acknowledged by a replica again", where or "a shard")
            self.degraded = False
            return
        self.unacknowledged += 1
        if not self.degraded:
            self._probed_at = self._clock()  # (the WAIT that just failed was the full one)
            suppressed = _throttle.allow(where)
            if suppressed is not None:
                logger.warning("no replica of %s acknowledged a write within %d ms; writes go on unreplicated "
                               "(AOF only) until one does", where or "a shard", self.timeout_ms)
        self.degraded = True


def sentinel_kwargs(password: str | None) -> dict[str, Any]:
    """Connection options for the clients that talk to the Sentinels themselves: fast, no retries (a
    dead Sentinel is skipped for the next one; the caller's own retry repeats the discovery)."""
    return {"password": password, "socket_timeout": 1.0, "socket_connect_timeout": 1.0,
            "retry": Retry(NoBackoff(), 0)}


def async_sentinel_kwargs(password: str | None) -> dict[str, Any]:
    """:func:`sentinel_kwargs` for asyncio clients."""
    return {**sentinel_kwargs(password), "retry": redis.asyncio.retry.Retry(NoBackoff(), 0)}


def sentinel_addresses(addresses: list[str] | tuple[str, ...]) -> list[tuple[str, int]]:
    return [host_port(a) for a in addresses]

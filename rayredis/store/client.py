"""Connections to the Redis shards: the primary plus data shards, routed by ID; sync and asyncio flavours."""

from __future__ import annotations

import json
import socket
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rayredis import exceptions
from rayredis._private import retry
from rayredis.config import get_config
from rayredis.store import keys


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Malformed address {address!r}: expected 'host:port', e.g. '127.0.0.1:6379'.")
    return host, int(port)


def probe(address: str, password: str | None, password_hint: str = "_redis_password=...") -> None:
    """Check that ``address`` is a reachable rayredis primary and the password works, once and fast.

    redis-py's default retries treat refused connections and failed AUTH as transient and back off
    for seconds; a wrong address or password deserves an immediate answer that names the fix.
    ``password_hint`` says how the caller passes a password (a keyword for drivers, a flag for the CLI).
    """
    host, port = parse_address(address)
    client = redis.Redis(host=host, port=port, password=password, socket_connect_timeout=5.0,
                         socket_timeout=10.0, retry=Retry(NoBackoff(), 0))
    fix = (f"Pass the cluster's password with {password_hint} (or set RAYREDIS_REDIS_PASSWORD): "
           "`rayredis start --head` printed it, and local drivers find it in the current-cluster file "
           "under the temp dir.")
    try:
        if client.hget(keys.cluster_key(), "shards") is None:
            raise exceptions.ControlStoreUnavailable(
                f"Redis at {address} is not a rayredis cluster primary (it has no shard map). Check the "
                "address: it is the one `rayredis start --head` printed.")
    except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError) as e:
        auth = isinstance(e, redis.exceptions.AuthenticationError) or any(
            w in str(e) for w in ("NOAUTH", "WRONGPASS", "HELLO"))
        if not auth:
            raise
        what = "requires a password and none was given" if not password else f"refused our credentials ({e})"
        raise exceptions.ControlStoreUnavailable(f"Redis at {address} {what}. {fix}") from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
        raise exceptions.ControlStoreUnavailable(
            f"Could not reach the rayredis cluster at {address} ({e}). Is it running? Start one with "
            "`rayredis start --head`, or call rayredis.init() with no address to start a local cluster."
        ) from None
    finally:
        client.close()


def _keepalive() -> dict[str, Any]:
    """TCP keepalive, so a connection to a shard whose machine vanished fails within ~30 s
    (instead of a pub/sub connection waiting forever on a peer that will never answer)."""
    opts = {getattr(socket, name): value for name, value in
            (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 4)) if hasattr(socket, name)}
    return {"socket_keepalive": True, "socket_keepalive_options": opts}


class _Pipeline(redis.client.Pipeline):
    """A pipeline that loads its Lua scripts again before redis-py resends it on a new connection.

    redis-py checks the scripts once (``load_scripts``), then sends the pipeline and, after a
    connection error, resends it as it is: if the shard restarted in between with an empty script
    cache (Redis >= 7 keeps no scripts across a restart), each EVALSHA fails with NOSCRIPT.
    (redis-py's pipeline internals are untyped, hence the ``Any`` views of ``self`` and ``super()``.)
    """

    _sent = False

    def execute(self, raise_on_error: bool = True) -> Any:
        self._sent = False
        base: Any = super()
        return base.execute(raise_on_error)

    def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        self._before_send()
        base: Any = super()
        return base._execute_pipeline(connection, commands, raise_on_error)

    def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        self._before_send()
        base: Any = super()
        return base._execute_transaction(connection, commands, raise_on_error)

    def _before_send(self) -> None:
        me: Any = self
        if self._sent and me.scripts:
            me.load_scripts()
        self._sent = True


class _Redis(redis.Redis):
    """A blocking client whose pipelines reload their scripts before a resend (:class:`_Pipeline`)."""

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        return _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _AsyncPipeline(aioredis.client.Pipeline):
    """The asyncio twin of :class:`_Pipeline`."""

    _sent = False

    async def execute(self, raise_on_error: bool = True) -> Any:
        self._sent = False
        base: Any = super()
        return await base.execute(raise_on_error)

    async def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        await self._before_send()
        base: Any = super()
        return await base._execute_pipeline(connection, commands, raise_on_error)

    async def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        await self._before_send()
        base: Any = super()
        return await base._execute_transaction(connection, commands, raise_on_error)

    async def _before_send(self) -> None:
        me: Any = self
        if self._sent and me.scripts:
            await me.load_scripts()
        self._sent = True


class _AsyncRedis(aioredis.Redis):
    """An asyncio client whose pipelines reload their scripts before a resend."""

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        return _AsyncPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class ShardedRedis:
    """Blocking clients for the primary and each data shard.

    ``primary`` holds cluster-wide tables; ``for_id(id_bytes)`` picks the data shard of a task or
    object. With a single redis-server the primary is also the only data shard.
    """

    def __init__(self, primary_address: str, password: str | None, socket_timeout: float | None = 30.0):
        self.primary_address = primary_address
        self.password = password
        host, port = parse_address(primary_address)
        #: Every client reconnects and resends for ``connect_timeout_s`` (``retry.redis_connection``).
        self._options: dict[str, Any] = dict(
            password=password, socket_timeout=socket_timeout, socket_connect_timeout=5.0,
            retry=retry.redis_connection(get_config().connect_timeout_s), **_keepalive())
        # Typed Any: redis-py's stubs say bytes | str for every reply; ours are always bytes.
        self.primary: Any = _Redis(host=host, port=port, **self._options)
        self.shard_addresses: list[str] = []
        self.shards: list[Any] = []

    def connect(self) -> ShardedRedis:
        """Authenticate against the primary and open clients to the data shards it lists."""
        probe(self.primary_address, self.password)
        raw = self.primary.hget(keys.cluster_key(), "shards")
        self.shard_addresses = json.loads(raw)
        self.shards = _shard_clients(self.shard_addresses, self.primary_address, self.primary, _Redis,
                                     **self._options)
        return self

    def for_id(self, id_bytes: bytes) -> Any:
        return self.shards[keys.shard_index_for_id(id_bytes, len(self.shards))]

    def all_shards(self) -> list[Any]:
        return list(self.shards)

    def cluster_info(self) -> dict[str, str]:
        raw = self.primary.hgetall(keys.cluster_key())
        return {k.decode(): v.decode() for k, v in raw.items()}

    def close(self) -> None:
        for c in {id(c): c for c in [self.primary, *self.shards]}.values():
            c.close()


class AsyncShardedRedis:
    """The asyncio twin of :class:`ShardedRedis`, used by the raylet and the GCS."""

    def __init__(self, primary_address: str, password: str | None):
        self.primary_address = primary_address
        self.password = password
        host, port = parse_address(primary_address)
        self._options: dict[str, Any] = dict(
            password=password, socket_connect_timeout=5.0,
            retry=retry.async_redis_connection(get_config().connect_timeout_s), **_keepalive())
        self.primary: Any = _AsyncRedis(host=host, port=port, **self._options)
        self.shards: list[Any] = []
        self.shard_addresses: list[str] = []

    async def connect(self) -> AsyncShardedRedis:
        raw = await self.primary.hget(keys.cluster_key(), "shards")
        if raw is None:
            raise exceptions.ControlStoreUnavailable(f"{self.primary_address} has no rayredis shard map")
        self.shard_addresses = json.loads(raw)
        self.shards = _shard_clients(self.shard_addresses, self.primary_address, self.primary, _AsyncRedis,
                                     **self._options)
        return self

    def index_for_id(self, id_bytes: bytes) -> int:
        return keys.shard_index_for_id(id_bytes, len(self.shards))

    def for_id(self, id_bytes: bytes) -> Any:
        return self.shards[self.index_for_id(id_bytes)]

    async def close(self) -> None:
        seen: set[int] = set()
        for c in [self.primary, *self.shards]:
            if id(c) not in seen:
                seen.add(id(c))
                await c.aclose()


def _shard_clients(addresses: list[str], primary_address: str, primary: Any, make: Any,
                   **options: Any) -> list[Any]:
    """One client per data shard, reusing the primary's client when it is also a data shard."""
    out = []
    for addr in addresses:
        if addr == primary_address:
            out.append(primary)
        else:
            host, port = parse_address(addr)
            out.append(make(host=host, port=port, **options))
    return out


def decode_hash(raw: dict[Any, Any]) -> dict[str, Any]:
    """Decode a HGETALL result's keys to str (values stay bytes)."""
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}

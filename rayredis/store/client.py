"""Connections to the Redis shards: the primary plus data shards, routed by ID; sync and asyncio flavours."""

from __future__ import annotations

import json
import socket
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from rayredis import exceptions
from rayredis._private import retry
from rayredis.config import get_config
from rayredis.store import keys, replication
from rayredis.store.replication import Replication, WaitPolicy


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
                         socket_timeout=10.0, retry=Retry(NoBackoff(), 0), **credentials())
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


def credentials() -> dict[str, Any]:
    """The ACL user to authenticate as (``Config.redis_username``), if one is set."""
    user = get_config().redis_username
    return {"username": user} if user else {}


def _keepalive() -> dict[str, Any]:
    """TCP keepalive, so a connection to a shard whose machine vanished fails within ~30 s
    (instead of a pub/sub connection waiting forever on a peer that will never answer)."""
    opts = {getattr(socket, name): value for name, value in
            (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 4)) if hasattr(socket, name)}
    return {"socket_keepalive": True, "socket_keepalive_options": opts}


def _has_writes(policy: WaitPolicy | None, commands: Any) -> bool:
    return policy is not None and any(replication.is_write(args[0]) for args, _ in commands)


class DemotedError(redis.exceptions.ConnectionError):
    """The member a connection talks to is a replica now (a failover demoted it): nothing written
    there stands, so the caller's retry reconnects to the new master and sends it all again (a
    ConnectionError, which redis-py's and our retry policies retry)."""


def _demoted(err: BaseException) -> bool:
    """Whether ``err`` is Redis refusing a write or a WAIT because the member is a replica."""
    text = str(err)
    return isinstance(err, redis.exceptions.ReadOnlyError) or (
        isinstance(err, redis.exceptions.ResponseError)
        and (text.startswith("READONLY") or "READONLY You can't write against a read only replica" in text
             or "WAIT cannot be used with replica" in text))  # (a script's write: "Error running script ... -READONLY")


def _demotion(connection: Any, why: object) -> DemotedError:
    """The :class:`DemotedError` for a reply of ``connection``'s member that shows it is a replica."""
    return DemotedError(f"{connection.host}:{connection.port} is a replica now (failover): {why}")


def raise_if_demoted(connection: Any, results: Any) -> None:
    """Raise :class:`DemotedError` when a pipeline's per-command ``results`` show the member was a
    replica (READONLY), after dropping the connection so the retry asks the Sentinels again."""
    if isinstance(results, list) and any(isinstance(r, Exception) and _demoted(r) for r in results):
        raise _demotion(connection, "resending")


def _wait(connection: Any, policy: WaitPolicy) -> None:
    """``WAIT`` on the connection that just wrote, so the write is on a replica before we go on."""
    numreplicas, timeout_ms = policy.request()
    connection.send_command("WAIT", numreplicas, timeout_ms)
    try:
        acked = int(connection.read_response())
    except redis.exceptions.ResponseError as e:
        if _demoted(e):
            raise _demotion(connection, e) from e
        raise
    policy.observe(acked, f"{connection.host}:{connection.port}")


async def _async_wait(connection: Any, policy: WaitPolicy) -> None:
    numreplicas, timeout_ms = policy.request()
    await connection.send_command("WAIT", numreplicas, timeout_ms)
    try:
        acked = int(await connection.read_response())
    except redis.exceptions.ResponseError as e:
        if _demoted(e):
            raise _demotion(connection, e) from e
        raise
    policy.observe(acked, f"{connection.host}:{connection.port}")


class _Pipeline(redis.client.Pipeline):
    """A pipeline that loads its Lua scripts again before redis-py resends it on a new connection,
    and (replicated shards: ``wait_policy``) WAITs for a replica after sending writes.

    redis-py checks the scripts once (``load_scripts``), then sends the pipeline and, after a
    connection error, resends it as it is: if the shard restarted in between with an empty script
    cache (Redis >= 7 keeps no scripts across a restart), each EVALSHA fails with NOSCRIPT.
    (redis-py's pipeline internals are untyped, hence the ``Any`` views of ``self`` and ``super()``.)
    """

    _sent = False
    wait_policy: WaitPolicy | None = None

    def execute(self, raise_on_error: bool = True) -> Any:
        self._sent = False
        base: Any = super()
        return base.execute(raise_on_error)

    def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        self._before_send()
        base: Any = super()
        return self._then_wait(connection, commands, base._execute_pipeline, raise_on_error)

    def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        self._before_send()
        base: Any = super()
        return self._then_wait(connection, commands, base._execute_transaction, raise_on_error)

    def _then_wait(self, connection: Any, commands: Any, send: Any, raise_on_error: bool) -> Any:
        policy = self.wait_policy
        try:
            out = send(connection, commands, raise_on_error)
        except redis.exceptions.ResponseError as e:  # one command failed; the others' writes happened
            if _demoted(e):
                raise _demotion(connection, e) from e
            if policy is not None and _has_writes(policy, commands):
                _wait(connection, policy)
            raise
        raise_if_demoted(connection, out)
        if policy is not None and _has_writes(policy, commands):
            _wait(connection, policy)
        return out

    def _before_send(self) -> None:
        me: Any = self
        if self._sent and me.scripts:
            me.load_scripts()
        self._sent = True


class _Redis(redis.Redis):
    """A blocking client whose pipelines reload their scripts before a resend (:class:`_Pipeline`);
    with a ``wait_policy`` (replicated shards) every write is followed by WAIT on its connection."""

    wait_policy: WaitPolicy | None = None

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        pipe = _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.wait_policy = self.wait_policy
        return pipe

    def _send_command_parse_response(self, conn: Any, command_name: Any, *args: Any, **options: Any) -> Any:
        base: Any = super()
        try:
            result = base._send_command_parse_response(conn, command_name, *args, **options)
        except redis.exceptions.ResponseError as e:
            if _demoted(e):  # (redis-py's own check misses a script's write refused by a replica)
                conn.disconnect()
                raise _demotion(conn, e) from e
            raise
        if self.wait_policy is not None and replication.is_write(command_name):
            _wait(conn, self.wait_policy)
        return result


class _AsyncPipeline(aioredis.client.Pipeline):
    """The asyncio twin of :class:`_Pipeline`."""

    _sent = False
    wait_policy: WaitPolicy | None = None

    async def execute(self, raise_on_error: bool = True) -> Any:
        self._sent = False
        base: Any = super()
        return await base.execute(raise_on_error)

    async def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        await self._before_send()
        base: Any = super()
        return await self._then_wait(connection, commands, base._execute_pipeline, raise_on_error)

    async def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        await self._before_send()
        base: Any = super()
        return await self._then_wait(connection, commands, base._execute_transaction, raise_on_error)

    async def _then_wait(self, connection: Any, commands: Any, send: Any, raise_on_error: bool) -> Any:
        policy = self.wait_policy
        try:
            out = await send(connection, commands, raise_on_error)
        except redis.exceptions.ResponseError as e:
            if _demoted(e):
                raise _demotion(connection, e) from e
            if policy is not None and _has_writes(policy, commands):
                await _async_wait(connection, policy)
            raise
        raise_if_demoted(connection, out)
        if policy is not None and _has_writes(policy, commands):
            await _async_wait(connection, policy)
        return out

    async def _before_send(self) -> None:
        me: Any = self
        if self._sent and me.scripts:
            await me.load_scripts()
        self._sent = True


class _AsyncRedis(aioredis.Redis):
    """An asyncio client whose pipelines reload their scripts before a resend; WAITs as :class:`_Redis`."""

    wait_policy: WaitPolicy | None = None

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        pipe = _AsyncPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.wait_policy = self.wait_policy
        return pipe

    async def _send_command_parse_response(self, conn: Any, command_name: Any, *args: Any,
                                           **options: Any) -> Any:
        base: Any = super()
        try:
            result = await base._send_command_parse_response(conn, command_name, *args, **options)
        except redis.exceptions.ResponseError as e:
            if _demoted(e):
                await conn.disconnect()
                raise _demotion(conn, e) from e
            raise
        if self.wait_policy is not None and replication.is_write(command_name):
            await _async_wait(conn, self.wait_policy)
        return result


# redis-py's Sentinel classes are untyped.
_Sentinel: Any = redis.sentinel.Sentinel
_SentinelPool: Any = redis.sentinel.SentinelConnectionPool
_AsyncSentinel: Any = redis.asyncio.sentinel.Sentinel
_AsyncSentinelPool: Any = redis.asyncio.sentinel.SentinelConnectionPool


def _wait_policy() -> WaitPolicy:
    cfg = get_config()
    return WaitPolicy(cfg.redis_wait_timeout_ms, cfg.redis_wait_degraded_ms)


def _hinted_sentinels(sentinels: list[str] | None) -> list[str]:
    return sentinels if sentinels is not None else replication.parse_sentinels(get_config().redis_sentinels)


class ShardedRedis:
    """Blocking clients for the primary and each data shard.

    ``primary`` holds cluster-wide tables; ``for_id(id_bytes)`` picks the data shard of a task or
    object. With a single redis-server the primary is also the only data shard.

    Replicated shards (``Config.redis_replicas``): each client follows its shard's current master
    through the cluster's Sentinels (a ``SentinelConnectionPool``, which asks them on every new
    connection) and WAITs for a replica after each write. The Sentinels are ``sentinels``, else
    ``Config.redis_sentinels``, else what the cluster hash at ``primary_address`` names (read by
    :meth:`connect`, which then swaps the primary client's pool: references to it stay valid).
    """

    def __init__(self, primary_address: str, password: str | None, socket_timeout: float | None = 30.0,
                 sentinels: list[str] | None = None):
        self.primary_address = primary_address
        self.password = password
        host, port = parse_address(primary_address)
        #: Every client reconnects and resends for ``connect_timeout_s`` (``retry.redis_connection``).
        self._options: dict[str, Any] = dict(
            password=password, socket_timeout=socket_timeout, socket_connect_timeout=5.0,
            retry=retry.redis_connection(get_config().connect_timeout_s), **_keepalive(), **credentials())
        # Typed Any: redis-py's stubs say bytes | str for every reply; ours are always bytes.
        self.primary: Any = _Redis(host=host, port=port, **self._options)
        self.shard_addresses: list[str] = []
        self.shards: list[Any] = []
        self.replication: Replication | None = None
        self._sentinel: Any = None
        hint = _hinted_sentinels(sentinels)
        if hint:
            self._follow(hint)

    def _follow(self, sentinels: list[str] | tuple[str, ...]) -> None:
        """Route the primary client through the Sentinels from now on."""
        self._sentinel = _Sentinel(replication.sentinel_addresses(sentinels),
                                                 sentinel_kwargs=replication.sentinel_kwargs(self.password))
        old = self.primary.connection_pool
        self.primary.connection_pool = self._pool(replication.master_name(0))
        self.primary.wait_policy = _wait_policy()
        old.disconnect()

    def _pool(self, name: str) -> Any:
        return _SentinelPool(name, self._sentinel, is_master=True, **self._options)

    def connect(self) -> ShardedRedis:
        """Authenticate against the primary and open clients to the data shards it lists."""
        if self._sentinel is None:
            probe(self.primary_address, self.password)
        fields = decode_hash(self.primary.hgetall(keys.cluster_key()))
        if "shards" not in fields:
            raise exceptions.ControlStoreUnavailable(f"The Redis primary of {self.primary_address} has no shard map.")
        self.replication = rep = Replication.from_fields(fields)
        if rep is not None and self._sentinel is None:
            self._follow(rep.sentinels)
        self.shard_addresses = json.loads(fields["shards"])
        if rep is not None:
            self.shards = [self.primary if name == rep.primary else self._client(name) for name in rep.data_shards]
        else:
            self.shards = _shard_clients(self.shard_addresses, self.primary_address, self.primary, _Redis,
                                         **self._options)
        return self

    def _client(self, name: str) -> Any:
        client: Any = _Redis.from_pool(self._pool(name))
        client.wait_policy = _wait_policy()
        return client

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
        if self._sentinel is not None:
            self._sentinel.close()


class AsyncShardedRedis:
    """The asyncio twin of :class:`ShardedRedis`, used by the raylet and the GCS."""

    def __init__(self, primary_address: str, password: str | None, sentinels: list[str] | None = None):
        self.primary_address = primary_address
        self.password = password
        host, port = parse_address(primary_address)
        self._options: dict[str, Any] = dict(
            password=password, socket_connect_timeout=5.0,
            retry=retry.async_redis_connection(get_config().connect_timeout_s), **_keepalive(), **credentials())
        self.primary: Any = _AsyncRedis(host=host, port=port, **self._options)
        self.shards: list[Any] = []
        self.shard_addresses: list[str] = []
        self.replication: Replication | None = None
        self._sentinel: Any = None
        self._stale_pools: list[Any] = []
        hint = _hinted_sentinels(sentinels)
        if hint:
            self._follow(hint)

    def _follow(self, sentinels: list[str] | tuple[str, ...]) -> None:
        self._sentinel = _AsyncSentinel(
            replication.sentinel_addresses(sentinels), sentinel_kwargs=replication.async_sentinel_kwargs(self.password))
        self._stale_pools.append(self.primary.connection_pool)  # disconnected in connect/close (async)
        self.primary.connection_pool = self._pool(replication.master_name(0))
        self.primary.wait_policy = _wait_policy()

    def _pool(self, name: str) -> Any:
        return _AsyncSentinelPool(name, self._sentinel, is_master=True, **self._options)

    async def connect(self) -> AsyncShardedRedis:
        fields = decode_hash(await self.primary.hgetall(keys.cluster_key()))
        if "shards" not in fields:
            raise exceptions.ControlStoreUnavailable(f"{self.primary_address} has no rayredis shard map")
        self.replication = rep = Replication.from_fields(fields)
        if rep is not None and self._sentinel is None:
            self._follow(rep.sentinels)
        await self._drop_stale()
        self.shard_addresses = json.loads(fields["shards"])
        if rep is not None:
            self.shards = [self.primary if name == rep.primary else self._client(name) for name in rep.data_shards]
        else:
            self.shards = _shard_clients(self.shard_addresses, self.primary_address, self.primary, _AsyncRedis,
                                         **self._options)
        return self

    def _client(self, name: str) -> Any:
        client: Any = _AsyncRedis.from_pool(self._pool(name))
        client.wait_policy = _wait_policy()
        return client

    async def _drop_stale(self) -> None:
        pools, self._stale_pools = self._stale_pools, []
        for pool in pools:
            await pool.disconnect()

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
        await self._drop_stale()
        if self._sentinel is not None:
            await self._sentinel.aclose()


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

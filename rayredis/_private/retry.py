"""The named, time-bounded retry policies (tenacity, and redis-py reconnects); for idempotent operations only."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import redis.asyncio.retry
import redis.exceptions
import redis.retry
from redis.backoff import ExponentialBackoff
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from rayredis import exceptions
from rayredis._private.logs import Throttle

logger = logging.getLogger(__name__)
T = TypeVar("T")
#: One "retrying" warning per operation per 10 s: an outage must not flood the logs.
_throttle = Throttle(10.0)

#: Redis failures worth retrying: the server is restarting or briefly unreachable.
REDIS_RETRYABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    ConnectionRefusedError,
)


def _grpc_retryable(exc: BaseException) -> bool:
    return isinstance(exc, grpc.RpcError) and exc.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )


def _log(retry_state: Any) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    suppressed = _throttle.allow(repr(retry_state.fn))
    if suppressed is not None:
        logger.warning("retrying %s after %s (attempt %d%s)", retry_state.fn, exc, retry_state.attempt_number,
                       f"; {suppressed} more retries not logged" if suppressed else "")


def redis_op(timeout_s: float = 30.0) -> Retrying:
    """REDIS_OP: an idempotent Redis read or write, retried while the shard is unreachable."""
    return Retrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_random_exponential(multiplier=0.05, max=1.0),
        retry=retry_if_exception_type(REDIS_RETRYABLE),
        before_sleep=_log,
        reraise=True,
    )


def gcs_rpc(timeout_s: float = 30.0) -> Retrying:
    """GCS_RPC: an idempotent call to the GCS service, retried while it restarts."""
    return Retrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_random_exponential(multiplier=0.05, max=1.0),
        retry=retry_if_exception(_grpc_retryable),
        before_sleep=_log,
        reraise=True,
    )


def async_redis_op(timeout_s: float = 120.0) -> AsyncRetrying:
    """ASYNC_REDIS_OP: an idempotent Redis write from the raylet (a pipeline of CAS and location
    scripts and HSETs, an actor or job CAS), retried while a shard restarts; a repeat can never
    apply a change twice."""
    return AsyncRetrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_random_exponential(multiplier=0.05, max=2.0),
        retry=retry_if_exception_type(REDIS_RETRYABLE + (OSError,)),
        before_sleep=_log,
        reraise=True,
    )


#: The reconnect schedule of :func:`redis_connection`: waits of 0.1, 0.2, 0.4 s, then 0.5 s each.
_RECONNECT_BASE_S = 0.05
_RECONNECT_CAP_S = 0.5


def reconnect_attempts(timeout_s: float) -> int:
    """How many resends of the reconnect schedule add up to ``timeout_s`` of waiting."""
    n, waited = 0, 0.0
    while waited < timeout_s:
        n += 1
        waited += min(_RECONNECT_CAP_S, _RECONNECT_BASE_S * 2**n)
    return n


def redis_connection(timeout_s: float = 30.0) -> redis.retry.Retry:
    """REDIS_CONNECTION: redis-py's own retry on every client the runtime opens (``store/client.py``).

    On a connection or timeout error redis-py reconnects and sends the command (or the whole
    pipeline, or a pub/sub connection's subscriptions) again, for about ``timeout_s`` in all (see
    ``reconnect_attempts``), so a shard that its supervisor restarts is waited out. Resending is safe
    because every command the runtime sends is idempotent or harmless to repeat: reads; HSET, SET
    NX, SADD, HDEL, EXPIRE; the CAS scripts (a repeat finds the state already moved and changes
    nothing); PUBLISH of an ID (subscribers reread the table); HINCRBY of a heartbeat counter (it only
    has to move) and INCR of the job counter (a repeat skips one job ID). Pipelines reload their Lua
    scripts before a resend (``store/client.py``).
    """
    return redis.retry.Retry(ExponentialBackoff(cap=_RECONNECT_CAP_S, base=_RECONNECT_BASE_S),
                             reconnect_attempts(timeout_s))


def async_redis_connection(timeout_s: float = 30.0) -> redis.asyncio.retry.Retry:
    """REDIS_CONNECTION for asyncio clients (the raylet's and the GCS's): as :func:`redis_connection`."""
    return redis.asyncio.retry.Retry(ExponentialBackoff(cap=_RECONNECT_CAP_S, base=_RECONNECT_BASE_S),
                                     reconnect_attempts(timeout_s))


def store_unavailable(e: BaseException, timeout_s: float) -> exceptions.ControlStoreUnavailable:
    """rayredis's own error for a Redis shard that stayed unreachable through the retries of
    ``timeout_s``, naming the shard (from redis-py's message) and what to check."""
    return exceptions.ControlStoreUnavailable(
        f"The cluster's Redis did not answer for {timeout_s:.0f} s ({e}). Check that the cluster is "
        "running (`rayredis status`) and that its Redis shards are up (a supervised head restarts "
        "them); the wait is `connect_timeout_s` (RAYREDIS_CONNECT_TIMEOUT_S).")


def call(policy: Retrying, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` under ``policy``; a Redis failure that outlasts it is raised as
    :class:`~rayredis.exceptions.ControlStoreUnavailable` (a ``RaySystemError``)."""
    try:
        return policy(fn, *args, **kwargs)
    except exceptions.ControlStoreUnavailable:
        raise
    except REDIS_RETRYABLE as e:
        stop = getattr(policy, "stop", None)
        raise store_unavailable(e, float(getattr(stop, "max_delay", 0.0) or 0.0)) from e


def read(timeout_s: float, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """An idempotent Redis read of the public API (``nodes()``, ``cluster_resources()``, ...):
    retried for ``timeout_s`` (REDIS_OP), then :class:`~rayredis.exceptions.ControlStoreUnavailable`."""
    return call(redis_op(timeout_s), fn, *args, **kwargs)

"""The named, time-bounded tenacity retry policies; only idempotent operations go through them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import redis.exceptions
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

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
    logger.warning("retrying %s after %s (attempt %d)", retry_state.fn, exc, retry_state.attempt_number)


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


def call(policy: Retrying, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` under ``policy``."""
    return policy(fn, *args, **kwargs)

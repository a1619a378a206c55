"""Cluster-token authentication for every gRPC call: a server interceptor and client metadata."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from rayredis.protocol.limits import MAX_MESSAGE_BYTES

TOKEN_HEADER = "rayredis-token"

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

#: Channel options shared by clients and servers (objects travel inline up to a few MB per batch, or
#: whole in one message for drivers that cannot map the raylet's /dev/shm: ``protocol/limits.py``).
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
]

#: Server side: accept the clients' keepalive pings instead of answering GOAWAY "too_many_pings".
SERVER_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 1_000),
    ("grpc.http2.max_ping_strikes", 0),
    # Bounds on a peer before any call is authenticated: the TLS/HTTP2 handshake must finish in 5 s,
    # and one connection carries at most this many concurrent streams.
    ("grpc.server_handshake_timeout_ms", 5_000),
    ("grpc.max_concurrent_streams", 1_000),
]


def metadata(token: str) -> tuple[tuple[str, str], ...]:
    """The gRPC call metadata that carries the cluster token."""
    return ((TOKEN_HEADER, token),)


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without the cluster token before any handler (and any unpickling) runs."""

    def __init__(self, token: str):
        self._token = token.encode()

        async def deny(request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "missing or wrong rayredis cluster token")

        # A streaming handler for every method, unary ones too: it aborts before reading any
        # request message, so an unauthenticated body is neither buffered whole nor decoded (a
        # unary handler would first receive the whole message, up to the 512 MiB cap).
        self._deny: grpc.RpcMethodHandler[Any, Any] = grpc.stream_stream_rpc_method_handler(deny)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[_Req, _Resp] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Req, _Resp] | None:
        for key, value in handler_call_details.invocation_metadata or ():
            if key == TOKEN_HEADER:
                v = value.encode() if isinstance(value, str) else value
                if hmac.compare_digest(v, self._token):
                    return await continuation(handler_call_details)
        return self._deny

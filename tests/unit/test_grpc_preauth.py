"""gRPC before the token: a call without it is refused before its request is received or decoded."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from rayredis._private import auth

TOKEN = "t" * 40


def test_unauthenticated_calls_are_refused_before_the_request_is_decoded() -> None:
    decoded: list[bytes] = []

    def deserialize(b: bytes) -> bytes:
        decoded.append(b)
        return b

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    async def main() -> None:
        server = grpc.aio.server(interceptors=[auth.TokenInterceptor(TOKEN)], options=auth.SERVER_OPTIONS)
        handler = grpc.method_handlers_generic_handler(
            "rayredis.Test", {"Echo": grpc.unary_unary_rpc_method_handler(echo, request_deserializer=deserialize)})
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=auth.GRPC_OPTIONS) as ch:
                call = ch.unary_unary("/rayredis.Test/Echo")
                for md in ((), (("rayredis-token", "wrong"),)):
                    try:
                        await call(b"x" * (8 << 20), metadata=md, timeout=10)
                        raise AssertionError("an unauthenticated call was answered")
                    except grpc.aio.AioRpcError as e:
                        assert e.code() == grpc.StatusCode.UNAUTHENTICATED
                assert decoded == []  # nothing of theirs reached a deserializer
                assert await call(b"hi", metadata=auth.metadata(TOKEN), timeout=10) == b"hi"
                assert decoded == [b"hi"]
        finally:
            await server.stop(0)

    asyncio.run(main())

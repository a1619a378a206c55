"""Client-side debugging helpers: ask every live raylet to check its core's invariants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from rayredis._private import auth
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol._generated import rayredis_pb2_grpc as pb_grpc
from rayredis.store import tables
from rayredis.store.client import ShardedRedis

_make_stub: Callable[[grpc.Channel], Any] = pb_grpc.RayletStub  # generated, untyped


def validate_cluster(store: ShardedRedis | str, password: str | None = None, token: str | None = None,
                     timeout_s: float = 10.0) -> dict[str, list[str]]:
    """Each live node's invariant violations (``Raylet.Validate``), by node id; empty lists when
    consistent. ``store`` is a connected store or the primary's address (then ``password`` is used).
    A node whose raylet is unreachable (it just died) is left out."""
    own = isinstance(store, str)
    s = ShardedRedis(store, password).connect() if isinstance(store, str) else store
    try:
        if token is None:
            token = s.cluster_info().get("token", "")
        out: dict[str, list[str]] = {}
        for node in tables.alive(tables.read_nodes(s.primary)):
            assert node.info is not None
            channel = grpc.insecure_channel(node.info.address, options=auth.GRPC_OPTIONS)
            try:
                reply = _make_stub(channel).Validate(pb.ValidateRequest(), metadata=auth.metadata(token),
                                                      timeout=timeout_s)
                out[node.node_id] = list(reply.violations)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            finally:
                channel.close()
        return out
    finally:
        if own:
            s.close()

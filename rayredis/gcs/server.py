"""The GCS service process: stateless control logic over Redis (jobs, node liveness, actors, placement groups)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time
import uuid
from typing import Any

import grpc
import redis.exceptions

from rayredis._private import auth
from rayredis._private.logs import setup_process_logging
from rayredis.common.node_view import NodeView
from rayredis.config import get_config, secret_from_env
from rayredis.gcs.actor_manager import ActorManager, node_view_args
from rayredis.gcs.node_monitor import NodeMonitor
from rayredis.gcs.placement_groups import PlacementGroupManager
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol._generated import rayredis_pb2_grpc as pb_grpc
from rayredis.store import keys, pubsub
from rayredis.store.client import AsyncShardedRedis
from rayredis.store.scripts import Scripts
from rayredis.version import __version__

logger = logging.getLogger(__name__)


class GcsServicer(pb_grpc.GcsServicer):
    def __init__(self, gcs: Gcs):
        self.gcs = gcs

    async def RegisterJob(self, request: pb.RegisterJobRequest, context: Any) -> pb.RegisterJobReply:  # noqa: N802
        job_id, ns = await self.gcs.register_job(request.driver_pid, request.node_id.hex(), request.namespace,
                                                 request.entrypoint)
        return pb.RegisterJobReply(job_id=job_id, namespace=ns)

    async def Ping(self, request: pb.PingRequest, context: Any) -> pb.PingReply:  # noqa: N802
        return pb.PingReply(version=__version__)


class Gcs:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.cfg = get_config()
        self.actors = ActorManager(self)
        self.pgs = PlacementGroupManager(self)
        self.monitor = NodeMonitor(self.cfg.node_death_timeout_s)
        self._channels: dict[str, tuple[str, Any, Any]] = {}
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        self.redis = await AsyncShardedRedis(self.args.redis_address, secret_from_env("REDIS_PASSWORD")).connect()
        self.scripts = Scripts(self.redis.primary)
        self.token = (await self.redis.primary.hget(keys.cluster_key(), "token") or b"").decode()
        server = grpc.aio.server(interceptors=[auth.TokenInterceptor(self.token)], options=auth.SERVER_OPTIONS)
        pb_grpc.add_GcsServicer_to_server(GcsServicer(self), server)
        host = self.args.bind_host or self.cfg.bind_host
        port = server.add_insecure_port(f"{host}:{self.args.port}")
        await server.start()
        address = f"{self.args.node_ip or host}:{port}"
        await self.redis.primary.hset(keys.cluster_key(), "gcs_address", address)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        tasks = [loop.create_task(self._subscribe()), loop.create_task(self._monitor()),
                 loop.create_task(self._periodic())]
        logger.info("GCS listening on %s (pid %d)", address, os.getpid())
        await self.stopping.wait()
        for t in tasks:
            t.cancel()
        await server.stop(0.5)
        for _, ch, _ in self._channels.values():
            await ch.close()
        await self.redis.close()

    # ---- jobs ------------------------------------------------------------------------------------

    async def register_job(self, pid: int, node: str, namespace: str, entrypoint: str) -> tuple[int, str]:
        p = self.redis.primary
        job_id = int(await p.incr(keys.job_counter_key()))
        ns = namespace or f"anonymous-{uuid.uuid4().hex[:12]}"
        info = {"job_id": job_id, "driver_pid": pid, "node_id": node, "namespace": ns,
                "entrypoint": entrypoint, "start_time": time.time()}
        await p.hset(keys.jobs_key(), str(job_id), json.dumps(info))
        await self.scripts.hfield_cas(keys=[keys.job_state_key()],
                                      args=[str(job_id), "", "RUNNING", keys.job_channel(), str(job_id)])
        return job_id, ns

    # ---- nodes -----------------------------------------------------------------------------------

    async def node_alive(self, node: str) -> bool:
        return await self.redis.primary.hget(keys.node_state_key(), node) == b"ALIVE"

    async def alive_nodes(self) -> list[NodeView]:
        p = self.redis.primary
        states = await p.hgetall(keys.node_state_key())
        alive = [n.decode() for n, s in states.items() if s == b"ALIVE"]
        if not alive:
            return []
        infos = await p.hmget(keys.nodes_key(), alive)
        loads = await p.hmget(keys.node_load_key(), alive)
        return [NodeView(**node_view_args(i, ld)) for i, ld in zip(infos, loads) if i]

    async def raylet_stub(self, node: str) -> Any:
        cached = self._channels.get(node)
        if cached is not None:
            return cached[2]
        info = await self.redis.primary.hget(keys.nodes_key(), node)
        if info is None:
            return None
        address = json.loads(info)["address"]

        class _Auth(grpc.aio.UnaryUnaryClientInterceptor):
            def __init__(self, token: str):
                self.md = auth.metadata(token)

            async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
                details = details._replace(metadata=tuple(details.metadata or ()) + self.md)
                return await continuation(details, request)

        ch = grpc.aio.insecure_channel(address, options=auth.GRPC_OPTIONS, interceptors=[_Auth(self.token)])  # type: ignore[list-item]
        stub = pb_grpc.RayletStub(ch)
        self._channels[node] = (address, ch, stub)
        return stub

    async def _monitor(self) -> None:
        p = self.redis.primary
        while True:
            try:
                counters = {k.decode(): int(v) for k, v in (await p.hgetall(keys.node_heartbeat_key())).items()}
                states = await p.hgetall(keys.node_state_key())
                alive = {n.decode() for n, s in states.items() if s == b"ALIVE"}
                for node in self.monitor.observe(counters, alive, time.monotonic()):
                    logger.warning("node %s missed heartbeats for %.1f s: marking it dead", node,
                                   self.cfg.node_death_timeout_s)
                    await self.scripts.hfield_cas(keys=[keys.node_state_key()],
                                                  args=[node, "ALIVE", "DEAD", keys.node_channel(), node])
                    await self.actors.on_node_dead(node)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
                logger.warning("node monitor: %s", e)
            await asyncio.sleep(self.cfg.heartbeat_interval_s)

    # ---- pub/sub ---------------------------------------------------------------------------------

    async def _subscribe(self) -> None:
        """Follow actor, placement-group, node and job announcements (subscribe, then rescan)."""

        async def rescan() -> None:
            await self.actors.rescan()
            await self.pgs.rescan()

        async def on_message(ch: str, data: str) -> None:
            spawn = asyncio.get_running_loop().create_task
            if ch == keys.actor_channel():
                spawn(self.actors.handle(data))
            elif ch == keys.placement_group_channel():
                spawn(self.pgs.handle(data))
            elif ch == keys.node_channel():
                self._channels.pop(data, None)
                spawn(rescan())
            elif ch == keys.job_channel():
                if await self.redis.primary.hget(keys.job_state_key(), data) == b"FINISHED":
                    spawn(self.actors.on_job_finished(data))
                    spawn(self.pgs.on_job_finished(data))

        await pubsub.follow(self.redis.primary, [keys.actor_channel(), keys.placement_group_channel(),
                                                 keys.node_channel(), keys.job_channel()], rescan, on_message)

    async def _periodic(self) -> None:
        """A slow safety net: re-derive pending work in case a message or an RPC was lost."""
        while True:
            await asyncio.sleep(2.0)
            try:
                await self.actors.rescan()
                await self.pgs.rescan()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
                logger.warning("periodic rescan: %s", e)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rayredis.gcs")
    ap.add_argument("--redis-address", required=True)
    ap.add_argument("--session-dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bind-host", default="")
    ap.add_argument("--node-ip", default="")
    args = ap.parse_args(argv)
    setup_process_logging(args.session_dir, "gcs_server")
    asyncio.run(Gcs(args).run())

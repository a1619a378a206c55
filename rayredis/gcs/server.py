"""The GCS service process: stateless control logic over Redis (jobs, node liveness, actors, placement groups)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import redis.exceptions

from rayredis._private import auth
from rayredis._private.logs import setup_process_logging
from rayredis.config import get_config, secret_from_env
from rayredis.gcs.actor_manager import ActorManager
from rayredis.gcs.node_monitor import NodeMonitor
from rayredis.gcs.placement_groups import PlacementGroupManager
from rayredis.gcs.raylet_clients import GrpcRayletClients
from rayredis.gcs.store import RedisGcsStore
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol._generated import rayredis_pb2_grpc as pb_grpc
from rayredis.store import keys, pubsub
from rayredis.store.client import AsyncShardedRedis
from rayredis.store.tables import JobInfo
from rayredis.version import __version__

logger = logging.getLogger(__name__)

#: The generated registration function, typed (the generated gRPC module carries no annotations).
_add_gcs_servicer: Callable[[Any, Any], None] = pb_grpc.add_GcsServicer_to_server


#: ``register_job(driver_pid, node_id, namespace, entrypoint) -> (job_id, namespace)``.
RegisterJob = Callable[[int, str, str, str], Awaitable[tuple[int, str]]]


class GcsServicer(pb_grpc.GcsServicer):
    def __init__(self, register_job: RegisterJob):
        self.register_job = register_job

    async def RegisterJob(self, request: pb.RegisterJobRequest, context: Any) -> pb.RegisterJobReply:  # noqa: N802
        job_id, ns = await self.register_job(request.driver_pid, request.node_id.hex(), request.namespace,
                                             request.entrypoint)
        return pb.RegisterJobReply(job_id=job_id, namespace=ns)

    async def Ping(self, request: pb.PingRequest, context: Any) -> pb.PingReply:  # noqa: N802
        return pb.PingReply(version=__version__)


class Gcs:
    """Builds the store, the raylet clients and the managers, and runs the announcement, monitor and rescan loops."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.cfg = get_config()
        self.monitor = NodeMonitor(self.cfg.node_death_timeout_s)
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        self.redis = await AsyncShardedRedis(self.args.redis_address, secret_from_env("REDIS_PASSWORD")).connect()
        self.store = RedisGcsStore(self.redis.primary)
        token = await self.store.cluster_token()
        self.raylets = GrpcRayletClients(self.redis.primary, token)
        self.actors = ActorManager(self.store, self.raylets)
        self.pgs = PlacementGroupManager(self.store, self.raylets)
        server = grpc.aio.server(interceptors=[auth.TokenInterceptor(token)], options=auth.SERVER_OPTIONS)
        _add_gcs_servicer(GcsServicer(self.register_job), server)
        host = self.args.bind_host or self.cfg.bind_host
        port = server.add_insecure_port(f"{host}:{self.args.port}")
        await server.start()
        address = f"{self.args.node_ip or host}:{port}"
        await self.store.set_gcs_address(address)
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
        await self.raylets.close()
        await self.redis.close()

    # ---- jobs ------------------------------------------------------------------------------------

    async def register_job(self, pid: int, node: str, namespace: str, entrypoint: str) -> tuple[int, str]:
        job_id = await self.store.next_job_id()
        ns = namespace or f"anonymous-{uuid.uuid4().hex[:12]}"
        await self.store.add_job(JobInfo(job_id=job_id, driver_pid=pid, node_id=node, namespace=ns,
                                         entrypoint=entrypoint, start_time=time.time()))
        return job_id, ns

    # ---- nodes -----------------------------------------------------------------------------------

    async def _monitor(self) -> None:
        while True:
            try:
                for node in self.monitor.observe_records(await self.store.nodes(), time.monotonic()):
                    logger.warning("node %s missed heartbeats for %.1f s: marking it dead", node,
                                   self.cfg.node_death_timeout_s)
                    await self.store.node_dead_cas(node)
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
                self.raylets.forget(data)
                spawn(rescan())
            elif ch == keys.job_channel():
                if await self.store.job_finished(data):
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

"""The raylet process: gRPC shell, node registration, heartbeats and pub/sub around the NodeManager."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import time
from typing import Any

import grpc
import redis.exceptions

from rayredis import ids
from rayredis._private import auth
from rayredis._private.logs import setup_process_logging
from rayredis.common.resources import ResourceSet
from rayredis.config import get_config, secret_from_env
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol._generated import rayredis_pb2_grpc as pb_grpc
from rayredis.raylet.local_transport import serve_stream, start_unix_server
from rayredis.raylet.node_manager import NodeManager
from rayredis.raylet.object_store import ObjectStore
from rayredis.raylet.redis_writer import RedisWriter
from rayredis.raylet.scheduler import LocalScheduler
from rayredis.raylet.worker_pool import WorkerPool
from rayredis.store import keys, pubsub
from rayredis.store.client import AsyncShardedRedis
from rayredis.store.scripts import Scripts

logger = logging.getLogger(__name__)
_EOF: Any = getattr(grpc.aio, "EOF")  # noqa: B009 - missing from grpc's type stubs


class RayletServicer(pb_grpc.RayletServicer):
    """Decodes each RPC, calls one NodeManager method, encodes the reply."""

    def __init__(self, raylet: Raylet):
        self.r = raylet

    async def Connect(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        async def read() -> pb.ClientBatch | None:
            msg = await context.read()
            return None if msg is _EOF else msg

        await serve_stream(self.r, read, context.write)

    async def CreateActor(self, request: pb.CreateActorRequest, context: Any) -> pb.CreateActorReply:  # noqa: N802
        ok = self.r.nm.actors.create(request.actor_id, request.attempt, request.creation_spec)
        self.r.nm.request_schedule()
        return pb.CreateActorReply(accepted=ok, error="" if ok else "actor is dead")

    async def KillActor(self, request: pb.KillActorRequest, context: Any) -> pb.KillActorReply:  # noqa: N802
        found = request.actor_id in self.r.nm.actors.actors
        self.r.nm.actors.kill(request.actor_id, request.no_restart)
        return pb.KillActorReply(found=found)

    async def NodeStats(self, request: pb.NodeStatsRequest, context: Any) -> pb.NodeStatsReply:  # noqa: N802
        return pb.NodeStatsReply(json=json.dumps(self.r.nm.load()))

    async def ReserveBundles(self, request: pb.ReserveBundlesRequest, context: Any) -> pb.ReserveBundlesReply:  # noqa: N802
        ok, err = self.r.bundles.reserve(request.pg_id, list(request.bundle_indexes),
                                         [json.loads(b) for b in request.bundles_json])
        self.r.nm.request_schedule()
        return pb.ReserveBundlesReply(ok=ok, error=err)

    async def ReturnBundles(self, request: pb.ReturnBundlesRequest, context: Any) -> pb.ReturnBundlesReply:  # noqa: N802
        self.r.bundles.release(request.pg_id)
        self.r.nm.request_schedule()
        return pb.ReturnBundlesReply()


class Raylet:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.cfg = get_config()
        self.session_dir: str = args.session_dir
        self.node_ip: str = args.node_ip or args.bind_host or self.cfg.bind_host
        self.node_id = bytes.fromhex(args.node_id) if args.node_id else ids.new_id(16)
        self.password = secret_from_env("REDIS_PASSWORD")
        self.stopping = asyncio.Event()
        self.nm: NodeManager
        self.bundles: Any

    async def run(self) -> None:
        from rayredis.raylet.bundles import Bundles

        cfg = self.cfg
        self.redis = await AsyncShardedRedis(self.args.redis_address, self.password).connect()
        token = (await self.redis.primary.hget(keys.cluster_key(), "token") or b"").decode()
        server = grpc.aio.server(interceptors=[auth.TokenInterceptor(token)], options=auth.SERVER_OPTIONS)
        servicer = RayletServicer(self)
        pb_grpc.add_RayletServicer_to_server(servicer, server)
        port = server.add_insecure_port(f"{self.args.bind_host or cfg.bind_host}:{self.args.port}")
        self.address = f"{self.node_ip}:{port}"

        totals: dict[str, float] = {"CPU": float(self.args.num_cpus)}
        if self.args.num_gpus:
            totals["GPU"] = float(self.args.num_gpus)
        totals.update(json.loads(self.args.resources or "{}"))
        totals.setdefault("memory", float(default_memory()))
        totals[f"node:{self.node_ip}"] = 1.0
        capacity = self.args.object_store_memory or default_store_capacity()
        totals["object_store_memory"] = float(capacity)
        total = ResourceSet.from_floats(totals)
        whole_cpus = max(1, int(self.args.num_cpus + 0.9999))
        # Resources bound how many tasks run; the cap only matters for fractional and zero-CPU tasks.
        max_workers = max(1, int(whole_cpus * cfg.max_workers_per_cpu))
        scheduler = LocalScheduler(total, max_task_workers=max_workers)
        shm_prefix = f"rayredis_{os.path.basename(self.session_dir)[-4:]}_{self.node_id.hex()[:6]}_"
        objects = ObjectStore(capacity, shm_prefix)
        writer = RedisWriter(self.redis, self.node_id.hex(), cfg.redis_flush_interval_ms / 1000.0,
                             cfg.task_table_ttl_s)
        env = {"RAYREDIS_REDIS_PASSWORD": self.password or "", "RAYREDIS_CLUSTER_TOKEN": token,
               "RAYREDIS_REDIS_ADDRESS": self.args.redis_address}
        pool = WorkerPool(self.session_dir, f"127.0.0.1:{port}" if self.node_ip == cfg.bind_host
                          else self.address, self.node_id, env)
        self.nm = nm = NodeManager(self.node_id, scheduler, objects, writer, pool, self.node_ip)
        pool.nm = nm
        nm.actors.redis = self.redis
        nm.actors.scripts = Scripts(self.redis.primary)
        self.bundles = Bundles(scheduler)
        self.scripts = nm.actors.scripts
        await server.start()
        self.socket_name = f"rayredis-raylet-{self.node_id.hex()}"
        unix_server = await start_unix_server(self, self.socket_name, token)
        pool.socket_name = self.socket_name
        writer.start()
        await self._register(totals, capacity)
        prestart = cfg.prestart_workers or min(whole_cpus, 4)
        pool.start(prestart)
        scheduler.worker_started(prestart)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        bg = [loop.create_task(self._heartbeat()), loop.create_task(self._subscribe())]
        logger.info("raylet %s listening on %s", self.node_id.hex(), self.address)
        await self.stopping.wait()
        logger.info("raylet stopping")
        for t in bg:
            t.cancel()
        pool.stop_all()
        await self.scripts.hfield_cas(keys=[keys.node_state_key()], args=[
            self.node_id.hex(), "ALIVE", "DEAD", keys.node_channel(), self.node_id.hex()])
        await writer.close()
        objects.close()
        unix_server.close()
        await server.stop(0.5)
        await self.redis.close()

    async def _register(self, totals: dict[str, float], capacity: int) -> None:
        info = {
            "node_id": self.node_id.hex(), "address": self.address, "node_ip": self.node_ip,
            "resources": totals, "object_store_memory": capacity, "session_dir": self.session_dir,
            "pid": os.getpid(), "start_time": time.time(), "is_head": bool(self.args.head),
            "socket": self.socket_name,
        }
        p = self.redis.primary
        await p.hset(keys.nodes_key(), self.node_id.hex(), json.dumps(info))
        await p.hset(keys.node_load_key(), self.node_id.hex(), json.dumps(self.nm.load()))
        await self.scripts.hfield_cas(keys=[keys.node_state_key()], args=[
            self.node_id.hex(), "", "ALIVE", keys.node_channel(), self.node_id.hex()])

    async def _heartbeat(self) -> None:
        hexid = self.node_id.hex()
        while True:
            try:
                pipe = self.redis.primary.pipeline(transaction=False)
                pipe.hincrby(keys.node_heartbeat_key(), hexid, 1)
                pipe.hset(keys.node_load_key(), hexid, json.dumps(self.nm.load()))
                await pipe.execute()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
                logger.warning("heartbeat failed: %s", e)
            self.nm.pool.reap()
            await asyncio.sleep(self.cfg.heartbeat_interval_s)

    async def _subscribe(self) -> None:
        """Follow actor and job changes (subscribe, then rescan, so nothing is missed)."""

        async def on_message(ch: str, data: str) -> None:
            p = self.redis.primary
            if ch == keys.actor_channel():
                aid = bytes.fromhex(data)
                if aid in self.nm.actors.actors:
                    st, cause = await p.hmget(keys.actor_key(data), "state", "death_cause")
                    self.nm.actors.apply_remote_state(aid, st, cause)
            elif ch == keys.job_channel() and await p.hget(keys.job_state_key(), data) == b"FINISHED":
                self.nm.actors.job_finished(int(data))

        await pubsub.follow(self.redis.primary, [keys.actor_channel(), keys.job_channel()], self._rescan,
                            on_message)

    async def _rescan(self) -> None:
        p = self.redis.primary
        for aid in list(self.nm.actors.actors):
            st, cause = await p.hmget(keys.actor_key(aid.hex()), "state", "death_cause")
            self.nm.actors.apply_remote_state(aid, st, cause)
        states = await p.hgetall(keys.job_state_key())
        for job, st in states.items():
            if st == b"FINISHED":
                self.nm.actors.job_finished(int(job))


def default_memory() -> int:
    """Ray's default ``memory`` resource: 70% of the machine's RAM."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.7)
    except (ValueError, OSError):
        return 4 * 1024**3


def default_store_capacity() -> int:
    cfg = get_config()
    if cfg.object_store_memory:
        return cfg.object_store_memory
    try:
        free = shutil.disk_usage("/dev/shm").total
    except OSError:
        free = 2 * 1024**3
    return max(64 * 1024**2, int(free * 0.3))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rayredis.raylet")
    ap.add_argument("--redis-address", required=True)
    ap.add_argument("--session-dir", required=True)
    ap.add_argument("--node-id", default="")
    ap.add_argument("--node-ip", default="")
    ap.add_argument("--bind-host", default="")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--num-cpus", type=float, default=float(os.cpu_count() or 1))
    ap.add_argument("--num-gpus", type=float, default=0)
    ap.add_argument("--resources", default="{}")
    ap.add_argument("--object-store-memory", type=int, default=0)
    ap.add_argument("--head", action="store_true")
    args = ap.parse_args(argv)
    setup_process_logging(args.session_dir, "raylet")
    asyncio.run(Raylet(args).run())

"""The raylet process: gRPC shell, node registration, heartbeats and pub/sub around the NodeManager."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import redis.exceptions

from rayredis import ids
from rayredis._private import auth, events, process, session
from rayredis._private.logs import setup_process_logging
from rayredis.common.resources import ResourceSet
from rayredis.config import Config, get_config, secret_from_env
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol._generated import rayredis_pb2_grpc as pb_grpc
from rayredis.raylet import recovery, restarts
from rayredis.raylet.actor_lookups import ActorLookups
from rayredis.raylet.bundles import Bundles
from rayredis.raylet.capacity import default_memory, default_store_capacity
from rayredis.raylet.cluster_view import ClusterView
from rayredis.raylet.local_transport import serve_stream, start_unix_server
from rayredis.raylet.node_manager import NodeManager
from rayredis.raylet.object_store import ObjectStore
from rayredis.raylet.peer_transport import start_link_server
from rayredis.raylet.peers import Peers
from rayredis.raylet.ports import ActorDirectory, Timers
from rayredis.raylet.redis_writer import RedisWriter
from rayredis.raylet.scheduler import LocalScheduler
from rayredis.raylet.spill import spiller_for
from rayredis.raylet.spill_pump import Runner, SpillPump, ThreadRunner, inline_runner
from rayredis.raylet.task_table import TaskTableClient
from rayredis.raylet.worker_pool import WorkerPool
from rayredis.store import keys, pubsub, tables
from rayredis.store.client import AsyncShardedRedis
from rayredis.store.scripts import Scripts
from rayredis.store.tables import NodeState

logger = logging.getLogger(__name__)
#: A bundle prepared this long ago and still not committed is checked against its group's entry.
PREPARED_CHECK_S = 10.0
_EOF: Any = getattr(grpc.aio, "EOF")  # noqa: B009 - missing from grpc's type stubs


class RayletServicer(pb_grpc.RayletServicer):
    """Decodes each RPC, calls one NodeManager method, encodes the reply."""

    def __init__(self, raylet: Raylet):
        self.r = raylet

    async def Connect(self, request_iterator: Any,  # noqa: N802
                      context: grpc.aio.ServicerContext[pb.ClientBatch, pb.RayletBatch]) -> None:
        async def read() -> pb.ClientBatch | None:
            msg: Any = await context.read()
            return None if msg is _EOF else msg

        await serve_stream(self.r, read, context.write)

    async def CreateActor(self, request: pb.CreateActorRequest, context: Any) -> pb.CreateActorReply:  # noqa: N802
        ok = self.r.nm.actors.create(request.actor_id, request.attempt, request.creation_spec)
        self.r.nm.request_schedule()
        return pb.CreateActorReply(accepted=ok, error="" if ok else "actor is dead")

    async def KillActor(self, request: pb.KillActorRequest, context: Any) -> pb.KillActorReply:  # noqa: N802
        found = self.r.nm.actors.knows(request.actor_id)
        self.r.nm.actors.kill(request.actor_id, request.no_restart)
        return pb.KillActorReply(found=found)

    async def NodeStats(self, request: pb.NodeStatsRequest, context: Any) -> pb.NodeStatsReply:  # noqa: N802
        return pb.NodeStatsReply(json=self.r.nm.load().to_json())

    async def PrepareBundles(self, request: pb.PrepareBundlesRequest, context: Any) -> pb.PrepareBundlesReply:  # noqa: N802
        ok, err = self.r.node.bundles.prepare(request.pg_id, list(request.bundle_indexes),
                                              [json.loads(b) for b in request.bundles_json], request.txn,
                                              time.monotonic())
        await self.r.write_load()  # (set aside: less available, no bundle resource yet)
        return pb.PrepareBundlesReply(ok=ok, error=err)

    async def CommitBundles(self, request: pb.CommitBundlesRequest, context: Any) -> pb.CommitBundlesReply:  # noqa: N802
        ok, err = self.r.node.bundles.commit(request.pg_id, list(request.bundle_indexes),
                                             [json.loads(b) for b in request.bundles_json], request.txn,
                                             time.monotonic())
        self.r.nm.request_schedule()
        await self.r.write_load()  # other nodes see the bundles as soon as the group is announced
        return pb.CommitBundlesReply(ok=ok, error=err)

    async def CancelBundles(self, request: pb.CancelBundlesRequest, context: Any) -> pb.CancelBundlesReply:  # noqa: N802
        self.r.node.bundles.cancel(request.pg_id, list(request.bundle_indexes), request.txn)
        self.r.nm.request_schedule()
        await self.r.write_load()
        return pb.CancelBundlesReply()

    async def ReturnBundles(self, request: pb.ReturnBundlesRequest, context: Any) -> pb.ReturnBundlesReply:  # noqa: N802
        self.r.node.bundles.release(request.pg_id)
        self.r.nm.request_schedule()
        await self.r.write_load()
        return pb.ReturnBundlesReply()

    async def Validate(self, request: pb.ValidateRequest, context: Any) -> pb.ValidateReply:  # noqa: N802
        return pb.ValidateReply(violations=self.r.nm.validate())

    async def PullObject(self, request: pb.PullRequest, context: Any) -> AsyncIterator[pb.ObjectChunk]:  # noqa: N802
        async for chunk in self.r.peers.serve_pull(request.object_id, request.from_node, request.same_host):
            yield chunk


@dataclass(frozen=True)
class Node:
    """One raylet's object graph: the sans-I/O core and the collaborators it was built with."""

    scheduler: LocalScheduler
    objects: ObjectStore
    writer: RedisWriter
    pool: WorkerPool
    nm: NodeManager
    bundles: Bundles
    task_table: TaskTableClient


def build_node(*, node_id: bytes, node_ip: str, totals: dict[str, float], capacity: int, max_workers: int,
               shm_prefix: str, store: AsyncShardedRedis, cfg: Config, session_dir: str, raylet_address: str,
               worker_env: dict[str, str], socket_name: str, timers: Timers,
               directory: ActorDirectory, peers: Peers | None = None) -> Node:
    """Construct the whole raylet graph, every collaborator passed to its constructor."""
    scheduler = LocalScheduler(ResourceSet.from_floats(totals), max_task_workers=max_workers)
    objects = ObjectStore(capacity, shm_prefix, spiller_for(cfg, session_dir))
    writer = RedisWriter(store, node_id.hex(), cfg.redis_flush_interval_ms / 1000.0, cfg.task_table_ttl_s)
    pool = WorkerPool(session_dir, raylet_address, node_id, worker_env, socket_name)
    task_table = TaskTableClient(store, node_id.hex())
    nm = NodeManager(node_id, node_ip, scheduler, objects, writer, pool, timers, directory,
                     links=peers, view=ClusterView(node_id), task_table=task_table)
    task_table.core = nm.orphans
    if objects.spiller is not None:
        # (on the event loop's executor; a test's fake timers copy inline)
        runner: Runner = ThreadRunner(timers) if hasattr(timers, "run_in_executor") else inline_runner
        nm.use_spill_pump(SpillPump(objects, runner))
    if peers is not None:
        peers.nm = nm
    return Node(scheduler, objects, writer, pool, nm, Bundles(scheduler), task_table)


class Raylet:
    """The raylet process's I/O shell: Redis, gRPC, the Unix socket, heartbeats and pub/sub around
    the sans-I/O core; it also serves the core's actor lookups (:class:`ActorDirectory`)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.cfg = get_config()
        self.session_dir: str = args.session_dir
        self.node_ip: str = args.node_ip or args.bind_host or self.cfg.bind_host
        self.node_id = bytes.fromhex(args.node_id) if args.node_id else ids.new_id(16)
        self.password = secret_from_env("REDIS_PASSWORD")
        self.stopping = asyncio.Event()
        self.socket_name = f"rayredis-raylet-{self.node_id.hex()}"
        self.node: Node
        self.nm: NodeManager
        self._lookups = ActorLookups(lambda: self.redis.primary,
                                     lambda aid, entry: self.nm.actors.apply_remote_state(aid, entry),
                                     self.cfg.connect_timeout_s)
        self._infos: dict[bytes, tables.NodeInfo] = {}
        #: Set when this node found itself declared DEAD: it stops and comes back as a new node.
        self.fenced = False
        self.link_address = ""
        #: Which process of each other node this one last heard from (restarts under the same ID).
        self.incarnations = restarts.Incarnations()

    async def run(self) -> None:
        cfg = self.cfg
        self.redis = await AsyncShardedRedis(self.args.redis_address, self.password).connect()
        self.scripts = Scripts(self.redis.primary)
        events.configure(self.redis.primary, "RAYLET")
        token = (await self.redis.primary.hget(keys.cluster_key(), "token") or b"").decode()
        server = grpc.aio.server(interceptors=[auth.TokenInterceptor(token)], options=auth.SERVER_OPTIONS)
        servicer = RayletServicer(self)
        add_servicer: Callable[[Any, Any], None] = pb_grpc.add_RayletServicer_to_server  # untyped, generated
        add_servicer(servicer, server)
        port = server.add_insecure_port(f"{self.args.bind_host or cfg.bind_host}:{self.args.port}")
        self.address = f"{self.node_ip}:{port}"

        totals: dict[str, float] = {"CPU": float(self.args.num_cpus)}
        if self.args.num_gpus:
            totals["GPU"] = float(self.args.num_gpus)
        totals.update(json.loads(self.args.resources or "{}"))
        totals.setdefault("memory", float(default_memory()))
        totals[f"node:{self.node_ip}"] = 1.0
        capacity = default_store_capacity(self.args.object_store_memory)
        totals["object_store_memory"] = float(capacity)
        whole_cpus = max(1, int(self.args.num_cpus + 0.9999))
        loop = asyncio.get_running_loop()
        self.peers = Peers(self.node_id, token, self._address_of, self._flush_tables, node_ip=self.node_ip,
                           link_address_of=self._link_address_of)
        self.node = node = build_node(
            node_id=self.node_id, node_ip=self.node_ip, totals=totals, capacity=capacity,
            # Resources bound how many tasks run; the cap only matters for fractional and zero-CPU tasks.
            max_workers=max(1, int(whole_cpus * cfg.max_workers_per_cpu)),
            shm_prefix=f"{session.session_shm_tag(self.session_dir)}{self.node_id.hex()[:6]}_",
            store=self.redis, cfg=cfg, session_dir=self.session_dir,
            raylet_address=f"127.0.0.1:{port}" if self.node_ip == cfg.bind_host else self.address,
            worker_env={"RAYREDIS_REDIS_PASSWORD": self.password or "", "RAYREDIS_CLUSTER_TOKEN": token,
                        "RAYREDIS_REDIS_ADDRESS": self.args.redis_address},
            socket_name=self.socket_name, timers=loop, directory=self, peers=self.peers)
        self.nm = node.nm
        await server.start()
        link_server = await start_link_server(self.args.bind_host or cfg.bind_host, token, self._on_link_batch)
        self.link_address = f"{self.node_ip}:{link_server.sockets[0].getsockname()[1]}"
        node.writer.start()
        if await tables.anode_dead(self.redis.primary, self.node_id.hex()):
            # Restarted (by its supervisor) under a node ID that was declared dead meanwhile: the GCS
            # already moved that node's work, so nothing of it is recovered here (it would run twice).
            self.fenced = True
        elif await tables.anode_info(self.redis.primary, self.node_id.hex()) is not None:
            # This node ID ran before: its previous process died (a supervisor restarted it).
            await recovery.recover(self.redis.primary, self.scripts, self.node_id.hex(), node.objects.shm_prefix)
            await recovery.restore_bundles(
                self.redis.primary, lambda pg, idx, bundles, txn: node.bundles.commit(pg, idx, bundles, txn,
                                                                                     time.monotonic()),
                self.node_id.hex())
        # What the previous process left for its drivers to reclaim goes once they had time to.
        loop.call_later(0 if self.fenced else cfg.raylet_reconnect_timeout_s + 10, node.objects.drop_adopted)
        # Clients (a driver reconnecting after a restart among them) come once that is done.
        unix_server = await start_unix_server(self, self.socket_name, token)
        if self.fenced or not await self._register(totals, capacity):
            logger.error("this node is DEAD in the node table: fencing, re-registering as a new node")
            self.fenced = True
            self.stopping.set()
        if not self.fenced:
            prestart = cfg.prestart_workers or min(whole_cpus, 4)
            node.pool.start(prestart)
            node.scheduler.worker_started(prestart)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        bg = [loop.create_task(self._heartbeat()), loop.create_task(self._housekeeping()),
              loop.create_task(self._subscribe())]
        logger.info("raylet %s listening on %s", self.node_id.hex(), self.address)
        await self.stopping.wait()
        logger.info("raylet stopping")
        for t in bg:
            t.cancel()
        await self._lookups.close()
        await self.peers.close()
        await node.task_table.close()
        node.pool.stop_all()
        ks, argv = tables.node_state_cas_args(self.node_id.hex(), NodeState.ALIVE.value, NodeState.DEAD)
        if await self.scripts.hfield_cas(keys=ks, args=argv):
            events.record(events.Kind.NODE_DEAD, f"node {self.node_id.hex()} stopped (its raylet exited cleanly)",
                          node_id=self.node_id.hex(), cause="stopped")
        await node.writer.close()
        if node.nm.spill_pump is not None:
            node.nm.spill_pump.close()
        node.objects.close()
        unix_server.close()
        link_server.close()
        await server.stop(0.5)
        await events.drain()
        await self.redis.close()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in rest:
            logger.info("cancelling at exit: %r", t.get_coro())
            t.cancel()
        if rest:
            _, stuck = await asyncio.wait(rest, timeout=2.0)
            for t in stuck:
                logger.error("task ignores cancellation at exit: %r", t.get_coro())

    async def _register(self, totals: dict[str, float], capacity: int) -> bool:
        """Write the node's registration and make it ALIVE: from no state (a new node) or from ALIVE
        (this node ID restarted before it was declared dead). False if it is DEAD (declared dead:
        the caller fences, and the process comes back under a new node ID)."""
        hexid = self.node_id.hex()
        info = tables.NodeInfo(
            node_id=hexid, address=self.address, node_ip=self.node_ip, resources=totals,
            object_store_memory=capacity, session_dir=self.session_dir, pid=os.getpid(), start_time=time.time(),
            is_head=bool(self.args.head), socket=self.socket_name, link_address=self.link_address)
        p = self.redis.primary
        await p.hset(keys.nodes_key(), hexid, info.to_json())
        await p.hset(keys.node_load_key(), hexid, self.nm.load().to_json())
        for old in ("", NodeState.ALIVE.value):  # (each move is announced on the node channel)
            ks, argv = tables.node_state_cas_args(hexid, old, NodeState.ALIVE)
            if await self.scripts.hfield_cas(keys=ks, args=argv):
                events.record(events.Kind.NODE_REGISTERED, f"node {hexid} registered at {self.address}"
                              f"{' (head)' if self.args.head else ''}{' again' if old else ''}", node_id=hexid)
                return True
        return False

    async def _heartbeat(self) -> None:
        """Only the heartbeat (and the load report) is written here, so that nothing slower the
        raylet does each period (rereading the node table, giving back stale bundles) delays it
        into a false death; that work runs in :meth:`_housekeeping`."""
        hexid = self.node_id.hex()
        while True:
            started = time.monotonic()
            pipe = self.redis.primary.pipeline(transaction=False)
            pipe.wait_policy = None  # (no WAIT for a replica: a beat lost in a failover costs nothing)
            pipe.hincrby(keys.node_heartbeat_key(), hexid, 1)
            pipe.hset(keys.node_load_key(), hexid, self.nm.load().to_json())
            write = asyncio.ensure_future(pipe.execute())
            try:
                # Bounded: a write stuck on one connection must not silence the node into a false
                # death; the next beat goes out on another connection.
                await asyncio.wait_for(asyncio.shield(write), self.cfg.node_death_timeout_s / 3)
            except asyncio.TimeoutError:
                frames = _awaiting(write)
                logger.warning("a heartbeat write hung for %.1f s; dropping it and writing the next one on "
                               "another connection. It was at:\n%s", time.monotonic() - started, frames)
                write.cancel()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
                logger.warning("heartbeat failed: %s", e)
            except Exception:  # a backstop: an error reply must not end the heartbeat (a false death)
                logger.exception("heartbeat failed")
            took = time.monotonic() - started
            if took > self.cfg.node_death_timeout_s / 3:
                logger.warning("a heartbeat took %.1f s to write (Redis slow or failing over)", took)
            await asyncio.sleep(self.cfg.heartbeat_interval_s)

    async def _housekeeping(self) -> None:
        """Each heartbeat period: reread the cluster view, give back stale prepared bundles, collect
        exited workers."""
        pool = self.node.pool
        while True:
            try:
                await self._refresh_view()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
                logger.warning("reading the node table failed: %s", e)
            except Exception:  # a backstop: a malformed entry must not end the housekeeping
                logger.exception("reading the node table failed")
            try:
                await self._check_prepared()
            except Exception:  # a backstop: never let it stop the housekeeping
                logger.exception("checking prepared bundles failed")
            dead = pool.reap()
            if dead:
                # Keep replacing workers that fail to start, up to 20 failures in a row.
                self.nm.workers_failed_to_start(dead, reschedule=pool.startup_failures - len(dead) + 1 < 20)
            await asyncio.sleep(self.cfg.heartbeat_interval_s)

    async def _check_prepared(self) -> None:
        """Give back bundles prepared long ago for a reservation the group's entry no longer records
        (a deposed GCS's late PrepareBundles, say): nobody would ever commit or cancel them."""
        b = self.node.bundles
        stale = b.prepared_before(time.monotonic() - PREPARED_CHECK_S)
        if not stale:
            return
        entries = {e.pg_id: e for e in await tables.aread_placement_groups(self.redis.primary,
                                                                           [pg.hex() for pg in stale])}
        for pg in stale:
            e = entries.get(pg.hex())
            live = e.txn.seq if e is not None and e.txn is not None and e.state != tables.PlacementGroupState.REMOVED \
                else None
            if b.drop_prepared(pg, keep_txn=live):
                logger.warning("placement group %s: gave back bundles prepared for a reservation it no longer has",
                               pg.hex()[:12])
                self.nm.request_schedule()

    # ---- the other nodes -------------------------------------------------------------------------

    async def _refresh_view(self) -> None:
        """Reread every node's registration, liveness and load into the core's cluster view."""
        records = await tables.aread_nodes(self.redis.primary)
        me = self.node_id.hex()
        if any(r.node_id == me and r.state == NodeState.DEAD.value for r in records) and not self.stopping.is_set():
            # Declared dead (a long pause, a partition): its actors and tasks were already moved
            # elsewhere, so nothing of this node may run on. Stop everything, then re-register.
            logger.error("this node was declared dead: fencing (workers stopped), re-registering as a new node")
            self.fenced = True
            self.stopping.set()
            return
        reports: dict[bytes, tuple[str, dict[str, float], dict[str, float], int]] = {}
        for rec in records:
            if rec.alive and rec.info is not None:
                nid = bytes.fromhex(rec.node_id)
                if nid != self.node_id and self.incarnations.registration(nid, rec.info.pid, rec.info.start_time):
                    self._node_restarted(nid)  # (before its new address is known: no stale batch reaches it)
                self._infos[nid] = rec.info
                load = rec.load
                total = load.total if load else rec.info.resources
                reports[bytes.fromhex(rec.node_id)] = (
                    rec.info.address, total, load.available if load else total, load.queued if load else 0)
        nm = self.nm
        gone = [n for n in nm.view.nodes if n not in reports]
        if nm.view.update(reports):
            for n in gone:
                self.peers.forget(n)
                self.incarnations.forget(n)
                nm.peers.node_gone(n)
            nm.replace_infeasible()
            nm.request_schedule()

    def _node_restarted(self, node: bytes) -> None:
        """``node``'s raylet restarted under its ID: what this node queued for the old process is
        dropped, and what the old process had here is forgotten (:mod:`.restarts`)."""
        logger.warning("the raylet of node %s restarted", node.hex()[:8])
        self.peers.forget(node)
        restarts.drop_old_process(self.nm, node)

    def _on_link_batch(self, batch: pb.PeerBatch) -> None:
        if self.incarnations.link_epoch(batch.from_node, batch.epoch):
            self._node_restarted(batch.from_node)
            self._infos.pop(batch.from_node, None)  # the link rereads the new process's address
        if self.peers.accept(batch):
            self.nm.peers.apply(batch)

    async def _link_address_of(self, node: bytes) -> str | None:
        info = self._infos.get(node)
        if info is None:
            info = await tables.anode_info(self.redis.primary, node.hex())
            if info is not None:
                self._infos[node] = info
        return info.link_address if info is not None else None

    async def write_load(self) -> None:
        await self.redis.primary.hset(keys.node_load_key(), self.node_id.hex(), self.nm.load().to_json())

    async def _address_of(self, node: bytes) -> str | None:
        address = self.nm.view.address(node)
        if address is None:
            info = await tables.anode_info(self.redis.primary, node.hex())
            address = info.address if info is not None else None
        return address

    async def _flush_tables(self) -> None:
        await self.node.writer.flush()

    # ---- the actor table, for the core -----------------------------------------------------------

    def lookup_actor(self, actor_id: bytes) -> None:
        """A call arrived for an actor this node does not host yet: find out whether it is dead."""
        self._lookups.ask(actor_id)

    async def _subscribe(self) -> None:
        """Follow actor and job changes (subscribe, then rescan, so nothing is missed)."""

        async def on_message(ch: str, data: str) -> None:
            p = self.redis.primary
            if ch == keys.actor_channel():
                aid = bytes.fromhex(data)
                if self.nm.actors.knows(aid):
                    self.nm.actors.apply_remote_state(aid, await tables.aread_actor(p, data))
            elif ch == keys.job_channel() and await tables.ajob_finished(p, data):
                self.nm.actors.job_finished(int(data))
            elif ch in (keys.node_channel(), keys.placement_group_channel()):
                await self._refresh_view()

        await pubsub.follow(self.redis.primary, [keys.actor_channel(), keys.job_channel(), keys.node_channel(),
                                                 keys.placement_group_channel()], self._rescan, on_message)

    async def _rescan(self) -> None:
        await self._refresh_view()
        p = self.redis.primary
        aids = self.nm.actors.known_ids()
        found = {e.actor_id: e for e in await tables.aread_actors(p, [a.hex() for a in aids])}
        for aid in aids:
            self.nm.actors.apply_remote_state(aid, found.get(aid.hex()))
        for job in await tables.afinished_jobs(p):
            self.nm.actors.job_finished(job)


def _awaiting(task: asyncio.Future[Any]) -> str:
    """Where a pending task's coroutine is suspended, innermost last (for a hang's log line)."""
    coro: Any = getattr(task, "get_coro", lambda: None)()
    lines: list[str] = []
    while coro is not None and len(lines) < 40:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "\n".join(lines)


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
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    setup_process_logging(args.session_dir, "raylet")
    raylet = Raylet(args)
    asyncio.run(raylet.run())
    if raylet.fenced:
        # The same process (its PID stays recorded) starts over under a new node ID.
        fresh = [a for i, a in enumerate(argv) if a != "--node-id" and (i == 0 or argv[i - 1] != "--node-id")
                 and not a.startswith("--node-id=")]
        again = [sys.executable, "-m", "rayredis.raylet", *fresh, "--node-id", ids.new_id(16).hex()]
        # Its PID record names the command line it runs: what `stop`, the supervisor and `is_alive`
        # check before they act on the PID, so it must name the new one (same PID and start time).
        process.record_pid(args.session_dir, os.getpid(), "raylet", again)
        os.execv(sys.executable, again)

"""The GCS service process: stateless control logic over Redis (jobs, node liveness, actors, placement groups)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import grpc

from rayredis._private import auth, events
from rayredis._private.logs import setup_process_logging
from rayredis.config import get_config, secret_from_env
from rayredis.exceptions import ControlStoreUnavailable
from rayredis.gcs.actor_manager import ActorManager
from rayredis.gcs.lease import Event, Lease, LeaseLostError
from rayredis.gcs.node_monitor import NodeMonitor
from rayredis.gcs.outage import EXIT_CLUSTER_GONE, Outage
from rayredis.gcs.placement_groups import PlacementGroupManager
from rayredis.gcs.raylet_clients import GrpcRayletClients
from rayredis.gcs.store import Fence, RedisGcsStore
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol._generated import rayredis_pb2_grpc as pb_grpc
from rayredis.store import keys, pubsub
from rayredis.store.client import AsyncShardedRedis
from rayredis.store.tables import JobInfo
from rayredis.version import __version__

logger = logging.getLogger(__name__)

#: The generated registration function, typed (the generated gRPC module carries no annotations).
_add_gcs_servicer: Callable[[Any, Any], None] = pb_grpc.add_GcsServicer_to_server

#: Errors that mean Redis did not answer (refused, reset, timed out).
_UNREACHABLE = pubsub.LOST

#: ``register_job(driver_pid, node_id, namespace, entrypoint) -> (job_id, namespace)``.
RegisterJob = Callable[[int, str, str, str], Awaitable[tuple[int, str]]]


class GcsServicer(pb_grpc.GcsServicer):
    """Job registration, answered only by the GCS that holds the lease (UNAVAILABLE otherwise, so
    the driver retries and rereads ``gcs_address``)."""

    def __init__(self, register_job: RegisterJob, active: Callable[[], bool] = lambda: True):
        self.register_job = register_job
        self.active = active

    async def RegisterJob(self, request: pb.RegisterJobRequest, context: Any) -> pb.RegisterJobReply:  # noqa: N802
        if not self.active():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this GCS is a standby: another GCS holds the lease")
        try:
            job_id, ns = await self.register_job(request.driver_pid, request.node_id.hex(), request.namespace,
                                                 request.entrypoint)
        except LeaseLostError as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"this GCS lost its lease ({e})")
        except _UNREACHABLE as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"the GCS cannot reach Redis ({e})")
        return pb.RegisterJobReply(job_id=job_id, namespace=ns)

    async def Ping(self, request: pb.PingRequest, context: Any) -> pb.PingReply:  # noqa: N802
        return pb.PingReply(version=__version__)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again those that go on: a
    cancellation that coincides with a timeout inside an await can be turned into that timeout
    (Python 3.11), which a loop that retries on timeouts then swallows."""
    pending = set(tasks)
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)


async def _first(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


class Term:
    """One term of this GCS as the lease holder: the store, raylet clients, managers and loops that
    act under one holder id. Every write checks that id (locally and in Redis); :meth:`close`
    cancels all of it at once when the lease is lost, so nothing of the term acts afterwards."""

    def __init__(self, gcs: Gcs, holder: str):
        self.gcs = gcs
        self.holder = holder
        lease = gcs.lease

        def check() -> None:
            lease.check(time.monotonic(), holder)

        primary = gcs.redis.primary
        self.store = RedisGcsStore(primary, Fence(holder, check))
        self.raylets = GrpcRayletClients(primary, gcs.token, guard=check)
        self.actors = ActorManager(self.store, self.raylets)
        self.pgs = PlacementGroupManager(self.store, self.raylets)
        self.monitor = NodeMonitor(gcs.cfg.node_death_timeout_s)
        self.tasks: set[asyncio.Task[None]] = set()
        #: Set by :meth:`close`: the loops end at their next turn even if a cancellation got lost.
        self.closed = False

    def start(self) -> None:
        for coro in (self._subscribe(), self._monitor(), self._periodic()):
            self.spawn(coro)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        e = task.exception()
        if e is None or isinstance(e, LeaseLostError):
            return
        if isinstance(e, _UNREACHABLE):
            self.gcs.redis_failed("GCS handler", e)
        else:
            logger.error("GCS task failed", exc_info=e)

    async def close(self) -> None:
        self.closed = True
        while self.tasks:
            await _cancel(list(self.tasks))
        await self.raylets.close()

    # ---- nodes -----------------------------------------------------------------------------------

    async def _monitor(self) -> None:
        cfg = self.gcs.cfg
        while not self.closed:
            started = time.monotonic()
            try:
                records = await self.store.nodes()
                for node in self.monitor.observe_records(records, time.monotonic(), started):
                    logger.warning("node %s missed heartbeats for %.1f s (its counter did not move while the GCS "
                                   "watched): marking it dead", node, cfg.node_death_timeout_s)
                    if await self.store.node_dead_cas(node):
                        events.record(events.Kind.NODE_DEAD, f"node {node} missed heartbeats for "
                                      f"{cfg.node_death_timeout_s:.1f} s: marked dead", "ERROR", node_id=node,
                                      cause="missed heartbeats")
                    await self.actors.on_node_dead(node)
            except _UNREACHABLE as e:
                self.gcs.redis_failed("node monitor", e)
            await asyncio.sleep(cfg.heartbeat_interval_s)

    # ---- pub/sub ---------------------------------------------------------------------------------

    async def _subscribe(self) -> None:
        """Follow actor, placement-group, node and job announcements (subscribe, then rescan)."""

        async def rescan() -> None:
            await self.actors.rescan()
            await self.pgs.rescan()

        async def on_message(ch: str, data: str) -> None:
            if ch == keys.actor_channel():
                self.spawn(self.actors.handle(data))
            elif ch == keys.placement_group_channel():
                self.spawn(self.pgs.handle(data))
            elif ch == keys.node_channel():
                self.raylets.forget(data)
                self.spawn(rescan())
            elif ch == keys.job_channel():
                if await self.store.job_finished(data):
                    self.spawn(self.actors.on_job_finished(data))
                    self.spawn(self.pgs.on_job_finished(data))

        await pubsub.follow(self.gcs.redis.primary, [keys.actor_channel(), keys.placement_group_channel(),
                                                     keys.node_channel(), keys.job_channel()], rescan, on_message,
                            on_lost=lambda e: self.gcs.redis_failed("pub/sub", e))

    async def _periodic(self) -> None:
        """A slow safety net: re-derive pending work in case a message or an RPC was lost."""
        while not self.closed:
            await asyncio.sleep(2.0)
            try:
                await self.actors.rescan()
                await self.pgs.rescan()
                await self.actors.prune(self.gcs.cfg.dead_actors_kept)
            except _UNREACHABLE as e:
                self.gcs.redis_failed("periodic rescan", e)


class Gcs:
    """A standby until it holds the lease (``keys.gcs_lease_key``), then active for a :class:`Term`
    until it loses it, then a standby again; exits when Redis stays unreachable for
    ``cluster_gone_timeout_s``.

    While standby it serves no job, publishes no address and makes no decision; the acquisition
    itself publishes ``gcs_address`` (script ``gcs_lease``).
    """

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.cfg = get_config()
        self.lease = Lease(self.cfg.gcs_lease_s)
        self.outage = Outage(self.cfg.cluster_gone_timeout_s)
        self.term: Term | None = None
        self.exit_code = 0
        self.address = ""
        self.token = ""

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT (exit status 0) or until the cluster is gone (:data:`EXIT_CLUSTER_GONE`)."""
        self.stopping = asyncio.Event()
        self.changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.redis = AsyncShardedRedis(self.args.redis_address, secret_from_env("REDIS_PASSWORD"))
        self.base_store = RedisGcsStore(self.redis.primary)
        try:
            if not await self._connect():
                return self.exit_code
            server = grpc.aio.server(interceptors=[auth.TokenInterceptor(self.token)], options=auth.SERVER_OPTIONS)
            _add_gcs_servicer(GcsServicer(self.register_job, self._active), server)
            host = self.args.bind_host or self.cfg.bind_host
            port = server.add_insecure_port(f"{host}:{self.args.port}")
            await server.start()
            self.address = f"{self.args.node_ip or host}:{port}"
            logger.info("GCS (pid %d) listening on %s; a standby until it holds the lease", os.getpid(), self.address)
            keeper = loop.create_task(self._keep_lease())
            try:
                await self._terms()
            finally:
                self.stopping.set()
                await _cancel([keeper])
                await self._end_term()
                await self._release()
                await server.stop(0.5)
        finally:
            await events.drain()
            await self.redis.close()
        logger.info("GCS (pid %d) exits with status %d", os.getpid(), self.exit_code)
        return self.exit_code

    def _active(self) -> bool:
        term = self.term
        return term is not None and self.lease.held(time.monotonic(), term.holder)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short by a stop request."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    # ---- Redis reachability ----------------------------------------------------------------------

    def redis_failed(self, what: str, error: object, since: float | None = None) -> None:
        """Count a failed Redis call (made at ``since``) towards the outage; log at most one warning
        every few seconds."""
        line = self.outage.failed(what, error, time.monotonic(), since)
        if line is not None:
            logger.warning("%s", line)

    def _redis_answered(self) -> None:
        line = self.outage.recovered(time.monotonic())
        if line is not None:
            logger.info("%s", line)

    def _cluster_gone(self) -> bool:
        """When the outage has lasted ``cluster_gone_timeout_s``: log why, and stop with EXIT_CLUSTER_GONE."""
        if not self.outage.gone(time.monotonic()):
            return False
        logger.error("The Redis primary at %s has not answered for %.0f s (last error: %s): the cluster is gone; "
                     "the GCS exits (status %d). Start the cluster again (`rayredis start --head`, or init()).",
                     self.args.redis_address, self.cfg.cluster_gone_timeout_s, self.outage.last_error,
                     EXIT_CLUSTER_GONE)
        self.exit_code = EXIT_CLUSTER_GONE
        self.stopping.set()
        return True

    async def _connect(self) -> bool:
        """Read the shard map and the cluster token, retrying while Redis is unreachable."""
        while not self.stopping.is_set():
            try:
                await self.redis.connect()
                self.token = await self.base_store.cluster_token()
                events.configure(self.redis.primary, "GCS")
                self._redis_answered()
                return True
            except ControlStoreUnavailable as e:
                self.redis_failed("connecting", f"{e} (not a rayredis cluster primary, or restarted empty)")
            except _UNREACHABLE as e:
                self.redis_failed("connecting", e)
            if self._cluster_gone():
                return False
            await self._sleep(0.5)
        return False

    # ---- the lease -------------------------------------------------------------------------------

    async def _lease_call(self, op: str, holder: str, timeout: float) -> int | None:
        """One ``gcs_lease`` call: its result, or None when Redis did not answer in ``timeout``."""
        sent = time.monotonic()
        try:
            result = await asyncio.wait_for(
                self.base_store.lease(op, holder, self.lease.lease_s, self.address), timeout)
        except _UNREACHABLE as e:  # TimeoutError (wait_for) is an OSError too
            self.redis_failed(f"GCS lease {op}", str(e) or f"no answer within {timeout:.2f} s", sent)
            return None
        if result < 0:
            self.redis_failed(f"GCS lease {op}", "the Redis primary has no shard map (restarted empty?)", sent)
        else:
            self._redis_answered()
        return result

    def _note(self, event: Event | None) -> None:
        if event is Event.ACQUIRED:
            logger.info("GCS (pid %d) holds the lease (term %d): active; published %s", os.getpid(),
                        self.lease.term, self.address)
        elif event is Event.LOST:
            logger.warning("GCS (pid %d) lost the lease (term %d: no renewal within %.1f s, or another holder): "
                           "it stops acting and becomes a standby", os.getpid(), self.lease.term,
                           self.lease.trust_s)
        if event is not None:
            acquired = event is Event.ACQUIRED
            events.record(events.Kind.GCS_ACTIVE if acquired else events.Kind.GCS_LEASE_LOST,
                          f"GCS (pid {os.getpid()}) {'holds the lease: active' if acquired else 'lost the lease'} "
                          f"(term {self.lease.term})", "INFO" if acquired else "WARNING", pid=os.getpid(),
                          address=self.address)
            self.changed.set()

    async def _keep_lease(self) -> None:
        """Acquire (standby) or renew (active) the lease, forever; also the probe of Redis's reachability."""
        lease = self.lease
        while not self.stopping.is_set():
            self._note(lease.expire(time.monotonic()))
            for old in lease.take_released():
                await self._lease_call("release", old, timeout=lease.poll_every_s)
            attempt = lease.attempt(time.monotonic())
            # Wait no longer than the lease is trusted, nor past the "cluster is gone" bound.
            timeout = max(0.05, min(lease.timeout(attempt.sent_at), self.outage.left(attempt.sent_at)))
            result = await self._lease_call(attempt.op.value, attempt.holder, timeout)
            self._note(lease.settle(attempt, None if result is None else result == 1, time.monotonic()))
            if self._cluster_gone():
                return
            await self._sleep(lease.delay(time.monotonic()))

    async def _release(self) -> None:
        """On exit: give the lease back at once, so a standby need not wait for it to lapse."""
        holders = self.lease.take_released()
        current = self.lease.give_up()
        if current is not None:
            holders.append(current)
        if self.exit_code == EXIT_CLUSTER_GONE:
            return
        for holder in holders:
            await self._lease_call("release", holder, timeout=1.0)

    # ---- terms -----------------------------------------------------------------------------------

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition() and not self.stopping.is_set():
            self.changed.clear()
            await _first(self.changed, self.stopping)

    async def _terms(self) -> None:
        while not self.stopping.is_set():
            await self._until(lambda: self.lease.active)
            if self.stopping.is_set():
                return
            holder = self.lease.holder
            self.term = Term(self, holder)
            self.term.start()
            await self._until(functools.partial(self._term_over, holder))
            await self._end_term()
            logger.info("GCS (pid %d): term ended; every task of it is stopped", os.getpid())

    def _term_over(self, holder: str) -> bool:
        return not (self.lease.active and self.lease.holder == holder)

    async def _end_term(self) -> None:
        term, self.term = self.term, None
        if term is not None:
            await term.close()

    # ---- jobs ------------------------------------------------------------------------------------

    async def register_job(self, pid: int, node: str, namespace: str, entrypoint: str) -> tuple[int, str]:
        term = self.term
        if term is None:
            raise LeaseLostError("this GCS is a standby")
        job_id = await term.store.next_job_id()
        ns = namespace or f"anonymous-{uuid.uuid4().hex[:12]}"
        await term.store.add_job(JobInfo(job_id=job_id, driver_pid=pid, node_id=node, namespace=ns,
                                         entrypoint=entrypoint, start_time=time.time()))
        return job_id, ns


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rayredis.gcs")
    ap.add_argument("--redis-address", required=True)
    ap.add_argument("--session-dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bind-host", default="")
    ap.add_argument("--node-ip", default="")
    args = ap.parse_args(argv)
    setup_process_logging(args.session_dir, "gcs_server")
    sys.exit(asyncio.run(Gcs(args).run()))

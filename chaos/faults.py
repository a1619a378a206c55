"""Fault injectors for a local rayredis cluster, and the seeded schedule that fires them.

A fault is a small object with a ``name`` (its mode) and ``fire(rng, ctx) -> dict``. ``fire`` does
the damage *and* the repair the operator would do (``KillGcs`` starts a replacement GCS, ``KillNode``
adds a node that takes over the lost node's slot), then returns a record of what was done and when.
What the runtime itself must repair (``KillRaylet``, ``KillRedis``: a supervisor restarting the
component) the fault only waits for, and reports as an ``error`` when it does not happen.

Targets come only from the node table (``tables.read_nodes``: ``NodeInfo.pid`` is the raylet's PID)
and the sessions' PID records (``rayredis._private.process.recorded``, verified by kernel start
time), so only processes of this cluster are ever touched, and never by name.

When faults fire is decided up front by :func:`plan_schedule`: a Poisson process (exponentially
distributed gaps, as in dask's ``distributed/chaos.py``) drawn from ``random.Random(seed)``, so
the same seed gives the same fault times and kinds whatever the cluster does in between.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import grpc
import redis
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from chaos.cluster import outage_retry
from rayredis._private import auth, node, process, sentinel
from rayredis._private.node import NodeHandle
from rayredis.actor_state import ActorState
from rayredis.protocol._generated import rayredis_pb2 as pb
from rayredis.protocol._generated import rayredis_pb2_grpc as pb_grpc
from rayredis.store import keys, replication, tables
from rayredis.store.replication import Replication

if TYPE_CHECKING:
    from chaos.cluster import ChaosCluster

_gcs_stub: Callable[[grpc.Channel], Any] = pb_grpc.GcsStub  # generated, untyped
_raylet_stub: Callable[[grpc.Channel], Any] = pb_grpc.RayletStub
_sentinel_class: Any = redis.sentinel.Sentinel  # untyped


def live(handle: NodeHandle, role: str) -> list[process.Recorded]:
    """The live recorded processes of ``role`` in ``handle``'s session, by PID."""
    return live_in(handle.session_dir, role)


def live_in(session_dir: str, role: str) -> list[process.Recorded]:
    return sorted((r for r in process.recorded(session_dir) if r.role == role and process.is_alive(r)),
                  key=lambda r: r.pid)


def _sigkill_and_wait(r: process.Recorded, timeout_s: float = 5.0) -> bool:
    """SIGKILL ``r`` and wait until it is gone (reaping it if it is our child); True if it died."""
    try:
        os.kill(r.pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while process.is_alive(r):
        try:
            os.waitpid(r.pid, os.WNOHANG)  # the GCS and raylets are children of the runner
        except ChildProcessError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _redis(handle: NodeHandle) -> redis.Redis:
    return redis.Redis.from_url(f"redis://:{handle.password}@{handle.address}", socket_timeout=5.0,
                                socket_connect_timeout=5.0, retry=outage_retry(),
                                retry_on_error=[redis.ConnectionError, redis.TimeoutError])


def _text(v: bytes | str | None) -> str:
    return "" if v is None else v.decode() if isinstance(v, bytes) else v


@dataclass
class FaultContext:
    """What a fault may use: the cluster, its own index and a way to ask the workload for probes.

    ``probe(what, slot)`` asks the main loop (the only thread that calls the driver API) to submit
    a probe item right away: ``"slot_task"`` (a tiny task pinned to ``slot``) or ``"actor"`` (a new
    actor and one call, which needs the GCS and the primary shard). The probe's result time gives
    the fault's service recovery.
    """

    cluster: ChaosCluster
    index: int
    probe: Callable[[str, int | None], None]

    @property
    def handle(self) -> NodeHandle:
        return self.cluster.head


class Fault:
    """Base class: ``name`` is the mode shown in reports and accepted by ``--faults``."""

    name: ClassVar[str] = ""
    #: What this fault's ``service_recovery_s`` measures (for the README and the report).
    recovery: ClassVar[str] = ""

    def fire(self, rng: random.Random, ctx: FaultContext) -> dict[str, Any]:
        raise NotImplementedError

    def _record(self, t0: float, **fields: Any) -> dict[str, Any]:
        return {"kind": self.name, "wall_time": time.time() - (time.monotonic() - t0), "monotonic": t0,
                **fields}


# ---- reading the cluster ------------------------------------------------------------------------


def cluster_token(client: redis.Redis) -> str:
    return _text(client.hget(keys.cluster_key(), "token"))


def actor_entries(client: redis.Redis) -> list[tables.ActorEntry]:
    """Every actor-table entry (one round trip after the index)."""
    ids = sorted(_text(a) for a in client.smembers(keys.actors_index_key()))
    pipe = client.pipeline(transaction=False)
    for aid in ids:
        pipe.hgetall(keys.actor_key(aid))
    return [e for aid, raw in zip(ids, pipe.execute()) if (e := tables.ActorEntry.from_redis(aid, raw))]


def _hit(e: tables.ActorEntry) -> dict[str, Any]:
    return {"actor_id": e.actor_id, "name": e.name, "class_name": e.class_name, "num_restarts": e.num_restarts}


def actors_on_node(client: redis.Redis, node_id: str) -> list[dict[str, Any]]:
    """The actors placed on ``node_id`` (SCHEDULED or ALIVE there), with their restart counts now."""
    try:
        return [_hit(e) for e in actor_entries(client)
                if e.node == node_id and e.state in (ActorState.SCHEDULED, ActorState.ALIVE)]
    except redis.RedisError:
        return []


def _actor_hosted_by(handle: NodeHandle, pid: int) -> dict[str, Any] | None:
    """The actor (name, class, id, restarts) whose worker process is ``pid``, from the actor table."""
    client = _redis(handle)
    try:
        for e in actor_entries(client):
            if e.pid == pid and e.state == ActorState.ALIVE:
                return _hit(e)
    except redis.RedisError:
        return None
    finally:
        client.close()
    return None


def gcs_ping(address: str, token: str, timeout_s: float = 1.0) -> bool:
    """Whether the GCS at ``address`` answers ``Ping`` within ``timeout_s``."""
    channel = grpc.insecure_channel(address, options=auth.GRPC_OPTIONS)
    try:
        _gcs_stub(channel).Ping(pb.PingRequest(), metadata=auth.metadata(token), timeout=timeout_s)
        return True
    except grpc.RpcError:
        return False
    finally:
        channel.close()


def raylet_answers(address: str, token: str, timeout_s: float = 1.0) -> bool:
    """Whether the raylet at ``address`` answers ``NodeStats`` within ``timeout_s``."""
    channel = grpc.insecure_channel(address, options=auth.GRPC_OPTIONS)
    try:
        _raylet_stub(channel).NodeStats(pb.NodeStatsRequest(), metadata=auth.metadata(token), timeout=timeout_s)
        return True
    except grpc.RpcError:
        return False
    finally:
        channel.close()


def _wait(cond: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if cond():
                return True
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)


def _r(x: float) -> float:
    return round(x, 4)


def _non_head_raylets(c: ChaosCluster) -> list[tuple[int, tables.NodeRecord, process.Recorded]]:
    """(slot, node-table entry, PID record) of every live non-head raylet (not held by another
    node-level fault: :meth:`ChaosCluster.claim`)."""
    nodes = c.nodes()
    out = []
    held = c.claimed()
    for s in list(c.slots):
        if s.is_head or s.index in held:
            continue
        rec = c.slot_record(s.index, nodes)
        raylet = c.recorded_raylet(rec) if rec is not None else None
        if rec is not None and raylet is not None:
            out.append((s.index, rec, raylet))
    return out


# ---- faults -------------------------------------------------------------------------------------


@dataclass
class KillGcs(Fault):
    """SIGKILL the GCS, leave the cluster without one for ``downtime_s``, start a replacement.

    The record says when the old GCS was killed (``monotonic``), its PID (``target_pid``), the
    replacement's PID (``new_pid``), how long the replacement took to publish its address
    (``gcs_ready_s``, from its start) and when it answered ``Ping`` (``gcs_answers_s``, from the kill).
    """

    name: ClassVar[str] = "gcs"
    recovery: ClassVar[str] = "kill -> a new actor created through the replacement GCS answers a call"
    downtime_s: float = 1.0
    ready_timeout_s: float = 30.0

    def fire(self, rng: random.Random, ctx: FaultContext) -> dict[str, Any]:
        from rayredis import api

        # The head's supervisor (a supervised Cluster's, or an init() driver's own) would restart the
        # GCS at once; this fault sets the downtime.
        head = ctx.cluster.cluster.head_node if ctx.cluster.cluster is not None else None
        sup = api._supervisor or (head.supervisor if head is not None else None)
        with sup.pause("gcs") if sup is not None else contextlib.nullcontext():  # its other slots go on
            return self._fire(ctx)

    def _fire(self, ctx: FaultContext) -> dict[str, Any]:
        handle = ctx.handle
        targets = live(handle, "gcs")
        client = _redis(handle)
        try:
            old_address = client.hget(keys.cluster_key(), "gcs_address")
            token = cluster_token(client)
            t0 = time.monotonic()
            if not targets:
                return self._record(t0, skipped="no live GCS process is recorded", target_pid=None)
            died = [_sigkill_and_wait(r) for r in targets]
            killed_s = time.monotonic() - t0
            ctx.probe("actor", None)
            time.sleep(self.downtime_s)
            started = time.monotonic()
            new_pid = ctx.cluster.ops.call(lambda: node.start_gcs(handle, **ctx.cluster.head_bind()))
            ready_s = answers_s = None
            deadline = started + self.ready_timeout_s
            while time.monotonic() < deadline:
                address = client.hget(keys.cluster_key(), "gcs_address")
                if address != old_address:
                    ready_s = time.monotonic() - started
                    if _wait(functools.partial(gcs_ping, _text(address), token),
                             max(0.0, deadline - time.monotonic())):
                        answers_s = time.monotonic() - t0
                    break
                time.sleep(0.01)
            return self._record(t0, target_pid=targets[0].pid, all_targets=[r.pid for r in targets],
                                target_died=all(died), kill_s=_r(killed_s),
                                downtime_s=self.downtime_s, new_pid=new_pid,
                                gcs_ready_s=None if ready_s is None else _r(ready_s),
                                gcs_answers_s=None if answers_s is None else _r(answers_s),
                                error=None if ready_s is not None else
                                f"the replacement GCS (pid {new_pid}) did not publish an address within "
                                f"{self.ready_timeout_s} s; see {handle.session_dir}/logs/gcs_server.err")
        finally:
            client.close()


@dataclass
class KillWorker(Fault):
    """SIGKILL one live worker process (task worker or actor) of any node, chosen uniformly with ``rng``.

    The record names the PID, its node's slot and, when the worker hosted an actor, that actor's
    name, ID and restart count; the raylet notices the death and retries the task
    (``max_retries``) or restarts the actor.
    """

    name: ClassVar[str] = "worker"
    recovery: ClassVar[str] = ("kill -> the next call to the killed actor submitted after the kill succeeds; "
                               "for a task worker, a probe task pinned to its node succeeds")

    def fire(self, rng: random.Random, ctx: FaultContext) -> dict[str, Any]:
        workers = ctx.cluster.live_workers()
        t0 = time.monotonic()
        if not workers:
            return self._record(t0, skipped="no live worker process is recorded", target_pid=None)
        slot, target = rng.choice(workers)
        actor = _actor_hosted_by(ctx.handle, target.pid)
        t0 = time.monotonic()
        died = _sigkill_and_wait(target)
        if actor is None:
            ctx.probe("slot_task", slot)
        return self._record(t0, target_pid=target.pid, live_workers=len(workers), target_died=died,
                            slot=slot, actor=actor, actors_hit=[actor] if actor else [])


@dataclass
class KillNode(Fault):
    """SIGKILL the raylet and workers of a random non-head node (never back), then add a new node
    that takes over its slot.

    The raylet comes from the node table (``NodeInfo.pid``, checked against the node's PID records);
    the workers from the node's PID records; ``Cluster.remove_node(allow_graceful=False)`` kills
    them. Record fields: ``slot``, ``node_id``, ``new_node_id``, ``replaced_s`` (kill -> the new node
    is ALIVE), ``declared_dead_s`` (kill -> the GCS marked the old node DEAD), ``actors_hit``.
    """

    name: ClassVar[str] = "node"
    recovery: ClassVar[str] = ("kill -> a probe task pinned to the slot succeeds on the new node and every item "
                               "that was in flight on the slot at the kill has completed")
    death_timeout_s: float = 30.0

    def fire(self, rng: random.Random, ctx: FaultContext) -> dict[str, Any]:
        c = ctx.cluster
        cands = _non_head_raylets(c)
        t0 = time.monotonic()
        if not cands:
            return self._record(t0, skipped="no live non-head node (run with --nodes 2 or more)", target_pid=None)
        slot, rec, raylet = rng.choice(cands)
        assert rec.info is not None
        workers = [r.pid for r in live_in(rec.info.session_dir, "worker")]
        client = c.redis()
        try:
            hit = actors_on_node(client, rec.node_id)
            t0 = time.monotonic()
            c.kill_slot(slot)
            killed_s = time.monotonic() - t0
            ctx.probe("slot_task", slot)
            new = c.replace_slot(slot)
            replaced_s = time.monotonic() - t0
            dead = _wait(lambda: _text(client.hget(keys.node_state_key(), rec.node_id))
                         == tables.NodeState.DEAD.value, self.death_timeout_s, 0.05)
            dead_s = time.monotonic() - t0 if dead else None
        finally:
            client.close()
        return self._record(t0, target_pid=raylet.pid, all_targets=[raylet.pid, *workers], slot=slot,
                            node_id=rec.node_id, new_node_id=new.node_id, workers_killed=len(workers),
                            kill_s=_r(killed_s), replaced_s=_r(replaced_s),
                            declared_dead_s=None if dead_s is None else _r(dead_s), actors_hit=hit,
                            error=None if dead else f"the GCS did not mark node {rec.node_id[:8]} DEAD within "
                                                    f"{self.death_timeout_s} s of its SIGKILL")


@dataclass
class Pause(Fault):
    """SIGSTOP a random component (a raylet, the GCS or a worker) for ``min_s``..``max_s`` seconds, then
    SIGCONT it; shorter than the node-death timeout, so nothing may be lost and no node declared dead.

    The component class is chosen uniformly among those with a live process, then the process.
    Record fields: ``component``, ``slot``, ``pause_s``, ``answers_s`` (SIGSTOP -> the raylet answers
    ``NodeStats`` / the GCS answers ``Ping`` / the worker runs again), ``declared_dead`` (the node
    table says the paused raylet's node is DEAD: a false death).
    """

    name: ClassVar[str] = "pause"
    recovery: ClassVar[str] = ("SIGSTOP -> the component answers again (raylet: NodeStats RPC; GCS: Ping RPC; "
                               "worker: running again)")
    min_s: float = 0.5
    max_s: float = 2.0
    answer_timeout_s: float = 30.0

    def fire(self, rng: random.Random, ctx: FaultContext) -> dict[str, Any]:
        c = ctx.cluster
        nodes = c.nodes()
        raylets = []
        for s in list(c.slots):
            rec = c.slot_record(s.index, nodes)
            r = c.recorded_raylet(rec) if rec is not None else None
            if rec is not None and r is not None:
                raylets.append((s.index, rec, r))
        choices: dict[str, list[Any]] = {"raylet": raylets, "gcs": live(ctx.handle, "gcs"),
                                         "worker": c.live_workers()}
        t0 = time.monotonic()
        kinds = sorted(k for k, v in choices.items() if v)
        if not kinds:
            return self._record(t0, skipped="no live raylet, GCS or worker process", target_pid=None)
        component = rng.choice(kinds)
        pick = rng.choice(choices[component])
        pause_s = round(rng.uniform(self.min_s, self.max_s), 3)
        client = c.redis()
        try:
            token = cluster_token(client)
            extra: dict[str, Any] = {}
            if component == "raylet":
                slot, rec, target = pick
                assert rec.info is not None
                address = rec.info.address
                extra = {"slot": slot, "node_id": rec.node_id}

                def answers() -> bool:
                    return raylet_answers(address, token)
            elif component == "gcs":
                target, slot = pick, None  # the GCS is no slot's node: pausing it touches no slot's work
                address = _text(client.hget(keys.cluster_key(), "gcs_address"))

                def answers() -> bool:
                    return gcs_ping(address, token)
            else:
                slot, target = pick
                actor = _actor_hosted_by(ctx.handle, target.pid)
                extra = {"slot": slot, "actor": actor}

                def answers() -> bool:
                    return _proc_state(target.pid) not in ("T", "t")
            t0 = time.monotonic()
            try:
                os.kill(target.pid, signal.SIGSTOP)
            except ProcessLookupError:
                return self._record(t0, skipped=f"the {component} (pid {target.pid}) exited before the pause",
                                    target_pid=None)
            try:
                if component == "raylet":
                    ctx.probe("slot_task", slot)
                elif component == "gcs":
                    ctx.probe("actor", None)
                time.sleep(pause_s)
            finally:
                if process.is_alive(target):  # never signal a reused PID
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(target.pid, signal.SIGCONT)
            cont_s = time.monotonic() - t0
            if not process.is_alive(target):  # another fault (a gcs or node kill) killed it meanwhile
                return self._record(t0, target_pid=target.pid, component=component, pause_s=pause_s,
                                    cont_s=_r(cont_s), killed_while_paused=True, **extra)
            ok = _wait(answers, self.answer_timeout_s)
            answers_s = time.monotonic() - t0 if ok else None
            if component == "raylet":
                extra["declared_dead"] = not tables.node_alive(client, extra["node_id"])
            return self._record(t0, target_pid=target.pid, component=component, pause_s=pause_s,
                                cont_s=_r(cont_s), answers_s=None if answers_s is None else _r(answers_s), **extra,
                                error=None if ok else f"the paused {component} (pid {target.pid}) did not answer "
                                                      f"within {self.answer_timeout_s} s of SIGCONT")
        finally:
            client.close()


def _proc_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


#: Why a restart waited for by ``raylet`` / ``redis`` does not happen in this checkout.
NO_RAYLET_SUPERVISOR = (
    "the node's supervisor (Cluster(supervise=True)) should have restarted it; see its log lines in the "
    "runner's output and the node's logs (it gives up after supervisor_max_restarts deaths within "
    "supervisor_restart_window_s).")
NO_REDIS_SUPERVISOR = (
    "the head's supervisor (Cluster(supervise=True)) should have restarted it from its AOF; see the "
    "runner's output and the head's logs (it gives up after supervisor_max_restarts deaths within "
    "supervisor_restart_window_s).")


@dataclass
class KillRaylet(Fault):
    """SIGKILL the raylet of a random non-head node (its workers die with it) and wait for its node's
    supervisor to restart it with the same node ID (a new PID in the node table, ALIVE).

    This fault never restarts anything itself. If no restart comes within ``restart_timeout_s`` the
    record carries an ``error`` (the run fails); the node is then removed and replaced as by
    ``node`` (``fallback``), so the rest of the run still measures something.
    """

    name: ClassVar[str] = "raylet"
    recovery: ClassVar[str] = ("kill -> the same node ID is ALIVE again with a new raylet PID and a probe "
                               "task pinned to the slot succeeds")
    restart_timeout_s: float = 15.0

    def fire(self, rng: random.Random, ctx: FaultContext) -> dict[str, Any]:
        c = ctx.cluster
        cands = _non_head_raylets(c)
        t0 = time.monotonic()
        if not cands:
            return self._record(t0, skipped="no live non-head raylet (run with --nodes 2 or more)", target_pid=None)
        slot, rec, raylet = rng.choice(cands)
        client = c.redis()
        try:
            hit = actors_on_node(client, rec.node_id)
            t0 = time.monotonic()
            died = _sigkill_and_wait(raylet)
            ctx.probe("slot_task", slot)

            def restarted() -> bool:
                raw = client.hget(keys.nodes_key(), rec.node_id)
                if not raw or not tables.node_alive(client, rec.node_id):
                    return False
                info = tables.NodeInfo.from_json(raw)
                return info.pid != raylet.pid and os.path.exists(f"/proc/{info.pid}")

            ok = _wait(restarted, self.restart_timeout_s, 0.05)
            restarted_s = time.monotonic() - t0 if ok else None
        finally:
            client.close()
        fields: dict[str, Any] = {"target_pid": raylet.pid, "target_died": died, "slot": slot,
                                  "node_id": rec.node_id, "actors_hit": hit,
                                  "restarted_s": None if restarted_s is None else _r(restarted_s)}
        if not ok:
            fields["error"] = (f"the raylet of node {rec.node_id[:8]} (pid {raylet.pid}) was not restarted with "
                               f"the same node ID within {self.restart_timeout_s} s: {NO_RAYLET_SUPERVISOR}")
            c.kill_slot(slot)  # its workers and segments; the raylet is dead already
            new = c.replace_slot(slot)
            fields["fallback"] = f"removed the node and added node {new.node_id[:8]} for slot {slot}"
        return self._record(t0, **fields)


def replication_settled(handle: NodeHandle, timeout_s: float) -> float | None:
    """On a replicated cluster, wait until every shard is whole again: the master the Sentinels
    name answers as a master with every replica of its shard online (synced) and the Sentinels
    agreeing on it; returns how long that took, None when it did not within ``timeout_s`` (0.0
    on an unreplicated cluster). A one-replica shard survives one failure at a time: the Redis
    faults wait for this before the next one may fire (``FaultThread``'s shared lane)."""
    if not handle.sentinels:
        return 0.0
    t0 = time.monotonic()

    def whole() -> bool:
        reader = _redis(handle)
        try:
            rep = Replication.from_fields(reader.hgetall(keys.cluster_key()))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False
        finally:
            reader.close()
        if rep is None:
            return False
        for name in rep.masters:
            view = sentinel.ask_sentinels(handle.sentinels, handle.password, name)
            if view.master is None:
                return False
            host, _, port = view.master.rpartition(":")
            member = redis.Redis(host=host, port=int(port), password=handle.password, socket_timeout=1.0,
                                 socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
            try:
                info = member.info("replication")
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                return False
            finally:
                member.close()
            online = sum(1 for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
                         and v.get("state") == "online")
            if info.get("role") != "master" or online < rep.replicas:
                return False
        return True

    return time.monotonic() - t0 if _wait(whole, timeout_s, 0.1) else None


@dataclass
class KillRedis(Fault):
    """SIGKILL a random Redis shard and wait for the supervisor to restart it with its AOF data (the
    shard answers PING at its address again, the primary still has the cluster's token).

    This fault never restarts anything itself: no restart within ``restart_timeout_s`` is an
    ``error`` (and the cluster stays without that shard for the rest of the run).
    """

    name: ClassVar[str] = "redis"
    recovery: ClassVar[str] = ("kill -> the shard answers again with its data and a new actor (which needs the "
                               "primary and the GCS) answers a call")
    restart_timeout_s: float = 15.0

    def fire(self, rng: random.Random, ctx: FaultContext) -> dict[str, Any]:
        handle = ctx.handle
        recorded = live(handle, "redis")
        shards = [(r, p) for r in recorded if (p := _port_of(r.pid))]
        t0 = time.monotonic()
        if not shards:
            return self._record(t0, target_pid=None, **({"skipped": "no live Redis shard is recorded"} if not recorded
                                                         else {"error": "the port of no recorded Redis shard could be "
                                                                        f"read (pids {[r.pid for r in recorded]})"}))
        target, port = rng.choice(shards)
        host = handle.address.rpartition(":")[0]
        primary = handle.address == f"{host}:{port}"
        probe_client = redis.Redis(host=host, port=port, password=handle.password, socket_timeout=1.0,
                                   socket_connect_timeout=1.0)
        try:
            keys_before = int(probe_client.dbsize())
            token = cluster_token(probe_client) if primary else ""
            t0 = time.monotonic()
            died = _sigkill_and_wait(target)
            ctx.probe("actor", None)

            def back() -> bool:
                probe_client.ping()
                return not primary or cluster_token(probe_client) == token

            ok = _wait(back, self.restart_timeout_s, 0.05)
            restarted_s = time.monotonic() - t0 if ok else None
            keys_after = int(probe_client.dbsize()) if ok else None
        finally:
            probe_client.close()
        settled = replication_settled(handle, self.restart_timeout_s) if ok else None
        error = None
        if not ok:
            error = (f"Redis shard :{port} (pid {target.pid}) was not restarted with its data within "
                     f"{self.restart_timeout_s} s: {NO_REDIS_SUPERVISOR}")
        elif settled is None:
            error = f"the replicated shards were not whole again within {self.restart_timeout_s} s of the restart"
        return self._record(t0, target_pid=target.pid, target_died=died, port=port, primary=primary,
                            keys_before=keys_before, keys_after=keys_after,
                            restarted_s=None if restarted_s is None else _r(restarted_s),
                            settled_s=None if settled is None else _r(settled), error=error)


def _port_of(pid: int) -> int | None:
    """The port of a recorded redis-server (our own child): from ``--port`` on its command line, or
    from the ``host:port`` process title redis-server sets for itself."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = [a.decode(errors="replace") for a in f.read().replace(b"\0", b" ").split()]
    except OSError:
        return None
    if "--port" in args and args.index("--port") + 1 < len(args):
        return int(args[args.index("--port") + 1]) if args[args.index("--port") + 1].isdigit() else None
    for a in args[1:]:
        host, _, port = a.rpartition(":")
        if host and port.isdigit():
            return int(port)
    return None


@dataclass
class KillRedisPrimary(Fault):
    """SIGKILL the current master of a random Redis shard, as the Sentinels report it (a replicated
    cluster: ``--redis-replicas``), and time the failover the Sentinels do by themselves.

    Just before the kill it INCRs a counter (``keys.failover_probe_key``) on that shard and WAITs for
    a replica; after it, it INCRs through the Sentinels until a write is accepted (``accepted_s``, the
    recovery) and checks the acknowledged value survived (``acked_write_lost``). Then the killed
    member must be back as a replica of the new master (``restarted_s``): the supervisor's job, done
    by the fault itself, as an operator would, when the head has none (``new_pid``).
    Skipped on an unreplicated cluster.
    """

    name: ClassVar[str] = "redis-primary"
    recovery: ClassVar[str] = "kill -> a write to the shard (through its Sentinels) is accepted again"
    restart_timeout_s: float = 30.0

    def fire(self, rng: random.Random, ctx: FaultContext) -> dict[str, Any]:
        handle = ctx.handle
        t0 = time.monotonic()
        if not handle.sentinels:
            return self._record(t0, target_pid=None,
                                skipped="the cluster's shards are not replicated (run with --redis-replicas 1)")
        reader = _redis(handle)
        try:
            rep = Replication.from_fields(reader.hgetall(keys.cluster_key()))
        finally:
            reader.close()
        if rep is None:
            return self._record(t0, target_pid=None, error="the cluster hash names no Sentinels")
        shard = rng.randrange(len(rep.masters))
        name = rep.masters[shard]
        view = sentinel.ask_sentinels(handle.sentinels, handle.password, name)
        port = None if view.master is None else int(view.master.rpartition(":")[2])
        target = next((r for r in live(handle, "redis") if port is not None and _port_of(r.pid) == port), None)
        if target is None or port is None:
            return self._record(t0, target_pid=None, shard=shard,
                                error=f"no recorded redis-server is the master {view.master} the Sentinels name")
        manager: Any = _sentinel_class(replication.sentinel_addresses(handle.sentinels),
                                       sentinel_kwargs=replication.sentinel_kwargs(handle.password))
        client = manager.master_for(name, password=handle.password, socket_timeout=1.0,
                                    socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
        member = redis.Redis(host="127.0.0.1", port=port, password=handle.password, socket_timeout=1.0,
                             socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
        try:
            before = int(client.incr(keys.failover_probe_key()))
            acked = int(client.wait(1, 1000))
            t0 = time.monotonic()
            died = _sigkill_and_wait(target)
            ctx.probe("actor", None)
            after: list[int] = []

            def accepted() -> bool:
                try:
                    after.append(int(client.incr(keys.failover_probe_key())))
                    return True
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    return False

            ok = _wait(accepted, self.restart_timeout_s, 0.01)
            accepted_s = time.monotonic() - t0 if ok else None
            new_master = sentinel.ask_sentinels(handle.sentinels, handle.password, name).master
            repaired_pid = self._repair(ctx, target.pid) if ok else None

            def replica_back() -> bool:
                try:
                    return bool(member.info("replication").get("role") == "slave")
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    return False

            back = _wait(replica_back, self.restart_timeout_s, 0.05)
            back_s = time.monotonic() - t0 if back else None
        finally:
            client.close()
            member.close()
            manager.close()
        settled = replication_settled(handle, self.restart_timeout_s) if back else None
        lost = bool(ok and acked >= 1 and after and after[0] <= before)
        error = None
        if not ok:
            error = f"shard {shard} accepted no write within {self.restart_timeout_s} s of its master's kill"
        elif lost:
            error = f"the write acknowledged by a replica (counter {before}) was lost in the failover ({after[0]})"
        elif not back:
            error = (f"the killed master :{port} did not come back as a replica within {self.restart_timeout_s} s: "
                     f"{NO_REDIS_SUPERVISOR}")
        elif settled is None:
            error = f"the replicated shards were not whole again within {self.restart_timeout_s} s of the failover"
        return self._record(t0, target_pid=target.pid, target_died=died, shard=shard, port=port,
                            new_master=new_master, new_pid=repaired_pid, counter_before=before, replicas_acked=acked,
                            counter_after=after[0] if after else None, acked_write_lost=lost,
                            accepted_s=None if accepted_s is None else _r(accepted_s),
                            restarted_s=None if back_s is None else _r(back_s),
                            settled_s=None if settled is None else _r(settled), error=error)


    def _repair(self, ctx: FaultContext, pid: int) -> int | None:
        """Without a supervisor (an unsupervised ``Cluster`` head), do what it would: start the killed
        member again through its own restart (which makes it the new master's replica); returns the
        new PID, or None when a supervisor is there to do it."""
        from rayredis import api

        handle = ctx.handle
        comp = next((c for c in handle.components.values() if c.proc.pid == pid), None)
        head = ctx.cluster.cluster.head_node if ctx.cluster.cluster is not None else None
        if api._supervisor is not None or (head is not None and head.supervisor is not None) or comp is None:
            return None

        def restart() -> int:
            deadline = time.monotonic() + self.restart_timeout_s
            while True:
                try:
                    proc = comp.restart()
                    break
                except sentinel.RestartDeferredError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            handle.track(comp.slot, comp.role, proc, comp.restart, comp.description)
            return proc.pid

        return ctx.cluster.ops.call(restart)


from chaos.partition import PartitionNode  # noqa: E402 - it builds on the helpers above

#: Every fault ``--faults`` accepts, by name.
FAULTS: dict[str, type[Fault]] = {f.name: f for f in (KillWorker, KillGcs, KillNode, Pause, KillRaylet, KillRedis,
                                                      KillRedisPrimary, PartitionNode)}

#: Faults on the roadmap that are not implemented yet (see chaos/README.md).
PLANNED: dict[str, str] = {}


def make_faults(names: list[str], *, gcs_downtime_s: float = 1.0, pause_s: tuple[float, float] = (0.5, 2.0),
                restart_timeout_s: float = 15.0,
                partition_s: tuple[float, float] = PartitionNode.DEFAULT_RANGE_S) -> list[Fault]:
    """Fault objects for ``names`` (``["gcs", "worker"]``; ``"all"`` is every kind); unknown or
    planned names raise."""
    out: list[Fault] = []
    for n in names:
        if n == KillGcs.name:
            out.append(KillGcs(downtime_s=gcs_downtime_s))
        elif n == Pause.name:
            out.append(Pause(min_s=pause_s[0], max_s=pause_s[1]))
        elif n == KillRaylet.name:
            out.append(KillRaylet(restart_timeout_s=restart_timeout_s))
        elif n == KillRedis.name:
            out.append(KillRedis(restart_timeout_s=restart_timeout_s))
        elif n == KillRedisPrimary.name:
            out.append(KillRedisPrimary(restart_timeout_s=max(restart_timeout_s, 30.0)))
        elif n == PartitionNode.name:
            out.append(PartitionNode(min_s=partition_s[0], max_s=partition_s[1]))
        elif n in FAULTS:
            out.append(FAULTS[n]())
        elif n in PLANNED:
            raise ValueError(f"The fault {n!r} is planned but not implemented: {PLANNED[n]}.")
        else:
            raise ValueError(f"Unknown fault {n!r}; choose from {', '.join(FAULTS)} (or all).")
    if len({f.name for f in out}) != len(out):
        raise ValueError(f"a fault kind is listed twice in {names}")
    return out


@dataclass(frozen=True)
class Planned:
    """One scheduled fault: fire ``kind`` at ``t`` seconds after the run starts."""

    index: int
    t: float
    kind: str


def plan_schedule(seed: int, kinds: list[str], mean_interval_s: float, start_s: float, end_s: float,
                  order: str = "cycle") -> list[Planned]:
    """Fault times in ``[start_s, end_s]`` with exponential gaps of mean ``mean_interval_s``.

    ``order="cycle"`` fires every kind once per round, in a freshly shuffled order each round (so
    each kind fires as soon as there are ``len(kinds)`` faults); ``"random"`` picks each kind
    independently.
    """
    if mean_interval_s <= 0:
        raise ValueError("mean_interval_s must be > 0")
    if order not in ("cycle", "random"):
        raise ValueError(f"order must be 'cycle' or 'random', not {order!r}")
    rng = random.Random(seed)
    out: list[Planned] = []
    t = start_s
    bag: list[str] = []
    while kinds:
        t += rng.expovariate(1.0 / mean_interval_s)
        if t > end_s:
            break
        if order == "random":
            kind = rng.choice(kinds)
        else:
            if not bag:
                bag = list(kinds)
                rng.shuffle(bag)
            kind = bag.pop()
        out.append(Planned(len(out), round(t, 4), kind))
    return out


def fault_rng(seed: int, index: int) -> random.Random:
    """The generator a fault uses for its own choices (its target): independent of the schedule."""
    return random.Random(f"chaos:{seed}:{index}")

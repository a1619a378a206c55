"""Starting a replicated head's shard members and Sentinels, and restarting a dead member only as Sentinel allows."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rayredis._private import sentinel
from rayredis._private.redis_server import free_port, start_redis
from rayredis.config import get_config
from rayredis.exceptions import RaySystemError
from rayredis.store.replication import Replication, host_port, master_name

if TYPE_CHECKING:
    from rayredis._private.node import NodeHandle

logger = logging.getLogger(__name__)


@dataclass
class ReplicatedShards:
    """The addresses of a replicated head: ``members[i][m]`` is the port of shard ``i``'s member ``m``
    (member 0 is the first master), ``sentinel_ports`` those of the Sentinels."""

    layout: sentinel.Layout
    members: list[list[int]]
    sentinel_ports: list[int]
    advertised: str  # the host others reach these at
    local: str  # the host we reach them at
    myids: list[str] = field(default_factory=list)

    @classmethod
    def plan(cls, layout: sentinel.Layout, shard_ports: list[int], host: str, advertised: str,
             local: str) -> ReplicatedShards:
        members = [[p] + [free_port(host) for _ in range(layout.replicas)] for p in shard_ports]
        sentinel_ports = [free_port(host) for _ in range(layout.sentinels)]
        return cls(layout, members, sentinel_ports, advertised, local,
                   [sentinel.new_myid() for _ in sentinel_ports])

    def address(self, index: int, member: int) -> str:
        return f"{self.advertised}:{self.members[index][member]}"

    @property
    def sentinels(self) -> list[str]:
        """The Sentinels' addresses as clients reach them (recorded in the cluster hash)."""
        return [f"{self.advertised}:{p}" for p in self.sentinel_ports]

    @property
    def local_sentinels(self) -> list[str]:
        return [f"{self.local}:{p}" for p in self.sentinel_ports]

    def replication(self) -> Replication:
        return Replication(tuple(self.sentinels), tuple(master_name(i) for i in range(len(self.members))),
                           self.layout.replicas)

    def monitored(self) -> list[sentinel.Monitored]:
        return [sentinel.Monitored(master_name(i), self.address(i, 0),
                                   tuple(self.address(i, m) for m in range(1, len(ports))))
                for i, ports in enumerate(self.members)]


def start(handle: NodeHandle, rs: ReplicatedShards, host: str) -> None:
    """Start every member (replicas in sync before this returns), then the Sentinels, all supervised."""
    for i, ports in enumerate(rs.members):
        for m, port in enumerate(ports):
            restart = _member_starter(handle, rs, host, i, m)
            handle.track(f"redis-{i}" if m == 0 else f"redis-{i}-r{m}", "redis", restart(), restart,
                         f"Redis shard {i} member {m} (port {port})")
    for ports in rs.members:
        for port in ports[1:]:
            _wait_in_sync(rs.local, port, handle.password)
    cfg = get_config()
    monitored = rs.monitored()
    for k, port in enumerate(rs.sentinel_ports):
        peers = [(a, rs.myids[j]) for j, a in enumerate(rs.sentinels) if j != k]
        sentinel.write_sentinel_conf(handle.session_dir, k, sentinel.sentinel_conf(
            port=port, bind_host=host, password=handle.password, directory=sentinel.sentinel_dir(handle.session_dir, k),
            myid=rs.myids[k], shards=monitored, quorum=rs.layout.quorum, down_after_ms=cfg.sentinel_down_after_ms,
            peers=peers))
        restart = _sentinel_starter(handle, host, k, port)
        handle.track(f"sentinel-{k}", "sentinel", restart(), restart, f"Redis Sentinel {k} (port {port})")
    _wait_sentinels_ready(rs, handle.password)


def _member_starter(handle: NodeHandle, rs: ReplicatedShards, host: str, index: int,
                    member: int) -> Callable[[], subprocess.Popen[bytes]]:
    """Member ``member`` of shard ``index``: first as planned (member 0 the master, the others its
    replicas), then as :func:`sentinel.restart_plan` decides from what the Sentinels say."""
    port = rs.members[index][member]
    own = rs.address(index, member)
    started = [False]
    waiting_since: list[float | None] = [None]
    grace_s = sentinel.restart_grace_s(get_config().sentinel_down_after_ms)

    def start() -> subprocess.Popen[bytes]:
        if not started[0]:
            replicaof = None if member == 0 else rs.address(index, 0)
        else:
            now = time.monotonic()
            since = waiting_since[0] = waiting_since[0] or now
            view = sentinel.ask_sentinels(rs.local_sentinels, handle.password, master_name(index))
            # Whether another member can take over, asked of the members themselves: the Sentinels'
            # flags lag (a replica restarted a moment ago may still be "s_down" for them). One that
            # answers as a master counts too: it is being promoted, before the Sentinels say so.
            others = [p for m, p in enumerate(rs.members[index]) if m != member]
            live = sum(1 for p in others if _answers(rs.local, p, handle.password))
            plan = sentinel.restart_plan(own, dataclasses.replace(view, live_replicas=live), now - since, grace_s)
            if plan.role is sentinel.Role.WAIT:
                raise sentinel.RestartDeferredError(plan.reason)
            replicaof = plan.replicaof
            logger.warning("restarting Redis shard %d member %d as %s (%s)", index, member, plan.role.value,
                           plan.reason)
        # A member coming back as a replica holds only its own AOF until it has resynced: not
        # promotable until then (replica-priority 0), so a failover in between cannot lose the
        # writes made since it died (bug P). Its first start is in sync before the Sentinels start.
        rejoining = started[0] and replicaof is not None
        proc = start_redis(handle.session_dir, port, handle.password, host, index, member=member,
                           replicaof=replicaof, die_with_parent=handle.bind_to_parent(),
                           announce_ip=rs.advertised if rs.advertised != rs.local else "",
                           replica_priority=0 if rejoining else None)
        if rejoining:
            threading.Thread(target=_promotable_once_synced, args=(rs.local, port, handle.password, proc),
                             name=f"redis-{index}-{member}-sync", daemon=True).start()
        started[0] = True
        waiting_since[0] = None
        return proc
    return start


def _promotable_once_synced(host: str, port: int, password: str, proc: subprocess.Popen[bytes]) -> None:
    """Give the rejoining replica at ``port`` its promotable priority back once it has resynced
    (:func:`sentinel.synced`); gives up when its process exits first."""
    client = _client(host, port, password)
    try:
        while proc.poll() is None:
            try:
                if sentinel.synced(client.info("replication")):
                    client.config_set("replica-priority", sentinel.PROMOTABLE_PRIORITY)
                    logger.info("Redis member on port %d has resynced: promotable again", port)
                    return
            except (redis.exceptions.RedisError, OSError):
                pass
            time.sleep(0.05)
    finally:
        client.close()


def _sentinel_starter(handle: NodeHandle, host: str, index: int, port: int) -> Callable[[], subprocess.Popen[bytes]]:
    def start() -> subprocess.Popen[bytes]:
        return sentinel.start_sentinel(handle.session_dir, index, port, host, handle.password,
                                       die_with_parent=handle.bind_to_parent())
    return start


def _client(host: str, port: int, password: str) -> redis.Redis:
    return redis.Redis(host=host, port=port, password=password, socket_timeout=2.0, socket_connect_timeout=1.0,
                       retry=Retry(NoBackoff(), 0), decode_responses=True)


def _answers(host: str, port: int, password: str) -> bool:
    client = _client(host, port, password)
    try:
        return bool(client.ping())
    except (redis.exceptions.RedisError, OSError):
        return False
    finally:
        client.close()


def _poll(host: str, port: int, password: str, ready: Callable[[redis.Redis], bool], deadline: float,
          failure: str) -> None:
    """Ask the member or Sentinel at ``port`` until ``ready(client)``; raise ``failure`` past ``deadline``."""
    client = _client(host, port, password)
    try:
        while True:
            try:
                if ready(client):
                    return
            except (redis.exceptions.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RaySystemError(failure)
            time.sleep(0.02)
    finally:
        client.close()


def _wait_in_sync(host: str, port: int, password: str, timeout_s: float = 60.0) -> None:
    """Until the replica at ``port`` has its master's data (a write WAITed for it then succeeds)."""
    _poll(host, port, password, lambda c: bool(c.info("replication").get("master_link_status") == "up"),
          time.monotonic() + timeout_s,
          f"The Redis replica on port {port} did not sync with its master within {timeout_s:g} s")


def _wait_sentinels_ready(rs: ReplicatedShards, password: str, timeout_s: float = 60.0) -> None:
    """Until every Sentinel knows every shard's replicas and its peers: a failover can happen from then on."""
    want_peers = len(rs.sentinel_ports) - 1

    def ready(client: redis.Redis) -> bool:
        masters: Any = client.sentinel_masters()
        return len(masters) == len(rs.members) and all(
            int(str(m.get("num-slaves", 0))) >= rs.layout.replicas
            and int(str(m.get("num-other-sentinels", 0))) >= want_peers for m in masters.values())

    deadline = time.monotonic() + timeout_s
    for address in rs.local_sentinels:
        host, port = host_port(address)
        _poll(host, port, password, ready, deadline, f"The Redis Sentinel at {address} did not see every shard's "
              f"replicas and its {want_peers} peers within {timeout_s:g} s")

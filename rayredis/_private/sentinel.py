"""Replicated Redis shards: the layout of members and Sentinels, their configs, and whom a restarted member follows."""

from __future__ import annotations

import enum
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rayredis._private import process
from rayredis._private.redis_server import conf_quote, find_redis_server, port_in_use
from rayredis.exceptions import RaySystemError
from rayredis.store.replication import host_port


def quorum(num_sentinels: int) -> int:
    """Sentinels that must agree a master is down before one of them fails it over: a majority,
    so no minority of Sentinels can promote a replica on its own (1 of 1, 2 of 3, 3 of 5)."""
    if num_sentinels < 1:
        raise ValueError(f"num_sentinels must be at least 1 (got {num_sentinels}).")
    return num_sentinels // 2 + 1


def failover_timeout_ms(down_after_ms: int) -> int:
    """Sentinel's ``failover-timeout``: a failover not done by then is abandoned and retried
    (by the same Sentinel after twice this). Generous against a slow, loaded host."""
    return max(5000, 5 * down_after_ms)


def restart_grace_s(down_after_ms: int) -> float:
    """How long a dead master's restart waits for a failover before it comes back as a master:
    detection plus two failover timeouts (Sentinel retries a failed failover after twice the
    timeout), so it does not return as a master just as a late failover promotes its replica."""
    return (down_after_ms + 2 * failover_timeout_ms(down_after_ms)) / 1000.0


@dataclass(frozen=True)
class Layout:
    """How many processes a replicated head runs: ``shards`` shards of ``replicas + 1`` members
    each, and ``sentinels`` Sentinels that watch every shard."""

    shards: int
    replicas: int
    sentinels: int

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError(f"num_redis_shards must be at least 1 (got {self.shards}).")
        if self.replicas < 0:
            raise ValueError(f"redis_replicas must not be negative (got {self.replicas}).")
        quorum(self.sentinels)

    @property
    def replicated(self) -> bool:
        return self.replicas > 0

    @property
    def members(self) -> int:
        """redis-server processes per shard."""
        return self.replicas + 1

    @property
    def redis_processes(self) -> int:
        return self.shards * self.members

    @property
    def sentinel_processes(self) -> int:
        return self.sentinels if self.replicated else 0

    @property
    def quorum(self) -> int:
        return quorum(self.sentinels)


@dataclass(frozen=True)
class Monitored:
    """One shard as the Sentinels watch it: its master name, first master and replicas."""

    name: str
    master: str  # host:port
    replicas: tuple[str, ...]


def sentinel_conf(*, port: int, bind_host: str, password: str, directory: str, myid: str,
                  shards: list[Monitored], quorum: int, down_after_ms: int,
                  peers: list[tuple[str, str]]) -> str:
    """A Sentinel's config file. ``peers`` are the other Sentinels (``host:port``, myid): declared
    as known, like the replicas, so a failover needs no discovery first (no hello round after start).

    ``requirepass`` protects the Sentinel, and (Redis >= 6.2) is also what it sends to its peers, so
    every Sentinel of the cluster has the cluster's password; ``auth-pass`` is how it logs in to the shards.
    """
    lines = [f"port {port}", f"bind {bind_host}", "protected-mode no", "daemonize no", f'dir "{directory}"',
             f"requirepass {conf_quote(password)}", f"sentinel myid {myid}", "sentinel resolve-hostnames yes"]
    for shard in shards:
        host, mport = host_port(shard.master)
        n = shard.name
        lines += [f"sentinel monitor {n} {host} {mport} {quorum}", f"sentinel auth-pass {n} {conf_quote(password)}",
                  f"sentinel down-after-milliseconds {n} {down_after_ms}",
                  f"sentinel failover-timeout {n} {failover_timeout_ms(down_after_ms)}",
                  f"sentinel parallel-syncs {n} 1"]
        for replica in shard.replicas:
            rhost, rport = host_port(replica)
            lines.append(f"sentinel known-replica {n} {rhost} {rport}")
        for peer, peer_id in peers:
            phost, pport = host_port(peer)
            lines.append(f"sentinel known-sentinel {n} {phost} {pport} {peer_id}")
    return "\n".join(lines) + "\n"


def new_myid() -> str:
    """A Sentinel run ID (40 hex characters)."""
    return secrets.token_hex(20)


def sentinel_dir(session_dir: str, index: int) -> str:
    return os.path.join(session_dir, f"sentinel-{index}")


def write_sentinel_conf(session_dir: str, index: int, text: str) -> str:
    """Write Sentinel ``index``'s config (mode 0600: it holds the password); returns its path."""
    directory = sentinel_dir(session_dir, index)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "sentinel.conf")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def start_sentinel(session_dir: str, index: int, port: int, bind_host: str, password: str,
                   die_with_parent: bool = False) -> subprocess.Popen[bytes]:
    """Start Sentinel ``index`` from its config file and wait until it answers PING.

    Sentinel rewrites that file with what it learns (the current masters, replicas, peers and the
    epoch), so a restart by the supervisor resumes from it: the config is written once, at the
    head's start (:func:`write_sentinel_conf`), never again.
    """
    if port_in_use(bind_host, port):
        raise RaySystemError(f"rayredis is trying to start a Redis Sentinel at {bind_host}:{port}, but something "
                             "is already listening there.")
    conf = os.path.join(sentinel_dir(session_dir, index), "sentinel.conf")
    proc = process.spawn([find_redis_server(), conf, "--sentinel", "--loglevel", "notice",
                          "--set-proc-title", "no"], session_dir,
                         "sentinel", f"sentinel-{index}", die_with_parent=die_with_parent)
    client = redis.Redis(host=bind_host, port=port, password=password, socket_connect_timeout=1.0,
                         retry=Retry(NoBackoff(), 0))
    deadline = time.monotonic() + 30.0
    try:
        while True:
            try:
                client.ping()
                return proc
            except redis.exceptions.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                    process.forget_pid(session_dir, proc.pid)
                    raise RaySystemError(f"Redis Sentinel on port {port} did not start; see "
                                         f"{session_dir}/logs/sentinel-{index}.err") from None
                time.sleep(0.01)
    finally:
        client.close()


@dataclass(frozen=True)
class SentinelView:
    """What the Sentinels say about one shard: its master now, and how many replicas look usable
    (the caller may count those itself: the Sentinels' own flags lag behind a restart)."""

    master: str | None  # host:port, None when no Sentinel answered
    live_replicas: int


def ask_sentinels(sentinels: list[str], password: str, name: str) -> SentinelView:
    """What the Sentinels say about master ``name`` (one try each, short timeouts): the answer of
    the highest ``config-epoch``, so one that missed the last failover (down, or just restarted from
    an older config) cannot name a stale master."""
    best: tuple[int, SentinelView] | None = None
    for address in sentinels:
        host, port = host_port(address)
        client = redis.Redis(host=host, port=port, password=password, socket_timeout=1.0,
                             socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0), decode_responses=True)
        try:
            state: Any = client.sentinel_master(name)
            replicas: Any = client.sentinel_slaves(name)
        except (redis.exceptions.RedisError, OSError):
            continue
        finally:
            client.close()
        if not state or "ip" not in state:
            continue
        live = sum(1 for r in replicas if not _down(str(r.get("flags", ""))))
        view = SentinelView(f"{state['ip']}:{state['port']}", live)
        epoch = int(state.get("config-epoch", 0))
        if best is None or epoch > best[0]:
            best = (epoch, view)
    return best[1] if best is not None else SentinelView(None, 0)


def _down(flags: str) -> bool:
    """A replica the Sentinels consider down. (Not ``disconnected``: that flag comes and goes with a
    Sentinel's own link to the replica, which it reopens now and then, also around a failover.)"""
    return any(f in flags.split(",") for f in ("s_down", "o_down"))


class Role(enum.Enum):
    REPLICA = "replica"  # start it as a replica of the master the Sentinels name
    MASTER = "master"  # start it as a master with its AOF (no failover is coming)
    WAIT = "wait"  # not yet: the Sentinels will fail over to a replica first


@dataclass(frozen=True)
class RestartPlan:
    role: Role
    replicaof: str | None = None
    reason: str = ""


def restart_plan(own: str, view: SentinelView, waited_s: float, grace_s: float) -> RestartPlan:
    """How to restart a dead member of a replicated shard (``own``: its ``host:port``), sans-I/O.

    Never as a master that fights Sentinel: if the Sentinels name another master, it comes back as
    that master's replica (it loads its AOF, then resyncs from the master). If they still name this
    member while a usable replica exists, a failover is coming: wait (``WAIT``), for at most
    ``grace_s``. Without a usable replica, or when no failover happened within the grace, or
    when no Sentinel answers for that long, it comes back as a master on its AOF, as an
    unreplicated shard would (the Sentinels then see their master return).
    """
    if view.master is not None and not same_member(view.master, own):
        return RestartPlan(Role.REPLICA, view.master, f"the Sentinels name {view.master} the master")
    if view.master is not None and view.live_replicas == 0:
        return RestartPlan(Role.MASTER, None, "no replica left to fail over to")
    if waited_s < grace_s:
        return RestartPlan(Role.WAIT, None, "waiting for the Sentinels to fail over"
                           if view.master is not None else "no Sentinel answers")
    return RestartPlan(Role.MASTER, None, f"no failover within {grace_s:g} s")


#: The ``replica-priority`` a restarted replica gets back once it holds its master's data (Redis's default).
PROMOTABLE_PRIORITY = 100


def synced(replication_info: dict[str, Any]) -> bool:
    """Whether a replica's ``INFO replication`` shows it holds its master's data: linked, and no
    full sync in progress. Until then a restarted member must not be promotable: it holds only what
    its own AOF had when it died, and a failover to it would drop every write made since (bug P)."""
    return (str(replication_info.get("role")) == "slave"
            and str(replication_info.get("master_link_status")) == "up"
            and str(replication_info.get("master_sync_in_progress", "0")) == "0")


class RestartDeferredError(Exception):
    """Raised by a supervised process's restart that must not happen yet (a member of a replicated
    shard whose failover is pending): the supervisor tries again shortly, without counting a death."""


def same_member(a: str, b: str) -> bool:
    """Whether two ``host:port`` name the same member: every member of a cluster runs on its head, on
    a port of its own, while Sentinel may report a host as an IP where we wrote a name."""
    return host_port(a)[1] == host_port(b)[1]

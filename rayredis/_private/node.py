"""Starting the processes of a node (Redis shards, GCS, raylet) and waiting until they serve."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from rayredis._private import process, replicated_head, sentinel
from rayredis._private.redis_server import free_port, start_redis
from rayredis._private.session import new_session_dir
from rayredis.config import get_config
from rayredis.exceptions import RaySystemError
from rayredis.store import keys, tables
from rayredis.store.client import ShardedRedis
from rayredis.version import __version__

#: Starts a supervised process again with the arguments it was first started with.
Restart = Callable[[], "subprocess.Popen[bytes]"]


@dataclass
class Component:
    """One process of a node that its supervisor restarts when it dies: how to, and which runs now."""

    slot: str  # "redis-<index>", "gcs" or "raylet": one process per slot
    role: str  # the PID record's role
    proc: subprocess.Popen[bytes]
    restart: Restart
    description: str  # for messages: "Redis shard 0 (port 6379)", "The GCS", "The raylet (node ab12cd34)"


@dataclass
class NodeHandle:
    """What a started head or worker node is: its session, address and the processes we own."""

    session_dir: str
    address: str
    password: str
    node_id: str = ""
    procs: dict[str, list[int]] = field(default_factory=dict)
    #: The Popen objects of the processes above, kept for the handle's lifetime: a Popen collected
    #: while its process runs lands in ``subprocess._active``, and the next Popen anywhere in this
    #: process would then reap it behind the back of whoever watches its PID (and warn).
    popens: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    #: Children die with this process (clusters started by ``init()``; not by the CLI).
    die_with_parent: bool = False
    #: The node's supervised processes by slot (``_private/supervisor.py`` restarts them).
    components: dict[str, Component] = field(default_factory=dict, repr=False)
    #: The cluster's Redis Sentinels (``host:port``) when its shards are replicated, else empty:
    #: handed to the processes the node starts (``Config.redis_sentinels``).
    sentinels: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The environment of the node's GCS and raylet (and, inherited, its workers)."""
        env = {"RAYREDIS_REDIS_PASSWORD": self.password, "PYTHONUNBUFFERED": "1"}
        if self.sentinels:
            env["RAYREDIS_REDIS_SENTINELS"] = ",".join(self.sentinels)
        return env

    def store(self) -> ShardedRedis:
        """A connected client of the cluster (through its Sentinels when replicated)."""
        return ShardedRedis(self.address, self.password, sentinels=self.sentinels or None).connect()

    def track(self, slot: str, role: str, proc: subprocess.Popen[bytes], restart: Restart,
              description: str) -> None:
        """Own ``proc`` as the process of ``slot`` from now on, replacing (and forgetting, if it has
        exited) the previous one: a restart by the supervisor or by hand (``start_gcs``)."""
        old = self.components.get(slot)
        if old is not None and old.proc is not proc and old.proc.poll() is not None:
            self.forget(old.proc)
        self.components[slot] = Component(slot, role, proc, restart, description)
        self.procs.setdefault(role, []).append(proc.pid)
        if proc not in self.popens:
            self.popens.append(proc)

    def forget(self, proc: subprocess.Popen[bytes]) -> None:
        """Drop an exited (and reaped) process from the handle and from the session's PID records."""
        process.forget_pid(self.session_dir, proc.pid)
        for pids in self.procs.values():
            if proc.pid in pids:
                pids.remove(proc.pid)
        if proc in self.popens:
            self.popens.remove(proc)

    def collect(self) -> None:
        """Record the exit of the handle's stopped processes in their Popen objects (which would
        otherwise warn, when collected, that they never saw their child exit)."""
        for p in self.popens:
            try:
                p.wait(timeout=5.0)  # stopped already: this only reaps it (a signal may still be in flight)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5.0)

    def bind_to_parent(self) -> bool:
        # PR_SET_PDEATHSIG fires when the spawning *thread* exits, so bind only from threads that
        # live as long as the cluster: the main thread, or a supervisor marked ``cluster_lifetime``.
        t = threading.current_thread()
        return self.die_with_parent and (t is threading.main_thread() or getattr(t, "cluster_lifetime", False))


def start_head(*, port: int = 0, num_redis_shards: int | None = None, num_cpus: float | None = None,
               num_gpus: float = 0, resources: dict[str, float] | None = None, object_store_memory: int = 0,
               bind_host: str | None = None, password: str | None = None,
               die_with_parent: bool = False, node_ip: str = "", redis_replicas: int | None = None) -> NodeHandle:
    """Start Redis shards, the GCS and a raylet on this machine; returns once all three serve.

    Servers listen on ``bind_host``; the addresses written to Redis for other processes use
    ``node_ip`` (needed when binding 0.0.0.0 in a container: others reach the head by its name).
    ``redis_replicas`` (default ``Config.redis_replicas``): replicas per shard, and Sentinels
    (``Config.num_sentinels``) that fail a dead master over (``replicated_head.py``).
    """
    cfg = get_config()
    host = bind_host or cfg.bind_host
    advertised = node_ip or (host if host not in ("0.0.0.0", "::") else "127.0.0.1")
    local = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
    n = num_redis_shards or cfg.num_redis_shards
    if n < 1:
        raise ValueError(f"num_redis_shards must be at least 1 (got {n}).")
    layout = sentinel.Layout(n, cfg.redis_replicas if redis_replicas is None else redis_replicas, cfg.num_sentinels)
    session_dir = new_session_dir()
    password = password or secrets.token_hex(16)
    token = secrets.token_hex(24)
    ports = [port or free_port(host)] + [free_port(host) for _ in range(n - 1)]
    addresses = [f"{advertised}:{p}" for p in ports]
    handle = NodeHandle(session_dir, addresses[0], password, die_with_parent=die_with_parent)
    try:
        fields: dict[str, str] = {}
        if layout.replicated:
            rs = replicated_head.ReplicatedShards.plan(layout, ports, host, advertised, local)
            replicated_head.start(handle, rs, host)
            handle.sentinels = rs.sentinels
            fields = rs.replication().fields()
        else:
            for i, p in enumerate(ports):
                restart = _redis_starter(handle, p, host, i)
                handle.track(f"redis-{i}", "redis", restart(), restart, f"Redis shard {i} (port {p})")
        data_shards = addresses[1:] if n > 1 else addresses[:1]
        primary = redis.Redis(host=local, port=ports[0], password=password)
        mapping: Any = {"shards": json.dumps(data_shards), "token": token, "session_dir": session_dir,
                        "version": __version__, "created": str(time.time()), **fields}
        primary.hset(keys.cluster_key(), mapping=mapping)
        if layout.replicated:
            primary.wait(layout.replicas, 10_000)  # the shard map is on the replicas before anyone reads it
        primary.close()
        start_gcs(handle, host, node_ip=advertised)
        handle.node_id = start_raylet(handle, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
                                      object_store_memory=object_store_memory, head=True, bind_host=host,
                                      node_ip=advertised)
        wait_for_gcs(handle)
        return handle
    except BaseException:
        process.stop_recorded(session_dir, grace_s=1.0, force=True)
        for proc in handle.popens:
            proc.poll()
        raise


def _redis_starter(handle: NodeHandle, port: int, host: str, index: int) -> Restart:
    """Start shard ``index`` on ``port`` with its data dir (first start, or a restart from its AOF)."""
    def start() -> subprocess.Popen[bytes]:
        return start_redis(handle.session_dir, port, handle.password, host, index,
                           die_with_parent=handle.bind_to_parent())
    return start


def start_gcs(handle: NodeHandle, bind_host: str | None = None, node_ip: str = "") -> int:
    """Start (or restart) the GCS service for ``handle``'s cluster; returns its PID.

    The GCS keeps no state of its own, so a replacement simply rereads Redis. Only the GCS holding
    the lease in Redis acts: one started while another is alive waits as a standby and takes over
    once the other's lease lapses (``gcs_lease_s`` after its last renewal). Its PID is recorded in
    the session like every process, so ``rayredis stop`` and ``shutdown()`` stop a standby too.
    """
    env = handle.env()
    args = process.python_module_args("rayredis.gcs", "--redis-address", handle.address,
                                      "--session-dir", handle.session_dir, "--bind-host",
                                      bind_host or get_config().bind_host,
                                      *(["--node-ip", node_ip] if node_ip else []))

    def start() -> subprocess.Popen[bytes]:
        return process.spawn(args, handle.session_dir, "gcs", "gcs_server", env=env,
                             die_with_parent=handle.bind_to_parent())

    gcs = start()
    handle.track("gcs", "gcs", gcs, start, "The GCS")
    return gcs.pid


def start_raylet(handle: NodeHandle, *, num_cpus: float | None, num_gpus: float = 0,
                 resources: dict[str, float] | None = None, object_store_memory: int = 0, head: bool = False,
                 bind_host: str | None = None, node_ip: str = "", wait: bool = True) -> str:
    """Start a raylet for ``handle``'s cluster and (with ``wait``) wait for its node entry to be ALIVE.

    Its supervisor restarts it with the same arguments, node ID included, so the node keeps its
    identity (``--node-id``): the node table entry is rewritten with the new address and PID.
    """
    cfg = get_config()
    node_id = secrets.token_hex(16)
    args = ["--redis-address", handle.address, "--session-dir", handle.session_dir, "--node-id", node_id,
            "--num-cpus", str(num_cpus if num_cpus is not None else float(os.cpu_count() or 1)),
            "--num-gpus", str(num_gpus or 0), "--resources", json.dumps(resources or {}),
            "--object-store-memory", str(int(object_store_memory or 0)),
            "--bind-host", bind_host or cfg.bind_host]
    if node_ip:
        args += ["--node-ip", node_ip]
    if head:
        args.append("--head")
    store = handle.store()
    if store.replication is not None:
        handle.sentinels = list(store.replication.sentinels)  # a node joining a replicated cluster
    env = handle.env()

    def start() -> subprocess.Popen[bytes]:
        return process.spawn(process.python_module_args("rayredis.raylet", *args), handle.session_dir, "raylet",
                             f"raylet-{node_id[:8]}", env=env, die_with_parent=handle.bind_to_parent())

    try:
        proc = start()
        handle.track("raylet", "raylet", proc, start, f"The raylet (node {node_id[:8]})")
        if not wait:
            return node_id
        client = store.primary
        deadline = time.monotonic() + 60.0
        while not _ask(lambda: tables.node_alive(client, node_id)):
            if proc.poll() is not None:
                raise RaySystemError(f"The raylet exited with code {proc.returncode} during startup; see "
                                     f"{handle.session_dir}/logs/raylet-{node_id[:8]}.err and raylet.log")
            if time.monotonic() > deadline:
                raise RaySystemError("The raylet did not register within 60 s; see "
                                     f"{handle.session_dir}/logs/raylet.log")
            time.sleep(0.01)
    finally:
        store.close()
    return node_id


def start_worker_node(address: str, password: str, *, num_cpus: float | None, num_gpus: float = 0,
                      resources: dict[str, float] | None = None, object_store_memory: int = 0,
                      die_with_parent: bool = False, wait: bool = True,
                      sentinels: list[str] | None = None) -> NodeHandle:
    """Start one raylet joining the cluster at ``address``, in a session directory of its own
    (``sentinels``: a replicated cluster's, if known; else read from the cluster hash at ``address``).

    Several such nodes can share a host: each has its own node ID, socket, port, object-store
    segment prefix, logs and PID records, so each can be stopped without touching the others.
    """
    session_dir = new_session_dir()
    # Session names carry the second, our PID and 2 random bytes: never share another node's directory.
    while os.listdir(os.path.join(session_dir, "pids")) or os.listdir(os.path.join(session_dir, "logs")):
        session_dir = new_session_dir()
    handle = NodeHandle(session_dir, address, password, die_with_parent=die_with_parent,
                        sentinels=list(sentinels or []))
    try:
        handle.node_id = start_raylet(handle, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
                                      object_store_memory=object_store_memory, wait=wait)
    except BaseException:
        process.stop_recorded(session_dir, grace_s=1.0, force=True)
        handle.collect()
        raise
    return handle


#: Ray's dashboard port, the default of ``start_dashboard``.
DASHBOARD_PORT = 8265


def start_dashboard(handle: NodeHandle, host: str | None = None, port: int = DASHBOARD_PORT, node_ip: str = "",
                    timeout_s: float = 20.0) -> str:
    """Start the dashboard (``python -m rayredis.dashboard``) of ``handle``'s cluster; returns its URL
    once it serves (port 0: a free one). It gets the Redis password from its environment, never argv.

    Its PID is recorded in the session, so ``shutdown()`` and ``rayredis stop`` stop it; it is not
    supervised (a dashboard that dies is not worth giving up the node for). Raises ``RaySystemError``
    when it exits first (the port is taken, aiohttp is missing) or does not serve within ``timeout_s``.
    """
    args = process.python_module_args("rayredis.dashboard", "--redis-address", handle.address, "--host",
                                      host or get_config().bind_host, "--port", str(port), "--session-dir",
                                      handle.session_dir, *(["--node-ip", node_ip] if node_ip else []))
    proc = process.spawn(args, handle.session_dir, "dashboard", "dashboard", env=handle.env(),
                         die_with_parent=handle.bind_to_parent())
    handle.procs.setdefault("dashboard", []).append(proc.pid)
    handle.popens.append(proc)
    store = handle.store()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            entry = _ask(lambda: store.primary.hgetall(keys.dashboard_key())) or {}
            if entry.get(b"pid") == str(proc.pid).encode():
                return str(entry.get(b"url", b"").decode())
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        store.close()
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    handle.forget(proc)
    log = os.path.join(handle.session_dir, "logs", "dashboard")
    raise RaySystemError(f"The dashboard did not start (exit code {proc.returncode}); see {log}.log and {log}.err")


def wait_for_gcs(handle: NodeHandle, timeout_s: float = 60.0) -> None:
    store = handle.store()
    client = store.primary
    try:
        deadline = time.monotonic() + timeout_s
        while not _ask(lambda: client.hget(keys.cluster_key(), "gcs_address")):
            if time.monotonic() > deadline:
                raise RaySystemError(f"The GCS did not start within {timeout_s} s; see "
                                     f"{handle.session_dir}/logs/gcs_server.err")
            time.sleep(0.01)
    finally:
        store.close()


def _ask(read: Callable[[], Any]) -> Any:
    """One poll of a startup wait: a Redis primary that is restarting (its supervisor is on it)
    counts as "not yet", so the wait's own deadline bounds it."""
    try:
        return read()
    except (redis.ConnectionError, redis.TimeoutError):
        return None

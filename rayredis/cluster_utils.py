"""Several rayredis nodes on one host for tests, with the interface of Ray's ``ray.cluster_utils.Cluster``."""

from __future__ import annotations

import atexit
import logging
import math
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

import rayredis
from rayredis._private import node as node_mod
from rayredis._private import process, session, worker_context
from rayredis._private.supervisor import NodeSupervisor
from rayredis.config import get_config
from rayredis.store import keys, tables
from rayredis.store.client import parse_address

if TYPE_CHECKING:
    from rayredis.api import RayContext

logger = logging.getLogger(__name__)

#: Ray's per-node defaults in ``Cluster.add_node``.
_DEFAULT_NUM_CPUS = 1
_DEFAULT_OBJECT_STORE_MEMORY = 150 * 1024 * 1024

#: ``RayParams`` keys that only tune Ray's own processes (ports, dashboard, logging, system config):
#: accepted so Ray tests run unchanged, and ignored. Every port here is picked free anyway.
_IGNORED_NODE_ARGS = frozenset({
    "_system_config", "redis_address", "gcs_address", "redis_port", "redis_shard_ports", "object_manager_port",
    "node_manager_port", "gcs_server_port", "min_worker_port", "max_worker_port", "worker_port_list",
    "ray_client_server_port", "runtime_env_agent_port", "dashboard_agent_listen_port", "metrics_agent_port",
    "metrics_export_port", "include_dashboard", "dashboard_host", "dashboard_port", "webui", "redirect_output",
    "log_to_stderr", "include_log_monitor", "no_monitor", "autoscaling_config", "ray_debugger_external",
    "tracing_startup_hook", "redis_max_clients", "redis_username", "enable_object_reconstruction",
    "session_name", "cluster_id", "node_name", "plasma_store_socket_name", "raylet_socket_name",
    "runtime_env_dir_name", "proxy_server_url",
})

#: ``RayParams`` keys whose effect rayredis does not have: accepted only when unset (None, empty, False).
_UNSUPPORTED_NODE_ARGS = frozenset({
    "labels", "env_vars", "temp_dir", "plasma_directory", "object_spilling_directory", "huge_pages",
    "resource_isolation_config", "node_id", "worker_path", "setup_worker_path", "external_addresses",
})

_USED_NODE_ARGS = frozenset({"num_cpus", "num_gpus", "resources", "memory", "object_store_memory",
                             "num_redis_shards", "redis_password", "node_ip_address", "redis_replicas"})

#: Resources set through their own argument, as in Ray.
_RESERVED_RESOURCES = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory",
                       "object_store_memory": "object_store_memory"}

_LOCAL_IPS = (None, "", "127.0.0.1", "localhost")

#: Set while a Cluster has a head, so ``init()``, ``init(address=cluster.address)`` (which needs the
#: password) and ``rayredis status`` find it from this process and its children, as Ray's address file does.
_ENV_ADDRESS, _ENV_PASSWORD = "RAYREDIS_ADDRESS", "RAYREDIS_REDIS_PASSWORD"


@dataclass(frozen=True)
class _NodeArgs:
    num_cpus: float
    num_gpus: float
    resources: dict[str, float]
    object_store_memory: int
    num_redis_shards: int | None
    redis_password: str | None
    redis_replicas: int | None = None


def _quantity(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    if value < 0:
        raise ValueError(f"Resource quantities must be nonnegative. Violated by {name}={value!r}.")
    return float(value)


def _parse_node_args(node_args: dict[str, Any]) -> _NodeArgs:
    """Check ``add_node``'s keywords as Ray's ``RayParams`` would (before any process starts)."""
    for key in sorted(node_args):
        if key not in _USED_NODE_ARGS | _IGNORED_NODE_ARGS | _UNSUPPORTED_NODE_ARGS:
            raise TypeError(f"add_node() got an unexpected keyword argument {key!r}.")
        if key in _UNSUPPORTED_NODE_ARGS and node_args[key]:
            raise ValueError(f"add_node(): {key} is not supported by rayredis.cluster_utils.Cluster.")
    ip = node_args.get("node_ip_address")
    if ip not in _LOCAL_IPS:
        raise ValueError(f"add_node(): every node of a Cluster runs on this host at 127.0.0.1; "
                         f"node_ip_address={ip!r} is not supported.")
    raw = node_args.get("resources") or {}
    if not isinstance(raw, dict):
        raise TypeError(f"resources must be a dict of resource name to quantity, got {type(raw).__name__}.")
    resources: dict[str, float] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"Resource names must be non-empty strings, got {name!r}.")
        if name in _RESERVED_RESOURCES:
            raise ValueError(f"{name!r} cannot be a custom resource; use {_RESERVED_RESOURCES[name]}= instead.")
        resources[name] = _quantity(f"resources[{name!r}]", value)
    if node_args.get("memory") is not None:
        resources["memory"] = _quantity("memory", node_args["memory"])
    num_cpus = node_args.get("num_cpus")
    num_gpus = node_args.get("num_gpus")
    store = node_args.get("object_store_memory")
    shards = node_args.get("num_redis_shards")
    if shards is not None and (isinstance(shards, bool) or not isinstance(shards, int) or shards < 1):
        raise ValueError(f"num_redis_shards must be an integer of at least 1, got {shards!r}.")
    replicas = node_args.get("redis_replicas")
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0):
        raise ValueError(f"redis_replicas must be a non-negative integer, got {replicas!r}.")
    password = node_args.get("redis_password")
    if password is not None and not isinstance(password, str):
        raise TypeError(f"redis_password must be a string, got {type(password).__name__}.")
    return _NodeArgs(
        num_cpus=_quantity("num_cpus", _DEFAULT_NUM_CPUS if num_cpus is None else num_cpus),
        num_gpus=_quantity("num_gpus", num_gpus or 0),
        resources=resources,
        object_store_memory=int(_quantity("object_store_memory",
                                          _DEFAULT_OBJECT_STORE_MEMORY if store is None else store)),
        num_redis_shards=shards, redis_password=password or None, redis_replicas=replicas)


@dataclass(eq=False)
class Node:
    """One node of a :class:`Cluster`: its raylet (and on the head, Redis and the GCS) in its own session."""

    handle: node_mod.NodeHandle
    is_head: bool
    #: Position in the order of ``add_node`` calls.
    index: int
    node_ip_address: str = "127.0.0.1"
    #: Restarts this node's dead processes (``Cluster(supervise=True)``), else None.
    supervisor: NodeSupervisor | None = None

    @property
    def node_id(self) -> str:
        """The hex node ID, equal to ``get_runtime_context().get_node_id()`` in this node's processes."""
        return self.handle.node_id

    @property
    def unique_id(self) -> str:
        return self.handle.node_id

    @property
    def address(self) -> str:
        """The cluster's address (its primary Redis shard), as Ray's ``Node.address`` is the GCS's."""
        return self.handle.address

    @property
    def session_dir(self) -> str:
        return self.handle.session_dir

    def pids(self, role: str | None = None) -> list[int]:
        """Live recorded processes of this node (``role``: "raylet", "worker", "gcs" or "redis")."""
        return sorted(r.pid for r in process.recorded(self.session_dir)
                      if process.is_alive(r) and (role is None or r.role == role))

    def any_processes_alive(self) -> bool:
        return bool(self.pids())

    def remaining_processes_alive(self) -> bool:
        """Whether every process this node started itself (raylet; head: Redis, GCS) still runs."""
        return all(p.poll() is None for p in self.handle.popens)


def _remove_node_shm(node: Node) -> None:
    """Unlink the object segments of ``node``'s raylet (its prefix, as ``raylet/server.py`` builds it)."""
    prefix = session.session_shm_tag(node.session_dir) + node.node_id[:6] + "_"
    try:
        names = os.listdir(session.SHM_DIR)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix):
            try:
                os.unlink(os.path.join(session.SHM_DIR, name))
            except OSError:
                pass


def _stop_nodes(nodes: Sequence[Node], graceful: bool) -> None:
    """Stop ``nodes``: their raylets first (all signalled, then awaited, through the Popen of our own
    child, so never a reused PID), then by recorded PID the rest of each session (workers that
    outlived their raylet; on the head the GCS, then Redis). Nothing is ever matched by name.

    ``graceful``: SIGTERM, so each raylet stops its workers and marks its node DEAD; SIGKILL after the
    grace period. Otherwise SIGKILL at once, as a crash: the GCS marks the node dead once its
    heartbeats stop for ``node_death_timeout_s``.
    """
    grace = get_config().stop_grace_period_s
    for n in nodes:  # no restarts from now on: these deaths are meant
        if n.supervisor is not None:
            n.supervisor.stop()
    raylets = [(n, p) for n in nodes for p in n.handle.popens if p.pid in n.handle.procs.get("raylet", [])]
    for _, p in raylets:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
    deadline = time.monotonic() + grace
    for n, p in raylets:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("raylet %s did not exit within %.1f s of SIGTERM; killing it", n.node_id[:8], grace)
            p.kill()
            p.wait()
        process.forget_pid(n.session_dir, p.pid)
    for n in nodes:
        process.stop_recorded(n.session_dir, grace_s=grace, force=not graceful)
        n.handle.collect()
        _remove_node_shm(n)
        if n.supervisor is not None:
            n.supervisor.join(timeout=5.0)


class Cluster:
    """A head and any number of worker nodes on this host, each in its own session directory.

    As in Ray: ``add_node`` on a cluster without a head starts the head (Redis, the GCS and a
    raylet), later calls start one raylet each. Processes are bound to the creating thread with
    ``PR_SET_PDEATHSIG`` when it is the main thread and ``shutdown_at_exit`` is set (which also
    registers :meth:`shutdown` with ``atexit``). While the head runs, ``RAYREDIS_ADDRESS`` and
    ``RAYREDIS_REDIS_PASSWORD`` point at it (restored when it stops), so ``init()`` and
    ``init(address=cluster.address)`` connect to it as they do in Ray.

    ``supervise`` (a rayredis addition; off by default, as Ray's test clusters restart nothing):
    each node gets a node supervisor, as ``rayredis start --block`` and ``init()`` have, which
    restarts its dead raylet (same node ID) and, on the head, its dead Redis shards (with their AOF
    data) and GCS. ``remove_node`` stops a node's supervisor before its processes.
    """

    def __init__(self, initialize_head: bool = False, connect: bool = False,
                 head_node_args: dict[str, Any] | None = None, shutdown_at_exit: bool = True,
                 supervise: bool = False):
        if not initialize_head and connect:
            raise RuntimeError("Cannot connect to uninitialized cluster.")
        self.supervise = supervise
        self.head_node: Node | None = None
        self.worker_nodes: set[Node] = set()
        self.redis_address: str | None = None
        self.redis_password: str | None = None
        self._shutdown_at_exit = shutdown_at_exit
        self._added = 0
        self._redis: redis.Redis | None = None
        self._saved_env: dict[str, str | None] = {}
        if shutdown_at_exit:
            atexit.register(self.shutdown)
        if initialize_head:
            self.add_node(**(head_node_args or {}))
            if connect:
                self.connect()

    @property
    def address(self) -> str | None:
        """``host:port`` of the primary Redis shard, for ``init(address=...)``; None before a head exists."""
        return self.head_node.address if self.head_node is not None else None

    @property
    def gcs_address(self) -> str | None:
        """Ray's name for :attr:`address` (rayredis drivers connect through Redis, not the GCS)."""
        return self.address

    @property
    def connected(self) -> bool:
        """Whether this process's driver is connected to this cluster."""
        cw = worker_context.global_worker
        if cw is None or self.head_node is None:
            return False
        return (cw.store.primary_address == self.address
                or cw.node_id.hex() in {n.node_id for n in self.list_all_nodes()})

    def connect(self, namespace: str | None = None) -> RayContext:
        """Connect this process to the cluster as a driver (``init(address=...)``); returns its context."""
        if self.address is None:
            raise RuntimeError("Cannot connect to uninitialized cluster: add a node first.")
        if self.connected:
            raise RuntimeError("This process is already connected to this cluster.")
        if worker_context.global_worker is not None:
            raise RuntimeError("This process is already connected to another cluster; call rayredis.shutdown() "
                               "before Cluster.connect().")
        return rayredis.init(address=self.address, namespace=namespace, _redis_password=self.redis_password)

    def add_node(self, wait: bool = True, **node_args: Any) -> Node:
        """Start a node (the head if there is none yet) and return it.

        ``node_args``: ``num_cpus`` (default 1), ``num_gpus``, ``resources``, ``memory``,
        ``object_store_memory`` (default 150 MiB); for the head also ``num_redis_shards``,
        ``redis_password`` and ``redis_replicas`` (replicas per shard, with Sentinel failover).
        Ray-only tuning keys such as ``_system_config`` are ignored; unknown keys
        raise ``TypeError``. ``wait``: return once the node is ALIVE in the node table (the head always
        waits: it starts the cluster).
        """
        args = _parse_node_args(node_args)
        die_with_parent = self._shutdown_at_exit
        if self.head_node is None:
            handle = node_mod.start_head(num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                                         resources=args.resources, object_store_memory=args.object_store_memory,
                                         num_redis_shards=args.num_redis_shards, password=args.redis_password,
                                         die_with_parent=die_with_parent, redis_replicas=args.redis_replicas)
            node = Node(handle, is_head=True, index=self._added)
            self.head_node = node
            self.redis_address, self.redis_password = handle.address, handle.password
            host, port = parse_address(handle.address)
            self._redis = redis.Redis(host=host, port=port, password=handle.password)
            self._saved_env = {k: os.environ.get(k) for k in (_ENV_ADDRESS, _ENV_PASSWORD)}
            os.environ.update({_ENV_ADDRESS: handle.address, _ENV_PASSWORD: handle.password})
        else:
            assert self.redis_address is not None and self.redis_password is not None
            handle = node_mod.start_worker_node(self.redis_address, self.redis_password, num_cpus=args.num_cpus,
                                                num_gpus=args.num_gpus, resources=args.resources,
                                                object_store_memory=args.object_store_memory,
                                                die_with_parent=die_with_parent, wait=wait,
                                                sentinels=self.head_node.handle.sentinels if self.head_node else [])
            node = Node(handle, is_head=False, index=self._added)
            self.worker_nodes.add(node)
        self._added += 1
        if self.supervise:
            node.supervisor = NodeSupervisor(handle)
            node.supervisor.start()
        return node

    def remove_node(self, node: Node, allow_graceful: bool = True) -> None:
        """Stop every process of ``node``; ``allow_graceful=False`` SIGKILLs its raylet and workers at once."""
        if node is not self.head_node and node not in self.worker_nodes:
            raise ValueError(f"Node {node.node_id} is not a node of this cluster (was it removed already?).")
        cw = worker_context.global_worker
        if cw is not None and cw.node_id.hex() == node.node_id:
            rayredis.shutdown()
            raise ValueError(f"Removing the node this driver is connected to ({node.node_id}) is not allowed because "
                             "it would break the driver, which has been disconnected (rayredis.shutdown()). "
                             "Remove another node, or use Cluster.shutdown().")
        _stop_nodes([node], graceful=allow_graceful)
        if node is self.head_node:
            self._forget_head()
        else:
            self.worker_nodes.discard(node)

    def _forget_head(self) -> None:
        head, self.head_node = self.head_node, None
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        if head is None:
            return
        ours = {_ENV_ADDRESS: head.address, _ENV_PASSWORD: head.handle.password}
        for key, previous in self._saved_env.items():
            if os.environ.get(key) != ours[key]:
                continue  # changed since (by another Cluster, or the user): not ours to restore
            if previous is None:
                del os.environ[key]
            else:
                os.environ[key] = previous
        self._saved_env = {}

    def wait_for_nodes(self, timeout: float = 30) -> None:
        """Wait until the live nodes in the node table are exactly this cluster's nodes.

        As in Ray, a node that died without ``remove_node`` makes this time out (``TimeoutError``).
        """
        if self._redis is None:
            raise RuntimeError("The cluster has no head node: call add_node() first.")
        expected = {n.node_id for n in self.list_all_nodes()}
        deadline = time.monotonic() + timeout
        # Subscribe, then rescan: every node join or death is announced on the node channel, so the
        # table is reread when it changes (and at least every second, in case a message is lost).
        client: Any = self._redis  # redis-py's pubsub() is untyped
        sub = client.pubsub(ignore_subscribe_messages=True)
        sub.subscribe(keys.node_channel())
        try:
            while True:
                live = {n.node_id for n in tables.alive(tables.read_nodes(self._redis))}
                if live == expected:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"Timed out while waiting for nodes to join: {len(live)} nodes are alive, "
                                       f"expecting {len(expected)} (not alive: {sorted(expected - live)}, "
                                       f"not of this cluster: {sorted(live - expected)}).")
                sub.get_message(timeout=min(left, 1.0))
        finally:
            sub.close()

    def list_all_nodes(self) -> list[Node]:
        """The head (if any), then the worker nodes in the order they were added."""
        head = [self.head_node] if self.head_node is not None else []
        return head + sorted(self.worker_nodes, key=lambda n: n.index)

    def remaining_processes_alive(self) -> bool:
        return all(n.remaining_processes_alive() for n in self.list_all_nodes())

    def shutdown(self) -> None:
        """Disconnect this process's driver if it is connected here, then stop every node (head last)."""
        if self.connected:
            rayredis.shutdown()
        _stop_nodes(sorted(self.worker_nodes, key=lambda n: n.index), graceful=True)
        self.worker_nodes.clear()
        if self.head_node is not None:
            _stop_nodes([self.head_node], graceful=True)
            self._forget_head()
        atexit.unregister(self.shutdown)


__all__ = ["Cluster", "Node"]

"""A ``Cluster`` whose nodes each run on a host of their own: a network namespace (``chaos/netns.py``).

Every node binds its servers (Redis shards, the GCS, the raylet, the raylet's link server) to its
host's address on the bridge and advertises that address, so everything between nodes crosses the
bridge, where :func:`chaos.netns.partition` can cut a host off. A node is started from a
:class:`HostThread` that has moved into its host's namespace: processes started there inherit it,
and ``PR_SET_PDEATHSIG`` binds them to that thread, which lives until after the shutdown (so a
SIGKILLed runner still takes every process with it). Stopping nodes (``remove_node``, ``shutdown``)
is ``Cluster``'s own: signals do not care about namespaces.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

from chaos import netns
from chaos.cluster import OpsThread
from rayredis._private import node as node_mod
from rayredis._private import process
from rayredis._private.session import new_session_dir
from rayredis.cluster_utils import Cluster, Node, _NodeArgs, _parse_node_args
from rayredis.store.client import parse_address


class HostThread(OpsThread):
    """An :class:`OpsThread` living inside ``host``'s network namespace."""

    def __init__(self, host: netns.Host) -> None:
        super().__init__()
        self.name = f"chaos-host-{host.name}"
        self.host = host
        self._entered = threading.Event()
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            os.close(netns.enter(self.host))  # this thread never goes back
        except BaseException as e:  # noqa: BLE001 - handed to start_in()
            self._error = e
            self._entered.set()
            return
        self._entered.set()
        super().run()

    def start_in(self) -> None:
        """Start the thread and return once it is inside its host (raises if it could not enter)."""
        self.start()
        self._entered.wait(30.0)
        if self._error is not None or not self._entered.is_set():
            raise netns.NetnsError(f"could not enter host {self.host.name} ({self.host.netns}): {self._error}")


def _start_worker_node(address: str, password: str, ip: str, args: _NodeArgs, wait: bool) -> node_mod.NodeHandle:
    """``node.start_worker_node`` binding the raylet to ``ip`` (run on the host that has ``ip``)."""
    session_dir = new_session_dir()
    while os.listdir(os.path.join(session_dir, "pids")) or os.listdir(os.path.join(session_dir, "logs")):
        session_dir = new_session_dir()
    handle = node_mod.NodeHandle(session_dir, address, password, die_with_parent=True)
    try:
        handle.node_id = node_mod.start_raylet(handle, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                                               resources=args.resources,
                                               object_store_memory=args.object_store_memory,
                                               bind_host=ip, node_ip=ip, wait=wait)
    except BaseException:
        process.stop_recorded(session_dir, grace_s=1.0, force=True)
        handle.collect()
        raise
    return handle


class NetnsCluster(Cluster):
    """``Cluster`` with one more keyword for :meth:`add_node`: ``host``, the node's ``netns.Host``.

    The first node added is the head. This process's driver connects with
    ``init(address=cluster.address, _redis_password=cluster.redis_password)`` from a thread that can
    reach the head's host (the chaos runner moves its main thread onto it).
    """

    def __init__(self) -> None:
        self.threads: dict[str, HostThread] = {}
        self.host_of: dict[str, str] = {}  # session dir -> host name
        super().__init__(initialize_head=False, shutdown_at_exit=True)

    def _thread(self, host: netns.Host) -> HostThread:
        t = self.threads.get(host.netns)
        if t is None or not t.is_alive():
            t = self.threads[host.netns] = HostThread(host)
            t.start_in()
        return t

    def add_node(self, wait: bool = True, **node_args: Any) -> Node:
        """Start a node on ``node_args["host"]`` (the head if there is none yet) and return it."""
        host = node_args.pop("host", None)
        if not isinstance(host, netns.Host):
            raise TypeError(f"NetnsCluster.add_node() needs host=<chaos.netns.Host>, got {host!r}")
        args = _parse_node_args(node_args)
        thread = self._thread(host)
        if self.head_node is None:
            handle = thread.call(lambda: node_mod.start_head(
                num_cpus=args.num_cpus, num_gpus=args.num_gpus, resources=args.resources,
                object_store_memory=args.object_store_memory, num_redis_shards=args.num_redis_shards,
                password=args.redis_password, bind_host=host.ip, node_ip=host.ip, die_with_parent=True))
            node = Node(handle, is_head=True, index=self._added, node_ip_address=host.ip)
            self.head_node = node
            self.redis_address, self.redis_password = handle.address, handle.password
            h, port = parse_address(handle.address)
            self._redis = redis.Redis(host=h, port=port, password=handle.password)
        else:
            address, password = self.redis_address, self.redis_password
            assert address is not None and password is not None
            handle = thread.call(lambda: _start_worker_node(address, password, host.ip, args, wait))
            node = Node(handle, is_head=False, index=self._added, node_ip_address=host.ip)
            self.worker_nodes.add(node)
        self.host_of[node.session_dir] = host.name
        self._added += 1
        return node

    def shutdown(self) -> None:
        """``Cluster.shutdown``, then the host threads end (after every process they started)."""
        try:
            super().shutdown()
        finally:
            for t in self.threads.values():
                if t.is_alive():
                    t.stop()

"""The chaos run's cluster: ``rayredis.cluster_utils.Cluster`` with one *slot* per node.

Every node gets two custom resources: ``chaos_slot_<k>`` (its slot, so the workload can place work on
every node) and ``chaos_node`` (for placement-group bundles). A node killed by a fault is replaced by
a new node that takes over its slot, so work pinned to the slot (tasks waiting to be retried, actors
waiting to be restarted, objects waiting to be rebuilt) finds a home again: the capacity comes back,
the node does not (it has a new node ID).

With ``netns`` every node runs on a host of its own (``chaos/netns_cluster.py``: a network namespace on
a bridge, the node binding to the host's address), and this process's threads live on the head's host,
so the driver attaches to the head's raylet as without ``netns``; a host can then be partitioned.

Processes are found only through the node table (``tables.read_nodes``: ``NodeInfo.pid`` is the
raylet's PID, ``NodeInfo.session_dir`` its session) and the sessions' PID records
(``rayredis._private.process``, checked by kernel start time), never by process name.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

import rayredis
from rayredis._private import process, session
from rayredis._private.node import NodeHandle
from rayredis.cluster_utils import Cluster, Node
from rayredis.store import tables

if TYPE_CHECKING:
    from chaos import netns

SLOT_RESOURCE = "chaos_slot_{}"
NODE_RESOURCE = "chaos_node"
#: Capacity of each node's slot and ``chaos_node`` resources (work asks for tiny fractions of them).
CAPACITY = 1000.0

T = TypeVar("T")


def slot_resource(k: int) -> str:
    return SLOT_RESOURCE.format(k)


class OpsThread(threading.Thread):
    """Starts cluster processes (replacement nodes, replacement GCSes) for the faults.

    The processes a cluster starts are bound with ``PR_SET_PDEATHSIG`` to the *thread* that starts
    them (``NodeHandle.bind_to_parent``): to the main thread, or to a thread marked
    ``cluster_lifetime``. Fault lanes end before the cluster is shut down, so what they started would
    be killed early; this thread lives until after the shutdown, so a SIGKILLed runner still takes
    every process of its cluster with it.
    """

    cluster_lifetime = True

    def __init__(self) -> None:
        super().__init__(name="chaos-ops", daemon=True)
        self._q: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]] | None] = \
            queue.SimpleQueue()

    def run(self) -> None:
        while (job := self._q.get()) is not None:
            fn, fut = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                fut.set_exception(e)

    def call(self, fn: Callable[[], T], timeout_s: float | None = 120.0) -> T:
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._q.put((fn, fut))
        return fut.result(timeout=timeout_s)

    def stop(self) -> None:
        self._q.put(None)
        self.join(timeout=10.0)


@dataclass
class Slot:
    """Slot ``index``: the node that currently holds it and the ones that held it before."""

    index: int
    node: Node
    previous: list[Node] = field(default_factory=list)

    @property
    def is_head(self) -> bool:
        return self.node.is_head


def slot_resources(k: int) -> dict[str, float]:
    return {slot_resource(k): CAPACITY, NODE_RESOURCE: CAPACITY}


class ChaosCluster:
    """A head (slot 0) and ``num_nodes - 1`` worker nodes (slots 1..), each with ``num_cpus`` CPUs."""

    def __init__(self, num_nodes: int, num_cpus: float, object_store_memory: int | None = None,
                 redis_replicas: int = 0, use_netns: bool = False):
        if num_nodes < 1:
            raise ValueError("--nodes must be at least 1")
        self.use_netns = use_netns
        #: The hosts (network namespaces) of a ``use_netns`` cluster: ``head``, ``node1``, ...
        self.net: netns.Network | None = None
        self._net_stack: contextlib.ExitStack | None = None
        self._root_ns: int | None = None
        #: Slots a node-level fault is working on (slot -> fault kind): see :meth:`claim`.
        self._claims: dict[int, str] = {}
        self.num_nodes = num_nodes
        #: Replicas per Redis shard on the head (Sentinel failover; the ``redis-primary`` fault needs >= 1).
        self.redis_replicas = redis_replicas
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory
        self.lock = threading.RLock()
        self.ops = OpsThread()
        self.cluster: Cluster | None = None
        self.slots: list[Slot] = []
        #: Every session directory a node of this cluster ever had (the head's first).
        self.sessions: list[str] = []
        self._client: redis.Redis | None = None
        self._claims_changed = threading.Condition(self.lock)

    # ---- life cycle ------------------------------------------------------------------------------

    def _node_args(self, k: int) -> dict[str, Any]:
        args: dict[str, Any] = {"num_cpus": self.num_cpus, "resources": slot_resources(k)}
        if self.object_store_memory:
            args["object_store_memory"] = self.object_store_memory
        if k == 0 and self.redis_replicas:
            args["redis_replicas"] = self.redis_replicas
        if self.net is not None:
            args["host"] = self.host_of_slot(k)
        return args

    def start(self) -> None:
        """Start every node (from the calling thread, the main one) and connect this driver."""
        if self.use_netns:
            self._start_network()  # before any other thread starts: they all live on the head's host
        self.ops.start()
        # supervise: every node's supervisor restarts its dead raylet (and on the head Redis shards and
        # the GCS), as `rayredis start --block` does; the `raylet` and `redis` faults wait for that.
        if self.net is not None:
            from chaos.netns_cluster import NetnsCluster

            self.cluster = NetnsCluster()
            self.cluster.add_node(**self._node_args(0))
        else:
            self.cluster = Cluster(initialize_head=True, head_node_args=self._node_args(0), supervise=True)
        assert self.cluster.head_node is not None
        self.slots = [Slot(0, self.cluster.head_node)]
        self.sessions.append(self.cluster.head_node.session_dir)
        for k in range(1, self.num_nodes):
            n = self.cluster.add_node(**self._node_args(k))
            self.slots.append(Slot(k, n))
            self.sessions.append(n.session_dir)
        self.cluster.wait_for_nodes()
        rayredis.init(address=self.cluster.address, _redis_password=self.cluster.redis_password)
        self.wait_for_view(self.num_nodes)

    def shutdown(self) -> None:
        """Disconnect the driver and stop every node (SIGTERM, then SIGKILL after the grace period)."""
        try:
            rayredis.shutdown()
        finally:
            try:
                if self.cluster is not None:
                    self.cluster.shutdown()
            finally:
                if self._client is not None:
                    self._client.close()
                    self._client = None
                if self.ops.is_alive():
                    self.ops.stop()

    # ---- hosts (``use_netns``) -----------------------------------------------------------------

    def _start_network(self) -> None:
        """One host per node, on a fresh bridge; moves the calling thread onto the head's host."""
        from chaos import netns

        reason = netns.unavailable_reason(partitions=True)
        if reason is not None:
            raise netns.NetnsError(f"--netns cannot run here: {reason}")
        netns.sweep_stale()
        self._net_stack = contextlib.ExitStack()
        # The hosts share the machine's /dev/shm: the driver (this process) reads the head's segments
        # as a local driver does, and the leftover check sees every segment.
        self.net = self._net_stack.enter_context(
            netns.hosts([host_name(k) for k in range(self.num_nodes)], private_shm=False))
        self._root_ns = netns.enter(self.net[host_name(0)])

    def host_of_slot(self, k: int) -> netns.Host:
        """The host slot ``k``'s nodes run on (a replacement node takes its predecessor's host)."""
        assert self.net is not None
        return self.net[host_name(k)]

    def head_bind(self) -> dict[str, str]:
        """``bind_host``/``node_ip`` for a process restarted on the head (a GCS): its host's address."""
        if self.net is None:
            return {}
        ip = self.net[host_name(0)].ip
        return {"bind_host": ip, "node_ip": ip}

    def close_network(self) -> list[str]:
        """After :meth:`shutdown`: back to the machine's network, then remove every host, bridge and
        partition rule. Returns what the teardown had to kill (nothing after a clean shutdown)."""
        from chaos import netns

        killed: list[str] = []
        try:
            if self._root_ns is not None:
                netns.leave(self._root_ns)
                self._root_ns = None
        finally:
            if self.net is not None:
                try:
                    killed = netns.teardown(self.net)
                    killed += [f"namespace {n} not removed" for n in netns.remaining(self.net)]
                finally:
                    if self._net_stack is not None:
                        self._net_stack.close()
        return killed

    def claim(self, k: int, who: str, wait_s: float = 0.0) -> bool:
        """Reserve slot ``k`` for a node-level fault ``who`` (``node``, ``partition``), waiting up to
        ``wait_s`` while another fault holds it; False if it stayed held. :meth:`release` frees it."""
        deadline = time.monotonic() + wait_s
        with self._claims_changed:
            while self._claims.get(k, who) != who:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._claims_changed.wait(left)
            self._claims[k] = who
            return True

    def release(self, k: int) -> None:
        with self._claims_changed:
            self._claims.pop(k, None)
            self._claims_changed.notify_all()

    def claimed(self) -> set[int]:
        with self.lock:
            return set(self._claims)

    # ---- what the cluster is made of -------------------------------------------------------------

    @property
    def head(self) -> NodeHandle:
        assert self.cluster is not None and self.cluster.head_node is not None
        return self.cluster.head_node.handle

    @property
    def head_session(self) -> str:
        return self.head.session_dir

    def redis(self) -> redis.Redis:
        """A client of the primary shard, for this thread's use only (callers close it). It rides out
        a restart of the primary (a ``redis`` fault running at the same time) as the runtime does."""
        h = self.head
        return redis.Redis.from_url(f"redis://:{h.password}@{h.address}", socket_timeout=5.0,
                                    socket_connect_timeout=5.0, retry=outage_retry(),
                                    retry_on_error=[redis.ConnectionError, redis.TimeoutError])


    def nodes(self) -> list[tables.NodeRecord]:
        client = self.redis()
        try:
            return tables.read_nodes(client)
        finally:
            client.close()

    def slot_of_session(self, session_dir: str) -> int | None:
        with self.lock:
            for s in self.slots:
                if s.node.session_dir == session_dir or any(p.session_dir == session_dir for p in s.previous):
                    return s.index
        return None

    def live_sessions(self) -> list[str]:
        """Session directories of the nodes that currently hold a slot."""
        with self.lock:
            return [s.node.session_dir for s in self.slots]

    def slot_record(self, k: int, nodes: list[tables.NodeRecord] | None = None) -> tables.NodeRecord | None:
        """The live node-table entry of slot ``k``'s node (matched by session dir: a fenced raylet
        re-registers under a new node ID in the same session)."""
        with self.lock:
            sd = self.slots[k].node.session_dir
        for r in tables.alive(nodes if nodes is not None else self.nodes()):
            if r.info is not None and r.info.session_dir == sd:
                return r
        return None

    def recorded_raylet(self, rec: tables.NodeRecord) -> process.Recorded | None:
        """The raylet's PID record in its session, if it matches the node table's PID and still runs."""
        if rec.info is None:
            return None
        for r in process.recorded(rec.info.session_dir):
            if r.role == "raylet" and r.pid == rec.info.pid and process.is_alive(r):
                return r
        return None

    def live_workers(self) -> list[tuple[int, process.Recorded]]:
        """(slot, record) of every live recorded worker process of the nodes that hold a slot."""
        with self.lock:
            pairs = [(s.index, s.node.session_dir) for s in self.slots]
        return sorted(((k, r) for k, sd in pairs for r in process.recorded(sd)
                       if r.role == "worker" and process.is_alive(r)), key=lambda x: x[1].pid)

    # ---- faults' repairs -------------------------------------------------------------------------

    def kill_slot(self, k: int) -> Node:
        """SIGKILL the raylet and workers of slot ``k``'s node (never the head) and forget the node."""
        with self.lock:
            slot = self.slots[k]
            if slot.is_head:
                raise ValueError("the head node is never killed (the driver is attached to its raylet)")
            victim = slot.node
        assert self.cluster is not None
        # (Waits while a partition holds the slot; released by replace_slot.)
        self.claim(k, "node", wait_s=120.0)
        # A raylet that fenced itself runs under a later node ID than the one Cluster knows, and
        # names its segments with it: those are removed here, as remove_node does for the first ID.
        ids = {r.node_id for r in self.nodes() if r.info is not None and r.info.session_dir == victim.session_dir}
        self.cluster.remove_node(victim, allow_graceful=False)
        _unlink_segments([session.session_shm_tag(victim.session_dir) + nid[:6] + "_" for nid in ids])
        return victim

    def replace_slot(self, k: int) -> Node:
        """Add a new node holding slot ``k`` (from the ops thread; returns once it is ALIVE)."""
        assert self.cluster is not None
        cluster = self.cluster
        args = self._node_args(k)
        try:
            new = self.ops.call(lambda: cluster.add_node(**args))
        finally:
            self.release(k)
        with self.lock:
            slot = self.slots[k]
            slot.previous.append(slot.node)
            slot.node = new
            self.sessions.append(new.session_dir)
        return new

    def known_nodes(self) -> list[tuple[str, str]]:
        """(session dir, node ID) of every node this cluster started (fenced raylets' later IDs are
        only in the node table)."""
        with self.lock:
            return [(n.session_dir, n.node_id) for s in self.slots for n in [*s.previous, s.node]]

    def wait_for_view(self, n: int, timeout_s: float = 30.0) -> None:
        """Until ``n`` live nodes have reported their load (what raylets schedule from), plus a beat."""
        deadline = time.monotonic() + timeout_s
        while sum(1 for r in self.nodes() if r.alive and r.load) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {n} nodes reported their load within {timeout_s} s")
            time.sleep(0.1)
        time.sleep(1.0)


def _unlink_segments(prefixes: list[str]) -> None:
    try:
        names = os.listdir(session.SHM_DIR)
    except OSError:
        return
    for name in names:
        if prefixes and name.startswith(tuple(prefixes)):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(session.SHM_DIR, name))


def host_name(k: int) -> str:
    """The name of slot ``k``'s host in ``use_netns`` mode."""
    return "head" if k == 0 else f"node{k}"


# ---- after the shutdown -------------------------------------------------------------------------


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def shm_prefixes(sessions: list[str], nodes: list[tables.NodeRecord], known: list[tuple[str, str]]) -> list[str]:
    """Name prefixes of the object segments of every raylet that ran in ``sessions``: the session's
    tag (``session.session_shm_tag``, 4 characters of the session name, so not unique on a shared
    machine) followed by the node ID's first 6 characters, as ``raylet/server.py`` names them.
    Node IDs come from the node table (``nodes``) and from what the cluster started (``known``)."""
    pairs = {(r.info.session_dir, r.node_id) for r in nodes if r.info is not None} | set(known)
    return sorted({session.session_shm_tag(sd) + nid[:6] + "_" for sd, nid in pairs if sd in sessions})


def leftovers(sessions: list[str], prefixes: list[str]) -> dict[str, list[str]]:
    """Processes of ``sessions`` and segments named with ``prefixes`` that still exist.

    A process belongs to a session if it has a live PID record there, or if its command line names
    the session directory (every raylet, worker and GCS gets it as an argument); zombies are not
    counted.
    """
    procs: dict[int, str] = {}
    for sd in sessions:
        for r in process.recorded(sd):
            if process.is_alive(r):
                procs[r.pid] = f"{r.role} pid {r.pid} (recorded in {sd})"
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        cmd = _cmdline(int(name))
        if cmd and any(sd in cmd for sd in sessions) and _state(int(name)) not in ("Z", ""):
            procs.setdefault(int(name), f"pid {name}: {cmd[:160]}")
    tags = tuple(prefixes)
    try:
        shm = sorted(n for n in os.listdir(session.SHM_DIR) if tags and n.startswith(tags))
    except OSError:
        shm = []
    return {"processes": [procs[p] for p in sorted(procs)], "shm": shm}


def wait_no_leftovers(sessions: list[str], prefixes: list[str], timeout_s: float = 10.0) -> dict[str, list[str]]:
    """:func:`leftovers`, polled until nothing is left or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = leftovers(sessions, prefixes)
        if (not left["processes"] and not left["shm"]) or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def outage_retry() -> Retry:
    """Retries of the chaos tool's own Redis calls across a shard restart: about 15 s in all."""
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=20)

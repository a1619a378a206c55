"""The raylet's view of the other nodes (from their heartbeats in Redis) and where a task should run."""

from __future__ import annotations

from dataclasses import dataclass, field

from rayredis.common.resources import ResourceSet
from rayredis.protocol._generated import rayredis_pb2 as pb

#: A remote node may be sent tasks until this many per CPU are queued there beyond what it can run
#: at once (as this node estimates it), so its workers never idle waiting for the next forward.
SPILL_QUEUE_PER_CPU = 2
#: Arguments that live on one other node and weigh at least this much send the task there.
LOCALITY_MIN_BYTES = 1 << 20

LOCAL = b""


class InfeasibleError(Exception):
    """No live node of the cluster can ever run the task (as the view knows it now)."""


class UnschedulableError(Exception):
    """The strategy names a node that is dead or unknown, without ``soft=True``."""


@dataclass
class NodeView:
    """One other node as its last heartbeat reported it, plus what this node sent it since."""

    node_id: bytes
    address: str
    total: ResourceSet
    available: ResourceSet
    queued: int = 0
    #: Demand this node forwarded there since the report, minus what came back done.
    sent: ResourceSet = field(default_factory=ResourceSet)
    sent_tasks: int = 0

    def estimate(self) -> ResourceSet:
        return self.available - self.sent


class ClusterView:
    """Decides, for each task that is ready to be placed, whether it runs here or on another node.

    Events: :meth:`update` (a refreshed report of every live node), :meth:`forwarded` and
    :meth:`returned` (a task sent to a node, and its completion). Decision: :meth:`place`.
    The policy (docs/scheduling.md): affinity and placement-group tasks go to the node that has
    the named node or bundle; SPREAD rotates over the nodes that can run the task; otherwise a
    task whose arguments mostly live on another feasible node goes there; else it runs here if it
    could ever run it (the spill pass of the NodeManager later moves it to a node with room if it
    has to wait here for resources: :meth:`spill_target`); else it goes to the other node with the
    most room for it now (counting what this node sent since that node's last report), queueing
    there up to ``SPILL_QUEUE_PER_CPU`` per CPU; else to the least loaded node that can run it.
    """

    def __init__(self, node_id: bytes):
        self.node_id = node_id
        self.nodes: dict[bytes, NodeView] = {}
        self._spread_next = 0
        self.version = 0  # bumped when the set of nodes or their totals change
        #: Nodes that were in the view and left it (dead or gone for good).
        self.gone: set[bytes] = set()
        #: Whether the node table was read once. Until then (a raylet's links and drivers are served
        #: before its first heartbeat reads it) a node this view does not know is not taken for dead.
        self.loaded = False

    # ---- events ---------------------------------------------------------------------------

    def update(self, reports: dict[bytes, tuple[str, dict[str, float], dict[str, float], int]]) -> bool:
        """Replace the view with ``{node: (address, total, available, queued)}`` of the live other
        nodes; True when a node joined, left or changed its totals (infeasible tasks may fit now)."""
        changed = set(reports) != set(self.nodes)
        self.loaded = True
        self.gone.update(n for n in self.nodes if n not in reports)
        fresh: dict[bytes, NodeView] = {}
        for nid, (address, total, available, queued) in reports.items():
            if nid == self.node_id:
                continue
            t = ResourceSet.from_floats(total)
            old = self.nodes.get(nid)
            if old is not None and old.total != t:
                changed = True
            fresh[nid] = NodeView(nid, address, t, ResourceSet.from_floats(available), queued)
        self.nodes = fresh
        if changed:
            self.version += 1
        return changed

    def forwarded(self, node: bytes, demand: ResourceSet) -> None:
        v = self.nodes.get(node)
        if v is not None:
            v.sent = v.sent + demand
            v.sent_tasks += 1

    def returned(self, node: bytes, demand: ResourceSet) -> None:
        v = self.nodes.get(node)
        if v is not None and v.sent_tasks > 0:
            v.sent = v.sent - demand
            v.sent_tasks -= 1

    def address(self, node: bytes) -> str | None:
        v = self.nodes.get(node)
        return v.address if v is not None else None

    def alive(self, node: bytes) -> bool:
        """Whether ``node`` counts as alive: listed by the last report, or not known to have left
        before the first report (a raylet that just started or restarted knows no node yet)."""
        return node == self.node_id or node in self.nodes or (not self.loaded and node not in self.gone)

    # ---- decisions ------------------------------------------------------------------------

    def place(self, demand: ResourceSet, strategy: pb.SchedulingStrategy, local_total: ResourceSet,
              arg_bytes: dict[bytes, int] | None = None) -> bytes:
        """The node to run on (``LOCAL`` for this one); raises :class:`InfeasibleError` or
        :class:`UnschedulableError`."""
        kind = strategy.kind
        local_ok = demand.fits_in(local_total)
        if kind == pb.STRATEGY_NODE_AFFINITY:
            target = strategy.node_id
            if target == self.node_id and local_ok:
                return LOCAL
            v = self.nodes.get(target)
            if v is not None and demand.fits_in(v.total):
                return target
            if not strategy.soft:
                raise UnschedulableError(
                    f"NodeAffinitySchedulingStrategy names node {target.hex()}, which is "
                    f"{'not alive' if v is None and target != self.node_id else 'too small for the task'}; "
                    "pass soft=True to run it elsewhere then.")
        elif kind == pb.STRATEGY_SPREAD:
            feasible = sorted([n for n, v in self.nodes.items() if demand.fits_in(v.total)]
                              + ([self.node_id] if local_ok else []))
            if not feasible:
                raise InfeasibleError()
            pick = feasible[self._spread_next % len(feasible)]
            self._spread_next += 1
            return LOCAL if pick == self.node_id else pick
        elif kind == pb.STRATEGY_PLACEMENT_GROUP:
            if local_ok:
                return LOCAL  # the bundle (or any bundle of the group the task asks for) is here
            for nid, v in sorted(self.nodes.items()):
                if demand.fits_in(v.total):
                    return nid
            raise InfeasibleError()
        if arg_bytes:
            best, size = max(arg_bytes.items(), key=lambda kv: kv[1])
            if size >= LOCALITY_MIN_BYTES:
                if best == self.node_id and local_ok:
                    return LOCAL
                v = self.nodes.get(best)
                if v is not None and demand.fits_in(v.total):
                    return best
        if local_ok:
            return LOCAL  # queued here; the spill pass moves it if it has to wait for resources
        room = self._roomiest(demand)
        if room is not None:
            return room
        fits = [v for v in self.nodes.values() if demand.fits_in(v.total)]
        if not fits:
            raise InfeasibleError()
        return min(fits, key=lambda v: (v.queued + v.sent_tasks) / max(1, v.total.get("CPU"))).node_id

    def spill_target(self, demand: ResourceSet) -> bytes | None:
        """Another node with room for a task that waits here for resources (None: keep it)."""
        return self._roomiest(demand)

    def _roomiest(self, demand: ResourceSet) -> bytes | None:
        best: NodeView | None = None
        best_room = 0
        for v in self.nodes.values():
            if not demand.fits_in(v.total):
                continue
            est = v.estimate()
            cpus = v.total.get("CPU")
            # Room now, or a queue shorter than SPILL_QUEUE_PER_CPU per CPU there.
            slack = ResourceSet({"CPU": cpus * SPILL_QUEUE_PER_CPU}) if cpus else ResourceSet()
            if not demand.fits_in(est + slack):
                continue
            room = (est + slack).get("CPU") - demand.get("CPU")
            if best is None or room > best_room:
                best, best_room = v, room
        return best.node_id if best is not None else None

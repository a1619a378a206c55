"""Pure failure detection: a node whose heartbeat counter stops moving for too long is dead."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rayredis.store.tables import NodeRecord, NodeState


class NodeMonitor:
    """Tracks heartbeat counters against this process's own monotonic clock.

    Comparing counters (not timestamps) makes detection immune to clock skew between hosts. After a
    GCS restart every node gets a full timeout from the first observation, so a restart never
    declares a healthy node dead.
    """

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.last: dict[str, tuple[int, float]] = {}

    def observe(self, counters: Mapping[str, int], alive: set[str], now: float) -> list[str]:
        """Feed the current counters; returns alive nodes that just timed out."""
        dead = []
        for node in alive:
            c = counters.get(node, 0)
            prev = self.last.get(node)
            if prev is None or prev[0] != c:
                self.last[node] = (c, now)
            elif now - prev[1] > self.timeout_s:
                dead.append(node)
        for node in list(self.last):
            if node not in alive:
                del self.last[node]
        return dead

    def observe_records(self, records: Iterable[NodeRecord], now: float) -> list[str]:
        """:meth:`observe` on the node tables as read by ``tables.aread_nodes``."""
        recs = list(records)
        return self.observe({r.node_id: r.heartbeats for r in recs},
                            {r.node_id for r in recs if r.state == NodeState.ALIVE.value}, now)

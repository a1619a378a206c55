"""Pure failure detection: a node whose heartbeat counter stops moving for too long is dead."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rayredis.store.tables import NodeRecord, NodeState


class NodeMonitor:
    """Tracks heartbeat counters against this process's own monotonic clock.

    Comparing counters (not timestamps) makes detection immune to clock skew between hosts. After a
    GCS restart every node gets a full timeout from the first observation, so a restart never
    declares a healthy node dead.

    Time counts only while the monitor itself observes without a gap. Each observation carries
    ``started`` (the counters are at least that fresh) and ``now`` (when they were read). When the
    time since the previous observation, or the read itself, took longer than ``max_gap_s`` (the
    GCS was paused, or starved of CPU, or Redis was slow), the monitor cannot tell a stalled node
    from a node it failed to watch: every node then gets a full timeout again, counted from
    ``now``. So a GCS waking from a pause, or a whole machine resuming, never declares its nodes dead
    before they had ``timeout_s`` to heartbeat. A counter change counts from ``now`` and staleness
    until ``started``, both in the node's favour.
    """

    def __init__(self, timeout_s: float, max_gap_s: float | None = None):
        self.timeout_s = timeout_s
        #: Longest gap between observations (or longest read) that still counts as watching.
        self.max_gap_s = timeout_s / 2 if max_gap_s is None else max_gap_s
        #: node -> (counter, time it was first seen with that counter).
        self.last: dict[str, tuple[int, float]] = {}
        #: Since when the monitor has observed without a gap (None before the first observation).
        self.watching_since: float | None = None
        self._previous: float | None = None

    def observe(self, counters: Mapping[str, int], alive: set[str], now: float,
                started: float | None = None) -> list[str]:
        """Feed the current counters (read between ``started`` and ``now``); returns alive nodes
        that just timed out."""
        started = now if started is None else min(started, now)
        if (self._previous is None or started - self._previous > self.max_gap_s
                or now - started > self.max_gap_s):
            self.watching_since = now
        self._previous = now
        assert self.watching_since is not None
        dead = []
        for node in alive:
            c = counters.get(node, 0)
            prev = self.last.get(node)
            if prev is None or prev[0] != c:
                self.last[node] = (c, now)
            elif started - max(prev[1], self.watching_since) > self.timeout_s:
                dead.append(node)
        for node in list(self.last):
            if node not in alive:
                del self.last[node]
        return dead

    def observe_records(self, records: Iterable[NodeRecord], now: float, started: float | None = None) -> list[str]:
        """:meth:`observe` on the node tables as read by ``tables.aread_nodes``."""
        recs = list(records)
        return self.observe({r.node_id: r.heartbeats for r in recs},
                            {r.node_id for r in recs if r.state == NodeState.ALIVE.value}, now, started)

"""Pure placement decisions of the GCS: which node hosts an actor or a placement group's bundles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rayredis.common.node_view import NodeView
from rayredis.common.resources import ResourceSet


def pick_node_for_actor(nodes: Sequence[NodeView], demand: ResourceSet, *, affinity: str = "",
                        soft: bool = True, placed_counts: Mapping[str, int] | None = None) -> NodeView | None:
    """A node that can host the actor: its affinity node if asked, else the least loaded feasible one.

    Feasible means the node's *total* resources cover the demand (the raylet queues until they are
    available). Among feasible nodes prefer those with the demand available now, then fewer queued
    tasks, then fewer actors already placed by this pass (spreads a burst of creations).
    """
    feasible = [n for n in nodes if demand.fits_in(n.total)]
    if affinity:
        chosen = [n for n in feasible if n.node_id == affinity]
        if chosen or not soft:
            return chosen[0] if chosen else None
    if not feasible:
        return None
    counts = placed_counts or {}
    return min(feasible, key=lambda n: (not demand.fits_in(n.available), n.queued,
                                        counts.get(n.node_id, 0), n.node_id))


def place_bundles(nodes: Sequence[NodeView], bundles: Sequence[ResourceSet], strategy: str
                  ) -> list[str] | None:
    """Node id per bundle, or None when the strategy cannot be met with the current nodes.

    PACK / STRICT_PACK put every bundle on one node when one fits them all (PACK falls back to
    spreading); SPREAD / STRICT_SPREAD put bundles on distinct nodes (SPREAD may reuse nodes).
    Availability is taken from the nodes' last reported load.
    """
    avail = {n.node_id: n.available for n in nodes}
    order = sorted(nodes, key=lambda n: (n.queued, n.node_id))
    if strategy in ("PACK", "STRICT_PACK"):
        total = ResourceSet()
        for b in bundles:
            total = total + b
        for n in order:
            if total.fits_in(avail[n.node_id]):
                return [n.node_id] * len(bundles)
        if strategy == "STRICT_PACK":
            return None
    out: list[str] = []
    used: set[str] = set()
    for b in bundles:
        candidates = [n for n in order if b.fits_in(avail[n.node_id])]
        if strategy in ("SPREAD", "STRICT_SPREAD"):
            fresh = [n for n in candidates if n.node_id not in used]
            if fresh:
                candidates = fresh
            elif strategy == "STRICT_SPREAD":
                return None
        if not candidates:
            return None
        n = candidates[0]
        avail[n.node_id] = avail[n.node_id] - b
        used.add(n.node_id)
        out.append(n.node_id)
    return out

"""Bug G: a task in a placement-group bundle can run during a reservation the GCS then rolls back.

A raylet exposes a bundle's resources as soon as it answers ``ReserveBundles``, before the group is
CREATED, and the GCS reserves node by node and rolls back when a later node refuses. While a node is
dead but not yet declared dead (the 5 s death timeout), the GCS keeps placing groups on it: the
reservation there fails and the earlier ones are rolled back. A task waiting for the group can start
on one of the earlier nodes in that window and run to completion, although the group is not (and,
here, can never be) created. In the chaos runs this shows as a ``STRICT_SPREAD`` group whose tasks
report fewer distinct nodes than bundles (a task ran on a node the group table does not list).

Here: three live nodes and one dead-but-not-yet-detected one; each of 20 groups asks for four
``STRICT_SPREAD`` bundles, which only the stale view can satisfy, so no group is ever created and
no task in one may ever run. Racy (it needs the dead node not to be the first reserved).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import rayredis as ray
from chaos.repro import cluster, report
from rayredis.util.placement_group import placement_group, placement_group_table, remove_placement_group
from rayredis.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@ray.remote
def where() -> str:
    return ray.get_runtime_context().get_node_id()


def main() -> int:
    c = cluster({"n": 100}, {"n": 100}, {"n": 100})
    try:
        ray.init(address=c.address)
        # Idle workers on every node, so a task can start the moment its bundle's resources appear.
        ray.get([where.options(num_cpus=0, scheduling_strategy="SPREAD").remote() for _ in range(30)], timeout=60)
        c.remove_node(next(iter(c.worker_nodes)), allow_graceful=False)
        c.add_node(num_cpus=1, resources={"n": 100})
        time.sleep(1.0)  # the new node is in every view; the dead one still is too
        groups: list[tuple[Any, list[Any]]] = []
        for _ in range(20):
            pg = placement_group([{"n": 1}] * 4, strategy="STRICT_SPREAD")
            refs = [where.options(num_cpus=0, resources={"n": 1},
                                  scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote()
                    for i in range(4)]
            groups.append((pg, refs))
            time.sleep(0.15)
        time.sleep(6)  # the dead node is declared dead: no group of 4 can be created any more
        ran = 0
        states = set()
        for pg, refs in groups:
            ready, _ = ray.wait(refs, num_returns=4, timeout=0.5)
            ran += len(ready)
            states.add(placement_group_table(pg)["state"])
            remove_placement_group(pg)
        what = (f"{ran} tasks ran in bundles of groups that were never created" if ran
                else "no task ran in a group that was never created")
        bug = report("G", ran > 0, f"{what} (group states {sorted(states)})")
        return 1 if bug else 0
    finally:
        ray.shutdown()
        c.shutdown()


if __name__ == "__main__":
    sys.exit(main())

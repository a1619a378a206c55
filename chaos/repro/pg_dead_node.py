"""Bugs D and E: a placement group with a bundle on a node that dies.

E: the bundle is not rescheduled on the replacement node, so a task in that bundle never runs
   (Ray reschedules the bundles of a dead node).
D: after ``remove_placement_group``, the bundles on the *live* nodes are not returned when a node
   that held a bundle is dead: ``PlacementGroupManager.return_bundles`` (gcs/placement_groups.py)
   walks the group's nodes in order and stops at the first whose ``ReturnBundles`` fails (the dead
   one), and the GCS retries it forever ("ReturnBundles on ... failed" in gcs_server.log). The
   killed node is the non-head one with the smallest ID, so a live bundle node sorts after it.
"""

from __future__ import annotations

import sys
import time

import rayredis as ray
from chaos.repro import cluster, report, wait_until
from rayredis.util.placement_group import placement_group, placement_group_table, remove_placement_group
from rayredis.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@ray.remote
def where() -> str:
    return ray.get_runtime_context().get_node_id()


def main() -> int:
    c = cluster({"n": 10}, {"n": 10}, {"n": 10})
    try:
        ray.init(address=c.address)
        pg = placement_group([{"n": 1}] * 3, strategy="STRICT_SPREAD")
        if not pg.wait(30):
            print("the placement group was not created within 30 s")
            return 2
        nodes = placement_group_table(pg)["bundles_to_node_id"]
        victim = min(c.worker_nodes, key=lambda n: n.node_id)
        index = next(i for i, nid in nodes.items() if nid == victim.node_id)
        c.remove_node(victim, allow_graceful=False)
        c.add_node(num_cpus=1, resources={"n": 10})
        time.sleep(7)  # past the node-death timeout (5 s)
        strategy = PlacementGroupSchedulingStrategy(pg, index)
        r = where.options(num_cpus=0, resources={"n": 1}, scheduling_strategy=strategy).remote()
        ran = bool(ray.wait([r], timeout=20)[0])
        bugs = report("E", not ran, f"a task in bundle {index} ran after its node died" if ran else
                      f"a task in bundle {index}, whose node died, did not run within 20 s")
        remove_placement_group(pg)

        def returned() -> bool:
            return ray.available_resources().get("n", 0.0) >= ray.cluster_resources().get("n", 0.0)

        ok = wait_until(returned, 15)
        bugs |= report("D", not ok, "after remove_placement_group every bundle came back" if ok else
                       f"15 s after remove_placement_group, n available {ray.available_resources().get('n')} of "
                       f"{ray.cluster_resources().get('n')}: the live nodes' bundles were not returned")
        return 1 if bugs else 0
    finally:
        ray.shutdown()
        c.shutdown()


if __name__ == "__main__":
    sys.exit(main())

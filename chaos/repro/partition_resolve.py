"""Bug J: an argument is declared lost on a consumer's node although its owner can rebuild it.

Needs root and ``ip netns``: a head (the owner: the driver is attached to it) and two nodes, each on a
host of its own. ``make`` runs 30 times on node 1 (the results stay there); node 1's host is cut off
and ``total(ref)`` pinned to node 2 is submitted for each. Node 2 cannot fetch the arguments and,
once it sees node 1 dead, asks the owner (``resolve``). If the owner has not noticed the death yet
(the raylets reread the node table at different moments), it answers with node 1 as the location
again; node 2's next fetch fails at once, and since it asked once already (``Lineage.asked``) it seals
``ObjectLostError: ... no node that is alive keeps the lineage ... (its owner died?)``, although the
owner is alive and rebuilds the object once node 1 is back. Under a SIGKILL the fetch fails before
the death is noticed anywhere, so the window is much narrower; a partition makes it common.

Racy: it needs the owner's view to lag node 2's when node 2 asks (up to a heartbeat, 0.5 s), which this
script does not force (it rarely shows here; the chaos runs with ``--netns --faults partition,node``
showed it in most runs). ``tests/unit/test_multinode_core.py::
test_a_holder_whose_view_lags_is_asked_again_instead_of_the_object_failing`` reproduces it
deterministically, with the views set by hand.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

import rayredis as ray
from chaos import netns
from chaos.cluster import ChaosCluster, slot_resource
from chaos.repro import report

N = 30
HOLD_S = 7.0


@ray.remote
def make(i: int, n: int) -> Any:
    return np.full(n, i, dtype=np.int64)


@ray.remote
def total(a: Any) -> int:
    return int(a.sum())


def main() -> int:
    reason = netns.unavailable_reason(partitions=True)
    if reason is not None:
        print(f"skipped: {reason}")
        return 0
    c = ChaosCluster(3, 1, use_netns=True)
    try:
        c.start()
        n = 200_000
        srcs = [make.options(resources={slot_resource(1): 0.01}).remote(i, n) for i in range(N)]
        ray.wait(srcs, num_returns=N, fetch_local=False, timeout=60)
        assert c.net is not None
        cut = c.host_of_slot(1).name
        netns.partition(c.net, cut)
        try:
            outs = [total.options(resources={slot_resource(2): 0.01}).remote(s) for s in srcs]
            time.sleep(HOLD_S)
        finally:
            netns.heal(c.net, cut)
        lost: list[str] = []
        for i, r in enumerate(outs):
            try:
                if ray.get(r, timeout=40) != i * n:
                    lost.append(f"{i}: wrong value")
            except Exception as e:  # noqa: BLE001 - counted and shown
                lost.append(f"{i}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        return 1 if report("J", bool(lost), f"{len(lost)} of {N} consumers failed after node 1's partition "
                                            f"healed{': ' + lost[0] if lost else ''}") else 0
    finally:
        try:
            c.shutdown()
        finally:
            c.close_network()


if __name__ == "__main__":
    sys.exit(main())

"""Bug I: a pull from a node that went silent is not given up when the node is declared dead.

Needs root and ``ip netns`` (``chaos/netns.py``): a head and one node, each on a host of its own.
``make`` runs on the node (its 4 MB result stays there); the node's host is cut off; ``total(ref)``
pinned to the head makes the head pull the argument from the node, and that pull hangs (the network
drops its packets, nothing refuses them). The GCS declares the node DEAD after the death timeout, but
the head does not rebuild the argument then: it waits until the hung pull itself fails (gRPC/TCP
time-outs, 15-20 s or more), so the consumer completes only long after the node is back (fenced,
under a new node ID) and the object could have been rebuilt there. Under a SIGKILL (``node`` fault)
the pull fails at once with "connection refused", which is why only partitions show it.
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

#: The partition: long past the node-death timeout (3 s), so the node is declared dead and fences.
HOLD_S = 8.0
#: After the heal the node is back within a few seconds; the rebuilt argument should follow.
WITHIN_S = 12.0


@ray.remote
def make(n: int) -> Any:
    return np.arange(n, dtype=np.int64)


@ray.remote
def total(a: Any) -> int:
    return int(a.sum())


def main() -> int:
    reason = netns.unavailable_reason(partitions=True)
    if reason is not None:
        print(f"skipped: {reason}")
        return 0
    c = ChaosCluster(2, 1, use_netns=True)
    try:
        c.start()
        n = 500_000
        src = make.options(resources={slot_resource(1): 0.01}).remote(n)
        ray.wait([src], fetch_local=False, timeout=60)
        assert c.net is not None
        netns.partition(c.net, c.host_of_slot(1).name)
        try:
            r = total.options(resources={slot_resource(0): 0.01}).remote(src)
            time.sleep(HOLD_S)
        finally:
            netns.heal(c.net, c.host_of_slot(1).name)
        healed = time.monotonic()
        ready, _ = ray.wait([r], timeout=WITHIN_S)
        if ready:
            return 1 if report("I", ray.get(r) != n * (n - 1) // 2,
                               f"the consumer ran on the rebuilt argument within {WITHIN_S} s of the heal") else 0
        late = bool(ray.wait([r], timeout=40)[0])
        then = f"completed {time.monotonic() - healed:.1f} s after the heal" if late else "still hangs 50 s after it"
        report("I", True, f"the consumer did not complete within {WITHIN_S} s of the heal although the node was "
                          f"declared dead {HOLD_S - 3:.0f}+ s before it (it {then})")
        return 1
    finally:
        try:
            c.shutdown()
        finally:
            c.close_network()


if __name__ == "__main__":
    sys.exit(main())

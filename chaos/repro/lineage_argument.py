"""Bug C: a task whose argument had to be rebuilt from lineage never starts.

``make`` runs on node A (its 4 MB result stays there); A is SIGKILLed and replaced; after the death
is detected, ``digest(ref)`` is submitted, pinned to the head (the owner). The head fails to pull
the argument, rebuilds it (``rebuilding the returns of make`` in its raylet.log) on the replacement
node, but the waiting task is never started: it completes only once something else (here a driver
``get`` of the argument, which pulls it to the head) brings the object over.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

import rayredis as ray
from chaos.repro import cluster, report


@ray.remote  # max_retries: 3 by default
def make(n: int) -> Any:
    return np.arange(n, dtype=np.int64)


@ray.remote
def total(a: Any) -> int:
    return int(a.sum())


def main() -> int:
    c = cluster({"slot_0": 100}, {"slot_1": 100})
    try:
        ray.init(address=c.address)
        n = 500_000
        src = make.options(resources={"slot_1": 0.01}).remote(n)
        ray.wait([src], fetch_local=False, timeout=60)
        c.remove_node(next(iter(c.worker_nodes)), allow_graceful=False)
        c.add_node(num_cpus=1, resources={"slot_1": 100})
        time.sleep(7)  # past the node-death timeout (5 s)
        r = total.options(resources={"slot_0": 0.01}).remote(src)
        ready, _ = ray.wait([r], timeout=20)
        if ready:
            return 1 if report("C", ray.get(r) != n * (n - 1) // 2, "the consumer ran on the rebuilt argument") else 0
        ray.get(src, timeout=30)  # the rebuilt object exists: fetching it unblocks the consumer
        unblocked = bool(ray.wait([r], timeout=10)[0])
        then = "ran" if unblocked else "still hangs"
        report("C", True, "the consumer did not start within 20 s of submission although the argument was "
                          f"rebuilt (a driver get of it succeeds; the consumer then {then})")
        return 1
    finally:
        ray.shutdown()
        c.shutdown()


if __name__ == "__main__":
    sys.exit(main())

"""Minimal reproductions of the runtime bugs the chaos runs found (chaos/README.md, "Known failures").

Each script starts its own ``cluster_utils.Cluster``, prints ``BUG <letter> reproduced: ...`` or
``ok: ...`` per check, and exits 1 if any bug reproduced (0 once the runtime is fixed)::

    python -m chaos.repro.actor_calls_node_death     # A, B
    python -m chaos.repro.lineage_argument           # C
    python -m chaos.repro.pg_dead_node               # D, E
    python -m chaos.repro.rebuild_loop               # F (racy: up to 5 attempts)
    python -m chaos.repro.pg_tentative_bundle        # G (racy: 20 groups)
    python -m chaos.repro.data_shard_down            # H
    python -m chaos.repro.partition_pull             # I (root: ip netns; fixed)
    python -m chaos.repro.partition_resolve          # J (root: ip netns; racy; fixed)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rayredis.cluster_utils import Cluster


def report(letter: str, bug: bool, what: str) -> bool:
    print(f"{'BUG ' + letter + ' reproduced' if bug else 'ok'}: {what}", flush=True)
    return bug


def cluster(*node_resources: dict[str, float]) -> Cluster:
    """A 1-CPU head with ``node_resources[0]`` plus one 1-CPU node per further entry."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": node_resources[0]})
    for res in node_resources[1:]:
        c.add_node(num_cpus=1, resources=res)
    c.wait_for_nodes()
    return c


def wait_until(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True

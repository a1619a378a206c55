"""Bug F: a ``get`` right after a node's SIGKILL (before the death is detected) can fail with
``NodeDiedError: ... no retries left (max_retries=3)`` although no retry of the task was used up by
a failure: the owner rebuilds the object, the pull from the node that rebuilt it fails with "node
... no longer has it", and each such failure rebuilds again (``rebuilding the returns of make`` many
times within a second in the head's raylet.log), spending the task's retries. Racy: up to 5 attempts.
"""

from __future__ import annotations

import sys

import numpy as np

import rayredis as ray
from chaos.repro import cluster, report


@ray.remote  # max_retries: 3 by default
def make(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


def attempt() -> str | None:
    c = cluster({}, {"slot_1": 100})
    try:
        ray.init(address=c.address)
        src = make.options(resources={"slot_1": 0.01}).remote(500_000)
        ray.wait([src], fetch_local=False, timeout=60)
        c.remove_node(next(iter(c.worker_nodes)), allow_graceful=False)
        c.add_node(num_cpus=1, resources={"slot_1": 100})
        try:
            ray.get(src, timeout=60)
            return None
        except ray.exceptions.RayError as e:
            return f"{type(e).__name__}: {str(e)[:200]} (head session {c.head_node.session_dir if c.head_node else ''})"
    finally:
        ray.shutdown()
        c.shutdown()


def main() -> int:
    for i in range(5):
        err = attempt()
        if err:
            report("F", True, f"attempt {i + 1}: get after the node's SIGKILL failed: {err}")
            return 1
    report("F", False, "5 gets after a node's SIGKILL returned the rebuilt object")
    return 0


if __name__ == "__main__":
    sys.exit(main())

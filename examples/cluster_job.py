"""A job for a running cluster: which nodes there are, where tasks ran, an actor and a large object.

    RAYREDIS_ADDRESS=head:6379 RAYREDIS_REDIS_PASSWORD=... python examples/cluster_job.py
    docker compose run --rm driver          # the compose file's driver service runs this file

It connects to the cluster named by RAYREDIS_ADDRESS (or the one `rayredis start --head` left on this
machine) and leaves it running. Each result is awaited for at most CLUSTER_JOB_TIMEOUT_S seconds
(default 120): a cluster that cannot run something fails the job with GetTimeoutError, never hangs.
Runs unchanged on Ray (``import ray as rayredis``).
"""

from __future__ import annotations

import collections
import os
import socket
import time

import numpy as np

import rayredis

TIMEOUT_S = float(os.environ.get("CLUSTER_JOB_TIMEOUT_S", "120"))


@rayredis.remote
def where(i: int) -> tuple[int, str, str]:
    time.sleep(0.05)
    return i, rayredis.get_runtime_context().get_node_id(), socket.gethostname()


@rayredis.remote
def checksum(array: np.ndarray) -> int:
    return int(array[::4096].sum())


@rayredis.remote
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def add(self, k: int) -> tuple[int, str]:
        self.n += k
        return self.n, rayredis.get_runtime_context().get_node_id()


def main() -> None:
    start = time.time()
    rayredis.init()
    nodes = [n for n in rayredis.nodes() if n["Alive"]]
    print(f"{len(nodes)} alive nodes:")
    for n in nodes:
        print(f"  {n['NodeID'][:12]}  {n['NodeManagerAddress']:<15} CPU={n['Resources'].get('CPU', 0):g}"
              f"{'  (head)' if n['IsHead'] else ''}")
    print("cluster resources:", {k: v for k, v in rayredis.cluster_resources().items() if not k.startswith("node:")})

    placed = rayredis.get([where.remote(i) for i in range(40)], timeout=TIMEOUT_S)
    ran = collections.Counter(node[:12] for _, node, _ in placed)
    print("40 tasks ran on:", dict(ran))

    counter = Counter.remote()
    for k in range(10):
        counter.add.remote(k)
    total, node = rayredis.get(counter.add.remote(0), timeout=TIMEOUT_S)
    print(f"actor on {node[:12]} counted {total}")

    array = np.arange(10_000_000, dtype=np.int64)  # 80 MB, in the object store once
    ref = rayredis.put(array)
    assert rayredis.get(checksum.remote(ref), timeout=TIMEOUT_S) == int(array[::4096].sum())
    print("80 MB object read by a task: checksum ok")
    print(f"done in {time.time() - start:.2f} s")


if __name__ == "__main__":
    main()

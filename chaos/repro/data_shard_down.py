"""Bug H: with a data shard down, work that crosses nodes stops; work local to the driver's node goes on.

docs/fault-tolerance.md says the runtime never reads the task and object tables, so a dead data shard
leaves tasks unaffected. But a forwarded task's spill record is a task-table write on its data shard,
and a raylet's link sends a batch with tasks only after flushing the table writes queued before it
(docs/scheduling.md, ``Peers._send_loop``), which the writer retries for 120 s. So with one data shard
SIGKILLed, a task pinned to another node does not run, while a task on the driver's own node does.
(A task whose ID hashes to a live shard may still get through: this script tries 8.)
"""

from __future__ import annotations

import os
import signal
import sys

import rayredis as ray
from chaos.faults import _port_of, live
from chaos.repro import cluster, report


@ray.remote
def square(x: int) -> int:
    return x * x


def main() -> int:
    c = cluster({"here": 100}, {"there": 100})
    try:
        ray.init(address=c.address)
        ray.get([square.options(resources={"there": 1}).remote(1),  # warm both nodes
                 square.options(resources={"here": 1}).remote(1)], timeout=60)
        assert c.head_node is not None
        head = c.head_node.handle
        primary_port = int(head.address.rpartition(":")[2])
        data = [r for r in live(head, "redis") if _port_of(r.pid) not in (None, primary_port)]
        if not data:
            print("this cluster has no separate data shard (num_redis_shards=1)")
            return 2
        os.kill(data[0].pid, signal.SIGKILL)
        local = [square.options(resources={"here": 1}).remote(i) for i in range(8)]
        remote = [square.options(resources={"there": 1}).remote(i) for i in range(8)]
        local_done = len(ray.wait(local, num_returns=8, timeout=20)[0])
        remote_done = len(ray.wait(remote, num_returns=8, timeout=20)[0])
        bug = report("H", remote_done < 8 <= local_done,
                     f"with a data shard down, {local_done}/8 tasks on the driver's node and {remote_done}/8 tasks "
                     "pinned to the other node finished within 20 s")
        return 1 if bug else 0
    finally:
        ray.shutdown()
        c.shutdown()


if __name__ == "__main__":
    sys.exit(main())

"""Bugs A and B: calls to a restartable actor (max_restarts=-1, max_task_retries=-1) whose node dies.

A: a call in flight (forwarded to the actor's node) when the node is SIGKILLed fails with
   ActorDiedError ("may or may not have run") instead of being retried on the restarted actor.
B: a call submitted right after the death is noticed (while the caller's raylet has not yet seen the
   actor go RESTARTING) is sent to the dead node and never completes, although the actor is ALIVE
   again on the replacement node. Racy: it reproduces about 2 runs in 3 on a loaded 2-core machine.
"""

from __future__ import annotations

import sys
import time

import rayredis as ray
from chaos.repro import cluster, report


@ray.remote(max_restarts=-1, max_task_retries=-1)
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def step(self, seq: int) -> tuple[int, int]:
        self.n += 1
        return seq, self.n


def main() -> int:
    c = cluster({}, {"slot_1": 100})
    try:
        ray.init(address=c.address)
        doomed = next(n for n in c.worker_nodes)
        ctr = Counter.options(resources={"slot_1": 0.01}).remote()  # type: ignore[attr-defined]
        ray.get(ctr.step.remote(0), timeout=60)
        inflight = ctr.step.remote(1)
        c.remove_node(doomed, allow_graceful=False)
        c.add_node(num_cpus=1, resources={"slot_1": 100})  # the actor can restart here
        bugs = 0
        try:
            ray.get(inflight, timeout=60)
            bugs += report("A", False, "the in-flight call was retried on the restarted actor")
        except ray.exceptions.RayError as e:
            bugs += report("A", True, f"the in-flight call failed: {type(e).__name__}: {str(e)[:160]}")
        after = ctr.step.remote(2)  # submitted the moment the death was noticed
        start = time.monotonic()
        ready, _ = ray.wait([after], timeout=30)
        if ready:
            bugs += report("B", False, f"a call submitted after the death ran ({time.monotonic() - start:.1f} s)")
        else:
            bugs += report("B", True, "a call submitted after the death did not complete within 30 s (the "
                                      "actor is ALIVE on the replacement node)")
        return 1 if bugs else 0
    finally:
        ray.shutdown()
        c.shutdown()


if __name__ == "__main__":
    sys.exit(main())

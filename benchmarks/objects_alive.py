"""Cost of ``wait``, ``get`` and a task round trip while many objects are alive (no O(n) paths).

Holds ``put`` refs to 1,000 then more objects (``--counts``) and, at each count, times the median of
``wait([ref])`` and ``get(ref)`` on one ready object and of ``get(f.remote())``. The figures should
stay flat as the count grows.

    python benchmarks/objects_alive.py [--counts 1000,10000,100000] [--backend rayredis|ray]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="1000,10000,100000")
    ap.add_argument("--backend", default="rayredis", choices=("rayredis", "ray"))
    args = ap.parse_args()
    ray: Any = __import__(args.backend)
    ray.init(num_cpus=1)

    @ray.remote
    def one() -> int:
        return 1

    try:
        alive: list[Any] = []
        probe = ray.put(1)
        for n in (int(c) for c in args.counts.split(",")):
            while len(alive) < n:
                alive.extend(ray.put(i) for i in range(min(5000, n - len(alive))))
            ray.get(alive[-1])
            w, g, t = [], [], []
            for _ in range(200):
                s = time.perf_counter()
                ray.wait([probe], timeout=1)
                w.append(time.perf_counter() - s)
                s = time.perf_counter()
                ray.get(probe)
                g.append(time.perf_counter() - s)
            for _ in range(50):
                s = time.perf_counter()
                ray.get(one.remote())
                t.append(time.perf_counter() - s)
            print(f"{n:7d} objects alive: wait {statistics.median(w) * 1e6:6.1f} us   "
                  f"get {statistics.median(g) * 1e6:6.1f} us   task round trip {statistics.median(t) * 1e3:6.2f} ms",
                  flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()

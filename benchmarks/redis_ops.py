"""Redis operations per unit of work: the figure that bounds one shard's throughput.

Starts a local cluster (``init``), reads every Redis shard's ``INFO commandstats`` (total calls per
command), runs a workload, reads them again and prints the difference per unit of work, per shard
and per command. Workloads: no-op tasks (``.remote()`` then ``get`` in batches), actor method calls
on one actor, ``put`` of small (inline) and large (shared-memory) values, and actor creations.
Counts, not times: a busy machine changes nothing here, so one run is enough.

    python benchmarks/redis_ops.py [--tasks 2000] [--calls 2000] [--puts 1000] [--actors 50] [--json F]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import rayredis as ray
from rayredis._private import worker_context


def _stats(clients: list[tuple[str, Any]]) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for name, c in clients:
        info = c.info("commandstats")
        out[name] = Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()})
    return out


def _diff(a: dict[str, Counter[str]], b: dict[str, Counter[str]]) -> dict[str, Counter[str]]:
    return {s: Counter({k: v for k, v in (b[s] - a[s]).items() if k not in ("info",)}) for s in a}


@ray.remote
def noop() -> None:
    return None


@ray.remote
class Sink:
    def call(self) -> None:
        return None


def _settle() -> None:
    time.sleep(1.5)  # the raylets' batched table writes are flushed (and heartbeats counted in both)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--puts", type=int, default=1000)
    ap.add_argument("--actors", type=int, default=50)
    ap.add_argument("--json", type=str, default="")
    args = ap.parse_args()
    ray.init(num_cpus=2)
    try:
        store = worker_context.global_worker.store  # type: ignore[union-attr]
        clients = [("primary", store.primary)] + [(f"shard{i + 1}", c) for i, c in enumerate(store.shards)
                                                    if c is not store.primary]
        ray.get([noop.remote() for _ in range(50)])  # warm: workers started, function exported
        sink = Sink.remote()
        ray.get(sink.call.remote())
        small, large = np.zeros(10), np.zeros(200_000)

        def tasks() -> None:
            for i in range(0, args.tasks, 200):
                ray.get([noop.remote() for _ in range(min(200, args.tasks - i))])

        def calls() -> None:
            for i in range(0, args.calls, 200):
                ray.get([sink.call.remote() for _ in range(min(200, args.calls - i))])

        def puts_small() -> None:
            refs = [ray.put(small) for _ in range(args.puts)]
            del refs

        def puts_large() -> None:
            for _ in range(args.puts // 10):
                ray.get(ray.put(large))

        def actors() -> None:
            handles = [Sink.options(num_cpus=0).remote() for _ in range(args.actors)]
            ray.get([h.call.remote() for h in handles])
            for h in handles:
                ray.kill(h)

        # An idle baseline over the same settle time, subtracted from each workload's counts.
        _settle()
        a = _stats(clients)
        _settle()
        idle = _diff(a, _stats(clients))
        report: dict[str, Any] = {}
        for name, fn, units in (("task", tasks, args.tasks), ("actor_call", calls, args.calls),
                                ("put_inline", puts_small, args.puts), ("put_shm", puts_large, args.puts // 10),
                                ("actor_create", actors, args.actors)):
            before = _stats(clients)
            t0 = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - t0
            _settle()
            d = _diff(before, _stats(clients))
            per_shard = {}
            for s, cnt in d.items():
                scale = elapsed / 1.5 + 1.0  # idle traffic (heartbeats) during the run and one settle
                work = {k: max(0.0, v - idle[s].get(k, 0) * scale) for k, v in cnt.items()}
                per_shard[s] = {k: round(v / units, 3) for k, v in sorted(work.items(), key=lambda kv: -kv[1]) if v}
            total = sum(sum(v.values()) for v in per_shard.values())
            report[name] = {"units": units, "ops_per_unit": round(total, 2), "per_shard": per_shard}
            print(f"{name:13s} {units:6d} units  {total:6.2f} Redis ops each  "
                  + "  ".join(f"{s}: {sum(v.values()):.2f}" for s, v in per_shard.items()))
            for s, v in per_shard.items():
                top = ", ".join(f"{k} {n}" for k, n in list(v.items())[:6])
                if top:
                    print(f"    {s}: {top}")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()

"""Object spilling throughput: put more than the object store holds (while holding the refs), then get it all back.

Each backend (rayredis, and real Ray if found, as in ``microbenchmark.py``) runs in its own child
process with ``object_store_memory=--store-mib``. A repeat puts ``--objects`` numpy arrays of
``--object-mib`` each (the total several times the store, so most puts spill older objects), then
gets every one back in order (each get restores a spilled object, spilling another) and reads
one byte of every page of it.
Reported: the median over ``--repeats`` of the put and the get phase in GB/s (of object bytes), and
the spill directory's filesystem.

    python benchmarks/spill.py [--backend rayredis|ray|both] [--repeats 3] [--store-mib 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from microbenchmark import REPO_ROOT, _find_ray_python  # noqa: E402


def _child(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    ray: Any = __import__("rayredis" if backend == "rayredis" else "ray")
    mib = 1024 * 1024
    size = args.object_mib * mib
    total = size * args.objects
    # (address="local": a new cluster, even where another one is recorded as current)
    ray.init(address="local", num_cpus=1, object_store_memory=args.store_mib * mib)
    try:
        puts, gets = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            refs = [ray.put(np.full(size, i % 251, dtype=np.uint8)) for i in range(args.objects)]
            t1 = time.perf_counter()
            for i, ref in enumerate(refs):
                a = ray.get(ref)
                # (every page read: a restore that maps a file lazily pays for its reads here)
                assert a.nbytes == size and int(a[::4096].sum()) == (i % 251) * (size // 4096), i
                del a
            t2 = time.perf_counter()
            del refs, ref
            puts.append(total / (t1 - t0) / 1e9)
            gets.append(total / (t2 - t1) / 1e9)
            time.sleep(1.0)  # (the releases reach the store)
    finally:
        ray.shutdown()
    return {"put_spill_gbps": puts, "get_restore_gbps": gets}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["rayredis", "ray", "both"], default="both")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--store-mib", type=int, default=200)
    p.add_argument("--object-mib", type=int, default=40)
    p.add_argument("--objects", type=int, default=15)
    p.add_argument("--ray-python", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args)))
        return 0
    backends = ["rayredis", "ray"] if args.backend == "both" else [args.backend]
    opts = ["--repeats", str(args.repeats), "--store-mib", str(args.store_mib),
            "--object-mib", str(args.object_mib), "--objects", str(args.objects)]
    print(f"{args.objects} x {args.object_mib} MiB through a {args.store_mib} MiB store, "
          f"median of {args.repeats} (tmp filesystem: {_fs_of('/tmp')})")
    failed = False
    for b in backends:
        python = sys.executable
        if b == "ray":
            found, why = _find_ray_python(args.ray_python)
            if found is None:
                print(f"ray: skipped ({why})")
                continue
            python = found
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        out = subprocess.run([python, __file__, "--child", b, *opts], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{b}: FAILED\n{out.stderr[-2000:]}")
            failed = True
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        for k, v in r.items():
            print(f"{b:9} {k:17} {statistics.median(v):6.2f} GB/s  (runs: {', '.join(f'{x:.2f}' for x in v)})")
    return 1 if failed else 0


def _fs_of(path: str) -> str:
    try:
        return subprocess.run(["df", "--output=fstype", path], capture_output=True, text=True).stdout.split()[-1]
    except (OSError, IndexError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())

"""Multi-node benchmarks of rayredis against real Ray: the same ``cluster_utils.Cluster`` workloads on both.

Each (workload, backend) pair runs in its own child process (``--child NAME --workload W``) with a
timeout. The child builds its cluster(s), runs the workload ``--runs`` times, always shuts its clusters
down, checks that none of their processes outlived them, and prints its results as JSON on the last
line of stdout. The parent prints medians and ratios and writes results/multinode-<date>.json.
Interpreters are chosen as in microbenchmark.py (rayredis: the current one; Ray: ``--ray-python``,
``$RAYREDIS_BENCH_RAY_PYTHON``, the current one, then /opt/rayvenv/bin/python).

    python benchmarks/multinode.py [--backend rayredis|ray|both] [--runs 3] [--quick] [--workloads a,b]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from microbenchmark import _find_ray_python, _fmt

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
BACKENDS = ("rayredis", "ray")
MIB = 1024 * 1024
TASK_NODES = 4  # workload "tasks": the head and 3 added nodes
STARTUP_NODES = 8  # workload "startup": the head and 7 added nodes
IDLE_WAIT_S = 5.0  # workload "startup": memory is measured this long after wait_for_nodes() returns
PIN = 0.01  # the amount of a node's custom resource that pins a task or actor to it


@dataclass(frozen=True)
class Metric:
    workload: str
    unit: str
    better: str  # "higher", "lower", or "info" (reported, no ratio)


METRICS: dict[str, Metric] = {  # in table order
    "tasks_per_s": Metric("tasks", "tasks/s", "higher"),
    **{f"tasks_share_node{i}": Metric("tasks", "share", "info") for i in range(TASK_NODES)},
    "get_large_gbps": Metric("cross_node_get", "GB/s", "higher"),
    "get_large_first_gbps": Metric("cross_node_get", "GB/s", "info"),
    "get_small_objects_per_s": Metric("cross_node_get", "objects/s", "higher"),
    "actor_async_calls_per_s": Metric("actor_calls", "calls/s", "higher"),
    "actor_sync_rtt_ms": Metric("actor_calls", "ms", "lower"),
    "add_node_s": Metric("add_node", "s", "lower"),
    "add_node_first_task_s": Metric("add_node", "s", "lower"),
    "startup_8_nodes_s": Metric("startup", "s", "lower"),
    "idle_rss_mib": Metric("startup", "MiB", "lower"),
    "idle_pss_mib": Metric("startup", "MiB", "lower"),
    "idle_processes": Metric("startup", "count", "info"),
    "shutdown_8_nodes_s": Metric("startup", "s", "lower"),
}


#: What the parent sends a child that ran out of time. Not SIGTERM: Ray's driver installs its own
#: SIGTERM handler, which exits without letting the child report the runs it completed.
STOP_SIGNAL = signal.SIGUSR1


class _Terminated(BaseException):
    """Raised in the child by the parent's STOP_SIGNAL (timeout), so the clusters still get shut down."""


# ----------------------------------------------------------------------------- processes (/proc)


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(ppid, state, start time) of ``pid`` from /proc/pid/stat, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[1]), rest[0], rest[19]
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kib(path: str, key: str) -> int:
    """The ``key:  N kB`` value of a /proc status-like file, 0 if unreadable."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _processes(session_dirs: list[str]) -> dict[int, str]:
    """Live processes of this child's clusters: {pid: start time}.

    They are the descendants of this process (the Cluster started them) plus any process whose
    command line names one of the clusters' session directories (in case one was reparented).
    """
    me = os.getpid()
    table: dict[int, tuple[int, str, str]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _stat(int(name))) is not None and st[1] not in "ZX":
            table[int(name)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(children.get(me, []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    marks = [d.rstrip("/") + end for d in session_dirs if d for end in ("/", " ")]
    found |= {pid for pid in table if pid != me and any(m in _cmdline(pid) + " " for m in marks)}
    return {pid: table[pid][2] for pid in found}


def _alive(pid: int, start: str) -> bool:
    st = _stat(pid)
    return st is not None and st[1] not in "ZX" and st[2] == start


def _kill_survivors(pids: dict[int, str], grace_s: float) -> list[str]:
    """Wait up to ``grace_s`` for ``pids`` to exit, then SIGKILL (by PID, start time checked) the rest."""
    deadline = time.monotonic() + grace_s
    while any(_alive(p, s) for p, s in pids.items()) and time.monotonic() < deadline:
        time.sleep(0.2)
    leaked = []
    for pid, start in pids.items():
        if _alive(pid, start):
            leaked.append(f"{pid} ({_cmdline(pid)[:100].strip()})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return leaked


# ----------------------------------------------------------------------------- child side: workloads


@dataclass
class Ctx:
    """What a workload needs: the backend's module and Cluster class, options, and where results go."""

    ray: Any  # `ray` or `rayredis`
    cluster_cls: Any  # its cluster_utils.Cluster
    runs: int
    quick: bool
    big_bytes: int
    probe_timeout: float
    op_timeout: float
    pidfile: Path | None
    samples: dict[str, list[float]] = field(default_factory=dict)
    seen: dict[int, str] = field(default_factory=dict)  # every cluster process seen: {pid: start time}

    def add(self, metric: str, value: float) -> None:
        self.samples.setdefault(metric, []).append(value)
        log(f"{metric} = {value:.4g} {METRICS[metric].unit}")

    def note_processes(self, cluster: Any) -> dict[int, str]:
        """Record the cluster's live processes (for the leak check, also in --pidfile) and return them."""
        procs = _processes(_session_dirs(cluster))
        self.seen.update(procs)
        if self.pidfile is not None:
            self.pidfile.write_text(json.dumps({str(p): s for p, s in self.seen.items()}))
        return procs

    def add_node(self, cluster: Any, **node_args: Any) -> Any:
        node = cluster.add_node(**node_args)
        self.note_processes(cluster)
        return node

    @contextlib.contextmanager
    def cluster(self, connect: bool = True, **head_args: Any) -> Iterator[Any]:
        """A started Cluster (driver connected if ``connect``), shut down however the block ends."""
        cluster = self.cluster_cls(initialize_head=True, head_node_args={"num_cpus": 1, **head_args})
        try:
            self.note_processes(cluster)
            if connect:
                self.ray.init(address=cluster.address)
            yield cluster
        finally:
            try:
                self.note_processes(cluster)
                if self.ray.is_initialized():
                    self.ray.shutdown()
            finally:
                cluster.shutdown()

    def get(self, refs: Any, what: str, timeout: float | None = None) -> Any:
        """``ray.get`` with a timeout, raising TimeoutError that says what did not return."""
        timeout = self.op_timeout if timeout is None else timeout
        try:
            return self.ray.get(refs, timeout=timeout)
        except Exception as exc:
            if "Timeout" in type(exc).__name__:
                raise TimeoutError(f"{what} did not return within {timeout:g} s") from exc
            raise

    def pinned_probe(self, where: Any, node: Any, what: str) -> None:
        """Check that ``where`` (a task/method returning its node ID) runs on ``node``, within the probe timeout."""
        got = self.get(where.remote(), f"{what} (probe)", self.probe_timeout)
        if got != node.node_id:
            raise RuntimeError(f"{what} ran on node {got}, expected {node.node_id}")


def log(msg: str) -> None:
    print(f"[multinode] {msg}", file=sys.stderr, flush=True)


def _session_dirs(cluster: Any) -> list[str]:
    nodes = ([cluster.head_node] if cluster.head_node is not None else []) + list(cluster.worker_nodes)
    return [n.get_session_dir_path() if hasattr(n, "get_session_dir_path") else n.session_dir for n in nodes]


def _remotes(ray: Any) -> tuple[Any, Any, Any]:
    """(where, make_array, Remote): defined here so (cloud)pickle ships them by value."""

    def where() -> str:
        return str(ray.get_runtime_context().get_node_id())

    def make_array(nbytes: int) -> Any:
        import numpy as np

        return np.ones(nbytes, dtype=np.uint8)

    class Remote:
        def where(self) -> str:
            return str(ray.get_runtime_context().get_node_id())

        def f(self) -> None:
            return None

        def put_small(self, count: int, nbytes: int) -> list[Any]:
            self.refs = [ray.put(bytes([i % 256]) * nbytes) for i in range(count)]  # kept alive here
            return self.refs

    return ray.remote(where), ray.remote(make_array), ray.remote(Remote)


def w_tasks(ctx: Ctx) -> None:
    """4 nodes x 1 CPU: no-op tasks submitted from the driver, then gathered; tasks/s and share per node."""
    n = 2_000 if ctx.quick else 10_000
    with ctx.cluster() as cluster:
        nodes = [cluster.head_node] + [ctx.add_node(cluster, num_cpus=1) for _ in range(TASK_NODES - 1)]
        cluster.wait_for_nodes()
        where = _remotes(ctx.ray)[0]
        ctx.get([where.remote() for _ in range(n // 10)], f"{n // 10} warm-up tasks")
        for _ in range(ctx.runs):
            start = time.perf_counter()
            ids = ctx.get([where.remote() for _ in range(n)], f"{n} tasks")
            ctx.add("tasks_per_s", n / (time.perf_counter() - start))
            counts = Counter(ids)
            for i, node in enumerate(nodes):
                ctx.add(f"tasks_share_node{i}", counts.pop(node.node_id, 0) / n)
            if counts:
                raise RuntimeError(f"tasks ran on nodes not in the cluster: {dict(counts)}")


def w_cross_node_get(ctx: Ctx) -> None:
    """The driver (on the head) gets a big array and many 1 KiB objects created on another node."""
    size, small_n = ctx.big_bytes, (200 if ctx.quick else 1_000)
    store = 2 * size + 256 * MIB  # room for the array (and one more being freed) on both nodes
    with ctx.cluster(object_store_memory=store) as cluster:
        n1 = ctx.add_node(cluster, num_cpus=1, resources={"n1": 1}, object_store_memory=store)
        cluster.wait_for_nodes()
        where, make_array, remote_cls = _remotes(ctx.ray)
        ctx.pinned_probe(where.options(resources={"n1": PIN}), n1, "a task pinned to n1")
        make = make_array.options(resources={"n1": PIN})
        # Runs 0 and 1 are warm-ups: in Ray, the first gets of a cluster are sometimes several times slower
        # (see README.md). Run 0 is reported as get_large_first_gbps.
        for run in range(ctx.runs + 2):
            ref = make.remote(size)
            ready, _ = ctx.ray.wait([ref], timeout=ctx.op_timeout, fetch_local=False)
            if not ready:
                raise TimeoutError(f"the {size // MIB} MiB array was not created within {ctx.op_timeout:g} s")
            start = time.perf_counter()
            arr = ctx.get(ref, f"the {size // MIB} MiB array")
            elapsed = time.perf_counter() - start
            if arr.nbytes != size or arr[-1] != 1:
                raise RuntimeError(f"got a wrong array: {arr.nbytes} bytes, last byte {arr[-1]}")
            del arr, ref
            if run != 1:
                ctx.add("get_large_gbps" if run else "get_large_first_gbps", size / 1e9 / elapsed)
        maker = remote_cls.options(resources={"n1": PIN}).remote()
        ctx.pinned_probe(maker.where, n1, "an actor pinned to n1")
        for run in range(ctx.runs + 1):
            refs = ctx.get(maker.put_small.remote(small_n, 1024), f"{small_n} remote puts")
            start = time.perf_counter()
            values = ctx.get(refs, f"{small_n} small remote objects")
            elapsed = time.perf_counter() - start
            if len(values) != small_n or any(len(v) != 1024 for v in values):
                raise RuntimeError("got wrong small objects")
            if run:
                ctx.add("get_small_objects_per_s", small_n / elapsed)


def w_actor_calls(ctx: Ctx) -> None:
    """An actor on a non-head node: async calls/s (submit all, then get all) and sync round-trip latency."""
    n_async, n_sync = (1_000, 100) if ctx.quick else (5_000, 500)
    with ctx.cluster() as cluster:
        n1 = ctx.add_node(cluster, num_cpus=1, resources={"n1": 1})
        cluster.wait_for_nodes()
        actor = _remotes(ctx.ray)[2].options(resources={"n1": PIN}).remote()
        ctx.pinned_probe(actor.where, n1, "an actor pinned to n1")
        ctx.get([actor.f.remote() for _ in range(n_async // 10)], "warm-up calls")
        for _ in range(ctx.runs):
            start = time.perf_counter()
            ctx.get([actor.f.remote() for _ in range(n_async)], f"{n_async} async calls")
            ctx.add("actor_async_calls_per_s", n_async / (time.perf_counter() - start))
            latencies = []
            for _ in range(n_sync):
                start = time.perf_counter()
                ctx.get(actor.f.remote(), "a sync call", ctx.probe_timeout)
                latencies.append(time.perf_counter() - start)
            ctx.add("actor_sync_rtt_ms", statistics.median(latencies) * 1e3)


def w_add_node(ctx: Ctx) -> None:
    """Per run, a new node with its own custom resource: add_node() time, and until a task pinned to it returns."""
    with ctx.cluster() as cluster:
        where = _remotes(ctx.ray)[0]
        ctx.get(where.remote(), "a task on the head", ctx.probe_timeout)
        for run in range(ctx.runs):
            res = f"late{run}"
            start = time.perf_counter()
            node = cluster.add_node(num_cpus=1, resources={res: 1})  # not ctx.add_node: timed
            try:
                ctx.add("add_node_s", time.perf_counter() - start)
                got = ctx.get(where.options(resources={res: PIN}).remote(), f"a task pinned to {res}",
                              ctx.probe_timeout)
                ctx.add("add_node_first_task_s", time.perf_counter() - start)
                if got != node.node_id:
                    raise RuntimeError(f"the task pinned to {res} ran on {got}, expected {node.node_id}")
            finally:
                ctx.note_processes(cluster)
                cluster.remove_node(node)


def w_startup(ctx: Ctx) -> None:
    """Per run, a fresh 8-node cluster: time to build it, its idle memory after 5 s, time to shut it down."""
    for _ in range(ctx.runs):
        start = time.perf_counter()
        with ctx.cluster(connect=False) as cluster:
            for _ in range(STARTUP_NODES - 1):
                cluster.add_node(num_cpus=1)  # not ctx.add_node: timed
            cluster.wait_for_nodes()
            ctx.add("startup_8_nodes_s", time.perf_counter() - start)
            ctx.note_processes(cluster)
            time.sleep(IDLE_WAIT_S)
            procs = ctx.note_processes(cluster)
            ctx.add("idle_rss_mib", sum(_kib(f"/proc/{p}/status", "VmRSS") for p in procs) / 1024)
            ctx.add("idle_pss_mib", sum(_kib(f"/proc/{p}/smaps_rollup", "Pss") for p in procs) / 1024)
            ctx.add("idle_processes", len(procs))
            start = time.perf_counter()
        ctx.add("shutdown_8_nodes_s", time.perf_counter() - start)


WORKLOADS: dict[str, Callable[[Ctx], None]] = {
    "tasks": w_tasks, "cross_node_get": w_cross_node_get, "actor_calls": w_actor_calls,
    "add_node": w_add_node, "startup": w_startup,
}


def _summary(samples: dict[str, list[float]]) -> dict[str, Any]:
    return {m: {"unit": METRICS[m].unit, "better": METRICS[m].better, "median": statistics.median(xs),
                "min": min(xs), "max": max(xs), "samples": xs} for m, xs in samples.items()}


def _child_main(args: argparse.Namespace) -> int:
    def on_stop(*_: Any) -> None:
        signal.signal(STOP_SIGNAL, signal.SIG_IGN)  # once: do not interrupt the shutdown that follows
        raise _Terminated("stopped by the harness (timeout)")

    signal.signal(STOP_SIGNAL, on_stop)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # atexit hooks (Cluster.shutdown) still run
    backend, workload = args.child, args.workload_list[0]
    out: dict[str, Any] = {"backend": backend, "workload": workload, "python": sys.executable, "ok": False}
    ctx = Ctx(None, None, args.runs, args.quick, args.big_bytes, args.probe_timeout, args.op_timeout, args.pidfile)
    try:
        ctx.ray = importlib.import_module(backend)  # i.e. `import rayredis as ray` / `import ray`
        ctx.cluster_cls = importlib.import_module(f"{backend}.cluster_utils").Cluster
        out["version"] = getattr(ctx.ray, "__version__", "unknown")
        WORKLOADS[workload](ctx)
        out["ok"] = True
    except (Exception, _Terminated) as exc:  # noqa: BLE001 - report any failure as JSON to the parent
        out["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
    signal.signal(STOP_SIGNAL, signal.SIG_IGN)
    leaked = _kill_survivors({**ctx.seen, **_processes([])}, grace_s=10.0)
    if leaked:
        out["ok"] = False
        out["error"] = "; ".join([*filter(None, [out.get("error")]), f"killed {len(leaked)} leaked processes: "
                                  + ", ".join(leaked)])
    out["metrics"] = _summary(ctx.samples)
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


# ----------------------------------------------------------------------------- parent side


def _run_child(backend: str, python: str, workload: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one workload on one backend in its own process (and session), with ``args.timeout``."""
    pidfile = Path(tempfile.gettempdir()) / f"multinode-{os.getpid()}-{backend}-{workload}.pids"
    cmd = [python, str(Path(__file__).resolve()), "--child", backend, "--workloads", workload,
           "--runs", str(args.runs), "--big-mib", str(args.big_bytes // MIB), "--pidfile", str(pidfile),
           "--probe-timeout", str(args.probe_timeout), "--op-timeout", str(args.op_timeout)]
    cmd += ["--quick"] if args.quick else []
    env = dict(os.environ)
    if backend == "rayredis":  # make the in-repo package importable
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    print(f"== {workload} / {backend}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, text=True, stdout=subprocess.PIPE, start_new_session=True)
    stdout, problem = "", None
    try:
        stdout = proc.communicate(timeout=args.timeout)[0]
    except subprocess.TimeoutExpired:
        problem = f"timed out after {args.timeout:g} s"
        # First the child's own stop (it shuts its clusters down, then prints what it has), then
        # SIGTERM (Ray's driver drains and stops its nodes), then SIGKILL to the child's session.
        for sig, grace in ((STOP_SIGNAL, 120), (signal.SIGTERM, 60), (signal.SIGKILL, None)):
            with contextlib.suppress(ProcessLookupError):
                if sig == signal.SIGKILL:
                    os.killpg(proc.pid, sig)  # the child's own session, started above
                else:
                    proc.send_signal(sig)
            try:
                stdout = proc.communicate(timeout=grace)[0]
                break
            except subprocess.TimeoutExpired:
                continue
    result: dict[str, Any] = {"backend": backend, "workload": workload, "python": python, "ok": False}
    for line in reversed((stdout or "").splitlines()):
        with contextlib.suppress(json.JSONDecodeError):
            if line.startswith("{"):
                result = dict(json.loads(line))
                break
    else:
        result["error"] = f"exited with code {proc.returncode} without printing results (see stderr above)"
    if problem:
        result["ok"], result["error"] = False, problem + (f" ({result['error']})" if result.get("error") else "")
    with contextlib.suppress(OSError, ValueError):
        leaked = _kill_survivors({int(p): s for p, s in json.loads(pidfile.read_text()).items()}, grace_s=5.0)
        if leaked:
            result["ok"] = False
            result["error"] = f"{result.get('error') or ''}; harness killed {len(leaked)} leaked processes"
    pidfile.unlink(missing_ok=True)
    return result


def _ratio(rr: dict[str, Any] | None, ray: dict[str, Any] | None) -> float | None:
    """>=1 means rayredis is better: rayredis/ray for higher-is-better metrics, ray/rayredis for lower."""
    if not rr or not ray or rr["better"] == "info" or not rr["median"] or not ray["median"]:
        return None
    a, b = float(rr["median"]), float(ray["median"])
    return a / b if rr["better"] == "higher" else b / a


def _print_table(results: dict[str, dict[str, dict[str, Any]]], runs: int) -> dict[str, float | None]:
    print(f"\nMedians (min..max) over {runs} runs. ratio >= 1 always means rayredis is better: rayredis/Ray for")
    print("rates (higher is better), Ray/rayredis for times and memory (lower is better); info rows have no")
    print("ratio. '<< 0.5x' flags metrics where rayredis is below half of Ray.\n")
    row = "{:<15} {:<24} {:<9} {:>9} {:<19} {:>9} {:<19} {:>6} {}"
    head = row.format("workload", "metric", "unit", "rayredis", "(min..max)", "ray", "(min..max)", "ratio", "")
    print(head + "\n" + "-" * len(head))
    ratios: dict[str, float | None] = {}
    for name, metric in METRICS.items():
        per = results.get(metric.workload, {})
        if not per:
            continue
        cols = []
        for backend in BACKENDS:
            res = per.get(backend)
            m = (res or {}).get("metrics", {}).get(name)
            cols.append(_fmt(m["median"]) if m else ("FAILED" if res and not res.get("ok") else "-"))
            cols.append(f"({_fmt(m['min'])}..{_fmt(m['max'])})" if m else "")
        rr, ray = ((per.get(b) or {}).get("metrics", {}).get(name) for b in BACKENDS)
        ratios[name] = r = _ratio(rr, ray)
        partial = [b for b in BACKENDS if per.get(b, {}).get("metrics", {}).get(name) and not per[b].get("ok")]
        flags = ["<< 0.5x"] if r is not None and r < 0.5 else []
        flags += [f"(partial: {b} FAILED later)" for b in partial]
        print(row.format(metric.workload, name, metric.unit, *cols, "-" if r is None else f"{r:.2f}x",
                         " ".join(flags)))
    return ratios


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="measured runs per workload (default 3)")
    p.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"comma-separated subset of: {', '.join(WORKLOADS)}")
    p.add_argument("--quick", action="store_true", help="fewer tasks and calls, a 256 MiB array (smoke test)")
    p.add_argument("--big-mib", type=int, help="size of the cross-node array in MiB (default 1024, --quick 256)")
    p.add_argument("--ray-python", help="python with real Ray installed (or $RAYREDIS_BENCH_RAY_PYTHON)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per workload and backend")
    p.add_argument("--probe-timeout", type=float, default=30.0,
                   help="seconds allowed for one pinned task or sync call (default 30)")
    p.add_argument("--op-timeout", type=float, default=300.0, help="seconds allowed for one bulk get (default 300)")
    p.add_argument("--output", type=Path, help="results JSON (default results/multinode-<date>.json)")
    p.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    p.add_argument("--pidfile", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.workload_list = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in args.workload_list if w not in WORKLOADS]
    if unknown or not args.workload_list:
        p.error(f"unknown or empty --workloads {unknown}; choose from {', '.join(WORKLOADS)}")
    if args.runs < 1 or (args.big_mib is not None and args.big_mib < 1):
        p.error("--runs and --big-mib must be >= 1")
    args.big_bytes = (args.big_mib or (256 if args.quick else 1024)) * MIB
    args.output = args.output or HERE / "results" / f"multinode-{date.today().isoformat()}.json"
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.child:
        return _child_main(args)
    pythons: dict[str, str | None] = {}
    notes: dict[str, str] = {}
    if args.backend in ("rayredis", "both"):
        pythons["rayredis"] = sys.executable
    if args.backend in ("ray", "both"):
        pythons["ray"], notes["ray"] = _find_ray_python(args.ray_python)
        print(notes["ray"], file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for workload in args.workload_list:
        for backend, py in pythons.items():
            res = _run_child(backend, py, workload, args) if py else {"ok": False, "error": notes[backend]}
            results.setdefault(workload, {})[backend] = res
    ratios = _print_table(results, args.runs)
    print()
    failed = False  # an unavailable Ray is reported but is not a failure
    for workload, per in results.items():
        for backend, res in per.items():
            if not res.get("ok"):
                failed = failed or pythons[backend] is not None
                print(f"{workload} / {backend}: FAILED: {res.get('error')}")
    report = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "options": {"runs": args.runs, "quick": args.quick, "workloads": args.workload_list,
                    "big_mib": args.big_bytes // MIB, "probe_timeout": args.probe_timeout,
                    "op_timeout": args.op_timeout, "timeout": args.timeout},
        "results": results,
        "ratios": ratios,
        "below_half_of_ray": [m for m, r in ratios.items() if r is not None and r < 0.5],
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

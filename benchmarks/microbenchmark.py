"""Microbenchmarks of rayredis against real Ray, through the public Ray API only.

Each backend runs in its own child process (``--child NAME``) that prints its results as JSON on
the last line of stdout; the parent prints a comparison table and writes results/latest.json.
rayredis runs with the current interpreter (``import rayredis as ray``). Ray runs with
``--ray-python`` or ``$RAYREDIS_BENCH_RAY_PYTHON`` if given, else the current interpreter if
``import ray`` works there, else ``/opt/rayvenv/bin/python`` if it exists.

    python benchmarks/microbenchmark.py [--backend rayredis|ray|both] [--repeats 5] [--quick]
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
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
DEFAULT_RAY_PYTHON = "/opt/rayvenv/bin/python"
RAY_PYTHON_ENV = "RAYREDIS_BENCH_RAY_PYTHON"
BACKENDS = ("rayredis", "ray")
LARGE_BYTES = 100 * 1024 * 1024  # the 100 MiB array of put_large / get_large
CHAIN_LEN = 100
WAIT_REFS = 1000
BUDGET_S = 2.0  # time bound of one measured repeat (the count bound is per case)
QUICK_BUDGET_S = 0.5
WARMUP_BUDGET_S = 0.5

Runner = Callable[[int, float], dict[str, float]]  # (max ops, time budget s) -> {metric: value}


@dataclass(frozen=True)
class Metric:
    unit: str
    higher_is_better: bool


@dataclass(frozen=True)
class Case:
    factory: Callable[[Any, SimpleNamespace], Runner]  # (ray module, remotes) -> runner; does setup
    ops: int  # count bound of one repeat
    quick_ops: int


# Reported metrics, in table order; put_large yields two (latency and bandwidth).
METRICS: dict[str, Metric] = {
    "tasks_async": Metric("tasks/s", True),
    "tasks_sync": Metric("tasks/s", True),
    "actor_calls_async": Metric("calls/s", True),
    "actor_calls_sync": Metric("calls/s", True),
    "put_small": Metric("calls/s", True),
    "get_small": Metric("calls/s", True),
    "put_large": Metric("s", False),
    "put_large_gbps": Metric("GB/s", True),
    "get_large": Metric("ms", False),
    "task_chain": Metric("ms/chain", False),
    "wait_1000": Metric("ms", False),
}


def _timed_loop(op: Callable[[], object], n: int, budget: float) -> tuple[int, float]:
    """Call ``op`` up to ``n`` times or until ``budget`` seconds pass; return (count, seconds)."""
    start = time.perf_counter()
    deadline = start + budget
    count = 0
    while count < n:
        op()
        count += 1
        if time.perf_counter() >= deadline:
            break
    return count, time.perf_counter() - start


def _loop(metric: str, op: Callable[[], object]) -> Runner:
    """Runner calling ``op`` in a loop; reports calls/s for rate metrics, else ms per call."""

    def run(n: int, budget: float) -> dict[str, float]:
        count, elapsed = _timed_loop(op, n, budget)
        return {metric: count / elapsed if METRICS[metric].higher_is_better else elapsed / count * 1e3}

    return run


def _async(metric: str, ray: Any, submit: Callable[[], Any]) -> Runner:
    """Runner submitting up to n calls (submission stops at the budget), then getting all; calls/s."""

    def run(n: int, budget: float) -> dict[str, float]:
        start = time.perf_counter()
        deadline = start + budget
        refs: list[Any] = []
        while len(refs) < n:
            refs.append(submit())
            if time.perf_counter() >= deadline:
                break
        ray.get(refs)
        return {metric: len(refs) / (time.perf_counter() - start)}

    return run


def _make_remotes(ray: Any) -> SimpleNamespace:
    # Defined locally so (cloud)pickle ships them by value: workers never import this file.
    def noop() -> None:
        return None

    def ident(x: Any) -> Any:
        return x

    class Actor:
        def m(self) -> None:
            return None

    return SimpleNamespace(noop=ray.remote(noop), ident=ray.remote(ident), actor_cls=ray.remote(Actor))


def _actor(ray: Any, r: SimpleNamespace) -> Any:
    """The one benchmark actor, created (and waited for) on first use."""
    if not hasattr(r, "actor"):
        r.actor = r.actor_cls.remote()
        ray.get(r.actor.m.remote())
    return r.actor


def _actor_calls_sync(ray: Any, r: SimpleNamespace) -> Runner:
    actor = _actor(ray, r)
    return _loop("actor_calls_sync", lambda: ray.get(actor.m.remote()))


def _get_small(ray: Any, r: SimpleNamespace) -> Runner:
    ref = ray.put(1)
    return _loop("get_small", lambda: ray.get(ref))


def _put_large(ray: Any, r: SimpleNamespace) -> Runner:
    import numpy as np

    arr = np.zeros(LARGE_BYTES, dtype=np.uint8)

    def run(n: int, budget: float) -> dict[str, float]:
        count, elapsed = _timed_loop(lambda: ray.put(arr), n, budget)  # each ref is dropped at once
        latency = elapsed / count
        return {"put_large": latency, "put_large_gbps": LARGE_BYTES / 1e9 / latency}

    return run


def _get_large(ray: Any, r: SimpleNamespace) -> Runner:
    import numpy as np

    ref = ray.put(np.zeros(LARGE_BYTES, dtype=np.uint8))
    return _loop("get_large", lambda: ray.get(ref))


def _task_chain(ray: Any, r: SimpleNamespace) -> Runner:
    def chain() -> None:
        ref = r.ident.remote(0)
        for _ in range(CHAIN_LEN - 1):
            ref = r.ident.remote(ref)
        ray.get(ref)

    return _loop("task_chain", chain)


def _wait_1000(ray: Any, r: SimpleNamespace) -> Runner:
    refs = [r.noop.remote() for _ in range(WAIT_REFS)]
    ray.get(refs)
    return _loop("wait_1000", lambda: ray.wait(refs, num_returns=WAIT_REFS))


CASES: dict[str, Case] = {
    "tasks_async": Case(lambda ray, r: _async("tasks_async", ray, r.noop.remote), 10_000, 1_000),
    "tasks_sync": Case(lambda ray, r: _loop("tasks_sync", lambda: ray.get(r.noop.remote())), 2_000, 200),
    "actor_calls_async": Case(
        lambda ray, r: _async("actor_calls_async", ray, _actor(ray, r).m.remote), 10_000, 1_000
    ),
    "actor_calls_sync": Case(_actor_calls_sync, 2_000, 200),
    "put_small": Case(lambda ray, r: _loop("put_small", lambda: ray.put(1)), 20_000, 2_000),
    "get_small": Case(_get_small, 20_000, 2_000),
    "put_large": Case(_put_large, 50, 3),
    "get_large": Case(_get_large, 5_000, 500),
    "task_chain": Case(_task_chain, 20, 2),
    "wait_1000": Case(_wait_1000, 200, 20),
}


def run_suite(
    ray_module: Any,
    repeats: int = 5,
    cases: Iterable[str] | None = None,
    quick: bool = False,
    log: Callable[[str], None] = lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Run the selected cases against ``ray_module`` (``ray`` or ``rayredis``).

    Returns ``{"metrics": {name: {unit, higher_is_better, median, min, max, samples}},
    "errors": {case: message}}``. A failing case is recorded and the suite goes on.
    """
    budget = QUICK_BUDGET_S if quick else BUDGET_S
    samples: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    ray_module.init(num_cpus=2)
    try:
        remotes = _make_remotes(ray_module)
        for name in cases or CASES:
            n = CASES[name].quick_ops if quick else CASES[name].ops
            try:
                runner = CASES[name].factory(ray_module, remotes)
                runner(max(1, n // 10), min(budget, WARMUP_BUDGET_S))  # warm-up
                for _ in range(repeats):
                    for metric, value in runner(n, budget).items():
                        samples.setdefault(metric, []).append(value)
                del runner  # free the case's objects (e.g. the 100 MiB ref) before the next case
            except Exception as exc:  # noqa: BLE001 - keep going: one broken API should not hide the rest
                errors[name] = f"{type(exc).__name__}: {exc}"
                log(f"{name}: FAILED {errors[name]}")
                traceback.print_exc(file=sys.stderr)
                continue
            done = [m for m in METRICS if m == name or m.startswith(name + "_")]  # + put_large_gbps
            log(", ".join(f"{m}: {statistics.median(samples[m]):.4g} {METRICS[m].unit}" for m in done))
    finally:
        ray_module.shutdown()
    metrics: dict[str, Any] = {}
    for m, xs in samples.items():
        stats = {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "samples": xs}
        metrics[m] = {"unit": METRICS[m].unit, "higher_is_better": METRICS[m].higher_is_better, **stats}
    return {"metrics": metrics, "errors": errors}


def _child_main(backend: str, repeats: int, cases: list[str], quick: bool) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so run_suite's shutdown() still runs
    out: dict[str, Any] = {"backend": backend, "python": sys.executable, "ok": False}
    try:
        module = importlib.import_module(backend)  # i.e. `import rayredis as ray` / `import ray`
        out["version"] = getattr(module, "__version__", "unknown")
        out.update(run_suite(module, repeats, cases, quick))
        out["ok"] = True
    except Exception as exc:  # noqa: BLE001 - report any failure as JSON to the parent
        out["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


# ----------------------------------------------------------------------------- parent side


def _has_real_ray(python: str) -> bool:
    # ray._raylet is Ray's compiled core: this cannot be satisfied by a `ray` alias of rayredis.
    cmd = [python, "-c", "import ray._raylet"]
    try:
        return subprocess.run(cmd, cwd=HERE, capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _find_ray_python(explicit: str | None) -> tuple[str | None, str]:
    """Return (python or None, note): the interpreter to run the Ray backend with."""
    requested = explicit or os.environ.get(RAY_PYTHON_ENV)
    if requested:
        ok = _has_real_ray(requested)
        return (requested, f"Ray: using {requested}") if ok else (None, f"Ray: not importable by {requested}")
    if _has_real_ray(sys.executable):
        return sys.executable, f"Ray: using the current interpreter {sys.executable}"
    if Path(DEFAULT_RAY_PYTHON).exists() and _has_real_ray(DEFAULT_RAY_PYTHON):
        return DEFAULT_RAY_PYTHON, f"Ray: auto-detected {DEFAULT_RAY_PYTHON}"
    return None, f"Ray: not available (pass --ray-python or set ${RAY_PYTHON_ENV})"


def _run_child(backend: str, python: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one backend in its own process; its stderr streams through, its stdout ends with JSON."""
    cmd = [python, str(Path(__file__).resolve()), "--child", backend, "--repeats", str(args.repeats)]
    cmd += ["--cases", ",".join(args.case_list)] + (["--quick"] if args.quick else [])
    env = dict(os.environ)
    if backend == "rayredis":  # make the in-repo package importable
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    print(f"== {backend}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, text=True, stdout=subprocess.PIPE, start_new_session=True
    )
    stdout, problem = "", None
    try:
        stdout = proc.communicate(timeout=args.timeout)[0]
    except subprocess.TimeoutExpired:
        problem = f"timed out after {args.timeout:.0f} s"
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the child's own session, started above
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                stdout = proc.communicate(timeout=30)[0]
                break
    for line in reversed((stdout or "").splitlines()):
        with contextlib.suppress(json.JSONDecodeError):
            if line.startswith("{"):
                return dict(json.loads(line))
    error = problem or f"exited with code {proc.returncode} without printing results (see stderr above)"
    return {"backend": backend, "python": python, "ok": False, "error": error}


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def _ratio(rr: dict[str, Any] | None, ray: dict[str, Any] | None) -> float | None:
    """>1 means rayredis is better: rayredis/ray for rates, ray/rayredis for latencies."""
    if not rr or not ray or not rr["median"] or not ray["median"]:
        return None
    a, b = float(rr["median"]), float(ray["median"])
    return a / b if rr["higher_is_better"] else b / a


def _print_table(results: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    per = {b: results.get(b, {}).get("metrics", {}) for b in BACKENDS}
    print("\nMedians (min..max) of the repeats. ratio: >1 means rayredis is better")
    print("(rates: rayredis/ray; latencies, units s and ms: ray/rayredis).\n")
    row = "{:<18} {:<9} {:>11} {:<20} {:>11} {:<20} {:>7}"
    head = row.format("case", "unit", "rayredis", "(min..max)", "ray", "(min..max)", "ratio")
    print(head + "\n" + "-" * len(head))
    ratios: dict[str, float | None] = {}
    for name, metric in METRICS.items():
        rr, ray = per["rayredis"].get(name), per["ray"].get(name)
        if rr is None and ray is None:
            continue
        ratios[name] = _ratio(rr, ray)
        cols = []
        for m in (rr, ray):
            cols.append(_fmt(m["median"] if m else None))
            cols.append(f"({_fmt(m['min'])}..{_fmt(m['max'])})" if m else "")
        ratio = "-" if ratios[name] is None else f"{ratios[name]:.2f}x"
        print(row.format(name, metric.unit, *cols, ratio))
    return ratios


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="measured repeats per case (default 5)")
    p.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of: {', '.join(CASES)}")
    p.add_argument("--quick", action="store_true", help="fewer ops and shorter time bounds (smoke test)")
    p.add_argument("--ray-python", help=f"python with real Ray installed (or ${RAY_PYTHON_ENV})")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per backend child")
    p.add_argument("--output", type=Path, default=HERE / "results" / "latest.json")
    p.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.case_list = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.case_list if c not in CASES]
    if unknown or not args.case_list:
        p.error(f"unknown or empty --cases {unknown}; choose from {', '.join(CASES)}")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.child:
        return _child_main(args.child, args.repeats, args.case_list, args.quick)
    pythons: dict[str, str | None] = {}
    notes: dict[str, str] = {}
    if args.backend in ("rayredis", "both"):
        pythons["rayredis"] = sys.executable
    if args.backend in ("ray", "both"):
        pythons["ray"], notes["ray"] = _find_ray_python(args.ray_python)
        print(notes["ray"], file=sys.stderr)
    results: dict[str, dict[str, Any]] = {
        b: _run_child(b, py, args) if py else {"backend": b, "ok": False, "error": notes[b]}
        for b, py in pythons.items()
    }
    ratios = _print_table(results)
    failed = False  # an unavailable Ray is reported but is not a failure
    print()
    for backend, res in results.items():
        if res.get("ok"):
            print(f"{backend}: ok (version {res.get('version')}, {res.get('python')})")
        else:
            failed = failed or pythons[backend] is not None
            print(f"{backend}: FAILED: {res.get('error')}" if pythons[backend] else res["error"])
        for case, err in res.get("errors", {}).items():
            failed = True
            print(f"{backend}: case {case} FAILED: {err}")
    report = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "options": {"repeats": args.repeats, "quick": args.quick, "cases": args.case_list},
        "backends": results,
        "ratios": ratios,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

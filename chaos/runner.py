"""Run the known-answer workload on a local cluster while faults fire, then verify and report.

    python -m chaos.runner --seed 1 --duration 60 --faults gcs,worker --mean-interval 5

Exit status: 0 when every submitted item came back with the expected value (lost == 0 and
wrong == 0) and every fault was injected as planned; 1 otherwise; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

import rayredis
from chaos.faults import Fault, Planned, fault_rng, make_faults, plan_schedule
from chaos.watch import ProcessWatch
from chaos.workload import KINDS, Item, Workload


def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(f"[chaos] {msg}", file=sys.stderr, flush=True)


class FaultThread(threading.Thread):
    """Fires the planned faults at their times (seconds after ``t0``) until stopped.

    Each fault kind has its own lane (a thread): faults of different kinds can overlap (a worker
    dies while the GCS is down), but faults of one kind cannot: a fault planned while the previous
    one of its kind is still in progress (e.g. the GCS is still down) is skipped and recorded as
    such. Queuing it instead would fire it the moment the replacement came up, leaving the cluster
    without a GCS for good whenever the downtime exceeds the mean interval.
    """

    def __init__(self, plan: list[Planned], faults: dict[str, Fault], handle: Any, seed: int, t0: float,
                 quiet: bool):
        super().__init__(name="chaos-faults", daemon=True)
        self.plan = plan
        self.faults = faults
        self.handle = handle
        self.seed = seed
        self.t0 = t0
        self.quiet = quiet
        self.stop = threading.Event()
        self.fired: list[dict[str, Any]] = []
        self._busy: set[str] = set()

    def run(self) -> None:
        lanes = {k: queue.SimpleQueue[Planned | None]() for k in self.faults}
        threads = [threading.Thread(target=self._lane, args=(q,), name=f"chaos-fault-{k}", daemon=True)
                   for k, q in lanes.items()]
        for t in threads:
            t.start()
        try:
            for p in self.plan:
                if self.stop.wait(max(0.0, self.t0 + p.t - time.monotonic())):
                    break
                if p.kind in self._busy:
                    self._skip(p, f"the previous {p.kind} fault was still in progress")
                    continue
                self._busy.add(p.kind)
                lanes[p.kind].put(p)
        finally:
            for q in lanes.values():
                q.put(None)
            for t in threads:
                t.join()

    def _lane(self, q: queue.SimpleQueue[Planned | None]) -> None:
        while (p := q.get()) is not None:
            try:
                if not self.stop.is_set():
                    self._fire(p)
            finally:
                self._busy.discard(p.kind)

    def _skip(self, p: Planned, reason: str) -> None:
        t = time.monotonic()
        self.fired.append({"kind": p.kind, "monotonic": t, "target_pid": None, "skipped": reason,
                           "index": p.index, "planned_t": p.t, "t": round(t - self.t0, 4)})
        _log(f"t={t - self.t0:.2f}s fault #{p.index} {p.kind}: skipped, {reason}", self.quiet)

    def _fire(self, p: Planned) -> None:
        try:
            rec = self.faults[p.kind].fire(fault_rng(self.seed, p.index), self.handle)
        except Exception as e:  # noqa: BLE001 - report a failed injection instead of dying silently
            rec = {"kind": p.kind, "monotonic": time.monotonic(), "target_pid": None,
                   "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        rec["index"] = p.index
        rec["planned_t"] = p.t
        rec["t"] = round(rec["monotonic"] - self.t0, 4)
        self.fired.append(rec)
        what = rec.get("skipped") or rec.get("error") or f"killed pid {rec.get('target_pid')}"
        extra = f", replacement pid {rec['new_pid']}" if rec.get("new_pid") else ""
        if rec.get("actor"):
            extra += f", hosting actor {rec['actor'].get('name') or rec['actor']['actor_id'][:12]}"
        _log(f"t={rec['t']:.2f}s fault #{p.index} {p.kind}: {what}{extra}", self.quiet)


def _percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _recovery(fault: dict[str, Any], items: list[Item]) -> dict[str, Any]:
    """How long after the fault (its kill, at ``fault["t"]``) results flowed again.

    ``recovery_s``: until the next successful result after the fault (any item).
    ``new_work_recovery_s``: until the first success of an item *submitted* after the fault.
    ``target_recovery_s``: the same for the work the fault actually hurt: calls to the actor whose
    worker was killed, or new actors (which need the GCS to be scheduled) after a GCS kill.
    ``recovery_by_kind_s``: ``new_work_recovery_s`` per item kind.
    """
    t = fault["t"]
    ok = [i for i in items if i.status == "ok" and i.finished is not None and i.finished >= t]
    new = [i for i in ok if i.submitted >= t]

    def first(xs: list[Item]) -> float | None:
        f = min((i.finished for i in xs if i.finished is not None), default=None)
        return None if f is None else round(f - t, 4)

    actor = (fault.get("actor") or {}).get("name")
    if actor:
        target: list[Item] | None = [i for i in new if i.detail.get("actor") == actor]
    elif fault["kind"] == "gcs":
        target = [i for i in new if i.kind == "new_actor"]
    else:
        target = None
    return {"recovery_s": first(ok), "new_work_recovery_s": first(new),
            "target_recovery_s": None if target is None else first(target),
            "recovery_by_kind_s": {k: first([i for i in new if i.kind == k]) for k in KINDS}}


_METRICS = {"": "recovery_s", "new_work_": "new_work_recovery_s", "target_": "target_recovery_s"}


def _summarize(faults: list[dict[str, Any]]) -> dict[str, Any]:
    """Count, median and max of each recovery metric over ``faults``."""
    out: dict[str, Any] = {"count": len(faults)}
    for prefix, field in _METRICS.items():
        xs = [f[field] for f in faults if f.get(field) is not None]
        out[prefix + "median_s"] = _r(statistics.median(xs)) if xs else None
        out[prefix + "max_s"] = _r(max(xs, default=None))
    return out


def build_report(args: argparse.Namespace, items: list[Item], fired: list[dict[str, Any]],
                 plan: list[Planned], session_dir: str, extra: dict[str, Any]) -> dict[str, Any]:
    status = {"ok": 0, "lost": 0, "wrong": 0, "pending": 0}
    for i in items:
        status[i.status] += 1
    by_kind: dict[str, Any] = {}
    for k in KINDS:
        ks = [i for i in items if i.kind == k]
        lat = [i.latency for i in ks if i.status == "ok" and i.latency is not None]
        by_kind[k] = {"submitted": len(ks), "ok": sum(i.status == "ok" for i in ks),
                      "lost": sum(i.status in ("lost", "pending") for i in ks),
                      "wrong": sum(i.status == "wrong" for i in ks),
                      "latency_p50_s": _r(_percentile(lat, 0.5)), "latency_p99_s": _r(_percentile(lat, 0.99)),
                      "latency_max_s": _r(max(lat, default=None))}
    faults = []
    for rec in sorted(fired, key=lambda r: r["index"]):
        rec = {k: v for k, v in rec.items() if k not in ("monotonic", "traceback")}
        if not rec.get("skipped") and not rec.get("error"):
            rec.update(_recovery(rec, items))
        faults.append(rec)
    injected = [f for f in faults if not f.get("skipped") and not f.get("error")]
    recovery: dict[str, Any] = {**_summarize(injected),
                                "unrecovered": sum(1 for f in injected if f.get("new_work_recovery_s") is None)}
    for kind in sorted({f["kind"] for f in injected}):
        recovery[kind] = _summarize([f for f in injected if f["kind"] == kind])
    lat_all = [i.latency for i in items if i.status == "ok" and i.latency is not None]
    lost = status["lost"] + status["pending"]
    fault_errors = [f for f in faults if f.get("error")]
    targeted = {p for f in faults for p in f.get("all_targets") or [f.get("target_pid")] if p}
    deaths = extra.pop("process_deaths", [])
    unexpected = [d for d in deaths if d["pid"] not in targeted]
    report = {
        "seed": args.seed, "duration_s": args.duration, "faults_requested": args.faults,
        "mean_interval_s": args.mean_interval, "gcs_downtime_s": args.gcs_downtime,
        "new_actor_interval_s": args.new_actor_interval, "max_inflight": args.max_inflight,
        "item_timeout_s": args.item_timeout, "session_dir": session_dir,
        "planned": [{"index": p.index, "t": p.t, "kind": p.kind} for p in plan],
        "faults": faults,
        "faults_fired": {k: sum(1 for f in injected if f["kind"] == k) for k in args.faults},
        "fault_errors": len(fault_errors),
        "recovery": recovery,
        "submitted": len(items), "ok": status["ok"], "lost": lost, "wrong": status["wrong"],
        "by_kind": by_kind,
        "latency_s": {"p50": _r(_percentile(lat_all, 0.5)), "p99": _r(_percentile(lat_all, 0.99)),
                      "max": _r(max(lat_all, default=None))},
        "lost_items": [i.to_json() for i in items if i.status in ("lost", "pending")][:50],
        "wrong_items": [i.to_json() for i in items if i.status == "wrong"][:50],
        "process_deaths": deaths,
        "unexpected_deaths": unexpected,
        **extra,
    }
    report["passed"] = lost == 0 and status["wrong"] == 0 and not fault_errors and not unexpected
    return report


def _s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}s"


def format_report(rep: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    lines = [f"chaos report: seed={rep['seed']} duration={rep['duration_s']}s "
             f"faults={','.join(rep['faults_requested']) or 'none'} mean-interval={rep['mean_interval_s']}s",
             f"  session: {rep['session_dir']}",
             f"  faults: {sum(rep['faults_fired'].values())} injected "
             f"({', '.join(f'{k} {n}' for k, n in rep['faults_fired'].items()) or 'none'}), "
             f"{sum(1 for f in rep['faults'] if f.get('skipped'))} skipped, {rep['fault_errors']} failed"]
    for f in rep["faults"]:
        head = f"    #{f['index']:<3} t={f['t']:7.2f}s {f['kind']:<7}"
        if f.get("skipped") or f.get("error"):
            lines.append(f"{head} {'SKIPPED: ' + f['skipped'] if f.get('skipped') else 'ERROR: ' + f['error']}")
            continue
        desc = f"pid {f['target_pid']}"
        if f.get("new_pid"):
            desc += f" -> {f['new_pid']} (down {f['downtime_s']}s, up after {_s(f.get('gcs_ready_s'))})"
        if f.get("actor"):
            desc += f" (actor {f['actor'].get('name') or f['actor']['actor_id'][:12]})"
        target = f", target {_s(f.get('target_recovery_s'))}" if "target_recovery_s" in f and (
            f.get("actor") or f["kind"] == "gcs") else ""
        lines.append(f"{head} {desc:<46} recovery {_s(f.get('recovery_s'))}, "
                     f"new work {_s(f.get('new_work_recovery_s'))}{target}")
    rc = rep["recovery"]

    def summary(x: dict[str, Any]) -> str:
        return (f"median {_s(x['median_s'])} max {_s(x['max_s'])}; new work median {_s(x['new_work_median_s'])} "
                f"max {_s(x['new_work_max_s'])}; target median {_s(x['target_median_s'])} "
                f"max {_s(x['target_max_s'])}")

    lines.append(f"  recovery (all {rc['count']}): {summary(rc)}; unrecovered {rc['unrecovered']}")
    for kind in rep["faults_requested"]:
        if kind in rc:
            lines.append(f"    {kind:<7} x{rc[kind]['count']}: {summary(rc[kind])}")
    lines.append(f"  items: submitted {rep['submitted']}  ok {rep['ok']}  lost {rep['lost']}  wrong {rep['wrong']}")
    for k, v in rep["by_kind"].items():
        lines.append(f"    {k:<10} submitted {v['submitted']:>6}  ok {v['ok']:>6}  lost {v['lost']:>3}  "
                     f"wrong {v['wrong']:>3}  latency p50 {_s(v['latency_p50_s'])} p99 {_s(v['latency_p99_s'])} "
                     f"max {_s(v['latency_max_s'])}")
    lat = rep["latency_s"]
    lines.append(f"  latency (all ok items): p50 {_s(lat['p50'])} p99 {_s(lat['p99'])} max {_s(lat['max'])}")
    if "resources_restored_s" in rep:
        free = rep["resources_restored_s"]
        lines.append(f"  all CPUs free again after the run: {'after ' + _s(free) if free is not None else 'NO'}")
    for d in rep["unexpected_deaths"]:
        lines.append(f"  UNEXPECTED DEATH: {d['role']} pid {d['pid']} at t={d['t']}s, {d['how']} "
                     f"(no fault targeted it)")
    for i in rep["lost_items"][:10]:
        lines.append(f"  LOST  {i}")
    for i in rep["wrong_items"][:10]:
        lines.append(f"  WRONG {i}")
    if rep.get("runner_error"):
        lines.append(f"  RUNNER ERROR: {rep['runner_error']}")
    lines.append(f"  result: {'PASS' if rep['passed'] else 'FAIL'} (lost {rep['lost']}, wrong {rep['wrong']}, "
                 f"fault errors {rep['fault_errors']}, unexpected deaths {len(rep['unexpected_deaths'])})")
    return "\n".join(lines)


def _wait_resources_free(timeout_s: float) -> float | None:
    """Seconds until every CPU of the cluster is available again (None if not within ``timeout_s``)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            total = rayredis.cluster_resources().get("CPU", 0.0)
            if total and rayredis.available_resources().get("CPU", 0.0) >= total:
                return round(time.monotonic() - start, 4)
        except Exception:  # noqa: BLE001 - keep polling through transient errors
            pass
        time.sleep(0.1)
    return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m chaos.runner", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of workload (default 60)")
    ap.add_argument("--faults", default="gcs,worker",
                    help="comma-separated fault kinds: gcs, worker (or 'none' for a baseline run)")
    ap.add_argument("--mean-interval", type=float, default=5.0, help="mean seconds between faults")
    ap.add_argument("--order", choices=("cycle", "random"), default="cycle",
                    help="cycle: every kind once per round in shuffled order; random: independent picks")
    ap.add_argument("--gcs-downtime", type=float, default=1.0, help="seconds the cluster runs without a GCS")
    ap.add_argument("--warmup", type=float, default=2.0, help="no faults during the first seconds")
    ap.add_argument("--cooldown", type=float, default=None,
                    help="no faults during the last seconds, so recovery is observable (default min(5, d/4))")
    ap.add_argument("--item-timeout", type=float, default=60.0, help="an item not back after this is lost")
    ap.add_argument("--max-inflight", type=int, default=40)
    ap.add_argument("--num-actors", type=int, default=3, help="named actors in the pool (default 3)")
    ap.add_argument("--new-actor-interval", type=float, default=1.0,
                    help="seconds between new-actor items (need the GCS); 0 disables them")
    ap.add_argument("--num-cpus", type=float, default=2)
    ap.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    ap.add_argument("--quiet", action="store_true", help="print only the final report")
    args = ap.parse_args(argv)
    args.faults = [] if args.faults.strip() in ("", "none") else [f.strip() for f in args.faults.split(",")]
    if args.cooldown is None:
        args.cooldown = min(5.0, args.duration / 4)
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start a cluster, run workload + faults, verify, shut down; returns the report."""
    faults = {f.name: f for f in make_faults(args.faults, gcs_downtime_s=args.gcs_downtime)}
    plan = plan_schedule(args.seed, list(faults), args.mean_interval, args.warmup,
                         args.duration - args.cooldown, order=args.order)
    _log(f"planned faults: {[(p.t, p.kind) for p in plan]}", args.quiet)
    extra: dict[str, Any] = {}
    fault_thread: FaultThread | None = None
    workload: Workload | None = None
    watch: ProcessWatch | None = None
    session_dir = ""
    rayredis.init(num_cpus=args.num_cpus)
    try:
        from rayredis import api

        handle = api._started
        if handle is None:
            raise RuntimeError("rayredis.init() connected to an existing cluster; the chaos runner needs a "
                               "local cluster it started itself (unset RAYREDIS_ADDRESS).")
        session_dir = handle.session_dir
        _log(f"cluster up: {handle.address}, session {session_dir}", args.quiet)
        t0 = time.monotonic()

        def clock() -> float:
            return time.monotonic() - t0

        watch = ProcessWatch(session_dir, clock)
        watch.start()
        workload = Workload(args.seed, clock, num_actors=args.num_actors, max_inflight=args.max_inflight,
                            item_timeout_s=args.item_timeout, new_actor_interval_s=args.new_actor_interval)
        workload.start()
        t0 = time.monotonic()  # the run (and the fault schedule) starts after set-up
        fault_thread = FaultThread(plan, faults, handle, args.seed, t0, args.quiet)
        fault_thread.start()
        last_progress = 0.0
        while clock() < args.duration:
            workload.fill()
            workload.collect(0.05)
            if clock() - last_progress >= 10.0:
                last_progress = clock()
                done = sum(1 for i in workload.items if i.done)
                bad = sum(1 for i in workload.items if i.status in ("lost", "wrong"))
                _log(f"t={clock():.1f}s submitted {len(workload.items)} done {done} lost/wrong {bad}",
                     args.quiet)
        fault_thread.stop.set()
        fault_thread.join()
        workload.drain(args.item_timeout)
        extra["resources_restored_s"] = _wait_resources_free(30.0)
        extra["wall_s"] = round(clock(), 3)
    except BaseException as e:
        extra["runner_error"] = f"{type(e).__name__}: {e}"
        if not isinstance(e, Exception):
            raise
        _log(traceback.format_exc(), args.quiet)
    finally:
        if fault_thread is not None:
            fault_thread.stop.set()
            fault_thread.join()
        items = workload.items if workload is not None else []
        if workload is not None:
            workload.close()
        if watch is not None:
            extra["process_deaths"] = watch.halt()
        rayredis.shutdown()
    report = build_report(args, items, fault_thread.fired if fault_thread else [], plan, session_dir, extra)
    if extra.get("runner_error"):
        report["passed"] = False
    return report


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        make_faults(args.faults)
    except ValueError as e:
        print(f"chaos.runner: {e}", file=sys.stderr)
        return 2
    report = run(args)
    print(format_report(report), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    # SIGTERM (e.g. a test's timeout) unwinds through run()'s finally, so the cluster is shut down.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.exit(main())

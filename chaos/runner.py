"""Run the known-answer workload on a local cluster while faults fire, then verify and report.

    python -m chaos.runner --seed 1 --duration 60 --faults gcs,worker --mean-interval 5
    python -m chaos.runner --nodes 3 --duration 60 --faults worker,node,gcs,pause --seed 1
    python -m chaos.runner --nodes 3 --netns --duration 40 --faults partition,node --seed 1   # root

Exit status: 0 when every submitted item came back with the expected value (lost == 0 and
wrong == 0), every fault was injected as planned and every end-of-run invariant holds; 1
otherwise; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import queue
import re
import signal
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import rayredis
from chaos import netns, stats
from chaos.cluster import CAPACITY, NODE_RESOURCE, ChaosCluster, shm_prefixes, slot_resource, wait_no_leftovers
from chaos.faults import FAULTS, Fault, FaultContext, Planned, actor_entries, fault_rng, make_faults, plan_schedule
from chaos.partition import PartitionNode
from chaos.watch import ProcessWatch
from chaos.workload import KINDS, Item, Workload
from rayredis._private import debug, worker_context
from rayredis.config import get_config
from rayredis.experimental import tqdm_ray
from rayredis.store import tables
from rayredis.store.client import ShardedRedis

#: Fault kinds that take a node's raylet away: the default cooldown leaves time to recover from them.
NODE_LEVEL = ("node", "raylet", "redis", "partition")


def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        tqdm_ray.safe_print(f"[chaos] {msg}", file=sys.stderr, flush=True)  # (keeps a live bar intact)


#: Fault kinds that share one lane: a Redis shard with one replica survives one failure at a time,
#: so a ``redis`` and a ``redis-primary`` fault never overlap (each waits for its shards to be whole
#: again, ``faults.replication_settled``, before it ends).
LANE_OF = {"redis-primary": "redis", "redis": "redis"}


class FaultThread(threading.Thread):
    """Fires the planned faults at their times (seconds after ``t0``) until stopped.

    Each fault kind has its own lane (a thread): faults of different kinds can overlap (a worker
    dies while the GCS is down), but faults of one kind cannot: a fault planned while the previous
    one of its kind is still in progress (e.g. the GCS is still down) is skipped and recorded as
    such. Queuing it instead would fire it the moment the replacement came up, leaving the cluster
    without a GCS for good whenever the downtime exceeds the mean interval.
    """

    def __init__(self, plan: list[Planned], faults: dict[str, Fault], cluster: ChaosCluster, seed: int, t0: float,
                 quiet: bool, probe: Callable[[int, str, int | None], None] | None = None):
        super().__init__(name="chaos-faults", daemon=True)
        self.plan = plan
        self.faults = faults
        self.cluster = cluster
        self.seed = seed
        self.t0 = t0
        self.quiet = quiet
        self.probe = probe or (lambda index, what, slot: None)
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
                lane = LANE_OF.get(p.kind, p.kind)
                if lane in self._busy:
                    self._skip(p, f"the previous {lane} fault was still in progress")
                    continue
                self._busy.add(lane)
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
                self._busy.discard(LANE_OF.get(p.kind, p.kind))

    def _skip(self, p: Planned, reason: str) -> None:
        t = time.monotonic()
        self.fired.append({"kind": p.kind, "monotonic": t, "target_pid": None, "skipped": reason,
                           "index": p.index, "planned_t": p.t, "t": round(t - self.t0, 4)})
        _log(f"t={t - self.t0:.2f}s fault #{p.index} {p.kind}: skipped, {reason}", self.quiet)

    def _fire(self, p: Planned) -> None:
        ctx = FaultContext(self.cluster, p.index, lambda what, slot: self.probe(p.index, what, slot))
        try:
            rec = self.faults[p.kind].fire(fault_rng(self.seed, p.index), ctx)
        except Exception as e:  # noqa: BLE001 - report a failed injection instead of dying silently
            rec = {"kind": p.kind, "monotonic": time.monotonic(), "target_pid": None,
                   "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        if rec.get("error") is None:
            rec.pop("error", None)
        rec["index"] = p.index
        rec["planned_t"] = p.t
        rec["t"] = round(rec["monotonic"] - self.t0, 4)
        self.fired.append(rec)
        _log(f"t={rec['t']:.2f}s fault #{p.index} {p.kind}: {_describe(rec)}", self.quiet)


def _describe(rec: dict[str, Any]) -> str:
    if rec.get("skipped"):
        return f"skipped, {rec['skipped']}"
    parts = []
    if rec.get("error"):
        parts.append(f"ERROR {rec['error']}")
    kind = rec["kind"]
    if kind == "partition" and rec.get("hold_s") is not None:
        parts.append(f"cut {rec.get('host')} off for {rec['hold_s']}s ({rec.get('regime')})")
        if rec.get("declared_dead"):
            parts.append(f"declared dead after {_s(rec.get('declared_dead_s'))}")
        if rec.get("fenced_node_id"):
            parts.append(f"fenced: back as node {rec['fenced_node_id'][:8]} after {_s(rec.get('fenced_s'))}"
                         f"{'' if rec.get('same_process') else ' (NOT the same process)'}")
        elif rec.get("answers_s") is not None:
            parts.append(f"answers again after {_s(rec['answers_s'])}")
    elif kind == "pause" and rec.get("target_pid"):
        parts.append(f"paused {rec.get('component')} pid {rec['target_pid']} for {rec.get('pause_s')}s, "
                     f"answers after {_s(rec.get('answers_s'))}")
    elif rec.get("target_pid"):
        parts.append(f"killed pid {rec['target_pid']}")
    if rec.get("slot") is not None and kind != "gcs":
        parts.append(f"slot {rec['slot']}")
    if rec.get("new_pid"):
        parts.append(f"replacement pid {rec['new_pid']}")
    if rec.get("new_node_id"):
        parts.append(f"new node {rec['new_node_id'][:8]} after {_s(rec.get('replaced_s'))}, old one declared "
                     f"dead after {_s(rec.get('declared_dead_s'))}")
    if rec.get("accepted_s") is not None:
        parts.append(f"shard {rec.get('shard')} failed over to {rec.get('new_master')}, writes accepted after "
                     f"{_s(rec['accepted_s'])}")
    if rec.get("restarted_s") is not None:
        parts.append(f"restarted after {_s(rec['restarted_s'])}")
    if rec.get("fallback"):
        parts.append(f"fallback: {rec['fallback']}")
    actor = rec.get("actor")
    if actor:
        parts.append(f"hosting actor {actor.get('name') or actor['actor_id'][:12]}")
    if rec.get("declared_dead") and kind != "partition":
        parts.append("NODE DECLARED DEAD")
    return ", ".join(parts)


# ---- measuring ------------------------------------------------------------------------------------


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
    worker was killed, new actors (which need the GCS to be scheduled) after a GCS kill, or work
    pinned to the node's slot after a node fault.
    ``recovery_by_kind_s``: ``new_work_recovery_s`` per item kind.
    ``probe_recovery_s``: until the probe item the fault asked for succeeded.
    """
    t = fault["t"]
    ok = [i for i in items if i.status == "ok" and i.finished is not None and i.finished >= t]
    new = [i for i in ok if i.submitted >= t]

    def first(xs: list[Item]) -> float | None:
        f = min((i.finished for i in xs if i.finished is not None), default=None)
        return None if f is None else round(f - t, 4)

    actor = fault.get("actor") or {}
    target: list[Item] | None
    if actor:
        target = [i for i in new if (actor.get("name") and i.detail.get("actor") == actor["name"])
                  or i.detail.get("actor_id") == actor.get("actor_id")]
    elif fault["kind"] == "gcs":
        target = [i for i in new if i.kind == "new_actor"]
    elif fault["kind"] in NODE_LEVEL + ("pause",) and fault.get("slot") is not None and fault["kind"] != "redis":
        target = [i for i in new if fault["slot"] in i.slots and i.kind != "probe"]
    else:
        target = None
    probes = [i for i in items if i.kind == "probe" and i.detail.get("probe_for") == fault["index"]]
    return {"recovery_s": first(ok), "new_work_recovery_s": first(new),
            "target_recovery_s": None if target is None else first(target),
            "recovery_by_kind_s": {k: first([i for i in new if i.kind == k]) for k in KINDS},
            "probe_recovery_s": first([i for i in probes if i.status == "ok"]) if probes else None,
            "probe_lost": sum(1 for i in probes if i.status != "ok")}


def _service_recovery(f: dict[str, Any], items: list[Item]) -> tuple[float | None, dict[str, Any]]:
    """Fault -> service restored, as defined per kind (``Fault.recovery``); plus helper fields."""
    kind, t = f["kind"], f["t"]
    probe = f.get("probe_recovery_s")
    extra: dict[str, Any] = {}
    if kind == "worker":
        return (f.get("target_recovery_s") if f.get("actor") else probe), extra
    if kind == "gcs":
        return probe, extra
    if kind == "pause":
        return f.get("answers_s"), extra
    if kind == "node":
        hit = [i for i in items if f["slot"] in i.slots and i.kind != "probe" and i.submitted <= t
               and (i.finished is None or i.finished >= t)]
        extra["inflight_on_node"] = len(hit)
        extra["inflight_on_node_lost"] = sum(1 for i in hit if i.status != "ok")
        if any(i.status != "ok" for i in hit):
            return None, extra
        done = max((i.finished - t for i in hit if i.finished is not None), default=0.0)
        extra["lost_work_done_s"] = _r(done)
        return (None if probe is None else _r(max(probe, done))), extra
    if kind == "redis-primary":
        return f.get("accepted_s"), extra
    if kind == "partition":
        return _partition_recovery(f, items)
    if kind in ("raylet", "redis"):
        back = f.get("restarted_s")
        return (None if back is None or probe is None else _r(max(back, probe))), extra
    return probe, extra


def _partition_recovery(f: dict[str, Any], items: list[Item]) -> tuple[float | None, dict[str, Any]]:
    """Short partition: heal -> the probe submitted at the heal succeeded. Long (declared dead): cut ->
    every item in flight on the slot at the cut completed and the heal probe succeeded."""
    t, healed = f["t"], f["t"] + float(f.get("healed_s") or 0.0)
    probes = [i for i in items if i.kind == "probe" and i.detail.get("probe_for") == f["index"]
              and i.submitted >= healed - 1e-3]
    ok = min((i.finished for i in probes if i.status == "ok" and i.finished is not None), default=None)
    extra: dict[str, Any] = {"heal_probe_s": None if ok is None else _r(ok - healed)}
    if not f.get("declared_dead"):
        return extra["heal_probe_s"], extra
    hit = [i for i in items if f["slot"] in i.slots and i.kind != "probe" and i.submitted <= t
           and (i.finished is None or i.finished >= t)]
    extra["inflight_on_node"] = len(hit)
    extra["inflight_on_node_lost"] = sum(1 for i in hit if i.status != "ok")
    if ok is None or extra["inflight_on_node_lost"]:
        return None, extra
    done = max((i.finished - t for i in hit if i.finished is not None), default=0.0)
    extra["lost_work_done_s"] = _r(done)
    return _r(max(ok - t, done)), extra


_METRICS = {"": "recovery_s", "new_work_": "new_work_recovery_s", "target_": "target_recovery_s",
            "service_": "service_recovery_s"}


def _summarize(faults: list[dict[str, Any]]) -> dict[str, Any]:
    """Count, median and max of each recovery metric over ``faults`` (p50/p99 of service recovery)."""
    out: dict[str, Any] = {"count": len(faults)}
    for prefix, field in _METRICS.items():
        xs = [f[field] for f in faults if f.get(field) is not None]
        out[prefix + "median_s"] = _r(statistics.median(xs)) if xs else None
        out[prefix + "max_s"] = _r(max(xs, default=None))
    xs = [f["service_recovery_s"] for f in faults if f.get("service_recovery_s") is not None]
    out["service_p50_s"], out["service_p99_s"] = _r(_percentile(xs, 0.5)), _r(_percentile(xs, 0.99))
    return out


# ---- attributing effects to faults ---------------------------------------------------------------


_SPAN_FIELDS = ("service_recovery_s", "declared_dead_s", "replaced_s", "answers_s", "gcs_answers_s",
                "restarted_s", "probe_recovery_s", "target_recovery_s", "healed_s", "fenced_s")


def _span(f: dict[str, Any], end_t: float) -> float:
    """How long after ``f["t"]`` the fault's effects can start: its measured recovery, plus a second."""
    t: float = f["t"]
    if f.get("service_recovery_s") is None and f["kind"] != "worker":
        return max(0.0, end_t - t)
    xs = [float(f[k]) for k in _SPAN_FIELDS if isinstance(f.get(k), (int, float))]
    xs += [float(f.get("downtime_s") or 0.0), float(f.get("pause_s") or 0.0)]
    return max(xs, default=0.0) + 1.0


def _touches(f: dict[str, Any], item: Item) -> bool:
    if item.kind == "probe":
        return bool(item.detail.get("probe_for") == f["index"])
    actor = f.get("actor") or {}
    if actor and (item.detail.get("actor") == actor.get("name") and actor.get("name")
                  or item.detail.get("actor_id") == actor.get("actor_id")):
        return True
    slot = f.get("slot")
    return f["kind"] in ("node", "raylet", "pause", "worker", "partition") and slot is not None and (
        slot in item.slots or slot in item.ran_on)


def _names(f: dict[str, Any], item: Item) -> bool:
    """The item's error, or what the raylets logged about retrying or rebuilding its tasks, names the
    node the fault killed (direct evidence)."""
    node: str = f.get("node_id") or ""
    return bool(node) and node[:8] in f"{item.error or ''} {item.evidence}"


def attribute(items: list[Item], faults: list[dict[str, Any]], end_t: float) -> dict[int, int | None]:
    """Item id -> index of the fault it is attributed to (None: no fault overlapped it).

    A fault overlaps an item if the item was in flight at some moment of ``[t, t + span]`` (the
    fault's measured recovery plus a second; until the end of the run if it never recovered). A hung
    item's end is not its timeout but when it should have been done: its submission (plus a
    ``lineage`` item's delay) plus the p99 latency of its kind's successful items (at least 5 s), as a
    fault after that cannot have caused the hang. Among the overlapping faults, the first by: the
    item's error names the node the fault killed; the fault touches the item (its slot's node was
    killed or paused, its actor's worker was killed, or it is the fault's probe); the fault's window
    contains the item's end; for an item that came back (a result or an error), the latest (an item
    in flight across two kills of its node is the second kill's), for a hung one the earliest (the
    hang began with the first fault that hit it; later ones find it hung already).
    """
    windows = [(f, f["t"], f["t"] + _span(f, end_t)) for f in faults]
    normal: dict[str, float] = {}
    for kind in {i.kind for i in items}:
        lat = [i.latency for i in items if i.kind == kind and i.status == "ok" and i.latency is not None]
        normal[kind] = max(5.0, _percentile(lat, 0.99) or 0.0)
    out: dict[int, int | None] = {}
    for item in items:
        end = item.finished if item.finished is not None else end_t
        if item.hung:
            end = min(end, item.submitted + float(item.detail.get("delay_s") or 0.0) + normal[item.kind])
        over = [(not _names(f, item), not _touches(f, item), not (t <= end <= t_end), t if item.hung else -t,
                 f["index"])
                for f, t, t_end in windows if t <= end and item.submitted <= t_end]
        out[item.id] = min(over)[4] if over else None
    return out


def actor_restarts(faults: list[dict[str, Any]], final: dict[str, int]) -> tuple[dict[int, int], int]:
    """Restarts per fault index, and restarts no fault explains.

    Each fault recorded the restart count of every actor it hit (``actors_hit``). The restarts of an
    actor between one hit and the next (or the end) are the earlier hit's; those before its first
    hit, and those of actors no fault hit, are unexplained.
    """
    hits: dict[str, list[tuple[float, int, int]]] = {}
    for f in faults:
        for h in f.get("actors_hit") or []:
            hits.setdefault(h["actor_id"], []).append((f["t"], f["index"], int(h["num_restarts"])))
    per: dict[int, int] = {}
    unexplained = 0
    for aid, n in final.items():
        hs = sorted(hits.get(aid, []))
        if not hs:
            unexplained += n
            continue
        unexplained += hs[0][2]
        for (_, idx, before), nxt in zip(hs, [*[h[2] for h in hs[1:]], n]):
            per[idx] = per.get(idx, 0) + max(0, nxt - before)
    return per, unexplained


def _effects(items: list[Item], faults: list[dict[str, Any]], end_t: float, attempts: dict[str, int],
             rebuilt: list[stats.Rebuild], restarts: dict[int, int], unexplained_restarts: int,
             ) -> dict[str, Any]:
    """Per fault kind (and ``none``): tasks retried, objects reconstructed, actors restarted, lost, wrong."""
    who = attribute(items, faults, end_t)
    kind_of = {f["index"]: f["kind"] for f in faults}
    rebuilt_per_task: dict[str, int] = {}
    for rb in rebuilt:
        rebuilt_per_task[rb.task_id] = rebuilt_per_task.get(rb.task_id, 0) + 1
    out: dict[str, dict[str, int]] = {}

    def bucket(k: str) -> dict[str, int]:
        return out.setdefault(k, {"tasks_retried": 0, "objects_reconstructed": 0, "actors_restarted": 0,
                                  "results_lost": 0, "hung": 0, "wrong": 0, "items": 0})

    per_fault: dict[int, dict[str, Any]] = {}
    seen_tasks: set[str] = set()
    for item in items:
        idx = who[item.id]
        b = bucket(kind_of[idx] if idx is not None else "none")
        pf: dict[str, Any] | None = per_fault.setdefault(
            idx, {"tasks_retried": 0, "objects_reconstructed": 0, "results_lost": 0, "wrong": 0,
                  "items": 0}) if idx is not None else None
        rebuilt_n = sum(rebuilt_per_task.get(t, 0) for t in item.task_ids)
        retried = max(0, sum(attempts.get(t, 0) for t in item.task_ids) - rebuilt_n)
        seen_tasks.update(item.task_ids)
        st = item.status
        vals = {"tasks_retried": retried, "objects_reconstructed": rebuilt_n,
                "results_lost": int(st in ("lost", "pending")), "wrong": int(st == "wrong"), "items": 1}
        for k, v in vals.items():
            b[k] += v
            if pf is not None:
                pf[k] += v
        b["hung"] += int(item.hung)
        if pf is not None and st != "ok" and len(pf.setdefault("bad_examples", [])) < 5:
            pf["bad_examples"].append({"id": item.id, "kind": item.kind, "status": st,
                                       "error": (item.error or item.violation or "")[:160],
                                       "submitted_s": round(item.submitted, 3), "slots": list(item.slots),
                                       "ran_on": list(item.ran_on)})
    for idx, n in restarts.items():
        bucket(kind_of[idx])["actors_restarted"] += n
        per_fault.setdefault(idx, {})["actors_restarted"] = n
    if unexplained_restarts:
        bucket("none")["actors_restarted"] += unexplained_restarts
    other = [rb for rb in rebuilt if rb.task_id not in seen_tasks]
    if other:  # re-runs of tasks the workload did not submit itself (e.g. placement-group checks)
        bucket("none")["objects_reconstructed"] += len(other)
    return {"by_kind": out, "per_fault": per_fault}


# ---- the report ---------------------------------------------------------------------------------


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
                      "wrong": sum(i.status == "wrong" for i in ks), "hung": sum(i.hung for i in ks),
                      "latency_p50_s": _r(_percentile(lat, 0.5)), "latency_p99_s": _r(_percentile(lat, 0.99)),
                      "latency_max_s": _r(max(lat, default=None))}
    faults = []
    for rec in sorted(fired, key=lambda r: r["index"]):
        rec = {k: v for k, v in rec.items() if k not in ("monotonic", "traceback")}
        if not rec.get("skipped") and not rec.get("error"):
            rec.update(_recovery(rec, items))
            rec["service_recovery_s"], more = _service_recovery(rec, items)
            rec.update(more)
        faults.append(rec)
    injected = [f for f in faults if not f.get("skipped") and not f.get("error")]
    recovery: dict[str, Any] = {**_summarize(injected),
                                "unrecovered": sum(1 for f in injected if f.get("new_work_recovery_s") is None)}
    for kind in sorted({f["kind"] for f in injected}):
        recovery[kind] = _summarize([f for f in injected if f["kind"] == kind])
    end_t = float(extra.get("wall_s") or max((i.finished or 0.0 for i in items), default=0.0))
    fx = _effects(items, [f for f in faults if not f.get("skipped")], end_t, extra.pop("_attempts", {}),
                  extra.pop("_rebuilds", []), *extra.pop("_restarts", ({}, 0)))
    for f in faults:
        f.update(fx["per_fault"].get(f["index"], {}))
    by_fault_kind: dict[str, Any] = {}
    for kind in [*args.faults, "none"]:
        mine = [f for f in faults if f["kind"] == kind]
        ok = [f for f in mine if not f.get("skipped") and not f.get("error")]
        xs = [f["service_recovery_s"] for f in ok if f.get("service_recovery_s") is not None]
        row: dict[str, Any] = {}
        if kind != "none":
            row = {"count": len(ok), "skipped": sum(1 for f in mine if f.get("skipped")),
                   "errors": sum(1 for f in mine if f.get("error")),
                   "recovery_p50_s": _r(_percentile(xs, 0.5)), "recovery_p99_s": _r(_percentile(xs, 0.99)),
                   "recovery_max_s": _r(max(xs, default=None)),
                   "unrecovered": sum(1 for f in ok if f.get("service_recovery_s") is None),
                   "probe_p50_s": _r(_percentile(ps := [f["probe_recovery_s"] for f in ok
                                                       if f.get("probe_recovery_s") is not None], 0.5)),
                   "probe_p99_s": _r(_percentile(ps, 0.99)),
                   "recovery_means": FAULTS[kind].recovery if kind in FAULTS else ""}
            if kind == "partition":
                row["declared_dead"] = sum(1 for f in ok if f.get("declared_dead"))
                row["fenced"] = sum(1 for f in ok if f.get("fenced_node_id"))
        row.update(fx["by_kind"].get(kind, {"tasks_retried": 0, "objects_reconstructed": 0, "actors_restarted": 0,
                                             "results_lost": 0, "hung": 0, "wrong": 0, "items": 0}))
        by_fault_kind[kind] = row
    lat_all = [i.latency for i in items if i.status == "ok" and i.latency is not None]
    lost = status["lost"] + status["pending"]
    hung = sum(1 for i in items if i.hung)
    fault_errors = [f for f in faults if f.get("error")]
    targeted = {p for f in faults for p in f.get("all_targets") or [f.get("target_pid")] if p}
    deaths = extra.pop("process_deaths", [])
    unexpected = [d for d in deaths if d["pid"] not in targeted]
    killed_nodes = {f.get("node_id") for f in faults if not f.get("skipped") and (
        f["kind"] in ("node", "raylet") or f["kind"] == "partition" and f.get("may_die"))}
    false_deaths = [n for n in extra.pop("dead_nodes", []) if n not in killed_nodes]
    resources = extra.get("resources") or {}
    left = extra.get("leftovers") or {}
    violations = extra.get("raylet_violations")
    invariants = {
        "results_correct": status["wrong"] == 0,
        "nothing_lost": lost == 0,
        "no_get_hung": hung == 0,
        "resources_restored": bool(resources.get("restored")),
        "capacity_restored": bool(resources.get("capacity_restored")),
        "no_leftover_processes": not left.get("processes"),
        "no_leftover_shm": not left.get("shm"),
        "raylet_invariants_clean": violations == {} or (isinstance(violations, dict)
                                                         and not any(violations.values())),
        "no_false_node_deaths": not false_deaths,
        "no_unexpected_deaths": not unexpected,
        "faults_injected_without_error": not fault_errors,
    }
    report = {
        "seed": args.seed, "duration_s": args.duration, "faults_requested": args.faults,
        "nodes": args.nodes, "num_cpus": args.num_cpus, "netns": args.netns,
        "partition_s": [args.partition_min, args.partition_max],
        "mean_interval_s": args.mean_interval, "gcs_downtime_s": args.gcs_downtime,
        "pause_s": [args.pause_min, args.pause_max], "restart_timeout_s": args.restart_timeout,
        "new_actor_interval_s": args.new_actor_interval, "pg_interval_s": args.pg_interval,
        "max_inflight": args.max_inflight, "item_timeout_s": args.item_timeout,
        "settle_timeout_s": args.settle_timeout,
        "warmup_s": args.warmup, "cooldown_s": args.cooldown, "session_dir": session_dir,
        "planned": [{"index": p.index, "t": p.t, "kind": p.kind} for p in plan],
        "faults": faults,
        "faults_fired": {k: sum(1 for f in injected if f["kind"] == k) for k in args.faults},
        "fault_errors": len(fault_errors),
        "recovery": recovery,
        "by_fault_kind": by_fault_kind,
        "submitted": len(items), "ok": status["ok"], "lost": lost, "wrong": status["wrong"], "hung": hung,
        "by_kind": by_kind,
        "latency_s": {"p50": _r(_percentile(lat_all, 0.5)), "p99": _r(_percentile(lat_all, 0.99)),
                      "max": _r(max(lat_all, default=None))},
        "lost_items": [i.to_json() for i in items if i.status in ("lost", "pending")][:50],
        "wrong_items": [i.to_json() for i in items if i.status == "wrong"][:50],
        "process_deaths": deaths,
        "unexpected_deaths": unexpected,
        "false_node_deaths": false_deaths,
        "invariants": invariants,
        **extra,
    }
    report["passed"] = all(invariants.values()) and not extra.get("runner_error")
    return report


def _s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}s"


def format_report(rep: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    lines = [f"chaos report: seed={rep['seed']} duration={rep['duration_s']}s nodes={rep['nodes']} "
             f"faults={','.join(rep['faults_requested']) or 'none'} mean-interval={rep['mean_interval_s']}s",
             f"  session: {rep['session_dir']}",
             f"  faults: {sum(rep['faults_fired'].values())} injected "
             f"({', '.join(f'{k} {n}' for k, n in rep['faults_fired'].items()) or 'none'}), "
             f"{sum(1 for f in rep['faults'] if f.get('skipped'))} skipped, {rep['fault_errors']} failed"]
    for f in rep["faults"]:
        head = f"    #{f['index']:<3} t={f['t']:7.2f}s {f['kind']:<7}"
        if f.get("skipped"):
            lines.append(f"{head} SKIPPED: {f['skipped']}")
            continue
        desc = _describe(f)
        if f.get("error"):
            lines.append(f"{head} {desc}")
            continue
        lines.append(f"{head} {desc}")
        lines.append(f"{'':18}service recovery {_s(f.get('service_recovery_s'))} (probe {_s(f.get('probe_recovery_s'))}"
                     f", target {_s(f.get('target_recovery_s'))}, new work {_s(f.get('new_work_recovery_s'))}); "
                     f"retried {f.get('tasks_retried', 0)}, rebuilt {f.get('objects_reconstructed', 0)}, "
                     f"actors restarted {f.get('actors_restarted', 0)}, lost {f.get('results_lost', 0)}, "
                     f"wrong {f.get('wrong', 0)}"
                     + (f"; in flight on the node at the kill {f['inflight_on_node']}, lost "
                        f"{f['inflight_on_node_lost']}" if "inflight_on_node" in f else ""))
    lines.append("  per fault kind:  count  recovery p50     p99     max  unrec  retried  rebuilt  restarted  "
                 "lost  hung  wrong")
    for kind, row in rep["by_fault_kind"].items():
        if kind == "none":
            lines.append(f"    {'(no fault)':<12} {'':>5}  {'':>12} {'':>7} {'':>7}  {'':>5}  "
                         f"{row['tasks_retried']:>7}  {row['objects_reconstructed']:>7}  "
                         f"{row['actors_restarted']:>9}  {row['results_lost']:>4}  "
                         f"{row['hung']:>4}  {row['wrong']:>5}")
            continue

        def c(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.2f}s"
        probe = (f"  (probe p50 {c(row['probe_p50_s'])} p99 {c(row['probe_p99_s'])})"
                 if row["unrecovered"] and row.get("probe_p50_s") is not None else "")
        lines.append(f"    {kind:<12} {row['count']:>5}  {c(row['recovery_p50_s']):>12} {c(row['recovery_p99_s']):>7} "
                     f"{c(row['recovery_max_s']):>7}  {row['unrecovered']:>5}  {row['tasks_retried']:>7}  "
                     f"{row['objects_reconstructed']:>7}  {row['actors_restarted']:>9}  {row['results_lost']:>4}  "
                     f"{row['hung']:>4}  {row['wrong']:>5}{probe}")
    lines.append(f"  items: submitted {rep['submitted']}  ok {rep['ok']}  lost {rep['lost']} (hung {rep['hung']})  "
                 f"wrong {rep['wrong']}")
    for k, v in rep["by_kind"].items():
        if not v["submitted"]:
            continue
        lines.append(f"    {k:<10} submitted {v['submitted']:>6}  ok {v['ok']:>6}  lost {v['lost']:>3}  "
                     f"wrong {v['wrong']:>3}  latency p50 {_s(v['latency_p50_s'])} p99 {_s(v['latency_p99_s'])} "
                     f"max {_s(v['latency_max_s'])}")
    lat = rep["latency_s"]
    lines.append(f"  latency (all ok items): p50 {_s(lat['p50'])} p99 {_s(lat['p99'])} max {_s(lat['max'])}")
    res = rep.get("resources") or {}
    if res:
        free = ("all free after " + _s(res.get("restored_s")) if res.get("restored")
                else "NOT all free: " + json.dumps(res.get("missing")))
        cap = "back" if res.get("capacity_restored") else "NOT back: " + str(res.get("capacity_problem"))
        lines.append(f"  resources after the run: {free}; capacity {cap}")
    for name, ok in rep["invariants"].items():
        if not ok:
            lines.append(f"  INVARIANT FAILED: {name}")
    for d in rep["unexpected_deaths"]:
        lines.append(f"  UNEXPECTED DEATH: {d['role']} pid {d['pid']} at t={d['t']}s, {d['how']} "
                     f"(no fault targeted it)")
    for n in rep.get("false_node_deaths", []):
        lines.append(f"  FALSE NODE DEATH: node {n[:8]} is DEAD in the node table, but no fault killed it")
    left = rep.get("leftovers") or {}
    for p in left.get("processes", [])[:10]:
        lines.append(f"  LEFTOVER PROCESS: {p}")
    for n in left.get("shm", [])[:10]:
        lines.append(f"  LEFTOVER SHM: {n}")
    viol = rep.get("raylet_violations")
    if isinstance(viol, dict):
        for node, vs in viol.items():
            for v in vs[:5]:
                lines.append(f"  RAYLET INVARIANT: node {node[:8]}: {v}")
    elif viol is not None:
        lines.append(f"  RAYLET INVARIANTS NOT CHECKED: {viol}")
    for i in rep["lost_items"][:10]:
        lines.append(f"  LOST  {_short_item(i)}")
    for i in rep["wrong_items"][:10]:
        lines.append(f"  WRONG {_short_item(i)}")
    if rep.get("runner_error"):
        lines.append(f"  RUNNER ERROR: {rep['runner_error']}")
    lines.append(f"  result: {'PASS' if rep['passed'] else 'FAIL'} (lost {rep['lost']}, wrong {rep['wrong']}, "
                 f"hung {rep['hung']}, fault errors {rep['fault_errors']}, unexpected deaths "
                 f"{len(rep['unexpected_deaths'])}, invariants failed "
                 f"{sum(1 for ok in rep['invariants'].values() if not ok)})")
    return "\n".join(lines)


def _short_item(i: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in i.items() if k != "error_detail"}


# ---- end-of-run checks ----------------------------------------------------------------------------


def _wait_resources_free(cluster: ChaosCluster, args: argparse.Namespace, timeout_s: float) -> dict[str, Any]:
    """Until every resource of the live nodes is available again and the capacity is what the run
    started with (one live node per slot: the nodes added for lost ones replace them)."""
    start = time.monotonic()
    out: dict[str, Any] = {"restored": False, "restored_s": None}
    want_cpu = args.nodes * args.num_cpus
    while True:
        try:
            total, avail = rayredis.cluster_resources(), rayredis.available_resources()
            missing = {k: [avail.get(k, 0.0), v] for k, v in total.items() if avail.get(k, 0.0) < v - 1e-6}
            problem = []
            if abs(total.get("CPU", 0.0) - want_cpu) > 1e-6:
                problem.append(f"CPU {total.get('CPU', 0.0)} != {want_cpu}")
            for k in range(args.nodes):
                if abs(total.get(slot_resource(k), 0.0) - CAPACITY) > 1e-6:
                    problem.append(f"{slot_resource(k)} {total.get(slot_resource(k), 0.0)} != {CAPACITY}")
            if abs(total.get(NODE_RESOURCE, 0.0) - CAPACITY * args.nodes) > 1e-6:
                problem.append(f"{NODE_RESOURCE} {total.get(NODE_RESOURCE, 0.0)} != {CAPACITY * args.nodes}")
            out.update(total=total, available=avail, missing=missing, capacity_restored=not problem,
                       capacity_problem=problem or None)
            if not missing and not problem:
                out.update(restored=True, restored_s=_r(time.monotonic() - start))
                return out
        except Exception as e:  # noqa: BLE001 - keep polling through transient errors
            out["error"] = f"{type(e).__name__}: {e}"
        if time.monotonic() - start > timeout_s:
            return out
        time.sleep(0.1)


def _collect_stats(cluster: ChaosCluster, items: list[Item], run_t0_wall: float) -> dict[str, Any]:
    """Task attempts, lineage re-runs and actor restart counts (see chaos/stats.py), and where each
    item's work was found (``Item.ran_on``: from the task table's ``node``, placement groups'
    bundle nodes and node IDs named in errors)."""
    out: dict[str, Any] = {}
    h = cluster.head
    store = ShardedRedis(h.address, h.password, socket_timeout=10.0).connect()
    try:
        entries = stats.task_entries(store, [t for i in items for t in i.task_ids])
        final = {e.actor_id: e.num_restarts for e in actor_entries(store.primary)}
        nodes = tables.read_nodes(store.primary)
        slot_of: dict[str, int] = {}
        for r in nodes:
            k = cluster.slot_of_session(r.info.session_dir) if r.info is not None else None
            if k is not None:
                slot_of[r.node_id] = k
        for sd, nid in cluster.known_nodes():
            k = cluster.slot_of_session(sd)
            if k is not None:
                slot_of.setdefault(nid, k)
        for item in items:
            ran = {slot_of[n] for t in item.task_ids if (n := entries.get(t, (0, ""))[1]) in slot_of}
            if item.kind == "pg" and item.detail.get("pg"):
                pg = tables.read_placement_group(store.primary, item.detail["pg"])
                ran |= {slot_of[n] for n in (pg.nodes if pg else []) if n in slot_of}
            for short in _NODE_IN_TEXT.findall(item.error or ""):
                ran |= {k for n, k in slot_of.items() if n.startswith(short)}
            item.ran_on = tuple(sorted(ran))
        out["dead_nodes"] = [r.node_id for r in nodes if r.state == tables.NodeState.DEAD.value]
    finally:
        store.close()
    attempts = {t: a for t, (a, _) in entries.items()}
    rebuilt = stats.rebuilds(list(cluster.sessions))
    why: dict[str, list[str]] = {}
    for rec in [*stats.retries(list(cluster.sessions)), *rebuilt]:
        why.setdefault(rec.task_id, []).append(rec.why)
    for item in items:
        item.evidence = " ".join(w for t in item.task_ids for w in why.get(t, []))
        if item.evidence:
            item.ran_on = tuple(sorted(set(item.ran_on) | {k for short in _NODE_IN_TEXT.findall(item.evidence)
                                                           for n, k in slot_of.items() if n.startswith(short)}))
    out["_attempts"] = attempts
    out["_rebuilds"] = rebuilt
    out["_final_restarts"] = final
    out["reconstructions"] = [{"t": round(rb.wall_time - run_t0_wall, 3), "task": rb.name, "task_id": rb.task_id,
                               "why": rb.why} for rb in rebuilt][:50]
    out["totals"] = {"tasks_with_retries": sum(1 for a in attempts.values() if a > 0),
                     "task_attempts_beyond_first": sum(attempts.values()),
                     "objects_reconstructed": len(rebuilt), "actors_restarted": sum(final.values()),
                     "actors": len(final)}
    return out


_NODE_IN_TEXT = re.compile(r"\bnode\(?s?\)? ([0-9a-f]{8})")


class Watchdog(threading.Thread):
    """Reports a runner stuck in a driver call: after ``limit_s`` without :meth:`beat`, dumps every
    thread's stack to stderr and SIGTERMs this process (which unwinds through the runner's finally,
    so the cluster is shut down and a report is still written)."""

    def __init__(self, limit_s: float):
        super().__init__(name="chaos-watchdog", daemon=True)
        self.limit_s = limit_s
        self.last = time.monotonic()
        self.armed = False
        self.fired: str | None = None
        self.stopping = threading.Event()

    def beat(self) -> None:
        self.last = time.monotonic()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            if self.armed and time.monotonic() - self.last > self.limit_s:
                self.fired = f"the runner's main thread made no progress for {self.limit_s:.0f} s (a driver call hung)"
                print(f"[chaos] WATCHDOG: {self.fired}; stacks:", file=sys.stderr, flush=True)
                faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
                self.armed = False
                os.kill(os.getpid(), signal.SIGTERM)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m chaos.runner", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of workload (default 60)")
    ap.add_argument("--faults", default="gcs,worker",
                    help=f"comma-separated fault kinds: {', '.join(FAULTS)}; 'all' for every kind, "
                         "'none' for a baseline run (default gcs,worker)")
    ap.add_argument("--nodes", type=int, default=1,
                    help="nodes of the local cluster: the head plus N-1 worker nodes (default 1)")
    ap.add_argument("--mean-interval", type=float, default=5.0, help="mean seconds between faults")
    ap.add_argument("--order", choices=("cycle", "random"), default="cycle",
                    help="cycle: every kind once per round in shuffled order; random: independent picks")
    ap.add_argument("--gcs-downtime", type=float, default=1.0, help="seconds the cluster runs without a GCS")
    ap.add_argument("--pause-min", type=float, default=0.5, help="shortest SIGSTOP of a pause fault (default 0.5)")
    ap.add_argument("--pause-max", type=float, default=2.0, help="longest SIGSTOP of a pause fault (default 2.0)")
    ap.add_argument("--netns", action="store_true",
                    help="every node on a host of its own (a network namespace on a bridge; needs root, `ip netns` "
                         "and ebtables); required by the partition fault")
    ap.add_argument("--partition-min", type=float, default=PartitionNode.DEFAULT_RANGE_S[0],
                    help="shortest partition (default %(default)s s); successive partitions alternate long "
                         "(> 2x the node-death timeout) and short (< half of it)")
    ap.add_argument("--partition-max", type=float, default=PartitionNode.DEFAULT_RANGE_S[1],
                    help="longest partition (default %(default)s s)")
    ap.add_argument("--restart-timeout", type=float, default=15.0,
                    help="seconds the raylet/redis faults wait for the supervisor's restart (default 15)")
    ap.add_argument("--warmup", type=float, default=2.0, help="no faults during the first seconds")
    ap.add_argument("--cooldown", type=float, default=None,
                    help="no faults during the last seconds, so recovery is observable (default min(5, d/4); "
                         "min(12, d/4) with node, raylet or redis faults)")
    ap.add_argument("--item-timeout", type=float, default=60.0,
                    help="an item not back after this is lost (a hang); also bounds the final drain")
    ap.add_argument("--settle-timeout", type=float, default=30.0,
                    help="seconds allowed, after the drain, for every resource to be available again (default 30)")
    ap.add_argument("--max-inflight", type=int, default=40)
    ap.add_argument("--num-actors", type=int, default=3, help="named actors in the pool (default 3)")
    ap.add_argument("--new-actor-interval", type=float, default=1.0,
                    help="seconds between new-actor items (need the GCS); 0 disables them")
    ap.add_argument("--pg-interval", type=float, default=2.0,
                    help="seconds between placement-group items; 0 disables them")
    ap.add_argument("--num-cpus", type=float, default=2, help="CPUs per node (default 2)")
    ap.add_argument("--object-store-memory", type=int, default=None,
                    help="object store bytes per node (default: Cluster's 150 MiB)")
    ap.add_argument("--redis-replicas", type=int, default=None,
                    help="replicas per Redis shard, with Sentinel failover (default 1 with the redis-primary "
                         "fault, else 0)")
    ap.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    ap.add_argument("--quiet", action="store_true", help="print only the final report")
    args = ap.parse_args(argv)
    spec = args.faults.strip()
    if spec == "all":  # (partitions only with --netns)
        args.faults = [k for k in FAULTS if k != "partition" or args.netns]
    else:
        args.faults = [] if spec in ("", "none") else [f.strip() for f in spec.split(",")]
    if args.nodes < 1:
        raise ValueError("--nodes must be at least 1")
    if not 0 < args.pause_min <= args.pause_max:
        raise ValueError("--pause-min must be > 0 and <= --pause-max")
    if args.redis_replicas is None:
        args.redis_replicas = 1 if "redis-primary" in args.faults else 0
    if args.redis_replicas < 0:
        raise ValueError("--redis-replicas must not be negative")
    if "redis-primary" in args.faults and args.redis_replicas < 1:
        raise ValueError("the redis-primary fault needs replicated shards: --redis-replicas 1 or more")
    if not 0 < args.partition_min <= args.partition_max:
        raise ValueError("--partition-min must be > 0 and <= --partition-max")
    if "partition" in args.faults and not args.netns:
        raise ValueError("the partition fault needs --netns (each node on a host of its own, to cut off)")
    if args.netns and (reason := netns.unavailable_reason(partitions=True)) is not None:
        raise ValueError(f"--netns cannot run here: {reason}")
    if args.cooldown is None:
        args.cooldown = min(12.0 if any(k in NODE_LEVEL for k in args.faults) else 5.0, args.duration / 4)
    return args


def _faults_of(args: argparse.Namespace) -> list[Fault]:
    return make_faults(args.faults, gcs_downtime_s=args.gcs_downtime, pause_s=(args.pause_min, args.pause_max),
                       restart_timeout_s=args.restart_timeout, partition_s=(args.partition_min, args.partition_max))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start a cluster, run workload + faults, verify, shut down; returns the report."""
    faults = {f.name: f for f in _faults_of(args)}
    plan = plan_schedule(args.seed, list(faults), args.mean_interval, args.warmup,
                         args.duration - args.cooldown, order=args.order)
    _log(f"planned faults: {[(p.t, p.kind) for p in plan]}", args.quiet)
    if "pause" in faults and args.pause_max >= get_config().node_death_timeout_s:
        _log(f"warning: pauses up to {args.pause_max} s reach the node-death timeout "
             f"({get_config().node_death_timeout_s} s): a paused raylet may be declared dead", args.quiet)
    extra: dict[str, Any] = {}
    fault_thread: FaultThread | None = None
    workload: Workload | None = None
    watch: ProcessWatch | None = None
    watchdog = Watchdog(args.item_timeout + 30.0)
    cluster = ChaosCluster(args.nodes, args.num_cpus, args.object_store_memory, redis_replicas=args.redis_replicas,
                           use_netns=args.netns)
    session_dir = ""
    t0 = time.monotonic()
    t0_wall = time.time()
    try:
        cluster.start()
        session_dir = cluster.head_session
        if cluster.net is not None:
            extra["netns_hosts"] = {"switch": cluster.net.switch,
                                    "hosts": {h.name: [h.netns, h.ip] for h in cluster.net.hosts.values()}}
            _log(f"hosts: {' '.join([cluster.net.switch, *(h.netns for h in cluster.net.hosts.values())])}",
                 args.quiet)
        _log(f"cluster up: {args.nodes} node(s), primary {cluster.head.address}, head session {session_dir}",
             args.quiet)

        def clock() -> float:
            return time.monotonic() - t0

        watch = ProcessWatch(lambda: list(cluster.sessions), clock)
        watch.start()
        workload = Workload(args.seed, clock, num_actors=args.num_actors, max_inflight=args.max_inflight,
                            item_timeout_s=args.item_timeout, new_actor_interval_s=args.new_actor_interval,
                            num_slots=args.nodes, pg_interval_s=args.pg_interval)
        workload.start()
        t0, t0_wall = time.monotonic(), time.time()  # the run (and the fault schedule) starts after set-up
        fault_thread = FaultThread(plan, faults, cluster, args.seed, t0, args.quiet, probe=workload.request_probe)
        fault_thread.start()
        watchdog.armed = True
        watchdog.start()
        last_progress = 0.0
        # A live bar of the run on a terminal (the 10 s lines below are for logs).
        bar = tqdm_ray.tqdm(total=int(args.duration), desc="chaos", unit="s") \
            if not args.quiet and sys.stderr.isatty() else None
        while clock() < args.duration:
            watchdog.beat()
            workload.fill()
            workload.collect(0.05)
            if bar is not None and int(clock()) > bar.n:
                bar.n = int(clock())
                bar.set_description(f"chaos: {sum(1 for i in workload.items if i.done)} done, "
                                    f"{len(fault_thread.fired)} faults")
            if clock() - last_progress >= 10.0:
                last_progress = clock()
                done = sum(1 for i in workload.items if i.done)
                bad = sum(1 for i in workload.items if i.status in ("lost", "wrong"))
                _log(f"t={clock():.1f}s submitted {len(workload.items)} done {done} lost/wrong {bad}",
                     args.quiet)
        if bar is not None:
            bar.close()
        fault_thread.stop.set()
        fault_thread.join()
        watchdog.beat()
        workload.drain(args.item_timeout)
        extra["wall_s"] = round(clock(), 3)
        extra["counter_violations"] = workload.check_counters()
        extra["counter_incarnations"] = {str(k): v for k, v in workload.counter_incarnations.items()}
        watchdog.beat()
        try:
            got = _collect_stats(cluster, workload.items, t0_wall)
            final = got.pop("_final_restarts")
            injected = [f for f in fault_thread.fired if not f.get("skipped")]
            for f in injected:
                f.setdefault("t", round(f["monotonic"] - t0, 4))
            got["_restarts"] = actor_restarts(injected, final)
            extra.update(got)
        except Exception as e:  # noqa: BLE001 - the counts are missing, the verdict is not affected
            extra["stats_error"] = f"{type(e).__name__}: {e}"
        workload.end_actors()
        watchdog.beat()
        extra["resources"] = _wait_resources_free(cluster, args, args.settle_timeout)
        extra["resources_restored_s"] = extra["resources"].get("restored_s")
        watchdog.beat()
        try:
            cw = worker_context.global_worker
            assert cw is not None
            extra["raylet_violations"] = debug.validate_cluster(cw.store)
        except Exception as e:  # noqa: BLE001 - reported: the check could not run
            extra["raylet_violations"] = f"{type(e).__name__}: {e}"
    except BaseException as e:
        extra["runner_error"] = watchdog.fired or f"{type(e).__name__}: {e}"
        if not isinstance(e, Exception) and not watchdog.fired:
            raise
        _log(traceback.format_exc(), args.quiet)
    finally:
        watchdog.armed = False
        watchdog.stopping.set()
        if fault_thread is not None:
            fault_thread.stop.set()
            fault_thread.join()
        items = workload.items if workload is not None else []
        if workload is not None:
            workload.close()
        if watch is not None:
            extra["process_deaths"] = watch.halt()
        try:
            nodes = cluster.nodes() if cluster.cluster is not None else []
        except Exception:  # noqa: BLE001 - Redis may be gone (a redis fault): fall back to what we started
            nodes = []
        prefixes = shm_prefixes(list(cluster.sessions), nodes, cluster.known_nodes())
        try:
            cluster.shutdown()
            extra["leftovers"] = wait_no_leftovers(list(cluster.sessions), prefixes)
        finally:
            # (After the leftover check: the namespace teardown kills whatever still runs on a host.)
            net_left = cluster.close_network()
        if net_left:
            extra.setdefault("leftovers", {}).setdefault("processes", []).extend(
                f"on a host at the namespace teardown: {p}" for p in net_left)
        extra["sessions"] = list(cluster.sessions)
    report = build_report(args, items, fault_thread.fired if fault_thread else [], plan, session_dir, extra)
    return report


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--compose" in argv:  # the compose cluster and docker faults (chaos/compose.py)
        from chaos import compose

        return compose.main([a for a in argv if a != "--compose"])
    try:
        args = parse_args(argv)
        _faults_of(args)
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

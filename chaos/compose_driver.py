"""The driver half of ``chaos.compose``: the known-answer workload, run inside the compose cluster's driver container.

    python -m chaos.compose_driver --out /out --slots 3 --seed 1 --duration 30   # (chaos.compose runs it)

The host half fires docker faults meanwhile. The two meet in ``--out`` (a directory mounted from the
host): this side writes ``t0.json`` once the workload has started (the run's time zero, on the
monotonic clock both sides share: containers do not get a clock of their own) and reads the probe
requests the host appends to ``probes.jsonl``; at the end it writes ``items.pkl`` (the items, their
refs dropped) and ``driver.json`` (what the runner's report takes from the cluster).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from collections.abc import Sequence
from typing import Any

import rayredis
from chaos import stats
from chaos.cluster import slot_resource
from chaos.faults import actor_entries
from chaos.workload import Workload
from rayredis._private import debug, worker_context
from rayredis.store import tables


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m chaos.compose_driver")
    ap.add_argument("--out", required=True, help="directory shared with the host")
    ap.add_argument("--slots", type=int, required=True, help="nodes with a chaos slot (head = slot 0)")
    ap.add_argument("--num-cpus", type=float, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--item-timeout", type=float, default=60.0)
    ap.add_argument("--settle-timeout", type=float, default=30.0)
    ap.add_argument("--max-inflight", type=int, default=40)
    ap.add_argument("--num-actors", type=int, default=3)
    ap.add_argument("--new-actor-interval", type=float, default=1.0)
    ap.add_argument("--pg-interval", type=float, default=2.0)
    return ap.parse_args(argv)


def _log(msg: str) -> None:
    print(f"[chaos-driver] {msg}", file=sys.stderr, flush=True)


def wait_for_slots(slots: int, timeout_s: float = 120.0) -> None:
    """Until a live node holds each slot's resource (the workers may still be registering)."""
    deadline = time.monotonic() + timeout_s
    while True:
        have = rayredis.cluster_resources()
        if all(have.get(slot_resource(k), 0.0) > 0 for k in range(slots)):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not every chaos slot has a node after {timeout_s} s: {have}")
        time.sleep(0.2)


class Probes:
    """The probe requests the host appends to ``probes.jsonl`` (one JSON object a line)."""

    def __init__(self, path: str):
        self.path = path
        self.offset = 0

    def poll(self, workload: Workload) -> None:
        try:
            with open(self.path) as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        lines = chunk.split("\n")
        complete, rest = lines[:-1], lines[-1]
        self.offset += len(chunk) - len(rest)
        for line in complete:
            if line.strip():
                req = json.loads(line)
                workload.request_probe(int(req["index"]), str(req["what"]), req.get("slot"))


def alive_nodes() -> set[str]:
    cw = worker_context.global_worker
    assert cw is not None
    return {r.node_id for r in tables.read_nodes(cw.store.primary) if r.state == tables.NodeState.ALIVE.value}


def cluster_facts(workload: Workload, slots: int, alive_at_start: set[str]) -> dict[str, Any]:
    """Task attempts, actor restarts, the nodes alive at the start that died, and where each item ran
    (``Item.ran_on``), from Redis."""
    cw = worker_context.global_worker
    assert cw is not None
    store = cw.store
    entries = stats.task_entries(store, [t for i in workload.items for t in i.task_ids])
    nodes = tables.read_nodes(store.primary)
    slot_of = {r.node_id: k for r in nodes if r.info is not None
               for k in range(slots) if r.info.resources.get(slot_resource(k), 0.0) > 0}
    for item in workload.items:
        item.ran_on = tuple(sorted({slot_of[n] for t in item.task_ids
                                    if (n := entries.get(t, (0, ""))[1]) in slot_of}))
    final = {e.actor_id: e.num_restarts for e in actor_entries(store.primary)}
    attempts = {t: a for t, (a, _) in entries.items()}
    return {"_attempts": attempts, "_final_restarts": final,
            "dead_nodes": [r.node_id for r in nodes if r.state == tables.NodeState.DEAD.value
                           and r.node_id in alive_at_start],
            "nodes_final": [{"node_id": r.node_id, "state": r.state, "ip": r.info.node_ip if r.info else "",
                             "slot": slot_of.get(r.node_id)} for r in nodes],
            "totals": {"tasks_with_retries": sum(1 for a in attempts.values() if a > 0),
                       "task_attempts_beyond_first": sum(attempts.values()),
                       "actors_restarted": sum(final.values()), "actors": len(final)}}


def run(args: argparse.Namespace) -> int:
    from chaos.runner import _wait_resources_free  # (the runner imports the local cluster; only this helper)

    rayredis.init()
    wait_for_slots(args.slots)
    alive_at_start = alive_nodes()  # (a module's earlier runs on this project left dead nodes behind)
    t0 = time.monotonic()

    def clock() -> float:
        return time.monotonic() - t0

    workload = Workload(args.seed, clock, num_actors=args.num_actors, max_inflight=args.max_inflight,
                        item_timeout_s=args.item_timeout, new_actor_interval_s=args.new_actor_interval,
                        num_slots=args.slots, pg_interval_s=args.pg_interval)
    workload.start()
    t0 = time.monotonic()
    with open(os.path.join(args.out, "t0.json"), "w") as f:
        json.dump({"t0": t0}, f)
    probes = Probes(os.path.join(args.out, "probes.jsonl"))
    extra: dict[str, Any] = {}
    last = 0.0
    while clock() < args.duration:
        probes.poll(workload)
        workload.fill()
        workload.collect(0.05)
        if clock() - last >= 10.0:
            last = clock()
            bad = sum(1 for i in workload.items if i.status in ("lost", "wrong"))
            _log(f"t={clock():.1f}s submitted {len(workload.items)} lost/wrong {bad}")
    probes.poll(workload)
    workload.drain(args.item_timeout)
    extra["wall_s"] = round(clock(), 3)
    extra["counter_violations"] = workload.check_counters()
    extra["counter_incarnations"] = {str(k): v for k, v in workload.counter_incarnations.items()}
    try:
        extra.update(cluster_facts(workload, args.slots, alive_at_start))
    except Exception as e:  # noqa: BLE001 - the counts are missing, the verdict is not affected
        extra["stats_error"] = f"{type(e).__name__}: {e}"
    workload.end_actors()
    ns = argparse.Namespace(nodes=args.slots, num_cpus=args.num_cpus)
    extra["resources"] = _wait_resources_free(None, ns, args.settle_timeout)  # type: ignore[arg-type]
    extra["resources_restored_s"] = extra["resources"].get("restored_s")
    try:
        cw = worker_context.global_worker
        assert cw is not None
        extra["raylet_violations"] = debug.validate_cluster(cw.store)
    except Exception as e:  # noqa: BLE001 - reported: the check could not run
        extra["raylet_violations"] = f"{type(e).__name__}: {e}"
    items = workload.items
    workload.close()
    for item in items:  # what cannot (or need not) cross to the host
        item.ref = item.handle = item.reduce = item.cleanup = None
        item.keep = []
    with open(os.path.join(args.out, "items.pkl"), "wb") as fb:
        pickle.dump(items, fb)
    with open(os.path.join(args.out, "driver.json"), "w") as f:
        json.dump(extra, f, default=str)
    rayredis.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(run(parse_args()))

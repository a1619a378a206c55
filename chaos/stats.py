"""Counts the runtime does not report directly, derived after the run from what it leaves behind.

- **Task attempts**: every task's entry in the task table (``rr:task:<id>`` on its data shard) has
  an ``attempt`` field, 0 for the first execution and incremented by each retry (worker death,
  node death) and each lineage re-run. The workload keeps the IDs of the tasks it submitted.
- **Retry causes**: both retry paths of ``NodeManager`` log ``retrying task <name> (<task id>): <why>``,
  which names the dead node when a node died (used as evidence when attributing retries).
- **Reconstructions**: the owner's raylet logs ``rebuilding the returns of <name> (<task id>): <why>``
  (``raylet/lineage.py``) each time it re-runs a task to rebuild objects lost with a node; every
  node's ``<session>/logs/raylet.log`` is read.
- **Actor restarts**: the actor table's ``num_restarts`` per actor, read at the end and compared
  with the value each fault recorded when it hit the actor (``actors_hit``).
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rayredis.store import keys
from rayredis.store.client import ShardedRedis

_RETRY = re.compile(r"^(\S+ \S+) INFO rayredis\.raylet\.node_manager:\d+ retrying task (\S+) \(([0-9a-f]+)\): (.*)$")
_REBUILD = re.compile(r"^(\S+ \S+) INFO rayredis\.raylet\.lineage:\d+ rebuilding the returns of (\S+) "
                      r"\(([0-9a-f]+)\): (.*)$")


@dataclass(frozen=True)
class Rebuild:
    wall_time: float
    name: str
    task_id: str
    why: str
    session_dir: str


def task_entries(store: ShardedRedis, task_ids: Iterable[str]) -> dict[str, tuple[int, str]]:
    """``(attempt, node)`` of each task-table entry that exists (by hex task ID), one pipeline per
    shard; ``node`` is where the task last ran or was forwarded to."""
    by_shard: dict[int, tuple[Any, list[str]]] = {}
    for tid in set(task_ids):
        client = store.for_id(bytes.fromhex(tid))
        by_shard.setdefault(id(client), (client, []))[1].append(tid)
    out: dict[str, tuple[int, str]] = {}
    for client, tids in by_shard.values():
        for start in range(0, len(tids), 2000):
            chunk = tids[start:start + 2000]
            pipe = client.pipeline(transaction=False)
            for tid in chunk:
                pipe.hmget(keys.task_key(tid), "attempt", "node")
            for tid, (attempt, node) in zip(chunk, pipe.execute()):
                if attempt is not None:
                    out[tid] = (int(attempt), node.decode() if node else "")
    return out


def _log_time(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _scan(sessions: Iterable[str], needle: str, pattern: re.Pattern[str]) -> list[Rebuild]:
    out = []
    for sd in sessions:
        path = os.path.join(sd, "logs", "raylet.log")
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    if needle not in line:
                        continue
                    m = pattern.match(line.rstrip("\n"))
                    if m:
                        out.append(Rebuild(_log_time(m.group(1)), m.group(2), m.group(3), m.group(4), sd))
        except OSError:
            continue
    return sorted(out, key=lambda r: r.wall_time)


def rebuilds(sessions: Iterable[str]) -> list[Rebuild]:
    """Every lineage re-run logged by a raylet of ``sessions``, in time order."""
    return _scan(sessions, "rebuilding the returns of", _REBUILD)


def retries(sessions: Iterable[str]) -> list[Rebuild]:
    """Every task retry a raylet of ``sessions`` logged (``NodeManager``: its worker or the node it
    was forwarded to died), in time order; ``why`` names the dead node for node deaths."""
    return _scan(sessions, "retrying task", _RETRY)
